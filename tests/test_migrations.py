"""A database made at every earlier schema version, filled with what that version could hold, upgrades on
connect and keeps everything readable."""

import json

import pytest
import sqlite_utils

import storage as st
from list_core.config import TrainConfig, preset
from storage import predictions as predq
from storage import runs as runq
from storage.schema import migrations

NAMES = [m.name for m in migrations._migrations]


def _fill_v1(db: sqlite_utils.Database) -> None:
    """A project with examples, gold labels and history, a prompt, a finished run with a round, pseudo-labels and
    a prediction, written with the first schema's columns only (and a v1 config: no version, no prompt fields)."""
    t = "2026-01-01 00:00:00.000000"
    db.execute("INSERT INTO projects VALUES (1, 'old', 'single', ?, 'default', 30, ?)", [json.dumps(["neg", "pos"]), t])
    for i, text in enumerate(["a good film", "a bad film", "so so"], start=1):
        db.execute("INSERT INTO examples (id, project_id, text, source, split, hash, created_at) "
                   "VALUES (?, 1, ?, 'import', 'pool', ?, ?)", [i, text, f"h{i}", t])  # fmt: skip
    db.execute("INSERT INTO gold VALUES (1, 1, 1, ?)", [t])
    db.execute("INSERT INTO gold VALUES (2, 1, 0, ?)", [t])
    db.execute("INSERT INTO label_history (project_id, example_id, old_label, new_label, at, by, reason) "
               "VALUES (1, 1, NULL, 1, ?, 'user', 'label')", [t])  # fmt: skip
    db.execute(
        "INSERT INTO prompts (id, project_id, version, template, label_words, created_at) "
        "VALUES (1, 1, 1, '{text} It was {mask} .', ?, ?)",
        [json.dumps(["bad", "great"]), t],
    )
    v1_config = {k: v for k, v in preset("fast").to_dict().items()
                 if k not in ("config_version", "prompt_weight", "verbaliser_points")}  # fmt: skip
    db.execute("INSERT INTO jobs (id, project_id, kind, payload, status, created_at) "
               "VALUES (1, 1, 'list_run', ?, 'succeeded', ?)", [json.dumps({"run_id": 1}), t])  # fmt: skip
    db.execute("INSERT INTO runs (id, project_id, job_id, method, preset, config, seed, status, backbone, head, "
               "prompt_id, gold_snapshot, metrics, created_at) VALUES (1, 1, 1, 'list', 'fast', ?, 42, 'succeeded', "
               "'default', 'probe', 1, '[[1, 1], [2, 0]]', ?, ?)",
               [json.dumps(v1_config), json.dumps({"gold_accuracy": 1.0, "round": 1}), t])  # fmt: skip
    db.execute("INSERT INTO rounds VALUES (1, 1, ?)", [json.dumps({"round": 1, "gold_accuracy": 1.0, "loss": 0.5})])
    db.execute("INSERT INTO pseudo_labels VALUES (1, 1, 3, '[0.4, 0.6]', 1, 0.6, 0.01, 0)")
    db.execute("INSERT INTO predictions VALUES (1, 3, 1, '[0.4, 0.6]', 1, 0.6)")


@pytest.mark.parametrize("version", range(1, len(NAMES)))
def test_every_older_database_upgrades_and_keeps_its_data(tmp_path, version):
    path = tmp_path / f"v{version}.db"
    old = sqlite_utils.Database(path)
    migrations.apply(old, stop_before=NAMES[version])  # the schema as that version left it
    assert [m.name for m in migrations.applied(old)] == NAMES[:version]
    with old.conn:
        _fill_v1(old)
    old.close()

    db = st.connect(path)  # upgrades
    assert not migrations.pending(db)
    p = st.get_project(db, 1)
    assert p.labels == ["neg", "pos"] and st.count_examples(db, 1) == 3 and st.class_counts(db, 1) == [1, 1]
    assert st.history(db, 1)[0].new_label == 1
    assert st.latest_prompt(db, 1).label_words == ["bad", "great"] and st.latest_prompt(db, 1).descriptions is None
    run = runq.get_run(db, 1)
    assert run.status == "succeeded" and run.inputs is None and run.gold_snapshot == [[1, 1], [2, 0]]
    assert run.number == (1 if version <= NAMES.index("m006_run_numbers") else None)  # numbered by m006
    cfg = TrainConfig.from_dict(run.config)  # an old run's config still loads
    assert cfg.rounds == 3 and cfg.prompt_weight == 5.0
    assert runq.rounds(db, 1)[0]["gold_accuracy"] == 1.0
    assert runq.pseudo_labels(db, 1, 1)[0].text == "so so"
    assert predq.prediction(db, 3)["label"] == 1
    # the examples table was rebuilt (m007) with every reference intact, and foreign keys are on again
    assert (
        db.execute("PRAGMA foreign_keys").fetchone()[0] == 1 and not db.execute("PRAGMA foreign_key_check").fetchall()
    )
    assert "'pending'" in db.execute("SELECT sql FROM sqlite_master WHERE name = 'examples'").fetchone()[0]
    # the upgraded database takes new writes: a run status outside the fixed values is refused
    with pytest.raises(Exception, match="runs.status must be one of"):
        db.execute("UPDATE runs SET status = 'done' WHERE id = 1")
