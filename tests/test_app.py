"""Every page through streamlit.testing.v1.AppTest against a temporary database (no worker started)."""

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import storage as st_store
from storage import exports as exportq
from storage import jobs as jobq
from storage import runs as runq
from storage.examples import all_examples
from ui.common import md_escape
from worker.runner import Worker

TIMEOUT = 60
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def env(tmp_path, monkeypatch, tiny_dirs):
    monkeypatch.setenv("LIST_DB", str(tmp_path / "app.db"))
    monkeypatch.setenv("LIST_NO_WORKER", "1")
    monkeypatch.delenv("LIST_SECRET", raising=False)
    db = st_store.connect(tmp_path / "app.db")
    return db, tmp_path, tiny_dirs


def app(page: str | None = None, project_id: int | None = None) -> AppTest:
    """The whole app (navigation and sidebar), or one page script run directly with a chosen project."""
    at = AppTest.from_file(str(ROOT / (page or "app.py")), default_timeout=TIMEOUT)
    if project_id is not None:
        at.session_state["project"] = project_id
    at.run()
    assert not at.exception, at.exception
    return at


def switch(at: AppTest, page: str) -> AppTest:
    """Another page with the same session (project, database handle)."""
    nxt = AppTest.from_file(str(ROOT / page), default_timeout=TIMEOUT)
    nxt.session_state["project"] = at.session_state["project"]
    nxt.run()
    assert not nxt.exception, (page, nxt.exception)
    return nxt


def make_project(db, backbone: str, with_prompt: bool = True):
    p = st_store.create_project(db, "movies", "single", ["negative", "positive"], backbone, target_gold=8)
    texts = [
        f"{w} {x}" for w in ("great", "bad", "good", "awful") for x in ("movie", "film", "acting", "story", "pacing")
    ]
    st_store.add_examples(db, p.id, [{"text": t} for t in texts])
    if with_prompt:
        st_store.save_prompt(db, p.id, "{text} It was {mask} .", ["bad", "great"])
    return p


def test_projects_page_creates_project_and_shows_errors(env):
    db, tmp, _ = env
    at = app()
    at.text_input(key="np_name").input("reviews")
    at.text_input(key="np_labels").input("neg, pos")
    at.button(key="np_create").click().run()
    assert not at.exception
    assert [p.name for p in st_store.list_projects(db)] == ["reviews"]
    at.text_input(key="np_name").input("reviews")
    at.button(key="np_create").click().run()
    assert any("already exists" in e.value for e in at.error)


def test_an_address_naming_no_project_says_which_one_opened(env):
    """A bookmark or a shared address whose project was renamed or deleted (?project=NAME) silently opened the newest
    project instead (a real-browser session typed a project's id there and labeled the wrong project)."""
    db, _, _ = env
    st_store.create_project(db, "alpha", "single", ["a", "b"], "default")
    st_store.create_project(db, "beta", "single", ["a", "b"], "default")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params["project"] = "gamma"
    at.run()
    assert not at.exception and at.sidebar.selectbox[0].value == 2  # the newest, as for a new session
    assert [t.value for t in at.toast] == [md_escape("No project named “gamma”: this is “beta”.")]
    at.run()  # the address now names the project shown: said once
    assert not at.toast
    named = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    named.query_params["project"] = "alpha"
    named.run()
    assert named.sidebar.selectbox[0].value == 1 and not named.toast


def test_the_label_page_of_a_project_without_examples_asks_for_an_import(env):
    """It said "Every example has a label (or was skipped)." for a project with nothing imported yet."""
    db, _, dirs = env
    p = st_store.create_project(db, "empty", "single", ["a", "b"], str(dirs["bert"]))
    at = app("pages/label.py", p.id)
    assert [i.value for i in at.info] == ["No examples yet: import a file on the Projects page."] and not at.success
    st_store.add_examples(db, p.id, [{"text": "one"}])
    st_store.set_label(db, st_store.page_examples(db, p.id, limit=5)[0].id, 0)
    at.run()
    assert [m.value for m in at.success] == ["Every example has a label (or was skipped)."] and not at.info


def test_file_uploaders_announce_the_import_limit(env, monkeypatch):
    """The uploader said "200MB per file" (Streamlit's limit) while an import over LIST_MAX_IMPORT_MB (50) is
    refused after the upload: a user sent 100 MB to be told it was too big."""
    db, _, _ = env
    p = st_store.create_project(db, "reviews", "single", ["neg", "pos"], "x")
    at = app("pages/projects.py", p.id)
    assert at.get("file_uploader")[0].proto.max_upload_size_mb == 50
    monkeypatch.setenv("LIST_MAX_IMPORT_MB", "0.5")  # a fraction of a megabyte: the uploader's whole-MB limit rounds up
    at = app("pages/projects.py", p.id)
    assert at.get("file_uploader")[0].proto.max_upload_size_mb == 1


def test_projects_page_counts_the_evaluation_split(env):
    """A project's row said "1,500 examples · 30 gold" after 400 labeled texts were imported as its evaluation
    split, as if that import had been lost."""
    db, _, _ = env
    p = st_store.create_project(db, "reviews", "single", ["neg", "pos"], "x")
    st_store.add_examples(db, p.id, [{"text": t} for t in ("a", "b", "c")])
    st_store.import_file(db, p.id, b"text,label\ngood,pos\nbad,neg\n", {"text": "text"}, name="eval.csv",
                         label_column="label", split="eval")  # fmt: skip
    at = app("pages/projects.py", p.id)
    assert any(m.value == "3 examples · 0 gold · 2 in the evaluation split" for m in at.markdown)
    assert any("with its 5 examples" in w.value for w in at.warning)  # what Delete removes


def test_an_import_offers_to_repair_mis_decoded_text_and_shows_what_changes(env):
    db, tmp, _ = env
    p = st_store.create_project(db, "reviews", "single", ["negative", "positive"], "default")
    (tmp / "imports").mkdir()
    (tmp / "imports" / "scraped.csv").write_text(
        "text\nheck \u00e2\u0080\u0093 few films\nBon app\u00c3\u00a9tit\ncaf\u00e9 d\u00e9j\u00e0 vu\n",
        encoding="utf-8",
    )
    (tmp / "imports" / "clean.csv").write_text("text\ncaf\u00e9 one\nplain two\n", encoding="utf-8")
    at = app("pages/projects.py", p.id)
    at.text_input(key="import_path").input("clean.csv").run()
    assert not [c for c in at.checkbox if c.key == "map_repair"]  # nothing to repair: nothing offered
    at.text_input(key="import_path").input("scraped.csv").run()
    box = at.checkbox(key="map_repair")
    assert box.value is True and box.label == "Repair mis-decoded characters in 2 texts"
    shown = md_escape("“heck â\\x80\\x93 few films” → “heck – few films”")  # the control characters made visible
    assert any(shown in c.value for c in at.caption)
    at.button(key="import_go").click().run()
    assert sorted(e.text for e in all_examples(db, p.id)) == ["Bon appétit", "café déjà vu", "heck – few films"]
    q = st_store.create_project(db, "as is", "single", ["negative", "positive"], "default")
    at = app("pages/projects.py", q.id)
    at.text_input(key="import_path").input("scraped.csv").run()
    at.checkbox(key="map_repair").uncheck().run()
    at.button(key="import_go").click().run()
    assert "heck \u00e2\u0080\u0093 few films" in {e.text for e in all_examples(db, q.id)}


def test_pair_import_guesses_a_different_column_for_each_text(env):
    """A pair file (premise, hypothesis, label): text_a and text_b were both guessed as the longest column, and the
    import stored every pair as a text and itself."""
    db, tmp, _ = env
    p = st_store.create_project(db, "nli", "pair", ["entailment", "not_entailment"], "x")
    (tmp / "imports").mkdir()
    (tmp / "imports" / "rte.csv").write_text(
        "premise,hypothesis,gold\nA long premise about the EU and its twenty-five nations,The EU has 25 nations,"
        "entailment\nAnother long premise about a lacrosse final on Monday,Navy won,not_entailment\n"
    )
    at = app("pages/projects.py", p.id)
    at.text_input(key="import_path").input("rte.csv").run()
    assert (at.selectbox(key="map_text_a").value, at.selectbox(key="map_text_b").value) == ("premise", "hypothesis")
    assert at.selectbox(key="map_label").value == "gold"  # its cells are the project's label names
    at.selectbox(key="map_text_b").select("premise").run()
    at.button(key="import_go").click().run()
    assert any("both read column 'premise'" in e.value for e in at.error) and st_store.count_examples(db, p.id) == 0
    assert not any("same text as A and as B" in w.value for w in at.warning)
    # a project imported before that was refused says so
    st_store.add_examples(db, p.id, [{"text_a": "same", "text_b": "same"}, {"text_a": "a", "text_b": "b"}])
    at.run()
    assert st_store.same_text_pairs(db, p.id) == 1 and any("1 examples of this project" in w.value for w in at.warning)


def test_the_label_page_says_when_the_diverse_order_an_import_queued_is_on_its_way(env):
    """ "Diverse first" is the Label page's default: after an import the worker orders the pool on its own, and the
    page says so instead of offering to queue a second order; once it is done, the examples follow it."""
    from storage import jobs as jobq
    from storage.queue import set_label_queue

    db, _, _ = env
    p = st_store.create_project(db, "reviews", "single", ["neg", "pos"], "x")
    st_store.add_examples(db, p.id, [{"text": t} for t in ("first", "second", "third")])
    at = app("pages/label.py", p.id)
    assert any("No diversity order yet" in c.value for c in at.caption) and at.button(key="lb_diversity")
    jobq.read_ahead(db, p.id)
    at.run()
    assert any("ordering the examples" in c.value for c in at.caption)
    assert not any(b.key == "lb_diversity" for b in at.button)
    ids = [e.id for e in st_store.page_examples(db, p.id, limit=3)]
    set_label_queue(db, p.id, ids[::-1], "diverse")  # what the job writes
    at.run()
    assert not any("ordering" in c.value for c in at.caption)
    assert at.markdown[0].value == "### first"  # the example on screen stays: the order applies from the next one
    at.button(key="lb_label_0").click().run()
    assert at.markdown[0].value == "### third"


