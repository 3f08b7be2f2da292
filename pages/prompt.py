"""Prompt workbench: template and verbalisers (label words, descriptions) with a live preview and checks;
score prompts zero-shot on the gold labels and on the pool; label-word suggestions."""

import streamlit as st

import storage
from list_core.prompts import Prompt, PromptError, encode, label_word_ids, starting_words
from list_core.teacher import prompt_looks_wrong
from storage import jobs as jobq
from ui.actions import save_prompt
from ui.common import db, job_status_line, md_escape, mlm_head, require_project, run_safely

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


def split_words(text: str) -> list[str]:
    return [w.strip() for w in text.split(",") if w.strip()]


def initial(key: str, value: str) -> dict:
    """A text input's starting value, unless the page has just set the input's value itself (a row of the board
    saved as the prompt): Streamlit warns when a widget gets both."""
    return {} if key in st.session_state else {"value": value}


latest = storage.latest_prompt(conn, project.id)
default_t = (
    latest.template
    if latest
    else ("{text_a} ? {mask} , {text_b}" if project.task == "pair" else "{text} It was {mask} .")
)
reads_mask = mlm_head(project.backbone) is not False  # False: a sentence encoder, the similarity head
if reads_mask:
    st.caption("This backbone has a pretrained MLM head: the prompt is read at the mask, so each label word must be "
               "one token of its vocabulary.")  # fmt: skip
else:
    st.caption("This backbone is a sentence encoder (no MLM head): each class is the embedding of its verbaliser — "
               "the template without the text, the mask filled by each label word — plus its description. Words "
               "and short phrases both work.")  # fmt: skip
    if project.task == "pair":
        st.warning("A sentence encoder knows little about how two texts relate (entailment, paraphrase) when it "
                   "reads them together: on rte every prompt-based method, LiST included, is within a few points of "
                   "chance on this backbone (BENCHMARKS.md). It does know how close two texts are: the Train page's "
                   "pair-similarity baseline reads that (62% on rte with 30 labeled pairs). For more, create the "
                   "project on a backbone with a pretrained MLM head (e.g. roberta-large on a GPU).")  # fmt: skip
template = st.text_input("Template — slots: " + (" {text_a} {text_b}" if project.task == "pair" else " {text}") + " and one {mask}",
                         key="pw_template", **initial("pw_template", default_t))  # fmt: skip
try:
    tok = tokenizer(project.backbone)
except Exception as e:  # a missing or unreadable backbone folder
    st.error(f"Cannot load the tokenizer of backbone {md_escape(project.backbone)}: {md_escape(str(e))}")
    st.stop()

if latest is None:  # the words start as the class names: scoring and suggestions work at once
    start = starting_words(project.labels, default_t, tok if reads_mask else None)
    st.caption("The label words start as the class names; write the words that say what each class means "
               "(the scores below tell which work best).")  # fmt: skip
cols = st.columns(len(project.labels))
words: list[list[str]] = []
descriptions: list[str] = []
for i, lab in enumerate(project.labels):
    saved = (latest.label_words[i] if i < len(latest.label_words) else "") if latest else start[i]
    saved = saved if isinstance(saved, str) else ", ".join(saved)
    words.append(split_words(cols[i].text_input(f"Label words for “{md_escape(lab)}”", key=f"pw_word_{i}", **initial(f"pw_word_{i}", saved),
                                                help="one or several, comma-separated: great, good, excellent")))  # fmt: skip
    saved_d = latest.descriptions[i] if latest and latest.descriptions and i < len(latest.descriptions) else ""
    descriptions.append(cols[i].text_input(f"Description of “{md_escape(lab)}” (optional)", value=saved_d, key=f"pw_desc_{i}",
                                           help="a sentence that describes the class, used with the words").strip())  # fmt: skip

prompt, problems = None, []
missing = [lab for lab, w in zip(project.labels, words) if not w]
if missing:
    st.info("Type at least one label word for " + ", ".join(f"“{md_escape(m)}”" for m in missing) + ".")
else:
    try:
        prompt = Prompt(template, tuple(w[0] if len(w) == 1 else tuple(w) for w in words), tuple(descriptions))
        if reads_mask:
            label_word_ids(prompt, tok)
    except PromptError as e:
        problems.append(str(e))
for p in problems:
    st.error(md_escape(p))

st.subheader("Preview")
rows = storage.page_examples(conn, project.id, limit=3)
if prompt is not None and reads_mask and rows:
    ids, _ = encode(prompt, tok, [r.row() for r in rows], 128)
    for i in ids:
        st.code(tok.decode(i), language=None, wrap_lines=True)  # the mask stays in view
elif prompt is not None and not reads_mask:
    for lab, sentences in zip(project.labels, prompt.verbaliser_sentences()):
        st.code(f"{lab}: " + " | ".join(sentences), language=None)
    if rows:
        st.caption("Each text is compared with these verbalisers as it is (without the template).")
elif not rows:
    st.caption("Import data to see a preview.")

