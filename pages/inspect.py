"""Inspect: the pseudo-labels of a run's round; accept as gold, correct, or reject them."""

import streamlit as st

from list_core import methods
from storage import labels as labq
from storage import runs as runq
from storage.queue import exclude, excluded_ids, include
from ui.common import db, follow_newest, labeler, md_escape, require_project, rerun_when_changed

conn = db()
project = require_project()
st.title("Inspect pseudo-labels")

runs = [
    r for r in runq.list_runs(conn, project.id) if r.method in methods.REGISTRY and methods.get(r.method).self_training
]
if not runs:
    st.info("No LiST run yet: pseudo-labels come from LiST runs (one shows here as it starts).")
    rerun_when_changed(lambda: [r.id for r in runq.list_runs(conn, project.id)], every=3)
    st.stop()
c1, c2 = st.columns(2)
follow_newest("run", runs[0].id, [r.id for r in runs])  # a run started meanwhile shows, unless you chose another
run_id = c1.selectbox("Run", [r.id for r in runs], key="run", bind="query-params",  # ?run=...&round=... in the URL
                      format_func=lambda i: next(f"{r.label} · {r.method}" for r in runs if r.id == i))  # fmt: skip
# a round that finishes, or a run that starts, shows without a reload (the labels you give are written at once)
rerun_when_changed(lambda: ([r.id for r in runq.list_runs(conn, project.id)], sorted(runq.round_numbers(conn, run_id))),
                   every=3)  # fmt: skip
rounds = sorted(r for r in runq.round_numbers(conn, run_id) if r >= 1)
if not rounds:
    st.info("This run has no pseudo-labels yet: they appear here as its rounds finish.")
    st.stop()
moved = follow_newest("round", rounds[-1], rounds)
rnd = c2.selectbox("Round", rounds, index=None if moved else len(rounds) - 1, key="round", bind="query-params")

f1, f2, f3, f4 = st.columns(4)
cls = f1.selectbox("Class", ["all", *project.labels], key="in_class")
conf = f2.slider("Confidence", 0.0, 1.0, (0.0, 1.0), key="in_conf")
flip = f3.selectbox("Flipped", ["all", "flipped", "stable"], key="in_flip")
sort = f4.selectbox("Sort by", ["weight", "weight_asc", "confidence", "confidence_asc", "example"], key="in_sort",
                    format_func={"weight": "weight ↓", "weight_asc": "weight ↑", "confidence": "confidence ↓",
                                 "confidence_asc": "confidence ↑", "example": "example"}.get)  # fmt: skip
page = st.number_input("Page", 1, 10_000, 1, key="in_page")
pls = runq.pseudo_labels(
    conn, run_id, rnd, label=None if cls == "all" else project.labels.index(cls),
    flipped={"all": None, "flipped": True, "stable": False}[flip], min_confidence=conf[0], max_confidence=conf[1],
    sort=sort, offset=(page - 1) * 20, limit=20,
)  # fmt: skip
st.caption(f"{runq.count_pseudo_labels(conn, run_id, rnd):,} pseudo-labels in this round; showing {len(pls)}")
rejected = excluded_ids(conn, project.id)


def correct(example_id: int, key: str) -> None:
    """Label once, when the choice is made (a callback: reruns never re-apply it), then reset the widget."""
    choice = st.session_state[key]
    if choice is not None:
        labq.set_label(conn, example_id, project.labels.index(choice), by=labeler(), reason="correct_pseudo")
        st.toast(md_escape(f"Example {example_id} labeled {choice}"))
        st.session_state[key] = None


for p in pls:
    with st.container(border=True):
        a, b = st.columns([5, 3])
        a.markdown(md_escape(p.text))
        gold = f" · gold: **{md_escape(project.labels[p.gold])}**" if p.gold is not None else ""
        a.caption(f"pseudo-label **{md_escape(project.labels[p.label])}** · confidence {p.confidence:.2f} · "
                  f"weight {'—' if p.weight is None else f'{p.weight:.4f}'}{' · flipped' if p.flipped else ''}{gold}"
                  f"{' · rejected' if p.example_id in rejected else ''}")  # fmt: skip
        k = f"{run_id}_{rnd}_{p.example_id}"
        if b.button("Accept as gold", key=f"in_acc_{k}"):
            labq.set_label(conn, p.example_id, p.label, by=labeler(), reason="accept_pseudo")
            st.rerun()
        b.selectbox("Correct to", project.labels, index=None, placeholder="Correct to…", key=f"in_fix_{k}",
                    label_visibility="collapsed", on_change=correct, args=(p.example_id, f"in_fix_{k}"))  # fmt: skip
        if p.example_id in rejected:
            if b.button("Restore", key=f"in_rej_{k}", help="put this example back into the next runs' unlabeled pool"):
                include(conn, p.example_id)
                st.rerun()
        elif b.button("Reject", key=f"in_rej_{k}", help="leave this example out of the next runs' unlabeled pool"):
            exclude(conn, p.example_id, project.id)
            st.rerun()
