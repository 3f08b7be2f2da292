import json

import pytest

import storage as st
from storage.examples import content_hash
from storage.importers import ImportFileError


@pytest.fixture()
def db(tmp_path):
    return st.connect(tmp_path / "s.db")


@pytest.fixture()
def project(db):
    return st.create_project(db, "reviews", "single", ["negative", "positive"], "default")


def test_connect_sets_wal_fk_and_migrates_once(tmp_path):
    db = st.connect(tmp_path / "a.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    st.connect(tmp_path / "a.db")  # second connection: nothing to apply, no error
    n = db.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0]
    st.connect(tmp_path / "a.db")
    assert db.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0] == n >= 2


def test_project_validation(db, project):
    assert st.get_project(db, project.id).labels == ["negative", "positive"]
    with pytest.raises(st.StoreError, match="already exists"):
        st.create_project(db, "reviews", "single", ["a", "b"], "x")
    with pytest.raises(st.StoreError, match="duplicate labels"):
        st.create_project(db, "p2", "single", ["a", "a"], "x")
    with pytest.raises(st.StoreError, match="task='triple'"):
        st.create_project(db, "p3", "triple", ["a", "b"], "x")


def test_prompt_versions(db, project):
    a = st.save_prompt(db, project.id, "{text} It was {mask} .", ["terrible", "great"])
    assert st.save_prompt(db, project.id, "{text} It was {mask} .", ["terrible", "great"]).id == a.id
    b = st.save_prompt(db, project.id, "{text} All in all {mask} .", ["bad", "good"])
    assert b.version == 2 and st.latest_prompt(db, project.id).id == b.id
    assert [p.version for p in st.prompt_history(db, project.id)] == [2, 1]


def test_labels_history_and_undo(db, project):
    st.add_examples(db, project.id, [{"text": "good film"}, {"text": "bad film"}])
    e1, e2 = (e.id for e in st.page_examples(db, project.id))
    st.set_label(db, e1, 1)
    st.set_label(db, e2, 0)
    st.set_label(db, e1, 0)  # correction
    assert st.class_counts(db, project.id) == [2, 0]
    hist = st.history(db, project.id)
    assert [(h.example_id, h.old_label, h.new_label) for h in hist] == [(e1, 1, 0), (e2, None, 0), (e1, None, 1)]
    st.undo_last(db, project.id)  # e1 back to 1
    assert st.get_example(db, e1).gold == 1
    st.undo_last(db, project.id)  # e2 unlabeled again
    assert st.get_example(db, e2).gold is None
    st.undo_last(db, project.id)  # e1 unlabeled again
    assert st.gold_labels(db, project.id) == []
    assert st.undo_last(db, project.id) is None
    with pytest.raises(st.StoreError, match="not a class index"):
        st.set_label(db, e1, 5)


def test_import_csv_tsv_jsonl_parquet_and_dedupe(db, project, tmp_path):
    csv_data = b'review,label\ngood film,positive\nbad film,negative\n"good  film",positive\nnew one,\n'
    rep = st.import_file(db, project.id, csv_data, {"text": "review"}, name="a.csv", label_column="label")
    assert (rep.added, rep.duplicates, rep.labeled) == (3, 1, 2)
    tsv = b"t\nthird film\ngood film\n"
    assert st.import_file(db, project.id, tsv, {"text": "t"}, name="b.tsv").added == 1
    jl = b'{"body": "fourth"}\n\n{"body": "fifth", "x": 1}\n'
    assert st.import_file(db, project.id, jl, {"text": "body"}, name="c.jsonl").added == 2
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"txt": ["sixth", "fourth"]}), tmp_path / "d.parquet")
    assert st.import_file(db, project.id, tmp_path / "d.parquet", {"text": "txt"}).added == 1
    assert st.count_examples(db, project.id) == 7
    assert st.count_examples(db, project.id, labeled=True) == 2
    assert [h.reason for h in st.history(db, project.id)] == ["import", "import"]


