"""`list-studio` (ui.launch): the app from any folder after `pip install .[app]` (issue 12: installable)."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

from ui import launch

ROOT = Path(__file__).resolve().parents[1]


def test_the_command_keeps_the_safe_defaults_unless_told_otherwise():
    cmd = launch.command([])
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4] == str(ROOT / "app.py")
    assert cmd[cmd.index("--server.address") + 1] == "localhost"
    cmd = launch.command(["--server.address", "0.0.0.0", "--server.port=9000"])
    assert cmd.count("--server.address") == 1 and cmd[-3:] == ["--server.address", "0.0.0.0", "--server.port=9000"]


def test_a_wheel_installs_the_app_and_the_command_finds_it(tmp_path):
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(ROOT),
                          "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    (wheel,) = tmp_path.glob("list_studio-*.whl")
    z = zipfile.ZipFile(wheel)
    assert (
        "list-studio = ui.launch:main"
        in z.read(next(n for n in z.namelist() if n.endswith("entry_points.txt"))).decode()
    )
    prefix = tmp_path / "prefix"
    for name in z.namelist():  # where pip puts a wheel's data files: <prefix>/<path>
        if ".data/data/" in name:
            target = prefix / name.split(".data/data/", 1)[1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
    installed = launch.app_dir(prefix, source=None)
    assert installed == prefix / "share" / "list-studio"
    assert {p.name for p in (installed / "pages").glob("*.py")} >= {"label.py", "train.py", "export.py"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_app_starts_from_another_folder(tmp_path):
    port = _free_port()
    env = {**os.environ, "LIST_NO_WORKER": "1", "PYTHONPATH": str(ROOT)}
    env.pop("LIST_DB", None)
    proc = subprocess.Popen([sys.executable, "-m", "ui.launch", "--server.port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        body, end = "", time.monotonic() + 90
        while time.monotonic() < end and not body:
            try:
                body = urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2).read().decode()
            except OSError:
                time.sleep(0.5)
        assert body == "ok", "the app did not answer on its port"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
