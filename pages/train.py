"""Train: preset and method, start and cancel, live progress, run history, and two runs side by side."""

import json
import os

import streamlit as st

import storage
from list_core import methods
from list_core.config import TrainConfig, preset
from storage import jobs as jobq
from storage import runs as runq
from ui import actions
from ui.common import db, fmt_seconds, job_progress, md_escape, mlm_head, require_project, run_safely

conn = db()
project = require_project()
st.title("Train")

c1, c2, c3 = st.columns(3)
preset_name = c1.selectbox("Preset", ["fast", "paper", "custom"], key="tr_preset",
                           help="fast: scaled for a CPU; paper: the LiST paper's settings; custom: edit below")  # fmt: skip
usable = [m for m, spec in methods.REGISTRY.items() if project.task in spec.tasks]  # e.g. pair-only baselines
# a pair task on a sentence encoder: every prompt-based method is near chance there, the pair-similarity rule is not
pair_on_encoder = project.task == "pair" and mlm_head(project.backbone) is False and "pair-similarity" in usable
method_name = c2.selectbox("Method", usable, key="tr_method", format_func=lambda m: methods.REGISTRY[m].title,
                           index=usable.index("pair-similarity") if pair_on_encoder else 0)  # fmt: skip
method = methods.get(method_name)
seed = c3.number_input("Seed", 0, 2**31 - 1, 42, key="tr_seed")
st.caption(method.help)
if pair_on_encoder:
    st.caption("Chosen for a pair task on this backbone (a sentence encoder): on rte the pair-similarity rule is right "
               "62% of the time with 30 labeled pairs, where LiST and every prompt-based method are near 50% "
               "(BENCHMARKS.md). Other methods stay selectable.")  # fmt: skip

# the form is generated from list_core.config: every setting that applies to this method, with its help text
overrides: dict = {}
base = preset("fast" if preset_name == "custom" else preset_name)
locked = preset_name != "custom"  # settings are read-only unless the preset is custom
with st.expander("Settings", expanded=not locked):
    cols = st.columns(4)
    for i, k in enumerate(kn for kn in method.knobs() if kn.name != "seed"):
        value = getattr(base.adapter, k.name.split(".")[1]) if k.name.startswith("adapter.") else getattr(base, k.name)
        col, key = cols[i % 4], f"tr_{k.name}"
        if k.choices:
            picked = col.selectbox(k.name, list(k.choices), index=list(k.choices).index(value), key=key, help=k.help,
                                   disabled=locked)  # fmt: skip
        elif k.type is bool:
            picked = col.checkbox(k.name, value=value, key=key, help=k.help, disabled=locked)
        else:
            shown = col.text_input(k.name, value="" if value is None else str(value), key=key, help=k.help,
                                   disabled=locked)  # fmt: skip
            try:
                picked = k.parse(shown) if not locked else value
            except ValueError as e:
                col.error(str(e))
                picked = value
                overrides["__invalid__"] = True
        if not locked and picked != value:
            overrides[k.name] = picked
    if not locked and not overrides.get("__invalid__"):
        try:  # values valid one by one can still clash (e.g. teacher_views and feature_layers)
            base.with_knobs(overrides)
        except (TypeError, ValueError) as e:
            st.error(md_escape(f"These settings cannot run together: {e}"))
            overrides["__invalid__"] = True

counts = storage.class_counts(conn, project.id)
st.caption(md_escape(f"Gold labels: {', '.join(f'{lab} {n}' for lab, n in zip(project.labels, counts))}"))
alongside = st.checkbox("Allow this run alongside an active one", key="tr_alongside",
                        help="by default a project has one queued or running run at a time")  # fmt: skip
with st.expander("Cluster (optional)"):
    default_address = os.environ.get("LIST_RAY_ADDRESS", "")
    ray_address = st.text_input("Ray cluster address", value=default_address, key="tr_ray", placeholder="empty: the "
                                "worker's own machine", help="the run's pseudo-labeling of the pool and its "
                                "suggestions run on this Ray cluster ('auto', host:port or ray://host:port; "
                                "'local' starts one on the worker's machine). README: More than one machine")  # fmt: skip
if st.button("Start run", key="tr_start", type="primary", disabled=bool(overrides.pop("__invalid__", False))):
    out = run_safely(actions.start_run, conn, project.id, method_name, preset_name, int(seed), overrides, alongside,
                     ray_address)  # fmt: skip
    if out:
        st.success(f"{out[0].label.capitalize()} queued.")
        st.session_state.setdefault("tr_watch", set()).add(out[1].id)

for note in st.session_state.pop("tr_notices", []):  # runs that ended since the last full rerun
    {"succeeded": st.success, "failed": st.error, "queued": st.info}.get(note["status"], st.warning)(note["text"])


def statuses(runs: list) -> list[tuple[int, str]]:
    return [(r.id, r.status) for r in runs]


runs = runq.list_runs(conn, project.id)
st.session_state["tr_shown"] = statuses(runs)  # what the run history below shows