def test_import_datasets_folder(db, project, tmp_path):
    from datasets import Dataset, DatasetDict

    DatasetDict({"train": Dataset.from_dict({"sentence": ["a", "b"], "label": [0, 1]})}).save_to_disk(
        str(tmp_path / "ds")
    )
    with pytest.raises(ImportFileError, match=r"line 1: 'label' is 0.*class positions"):
        st.import_file(db, project.id, tmp_path / "ds", {"text": "sentence"}, label_column="label")
    rep = st.import_file(db, project.id, tmp_path / "ds", {"text": "sentence"}, label_column="label",
                         label_values="indices")  # fmt: skip
    assert (rep.added, rep.labeled) == (2, 2)
    assert [e.gold for e in st.page_examples(db, project.id)] == [0, 1]


def test_pair_project_import(db):
    p = st.create_project(db, "nli", "pair", ["yes", "no"], "x")
    with pytest.raises(ImportFileError, match=r"choose a column for \['text_a', 'text_b'\]"):
        st.import_file(db, p.id, b"a,b\nx,y\n", {"text": "a"}, name="p.csv")
    assert st.import_file(db, p.id, b"a,b\nx,y\n", {"text_a": "a", "text_b": "b"}, name="p.csv").added == 1
    assert st.page_examples(db, p.id)[0].row() == {"text_a": "x", "text_b": "y"}
    # one column for both texts would import every pair as a text and itself
    with pytest.raises(ImportFileError, match=r"text_a and text_b both read column 'a'; choose a column for each"):
        st.import_file(db, p.id, b"a,b\nz,w\n", {"text_a": "a", "text_b": "a"}, name="p.csv")


@pytest.mark.parametrize(
    "data, name, mapping, kw, match",
    [
        (b"text\nok\n\xff\xfe bad\n", "x.csv", {"text": "text"}, {}, r"line 3 is not valid UTF-8"),
        (
            b"text,label\nok,positive\ntoo,many,fields\n",
            "x.csv",
            {"text": "text"},
            {},
            r"line 3 has 3 fields, expected 2",
        ),
        (b"body\nok\n", "x.csv", {"text": "text"}, {}, r"column 'text' not found; the file's columns are \['body'\]"),
        (
            b'text\nok\n   \nfine\n""\n\n',
            "x.csv",
            {"text": "text"},
            {},
            r"empty text on line 3 \(text\), line 5 \(text\);",
        ),
        (
            b"text,label\nok,positive\nhm,maybe\n",
            "x.csv",
            {"text": "text"},
            {"label_column": "label"},
            r"line 3: 'label' is 'maybe'",
        ),
        (b'{"text": "a"}\n{"text": \n', "x.jsonl", {"text": "text"}, {}, r"line 2 is not valid JSON"),
        (b'{"text": "a"}\n[1]\n', "x.jsonl", {"text": "text"}, {}, r"line 2 is not a JSON object"),
        (
            b'{"text": "a"}\n{"text": ""}\n{"text": null}\n',
            "x.jsonl",
            {"text": "text"},
            {},
            r"empty text on line 2 \(text\), line 3",
        ),
        (b"", "x.csv", {"text": "text"}, {}, r"x.csv is empty"),
        (b"PAR1garbage", "x.parquet", {"text": "text"}, {}, r"not a readable parquet file"),
        (b"text\nok\n", "x.docx", {"text": "text"}, {}, r"cannot tell the format"),
    ],
)
def test_bad_files_name_the_problem_and_add_nothing(db, project, data, name, mapping, kw, match):
    with pytest.raises(ImportFileError, match=match):
        st.import_file(db, project.id, data, mapping, name=name, **kw)
    assert st.count_examples(db, project.id) == 0


def test_too_big_file(db, project, monkeypatch):
    monkeypatch.setenv("LIST_MAX_IMPORT_MB", "1")
    big = b"text\n" + b"x" * (2 * 2**20) + b"\n"
    with pytest.raises(ImportFileError, match=r"2.0 MB, over the 1 MB import limit"):
        st.import_file(db, project.id, big, {"text": "text"}, name="big.csv")
    assert st.count_examples(db, project.id) == 0


