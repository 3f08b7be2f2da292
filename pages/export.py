"""Export the adapter (with its model card) and the labeled data; predict typed texts or a whole file."""

import csv
import io
import shutil
import tempfile
from pathlib import Path

import streamlit as st

import storage
from list_core.config import EXPORT_FORMATS
from storage import exports as exportq
from storage import jobs as jobq
from storage import predictions as predq
from storage import runs as runq
from storage.importers import ImportFileError, check_distinct_columns, read_table, upload_limit_mb
from ui.common import (
    db,
    export_formats,
    job_status_line,
    kept_model_missing,
    md_escape,
    require_project,
    run_safely,
    self_trains,
    text_columns_guess,
    trains_adapters,
    without_front_matter,
)

NO_ADAPTERS = {  # what a run without adapters exports (a baseline: a head on the frozen backbone, or a rule)
    "native": "the head only (kilobytes; no adapters), loaded onto the shared backbone by list_core",
    "folded": "one plain transformers model: the backbone with the head beside it (no adapters to fold)",
    ("pair-similarity", "native"): "the rule's numbers (JSON) and a model card whose snippet uses plain transformers",
}

conn = db()
project = require_project()
st.title("Export & predict")

runs = [r for r in runq.list_runs(conn, project.id) if r.status == "succeeded" and export_formats(r.method)]
run_id = st.selectbox("Run", [r.id for r in runs], key="run", bind="query-params",  # ?run=... in the URL
                      format_func=lambda i: next(f"{r.label} · {r.method} · {r.preset}" for r in runs if r.id == i))  # fmt: skip

st.subheader("Model")
run = next((r for r in runs if r.id == run_id), None)
missing = run is not None and kept_model_missing(run)
if run is None:
    st.info("No finished run yet: the Train page starts one.")
elif missing:
    st.warning(f"{run.label} kept no model (a baseline run made before runs kept theirs, or its folder was deleted): "
               "start the same method again on the Train page to predict and export with it.")  # fmt: skip
else:
    method = run.method
    formats = export_formats(method)
    fmt = st.radio("Format", formats, key="ex_format", horizontal=True,
                   format_func={"native": "native", "peft": "PEFT LoRA", "folded": "folded"}.get)  # fmt: skip
    fmt = fmt if fmt in formats else formats[0]  # the radio's value from a run with more formats
    st.caption(EXPORT_FORMATS[fmt] if trains_adapters(method) else NO_ADAPTERS.get((method, fmt), NO_ADAPTERS[fmt]))
    chosen = run.metrics or {}
    if chosen.get("chosen_round") is not None:
        st.caption(f"Exports round {chosen['chosen_round']}: {chosen.get('chosen_because', '')}. The Rounds page can "
                   "keep another round.")  # fmt: skip
    if st.button("Export model", key="ex_adapter"):
        job = run_safely(
            jobq.enqueue, conn, "export", {"run_id": run_id, "format": fmt}, project.id, success="Export queued."
        )
        if job:
            st.session_state.setdefault("ex_watch", set()).add(job.id)

    # polls only while an export is watched: a timer that reruns for nothing can cancel a download in flight
    @st.fragment(run_every=1 if st.session_state.get("ex_watch") else None)
    def export_jobs() -> None:
        """Shows queued exports; when one ends, the whole page reruns so its download appears at once."""
        watch: set[int] = st.session_state.setdefault("ex_watch", set())
        jobs = [j for j in jobq.list_jobs(conn, project.id, limit=20) if j.kind == "export" and j.id in watch]
        for j in jobs:
            if j.done:
                watch.discard(j.id)
                if j.status == "failed":
                    st.session_state["ex_failed"] = (j.error or "").strip().split("\n")[-1]
                st.rerun(scope="app")
            st.caption(job_status_line(j))

    export_jobs()
    if failed := st.session_state.pop("ex_failed", None):
        st.error(f"The export failed: {md_escape(failed)}")
    arts = [a for a in exportq.artifacts(conn, project.id) if a.run_id == run_id]
    latest = {}
    for a in arts:  # the newest export of each format
        latest.setdefault(a.kind, a)
    for a in latest.values():
        p = Path(a.path)
        # the stored kind says adapter-<format> for every run; a baseline's model has no adapters
        shown = a.kind if trains_adapters(run.method) else a.kind.removeprefix("adapter-")
        if not p.exists():
            st.warning(f"{a.path} is gone from disk")
            continue
        st.download_button(
            f"Download model · {shown} ({a.size / 1024:,.0f} KB, sha256 {a.sha256[:10]}…)",
            lambda p=p: exportq.archive(p).read_bytes(),  # read when clicked, not on every run
            file_name=f"{project.name}-run{run_id}-{shown}.zip",
            mime="application/zip",
            key=f"ex_dl_{a.id}",
            on_click="ignore",
        )  # on_click="ignore": a rerun on the click could cancel the download it starts
        if (p / "README.md").exists():
            with st.expander(f"Model card ({shown})"):
                st.markdown(without_front_matter((p / "README.md").read_text()))

st.subheader("Labeled data")
fmt = st.selectbox("Format", ["csv", "jsonl", "datasets"], key="ex_fmt")
kept = ((run.metrics or {}) if run else {}).get("chosen_round")
pseudo_round = kept if kept else None  # the round the run keeps (round 0, the teacher, has no pseudo-labels: last)
with_pseudo = False  # a run without self-training rounds has no pseudo-labels to offer
if run is not None and self_trains(run.method):
    with_pseudo = st.checkbox(f"Include the run's pseudo-labels (round {pseudo_round})" if pseudo_round else
                              "Include the run's pseudo-labels (last round)", value=True, key="ex_pseudo")  # fmt: skip