def test_the_example_on_screen_stays_until_labeled_and_undo_brings_it_back(env):
    """The Label page follows the worker without a reload, so an order or suggestions that arrive must not swap
    the example under the user's click: the example shown stays until labeled or skipped (or labeled elsewhere),
    its suggestion appears when written, and Undo shows the example whose label it removed, whatever the order."""
    from storage.predictions import save_predictions
    from storage.queue import set_label_queue

    db, _, _ = env
    p = st_store.create_project(db, "reviews", "single", ["neg", "pos"], "x")
    st_store.add_examples(db, p.id, [{"text": t} for t in ("a", "b", "c", "d")])
    a, b, c, d = [e.id for e in st_store.page_examples(db, p.id, limit=4)]
    at = app("pages/label.py", p.id)
    shown = lambda: at.markdown[0].value  # noqa: E731
    assert shown() == "### a"
    set_label_queue(db, p.id, [d, c, b, a])  # an order arrives
    probs = {a: [0.9, 0.1], b: [0.4, 0.6], c: [0.3, 0.7], d: [0.8, 0.2]}  # and the prompt's suggestions
    save_predictions(db, p.id, None, [{"example_id": i, "probs": q} for i, q in probs.items()])
    at.run()
    assert shown() == "### a" and any("Your prompt suggests **neg** (90%)" in x.value for x in at.caption)
    at.button(key="lb_label_1").click().run()
    assert shown() == "### d"  # then the order
    at.button(key="lb_undo").click().run()
    assert shown() == "### a" and st_store.get_example(db, a).gold is None  # the undone one, to label again
    st_store.set_label(db, a, 0, by="another session")  # labeled in another tab meanwhile: the page moves on
    at.run()
    assert shown() == "### d"
    at.radio(key="lb_strategy").set_value("in order").run()  # another strategy picks afresh
    assert shown() == "### b" and not at.exception


def test_the_label_table_shows_both_texts_of_a_pair(env):
    """The table showed a pair as one cell ("A\n\nB"), which displays its first line only: the second text, the one
    an entailment label is about, was hidden."""
    db, _, _ = env
    p = st_store.create_project(db, "nli", "pair", ["entailment", "not_entailment"], "x")
    st_store.add_examples(db, p.id, [{"text_a": "A long premise about the EU", "text_b": "The EU exists"}])
    st_store.set_label(db, st_store.page_examples(db, p.id)[0].id, 0)
    at = app("pages/label.py", p.id)
    table = at.data_editor[0].value
    assert list(table.columns) == ["id", "text_a", "text_b", "label"]
    assert table.iloc[0][["text_a", "text_b", "label"]].tolist() == ["A long premise about the EU", "The EU exists",
                                                                       "entailment"]  # fmt: skip


def test_a_pair_project_on_a_sentence_encoder_starts_with_the_pair_similarity_method(env, tiny_headless_dir):
    """There LiST and every prompt-based method are near chance (rte, BENCHMARKS.md); the Train page preselects the
    rule that is not, and says why. On a backbone with an MLM head LiST stays the default."""
    db, _, dirs = env
    enc = st_store.create_project(db, "nli", "pair", ["entailment", "not_entailment"], str(tiny_headless_dir))
    mlm = st_store.create_project(db, "nli mlm", "pair", ["entailment", "not_entailment"], str(dirs["bert"]))
    at = app("pages/train.py", enc.id)
    assert at.selectbox(key="tr_method").value == "pair-similarity"
    assert any("Chosen for a pair task on this backbone" in c.value for c in at.caption)
    at.selectbox(key="tr_method").select("list").run()  # still the user's choice
    assert at.selectbox(key="tr_method").value == "list" and not at.exception
    at = app("pages/train.py", mlm.id)
    assert at.selectbox(key="tr_method").value == "list"
    assert not any("Chosen for a pair task" in c.value for c in at.caption)


def test_text_columns_guess_gives_each_text_of_a_pair_its_own_column():
    from ui.common import text_columns_guess

    recs = [{"id": "1", "first": "a fairly long first text", "second": "a long second one", "y": "0"}]
    pair = ("text_a", "text_b")
    assert text_columns_guess(pair, ["premise", "hypothesis", "label"], []) == {"text_a": "premise",
                                                                               "text_b": "hypothesis"}  # fmt: skip
    assert text_columns_guess(pair, ["Sentence1", "Sentence2"], []) == {"text_a": "Sentence1", "text_b": "Sentence2"}
    assert text_columns_guess(pair, ["id", "first", "second", "y"], recs) == {"text_a": "first", "text_b": "second"}
    assert text_columns_guess(pair, ["only"], [{"only": "x"}]) == {"text_a": "only", "text_b": "only"}
    assert text_columns_guess(("text",), ["id", "first", "y"], recs) == {"text": "first"}


def test_the_label_column_is_the_one_holding_label_names():
    """A labeled file whose label column was not named "label" (mr's evaluation file: review, sentiment) was
    imported without its labels unless the user noticed the "(none)" preselected."""
    from ui.common import label_column_guess

    labels = ["negative", "positive"]
    recs = [{"review": "good", "sentiment": "positive", "id": 1}, {"review": "bad", "sentiment": " negative"},
            {"review": "meh", "sentiment": ""}]  # fmt: skip
    assert label_column_guess(labels, ["review", "sentiment", "id"], recs, taken=["review"]) == "sentiment"
    assert label_column_guess(labels, ["review", "label"], [{"review": "x", "label": 1}]) == "label"  # by name
    assert label_column_guess(["0", "1"], ["review", "y"], [{"review": "x", "y": 1}]) is None  # numbers: positions
    assert label_column_guess(labels, ["review"], [{"review": "positive"}], taken=["review"]) is None  # the text
    assert label_column_guess(labels, ["review", "other"], [{"review": "x", "other": "maybe"}]) is None


def test_example_project_and_import_by_path(env):
    db, tmp, _ = env
    from storage import jobs as jobq
    from ui.common import GOTO

    at = app("pages/projects.py")
    at.button(key="example_create").click().run()
    assert not at.exception
    p = st_store.list_projects(db)[0]
    assert at.session_state[GOTO] == p.id
    at.session_state["project"] = p.id  # what app.py does with GOTO on the next run (AppTest reruns pages only)
    at.run()
    assert st_store.count_examples(db, p.id) == 60 and sum(st_store.class_counts(db, p.id)) == 10
    (tmp / "imports").mkdir()
    secret = tmp / "credentials.json"  # outside the import folder: never read, never previewed (issue 13.1)
    secret.write_text('{"text": "the server\'s secret"}\n')
    for typed in (str(secret), "../credentials.json"):
        at.text_input(key="import_path").input(typed).run()
        assert any("Only files under" in e.value for e in at.error) and not at.dataframe
    good = tmp / "imports" / "more.csv"
    good.write_text("id,body,label\n17,fresh text one,\n18,fresh text two,positive\n")
    at.text_input(key="import_path").input("more.csv").run()
    assert at.selectbox(key="map_text").value == "body"  # the text, not the first (id) column (issue 12.7)
    assert at.selectbox(key="map_label").value == "label"
    at.button(key="import_go").click().run()
    assert any("Imported 2 examples" in s.value and "1 with labels" in s.value for s in at.success)
    assert any("62 examples" in m.value for m in at.markdown)  # the list is fresh at once (issue 12.4)
    # the worker is asked to read the texts ahead of the first prompt scoring: one job for imports in a row
    embeds = lambda: [j for j in jobq.list_jobs(db, p.id) if j.kind == "embed"]  # noqa: E731
    assert [j.status for j in embeds()] == ["queued"]
    second = tmp / "imports" / "second.csv"
    second.write_text("text,label\nyet another,negative\n")
    at.selectbox(key="map_label").select("(none)").run()
    at.text_input(key="import_path").input(str(second)).run()
    assert at.selectbox(key="map_label").value == "label"  # a new file: no stale choice from the last one
    numbers = tmp / "imports" / "numbers.csv"  # class positions, said so by the user (issue 13.9)
    numbers.write_text("text,label\nnumbered one,1\nnumbered two,0\n")
    at.text_input(key="import_path").input("numbers.csv").run()
    at.button(key="import_go").click().run()
    assert any("class positions" in e.value for e in at.error)
    at.checkbox(key="map_indices").check().run()
    at.button(key="import_go").click().run()
    assert any("Imported 2 examples" in s.value and "2 with labels" in s.value for s in at.success)
    assert [j.status for j in embeds()] == ["queued"]
    bad = tmp / "imports" / "bad.csv"
    bad.write_text("review\nok\nnot,ok\n")
    at.text_input(key="import_path").input(str(bad)).run()
    assert any("line 3 has 2 fields" in e.value for e in at.error)
    assert not at.exception
    orders = [j for j in jobq.list_jobs(db, p.id) if j.kind == "diversity"]  # the Label page's diverse order
    assert [(j.status, j.payload) for j in orders] == [("queued", {"background": True})]
    # delete: refused while a job is queued (not the embed and diversity jobs an import queues: they go with the
    # project), then done after typing the name
    job = jobq.enqueue(db, "predict", {"run_id": None}, project_id=p.id)
    at.text_input(key=f"del_name_{p.id}").input(p.name[:-1]).run()
    at.button(key=f"del_{p.id}").click().run()  # enabled before the name is typed, but it needs the name
    assert any("Type the project's name exactly" in e.value for e in at.error) and st_store.list_projects(db)
    at.text_input(key=f"del_name_{p.id}").input(p.name).run()
    at.button(key=f"del_{p.id}").click().run()
    assert any("cancel them first" in e.value for e in at.error) and st_store.list_projects(db)
    jobq.request_cancel(db, job.id)
    at.button(key=f"del_{p.id}").click().run()
    assert not at.exception and not st_store.list_projects(db)
    assert st_store.count_examples(db, p.id) == 0