def test_paging_and_search(db, project):
    st.add_examples(db, project.id, [{"text": f"row {i} {'cat' if i % 3 == 0 else 'dog'}"} for i in range(120)])
    page = st.page_examples(db, project.id, offset=100, limit=50)
    assert len(page) == 20
    assert st.count_examples(db, project.id, search="cat") == 40
    assert all("cat" in e.text for e in st.page_examples(db, project.id, search="cat", limit=100))


def test_content_hash_normalises_whitespace():
    assert content_hash({"text": "a  b "}) == content_hash({"text": "a b"})
    assert content_hash({"text_a": "x", "text_b": "y"}) != content_hash({"text_a": "y", "text_b": "x"})


def test_export_gold_and_pseudo(db, project, tmp_path):
    from storage.runs import create_run, save_round

    st.add_examples(db, project.id, [{"text": "good"}, {"text": "bad"}, {"text": "meh"}])
    e = [x.id for x in st.page_examples(db, project.id)]
    st.set_label(db, e[0], 1)
    run = create_run(db, project.id, "list", "fast", {}, 1, "default", None)
    assert run.gold_snapshot == [[e[0], 1]]
    save_round(db, run.id, 1, {"round": 1}, [
        {"example_id": e[1], "probs": [0.9, 0.1], "label": 0, "confidence": 0.9, "weight": 0.2, "flipped": False},
        {"example_id": e[0], "probs": [0.2, 0.8], "label": 1, "confidence": 0.8, "weight": None, "flipped": False},
    ])  # fmt: skip
    rows = st.labeled_rows(db, project.id, run.id)
    assert [(r["text"], r["label"], r["source"]) for r in rows] == [
        ("good", "positive", "gold"),
        ("bad", "negative", "pseudo"),
    ]
    st.export_data(db, project.id, tmp_path / "o.csv", "csv", run.id)
    st.export_data(db, project.id, tmp_path / "o.jsonl", "jsonl", run.id)
    st.export_data(db, project.id, tmp_path / "ds", "datasets", run.id)
    assert (tmp_path / "o.csv").read_text().splitlines()[0].startswith("id,text,label,source")
    assert json.loads((tmp_path / "o.jsonl").read_text().splitlines()[1])["source"] == "pseudo"
    from datasets import load_from_disk

    ds = load_from_disk(str(tmp_path / "ds"))
    assert ds.features["label"].names == ["negative", "positive"] and len(ds) == 2


def test_an_evaluation_import_reports_its_labels(db, project):
    """Issue 12.9: an evaluation import said "0 with labels"."""
    rep = st.import_file(db, project.id, b"text,label\ngreat one,positive\nbad one,negative\n", {"text": "text"},
                         name="eval.csv", label_column="label", split="eval")  # fmt: skip
    assert (rep.added, rep.labeled) == (2, 2)
    again = st.import_file(db, project.id, b"text,label\ngreat one,positive\nnew one,negative\n", {"text": "text"},
                           name="eval2.csv", label_column="label", split="eval")  # fmt: skip
    assert (again.added, again.duplicates, again.labeled) == (1, 1, 1)


def test_undo_reverts_only_the_callers_own_labels(db, project):
    """Issue 13.4: Undo reverted the project's most recent label, which could be another user's."""
    st.add_examples(db, project.id, [{"text": "good film"}, {"text": "bad film"}])
    e1, e2 = (e.id for e in st.page_examples(db, project.id))
    st.set_label(db, e1, 1, by="ann")
    st.set_label(db, e2, 0, by="bob")
    assert st.undo_last(db, project.id, by="ann").example_id == e1  # ann's label, though bob's is newer
    assert st.get_example(db, e1).gold is None and st.get_example(db, e2).gold == 0
    assert st.undo_last(db, project.id, by="ann") is None  # nothing more of ann's
    # bob's label is changed by ann afterwards: bob's undo must not overwrite ann's newer label
    st.set_label(db, e2, 1, by="ann")
    with pytest.raises(st.StoreError, match="changed since"):
        st.undo_last(db, project.id, by="bob")
    assert st.get_example(db, e2).gold == 1
    assert st.undo_last(db, project.id, by="bob") is None  # that undo is used up, not retried forever


