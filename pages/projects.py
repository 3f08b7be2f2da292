"""Projects: create, switch, import data (with column mapping), and a built-in example project."""

import os
from pathlib import Path

import streamlit as st

import storage
from storage import jobs as jobq
from storage.importers import ImportFileError, read_table, upload_limit_mb
from storage.mojibake import repairs
from ui.common import (
    current_project,
    db,
    import_dir,
    import_path,
    label_column_guess,
    md_escape,
    open_project,
    run_safely,
    text_columns_guess,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "ui" / "example_reviews.jsonl"

conn = db()
st.title("Projects")
projects = storage.list_projects(conn)

left, right = st.columns(2)
with left:
    st.subheader("New project")
    with st.form("new_project", clear_on_submit=False):
        name = st.text_input("Name", key="np_name")
        task = st.radio("Task", ["single", "pair"], horizontal=True, key="np_task",
                        format_func={"single": "single text", "pair": "text pair (e.g. entailment)"}.get)  # fmt: skip
        labels = st.text_input("Labels, in order, comma-separated", placeholder="negative, positive", key="np_labels")
        backbone = st.text_input("Backbone (local folder or hub id)", value=os.environ.get("LIST_BACKBONE", "default"),
                                 key="np_backbone", help="'default' is all-MiniLM-L6-v2, shipped offline")  # fmt: skip
        target = st.number_input("Target number of gold labels", 2, 10_000, 30, key="np_target")
        if st.form_submit_button("Create project", key="np_create"):
            p = run_safely(storage.create_project, conn, name, task, [x for x in labels.split(",")], backbone.strip(),
                           int(target), success="Project created.")  # fmt: skip
            if p:
                open_project(p.id)

with right:
    st.subheader("Try the example")
    st.write("A small movie-review project (60 short reviews written for LiST Studio, 10 already labeled) "
             "with a ready prompt: open Train and start a fast run.")  # fmt: skip
    if st.button("Create the example project", key="example_create"):
        n = sum(p.name.startswith("Example: movie reviews") for p in projects)
        name = "Example: movie reviews" + (f" ({n + 1})" if n else "")
        p = run_safely(storage.create_project, conn, name, "single", ["negative", "positive"], "default", 20)
        if p:
            storage.import_file(conn, p.id, EXAMPLE, {"text": "text"}, label_column="label")
            storage.save_prompt(conn, p.id, "{text} It was {mask} .", ["terrible", "great"])
            run_safely(jobq.read_ahead, conn, p.id)
            open_project(p.id)

st.divider()
st.subheader("Your projects")
if not projects:
    st.info("No project yet.")
for p in projects:
    cols = st.columns([4, 2, 2, 1])
    n = storage.count_examples(conn, p.id)
    cols[0].write(f"**{md_escape(p.name)}** · {p.task} · labels: {md_escape(', '.join(p.labels))}")
    n_eval = storage.count_examples(conn, p.id, split="eval")
    cols[1].write(f"{n:,} examples · {sum(storage.class_counts(conn, p.id))} gold"
                  + (f" · {n_eval:,} in the evaluation split" if n_eval else ""))  # fmt: skip
    if cols[2].button("Open", key=f"open_{p.id}", disabled=st.session_state.get("project") == p.id):
        open_project(p.id)
    with cols[3].popover("Delete", help="delete this project, its examples, labels and runs"):
        st.warning(
            f"This deletes “{md_escape(p.name)}” with its {n + n_eval:,} examples, labels, history and runs, and the runs' "
            "checkpoints and exported adapters on disk. It cannot be undone."
        )
        typed = st.text_input("Type the project's name to confirm", key=f"del_name_{p.id}")
        # enabled before the name is typed: a name typed and the button clicked at once arrive together (a button
        # disabled until the name was committed dropped that click)
        if st.button("Delete for good", key=f"del_{p.id}", type="primary"):
            if typed != p.name:
                st.error("Type the project's name exactly as shown to delete it.")
            else:
                try:
                    storage.delete_project(conn, p.id)
                except storage.StoreError as e:
                    st.error(str(e))
                else:
                    st.rerun()

project = current_project()
if project is None:
    st.stop()

st.divider()
st.subheader(f"Import data into “{md_escape(project.name)}”")
if project.task == "pair" and (same := storage.same_text_pairs(conn, project.id)):
    st.warning(f"{same:,} examples of this project have the same text as A and as B: their file was imported with "
               "one column for both texts. Delete the project and import the file again with a column for each.")  # fmt: skip
up = st.file_uploader("CSV, TSV, JSONL or parquet", type=["csv", "tsv", "jsonl", "json", "parquet"], key="import_file",
                      max_upload_size=upload_limit_mb())  # fmt: skip
path = st.text_input(
    "…or a file or folder in the server's import folder (a folder saved with datasets.save_to_disk works too)",
    key="import_path", help=f"Only paths under {import_dir()} are read (LIST_IMPORT_DIR)",
)  # fmt: skip
source, name = None, None
if up is not None:
    source, name = up.getvalue(), up.name
elif path.strip():
    try:
        source = import_path(path.strip())
    except ValueError as e:
        st.error(str(e))
        st.stop()
    name = source.name
if source is not None:
    try:
        table = read_table(source, name=name)
    except ImportFileError as e:
        st.error(str(e))
        st.stop()
    st.caption(f"{len(table.records):,} rows · columns: {md_escape(', '.join(table.columns))}")
    st.dataframe(table.records[:5], key="import_preview")
    if st.session_state.get("import_source") != (name, len(table.records), table.columns):
        # another file: forget the column choices made for the previous one
        for key in [k for k in st.session_state if str(k).startswith("map_")]:
            del st.session_state[key]
        st.session_state["import_source"] = (name, len(table.records), table.columns)
    mapping = {}
    cols = st.columns(len(project.slots) + 2)
    guesses = text_columns_guess(project.slots, table.columns, table.records)
    for i, slot in enumerate(project.slots):
        mapping[slot] = cols[i].selectbox(
            f"Column for {slot}", table.columns, index=table.columns.index(guesses[slot]), key=f"map_{slot}"
        )
    none = "(none)"
    guess = label_column_guess(project.labels, table.columns, table.records, taken=mapping.values())
    label_col = cols[-2].selectbox("Label column (optional)", [none] + table.columns, key="map_label",
                                   index=table.columns.index(guess) + 1 if guess else 0)  # fmt: skip
    split = cols[-1].selectbox("Use as", ["pool", "eval"], key="map_split",
                               format_func={"pool": "data to label / train on", "eval": "evaluation split (labeled)"}.get)  # fmt: skip
    label_values = "names"
    if label_col != none and any(str(r.get(label_col, "")).strip().lstrip("-").isdigit() for r in table.records[:200]):
        positions = ", ".join(f"{i} = {md_escape(lab)}" for i, lab in enumerate(project.labels))
        if st.checkbox(f"The label column holds class positions ({positions})", key="map_indices"):
            label_values = "indices"
    broken, shown = repairs(str(r.get(mapping[s]) or "") for r in table.records for s in project.slots)
    repair_text = False
    if broken:  # UTF-8 read as Latin-1 upstream ("â€“" for "–"): repaired unless the user says otherwise
        repair_text = st.checkbox(
            f"Repair mis-decoded characters in {broken:,} text{'s' if broken != 1 else ''}", value=True,
            key="map_repair", help="Text that was UTF-8 but was read as Latin-1 or Windows-1252 somewhere before this "
            "file (\"â€“\" for \"–\", \"Ã©\" for \"é\"). Only such sequences change; accents and other scripts stay.",
        )  # fmt: skip
        st.caption("For example: " + " · ".join(f"“{md_escape(a)}” → “{md_escape(b)}”" for a, b in shown[:2]))
    if st.button("Import", key="import_go", type="primary"):
        try:
            from storage.examples import import_table

            rep = import_table(
                conn,
                project.id,
                table,
                mapping,
                None if label_col == none else label_col,
                source=name,
                split=split,
                label_values=label_values,
                repair_text=repair_text,
            )
        except (storage.StoreError, ValueError) as e:
            st.error(str(e))
        else:  # rerun so the project list above shows the new counts; the notice survives the rerun
            st.session_state["import_notice"] = (
                f"Imported {rep.added:,} examples ({rep.duplicates:,} duplicates skipped, {rep.labeled:,} with labels)."
            )
            if rep.added:  # the worker reads the new texts now (the first "Score prompts" need not wait for them)
                run_safely(jobq.read_ahead, conn, project.id, split == "pool")  # and orders a new pool for labeling
            st.rerun()
if notice := st.session_state.pop("import_notice", None):
    st.success(notice)