def _gated_page():
    import streamlit as st

    from ui.common import access_granted

    if access_granted():
        st.title("inside")


def test_opened_to_a_network_the_app_needs_the_secret(env, monkeypatch):
    """Issue 13.1: listening on every interface with no authentication, anyone on the network could read the
    server's files and delete projects. Localhost is the default; opened to a network, a secret is required."""
    from streamlit import config

    assert config.get_option("server.address") == "localhost"  # .streamlit/config.toml
    config.set_option("server.address", "0.0.0.0")  # as `streamlit run app.py --server.address 0.0.0.0`
    try:
        monkeypatch.delenv("LIST_SECRET", raising=False)
        at = app()
        assert any("no secret is set" in e.value for e in at.error) and not at.title  # no page at all
        monkeypatch.setenv("LIST_SECRET", "s3cret")
        assert not app().title and not app().error  # asks for the secret, shows nothing else
        # the gate alone (AppTest's reruns of a multipage app run only the page, not app.py)
        at = AppTest.from_function(_gated_page, default_timeout=TIMEOUT).run()
        assert not at.title
        at.text_input(key="access_secret").input("guess").run()
        assert any("Wrong secret" in e.value for e in at.error) and not at.title
        at.text_input(key="access_secret").input("s3cret").run()
        assert [t.value for t in at.title] == ["inside"] and not at.error and not at.text_input
        at.run()
        assert [t.value for t in at.title] == ["inside"]  # once per browser session
        # on localhost (e.g. behind a reverse proxy) a secret that is set is asked for too
        config.set_option("server.address", "localhost")
        at = AppTest.from_function(_gated_page, default_timeout=TIMEOUT).run()
        assert not at.title and at.text_input(key="access_secret")
    finally:
        config.set_option("server.address", "localhost")


def test_prompt_page_flags_bad_templates_and_words(env):
    db, _, dirs = env
    p = make_project(db, str(dirs["bert"]), with_prompt=False)
    at = app("pages/prompt.py", p.id)
    at.text_input(key="pw_template").input("{text} It was great .")
    at.text_input(key="pw_word_0").input("bad")
    at.text_input(key="pw_word_1").input("great").run()
    assert any("exactly one" in e.value and "mask" in e.value for e in at.error)
    at.text_input(key="pw_template").input("{text} It was {mask} .")
    at.text_input(key="pw_word_1").input("unfathomableness").run()
    assert any("'unfathomableness' is 5 tokens" in e.value for e in at.error)
    at.button(key="pw_save").click().run()  # enabled (a click made as the fix is typed was lost), but refused
    assert [t.value for t in at.toast] == ["Not saved: fix the problem above first."]
    assert st_store.latest_prompt(db, p.id) is None
    at.text_input(key="pw_word_1").input("great").run()
    assert not at.error and "[MASK]" in at.code[0].value
    assert at.button(key="pw_save").proto.type == "primary"  # not saved yet
    at.button(key="pw_save").click().run()
    assert st_store.latest_prompt(db, st_store.list_projects(db)[0].id).label_words == ["bad", "great"]
    # saved: the button no longer asks for a click (it stayed highlighted), until the prompt changes again
    assert any("Saved as version 1" in m.value for m in at.success)
    assert at.button(key="pw_save").proto.type == "secondary"
    at.run()
    assert any("Version 1" in c.value for c in at.caption) and at.button(key="pw_save").proto.type == "secondary"
    at.text_input(key="pw_word_1").input("good").run()
    assert at.button(key="pw_save").proto.type == "primary"
    at.text_input(key="pw_word_1").input("great").run()
    at.button(key="pw_score").click().run()
    assert jobq.list_jobs(db)[0].kind == "prompt_eval"


def test_workbench_on_a_sentence_encoder_before_any_label(env, tiny_headless_dir):
    """No MLM head: phrases and descriptions are accepted, the preview shows the verbalisers, scoring with 0 gold
    labels shows the pool's predicted class shares, and the prompt's predictions become the Label page's
    suggestions."""
    db, tmp, _ = env
    p = make_project(db, str(tiny_headless_dir), with_prompt=False)
    at = app("pages/prompt.py", p.id)
    assert any("sentence encoder" in c.value for c in at.caption)
    at.text_input(key="pw_word_0").input("bad, really awful")  # several words, one a phrase
    at.text_input(key="pw_word_1").input("great")
    at.text_input(key="pw_desc_1").input("a review that praises the film").run()
    assert not at.error, [e.value for e in at.error]
    preview = [c.value for c in at.code]
    assert preview[0] == "negative: It was bad . | It was really awful ."
    assert preview[1] == "positive: It was great . | a review that praises the film"
    at.button(key="pw_save").click().run()
    saved = st_store.latest_prompt(db, p.id)
    assert saved.label_words == [["bad", "really awful"], "great"] and saved.descriptions[1].startswith("a review")
    at.button(key="pw_score").click().run()
    assert Worker(str(tmp / "app.db")).run_once().status == "succeeded"
    at.run()
    assert not at.exception, at.exception
    board = at.dataframe[0].value  # the leaderboard
    shares = board[["predicts negative", "predicts positive"]].iloc[0]
    assert abs(shares.sum() - 1.0) < 1e-6  # the class shares on the pool (20 texts, no gold labels)
    assert "gold accuracy" not in board and "loss" not in board  # no column of empty cells before any gold label
    assert any("No gold labels yet" in c.value for c in at.caption)
    label = switch(at, "pages/label.py")
    assert any(c.value.startswith("Your prompt suggests") for c in label.caption)


def test_workbench_starts_the_label_words_as_the_class_names(env, tiny_headless_dir):
    """Before any saved prompt the label words are the class names, so scoring and word suggestions work at once
    (the user had to invent words before "Score prompts" did anything); a saved prompt's words replace them."""
    db, tmp, dirs = env
    p = make_project(db, str(tiny_headless_dir), with_prompt=False)
    at = app("pages/prompt.py", p.id)
    assert [at.text_input(key=f"pw_word_{i}").value for i in (0, 1)] == ["negative", "positive"]
    assert any("start as the class names" in c.value for c in at.caption)
    assert not at.button(key="pw_score").disabled and not at.error
    at.button(key="pw_score").click().run()
    job = jobq.list_jobs(db)[0]
    assert job.kind == "prompt_eval" and job.payload["candidates"][0]["label_words"] == ["negative", "positive"]
    st_store.save_prompt(db, p.id, "{text} It was {mask} .", ["bad", "great"])
    at = app("pages/prompt.py", p.id)
    assert [at.text_input(key=f"pw_word_{i}").value for i in (0, 1)] == ["bad", "great"]
    assert not any("start as the class names" in c.value for c in at.caption)
    # an MLM head: "negative" and "positive" are one token of the tiny BERT's vocabulary each, so they stay
    mlm = st_store.create_project(db, "mlm", "single", ["positive", "unfathomableness"], str(dirs["bert"]), 8)
    at = app("pages/prompt.py", mlm.id)
    assert [at.text_input(key=f"pw_word_{i}").value for i in (0, 1)] == ["positive", ""]
    assert any("Type at least one label word for “unfathomableness”" in i.value for i in at.info)


def test_workbench_warns_a_pair_project_on_a_sentence_encoder(env, tiny_headless_dir):
    """A pair task on the default kind of backbone ends near chance (rte in BENCHMARKS.md): the workbench says so
    before any label is given; on a backbone with an MLM head it does not."""
    db, _, dirs = env
    pair = st_store.create_project(db, "nli", "pair", ["entailment", "not_entailment"], str(tiny_headless_dir))
    at = app("pages/prompt.py", pair.id)
    assert any("knows little about how two texts relate" in w.value for w in at.warning)
    mlm = st_store.create_project(db, "nli-mlm", "pair", ["entailment", "not_entailment"], str(dirs["bert"]))
    assert not any("two texts relate" in w.value for w in app("pages/prompt.py", mlm.id).warning)
    single = make_project(db, str(tiny_headless_dir), with_prompt=False)
    assert not any("two texts relate" in w.value for w in app("pages/prompt.py", single.id).warning)
    # the baseline it points to is offered to pair projects only
    assert "Pair similarity (baseline, pair tasks)" in app("pages/train.py", pair.id).selectbox(key="tr_method").options
    assert (
        "Pair similarity (baseline, pair tasks)"
        not in app("pages/train.py", single.id).selectbox(key="tr_method").options
    )


def test_workbench_scores_prompts_on_the_evaluation_split(env):
    """With a labeled evaluation split, each candidate's accuracy on it is a column of the leaderboard (the
    prompt's accuracy on hundreds of labels, before any gold label), and it orders the board."""
    db, tmp, dirs = env
    p = make_project(db, str(dirs["bert"]))
    st_store.import_file(db, p.id, b"text,label\ngreat one,positive\nbad one,negative\nawful one,negative\n",
                         {"text": "text"}, name="eval.csv", label_column="label", split="eval")  # fmt: skip
    at = app("pages/prompt.py", p.id)
    at.text_area(key="pw_candidates").input("{text} It was {mask} . | great, bad")
    at.button(key="pw_score").click().run()
    done = Worker(str(tmp / "app.db")).run_once()
    assert done.status == "succeeded", done.error
    at.run()
    assert not at.exception, at.exception
    board = at.dataframe[0].value
    accs = board["eval accuracy (3)"].tolist()
    assert accs == sorted(accs, reverse=True) and len(accs) == 2
    assert accs[0] + accs[1] == pytest.approx(1.0)  # the candidate swaps the prompt's classes
    assert "problem" not in board.columns  # no column of empty cells when every candidate scored
    # the scores before the prompts' texts (a long list of label words pushed them out of view)
    assert board.columns.tolist()[:3] == ["source", "eval accuracy (3)", "predicts negative"]
    assert board.columns.tolist()[-2:] == ["template", "label words"]
    assert any("Best first by accuracy on your evaluation split (3 labeled texts)" in c.value for c in at.caption)