def test_a_worker_write_waits_out_a_long_import_instead_of_failing(tmp_path):
    """Issue 13.5: an import holding the write lock longer than the busy timeout made the running job fail. A
    connection opened with `write_wait_s` (the worker's) keeps waiting for the lock; the UI's fails fast."""
    import sqlite3
    import threading
    import time

    from storage import jobs as jobq

    path = tmp_path / "lock.db"
    ui = st.connect(path, busy_timeout_ms=100)
    job = jobq.enqueue(ui, "list_run", {"run_id": 1})
    worker = st.connect(path, busy_timeout_ms=100, write_wait_s=30)
    assert jobq.claim(worker, "w").id == job.id
    blocker = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # a long import in another process holds the write lock
    release = threading.Timer(1.5, lambda: blocker.execute("COMMIT"))
    release.start()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        jobq.enqueue(ui, "predict", {})  # the UI is told at once
    t0 = time.monotonic()
    jobq.progress(worker, job.id, "meta", 3, 10)  # the worker waits for the lock instead of failing the job
    assert time.monotonic() - t0 >= 1.0 and jobq.get_job(worker, job.id).step == 3
    release.join()


def test_imports_never_lose_data_silently(db, project, tmp_path, monkeypatch):
    """Issue 13.9: 11 of 41 malformed files were accepted, 6 of them lossy. Each case now either imports exactly
    what the file says or refuses the whole file with the line that needs fixing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def imp(data, name, **kw):
        return st.import_file(db, project.id, data, {"text": "text"}, name=name, **kw)

    # the same text twice with different labels: which one is right is the user's call
    with pytest.raises(ImportFileError, match=r"lines 2 and 4 have the same text with different labels"):
        imp(b"text,label\ngood film,positive\nbad film,negative\ngood  film,negative\n", "a.csv", label_column="label")
    assert st.count_examples(db, project.id) == 0
    # a label for a text already in the project: given to it when it has none, never overwriting a different one
    imp(b"text\ngood film\nbad film\n", "b.csv")
    rep = imp(b"text,label\ngood film,positive\nnew film,negative\n", "c.csv", label_column="label")
    assert (rep.added, rep.duplicates, rep.labeled) == (1, 1, 2)
    assert sum(st.class_counts(db, project.id)) == 2
    with pytest.raises(ImportFileError, match=r"line 2: .*already labeled 'positive'"):
        imp(b"text,label\ngood film,negative\n", "d.csv", label_column="label")
    # numbers in a label column are not label names unless the user says they are class positions
    with pytest.raises(ImportFileError, match=r"line 2: 'label' is '1'.*class positions"):
        imp(b"text,label\nthird film,1\n", "e.csv", label_column="label")
    # NaN, NUL bytes, JSON objects: refused with their line, never stored as "nan" or as mangled text
    pq.write_table(pa.table({"text": [1.5, float("nan")]}), tmp_path / "n.parquet")  # a float column
    with pytest.raises(ImportFileError, match=r"empty text on line 2"):
        imp(tmp_path / "n.parquet", "n.parquet")
    with pytest.raises(ImportFileError, match=r"line 3: 'text' contains a NUL byte"):
        imp(b"text\nfine\nbad\x00text\n", "f.csv")
    with pytest.raises(ImportFileError, match=r"line 2: 'text' is a JSON object, not text"):
        imp(b'{"text": "ok"}\n{"text": {"a": 1}}\n', "g.jsonl")
    # one limit on a text's length for every format (CSV's parser limit is not the rule)
    monkeypatch.setenv("LIST_MAX_TEXT_CHARS", "1000")
    for data, name in ((b"text\n" + b"x" * 1001 + b"\n", "h.csv"), (b'{"text": "' + b"x" * 1001 + b'"}\n', "h.jsonl")):
        with pytest.raises(ImportFileError, match=r"line \d: 'text' has 1,001 characters, over the 1,000"):
            imp(data, name)
    monkeypatch.setenv("LIST_MAX_TEXT_CHARS", "200000")
    assert imp(b"text\n" + b"y" * 150_000 + b"\n", "big.csv").added == 1  # over CSV's default field limit
    # rows, not only bytes: a small parquet file can hold millions of rows
    monkeypatch.setenv("LIST_MAX_IMPORT_ROWS", "3")
    pq.write_table(pa.table({"text": [f"t{i}" for i in range(4)]}), tmp_path / "r.parquet")
    with pytest.raises(ImportFileError, match=r"4 rows, over the 3-row import limit"):
        imp(tmp_path / "r.parquet", "r.parquet")
    assert st.count_examples(db, project.id) == 4


def test_a_label_is_never_written_over_a_newer_one_unseen(db, project):
    """Issue 13.3: a label written over someone else's newer label is refused as a conflict, never silent."""
    st.add_examples(db, project.id, [{"text": "good film"}])
    (e,) = st.page_examples(db, project.id)
    st.set_label(db, e.id, 1, by="bob")  # bob labels while ann still sees the example unlabeled
    with pytest.raises(st.LabelConflict, match="labeled meanwhile by bob"):
        st.set_label(db, e.id, 0, by="ann", expect=None)
    assert st.get_example(db, e.id).gold == 1
    assert st.set_label(db, e.id, 0, by="ann", expect=1).new_label == 0  # she saw bob's label: her change stands