current_words = [w[0] if len(w) == 1 else w for w in words]
unsaved = latest is None or not latest.same_as(template, current_words, descriptions)
# the buttons below are never disabled: an edit typed and a button clicked at once arrive together, where a button
# disabled by the state before the edit was committed dropped that click
if st.button("Save prompt", key="pw_save", type="primary" if unsaved else "secondary"):
    if prompt is None or problems:
        st.toast("Not saved: " + ("fix the problem above first." if problems else "every class needs a label word."))
    else:
        v = run_safely(save_prompt, conn, project.id, template, current_words, descriptions)
        if v:
            st.session_state["pw_saved"] = v.version
            st.rerun()  # the button shows the saved state at once
if "pw_saved" in st.session_state:
    st.success(f"Saved as version {st.session_state.pop('pw_saved')}.")
elif latest is not None and not unsaved:
    st.caption(f"Version {latest.version} of this project's prompt (saved).")

st.divider()
st.subheader("Score prompts (zero-shot)")
st.caption("Accuracy on your gold labels (and on your evaluation split, if you imported one), and the share of each class the prompt predicts on your data — useful "
           "before labeling anything. One extra candidate per line: `template | words of class 1, words of class 2, …` "
           "with several words of a class joined by `/` (`bad/awful, good/great`). The current prompt is always "
           "included; before the first run, its predictions become the Label page's suggestions.")  # fmt: skip
example = ("{text_a} ? {mask} , {text_b} | Yes/Right, No/Wrong" if project.task == "pair"
           else "{text} All in all, it was {mask} . | bad/awful, good/great")  # fmt: skip
extra = st.text_area("Candidates", key="pw_candidates", height=100, placeholder=example)
suggest = st.checkbox("Also suggest label words (needs gold labels)", value=True, key="pw_suggest")
score = st.button("Score prompts", key="pw_score")
if score and prompt is None:
    st.toast("Not scored: every class needs a label word.")
if score and prompt is not None:
    cands = [prompt.to_json()]
    for line in extra.splitlines():
        if "|" in line:
            t, ws = line.split("|", 1)
            groups = [[w.strip() for w in g.split("/") if w.strip()] for g in ws.split(",")]
            cands.append({"template": t.strip(), "label_words": [g[0] if len(g) == 1 else g for g in groups]})
        elif line.strip():
            st.error(f"Cannot read candidate line {md_escape(line)}: expected `template | word1, word2`")
            st.stop()
    # a toast, not a message that would still say "queued" beside the finished board below
    if run_safely(jobq.enqueue, conn, "prompt_eval", {"candidates": cands, "suggest": suggest}, project.id):
        st.toast("Scoring queued; results appear below.")


def words_of(label_words: list) -> str:
    """Label words as the board shows them: classes by commas, a class's several words by slashes."""
    return ", ".join(w if isinstance(w, str) else "/".join(w) for w in label_words)


def adopt_a_row(entries: list[dict], sources: list[str]) -> None:
    """Save a row of the board (one that scored, other than the saved prompt) as the project's prompt, with its own
    class descriptions or else the saved ones, and show it in the editor."""
    if (version := st.session_state.pop("pw_adopted", None)) is not None:
        st.session_state["pw_saved"] = version
        st.rerun()  # the whole page, not this fragment: the editor above the board shows the saved prompt
    saved = storage.latest_prompt(conn, project.id)
    kept = list(saved.descriptions or []) if saved else []
    rows = [i for i, e in enumerate(entries) if not e.get("error")
            and not (saved and saved.same_as(e["template"], e["label_words"], kept))]  # fmt: skip
    if not rows:
        return
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    pick = c1.selectbox("Make a row of the board the prompt", rows, key="pw_adopt_row",
                        format_func=lambda i: f"{sources[i]} · {entries[i]['template']} · {words_of(entries[i]['label_words'])}")  # fmt: skip
    # a row's own descriptions where it has them (a re-matched row moved them with their words), else the saved ones
    own = entries[pick].get("descriptions") or kept
    c2.button("Save as the prompt", key="pw_adopt", on_click=adopt, args=(entries[pick], own))
    if error := st.session_state.pop("pw_adopt_error", None):
        st.error(md_escape(error))


def adopt(entry: dict, descriptions: list[str]) -> None:
    """Save a board row as the prompt and put it into the editor's inputs (a callback: it runs before the inputs
    are drawn, the only time a page may set their values so that the browser shows them)."""
    try:
        v = save_prompt(conn, project.id, entry["template"], entry["label_words"], descriptions or None)
    except (storage.StoreError, ValueError) as e:
        st.session_state["pw_adopt_error"] = str(e)
        return
    st.session_state["pw_template"] = entry["template"]
    for i, w in enumerate(entry["label_words"]):
        st.session_state[f"pw_word_{i}"] = w if isinstance(w, str) else ", ".join(w)
    st.session_state["pw_adopted"] = v.version


def latest_scoring():
    """The project's latest prompt-scoring job, or None."""
    return next((j for j in jobq.list_jobs(conn, project.id, limit=20) if j.kind == "prompt_eval"), None)


