"""Prompt workbench: template and label words with a live preview and token checks; score candidates."""

import streamlit as st

import storage
from list_core.prompts import Prompt, PromptError, encode, label_word_ids
from storage import jobs as jobq
from ui.common import db, job_status_line, require_project, run_safely

conn = db()
project = require_project()
st.title("Prompt workbench")


@st.cache_resource(show_spinner="Loading the tokenizer…")
def tokenizer(backbone: str):
    # the fast tokenizer class alone: AutoTokenizer would import torch into the UI process; the worker
    # checks the prompt again with the backbone's own tokenizer before training
    from transformers import PreTrainedTokenizerFast

    from list_core.locate import resolve_backbone_path

    return PreTrainedTokenizerFast.from_pretrained(resolve_backbone_path(backbone))


latest = storage.latest_prompt(conn, project.id)
default_t = (
    latest.template
    if latest
    else ("{text_a} ? {mask} , {text_b}" if project.task == "pair" else "{text} It was {mask} .")
)
template = st.text_input("Template — slots: " + (" {text_a} {text_b}" if project.task == "pair" else " {text}") + " and one {mask}",
                         value=default_t, key="pw_template")  # fmt: skip
cols = st.columns(len(project.labels))
words = []
for i, lab in enumerate(project.labels):
    value = latest.label_words[i] if latest and i < len(latest.label_words) else ""
    words.append(cols[i].text_input(f"Label word for “{lab}”", value=value, key=f"pw_word_{i}").strip())

try:
    tok = tokenizer(project.backbone)
except Exception as e:  # a missing or unreadable backbone folder
    st.error(f"Cannot load the tokenizer of backbone {project.backbone!r}: {e}")
    st.stop()

prompt, problems = None, []
try:
    prompt = Prompt(template, tuple(words))
    label_word_ids(prompt, tok)
except PromptError as e:
    problems.append(str(e))
for w in words:  # show each word's tokenisation as it is typed
    if w:
        pieces = tok.tokenize((" " if " {mask}" in template else "") + w)
        if len(pieces) != 1:
            st.warning(f"“{w}” is {len(pieces)} tokens: {pieces} — label words must be one token.")
for p in problems:
    st.error(p)

st.subheader("Preview on real rows")
rows = storage.page_examples(conn, project.id, limit=3)
if prompt is not None and rows:
    ids, _ = encode(prompt, tok, [r.row() for r in rows], 128)
    for i in ids:
        st.code(tok.decode(i), language=None)
elif not rows:
    st.caption("Import data to see a preview.")

if st.button("Save prompt", key="pw_save", type="primary", disabled=bool(problems)):
    v = run_safely(storage.save_prompt, conn, project.id, template, words)
    if v:
        st.success(f"Saved as version {v.version}.")

st.divider()
st.subheader("Score prompts (zero-shot, on your gold labels)")
st.caption("One candidate per line: `template | word1, word2, …`. The current prompt is always included.")
extra = st.text_area("Candidates", key="pw_candidates", height=100,
                     placeholder="{text} All in all, it was {mask} . | bad, good")  # fmt: skip
suggest = st.checkbox("Also suggest label words from the backbone's predictions", value=True, key="pw_suggest")
if st.button("Score prompts", key="pw_score"):
    cands = [{"template": template, "label_words": words}]
    for line in extra.splitlines():
        if "|" in line:
            t, ws = line.split("|", 1)
            cands.append({"template": t.strip(), "label_words": [w.strip() for w in ws.split(",")]})
        elif line.strip():
            st.error(f"Cannot read candidate line {line!r}: expected `template | word1, word2`")
            st.stop()
    run_safely(jobq.enqueue, conn, "prompt_eval", {"candidates": cands, "suggest": suggest}, project.id,
               success="Scoring queued; results appear below.")  # fmt: skip


@st.fragment(run_every=2)
def leaderboard() -> None:
    jobs = [j for j in jobq.list_jobs(conn, project.id, limit=20) if j.kind == "prompt_eval"]
    if not jobs:
        return
    job = jobs[0]
    st.caption(job_status_line(job))
    if job.status == "failed":
        st.error((job.error or "").split("\n")[0])
    if job.result:
        if job.result.get("note"):
            st.warning(job.result["note"])
        board = [{"template": e["template"], "label words": ", ".join(e["label_words"]),
                  "accuracy": e.get("accuracy"), "loss": e.get("loss"), "problem": e.get("error", "")}
                 for e in job.result["leaderboard"]]  # fmt: skip
        st.dataframe(board, key="pw_board")
        if job.result.get("suggestions"):
            st.write("Suggested label words:")
            st.json(job.result["suggestions"])


leaderboard()