def _parquet(**columns) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)
    return buf.getvalue()


# Issue 13.9: malformed files, each imported exactly as it says (rows: (text, gold label or None)) or refused as a
# whole with a message naming the problem (a regular expression); nothing in between.
MALFORMED = [
    ("empty.csv", b"", "is empty"),
    ("header_only.csv", b"text,label\n", "has no rows"),
    ("no_text_column.csv", b"review,label\ngood,positive\n", r"column 'text' not found.*\['review', 'label'\]"),
    ("too_many_fields.csv", b"text,label\ngood,positive,extra\n", "line 2 has 3 fields, expected 2"),
    ("too_few_fields.csv", b"text,label\ngood\n", "line 2 has 1 fields, expected 2"),
    ("unclosed_quote.csv", b'text,label\n"good film,positive\nbad,negative\n', "line 3 has 1 fields"),
    ("latin1.csv", "text\ncaf\xe9\n".encode("latin-1"), "line 2 is not valid UTF-8.*save the file as UTF-8"),
    ("utf16.csv", "text\ngood film\n".encode("utf-16"), "line 1 is not valid UTF-8"),
    ("binary.csv", bytes(range(256)) * 4, "not valid UTF-8"),
    ("bom.csv", "\ufefftext\ngood film\n".encode(), [("good film", None)]),
    ("crlf.csv", b"text,label\r\ngood film,positive\r\n", [("good film", 1)]),
    ("semicolons.csv", b"text;label\ngood film;positive\n", r"column 'text' not found.*'text;label'"),
    ("duplicate_header.csv", b"text,text\na,b\n", "duplicate column names in the header"),
    ("blank_line.csv", b"text\n\nfine\n", [("fine", None)]),  # a blank line is no record in CSV
    ("whitespace_text.csv", b"text\n   \nfine\n", r"empty text on line 2 \(text\)"),
    ("unknown_label.csv", b"text,label\ngood,great\n", r"line 2: 'label' is 'great', which is not one of"),
    ("numeric_label.csv", b"text,label\ngood,1\n", r"line 2: 'label' is '1'.*class positions"),
    ("label_case.csv", b"text,label\ngood,Positive\n", r"line 2: 'label' is 'Positive'"),
    ("nul_byte.csv", b"text\nbad\x00text\n", "line 2: 'text' contains a NUL byte"),
    ("conflicting_duplicates.csv", b"text,label\ngood film,positive\ngood film,negative\n",
     "lines 2 and 3 have the same text with different labels"),
    ("agreeing_duplicates.csv", b"text,label\ngood film,positive\ngood  film,positive\n", [("good film", 1)]),
    ("huge_field.csv", b"text\n" + b"x" * 100_001 + b"\n", "line 2: 'text' has 100,001 characters, over the"),
    ("tab_in_quotes.tsv", b'text\tlabel\n"quoted\ttab"\tpositive\n', [("quoted\ttab", 1)]),
    ("invalid_json.jsonl", b'{"text": "ok"}\n{"text": \n', "line 2 is not valid JSON"),
    ("trailing_garbage.jsonl", b'{"text": "a"} x\n', "line 1 is not valid JSON"),
    ("json_scalar.jsonl", b'"just a string"\n', "line 1 is not a JSON object"),
    ("json_array.jsonl", b'[{"text": "ok"}]\n', [("ok", None)]),  # a JSON array of objects is read as rows
    ("nested_object.jsonl", b'{"text": {"a": 1}}\n', "line 1: 'text' is a JSON object, not text"),
    ("list_text.jsonl", b'{"text": ["a", "b"]}\n', "line 1: 'text' is a list, not text"),
    ("null_text.jsonl", b'{"text": null}\n{"text": "ok"}\n', r"empty text on line 1"),
    ("missing_key.jsonl", b'{"txt": "a"}\n{"text": "b"}\n', r"empty text on line 1"),
    ("number_text.jsonl", b'{"text": 12}\n', [("12", None)]),  # a number is its text, exactly
    ("bool_label.jsonl", b'{"text": "a", "label": true}\n', r"line 1: 'label' is True"),
    ("float_label.jsonl", b'{"text": "a", "label": 1.0}\n', r"line 1: 'label' is 1.0"),
    ("blank_lines.jsonl", b'{"text": "a"}\n\n\n{"text": "b"}\n', [("a", None), ("b", None)]),
    ("nan.parquet", _parquet(text=[1.5, float("nan")]), r"empty text on line 2"),  # never the text "nan"
    ("null.parquet", _parquet(text=["a", None]), r"empty text on line 2"),
    ("int_text.parquet", _parquet(text=[1, 2]), [("1", None), ("2", None)]),
    ("struct.parquet", _parquet(text=[{"a": 1}, {"a": 2}]), "line 1: 'text' is a JSON object"),
    ("list.parquet", _parquet(text=[["a"], ["b"]]), "line 1: 'text' is a list"),
    ("null_label.parquet", _parquet(text=["a", "b"], label=["positive", None]), [("a", 1), ("b", None)]),
    ("not_parquet.parquet", b"PAR1 garbage", "is not a readable parquet file"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "data", "expected"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_a_malformed_file_is_imported_exactly_or_refused_whole(db, project, name, data, expected):
    head = data[:64]
    label = "label" if b"label" in head or name.endswith("label.parquet") else None
    if isinstance(expected, str):
        with pytest.raises(ImportFileError, match=expected):
            st.import_file(db, project.id, data, {"text": "text"}, name=name, label_column=label)
        assert st.count_examples(db, project.id) == 0  # nothing of a refused file is kept
    else:
        st.import_file(db, project.id, data, {"text": "text"}, name=name, label_column=label)
        assert [(e.text, e.gold) for e in st.page_examples(db, project.id)] == expected


def test_a_run_snapshot_is_constant_size_and_reads_its_pool_in_chunks(db, project):
    """A run's unlabeled pool is stored as "pool examples up to id N less gold and rejected" (not a list of a million
    ids) and read back a chunk at a time, in id order, whatever was imported, labeled or rejected after it started."""
    from storage import runs as runq
    from storage.queue import exclude

    st.add_examples(db, project.id, [{"text": f"text {i}"} for i in range(10)])
    ex = st.page_examples(db, project.id, limit=100)
    st.set_label(db, ex[0].id, 0)
    st.set_label(db, ex[1].id, 1)
    exclude(db, ex[2].id, project.id)
    run = runq.create_run(db, project.id, "list", "fast", {}, 1, "default", None)
    assert set(run.inputs) == {"pool_upto", "unlabeled_count", "eval", "rejected", "sha256"}
    st.add_examples(db, project.id, [{"text": f"later {i}"} for i in range(3)])  # after the run started
    exclude(db, ex[3].id, project.id)
    st.set_label(db, ex[4].id, 1)
    ids = runq.unlabeled_ids(db, runq.get_run(db, run.id))
    assert list(ids) == [e.id for e in ex[3:10]] and run.unlabeled_count == 7
    rows = st.ExampleRows(db, ids, chunk=3)
    assert len(rows) == 7 and list(rows) == [{"text": f"text {i}"} for i in range(3, 10)]
    assert rows.take([6, 0]) == [{"text": "text 9"}, {"text": "text 3"}] and rows[-1] == {"text": "text 9"}
    assert rows[1:3] == [{"text": "text 4"}, {"text": "text 5"}]
    with pytest.raises(st.StoreError, match="no longer in the store"):
        st.ExampleRows(db, [ex[3].id, 10**9]).take([0, 1])
    # runs made while the list itself was stored still read it
    old = runq.get_run(db, run.id).__class__(**{**runq.get_run(db, run.id).__dict__, "inputs": {"unlabeled": [5, 7]}})
    assert list(runq.unlabeled_ids(db, old)) == [5, 7] and old.unlabeled_count == 2


def test_a_long_import_writes_in_short_transactions_and_publishes_whole(tmp_path, monkeypatch):
    """Issue 13 (writers that never starve): an import writes its rows a chunk per transaction, invisible until one
    final UPDATE publishes them; between chunks another session labels at once (a 100 ms busy timeout), and what
    it sees of the project does not change until the import is whole."""
    import contextlib

    import storage.examples as ex

    path = tmp_path / "chunks.db"
    db = st.connect(path)
    p = st.create_project(db, "big", "single", ["negative", "positive"], "default")
    st.add_examples(db, p.id, [{"text": "already here"}])
    other = st.connect(path, busy_timeout_ms=100)
    target = st.page_examples(other, p.id)[0].id
    monkeypatch.setattr(ex, "IMPORT_CHUNK", 3)
    seen, real_write = [], ex.write

    @contextlib.contextmanager
    def observed(conn):
        # before each transaction of the import: another session writes without waiting and sees the old project
        st.set_label(other, target, len(seen) % 2, by="other")
        seen.append(st.count_examples(other, p.id))
        with real_write(conn) as c:
            yield c

    monkeypatch.setattr(ex, "write", observed)
    lines = "\n".join(f"text {i},{'positive' if i % 2 else 'negative'}" for i in range(10))
    rep = st.import_file(db, p.id, f"text,label\n{lines}\n".encode(), {"text": "text"}, name="f.csv",
                         label_column="label")  # fmt: skip
    assert seen == [1, 1, 1, 1, 1]  # 4 chunks of <= 3 rows, then the publishing transaction
    assert (rep.added, rep.labeled) == (10, 10) and st.count_examples(other, p.id) == 11
    assert st.class_counts(other, p.id) == [6, 5]  # with the other session's last label (negative)
    assert len([h for h in st.history(other, p.id) if h.reason == "import"]) == 10
    assert not db.execute("SELECT count(*) FROM examples WHERE split = 'pending'").fetchone()[0]


def test_an_import_that_fails_part_way_leaves_nothing(db, project, monkeypatch):
    import storage.examples as ex

    monkeypatch.setattr(ex, "IMPORT_CHUNK", 2)
    st.add_examples(db, project.id, [{"text": "known"}])
    st.set_label(db, st.page_examples(db, project.id)[0].id, 0)
    rows = "\n".join(f"t{i},positive" for i in range(5))
    with pytest.raises(ImportFileError, match="already labeled 'negative'"):  # found when publishing, after 3 chunks
        st.import_file(db, project.id, f"text,label\n{rows}\nknown,positive\n".encode(), {"text": "text"},
                       name="f.csv", label_column="label")  # fmt: skip
    real = ex._publish
    monkeypatch.setattr(ex, "_publish", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        st.add_examples(db, project.id, [{"text": f"u{i}"} for i in range(5)])
    monkeypatch.setattr(ex, "_publish", real)
    assert db.execute("SELECT count(*) FROM examples").fetchone()[0] == 1 and st.class_counts(db, project.id) == [1, 0]
    # rows of an import that died (killed between chunks) are cleared by the next import once stale; a live
    # import's are respected
    db.execute("INSERT INTO examples (project_id, text, source, split, hash, created_at) VALUES (?, 'x', 'f', "
               "'pending', 'h', ?)", [project.id, st.db.now()])  # fmt: skip
    db.conn.commit()
    with pytest.raises(ImportFileError, match="another import into this project is still running"):
        st.add_examples(db, project.id, [{"text": "y"}])
    db.execute("UPDATE examples SET created_at = '2000-01-01 00:00:00.000000' WHERE split = 'pending'")
    db.conn.commit()
    assert st.add_examples(db, project.id, [{"text": "x"}, {"text": "y"}]).added == 2
    assert st.count_examples(db, project.id) == 3


def test_an_export_folder_is_zipped_once_and_again_when_it_changes(tmp_path):
    """The Export page zipped every export folder on every page run (seconds for a folded model); the zip is now
    made once beside the folder and read only when a download is clicked."""
    import os
    import zipfile

    from storage.exports import archive

    folder = tmp_path / "export-folded"
    (folder / "model").mkdir(parents=True)
    (folder / "list_config.json").write_text("{}")
    (folder / "model" / "weights.bin").write_bytes(b"w" * 100)
    z = archive(folder)
    assert z == tmp_path / "export-folded.zip"
    assert sorted(zipfile.ZipFile(z).namelist()) == ["list_config.json", "model/", "model/weights.bin"]
    made = z.stat().st_mtime_ns
    os.utime(z, ns=(made + 10**9, made + 10**9))  # later than every file
    assert archive(folder).stat().st_mtime_ns == made + 10**9  # not made again
    (folder / "list_config.json").write_text('{"a": 1}')  # a re-export writes newer files
    os.utime(folder / "list_config.json", ns=(made + 2 * 10**9, made + 2 * 10**9))
    assert zipfile.ZipFile(archive(folder)).read("list_config.json") == b'{"a": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export-folded", "export-folded.zip"]  # no temporary left


def test_deleting_a_project_removes_its_run_folders_and_nothing_else(db, project, tmp_path):
    """A deleted project's checkpoints and exports (a folded export is a whole model copy) stayed on disk for ever."""
    from storage import runs as runq

    other = st.create_project(db, "kept", "single", ["a", "b"], "default")
    folders = {}
    for p in (project, other):
        run = runq.create_run(db, p.id, "list", "fast", {}, 1, "default", None)
        folders[p.id] = tmp_path / "runs" / f"run-{run.id}"
        (folders[p.id] / "export-folded" / "model").mkdir(parents=True)
        (folders[p.id] / "round-001").mkdir()
        runq.update_run(db, run.id, checkpoint_dir=str(folders[p.id]))
    stray = tmp_path / "not-a-run-folder"
    stray.mkdir()
    run = runq.create_run(db, project.id, "list", "fast", {}, 2, "default", None)
    runq.update_run(db, run.id, checkpoint_dir=str(stray))  # a path that is not runs/run-<id>: never removed
    assert st.delete_project(db, project.id) == [str(folders[project.id])]
    assert not folders[project.id].exists() and folders[other.id].is_dir() and stray.is_dir()
