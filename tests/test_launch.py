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
        proc.send_signal(signal.SIGTERM)  # `kill <pid of list-studio>`: the app it started must stop too
        proc.wait(60)
        end = time.monotonic() + 60
        while time.monotonic() < end and _group_alive(proc.pid):
            time.sleep(0.5)
        assert not _group_alive(proc.pid), "the app outlived the list-studio command that started it"
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(20)


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group is alive (zombies of our own children are reaped by `wait`)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            return True
    return False


def test_a_stop_while_the_app_starts_still_stops_it(tmp_path):
    """A SIGTERM that reaches Streamlit while it starts can be lost (the server then runs for ever, seen as a
    leftover server from a test run); the command stops it anyway, killing it after `STOP_GRACE_S`."""
    env = {**os.environ, "LIST_NO_WORKER": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "ui.launch", "--server.port", str(_free_port())], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        time.sleep(3)  # the launcher is up and Streamlit is starting
        proc.send_signal(signal.SIGTERM)
        proc.wait(launch.STOP_GRACE_S + 30)
        end = time.monotonic() + 30
        while time.monotonic() < end and _group_alive(proc.pid):
            time.sleep(0.5)
        assert not _group_alive(proc.pid)
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(20)