def test_a_saved_prompt_becomes_the_label_pages_suggestions_without_a_scoring(env, tiny_headless_dir, monkeypatch):
    """Before any run the Label page suggested nothing until the prompt was scored on the board (a real-browser
    session with the default backbone: a saved prompt, then the Label page, and no suggestion). Saving a prompt now
    queues its zero-shot predictions of the pool (an older queued request replaced); an unchanged save, or a project
    whose run already suggests, queues nothing."""
    import ui.actions as actions

    db, tmp, _ = env
    p = make_project(db, str(tiny_headless_dir), with_prompt=False)
    at = app("pages/prompt.py", p.id)
    at.text_input(key="pw_word_0").input("bad")
    at.text_input(key="pw_word_1").input("great").run()
    at.button(key="pw_save").click().run()

    def suggest_jobs():
        return [(j.status, j.payload["prompt"]["label_words"]) for j in jobq.list_jobs(db, p.id)
                if j.kind == "prompt_suggest"]  # fmt: skip

    assert suggest_jobs() == [("queued", ["bad", "great"])]
    waiting = app("pages/label.py", p.id)  # in the default order (diverse first) too, the page says what comes
    assert any("writing your prompt's suggestions." in c.value for c in waiting.caption)
    at.button(key="pw_save").click().run()  # unchanged: the same version, nothing new to suggest
    assert suggest_jobs() == [("queued", ["bad", "great"])]
    at.text_input(key="pw_word_1").input("good").run()
    at.button(key="pw_save").click().run()
    assert sorted(suggest_jobs()) == [("cancelled", ["bad", "great"]), ("queued", ["bad", "good"])]
    done = Worker(str(tmp / "app.db"), lane="light").run_once()
    assert (done.kind, done.status, done.result) == ("prompt_suggest", "succeeded", {"prompt_suggestions": 20})
    label = app("pages/label.py", p.id)
    assert any("Your prompt suggests" in c.value for c in label.caption) and not label.exception
    assert not any("No suggestions yet" in c.value for c in label.caption)
    monkeypatch.setattr(actions.predq, "has_run_predictions", lambda db, project_id: True)
    at.text_input(key="pw_word_1").input("great").run()
    at.button(key="pw_save").click().run()
    assert st_store.latest_prompt(db, p.id).version == 3 and len(suggest_jobs()) == 2  # a run's suggestions stay


def test_the_label_page_asks_the_worker_for_a_saved_prompts_suggestions(env, tiny_headless_dir):
    """A prompt saved before saving queued suggestions (or whose request was cancelled): the Label page offers them
    in one click instead of sending the user to the workbench; without a prompt it asks for one."""
    db, tmp, _ = env
    p = make_project(db, str(tiny_headless_dir), with_prompt=False)
    at = app("pages/label.py", p.id)
    assert any("No suggestions yet: write a prompt on the Prompt workbench" in c.value for c in at.caption)
    assert not [b for b in at.button if b.key == "lb_suggest"]
    st_store.save_prompt(db, p.id, "{text} It was {mask} .", ["bad", "great"])  # the store alone queues nothing
    at.run()
    assert any(c.value == "No suggestions yet." for c in at.caption)
    at.button(key="lb_suggest").click().run()
    assert [(j.kind, j.payload["prompt"]["label_words"]) for j in jobq.list_jobs(db, p.id)] == [
        ("prompt_suggest", ["bad", "great"])
    ]
    assert any("writing your prompt's suggestions." in c.value for c in at.caption)
    assert Worker(str(tmp / "app.db"), lane="light").run_once().status == "succeeded"
    at.run()
    assert any("Your prompt suggests" in c.value for c in at.caption) and not at.exception


def test_on_a_large_pool_the_board_comes_first_and_the_label_pages_suggestions_follow(env, monkeypatch):
    """A pool larger than the board's sample: the board is shown at once and says that the prompt's suggestions for
    every example are being written in the background; the Label page's "most uncertain" says so too, then uses
    them."""
    import worker.handlers as handlers

    db, tmp, dirs = env
    p = make_project(db, str(dirs["bert"]))
    monkeypatch.setattr(handlers, "SAMPLE_POOL", 4)  # the board reads 4 of the 20 pool texts
    at = app("pages/prompt.py", p.id)
    at.button(key="pw_score").click().run()
    worker = Worker(str(tmp / "app.db"), lane="light")
    assert worker.run_once().status == "succeeded"
    at.run()
    assert at.dataframe and any("for all 20 examples as the Label page's suggestions" in c.value for c in at.caption)
    label = app("pages/label.py", p.id)
    label.radio(key="lb_strategy").set_value("uncertain").run()
    assert any("writing your prompt's suggestions" in c.value for c in label.caption)
    assert worker.run_once().kind == "prompt_suggest"
    label.run()
    assert any("Your prompt suggests" in c.value for c in label.caption) and not label.exception


def test_workbench_saves_a_row_of_the_board_as_the_prompt(env):
    """A candidate or "your prompt + suggested words" that scores better had to be retyped into the editor word by
    word; a row of the board (other than the saved prompt itself) becomes the prompt with one click, its class
    descriptions kept."""
    db, tmp, dirs = env
    p = make_project(db, str(dirs["bert"]), with_prompt=False)
    st_store.save_prompt(db, p.id, "{text} It was {mask} .", ["bad", "great"], ["a bad review", "a good review"])
    at = app("pages/prompt.py", p.id)
    at.text_area(key="pw_candidates").input("{text} All in all, it was {mask} . | awful/bad, good\n{text} | a, b")
    at.button(key="pw_score").click().run()
    # said once (a toast): a message stayed on screen, still saying "queued", beside the finished board
    assert [t.value for t in at.toast] == ["Scoring queued; results appear below."] and not at.success
    assert Worker(str(tmp / "app.db")).run_once().status == "succeeded"
    at.run()
    assert not at.exception, at.exception
    assert sum(bool(x) for x in at.dataframe[0].value["problem"]) == 1  # the template without a mask
    assert len(at.selectbox(key="pw_adopt_row").options) == 1  # neither it nor the saved prompt is offered
    at.button(key="pw_adopt").click().run()
    assert not at.exception, at.exception
    latest = st_store.latest_prompt(db, p.id)
    assert (latest.version, latest.template) == (2, "{text} All in all, it was {mask} .")
    assert latest.label_words == [["awful", "bad"], "good"] and latest.descriptions == ["a bad review", "a good review"]
    # the editor shows the new prompt, saved
    assert at.text_input(key="pw_template").value == "{text} All in all, it was {mask} ."
    assert (at.text_input(key="pw_word_0").value, at.text_input(key="pw_word_1").value) == ("awful, bad", "good")
    assert any("Saved as version 2" in m.value for m in at.success)


def test_label_page_labels_skips_undoes_and_fixes(env):
    db, _, dirs = env
    p = make_project(db, str(dirs["bert"]))
    at = app("pages/label.py", p.id)
    shown = lambda: at.markdown[0].value  # noqa: E731  (the example on screen)
    first = shown()
    # the shortcut is shown by Streamlit beside the label, once (issue 12.9: it was "negative [1] 1")
    assert at.button(key="lb_label_0").label == "negative" and at.button(key="lb_skip").label == "Skip"
    at.button(key="lb_label_1").click().run()  # shortcut "2"
    assert st_store.class_counts(db, p.id) == [0, 1]
    second = shown()
    assert second != first
    at.button(key="lb_skip").click().run()
    assert shown() not in (first, second)  # skipped: the next example is on screen
    at.button(key="lb_label_0").click().run()
    assert st_store.class_counts(db, p.id) == [1, 1]
    skipped = next(e for e in st_store.page_examples(db, p.id, limit=100) if e.text in second)
    assert skipped.gold is None  # the label went to the example after the skipped one
    at.button(key="lb_undo").click().run()
    assert st_store.class_counts(db, p.id) == [0, 1]
    assert not at.exception and first
    at.radio(key="lb_show").set_value("labeled").run()
    assert not at.exception


def test_a_table_edit_is_applied_once_and_undo_is_per_session(env):
    """Issue 13.3: the find-and-fix table re-applied its last edit on every rerun, so Undo was redone at once and
    another session's later label was overwritten. Issue 13.4: Undo reverted another session's label."""
    db, _, dirs = env
    p = make_project(db, str(dirs["bert"]))
    at = AppTest.from_file(str(ROOT / "pages/label.py"), default_timeout=TIMEOUT)
    at.session_state["project"] = p.id
    at.session_state["lb_show"] = "all"
    at.run()
    key = at.data_editor[0].key
    first = int(at.data_editor[0].value["id"][0])
    at.session_state[key] = {"edited_rows": {0: {"label": "positive"}}, "added_rows": [], "deleted_rows": []}
    at.run()
    assert not at.exception and st_store.get_example(db, first).gold == 1
    other = [e.id for e in st_store.page_examples(db, p.id, limit=100) if e.id != first][0]
    st_store.set_label(db, other, 0, by="another session")  # someone else labels meanwhile
    at.button(key="lb_undo").click().run()  # this session's undo: its table edit, not the other session's label
    assert st_store.get_example(db, first).gold is None and st_store.get_example(db, other).gold == 0
    st_store.set_label(db, first, 0, by="another session")
    at.radio(key="lb_show").set_value("labeled").run()  # any click: the old edit is never applied again
    at.run()
    assert not at.exception and st_store.get_example(db, first).gold == 0
    table_edits = [h for h in st_store.history(db, p.id, example_id=first) if h.reason == "table"]
    assert len(table_edits) == 1