@st.fragment(run_every=2)
def live() -> None:
    """Running jobs with progress; when a watched job ends, announce it and refresh the whole page; when any run's
    status changes (it starts, or another tab starts or resumes one), refresh the page so its history is current."""
    watch: set[int] = st.session_state.setdefault("tr_watch", set())
    recent = [j for j in jobq.list_jobs(conn, project.id, limit=20) if j.kind == "list_run"]
    ended = [j for j in recent if j.done and j.id in watch]
    if ended:
        for j in ended:
            watch.discard(j.id)
            run = next((r for r in runq.list_runs(conn, project.id) if r.job_id == j.id), None)
            acc = (run.metrics or {}).get("eval_accuracy") if run else None
            text = f"{run.label.capitalize() if run else 'A run'} finished: {j.status}" + (
                f" · evaluation accuracy {acc:.1%}" if acc is not None else ""
            )
            st.session_state.setdefault("tr_notices", []).append({"status": j.status, "text": text})
        st.rerun(scope="app")
    if statuses(runq.list_runs(conn, project.id)) != st.session_state.get("tr_shown"):
        st.rerun(scope="app")
    jobs = [j for j in recent if not j.done]
    watch |= {j.id for j in jobs}
    if not jobs:
        return
    st.subheader("Running")
    for job in jobs:
        job_progress(job)
        if st.button("Cancel", key=f"tr_cancel_{job.id}"):  # a queued job is cancelled at once
            jobq.request_cancel(conn, job.id)
            st.toast(f"Cancelling job {job.id}…")


live()

st.divider()
st.subheader("Run history")
if not runs:
    st.info("No run yet.")
    st.stop()
hist = []
for r in runs:
    m = r.metrics or {}
    hist.append({"run": r.number or r.id, "method": r.method, "preset": r.preset, "status": r.status, "seed": r.seed,
                 "head": r.head or "—", "gold": len(r.gold_snapshot),
                 "gold acc": m.get("gold_accuracy"), "eval acc": m.get("eval_accuracy"),
                 "time": fmt_seconds(sum(m.get("stage_seconds", {}).values())) if m.get("stage_seconds") else "",
                 "created": r.created_at[:19]})  # fmt: skip
st.dataframe(hist, key="tr_history", hide_index=True,
             column_config={k: st.column_config.NumberColumn(k, format="percent") for k in ("gold acc", "eval acc")})  # fmt: skip
stopped = [r for r in runs if r.status in ("failed", "cancelled")]
if stopped:
    with st.expander(
        f"Failed or cancelled runs ({len(stopped)}): why, and resume", expanded=stopped[0].id == runs[0].id
    ):
        names = {r.id: f"{r.label} ({r.status})" for r in stopped}
        rid = st.selectbox("Run", list(names), format_func=names.get, key="tr_stopped")
        r = next(x for x in stopped if x.id == rid)
        error = jobq.get_job(conn, r.job_id).error if r.job_id else None
        if error:
            st.code(error, language=None)
        done = sorted(runq.round_numbers(conn, r.id))
        total = int(r.config.get("rounds", 0))
        if r.inputs is None:
            st.caption("Started before runs kept a snapshot of their inputs: it cannot be resumed; start a new run.")
        else:
            if getattr(methods.REGISTRY.get(r.method), "trains_adapters", False) and done:
                where = (f"continues after its last checkpointed round (round {done[-1]} of {total} is stored; "
                         "0 is the teacher)" if total else "continues from its checkpoint")  # fmt: skip
            else:
                where = "starts over"
            st.caption(f"Resuming {r.label} {where}, on the inputs, settings and seed it started with: it ends as it "
                       "would have without the interruption. Its old job keeps the error above.")  # fmt: skip
            if st.button(f"Resume {r.label}", key="tr_resume"):
                out = run_safely(runq.resume_run, conn, r.id, alongside)
                if out:
                    st.session_state.setdefault("tr_watch", set()).add(out[1].id)
                    st.session_state.setdefault("tr_notices", []).append(
                        {"status": "queued", "text": f"{r.label.capitalize()} queued again: it resumes when the worker "
                                                     "takes it."})  # fmt: skip
                    st.rerun()


def _inputs(r) -> dict:
    """What the run saw, fixed when it was started."""
    if r.inputs is None:
        return {"gold labels": len(r.gold_snapshot), "note": "started before input snapshots were kept"}
    return {"gold labels": len(r.gold_snapshot), "unlabeled examples": r.unlabeled_count,
            "evaluation examples": len(r.inputs["eval"]), "rejected examples": len(r.inputs["rejected"]),
            "inputs sha256": r.inputs["sha256"][:16]}  # fmt: skip


st.subheader("Compare two runs")
if len(runs) < 2:
    st.caption("With a second run, its settings, metrics and inputs show here beside this one's.")
    st.stop()
labels = {r.id: r.label for r in runs}
a, b = st.columns(2)
ra = a.selectbox("Run A", list(labels), format_func=labels.get, key="tr_cmp_a")
rb = b.selectbox("Run B", list(labels), index=1, format_func=labels.get, key="tr_cmp_b")
for col, rid in ((a, ra), (b, rb)):
    r = runq.get_run(conn, rid)
    cfg = TrainConfig.from_dict(r.config)
    diff = {k: v for k, v in cfg.to_dict().items() if v != TrainConfig().to_dict().get(k)}
    col.write(f"**{r.label.capitalize()}** · {r.method} · {r.preset} · {r.status}")
    col.json({"metrics": {k: v for k, v in (r.metrics or {}).items() if not isinstance(v, dict | list)},
              "settings (differences from paper)": json.loads(json.dumps(diff)),
              "trained on": _inputs(r)}, expanded=False)  # fmt: skip
