"""What every page needs: the database, the current project, errors shown as messages, the worker."""

from __future__ import annotations

import fcntl
import hmac
import os
import runpy
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import streamlit as st

import storage as st_store
from list_core import methods
from list_core.config import KEPT_MODEL_DIR
from list_core.locate import has_mlm_head
from storage import jobs as jobq
from storage.db import db_path
from storage.models import Project, Run

ROOT = Path(__file__).resolve().parents[1]


def through_the_app() -> None:
    """Every page runs inside app.py (the secret, the worker, the project switcher). Streamlit runs a `pages/`
    folder as its own multipage app, page scripts without app.py, until some session has called `st.navigation`:
    so the first visit after a start, straight to a page (a bookmark, a tab left open), skipped the secret. Such a
    run switches Streamlit to app.py's navigation and runs app.py in its place (app.py then runs this page, with
    the same widget events: a rerun would drop a click)."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
        st.stop()


def db():
    """One connection per browser session (sqlite-utils, WAL, busy timeout). Called first by every page, so it
    also makes sure the page runs through app.py (`through_the_app`)."""
    through_the_app()
    if "db" not in st.session_state:
        st.session_state.db = st_store.connect()
    return st.session_state.db


GOTO = "goto_project"  # a page's request to switch project, applied by app.py before the sidebar's widget exists


def current_project() -> Project | None:
    """The project chosen in the sidebar (session state "project", bound to the URL), or None."""
    pid = st.session_state.get("project")
    if pid is None:
        return None
    try:
        return st_store.get_project(db(), pid)
    except st_store.StoreError:
        return None


def open_project(project_id: int) -> None:
    """Switch to a project from a page: the sidebar's widget already exists in this run, so the switch is applied
    at the top of the next run (app.py), which this starts."""
    st.session_state[GOTO] = project_id
    st.rerun()


LOCAL_ADDRESSES = ("localhost", "127.0.0.1", "::1")


def access_granted() -> bool:
    """The app listens on localhost by default (.streamlit/config.toml). Opened to a network (`--server.address`),
    it asks every browser session for the secret in `LIST_SECRET`, and refuses to run without one. A secret that is
    set is always asked for, on localhost too (behind a reverse proxy the app sees only local connections)."""
    address = st.get_option("server.address") or "0.0.0.0"  # unset: Streamlit listens on every interface
    secret = os.environ.get("LIST_SECRET", "")
    if st.session_state.get("access_granted") or (address in LOCAL_ADDRESSES and not secret):
        return True
    if not secret:
        st.error(f"LiST Studio is listening on {address}, open to the network, but no secret is set: anyone who "
                 "can reach it could read and delete your projects. Set `LIST_SECRET` and restart it, or run it on "
                 "localhost (the default).")  # fmt: skip
        return False
    typed = st.text_input("Secret (LIST_SECRET)", type="password", key="access_secret")
    if typed and hmac.compare_digest(typed.encode(), secret.encode()):
        st.session_state["access_granted"] = True
        st.session_state.pop("access_secret", None)
        st.rerun()
    if typed:
        st.error("Wrong secret.")
    return False


def import_dir() -> Path:
    """The only folder the import-by-path field reads (`LIST_IMPORT_DIR`; default `imports/` beside the database):
    a browser must not be able to read any file the server can."""
    return Path(os.environ.get("LIST_IMPORT_DIR") or db_path().parent / "imports").expanduser().resolve()


def import_path(typed: str) -> Path:
    """A path typed in the browser, as a file or folder inside `import_dir()` (symbolic links resolved first)."""
    base = import_dir()
    path = Path(typed).expanduser()
    path = (path if path.is_absolute() else base / path).resolve()
    if not path.is_relative_to(base):
        raise ValueError(f"Only files under {base} can be imported by path (set LIST_IMPORT_DIR to change it); "
                         "upload any other file.")  # fmt: skip
    if not path.exists():
        raise ValueError(f"No file or folder {path}.")
    return path


def labeler() -> str:
    """Who labels in this browser session (label history's "by"): Undo reverts this session's labels only."""
    if "labeler" not in st.session_state:
        import uuid

        st.session_state["labeler"] = f"session {uuid.uuid4().hex[:6]}"
    return st.session_state["labeler"]


def require_project() -> Project:
    project = current_project()
    if project is None:
        st.info("Create or choose a project on the Projects page first.")
        st.stop()
    return project


def ensure_worker() -> str:
    """Start a background worker when none is alive (unless LIST_NO_WORKER is set); returns a status line."""
    alive = jobq.alive_workers(db())
    if alive:  # one process runs a training lane and a light lane: count processes, not lanes
        n = len({(w["host"], w["pid"]) for w in alive})
        return "worker running" + (f" ({n} processes)" if n > 1 else "")
    if os.environ.get("LIST_NO_WORKER"):
        return "no worker (LIST_NO_WORKER is set): start one with `python -m worker`"
    path = db_path()
    lock = path.parent / ".worker-start.lock"
    with open(lock, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # several browser sessions must not start several workers at once
        f.seek(0)
        last = float(f.read() or 0)
        # a worker registers itself a few seconds after its start: do not start another meanwhile
        if not jobq.alive_workers(db(), within_s=15) and time.time() - last > 30:
            f.seek(0)
            f.truncate()
            f.write(str(time.time()))
            f.flush()
            with open(path.parent / "worker.log", "ab") as log:  # the child keeps its own copy of the handle
                subprocess.Popen(
                    [sys.executable, "-m", "worker", "--db", str(path), "--parent-pid", str(os.getpid())],
                    cwd=ROOT, stdout=log, stderr=log, start_new_session=True,
                    env={**os.environ, "LIST_DB": str(path)},
                )  # fmt: skip
            st.session_state["worker_started"] = True
    return "starting a worker…"


def run_safely(fn, *args, success: str | None = None, **kwargs):
    """Call a store function; show its error as a message instead of a stack trace."""
    try:
        out = fn(*args, **kwargs)
    except (st_store.StoreError, ValueError) as e:
        st.error(str(e))
        return None
    if success:
        st.success(success)
    return out


STAGES = {
    "setup": "setting up",
    "probe": "fitting the teacher on frozen features",
    "teacher": "tuning the teacher",
    "pseudo_label": "pseudo-labeling the pool",
    "kd_warmup": "student: distillation warm-up",
    "meta": "student: meta-reweighted training",
    "finetune": "tuning on the gold labels",
    "round_end": "round finished",
    "resume": "resuming",
    "warning": "warning",
    "done": "done",
}
KINDS = {"list_run": "training", "prompt_eval": "prompt scoring", "predict": "prediction", "diversity": "diverse order",
         "export": "export", "embed": "reading the texts", "prompt_suggest": "the prompt's suggestions"}  # fmt: skip


def text_column_guess(columns: list[str], records: list[dict]) -> str:
    """The column that holds the text: one named like it, else the one with the longest values (not an id)."""
    named = [c for c in columns if "text" in c.lower() or c.lower() in ("review", "sentence", "document", "content")]
    if named:
        return named[0]
    sample = records[:200]
    return max(columns, key=lambda c: sum(len(str(r.get(c) or "")) for r in sample))


PAIR_NAMES = {"text_a": ("premise", "sentence1", "question1", "text1", "question", "sentence_a"),
              "text_b": ("hypothesis", "sentence2", "question2", "text2", "passage", "sentence_b")}  # fmt: skip


def text_columns_guess(slots: tuple[str, ...], columns: list[str], records: list[dict]) -> dict[str, str]:
    """A column per text slot, a different one for each where the file has enough: the slot's own name, then the
    usual names of a pair's columns (premise / hypothesis, sentence1 / sentence2, ...), then the longest values."""
    if len(slots) == 1:
        return {slots[0]: slots[0] if slots[0] in columns else text_column_guess(columns, records)}
    lower = {c.lower(): c for c in columns}
    out = {s: lower.get(s) or next((lower[n] for n in PAIR_NAMES.get(s, ()) if n in lower), None) for s in slots}
    for s in slots:  # the rest: the longest columns not taken yet
        if out[s] is None:
            out[s] = text_column_guess([c for c in columns if c not in out.values()] or columns, records)
    return out


def label_column_guess(
    labels: list[str], columns: list[str], records: list[dict], taken: Iterable[str] = ()
) -> str | None:
    """The column that holds the labels, if one does: a column (not a text column in `taken`) whose filled cells in
    the first 200 rows are all label names (as the import reads them), else one named "label"; None otherwise."""
    names, taken = set(labels), set(taken)
    for c in columns:
        cells = [r.get(c) for r in records[:200] if r.get(c) is not None and str(r.get(c)).strip()]
        if c not in taken and cells and all(isinstance(v, str) and v.strip() in names for v in cells):
            return c
    return "label" if "label" in columns else None


def rerun_when_changed(probe: Callable[[], object], every: float = 2.0, show: Callable[[], None] | None = None) -> None:
    """Follow the worker without a reload: every `every` seconds (a fragment) compare `probe()` with its value when
    the page was drawn, and rerun the whole page when it differs (a round arrived, a run ended, background work is
    done); between changes only `show` (a progress line) is redrawn, so nothing moves under the user's cursor."""
    shown = probe()

    @st.fragment(run_every=every)
    def poll() -> None:
        if probe() != shown:
            st.rerun(scope="app")
        if show is not None:
            show()

    poll()


def follow_newest(key: str, newest: object, options: Sequence[object]) -> bool:
    """Keep the widget `key` on the newest of `options` (a run's rounds, a project's runs) as newer ones arrive,
    unless the user chose another one. True when it moved the widget's value there: then create the widget without
    a default value (Session State holds it)."""
    mark = f"{key}__newest"  # the newest option of the page's last run
    seen = st.session_state.get(mark)
    st.session_state[mark] = newest
    if seen is None or seen == newest or seen not in options or st.session_state.get(key) != seen:
        return False
    st.session_state[key] = newest
    return True


def job_status_line(job) -> str:
    """One line about a job: what, its status and, while it runs, its stage in words, progress and ETAs."""
    if job is None:
        return ""
    parts = [f"job {job.id} · {KINDS.get(job.kind, job.kind)} · **{job.status}**"]
    if job.status in ("succeeded", "failed", "cancelled"):
        return " · ".join(parts)  # a finished job's last stage and step counts are history, not progress
    if job.stage:
        base, paren, rest = job.stage.partition(" (")  # e.g. "meta (round 2)"
        parts.append(STAGES.get(base, base.replace("_", " ")) + paren + rest)
    if job.total:
        parts.append(f"{job.step}/{job.total}")
    if job.eta_seconds is not None and job.status == "running":
        parts.append(f"ETA {fmt_seconds(job.eta_seconds)} for this stage")
    if job.run_eta_seconds is not None and job.status == "running":
        parts.append(f"about {fmt_seconds(job.run_eta_seconds)} left in the run")
    return " · ".join(parts)


def job_progress(job) -> None:
    """A running job's line (`job_status_line`), its progress bar and its last message."""
    st.write(job_status_line(job))
    if job.total:
        st.progress(min(1.0, (job.step or 0) / job.total))
    if job.message:
        st.caption(job.message)


def fmt_seconds(s: float) -> str:
    s = int(s)
    return f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"


def trains_adapters(method: str) -> bool:
    """Whether runs of `method` have adapter checkpoints (rounds to chart, a model to export and predict with)."""
    return method in methods.REGISTRY and methods.get(method).trains_adapters


def self_trains(method: str) -> bool:
    """Whether runs of `method` have rounds of pseudo-labels (the Inspect page, the data export's pseudo-labels)."""
    return method in methods.REGISTRY and methods.get(method).self_training


@st.cache_data(show_spinner=False)
def mlm_head(backbone: str) -> bool | None:
    """Whether the backbone has a pretrained MLM head (from its safetensors header, no torch); None when that cannot
    be told (an unreadable folder, a hub id not on disk)."""
    try:
        return has_mlm_head(backbone)
    except Exception:  # an unreadable folder: the pages that load it report it
        return None


def kept_model_missing(run: Run) -> bool:
    """A finished run without adapters whose fitted model is not on disk (a baseline run made before runs kept one,
    or a deleted folder): nothing to predict or export with."""
    if trains_adapters(run.method):
        return False
    return not run.checkpoint_dir or not (Path(run.checkpoint_dir) / KEPT_MODEL_DIR).is_dir()


def export_formats(method: str) -> list[str]:
    """The formats a finished run of `method` exports to (none for a method that keeps no model)."""
    return list(methods.get(method).exports) if method in methods.REGISTRY else []


def plot_text(text: str) -> str:
    """User text shown in a plotly chart (legends, titles), which renders some HTML tags (`<a href>`, `<b>`): as
    entities, so it is shown as typed."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def md_escape(text: str) -> str:
    """User text shown through markdown, with markdown's special characters escaped; ':' and '@' too, so a bare URL
    or e-mail address in the data is not autolinked (GFM links `http://`, `www.` and `a@b.c` without brackets). An
    underscore or a hyphen between two letters or digits stays as it is: neither starts emphasis, a list or a rule
    there, and a label such as `not_entailment` or `sci-fi` keeps its plain name where the text is also an
    accessible name (widget labels)."""
    out = []
    for i, ch in enumerate(text):
        intraword = ch in "_-" and 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
        out.append("\\" + ch if ch in "\\`*_{}[]()#+-.!|<>$~:@" and not intraword else ch)
    return "".join(out)


def without_front_matter(markdown: str) -> str:
    """A model card without its YAML header (`---` ... `---`: metadata for the Hugging Face Hub), which markdown
    would show as a rule and a run-on line of keys."""
    if markdown.startswith("---\n"):
        end = markdown.find("\n---\n", 4)
        if end != -1:
            return markdown[end + 5 :].lstrip("\n")
    return markdown


STAGE_NAMES = {
    "pseudo_label": "pseudo-labels",
    "finetune": "gold tuning",
    "fit": "fitting",
    "probe": "fit on frozen features",
    "views": "choosing the layers",
    "teacher": "gold epochs",
    "pool_labels": "labels for the pool",
    "lexical": "lexical view",
}


# (field, what, format) of a round's facts that are one number, in the order they are shown
ROUND_NUMBERS = (
    ("eval_accuracy", "accuracy on the evaluation split", "{:.1%}"),
    ("eval_ece", "calibration error on the evaluation split", "{:.3f}"),
    ("gold_accuracy", "accuracy on the gold labels (trained on)", "{:.1%}"),
    ("loss", "gold loss (last epoch)", "{:.3f}"),
    ("prompt_gold_accuracy", "the prompt alone on the gold labels", "{:.1%}"),
)
PSEUDO_LABEL_NUMBERS = (
    ("mean_confidence", "their mean confidence", "{:.2f}"),
    ("flip_rate", "flipped since the last round", "{:.1%}"),
)


def round_facts(m) -> list[dict[str, str]]:
    """A round's record (`list_core.records.RoundRecord`) as named facts for a table, leaving out what the round
    did not measure."""
    numbers = lambda spec: [(w, f.format(v)) for k, w, f in spec if (v := getattr(m, k)) is not None]  # noqa: E731
    facts = numbers(ROUND_NUMBERS)
    if m.prompt_weight is not None:
        facts.append(("the prompt's pseudo-labels weigh as", f"{m.prompt_weight:.1f} gold labels (evidence it beats "
                      f"chance {m.prompt_evidence:.2f})"))  # fmt: skip
    if m.teacher_views and len(m.teacher_views) > 1:  # one view (a backbone shallower than them all): no ensemble
        *rest, last = m.teacher_views
        facts.append(("the teacher's views", f"its rule fitted on the top {', '.join(map(str, rest))} and {last} "
                      "layers apart, averaged"))  # fmt: skip
    if m.feature_layers is not None:  # the run chose the layers its head reads, on the gold labels
        tried = ", ".join(f"top {n}: {a:.0%}" for n, a in m.view_accuracy.items())
        facts.append(("layers the head reads", f"the top {m.feature_layers} (chosen by the teacher's k-fold accuracy "
                      f"on the gold labels: {tried})"))  # fmt: skip
    if m.pseudo_label_counts:
        counts = ", ".join(f"{c} {n:,}" for c, n in m.pseudo_label_counts.items())
        facts.append(("pseudo-labels", f"{sum(m.pseudo_label_counts.values()):,} ({counts})"))
    if m.pseudo_label_view:
        facts.append(("pseudo-labels from two views", f"{m.pseudo_label_view:.0%} a word and bigram classifier's, "
                      "cross-fitted on the previous model's labels of the pool (lexical_rounds)"))  # fmt: skip
    facts += numbers(PSEUDO_LABEL_NUMBERS)
    if m.confident is not None:
        steps = m.warmup_steps or 0
        facts.append(
            ("confident ones in the KD warm-up", f"{m.confident:,} ({steps:,} step{'' if steps == 1 else 's'})")
        )
    if m.student_steps is not None:  # runs recorded before it was kept do not show it
        facts.append(("student steps", f"{m.student_steps:,} ({m.student_passes:.1f} passes over the pseudo-labels)"))
    w = m.weights
    if w.count:
        facts.append(("meta-weights", f"{w.count:,} draws: mean {w.mean:.3f}, max {w.max:.3f}, {w.zero_fraction:.1%} "
                      f"zero; {m.zero_weight_steps or 0:,} steps all zero"))  # fmt: skip
    if m.final_mix:
        facts.append(
            ("final model", f"its weights moved {m.final_mix:.0%} of the way back to the teacher's (final_mix)")
        )
    if m.lexical_weight:
        facts.append(("lexical view", f"the final probabilities are {1 - m.lexical_weight:.0%} the model's and "
                      f"{m.lexical_weight:.0%} a word and bigram classifier's ({m.lexical_vocabulary or 0:,} of them, "
                      "fitted on the pool's latest pseudo-labels)"))  # fmt: skip
    if m.seconds:
        stages = ", ".join(f"{STAGE_NAMES.get(k, k.replace('_', ' '))} {v:.0f}" for k, v in m.seconds.items())
        facts.append(("time", f"{sum(m.seconds.values()):.0f} s ({stages})"))
    return [{"what": what, "value": value} for what, value in facts]


def rounds_table(records: list) -> list[dict[str, str]]:
    """Every round's facts side by side: a row per fact, a column per round (round 0 is the teacher)."""
    per_round = {("teacher" if m.round == 0 else f"round {m.round}"): {f["what"]: f["value"] for f in round_facts(m)}
                 for m in records}  # fmt: skip
    whats: list[str] = []  # a fact new in a later round goes just above the next one it has in its own list
    for facts in per_round.values():
        keys = list(facts)
        for i, w in enumerate(keys):
            if w not in whats:
                below = next((k for k in keys[i + 1 :] if k in whats), None)
                whats.insert(whats.index(below) if below is not None else len(whats), w)
    return [{"what": w, **{col: facts.get(w, "") for col, facts in per_round.items()}} for w in whats]