def test_train_page_shows_a_settings_combination_it_cannot_run_beside_the_settings(env):
    """Each value can be valid on its own and the pair not (teacher_views' widest view must be feature_layers):
    the page says so under the settings and Start run stays disabled, before anything reaches the queue."""
    db, _, dirs = env
    p = make_project(db, str(dirs["bert"]))
    at = app("pages/train.py", p.id)
    at.selectbox(key="tr_preset").select("custom").run()
    at.text_input(key="tr_feature_layers").input("3").run()  # the fast preset's views are 1, 3 and 6
    assert not at.exception
    assert any("teacher_views='1,3,6'" in e.value and "feature_layers must be 6" in e.value for e in at.error)
    assert any("leave teacher_views empty" in e.value for e in at.error)
    assert at.button(key="tr_start").disabled
    at.text_input(key="tr_teacher_views").input("").run()
    assert not at.exception and not at.error and not at.button(key="tr_start").disabled


def test_train_rounds_inspect_export_pages_after_a_run(env):
    db, _, dirs = env
    p = make_project(db, str(dirs["bert"]))
    at = app("pages/train.py", p.id)
    assert any("label at least one" in e.value for e in (at.button(key="tr_start").click().run().error))
    ex = st_store.page_examples(db, p.id, limit=100)
    for e in ex[:8]:
        st_store.set_label(db, e.id, 1 if e.text.startswith(("great", "good")) else 0)
    for e in ex:
        if e.text in ("bad movie", "awful film"):
            st_store.set_label(db, e.id, 0)
    at.selectbox(key="tr_preset").select("custom").run()
    for k, v in {
        "rounds": "1",
        "student_steps": "4",
        "teacher_epochs": "1",
        "finetune_epochs": "1",
        "max_length": "32",
    }.items():
        at.text_input(key=f"tr_{k}").input(v)
    at.text_input(key="tr_tau").input("0.0")
    at.text_input(key="tr_adapter.bottleneck").input("4")
    at.selectbox(key="tr_meta_similarity").select("cosine")
    at.selectbox(key="tr_kd_selection").select("tau")
    at.selectbox(key="tr_student_adapters").select("identity")
    at.button(key="tr_start").click().run()
    assert not at.exception and any("queued" in s.value for s in at.success)
    cfg = runq.list_runs(db, p.id)[0].config
    assert cfg["meta_similarity"] == "cosine" and cfg["kd_selection"] == "tau" and cfg["adapter"]["bottleneck"] == 4
    assert cfg["student_adapters"] == "identity"
    assert Worker(db.conn.execute("PRAGMA database_list").fetchone()[2]).run_once().status == "succeeded"
    run = runq.list_runs(db, p.id)[0]
    at.run()
    assert not at.exception
    # the end of the run is announced, and the history is fresh (issue 12.4: it said "queued" after the run)
    assert any(f"Run {run.id} finished: succeeded" in s.value for s in at.success)
    assert at.dataframe[0].value["status"].tolist() == ["succeeded"]
    for page in ("pages/rounds.py", "pages/inspect.py", "pages/export.py"):
        switch(at, page)
    charts = [json.loads(c.proto.spec) for c in switch(at, "pages/rounds.py").get("plotly_chart")]
    assert charts and all(c["layout"]["xaxis"]["dtick"] == 1 for c in charts[:3])  # whole rounds (issue 12.9)
    at = switch(at, "pages/inspect.py")
    pls = runq.pseudo_labels(db, run.id, 1, sort="weight")
    at.button(key=f"in_acc_{run.id}_1_{pls[0].example_id}").click().run()
    assert st_store.get_example(db, pls[0].example_id).gold == pls[0].label
    assert st_store.history(db, p.id)[0].reason == "accept_pseudo"
    at.button(key=f"in_rej_{run.id}_1_{pls[1].example_id}").click().run()
    assert st_store.history(db, p.id)[0].reason == "reject_pseudo"
    restore = at.button(key=f"in_rej_{run.id}_1_{pls[1].example_id}")
    assert restore.label == "Restore"  # a rejection can be undone (issue 12.9)
    restore.click().run()
    from storage.queue import excluded_ids

    assert pls[1].example_id not in excluded_ids(db, p.id)
    # "Correct to" labels once: later reruns do not apply it again
    target = pls[2].example_id
    labels = st_store.get_project(db, p.id).labels
    fix = at.selectbox(key=f"in_fix_{run.id}_1_{target}")  # says what it does (it showed "—"); only the classes
    assert fix.proto.placeholder == "Correct to…" and fix.options == labels and fix.value is None
    fix.select(labels[1 - pls[2].label]).run()
    n = len(st_store.history(db, p.id))
    assert st_store.get_example(db, target).gold == 1 - pls[2].label
    at.run()
    at.run()
    assert len(st_store.history(db, p.id)) == n and at.selectbox(key=f"in_fix_{run.id}_1_{target}").value is None
    at = switch(at, "pages/export.py")
    for fmt in ("native", "peft", "folded"):  # all three formats from the page (issue 12.5)
        at.radio(key="ex_format").set_value(fmt).run()
        at.button(key="ex_adapter").click().run()
        assert jobq.list_jobs(db)[0].kind == "export" and jobq.list_jobs(db)[0].payload["format"] == fmt
    at.button(key="ex_data").click().run()
    assert not at.exception
    at.button(key="pr_go").click().run()  # never disabled (a click made as the text is typed was lost); says why
    assert any("Type a text or upload a file first" in w.value for w in at.warning)
    at.text_area(key="pr_text").input("great").run()
    at.button(key="pr_go").click().run()
    assert jobq.list_jobs(db)[0].kind == "predict"
    worker = Worker(db.conn.execute("PRAGMA database_list").fetchone()[2])
    while worker.run_once() is not None:  # the export and predict jobs
        pass
    at.run()  # a typed text's prediction is said in words, with its probability (it was a bar chart alone)
    assert any(re.fullmatch(r"Prediction: \*\*(negative|positive)\*\* \(\d+\.\d%\)", m.value) for m in at.markdown)
    # a file: the text column is guessed (not the id column), empty rows are skipped, the other columns come back
    at.text_area(key="pr_text").input("").run()
    at.file_uploader(key="pr_file").upload(
        "in.csv", b"id,review,shop\n7,great movie,A\n8,,B\n9,bad film,C\n", "text/csv"
    )
    at.run()
    assert at.selectbox(key="pr_col_text").value == "review"
    assert any("1 rows with an empty text are skipped" in c.value for c in at.caption)
    at.button(key="pr_go").click().run()
    while worker.run_once() is not None:
        pass
    at.run()
    assert any(b.proto.label == "Download predictions.csv" for b in at.get("download_button"))
    header, *lines = at.session_state["pr_last_csv"].splitlines()  # what that button downloads
    said = [lab for lab in ("negative", "positive") for x in lines if x.split(",")[3] == lab]
    shares = ", ".join(f"{lab} {said.count(lab)} ({said.count(lab) / 2:.0%})" for lab in ("negative", "positive"))
    from ui.common import md_escape  # class names are the user's: shown as text

    assert any(s.value == md_escape(f"Predicted 2 rows: {shares}.") for s in at.success), [s.value for s in at.success]
    assert header.startswith("id,review,shop,prediction,p_negative") and [x.split(",")[0] for x in lines] == ["7", "9"]
    at.file_uploader(key="pr_file").clear()
    at.text_area(key="pr_text").input("great").run()
    at.run()  # one rerun, as the page's own timer does: the downloads are there without a reload
    assert not at.exception, at.exception
    assert any("succeeded" in c.value for c in at.caption)
    labels = [b.proto.label for b in at.get("download_button")]
    assert {k for k in ("native", "peft", "folded") if any(f"adapter-{k}" in x for x in labels)} == {
        "native", "peft", "folded"}, labels  # fmt: skip
    # each download is the zip the export job made, read on a click: a page run does not zip the folders again
    zips = {a.kind: Path(a.path).with_name(Path(a.path).name + ".zip") for a in exportq.artifacts(db, p.id)}
    made = {k: z.stat().st_mtime_ns for k, z in zips.items()}
    at.run()
    assert {k: z.stat().st_mtime_ns for k, z in zips.items()} == made and len(made) == 3
    cards = [m.value for m in at.markdown if "LiST classifier (PEFT LoRA export)" in m.value]
    assert cards and not cards[0].startswith("---") and "library_name" not in cards[0]  # the Hub header is not shown


def test_a_baseline_run_predicts_and_exports_from_the_export_page(env):
    """The Export page listed adapter runs only, so a baseline's run (a probe, the zero-shot prompt, the pair-
    similarity rule) could be neither used nor exported. Its kept model now predicts and exports in the formats it
    has (no PEFT: there are no adapters)."""
    from ui import actions

    db, tmp, dirs = env
    p = make_project(db, str(dirs["bert"]))
    for e in st_store.page_examples(db, p.id, limit=100):
        if e.text.split()[0] in ("great", "bad") and e.text.split()[1] in ("movie", "film"):
            st_store.set_label(db, e.id, int(e.text.startswith("great")))
    run, _ = actions.start_run(db, p.id, "self-train-probe")
    worker = Worker(tmp / "app.db")
    assert worker.run_once().status == "succeeded"
    at = app("pages/export.py", p.id)
    assert at.get("file_uploader")[0].proto.max_upload_size_mb == 50  # the import limit, not Streamlit's 200 MB
    assert at.selectbox(key="run").value == run.id
    assert at.radio(key="ex_format").options == ["native", "folded"]
    assert any("the head only" in c.value for c in at.caption)
    assert "ex_pseudo" not in [c.key for c in at.checkbox]  # no rounds, so no pseudo-labels to add to the data
    at.button(key="ex_adapter").click().run()
    at.text_area(key="pr_text").input("great film").run()
    at.button(key="pr_go").click().run()
    while worker.run_once() is not None:  # the export and the prediction
        pass
    at.run()
    assert not at.exception, at.exception
    predicted, exported = jobq.list_jobs(db)[:2]
    assert (predicted.kind, predicted.status, exported.kind, exported.status) == (
        "predict", "succeeded", "export", "succeeded")  # fmt: skip
    assert len(predicted.result["probs"][0]) == 2 and abs(sum(predicted.result["probs"][0]) - 1) < 1e-5
    # a baseline has no adapters: its download is "native", not "adapter-native" (the stored kind)
    assert any(b.proto.label.startswith("Download model · native (") for b in at.get("download_button"))
    assert not any("adapter" in b.proto.label for b in at.get("download_button"))
    # a run whose model is not on disk (made before runs kept one) says so instead of failing its jobs
    import shutil

    shutil.rmtree(Path(runq.get_run(db, run.id).checkpoint_dir) / "model")
    at.run()
    assert any("kept no model" in w.value for w in at.warning) and "ex_adapter" not in [b.key for b in at.button]
    assert "pr_go" not in [b.key for b in at.button]


