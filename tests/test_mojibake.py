"""Repair of mis-decoded text on import: exactly the sequences that are UTF-8 read as Latin-1 / Windows-1252."""

import pytest

import storage as st_store
from storage.examples import all_examples, import_table
from storage.importers import Table
from storage.mojibake import repair, repairs


@pytest.mark.parametrize(
    "broken,fixed",
    [
        ("heck \xe2\x80\x93 few", "heck – few"),  # read as Latin-1: C1 control characters (mr's own texts)
        ("heck â€“ few", "heck – few"),  # read as Windows-1252
        ("itâ€™s", "it’s"),
        ("Bon appÃ©tit", "Bon appétit"),
        ("a cost of Â£35", "a cost of £35"),
        ("ðŸ˜€", "😀"),  # four bytes
        ("cafÃƒÂ©", "café"),  # mis-decoded twice
        ("Ã© and é", "é and é"),  # a repaired and a genuine accent side by side
    ],
)
def test_mis_decoded_sequences_are_repaired(broken, fixed):
    assert repair(broken) == fixed


@pytest.mark.parametrize("text", ["café déjà vu à la", "naïve Ærø ß", "日本語の文", "Ã alone", "100 Â"])
def test_genuine_text_is_left_alone(text):
    assert repair(text) == text


def test_repairs_counts_and_shows_the_change_with_control_characters_visible():
    count, shown = repairs(["fine", "heck \xe2\x80\x93 few", "itâ€™s", "Ã©"], examples=2, width=4)
    assert count == 3
    assert shown == [("…eck â\\x80\\x93 …", "…eck – …"), ("itâ€™s", "it’s")]  # 4 characters either side


def test_an_import_repairs_when_asked_and_a_text_and_its_repaired_twin_are_one_example(tmp_path):
    db = st_store.connect(tmp_path / "a.db")
    p = st_store.create_project(db, "p", "single", ["neg", "pos"], "default")
    rows = [{"text": "heck â€“ few", "label": "pos"}, {"text": "heck – few", "label": ""}, {"text": "plain"}]
    table = Table(["text", "label"], rows, [2, 3, 4])
    rep = import_table(db, p.id, table, {"text": "text"}, "label", repair_text=True)
    assert (rep.added, rep.duplicates, rep.labeled) == (2, 1, 1)
    assert sorted(e.text for e in all_examples(db, p.id)) == ["heck – few", "plain"]
    q = st_store.create_project(db, "q", "single", ["neg", "pos"], "default")
    import_table(db, q.id, table, {"text": "text"}, "label")  # not asked: stored as they are
    assert sorted(e.text for e in all_examples(db, q.id)) == ["heck â€“ few", "heck – few", "plain"]
