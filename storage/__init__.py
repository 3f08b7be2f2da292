"""SQLite store of LiST Studio (sqlite-utils): projects, examples, gold labels with history, prompts, jobs,
runs, rounds, pseudo-labels, predictions and artifacts. No torch here: the UI imports it."""

from .db import connect, db_path, write
from .examples import (
    ExampleRows,
    ImportReport,
    add_examples,
    all_examples,
    count_examples,
    example_ids,
    examples_by_ids,
    get_example,
    import_file,
    page_examples,
    same_text_pairs,
)
from .exports import export_data, labeled_rows
from .importers import ImportFileError, read_table
from .labels import LabelConflict, class_counts, gold_labels, history, set_label, undo_last
from .projects import (
    StoreError,
    create_project,
    delete_project,
    features_dir,
    get_project,
    latest_prompt,
    list_projects,
    prompt_history,
    save_prompt,
)

__all__ = [
    "ImportFileError",
    "ExampleRows",
    "ImportReport",
    "StoreError",
    "add_examples",
    "all_examples",
    "class_counts",
    "connect",
    "count_examples",
    "same_text_pairs",
    "create_project",
    "db_path",
    "delete_project",
    "features_dir",
    "example_ids",
    "examples_by_ids",
    "export_data",
    "get_example",
    "get_project",
    "gold_labels",
    "history",
    "import_file",
    "labeled_rows",
    "latest_prompt",
    "list_projects",
    "page_examples",
    "prompt_history",
    "read_table",
    "save_prompt",
    "set_label",
    "LabelConflict",
    "undo_last",
    "write",
]
