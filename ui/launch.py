"""`list-studio`: the app (and, through it, its worker) from any folder, after `pip install .[app]`.

The data goes where the command runs (`data/`, or `$LIST_DB`), as with `streamlit run app.py`. The app's files
come from the source tree (an editable install or a checkout) or from where a normal install put them
(`<prefix>/share/list-studio/`). Streamlit reads `.streamlit/config.toml` from the current folder only, so the
safe defaults (localhost, no usage statistics) are given as flags unless the command line sets them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

DEFAULTS = {
    "--server.headless": "true",
    "--server.address": "localhost",  # opened to a network, the app asks for LIST_SECRET (README)
    "--server.maxUploadSize": "200",
    "--browser.gatherUsageStats": "false",
}


SOURCE = Path(__file__).resolve().parents[1]
STOP_GRACE_S = 15.0  # after a stop signal, seconds the app has to end before it is killed


def app_dir(prefix: str | os.PathLike = sys.prefix, source: Path | None = SOURCE) -> Path:
    """The folder holding app.py and pages/: the source tree, else `<prefix>/share/list-studio`."""
    for root in [r for r in (source, Path(prefix) / "share" / "list-studio") if r is not None]:
        if (root / "app.py").is_file() and (root / "pages").is_dir():
            return root
    raise FileNotFoundError(f"app.py and pages/ are neither in the source tree nor in {Path(prefix) / 'share'}; "
                            "reinstall with pip install .[app]")  # fmt: skip


def command(argv: list[str], prefix: str | os.PathLike = sys.prefix) -> list[str]:
    """`streamlit run <app.py>` with the safe defaults for every option `argv` does not set."""
    given = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    extra = [x for k, v in DEFAULTS.items() if k not in given for x in (k, v)]
    return [sys.executable, "-m", "streamlit", "run", str(app_dir(prefix) / "app.py"), *extra, *argv]


def main(argv: list[str] | None = None) -> int:
    try:
        cmd = command(list(sys.argv[1:] if argv is None else argv))
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    child = subprocess.Popen(cmd)
    stopping: list[float] = []

    def stop(signum: int, frame: object) -> None:
        child.send_signal(signum)
        stopping.append(time.monotonic())

    # `kill <pid>` (a service manager's stop) must stop the app too: without this the app outlives the command,
    # still holding its port (its worker follows it: it exits with its parent)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    try:
        while True:
            try:
                return child.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                # a SIGTERM that reaches Streamlit while it starts can be lost: do not wait for ever
                if stopping and time.monotonic() - stopping[0] > STOP_GRACE_S:
                    child.kill()
    except KeyboardInterrupt:  # Ctrl-C reaches streamlit too (same process group), which stops its worker
        child.wait()
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