def test_app_navigation_and_sidebar(env):
    db, _, dirs = env
    p = make_project(db, str(dirs["bert"]))
    at = app()  # AppTest keeps sidebar elements of the first run only, so everything is checked on it
    assert at.title[0].value == "Projects"
    assert at.sidebar.selectbox[0].value == p.id
    assert any("LIST_NO_WORKER" in c.value for c in at.sidebar.caption)
    assert any("0 / 8 gold labels" in c.value for c in at.sidebar.caption)


def test_open_and_create_switch_project_through_the_next_run(env):
    """Issue 12.1: Open and Create never write the sidebar's widget state after it exists (that raised
    StreamlitWidgetAlreadyInstantiatedError); they leave the switch for app.py's next run (the real-browser test
    checks the whole journey: sidebar, URL, reload, second tab)."""
    from ui.common import GOTO

    db, _, dirs = env
    first = make_project(db, str(dirs["bert"]))
    second = st_store.create_project(db, "news", "single", ["a", "b"], str(dirs["bert"]))
    at = app("pages/projects.py", second.id)
    at.button(key=f"open_{first.id}").click().run()
    assert not at.exception, at.exception
    assert at.session_state[GOTO] == first.id and at.session_state["project"] == second.id
    at.text_input(key="np_name").input("third")
    at.text_input(key="np_labels").input("x, y")
    at.text_input(key="np_backbone").input(str(dirs["bert"]))
    at.button(key="np_create").click().run()
    assert not at.exception, at.exception
    assert at.session_state[GOTO] == next(p.id for p in st_store.list_projects(db) if p.name == "third")


def test_pages_never_import_torch(env):
    """The UI must stay light: run every page in a fresh interpreter and check torch was not imported."""
    import subprocess
    import sys

    db, tmp, dirs = env
    make_project(db, str(dirs["bert"]))
    code = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"for page in {[p.name for p in sorted((ROOT / 'pages').glob('*.py')) if p.name != '__init__.py']}:\n"
        f"    at = AppTest.from_file({str(ROOT)!r} + '/pages/' + page, default_timeout=60)\n"
        "    at.session_state['project'] = 1\n"
        "    at.run()\n"
        "    assert not at.exception, (page, at.exception)\n"
        f"at = AppTest.from_file({str(ROOT)!r} + '/app.py', default_timeout=60)\n"
        "at.run()\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO_TORCH')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "NO_TORCH" in out.stdout, out.stdout + out.stderr


def test_job_status_line_shows_stage_and_run_eta():
    from types import SimpleNamespace

    from ui.common import job_status_line

    job = SimpleNamespace(id=3, kind="list_run", status="running", stage="meta (round 2)", step=5, total=10,
                          eta_seconds=42, run_eta_seconds=125)  # fmt: skip
    line = job_status_line(job)
    assert "5/10" in line and "ETA 42s for this stage" in line and "about 2m 05s left in the run" in line
    assert "training" in line and "student: meta-reweighted training (round 2)" in line  # words, not identifiers
    done = SimpleNamespace(**{**vars(job), "status": "succeeded"})
    assert job_status_line(done) == "job 3 · training · **succeeded**"  # no stale "5/10" once finished


EVIL = '![x](http://evil.example/t.png) http://evil.example/bare www.evil.example a@evil.example <a href="http://evil.example/a">a</a>'


def _rendered_markdown(at: AppTest, charts: bool = True) -> str:
    """Every element's protobuf text except what is never markdown (table cells, select box options; with
    `charts=False` also plotly charts, whose texts are not markdown and never autolinked)."""
    out, stack = [], list(at._tree.children.values())
    while stack:
        node = stack.pop()
        stack.extend(getattr(node, "children", {}).values())
        proto = getattr(node, "proto", None)
        if (
            proto is None
            or node.type in ("arrow_data_frame", "dataframe")
            or (not charts and "plotly" in str(node.type))
        ):
            continue
        if node.type in ("selectbox", "multiselect"):  # their options are plain text, never markdown
            proto = type(proto).FromString(proto.SerializeToString())
            del proto.options[:]
        out.append(str(proto))
    return "\n".join(out)


def test_an_underscore_inside_a_word_is_left_as_it_is():
    """`not_entailment` was written `not\\_entailment`: right on screen, but a widget's label is also its accessible
    name, which kept the backslash. Inside a word an underscore never makes emphasis, so it needs no escape."""
    from ui.common import md_escape

    assert md_escape("not_entailment") == "not_entailment" and md_escape("snake_case_2") == "snake_case_2"
    assert md_escape("_x_ a__b *y* x_") == "\\_x\\_ a\\_\\_b \\*y\\* x\\_"
    # a hyphen too ("sci\\-fi"); at the start of a line or beside a space it can make a list or a rule: escaped
    assert md_escape("sci-fi") == "sci-fi" and md_escape("non-toxic-2") == "non-toxic-2"
    assert md_escape("- a --- b-") == "\\- a \\-\\-\\- b\\-"


def test_untrusted_text_never_reaches_markdown_unescaped(env):
    """Issue 13.2: an imported file's header, example texts and label names reached markdown unescaped, and
    opening a page made the browser fetch an image from a host named in the data."""
    db, tmp, dirs = env
    p = st_store.create_project(db, f"p {EVIL}", "single", [f"neg {EVIL}", f"pos {EVIL}"], str(dirs["bert"]))
    st_store.add_examples(db, p.id, [{"text": f"text {i} {EVIL}"} for i in range(6)])
    st_store.save_prompt(db, p.id, "{text} It was {mask} .", ["bad", "great"])
    for i, e in enumerate(st_store.page_examples(db, p.id, limit=4)):
        st_store.set_label(db, e.id, i % 2)
    from ui import actions

    tiny = dict(rounds=1, student_steps=2, teacher_epochs=1, finetune_epochs=1, max_length=16, tau=0.0)
    actions.start_run(db, p.id, "list", "fast", overrides={**tiny, "adapter": {"bottleneck": 4}})
    assert Worker(str(tmp / "app.db")).run_once().status == "succeeded"  # rounds and pseudo-labels to show
    (tmp / "imports").mkdir()
    (tmp / "imports" / "h.csv").write_text(f'"{EVIL}",label\nsome text,x\n')
    for page in ("pages/projects.py", "pages/prompt.py", "pages/label.py", "pages/train.py", "pages/rounds.py",
                 "pages/inspect.py", "pages/export.py", "app.py"):  # fmt: skip
        at = app(page, p.id)
        if page == "pages/projects.py":
            at.text_input(key="import_path").input("h.csv").run()
            assert not at.exception
        md = _rendered_markdown(at)
        assert "](http://evil.example" not in md, page
        # bare URLs, www. and e-mail addresses would be autolinked (GFM): their ':', '.' and '@' are escaped
        bare = re.findall(r".{60}(?<!\\)(?:http://evil|www\.evil|@evil).{20}", _rendered_markdown(at, charts=False))
        assert not bare, (page, bare)
        for chart in at.get("plotly_chart"):  # plotly renders <a href> in legends and titles: shown as entities
            assert "<a href" not in json.dumps(json.loads(chart.proto.spec), ensure_ascii=False), page
        if page == "pages/inspect.py":  # the pseudo-labels (label names in markdown) were on screen
            assert any("pseudo-label **neg" in c.value or "pseudo-label **pos" in c.value for c in at.caption)


