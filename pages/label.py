"""Label: one example at a time with keyboard shortcuts, undo, suggestions, and a table to fix labels."""

import streamlit as st

import storage
from storage import jobs as jobq
from storage.predictions import has_predictions, prediction
from storage.queue import STRATEGIES, has_queue, next_unlabeled
from ui.actions import suggest_from_prompt
from ui.common import db, labeler, md_escape, require_project, rerun_when_changed, run_safely

conn = db()
project = require_project()
st.title("Label")

counts = storage.class_counts(conn, project.id)
has_examples = storage.count_examples(conn, project.id) > 0  # nothing imported yet: no suggestions, ask for a file
per_class = max(1, project.target_gold // len(project.labels))
cols = st.columns(len(project.labels) + 1)
cols[0].metric("Gold labels", f"{sum(counts)} / {project.target_gold}")
for i, (lab, n) in enumerate(zip(project.labels, counts)):
    cols[i + 1].progress(min(1.0, n / per_class), text=f"{md_escape(lab)}: {n} / {per_class}")

left, right = st.columns([3, 1])
with right:
    strategy = st.radio("Next example", STRATEGIES, key="lb_strategy",
                        format_func={"diverse": "diverse first", "uncertain": "most uncertain", "in order": "in order"}.get)  # fmt: skip
    if strategy == "diverse" and not has_queue(conn, project.id):
        if jobq.active_job(conn, project.id, "diversity"):  # an import queued it; until it is done: in order
            st.caption("The worker is ordering the examples (diverse first); until then they come in order.")
        else:
            st.caption("No diversity order yet.")
            if st.button("Compute a diverse order", key="lb_diversity"):
                run_safely(jobq.enqueue, conn, "diversity", {}, project.id, success="Queued: clustering the examples.")
    if has_examples and not has_predictions(conn, project.id):  # in every order
        until = "; until then the examples come in order" if strategy == "uncertain" else ""
        prompt = storage.latest_prompt(conn, project.id)
        if jobq.active_job(conn, project.id, "prompt_suggest"):
            st.caption(f"The worker is writing your prompt's suggestions{until}.")
        elif prompt is None:
            st.caption(f"No suggestions yet{until}: write a prompt on the Prompt workbench (or finish a run) first.")
        else:  # a prompt saved before saving queued them, or whose suggestions were cancelled
            st.caption(f"No suggestions yet{until}.")
            if st.button("Suggest from the prompt", key="lb_suggest") and run_safely(
                suggest_from_prompt, conn, project.id, prompt
            ):
                st.rerun()  # the caption above says at once that the worker is writing them

# Work that changes what this page shows: the order, the suggestions (a prompt scored, a run's predictions). The
# page follows it without a reload; the example on screen stays until you label or skip it (below).
FOLLOWED = ("embed", "diversity", "prompt_suggest", "prompt_eval", "list_run")
if jobq.active_jobs(conn, project.id, FOLLOWED):
    rerun_when_changed(lambda: jobq.active_jobs(conn, project.id, FOLLOWED), every=3)

skipped = tuple(st.session_state.setdefault("lb_skipped", []))


def shown_example():
    """The example on screen: the one shown last while it still waits for a label (a new order or new suggestions
    must not swap it under a click), else the next one by the strategy."""
    pinned = st.session_state.get("lb_shown")  # (project, strategy, example)
    if pinned and pinned[:2] == (project.id, strategy) and pinned[2] not in skipped:
        e = storage.get_example(conn, pinned[2])
        if e is not None and e.project_id == project.id and e.split == "pool" and e.gold is None:
            return e
    return next_unlabeled(conn, project.id, strategy, skipped)


ex = shown_example()
st.session_state["lb_shown"] = (project.id, strategy, ex.id) if ex is not None else None


def give(label: int, example_id: int) -> None:
    try:  # written at once (nothing is lost on leaving the page), unless another session labeled it meanwhile
        storage.set_label(conn, example_id, label, by=labeler(), expect=None)
    except storage.LabelConflict as e:
        st.toast(str(e))
        return
    st.session_state["lb_last"] = example_id


def skip(example_id: int) -> None:
    st.session_state["lb_skipped"].append(example_id)


def undo() -> None:  # this session's own last label, never another user's
    try:
        ev = storage.undo_last(conn, project.id, by=labeler())
    except storage.StoreError as e:
        st.toast(str(e))
        return
    if ev is None:
        st.toast("Nothing of yours to undo in this project.")
        return
    if ev.example_id and ev.example_id in st.session_state["lb_skipped"]:
        st.session_state["lb_skipped"].remove(ev.example_id)
    if ev.example_id and ev.new_label is None:  # the example whose label was undone is shown again, to relabel
        st.session_state["lb_shown"] = (project.id, strategy, ev.example_id)


with left:
    if ex is None and not has_examples:
        st.info("No examples yet: import a file on the Projects page.")
    elif ex is None:
        st.success("Every example has a label (or was skipped).")
        if skipped and st.button("Show skipped examples again", key="lb_unskip"):
            st.session_state["lb_skipped"] = []
            st.rerun()
    else:
        st.markdown(
            f"### {md_escape(ex.text)}"
            if ex.text is not None
            else f"**A:** {md_escape(ex.text_a)}\n\n**B:** {md_escape(ex.text_b)}"
        )
        sug = prediction(conn, ex.id)
        if sug:
            who = "Model" if sug["run_id"] is not None else "Your prompt"
            st.caption(f"{who} suggests **{md_escape(project.labels[sug['label']])}** ({sug['confidence']:.0%})")
        bcols = st.columns(len(project.labels) + 2)
        for i, lab in enumerate(project.labels):
            shortcut = str(i + 1) if i < 9 else None
            bcols[i].button(md_escape(lab), key=f"lb_label_{i}", on_click=give,
                            args=(i, ex.id), shortcut=shortcut, type="primary", width="stretch")  # fmt: skip
        bcols[-2].button("Skip", key="lb_skip", on_click=skip, args=(ex.id,), shortcut="s", width="stretch")
        bcols[-1].button("Undo", key="lb_undo", on_click=undo, shortcut="u", width="stretch")

st.divider()
st.subheader("Find and fix labels")
q = st.text_input("Search", key="lb_search")
only = st.radio("Show", ["labeled", "unlabeled", "all"], horizontal=True, key="lb_show")
labeled = {"labeled": True, "unlabeled": False, "all": None}[only]
total = storage.count_examples(conn, project.id, search=q or None, labeled=labeled)
page_size = 25
page = st.number_input("Page", 1, max(1, -(-total // page_size)), 1, key="lb_page")
rows = storage.page_examples(
    conn, project.id, offset=(page - 1) * page_size, limit=page_size, search=q or None, labeled=labeled
)
st.caption(f"{total:,} examples")
none = "—"
texts = list(project.slots)  # a pair's two texts in two columns: one cell shows only its first line
table = [{"id": r.id, **{s: getattr(r, s) for s in texts}, "label": project.labels[r.gold] if r.gold is not None
          else none} for r in rows]  # fmt: skip
# An edit is applied once, then the editor starts afresh under a new key: the old editor's state would otherwise
# re-apply the edit on every rerun (redoing an Undo, overwriting another session's newer label).
version = st.session_state.setdefault("lb_table_version", 0)
edited = st.data_editor(
    table, key=f"lb_table_{page}_{q}_{only}_{version}", disabled=["id", *texts], hide_index=True, width="stretch",
    column_config={"label": st.column_config.SelectboxColumn("label", options=[none, *project.labels]),
                   # a pair's two texts share the width, so the label column stays in view
                   **({s: st.column_config.TextColumn(s, width=340) for s in texts} if len(texts) > 1 else {})},
)  # fmt: skip
changed = [(before, after) for before, after in zip(table, edited) if before["label"] != after["label"]]
for before, after in changed:
    new = None if after["label"] == none else project.labels.index(after["label"])
    seen = None if before["label"] == none else project.labels.index(before["label"])
    try:
        storage.set_label(conn, before["id"], new, by=labeler(), reason="table", expect=seen)
    except storage.LabelConflict as e:
        st.toast(str(e))
        continue
    st.toast(md_escape(f"Example {before['id']}: {before['label']} → {after['label']}"))
if changed:
    st.session_state["lb_table_version"] = version + 1

with st.expander("Label history"):
    hist = storage.history(conn, project.id, limit=50)
    name = lambda v: none if v is None else project.labels[v]  # noqa: E731
    st.dataframe([{"when": h.at[:19], "example": h.example_id, "from": name(h.old_label), "to": name(h.new_label),
                   "by": h.by, "why": h.reason} for h in hist], key="lb_history")  # fmt: skip
