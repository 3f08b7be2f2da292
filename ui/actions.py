"""What the pages ask for, checked before it reaches the store: starting a run (its method and settings
validated by list_core's config and method registry, both torch-free), a file to predict."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from list_core.config import preset
from list_core.methods import get as get_method
from storage import StoreError, count_examples, get_project, latest_prompt
from storage import jobs as jobq
from storage import predictions as predq
from storage import runs as runq
from storage import save_prompt as store_prompt
from storage.models import Job, PromptVersion, Run


def save_prompt(
    db: sqlite_utils.Database,
    project_id: int,
    template: str,
    label_words: list[str | list[str]],
    descriptions: list[str] | None = None,
) -> PromptVersion:
    """Save the prompt (an unchanged one is not a new version). Until a run has written its own, a new version's
    zero-shot predictions of the pool become the Label page's suggestions: queued here as background work (in place
    of an older request still queued), so they follow the saved prompt without a scoring on the board."""
    before = latest_prompt(db, project_id)
    version = store_prompt(db, project_id, template, label_words, descriptions)
    if before is None or version.id != before.id:
        suggest_from_prompt(db, project_id, version)
    return version


def suggest_from_prompt(db: sqlite_utils.Database, project_id: int, version: PromptVersion) -> Job | None:
    """Queue a prompt version's zero-shot predictions of the pool as the Label page's suggestions (background work,
    in place of an older request still queued); None where there is no pool or a run's predictions already
    suggest."""
    if not count_examples(db, project_id) or predq.has_run_predictions(db, project_id):
        return None
    prompt = {"template": version.template, "label_words": version.label_words}
    if version.descriptions:
        prompt["descriptions"] = version.descriptions
    return jobq.queue_replacing(db, project_id, "prompt_suggest", {"prompt": prompt, "background": True})


def start_run(
    db: sqlite_utils.Database,
    project_id: int,
    method: str = "list",
    preset_name: str = "fast",
    seed: int = 42,
    overrides: dict[str, Any] | None = None,
    alongside: bool = False,
    ray_address: str | None = None,
) -> tuple[Run, Job]:
    """Validate the method and settings (a preset, or `custom`: the fast preset with `overrides` by knob name),
    then snapshot the run's inputs and enqueue its job in one transaction. `ray_address`: a Ray cluster for the
    run's pool-wide forward passes ('local', 'auto', host:port or ray://host:port; empty: the worker's own)."""
    address = (ray_address or "").strip()
    if address and not _valid_address(address):
        raise StoreError(f"Ray address {address!r}: give 'local', 'auto', host:port or ray://host:port")
    try:
        spec = get_method(method)
        cfg = preset("fast" if preset_name == "custom" else preset_name, seed=int(seed)).with_knobs(overrides or {})
    except (TypeError, ValueError) as e:
        raise StoreError(f"invalid training settings: {e}") from None
    task = get_project(db, project_id).task
    if task not in spec.tasks:
        raise StoreError(f"{spec.title} trains on {' or '.join(spec.tasks)} tasks only; this project is a {task} task")
    return runq.start_run(db, project_id, method, preset_name, cfg.to_dict(), cfg.seed, alongside=alongside,
                          ray_address=address or None)  # fmt: skip


def _valid_address(address: str) -> bool:
    if address in ("local", "auto"):
        return True
    host, _, port = address.removeprefix("ray://").rpartition(":")
    return bool(host) and port.isdigit() and " " not in host
