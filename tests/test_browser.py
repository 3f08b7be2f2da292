"""One end-to-end test in a real browser (Debian's headless Chromium driven by Playwright).

It starts `streamlit run app.py` on a free port with a temporary database (the app starts its own worker),
creates a project on a tiny model, imports a CSV, writes a prompt, labels with keyboard shortcuts, runs LiST,
opens the inspector and downloads the adapter. A screenshot of each page goes to `test-artifacts/`.
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import storage as st_store
from storage import exports as exportq
from storage import runs as runq

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
ARTIFACTS = Path(os.environ.get("LIST_TEST_ARTIFACTS", ROOT / "test-artifacts"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
    ),
]


@pytest.fixture(autouse=True)
def _patient_expect():
    """A page can take more than expect's default 5 s to draw on a loaded machine (a full-suite run here waited
    longer than that for the Rounds page's first plotly chart while a benchmark shared the cores)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)
    yield
    expect.set_options(timeout=5_000)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _until(pred, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if got := pred():
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _start_uncapped_run(page) -> None:
    """Start a LiST run from the Train page with the fast preset's settings but its student steps uncapped
    (`student_max_passes` none): on the test's 12-text pool the cap leaves a run too short to watch while it trains."""
    from playwright.sync_api import expect

    page.get_by_role("combobox", name="Preset").click()
    page.get_by_role("option", name="custom").click()
    passes = page.get_by_role("textbox", name="student_max_passes")
    expect(passes).to_have_value("3.0")
    passes.fill("none")
    passes.press("Enter")
    expect(page.get_by_role("button", name="Start run")).to_be_enabled()
    page.get_by_role("button", name="Start run").click()


@contextlib.contextmanager
def _serve(tmp_path: Path, address: str = "127.0.0.1", **env_extra: str):
    port = _free_port()
    db = tmp_path / "ui.db"
    env = {**{k: v for k, v in os.environ.items() if k != "LIST_SECRET"}, "LIST_DB": str(db), "PYTHONUNBUFFERED": "1",
           **env_extra}  # fmt: skip
    if "LIST_NO_WORKER" not in env_extra:
        env.pop("LIST_NO_WORKER", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", address, "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        _until(lambda: _port_open(port, address), 60, "streamlit to listen")
        yield f"http://{address}:{port}", db
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        if db.exists():  # the worker the app started runs in its own session
            for (pid,) in st_store.connect(db).execute("SELECT pid FROM workers"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)


@pytest.fixture()
def server(tmp_path):
    with _serve(tmp_path) as served:
        yield served


def _port_open(port: int, address: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        return s.connect_ex((address, port)) == 0


def test_whole_loop_in_a_real_browser(server, tmp_path, tiny_dirs):
    from playwright.sync_api import expect, sync_playwright

    url, dbfile = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    csv = tmp_path / "reviews.csv"
    words = [
        f"{w} {x}" for w in ("great", "bad", "good", "awful") for x in ("movie", "film", "acting", "story", "pacing")
    ]
    csv.write_text("text\n" + "\n".join(words) + "\n")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(60_000)

        def shot(name: str) -> None:
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

        # Projects: create a project on the tiny model, import a CSV
        page.goto(url)
        expect(page.get_by_role("heading", name="Projects", exact=True)).to_be_visible()
        page.get_by_role("textbox", name="Name", exact=True).fill("browser reviews")
        page.get_by_role("textbox", name="Labels, in order, comma-separated", exact=True).fill("negative, positive")
        page.get_by_role("textbox", name="Backbone (local folder or hub id)", exact=True).fill(str(tiny_dirs["bert"]))
        page.get_by_role("button", name="Create project").click()
        expect(page.get_by_text("Import data into")).to_be_visible()
        page.locator('input[type="file"]').set_input_files(str(csv))
        expect(page.get_by_text("20 rows")).to_be_visible()
        page.get_by_role("button", name="Import", exact=True).click()
        expect(page.get_by_text("Imported 20 examples")).to_be_visible()
        shot("1-projects")
        db = st_store.connect(dbfile)
        pid = st_store.list_projects(db)[0].id
        assert st_store.count_examples(db, pid) == 20

        # Prompt workbench
        page.goto(url + "/prompt")
        expect(page.get_by_role("heading", name="Prompt workbench", exact=True)).to_be_visible()
        page.get_by_role("textbox", name="Label words for “negative”", exact=True).fill("bad")
        page.get_by_role("textbox", name="Label words for “positive”", exact=True).fill("great")
        page.get_by_role("textbox", name="Label words for “positive”", exact=True).press("Enter")
        page.get_by_role("button", name="Save prompt").click()
        expect(page.get_by_text("Saved as version 1")).to_be_visible()
        # a row of the scoring board becomes the prompt, and the editor shows it (AppTest passed while the browser
        # kept showing the old words)
        page.get_by_role("textbox", name="Candidates").fill("{text} It was {mask} . | bad/awful, great")
        page.get_by_role("textbox", name="Candidates").press("Control+Enter")
        page.get_by_role("button", name="Score prompts").click()
        expect(page.get_by_text("prompt scoring · succeeded")).to_be_visible(timeout=120_000)
        page.get_by_role("button", name="Save as the prompt").click()
        expect(page.get_by_text("Saved as version 2")).to_be_visible()
        expect(page.get_by_role("textbox", name="Label words for “negative”", exact=True)).to_have_value("bad, awful")
        assert st_store.latest_prompt(db, pid).label_words == [["bad", "awful"], "great"]
        shot("2-prompt")

        # Label with keyboard shortcuts: 1 = negative, 2 = positive
        page.goto(url + "/label")
        expect(page.get_by_role("heading", name="Label", exact=True)).to_be_visible()
        for i in range(8):
            # a shortcut pressed while the page is still rerunning can be lost: wait until its buttons are there
            # and the script has finished (Streamlit shows its status widget while a run is in progress)
            expect(page.get_by_role("button", name="positive Shortcut 2", exact=True)).to_be_enabled()
            expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)
            page.get_by_role("heading", name="Label", exact=True).click()  # focus the page, not an input
            page.keyboard.press("2" if i % 2 == 0 else "1")
            _until(lambda n=i + 1: sum(st_store.class_counts(db, pid)) >= n, 20, f"label {i + 1} to be saved")
        assert st_store.class_counts(db, pid) == [4, 4]
        shot("3-label")

        # Train: a fast LiST run, with live progress
        page.goto(url + "/train")
        _start_uncapped_run(page)
        expect(page.get_by_text("Run 1 queued.")).to_be_visible()
        _until(
            lambda: runq.list_runs(db, pid) and runq.list_runs(db, pid)[0].status == "running", 120, "the run to start"
        )
        # the run history follows the run without a reload (it said "queued" until the run ended)
        running = page.get_by_role("gridcell", name="running", exact=True, include_hidden=True)  # drawn on a canvas
        expect(running).to_have_count(1, timeout=15_000)
        shot("4-train-running")
        run = _until(lambda: (r := runq.list_runs(db, pid)[0]).status in ("succeeded", "failed") and r, 600, "the run")
        assert run.status == "succeeded", run
        page.reload()
        expect(page.get_by_text("Run history")).to_be_visible()
        shot("5-train-history")

        page.goto(url + "/rounds")
        expect(page.get_by_role("heading", name="Rounds", exact=True)).to_be_visible()
        expect(page.locator(".js-plotly-plot").first).to_be_visible()
        # the facts of every round: each cell whole, as text (a data grid drew them on a canvas, cut at its width)
        expect(
            page.get_by_role("cell", name=re.compile(r"^\d+ s \(.*student \d+.*gold tuning \d+\)$")).first
        ).to_be_visible()
        shot("6-rounds")

        # Inspect: pseudo-labels with their meta-weights
        page.goto(url + "/inspect")
        expect(page.get_by_text("pseudo-label", exact=False).first).to_be_visible()
        expect(page.get_by_text("weight 0.").first).to_be_visible()
        shot("7-inspect")

        # Export: the adapter, downloaded
        page.goto(url + "/export")
        page.get_by_role("button", name="Export model").click()
        _until(lambda: exportq.artifacts(db, pid), 120, "the export job")
        page.reload()
        expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)  # a rerun during the download cancels it
        with page.expect_download() as dl:
            page.get_by_role("button", name="Download model", exact=False).click()
        target = tmp_path / "adapter.zip"
        dl.value.save_as(target)
        assert target.stat().st_size > 1000
        shot("8-export")

        # A second run; while it trains, a prediction with the first run's model returns in seconds (light jobs
        # have their own lane), and the other two export formats download too
        # a second tab on the Rounds page, on run 1 (the newest): it follows the worker without a reload
        watcher = browser.new_page(viewport={"width": 1400, "height": 1000})
        watcher.goto(url + "/rounds?project=browser+reviews")
        expect(watcher.get_by_text("Status: succeeded")).to_be_visible()
        page.goto(url + "/train")
        _start_uncapped_run(page)
        expect(page.get_by_text("Run 2 queued.")).to_be_visible()
        _until(lambda: runq.get_run(db, 2).status == "running", 120, "the second run to start")
        page.goto(url + "/export")
        # typed, then Predict clicked at once, as a user does (the button, disabled until the text was committed,
        # dropped that click)
        page.get_by_label("Type a text").fill("a great movie")
        t = time.monotonic()
        page.get_by_role("button", name="Predict", exact=True).click()
        from storage import jobs as jobq

        try:
            done = _until(
                lambda: [j for j in jobq.list_jobs(db, pid) if j.kind == "predict" and j.done], 60, "the prediction"
            )
        except AssertionError as e:  # say what the queue and the worker were doing
            jobs = [(j.id, j.kind, j.status, j.worker_id, j.stage, j.step) for j in jobq.list_jobs(db, pid)]
            log = (dbfile.parent / "worker.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"{e}\njobs: {jobs}\nworker.log:\n{log}") from None
        assert done[0].status == "succeeded" and time.monotonic() - t < 30
        # it started while the training ran (a short run may end before the prediction does)
        training = jobq.get_job(db, runq.get_run(db, 2).job_id)
        assert training.finished_at is None or done[0].started_at < training.finished_at, (
            "the prediction waited for the training run"
        )
        expect(page.get_by_text("prediction · succeeded", exact=False)).to_be_visible()
        shot("8b-predict-during-a-run")
        # the Export page lists the newest finished run first: let the second run finish, then export it
        # the watching tab moved to the new run, unreloaded (checked after the prediction, which must not wait)
        expect(watcher.get_by_role("combobox", name="Run")).to_have_value("run 2 · list", timeout=60_000)
        _until(lambda: runq.get_run(db, 2).status in ("succeeded", "failed"), 600, "the second run")
        assert runq.get_run(db, 2).status == "succeeded"
        expect(watcher.get_by_text("Status: succeeded")).to_be_visible()  # its rounds and the end, unreloaded
        expect(watcher.get_by_text("This run keeps round", exact=False)).to_be_visible()
        watcher.screenshot(path=str(ARTIFACTS / "8c-rounds-followed-the-second-run.png"), full_page=True)
        watcher.close()
        for fmt, label in (("peft", "PEFT LoRA"), ("folded", "folded")):
            page.goto(url + "/export")
            page.get_by_text(label, exact=True).click()
            page.get_by_role("button", name="Export model").click()
            _until(
                lambda f=fmt: any(a.kind == f"adapter-{f}" for a in exportq.artifacts(db, pid)),
                180,
                f"the {fmt} export",
            )
            page.reload()
            expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)
            with page.expect_download() as dl:
                page.get_by_role("button", name=f"Download model · adapter-{fmt}", exact=False).click()
            dl.value.save_as(tmp_path / f"{fmt}.zip")
            assert (tmp_path / f"{fmt}.zip").stat().st_size > 1000
        shot("8c-three-exports")

        # A second project: Create switches to it, Open switches back; the project rides in the URL, so a reload,
        # another page and a second tab keep it
        page.goto(url)
        page.get_by_role("textbox", name="Name", exact=True).fill("second project")
        page.get_by_role("textbox", name="Labels, in order, comma-separated", exact=True).fill("a, b")
        page.get_by_role("textbox", name="Backbone (local folder or hub id)", exact=True).fill(str(tiny_dirs["bert"]))
        page.get_by_role("button", name="Create project").click()
        expect(page.get_by_text("Import data into “second project”")).to_be_visible()
        page.locator('[data-testid="stBaseButton-secondary"]:not([disabled])', has_text="Open").click()  # the first
        expect(page.get_by_text("Import data into “browser reviews”")).to_be_visible()
        _until(lambda: "project=browser" in page.url, 20, "the project in the URL")
        page.reload()
        expect(page.get_by_text("Import data into “browser reviews”")).to_be_visible()
        page.get_by_role("link", name="Label").click()
        expect(page.get_by_text("8 / 30 gold labels", exact=False)).to_be_visible()
        # the page shows the project before the browser's address has its ?project= again (a loaded CI run read the
        # address in between and opened the second tab on the newest project)
        _until(lambda: "project=browser" in page.url, 20, "the project in the Label page's URL")
        second_tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        second_tab.goto(page.url)
        expect(second_tab.get_by_text("8 / 30 gold labels", exact=False)).to_be_visible()
        shot("9-second-project")
        browser.close()


@contextlib.contextmanager
def _behind_a_secret(tmp_path: Path):
    """A server opened to a network (127.0.0.2, not localhost) with LIST_SECRET set, and a browser page: (url, page)."""
    from playwright.sync_api import sync_playwright

    with (
        _serve(tmp_path, "127.0.0.2", LIST_SECRET="s3cret", LIST_NO_WORKER="1") as (url, _),
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page()
        page.set_default_timeout(60_000)
        try:
            yield url, page
        finally:
            browser.close()


def test_opened_to_a_network_nothing_shows_before_the_secret(tmp_path):
    """Issue 13.1, in network mode for real: the app bound to another address (127.0.0.2, not localhost) shows no
    page and starts no worker until the browser gives LIST_SECRET."""
    from playwright.sync_api import expect

    with _behind_a_secret(tmp_path) as (url, page):
        page.goto(url)
        secret = page.get_by_label("Secret (LIST_SECRET)")
        expect(secret).to_be_visible()
        expect(page.get_by_role("heading", name="Projects", exact=True)).to_have_count(0)
        secret.fill("guess")
        secret.press("Enter")
        expect(page.get_by_text("Wrong secret.")).to_be_visible()
        expect(page.get_by_role("heading", name="Projects", exact=True)).to_have_count(0)
        page.goto(url + "/label")  # another page: still nothing
        expect(page.get_by_label("Secret (LIST_SECRET)")).to_be_visible()
        expect(page.get_by_text("Create or choose a project")).to_have_count(0)
        page.get_by_label("Secret (LIST_SECRET)").fill("s3cret")
        page.get_by_label("Secret (LIST_SECRET)").press("Enter")
        expect(page.get_by_text("Create or choose a project")).to_be_visible()  # the Label page itself


def test_a_page_opened_first_after_a_start_goes_through_the_app(tmp_path):
    """Streamlit runs a `pages/` folder as its own multipage app (no app.py: no secret, no worker, no project
    switcher) until some session has run app.py. The first visit after a (re)start, a bookmark or a tab left
    open, went straight to the page: /projects listed every project without the secret."""
    from playwright.sync_api import expect

    db = st_store.connect(tmp_path / "ui.db")  # the database _serve uses
    st_store.create_project(db, "private reviews", "single", ["negative", "positive"], "default")
    for first in ("/label?project=private+reviews", "/projects"):  # each the very first request of a new server
        with _behind_a_secret(tmp_path) as (url, page):
            page.goto(url + first)
            expect(page.get_by_label("Secret (LIST_SECRET)")).to_be_visible()
            page.wait_for_timeout(2000)  # anything the page itself would show has been sent by now
            expect(page.get_by_text("private reviews")).to_have_count(0)
            # the bookmark works once the secret is given, through app.py
            page.get_by_label("Secret (LIST_SECRET)").fill("s3cret")
            page.get_by_label("Secret (LIST_SECRET)").press("Enter")
            if first.startswith("/label"):
                expect(page.get_by_role("heading", name="Label", exact=True)).to_be_visible()
                expect(page.get_by_text("0 / 30")).to_be_visible()  # the project from the URL
            else:  # the default page is at "/"; "/projects" opens it too (it said "Page not found")
                expect(page.get_by_role("heading", name="Projects", exact=True)).to_be_visible()
                expect(page.get_by_text("private reviews").first).to_be_visible()
                expect(page.get_by_text("Page not found")).to_have_count(0)
            expect(page.get_by_role("link", name="Prompt workbench")).to_be_visible()  # the app's navigation
