"""Rounds: how a run evolved — accuracy, pseudo-label classes, meta-weights, flips, weight vs confidence."""

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from list_core.records import RoundRecord
from list_core.teacher import prompt_looks_wrong
from storage import jobs as jobq
from storage import runs as runq
from ui.common import (
    db,
    follow_newest,
    job_progress,
    md_escape,
    plot_text,
    require_project,
    rerun_when_changed,
    rounds_table,
    run_safely,
    trains_adapters,
)


def whole_rounds(fig):
    """Rounds are whole numbers: one tick per round, never 1.5."""
    return fig.update_xaxes(tickmode="linear", dtick=1)


conn = db()
project = require_project()
st.title("Rounds")

runs = [r for r in runq.list_runs(conn, project.id) if trains_adapters(r.method)]
if not runs:
    st.info("No adapter run yet: start one on the Train page (it shows here as it starts).")
    rerun_when_changed(lambda: [r.id for r in runq.list_runs(conn, project.id)])
    st.stop()
# bound to the URL (?run=Run 2 · list&round=3): a reload, a second tab or a link shows the same run and round;
# a page on the newest run moves to a run started meanwhile (in another tab)
follow_newest("run", runs[0].id, [r.id for r in runs])
run_id = st.selectbox("Run", [r.id for r in runs], key="run", bind="query-params",
                      format_func=lambda i: next(f"{r.label} · {r.method}" for r in runs if r.id == i))  # fmt: skip
run = next(r for r in runs if r.id == run_id)
st.caption(f"Status: {run.status}")


def progress() -> None:
    """The shown run's stage and progress while it trains (its rounds appear below as they finish)."""
    job = jobq.get_job(conn, run.job_id) if run.job_id is not None and run.status in ("queued", "running") else None
    if job is not None and not job.done:
        job_progress(job)


# the page follows the worker: a round that finishes, a run that ends or starts shows without a reload
rerun_when_changed(lambda: ([(r.id, r.status) for r in runq.list_runs(conn, project.id) if trains_adapters(r.method)],
                            sorted(runq.round_numbers(conn, run_id))), show=progress)  # fmt: skip
rounds = [RoundRecord.from_dict(m) for m in runq.rounds(conn, run_id)]  # the engine's typed record
if not rounds:
    st.info("This run has no completed round yet.")
    st.stop()

teacher = rounds[0] if rounds[0].round == 0 else None
if teacher and teacher.prompt_evidence is not None and prompt_looks_wrong(teacher.prompt_evidence):
    st.warning(f"The prompt was right on {teacher.prompt_gold_accuracy:.0%} of the gold labels, less often than "
               f"guessing would be ({1 / len(project.labels):.0%}): its label words may be attached to the wrong "
               "classes. The teacher left it out (it learned from the gold labels alone) and every student "
               + ("started from the teacher's fit instead of the verbalisers"
                  if teacher.students_start == "teacher" else "started from its verbalisers")
               + ": check the label words on the Prompt page (it offers them re-matched to the classes) and train "
               "again.")  # fmt: skip
xs = [m.round for m in rounds]
fig = go.Figure()
for key, name in (
    ("gold_accuracy", "gold (training labels)"),
    ("eval_accuracy", "evaluation split"),
    ("eval_ece", "calibration error (evaluation split; 0 = confidence means what it says)"),
):
    ys = [getattr(m, key) for m in rounds]
    if any(y is not None for y in ys):
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=name))
fig.update_layout(
    title="Accuracy and calibration per round (0 = teacher)",
    xaxis_title="round",
    yaxis_title="share",
    yaxis_range=[0, 1],
)
st.plotly_chart(whole_rounds(fig), key="rd_acc")
kept = (run.metrics or {}).get("chosen_round")
metrics = run.metrics or {}
if kept is not None:
    st.caption(f"This run keeps round {kept} for export and prediction: {metrics.get('chosen_because', '')}.")
    if metrics.get("eval_ece_calibrated") is not None:
        st.caption(f"Its confidence is calibrated on the evaluation split (temperature {metrics['temperature']:.2f}): "
                   f"expected calibration error {metrics.get('eval_ece') or 0:.3f} before, "
                   f"{metrics['eval_ece_calibrated']:.3f} after (each half scored with the other half's fit).")  # fmt: skip
    else:
        st.caption("Its confidence is not calibrated: import an evaluation split (labeled data it does not train on) "
                   "for that.")  # fmt: skip
    teacher_keepable = run.status == "succeeded" and kept != 0 and rounds[0].round == 0
    if teacher_keepable and st.button("Keep the teacher (round 0) instead", key="rd_keep_teacher"):
        run_safely(
            runq.keep_round, conn, run_id, 0, success=f"{run.label.capitalize()} now keeps the teacher (round 0)."
        )

# a static table: its cells wrap, where a data grid cut the long ones (time per stage, meta-weights) at its width;
# its cells are markdown, and class names are the user's
st.table([{k: md_escape(v) for k, v in row.items()} for row in rounds_table(rounds)], hide_index=True)

later = [m for m in rounds if m.round >= 1]
if not later:
    st.caption("No self-training round in this run.")
    st.stop()
dist = [{"round": m.round, "class": plot_text(c), "count": n} for m in later for c, n in m.pseudo_label_counts.items()]
c1, c2 = st.columns(2)
c1.plotly_chart(whole_rounds(px.bar(dist, x="round", y="count", color="class", title="Pseudo-label classes")),
                key="rd_dist")  # fmt: skip
c2.plotly_chart(whole_rounds(px.line(x=[m.round for m in later], y=[m.flip_rate for m in later], markers=True,
                                     labels={"x": "round", "y": "share flipped"},
                                     title="Pseudo-labels that flipped since the last round")), key="rd_flips")  # fmt: skip

moved = follow_newest("round", later[-1].round, [m.round for m in later])  # a new round shows, unless you chose one
rnd = st.select_slider("Round", [m.round for m in later], value=None if moved else later[-1].round, key="round",
                       bind="query-params")  # fmt: skip
pls = runq.pseudo_labels(conn, run_id, rnd, limit=5000)
weighted = [p for p in pls if p.weight is not None]
c3, c4 = st.columns(2)
if weighted:
    c3.plotly_chart(px.histogram(x=[p.weight for p in weighted], nbins=40, labels={"x": "mean meta-weight"},
                                 title=f"Meta-weights, round {rnd}"), key="rd_hist")  # fmt: skip
    c4.plotly_chart(px.scatter(x=[p.confidence for p in weighted], y=[p.weight for p in weighted],
                               color=[plot_text(project.labels[p.label]) for p in weighted],
                               labels={"x": "teacher confidence", "y": "meta-weight", "color": "pseudo-label"},
                               title="Weight against teacher confidence"), key="rd_scatter")  # fmt: skip
else:
    st.caption("No meta-weights in this round (meta-reweighting was off or had no steps).")
m = next(m for m in later if m.round == rnd)
keep_label = f"Keep round {rnd} instead (exports and predictions use it)"
if run.status == "succeeded" and kept is not None and rnd != kept and st.button(keep_label, key="rd_keep"):
    run_safely(runq.keep_round, conn, run_id, rnd, success=f"{run.label.capitalize()} now keeps round {rnd}.")