if st.button("Prepare download", key="ex_data"):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"data.{fmt}" if fmt != "datasets" else Path(tmp) / "dataset"
        path = run_safely(storage.export_data, conn, project.id, out, fmt, run_id if with_pseudo else None,
                          pseudo_round if with_pseudo else None)  # fmt: skip
        if path:
            data = (
                path.read_bytes() if path.is_file() else Path(shutil.make_archive(str(out), "zip", path)).read_bytes()
            )
            st.session_state["ex_blob"] = (data, path.name if path.is_file() else "dataset.zip")
if "ex_blob" in st.session_state:
    data, name = st.session_state["ex_blob"]
    st.download_button(f"Download {name}", data, file_name=name, key="ex_data_dl", on_click="ignore")

st.divider()
st.subheader("Predict")
if run_id is None or missing:
    st.stop()
text = st.text_area("Type a text" + (" (for pairs: first text, a line with ||, second text)" if project.task == "pair" else ""),
                    key="pr_text")  # fmt: skip
up = st.file_uploader(
    "…or upload a file to predict (CSV, TSV, JSONL, parquet)", key="pr_file", max_upload_size=upload_limit_mb()
)
rows = []
if text.strip():
    if project.task == "pair":
        a, _, b = text.partition("||")
        rows = [{"text_a": a.strip(), "text_b": b.strip()}]
    else:
        rows = [{"text": text.strip()}]
source_rows = None
if up is not None:
    try:
        table = read_table(up.getvalue(), name=up.name)
        guesses = text_columns_guess(project.slots, table.columns, table.records)
        cols = [st.selectbox(f"Column for {s}", table.columns, key=f"pr_col_{s}",
                             index=table.columns.index(guesses[s])) for s in project.slots]  # fmt: skip
        check_distinct_columns(project.slots, cols)
        source_rows = table.records
        # each row keeps its other columns (they come back in the output); rows with an empty text are not sent
        rows = [{**{s: str(r.get(c) or "").strip() for s, c in zip(project.slots, cols)}, "source": r}
                for r in table.records]  # fmt: skip
        empty = sum(not all(r[s] for s in project.slots) for r in rows)
        rows = [r for r in rows if all(r[s] for s in project.slots)]
        if empty:
            st.caption(f"{empty:,} rows with an empty text are skipped.")
    except ImportFileError as e:
        st.error(str(e))
# never disabled: a text typed and the button clicked at once arrive together, where a button still disabled from
# the run before the text was committed dropped that click
if st.button("Predict", key="pr_go"):
    if not rows:
        st.warning("Type a text or upload a file first.")
    else:
        if source_rows is not None:  # a file: its rows travel in their own table, not in the job
            job = run_safely(predq.enqueue_file_prediction, conn, project.id, run_id, rows)
        else:
            job = run_safely(jobq.enqueue, conn, "predict", {"run_id": run_id, "rows": rows}, project.id)
        if job:
            st.session_state["pr_job"] = (job.id, source_rows is not None)


def top_class(probs: list[float]) -> int:
    """The index of the most probable class."""
    return max(range(len(probs)), key=probs.__getitem__)


def prediction_pending() -> bool:
    """A prediction this session asked for that has not ended yet (one whose job is gone, with its project, is
    forgotten)."""
    if "pr_job" not in st.session_state:
        return False
    try:
        return not jobq.get_job(conn, st.session_state["pr_job"][0]).done
    except storage.StoreError:
        del st.session_state["pr_job"]
        return False


polling = prediction_pending()


@st.fragment(run_every=1 if polling else None)  # polls only while the prediction runs
def prediction_result() -> None:
    if "pr_job" not in st.session_state:
        return
    job_id, is_file = st.session_state["pr_job"]
    job = jobq.get_job(conn, job_id)
    if polling and job.done:  # ended: one whole run shows the result and stops the timer
        st.rerun(scope="app")
    st.caption(job_status_line(job))
    if job.status == "failed":
        st.error((job.error or "").split("\n")[0])
    if job.status != "succeeded":
        return
    if not is_file:
        probs = job.result["probs"][0]
        top = top_class(probs)
        st.markdown(f"Prediction: **{md_escape(project.labels[top])}** ({probs[top]:.1%})")
        st.bar_chart({"probability": dict(zip(project.labels, probs))}, horizontal=True, height=60 + 40 * len(probs))
        return
    done = predq.file_predictions(conn, job_id)
    columns = list(done[0][0].get("source") or {s: "" for s in project.slots}) if done else list(project.slots)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([*columns, "prediction", *[f"p_{lab}" for lab in project.labels]])
    counts = [0] * len(project.labels)
    for r, p in done:  # the input's own columns, then the prediction
        src, top = r.get("source") or r, top_class(p)
        counts[top] += 1
        w.writerow([*(src.get(c, "") for c in columns), project.labels[top], *p])
    st.session_state["pr_last_csv"] = buf.getvalue()
    shares = ", ".join(f"{lab} {n:,} ({n / max(1, len(done)):.0%})" for lab, n in zip(project.labels, counts))
    st.success(md_escape(f"Predicted {len(done):,} rows: {shares}."))  # how the file splits, before opening it
    st.download_button(
        "Download predictions.csv", buf.getvalue(), file_name="predictions.csv", key="pr_dl", on_click="ignore"
    )


prediction_result()
