"""Train: preset and method, start and cancel, live progress, run history, and two runs side by side."""

import json

import streamlit as st

import storage
from list_core.config import TrainConfig, preset
from storage import jobs as jobq
from storage import runs as runq
from ui.common import db, fmt_seconds, job_status_line, require_project, run_safely

METHODS = {
    "list": "LiST (self-training with meta-reweighting)",
    "prompt": "Prompt fine-tuning (adapters, no self-training)",
    "classic": "Classic fine-tuning (adapters, linear head)",
    "self-train-probe": "Self-trained linear probe (baseline)",
    "linear-probe": "Linear probe on frozen features (baseline)",
    "zero-shot": "Zero-shot prompt (no training)",
}

conn = db()
project = require_project()
st.title("Train")

c1, c2, c3 = st.columns(3)
preset_name = c1.selectbox("Preset", ["fast", "paper", "custom"], key="tr_preset",
                           help="fast: scaled for a CPU; paper: the LiST paper's settings; custom: edit below")  # fmt: skip
method = c2.selectbox("Method", list(METHODS), format_func=METHODS.get, key="tr_method")
seed = c3.number_input("Seed", 0, 2**31 - 1, 42, key="tr_seed")

overrides: dict = {}
base = preset("fast" if preset_name == "custom" else preset_name)
with st.expander("Settings", expanded=preset_name == "custom"):
    cols = st.columns(4)
    fields = [("rounds", int), ("student_steps", int), ("teacher_epochs", int), ("finetune_epochs", int),
              ("teacher_lr", float), ("student_lr", float), ("finetune_lr", float), ("tau", float),
              ("warmup_fraction", float), ("unlabeled_limit", int), ("max_length", int),
              ("probe_self_train", int)]  # fmt: skip
    for i, (name, kind) in enumerate(fields):
        value = getattr(base, name)
        shown = cols[i % 4].text_input(name, value="" if value is None else str(value), key=f"tr_{name}",
                                       disabled=preset_name != "custom")  # fmt: skip
        if preset_name == "custom":
            try:
                parsed = None if shown.strip() in ("", "None") else kind(shown)
            except ValueError:
                st.error(f"{name}: {shown!r} is not a number")
                st.stop()
            if parsed != value:
                overrides[name] = parsed
    locked = preset_name != "custom"  # settings are read-only unless the preset is custom
    choices = {
        "head": (["auto", "prompt", "classic", "probe"], "auto: prompt head with a pretrained MLM head, else probe"),
        "kd_selection": (["tau", "class_median"], "KD warm-up examples: confidence > tau (paper), or per class "
                         "at or above its median confidence (class-balanced)"),
        "meta_similarity": (["dot", "cosine"], "meta-weight: gradient dot product (paper) or cosine"),
    }  # fmt: skip
    for i, (name, (options, why)) in enumerate(choices.items()):
        value = getattr(base, name)
        picked = cols[i].selectbox(name, options, index=options.index(value), key=f"tr_{name}", help=why,
                                   disabled=locked)  # fmt: skip
        if not locked and picked != value:
            overrides[name] = picked
    bottleneck = cols[3].number_input("adapter bottleneck", 1, 4096, base.adapter.bottleneck, key="tr_bottleneck",
                                      disabled=locked)  # fmt: skip
    if not locked and bottleneck != base.adapter.bottleneck:
        overrides["adapter"] = {"bottleneck": int(bottleneck)}

counts = storage.class_counts(conn, project.id)
st.caption(f"Gold labels: {', '.join(f'{lab} {n}' for lab, n in zip(project.labels, counts))}")
if st.button("Start run", key="tr_start", type="primary"):
    out = run_safely(runq.start_run, conn, project.id, method, preset_name, int(seed), overrides)
    if out:
        st.success(f"Run {out[0].id} queued.")


@st.fragment(run_every=2)
def live() -> None:
    jobs = [j for j in jobq.list_jobs(conn, project.id, limit=10) if j.kind == "list_run" and not j.done]
    if not jobs:
        return
    st.subheader("Running")
    for job in jobs:
        st.write(job_status_line(job))
        if job.total:
            st.progress(min(1.0, (job.step or 0) / job.total))
        if job.message:
            st.caption(job.message)
        if job.status == "running" and st.button("Cancel", key=f"tr_cancel_{job.id}"):
            jobq.request_cancel(conn, job.id)
            st.toast(f"Cancelling job {job.id}…")


live()

st.divider()
st.subheader("Run history")
runs = runq.list_runs(conn, project.id)
if not runs:
    st.info("No run yet.")
    st.stop()
hist = []
for r in runs:
    m = r.metrics or {}
    hist.append({"run": r.id, "method": r.method, "preset": r.preset, "status": r.status, "seed": r.seed,
                 "head": r.head, "gold": len(r.gold_snapshot),
                 "gold acc": m.get("gold_accuracy"), "eval acc": m.get("eval_accuracy"),
                 "time": fmt_seconds(sum(m.get("stage_seconds", {}).values())) if m.get("stage_seconds") else "",
                 "created": r.created_at[:19]})  # fmt: skip
st.dataframe(hist, key="tr_history", hide_index=True)
failed = [r for r in runs if r.status == "failed" and r.job_id]
if failed:
    with st.expander(f"Why run {failed[0].id} failed"):
        st.code(jobq.get_job(conn, failed[0].job_id).error or "", language=None)

st.subheader("Compare two runs")
ids = [r.id for r in runs]
a, b = st.columns(2)
ra = a.selectbox("Run A", ids, key="tr_cmp_a")
rb = b.selectbox("Run B", ids, index=min(1, len(ids) - 1), key="tr_cmp_b")
for col, rid in ((a, ra), (b, rb)):
    r = runq.get_run(conn, rid)
    cfg = TrainConfig.from_dict(r.config)
    diff = {k: v for k, v in cfg.to_dict().items() if v != TrainConfig().to_dict().get(k)}
    col.write(f"**Run {r.id}** · {r.method} · {r.preset} · {r.status}")
    col.json({"metrics": {k: v for k, v in (r.metrics or {}).items() if not isinstance(v, dict | list)},
              "settings (differences from paper)": json.loads(json.dumps(diff)),
              "gold snapshot": f"{len(r.gold_snapshot)} labels"}, expanded=False)  # fmt: skip