# For its first seconds a scoring is polled four times as often: an edited prompt scores in about a second on a
# sentence encoder, and a 2 s poll was most of the wait. Not for longer: a first scoring takes 5-50 s, and each
# poll reruns the fragment.
FAST_POLL_S = 4.0
fast = (scoring := latest_scoring()) is not None and not scoring.done and jobq.age_s(scoring) < FAST_POLL_S


@st.fragment(run_every=0.5 if fast else 2)
def leaderboard() -> None:
    job = latest_scoring()
    if job is None:
        return
    if fast and (job.done or jobq.age_s(job) >= FAST_POLL_S):
        st.rerun()  # the whole page: its board is shown (or the fragment goes back to its slow poll)
    st.caption(job_status_line(job))
    if job.status == "failed":
        st.error(md_escape((job.error or "").split("\n")[0]))
    if not job.result:
        return
    evals, golds = job.result.get("eval", 0), job.result.get("gold", 0)  # no column of empty cells without them
    problems = any(e.get("error") for e in job.result["leaderboard"])
    source = {"prompt": "your prompt", "suggested": "your prompt + suggested words",
              "rematched": "your words, re-matched to the classes",
              "rematched+suggested": "your words re-matched + suggested words"}  # fmt: skip
    # the scores first, so they are in view on a narrow screen; the prompt's own (long) text after them
    board = [{"source": source.get(e.get("origin"), "candidate"),
              **({f"eval accuracy ({evals:,})": e.get("eval_accuracy")} if evals else {}),
              **({"gold accuracy": e.get("accuracy"), "loss": e.get("loss")} if golds else {}),
              **{f"predicts {lab}": (e.get("pool_distribution") or {}).get(lab) for lab in project.labels},
              "template": e["template"], "label words": words_of(e["label_words"]),
              **({"problem": e.get("error", "")} if problems else {})} for e in job.result["leaderboard"]]  # fmt: skip
    shares = {f"predicts {lab}": st.column_config.ProgressColumn(f"predicts {lab}", min_value=0.0, max_value=1.0,
                                                                  format="percent") for lab in project.labels}  # fmt: skip
    accuracies = {
        k: st.column_config.NumberColumn(k, format="percent") for k in (board[0] if board else {}) if "accuracy" in k
    }
    st.dataframe(board, key="pw_board", hide_index=True, column_config={**shares, **accuracies})
    mine = next((e for e in job.result["leaderboard"] if e.get("origin") == "prompt"), {})
    if mine.get("evidence") is not None and prompt_looks_wrong(mine["evidence"]):
        hits, chance = round(mine["accuracy"] * golds), golds / len(project.labels)
        st.warning(f"Your prompt gets {hits} of your {golds} gold labels right, fewer than guessing would "
                   f"(about {chance:.0f}): its label words may be attached to the wrong classes. Check that each "
                   "class's words describe that class: LiST's model starts from them."
                   + (" The row “your words, re-matched to the classes” gives each class the words your gold labels "
                      "say fit it (one class's words each); save it below if it scores better."
                      if any(e.get("origin") == "rematched" for e in job.result["leaderboard"]) else ""))  # fmt: skip
    adopt_a_row(job.result["leaderboard"], [row["source"] for row in board])
    if evals:
        of = job.result.get("eval_of", evals)
        st.caption(f"Best first by accuracy on your evaluation split ({evals:,} labeled texts"
                   f"{f', an even sample of {of:,}' if of > evals else ''}).")  # fmt: skip
    elif not job.result.get("gold"):
        st.caption("No gold labels yet: the class shares above show what the prompt does with your data.")
    if job.result.get("suggestions"):
        rematched_base = job.result.get("suggestions_base") == "rematched"
        near = "your label words re-matched to the classes" if rematched_base else "your own label words"
        st.write(f"Suggested label words (near your gold examples and {near}):")
        st.dataframe([{"class": c, "words": ", ".join(ws)} for c, ws in job.result["suggestions"].items()],
                     key="pw_suggestions", hide_index=True)  # fmt: skip
        row = next((source[e["origin"]] for e in job.result["leaderboard"]
                    if e.get("origin") in ("suggested", "rematched+suggested")), None)  # fmt: skip
        if row:
            st.caption(f"The board's row “{row}” adds the first three of each class to "
                       + ("the re-matched words. " if rematched_base else "your words. ")
                       + "Suggestions come from a few examples and can hurt as well as help: add them only if "
                       "that row scores better on the evaluation split (its gold accuracy is optimistic: the words "
                       "were chosen on those labels).")  # fmt: skip
    if job.result.get("prompt_suggestions"):
        st.caption(f"The prompt's predictions for {job.result['prompt_suggestions']:,} examples are now the Label "
                   "page's suggestions (until a run replaces them).")  # fmt: skip
    elif later := job.result.get("prompt_suggestions_job"):
        st.caption(f"The worker now writes the prompt's predictions for all {job.result['prompt_suggestions_of']:,} "
                   f"examples as the Label page's suggestions (job {later}, in the background).")  # fmt: skip


leaderboard()
