import storage as st
from storage.predictions import save_predictions
from storage.queue import exclude, excluded_ids, include, next_sql, next_unlabeled, set_label_queue


def test_next_unlabeled_strategies(tmp_path):
    db = st.connect(tmp_path / "q.db")
    p = st.create_project(db, "p", "single", ["a", "b"], "x")
    st.add_examples(db, p.id, [{"text": f"t{i}"} for i in range(5)])
    ids = [e.id for e in st.page_examples(db, p.id)]
    assert next_unlabeled(db, p.id, "in order").id == ids[0]
    assert next_unlabeled(db, p.id, "diverse").id == ids[0]  # no order yet: falls back
    set_label_queue(db, p.id, [ids[3], ids[1], ids[0], ids[2], ids[4]])
    assert next_unlabeled(db, p.id, "diverse").id == ids[3]
    assert next_unlabeled(db, p.id, "diverse", skip=(ids[3],)).id == ids[1]
    st.set_label(db, ids[3], 0)
    assert next_unlabeled(db, p.id, "diverse").id == ids[1]
    save_predictions(
        db, p.id, None, [{"example_id": i, "probs": [0.5 + 0.1 * k, 0.5 - 0.1 * k]} for k, i in enumerate(ids)]
    )
    assert next_unlabeled(db, p.id, "uncertain").id == ids[0]  # confidence 0.5
    for i in ids:
        st.set_label(db, i, 1)
    assert next_unlabeled(db, p.id, "uncertain") is None


def test_the_next_example_is_found_through_indexes_without_a_scan_per_example(tmp_path):
    """The Label page took 10 s per example on an 8,000-text pool ("diverse first"; 26 s "most uncertain"): the
    queue and the predictions were joined on the example alone, not on their (project, example) key, and SQLite
    scanned the whole queue once per example. The queue or the predictions now drive the query in rank or
    confidence order, through an index, to the first unlabeled fit."""
    db = st.connect(tmp_path / "q.db")
    for strategy, skip in [("diverse", 0), ("uncertain", 0), ("diverse", 2), ("uncertain", 2), ("in order", 1)]:
        plan = [r[3] for r in db.execute("EXPLAIN QUERY PLAN " + next_sql(strategy, skip), [1] + [0] * skip)]
        assert not any(step.startswith("SCAN") for step in plan), (strategy, plan)
        assert not any("TEMP B-TREE FOR ORDER BY" in step for step in plan), (strategy, plan)  # no sort of all rows


def test_an_examples_suggestion_is_read_through_its_key():
    """The Label page reads the shown example's suggestion on every run: by the example alone that was a scan of
    the predictions of every project."""
    from storage.predictions import PREDICTION_SQL

    db = st.connect(":memory:")
    plan = [r[3] for r in db.execute("EXPLAIN QUERY PLAN " + PREDICTION_SQL, [1])]
    assert not any(step.startswith("SCAN") for step in plan), plan


def test_reject_and_restore(tmp_path):
    db = st.connect(tmp_path / "q.db")
    p = st.create_project(db, "p", "single", ["a", "b"], "x")
    st.add_examples(db, p.id, [{"text": "t"}])
    e = st.page_examples(db, p.id)[0].id
    exclude(db, e, p.id)
    assert excluded_ids(db, p.id) == {e}
    assert st.history(db, p.id)[0].reason == "reject_pseudo"
    include(db, e)
    assert excluded_ids(db, p.id) == set()