def test_round_facts_read_as_sentences_not_json():
    """The Rounds page ended with a collapsed JSON dump ("{...}") of the round's record: its numbers now read as a
    table of named facts, by hand here."""
    from list_core.records import RoundRecord, WeightStats
    from ui.common import round_facts, rounds_table

    rec = RoundRecord(round=2, gold_accuracy=1.0, eval_accuracy=0.68, eval_ece=0.2009, loss=0.0957,
                      pseudo_label_counts={"negative": 625, "positive": 845}, mean_confidence=0.8745, confident=736,
                      warmup_steps=90, student_steps=150, student_passes=1.63, zero_weight_steps=0, flip_rate=0.0347,
                      weights=WeightStats(count=960, mean=0.0625, std=0.12, max=1.0, zero_fraction=0.4656),
                      seconds={"pseudo_label": 13.0, "student": 107.7, "finetune": 7.0})  # fmt: skip
    assert round_facts(rec) == [
        {"what": "accuracy on the evaluation split", "value": "68.0%"},
        {"what": "calibration error on the evaluation split", "value": "0.201"},
        {"what": "accuracy on the gold labels (trained on)", "value": "100.0%"},
        {"what": "gold loss (last epoch)", "value": "0.096"},
        {"what": "pseudo-labels", "value": "1,470 (negative 625, positive 845)"},
        {"what": "their mean confidence", "value": "0.87"},
        {"what": "flipped since the last round", "value": "3.5%"},
        {"what": "confident ones in the KD warm-up", "value": "736 (90 steps)"},
        {"what": "student steps", "value": "150 (1.6 passes over the pseudo-labels)"},
        {"what": "meta-weights", "value": "960 draws: mean 0.062, max 1.000, 46.6% zero; 0 steps all zero"},
        {"what": "time", "value": "128 s (pseudo-labels 13, student 108, gold tuning 7)"},
    ]
    # the teacher's view of the prompt (round 0); nothing for what a round did not measure
    teacher = RoundRecord(round=0, gold_accuracy=0.9, prompt_gold_accuracy=0.7, prompt_evidence=0.91, prompt_weight=4.6)
    assert round_facts(teacher) == [
        {"what": "accuracy on the gold labels (trained on)", "value": "90.0%"},
        {"what": "the prompt alone on the gold labels", "value": "70.0%"},
        {"what": "the prompt's pseudo-labels weigh as", "value": "4.6 gold labels (evidence it beats chance 0.91)"},
    ]
    chose = RoundRecord(round=0, feature_layers=3, view_accuracy={"1": 0.8, "2": 0.8333, "3": 0.8667, "6": 0.8667},
                        seconds={"views": 5.2, "probe": 20.0})  # fmt: skip
    assert round_facts(chose) == [
        {"what": "layers the head reads", "value": "the top 3 (chosen by the teacher's k-fold accuracy on the gold "
                                                   "labels: top 1: 80%, top 2: 83%, top 3: 87%, top 6: 87%)"},
        {"what": "time", "value": "25 s (choosing the layers 5, fit on frozen features 20)"},
    ]  # fmt: skip
    one = RoundRecord(round=1, confident=6, warmup_steps=1, student_steps=2, student_passes=3.2)
    assert round_facts(one) == [
        {"what": "confident ones in the KD warm-up", "value": "6 (1 step)"},
        {"what": "student steps", "value": "2 (3.2 passes over the pseudo-labels)"},
    ]
    views = RoundRecord(round=0, teacher_views=[1, 3, 6])  # the fast preset's teacher and final model
    assert round_facts(views) == [{"what": "the teacher's views", "value": "its rule fitted on the top 1, 3 and 6 "
                                                                         "layers apart, averaged"}]  # fmt: skip
    assert round_facts(RoundRecord(round=0, teacher_views=[2])) == []  # every view read the same 2 layers
    lexical = RoundRecord(round=3, lexical_weight=0.5, lexical_vocabulary=12_345)  # the final model's
    assert round_facts(lexical) == [
        {"what": "lexical view", "value": "the final probabilities are 50% the model's and 50% a word and bigram "
                                          "classifier's (12,345 of them, fitted on the pool's latest pseudo-labels)"},
    ]  # fmt: skip
    cotrained = RoundRecord(round=2, pseudo_label_view=0.5)  # lexical_rounds: this round's labels from two views
    assert round_facts(cotrained) == [
        {"what": "pseudo-labels from two views", "value": "50% a word and bigram classifier's, cross-fitted on the "
                                                          "previous model's labels of the pool (lexical_rounds)"},
    ]  # fmt: skip
    assert round_facts(RoundRecord(round=3, final_mix=0.5)) == [
        {"what": "final model", "value": "its weights moved 50% of the way back to the teacher's (final_mix)"}
    ]
    table = rounds_table([teacher, rec])  # the rows keep each round's own order: the evaluation split first
    assert [r["what"] for r in table][:6] == [
        "accuracy on the evaluation split",
        "calibration error on the evaluation split",
        "accuracy on the gold labels (trained on)",
        "the prompt alone on the gold labels",
        "the prompt's pseudo-labels weigh as",
        "gold loss (last epoch)",
    ]
    assert table[0] == {"what": "accuracy on the evaluation split", "teacher": "", "round 2": "68.0%"}
    assert table[2] == {"what": "accuracy on the gold labels (trained on)", "teacher": "90.0%", "round 2": "100.0%"}
    assert table[3]["round 2"] == ""


def test_rounds_table_puts_a_later_rounds_fact_beside_its_neighbours():
    """A fact only later rounds have (lexical_rounds' "pseudo-labels from two views", from round 2 on) sat below
    the meta-weights, after everything round 1 had; it belongs under "pseudo-labels", as in each round's own list."""
    from list_core.records import RoundRecord, WeightStats
    from ui.common import rounds_table

    def rec(r, view=None, final=False):
        return RoundRecord(round=r, pseudo_label_counts={"negative": 5, "positive": 5}, pseudo_label_view=view,
                           mean_confidence=0.8, weights=WeightStats(count=16, mean=0.06, std=0.1, max=0.3,
                                                                    zero_fraction=0.5),
                           final_mix=0.5 if final else None)  # fmt: skip

    whats = [row["what"] for row in rounds_table([rec(1), rec(2, 0.5), rec(3, 0.5, final=True)])]
    assert whats == ["pseudo-labels", "pseudo-labels from two views", "their mean confidence", "meta-weights",
                     "final model"]  # fmt: skip


def test_rounds_page_says_which_round_is_kept_and_can_keep_another(env):
    """Issue 12.6: the exported adapter was the last round and nothing said so; the user can keep another."""
    from ui import actions

    db, tmp, dirs = env
    p = make_project(db, str(dirs["bert"]))
    for e in st_store.page_examples(db, p.id, limit=100)[:6]:
        st_store.set_label(db, e.id, 1 if e.text.startswith(("great", "good")) else 0)
    tiny = dict(rounds=2, student_steps=2, teacher_epochs=1, finetune_epochs=1, max_length=16, tau=0.0)
    run, _ = actions.start_run(db, p.id, "list", "fast", overrides={**tiny, "adapter": {"bottleneck": 4}})
    assert Worker(str(tmp / "app.db")).run_once().status == "succeeded"
    at = app("pages/rounds.py", p.id)
    assert any("keeps round 2 for export and prediction: the last round (no evaluation" in c.value for c in at.caption)
    facts = at.table[0].value  # a row per fact, a column per round; a static table, whose long cells wrap
    assert facts.columns.tolist() == ["what", "teacher", "round 1", "round 2"] and not at.get("json")
    from ui.common import md_escape

    assert facts["what"].tolist()[0] == md_escape("accuracy on the gold labels (trained on)")  # cells are markdown
    assert facts["teacher"].tolist()[facts["what"].tolist().index("pseudo-labels")] == ""  # the teacher made none
    at.select_slider(key="round").set_value(1).run()
    at.button(key="rd_keep").click().run()
    assert not at.exception and any("now keeps round 1" in s.value for s in at.success)
    kept = runq.get_run(db, run.id).metrics
    assert kept["chosen_round"] == 1 and "chosen by you" in kept["chosen_because"]
    at = switch(at, "pages/export.py")
    assert any("Exports round 1: chosen by you" in c.value for c in at.caption)
    assert at.checkbox(key="ex_pseudo").label.endswith("(round 1)")  # the kept round's pseudo-labels, too
    job = jobq.enqueue(db, "export", {"run_id": run.id, "format": "native"}, p.id)
    done = Worker(str(tmp / "app.db")).run_once()
    assert done.id == job.id and done.status == "succeeded" and done.result["round"] == 1, done.error
    # the teacher (round 0) can be kept too, and exported
    at = switch(at, "pages/rounds.py")
    at.button(key="rd_keep_teacher").click().run()
    assert not at.exception and any("now keeps the teacher (round 0)" in s.value for s in at.success)
    assert runq.get_run(db, run.id).metrics["chosen_round"] == 0
    jobq.enqueue(db, "export", {"run_id": run.id, "format": "folded"}, p.id)
    done = Worker(str(tmp / "app.db")).run_once()
    assert done.status == "succeeded" and done.result["round"] == 0, done.error
    runq.keep_round(db, run.id, 1)
    # issue 12.3: the page's selections ride in the URL, so a link or a reload shows run 1, round 1, not the newest
    second, _ = actions.start_run(db, p.id, "list", "fast", overrides={**tiny, "adapter": {"bottleneck": 4}})
    assert Worker(str(tmp / "app.db")).run_once().status == "succeeded"
    for page in ("pages/rounds.py", "pages/inspect.py", "pages/export.py"):
        at = AppTest.from_file(str(ROOT / page), default_timeout=TIMEOUT)
        at.session_state["project"] = p.id
        at.query_params["run"] = f"{run.label} · list" + (" · fast" if page == "pages/export.py" else "")
        at.query_params["round"] = "1"
        at.run()
        assert not at.exception and at.selectbox(key="run").value == run.id, page
        if page != "pages/export.py":
            widget = at.select_slider(key="round") if page == "pages/rounds.py" else at.selectbox(key="round")
            assert widget.value == 1, page
        plain = app(page, p.id)  # without the URL: the newest run
        assert plain.selectbox(key="run").value == second.id, page


def test_compare_runs_names_runs_as_the_history_does(env):
    """A second project's runs 1 and 2 were offered as "2" and "3" (database ids) in the comparison, and a lone run
    was compared with itself."""
    from ui.actions import start_run

    db, _, dirs = env
    first = make_project(db, str(dirs["bert"]))
    p = st_store.create_project(db, "second", "single", ["negative", "positive"], str(dirs["bert"]), target_gold=8)
    st_store.add_examples(db, p.id, [{"text": t} for t in ("great movie", "bad movie", "good film", "awful film")])
    st_store.save_prompt(db, p.id, "{text} It was {mask} .", ["bad", "great"])
    for project in (first, p):
        for e in st_store.page_examples(db, project.id, limit=100):
            st_store.set_label(db, e.id, int(e.text.startswith(("great", "good"))))
    start_run(db, first.id)
    start_run(db, p.id)
    at = app("pages/train.py", p.id)
    assert not [s for s in at.selectbox if s.key == "tr_cmp_a"]
    assert any("With a second run" in c.value for c in at.caption)
    start_run(db, p.id, alongside=True)
    at.run()
    assert not at.exception
    assert at.dataframe[0].value["run"].tolist() == [2, 1]
    assert at.selectbox(key="tr_cmp_a").options == ["run 2", "run 1"]
    assert at.selectbox(key="tr_cmp_b").value == runq.list_runs(db, p.id)[1].id  # the other run by default


