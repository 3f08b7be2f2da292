"""`list-studio`: the app (and, through it, its worker) from any folder, after `pip install .[app]`.

The data goes where the command runs (`data/`, or `$LIST_DB`), as with `streamlit run app.py`. The app's files
come from the source tree (an editable install or a checkout) or from where a normal install put them
(`<prefix>/share/list-studio/`). Streamlit reads `.streamlit/config.toml` from the current folder only, so the
safe defaults (localhost, no usage statistics) are given as flags unless the command line sets them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEFAULTS = {
    "--server.headless": "true",
    "--server.address": "localhost",  # opened to a network, the app asks for LIST_SECRET (README)
    "--server.maxUploadSize": "200",
    "--browser.gatherUsageStats": "false",
}


SOURCE = Path(__file__).resolve().parents[1]


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
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:  # Ctrl-C reaches streamlit too, which stops its worker
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
