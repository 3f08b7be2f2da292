"""Schema, as sqlite-utils migrations applied on connect (by the UI and by every worker)."""

from __future__ import annotations

from sqlite_utils.migrations import Migrations

migrations = Migrations("list_studio")


def _execute(db, script: str) -> None:
    """Run a schema script statement by statement, inside the migration's transaction (`executescript`
    would commit mid-migration); the schema has no semicolons inside strings."""
    for statement in (s.strip() for s in script.split(";")):
        if statement:
            db.execute(statement)


@migrations()
def m001_initial(db) -> None:
    _execute(db, INITIAL)


INITIAL = """
        CREATE TABLE projects (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            task TEXT NOT NULL CHECK (task IN ('single', 'pair')),
            labels TEXT NOT NULL,                -- JSON list, ordered
            backbone TEXT NOT NULL,
            target_gold INTEGER NOT NULL DEFAULT 30,
            created_at TEXT NOT NULL
        );
        CREATE TABLE examples (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            text TEXT,
            text_a TEXT,
            text_b TEXT,
            source TEXT NOT NULL,
            split TEXT NOT NULL DEFAULT 'pool' CHECK (split IN ('pool', 'eval')),
            eval_label INTEGER,                  -- only for the evaluation split
            hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (project_id, hash)
        );
        CREATE INDEX examples_project_split ON examples(project_id, split, id);
        CREATE TABLE gold (
            example_id INTEGER PRIMARY KEY REFERENCES examples(id) ON DELETE CASCADE,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            label INTEGER NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX gold_project ON gold(project_id, label);
        CREATE TABLE label_history (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            example_id INTEGER NOT NULL REFERENCES examples(id) ON DELETE CASCADE,
            old_label INTEGER,                   -- NULL: was unlabeled
            new_label INTEGER,                   -- NULL: label removed
            at TEXT NOT NULL,
            by TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT 'label', -- label, import, undo, accept_pseudo, correct_pseudo, reject_pseudo
            undoes INTEGER REFERENCES label_history(id)
        );
        CREATE INDEX label_history_project ON label_history(project_id, id);
        CREATE TABLE prompts (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            template TEXT NOT NULL,
            label_words TEXT NOT NULL,           -- JSON list, one per label
            created_at TEXT NOT NULL,
            UNIQUE (project_id, version)
        );
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            project_id INTEGER REFERENCES projects(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            heartbeat_at TEXT,
            worker_id TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            stage TEXT,
            step INTEGER,
            total INTEGER,
            eta_seconds REAL,
            message TEXT,
            error TEXT,
            result TEXT
        );
        CREATE INDEX jobs_status ON jobs(status, id);
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
            method TEXT NOT NULL,
            preset TEXT NOT NULL,
            config TEXT NOT NULL,                -- JSON TrainConfig
            seed INTEGER NOT NULL,
            status TEXT NOT NULL DEFAULT 'queued',
            backbone TEXT NOT NULL,
            backbone_hash TEXT,
            head TEXT,
            prompt_id INTEGER REFERENCES prompts(id),
            gold_snapshot TEXT NOT NULL,         -- JSON [[example_id, label], ...]
            metrics TEXT,                        -- JSON, final
            checkpoint_dir TEXT,
            created_at TEXT NOT NULL,
            finished_at TEXT
        );
        CREATE INDEX runs_project ON runs(project_id, id);
        CREATE TABLE rounds (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            round INTEGER NOT NULL,
            metrics TEXT NOT NULL,
            PRIMARY KEY (run_id, round)
        );
        CREATE TABLE pseudo_labels (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            round INTEGER NOT NULL,
            example_id INTEGER NOT NULL REFERENCES examples(id) ON DELETE CASCADE,
            probs TEXT NOT NULL,                 -- JSON list
            label INTEGER NOT NULL,
            confidence REAL NOT NULL,
            weight REAL,                         -- NULL: never drawn in a meta step
            flipped INTEGER NOT NULL,
            PRIMARY KEY (run_id, round, example_id)
        );
        CREATE INDEX pseudo_labels_weight ON pseudo_labels(run_id, round, weight);
        CREATE TABLE predictions (
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            example_id INTEGER NOT NULL REFERENCES examples(id) ON DELETE CASCADE,
            run_id INTEGER REFERENCES runs(id) ON DELETE CASCADE,
            probs TEXT NOT NULL,
            label INTEGER NOT NULL,
            confidence REAL NOT NULL,
            PRIMARY KEY (project_id, example_id)
        );
        CREATE INDEX predictions_uncertain ON predictions(project_id, confidence);
        CREATE TABLE artifacts (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
            kind TEXT NOT NULL,
            path TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE workers (
            id TEXT PRIMARY KEY,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            started_at TEXT NOT NULL,
            heartbeat_at TEXT NOT NULL
        );
"""