def test_train_page_sends_a_run_to_a_ray_cluster_and_refuses_a_bad_address(env, monkeypatch):
    """Issue 14: the Train page's "Cluster" field (default $LIST_RAY_ADDRESS) rides with the run's job."""
    db, _, dirs = env
    p = make_project(db, str(dirs["bert"]))
    for e in st_store.page_examples(db, p.id, limit=100)[:6]:
        st_store.set_label(db, e.id, 1 if e.text.startswith(("great", "good")) else 0)
    monkeypatch.setenv("LIST_RAY_ADDRESS", "auto")
    at = app("pages/train.py", p.id)
    assert at.text_input(key="tr_ray").value == "auto"
    at.text_input(key="tr_ray").input("head node:10001")
    at.button(key="tr_start").click().run()
    assert any("Ray address 'head node:10001'" in e.value for e in at.error) and not runq.list_runs(db, p.id)
    at.text_input(key="tr_ray").input("ray://head:10001")
    at.button(key="tr_start").click().run()
    assert not at.exception and any("queued" in s.value for s in at.success)
    job = jobq.get_job(db, runq.list_runs(db, p.id)[0].job_id)
    assert job.payload["ray_address"] == "ray://head:10001"


def test_a_prompt_that_contradicts_the_gold_labels_is_flagged_and_re_matched(env, tiny_headless_dir):
    """Label words attached to the wrong classes (a user's slip) left a LiST teacher below chance, silently
    (benchmarks.teacher_weights --swap-prompt: bbc K=10 17%). The workbench and the Rounds page say so when the
    gold labels make it 90% likely that the prompt is right less often than chance; the board offers the words
    re-matched to the classes (descriptions moving with them), one click away; then neither page warns."""
    from storage import predictions as predq
    from ui import actions

    db, tmp, _ = env
    p = make_project(db, str(tiny_headless_dir), with_prompt=False)
    st_store.save_prompt(db, p.id, "{text} It was {mask} .", ["bad", "great"], ["a bad review", "a good review"])
    at = app("pages/prompt.py", p.id)
    at.button(key="pw_score").click().run()  # no gold label yet: the prompt's predictions become suggestions
    assert Worker(str(tmp / "app.db")).run_once().status == "succeeded"
    examples = st_store.page_examples(db, p.id, limit=100)[:12]
    for e in examples:  # every gold label the opposite of what the prompt says
        st_store.set_label(db, e.id, 1 - predq.prediction(db, e.id)["label"])
    at.button(key="pw_score").click().run()
    assert Worker(str(tmp / "app.db")).run_once().status == "succeeded"
    at.run()
    assert not at.exception, at.exception
    (warning,) = [w.value for w in at.warning]
    assert "gets 0 of your 12 gold labels right" in warning and "re-matched to the classes" in warning
    board = at.dataframe[0].value
    fixed = board[board["source"] == "your words, re-matched to the classes"]
    assert fixed["label words"].tolist() == ["great, bad"] and fixed["gold accuracy"].tolist() == [1.0]
    # the suggestions build on the re-matched words, not on the contradicted ones (their row, when they add a word,
    # is "your words re-matched + suggested words")
    assert jobq.list_jobs(db, p.id)[0].result["suggestions_base"] == "rematched"
    assert any(m.value.endswith("your label words re-matched to the classes):") for m in at.markdown)
    assert "your prompt + suggested words" not in board["source"].tolist()
    tiny = dict(rounds=1, student_steps=2, finetune_epochs=1, max_length=16, tau=0.0)
    actions.start_run(db, p.id, "list", "fast", overrides={**tiny, "adapter": {"bottleneck": 4}})
    assert Worker(str(tmp / "app.db")).run_once().status == "succeeded"
    rounds = app("pages/rounds.py", p.id)
    (said,) = [w.value for w in rounds.warning if "right on 0% of the gold labels" in w.value]
    assert "every student started from the teacher's fit instead of the verbalisers" in said
    # a run made before students started from the teacher's fit says what its students did
    run_id = runq.list_runs(db, p.id)[0].id
    (m0,) = [m for m in runq.rounds(db, run_id) if m["round"] == 0]
    runq.save_round(db, run_id, 0, {k: v for k, v in m0.items() if k != "students_start"}, [])
    said = [w.value for w in app("pages/rounds.py", p.id).warning if "right on 0%" in w.value]
    assert said and "every student started from its verbalisers" in said[0], said
    # one click: the re-matched row becomes the prompt, each description moved with its words
    options = at.selectbox(key="pw_adopt_row").options  # as shown: "source · template · words"
    at.selectbox(key="pw_adopt_row").select_index(next(i for i, o in enumerate(options) if "re-matched" in o)).run()
    at.button(key="pw_adopt").click().run()
    assert not at.exception, at.exception
    latest = st_store.latest_prompt(db, p.id)
    assert latest.label_words == ["great", "bad"] and latest.descriptions == ["a good review", "a bad review"]
    at.button(key="pw_score").click().run()
    assert Worker(str(tmp / "app.db")).run_once().status == "succeeded"
    at.run()
    assert not at.warning, [w.value for w in at.warning]
    actions.start_run(db, p.id, "list", "fast", overrides={**tiny, "adapter": {"bottleneck": 4}})
    assert Worker(str(tmp / "app.db")).run_once().status == "succeeded"
    assert not app("pages/rounds.py", p.id).warning  # the newest run is shown first


def test_a_failed_run_is_explained_and_resumed_from_the_train_page(env):
    """A run that failed shows why, says whether resuming continues from a checkpoint or starts over, and the Resume
    button queues it again under a new job (refused with a message while another run is active)."""
    from ui import actions

    db, tmp, dirs = env
    p = make_project(db, str(dirs["bert"]))
    for e in st_store.page_examples(db, p.id, limit=100):
        st_store.set_label(db, e.id, int(e.text.startswith(("great", "good"))))
    st_store.save_prompt(db, p.id, "{text} It was {mask} .", ["bad", "unfathomableness"])
    run, job = actions.start_run(db, p.id, overrides={"rounds": 2, "max_length": 32})
    assert Worker(tmp / "app.db").run_once().status == "failed"
    at = app("pages/train.py", p.id)
    assert [x.label for x in at.expander if "Failed or cancelled" in x.label] == ["Failed or cancelled runs (1): why, "
                                                                                  "and resume"]  # fmt: skip
    assert next(x for x in at.expander if "Failed or cancelled" in x.label).proto.expanded  # the latest run failed
    assert any("unfathomableness" in c.value for c in at.code)
    assert any("Resuming run 1 starts over" in c.value for c in at.caption)
    for r in (0, 1):  # as if its first rounds had reached their checkpoints before it failed
        runq.save_round(db, run.id, r, {"round": r}, [])
    at.run()
    assert any("continues after its last checkpointed round (round 1 of 2 is stored" in c.value for c in at.caption)
    other, other_job = actions.start_run(db, p.id, overrides={"rounds": 2})
    at.button(key="tr_resume").click().run()
    assert any(f"run {other.number} is already queued" in e.value for e in at.error)
    assert runq.get_run(db, run.id).status == "failed"
    jobq.request_cancel(db, other_job.id)
    at.selectbox(key="tr_stopped").set_value(run.id).run()
    at.button(key="tr_resume").click().run()
    assert not at.exception
    resumed = runq.get_run(db, run.id)
    assert resumed.status == "queued" and resumed.job_id != job.id
    assert any("Run 1 queued again" in i.value for i in at.info)
    assert [x.label for x in at.expander if "Failed or cancelled" in x.label] == ["Failed or cancelled runs (1): why, "
                                                                                  "and resume"]  # fmt: skip
    assert at.selectbox(key="tr_stopped").options == ["run 2 (cancelled)"]


def test_rounds_and_inspect_follow_a_running_run_to_its_newest_round_unless_you_chose_one(env):
    """A page opened during a run stayed on "no completed round yet" until reloaded: it now follows the worker (a
    fragment reruns it when a round or a run arrives; here each `run()` is that rerun), moving to the newest round
    and to a run started meanwhile, but never away from a round or run the user chose."""
    from ui import actions

    db, tmp, dirs = env
    p = make_project(db, str(dirs["bert"]))
    for e in st_store.page_examples(db, p.id, limit=100)[:6]:
        st_store.set_label(db, e.id, 1 if e.text.startswith(("great", "good")) else 0)
    run, job = actions.start_run(db, p.id, "list", "fast")
    ex = [e.id for e in st_store.page_examples(db, p.id, limit=100) if e.gold is None][:3]

    def round_done(run_id: int, k: int) -> None:  # what the worker writes at the end of a round
        table = [{"example_id": i, "probs": [0.3, 0.7], "label": 1, "confidence": 0.7, "weight": 0.1 * k,
                  "flipped": False} for i in ex]  # fmt: skip
        runq.save_round(db, run_id, k, {"round": k, "gold_accuracy": 0.9, "pseudo_label_counts": {"positive": 3}},
                        table if k else [])  # fmt: skip

    rounds, inspect = app("pages/rounds.py", p.id), app("pages/inspect.py", p.id)
    assert any("no completed round yet" in i.value for i in rounds.info)
    assert any("appear here as its rounds finish" in i.value for i in inspect.info)
    for k in (0, 1, 2):
        round_done(run.id, k)
        rounds.run()
        inspect.run()
        if k:
            assert rounds.select_slider(key="round").value == k and inspect.selectbox(key="round").value == k
    rounds.select_slider(key="round").set_value(1).run()  # the user looks at round 1
    inspect.selectbox(key="round").set_value(1).run()
    round_done(run.id, 3)
    rounds.run()
    inspect.run()
    assert rounds.select_slider(key="round").value == 1 and inspect.selectbox(key="round").value == 1
    assert "3" in rounds.select_slider(key="round").options and not rounds.exception and not inspect.exception
    # a second run started in another tab: a page on the newest run moves to it; one on an older run stays
    runq.update_run(db, run.id, status="succeeded")
    second, _ = actions.start_run(db, p.id, "list", "fast", alongside=True)
    round_done(second.id, 0)
    rounds.run()
    assert rounds.selectbox(key="run").value == second.id
    rounds.selectbox(key="run").set_value(run.id).run()
    third, _ = actions.start_run(db, p.id, "list", "fast", alongside=True)
    rounds.run()
    assert rounds.selectbox(key="run").value == run.id and not rounds.exception