@migrations()
def m002_label_queue_and_exclusions(db) -> None:
    _execute(db, QUEUE)


@migrations()
def m003_run_eta(db) -> None:
    _execute(db, "ALTER TABLE jobs ADD COLUMN run_eta_seconds REAL")


QUEUE = """
CREATE TABLE label_queue (
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    example_id INTEGER NOT NULL REFERENCES examples(id) ON DELETE CASCADE,
    rank INTEGER NOT NULL,
    strategy TEXT NOT NULL,
    PRIMARY KEY (project_id, example_id)
);
CREATE INDEX label_queue_rank ON label_queue(project_id, rank);
CREATE TABLE excluded (
    example_id INTEGER PRIMARY KEY REFERENCES examples(id) ON DELETE CASCADE,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    at TEXT NOT NULL,
    by TEXT NOT NULL
);
"""


@migrations()
def m004_run_inputs_file_predictions_verbalisers(db) -> None:
    for statement in RUN_INPUTS:  # one by one: trigger bodies hold semicolons
        db.execute(statement)


RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
_STATUSES = ", ".join(f"'{s}'" for s in RUN_STATUSES)
_ABORT = f"SELECT RAISE(ABORT, 'runs.status must be one of {'/'.join(RUN_STATUSES)}')"
RUN_INPUTS = [
    # what a run trains on, fixed at enqueue: JSON {"unlabeled": [ids], "eval": [ids], "rejected": [ids], "sha256"}
    "ALTER TABLE runs ADD COLUMN inputs TEXT",
    f"UPDATE runs SET status = 'failed' WHERE status NOT IN ({_STATUSES})",
    # SQLite cannot add a CHECK to an existing table without rebuilding it (and cascading deletes): triggers
    f"CREATE TRIGGER runs_status_insert BEFORE INSERT ON runs WHEN NEW.status NOT IN ({_STATUSES}) BEGIN {_ABORT}; END",
    f"CREATE TRIGGER runs_status_update BEFORE UPDATE OF status ON runs WHEN NEW.status NOT IN ({_STATUSES}) "
    f"BEGIN {_ABORT}; END",
    # richer verbalisers: label_words entries may be lists; an optional description per class (JSON list)
    "ALTER TABLE prompts ADD COLUMN descriptions TEXT",
    """CREATE TABLE file_predictions (
        job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        row INTEGER NOT NULL,
        input TEXT NOT NULL,                 -- JSON {"text": ...} or {"text_a": ..., "text_b": ...}
        probs TEXT,                          -- JSON list, written by the worker
        PRIMARY KEY (job_id, row)
    )""",
]


@migrations()
def m005_job_stalls(db) -> None:
    # attempts that died without finishing a round since the last one that did: the give-up rule counts these, so
    # a run killed many times while it keeps making progress is never given up (a crash loop still is)
    _execute(db, "ALTER TABLE jobs ADD COLUMN stalls INTEGER NOT NULL DEFAULT 0")


@migrations()
def m006_run_numbers(db) -> None:
    # runs are numbered per project (1, 2, ...) for people; ids stay the keys
    _execute(
        db,
        """
        ALTER TABLE runs ADD COLUMN number INTEGER;
        UPDATE runs SET number = (SELECT count(*) FROM runs r WHERE r.project_id = runs.project_id AND r.id <= runs.id)
    """,
    )


@migrations()
def m007_pending_examples(db) -> None:
    # an import writes its rows in short transactions as split 'pending' (invisible: every read names its split)
    # and publishes them with one UPDATE; SQLite cannot change a CHECK in place, so the table is rebuilt (connect()
    # applies migrations with foreign keys off, so dropping the old table cascades nothing)
    if db.execute("PRAGMA foreign_keys").fetchone()[0]:
        raise RuntimeError("m007 must run with foreign keys off (it rebuilds the examples table)")
    _execute(db, PENDING_EXAMPLES)
    bad = db.execute("PRAGMA foreign_key_check").fetchall()
    if bad:
        raise RuntimeError(f"m007: foreign keys broken after rebuilding examples: {bad[:5]}")


PENDING_EXAMPLES = """
        CREATE TABLE examples_new (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            text TEXT,
            text_a TEXT,
            text_b TEXT,
            source TEXT NOT NULL,
            split TEXT NOT NULL DEFAULT 'pool' CHECK (split IN ('pool', 'eval', 'pending')),
            eval_label INTEGER,                  -- the evaluation split's label (while pending: the row's label)
            hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (project_id, hash)
        );
        INSERT INTO examples_new (id, project_id, text, text_a, text_b, source, split, eval_label, hash, created_at)
            SELECT id, project_id, text, text_a, text_b, source, split, eval_label, hash, created_at FROM examples;
        DROP TABLE examples;
        ALTER TABLE examples_new RENAME TO examples;
        CREATE INDEX examples_project_split ON examples(project_id, split, id)
"""
