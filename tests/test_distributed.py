"""Forward passes on a Ray cluster (issue 14): a local 2-CPU cluster started here (loopback only) must give the
local path's results (equal here; to float rounding in general, as BLAS may sum in another order in another
process), survive a killed actor, and the local path must never import Ray."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import storage as st
from list_core.backbone import load_backbone
from list_core.config import AdapterConfig
from list_core.distributed import LocalScorer, RayConfig
from list_core.export import save_native
from list_core.model import ListModel
from list_core.prompts import Prompt
from list_core.self_training import run_list
from storage import jobs as jobq
from storage import predictions as predq
from storage import runs as runq
from tests.test_self_training import task, tiny_cfg
from tests.test_worker import TINY, make_project
from ui import actions
from worker.runner import Worker

ROOT = Path(__file__).resolve().parents[1]
PROMPT = Prompt("{text} It was {mask} .", ("bad", "great"))
ROWS = [{"text": f"text number {i} " + "word " * (i % 13)} for i in range(150)]


def _trained(path, head, seed=0) -> ListModel:
    torch.manual_seed(seed)
    m = ListModel(load_backbone(str(path), device="cpu"), PROMPT, head=head, adapter=AdapterConfig(bottleneck=4))
    with torch.no_grad():
        for p in m.trainable_named_parameters().values():
            p.add_(torch.randn_like(p) * 0.1)
    return m.eval()


def test_ray_config_names_every_bad_value():
    for kw, word in [({"address": " "}, "address"), ({"actors": 0}, "actors"), ({"cpus_per_actor": 0}, "cpus_per"),
                     ({"shard_size": 0}, "shard_size"), ({"retries": -1}, "retries"), ({"gpus_per_actor": -1}, "gpus")]:  # fmt: skip
        with pytest.raises(ValueError, match=word):
            RayConfig(**{"address": "local", **kw})
    assert RayConfig.from_env("") is None or os.environ.get("LIST_RAY_ADDRESS")


def test_the_local_path_never_imports_ray(tiny_dirs, tmp_path):
    save_native(_trained(tiny_dirs["bert"], "prompt"), tmp_path / "a", labels=["neg", "pos"])
    (tmp_path / "in.csv").write_text("text\ngreat movie\nbad film\n")
    code = f"""
import sys
import worker.handlers, worker.runner, list_core.self_training, list_core.distributed
from list_core.predict import main
assert main(["--adapter", {str(tmp_path / "a")!r}, "--input", {str(tmp_path / "in.csv")!r},
             "--output", {str(tmp_path / "out.csv")!r}]) == 0
print("ray" in sys.modules)
"""
    env = {k: v for k, v in os.environ.items() if k != "LIST_RAY_ADDRESS"}
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def _with_lexical_view(m: ListModel) -> ListModel:
    import numpy as np

    from list_core.lexical import LexicalHead

    texts = [r["text"] for r in ROWS]
    q = np.stack([np.arange(150) % 2, 1 - np.arange(150) % 2], 1) * 0.8 + 0.1  # (150, 2)
    m.lexical = LexicalHead.fit(texts, q, [], [], 0.5)
    return m


def test_packed_shards_keep_the_texts_a_lexical_view_reads(tiny_dirs):
    from list_core.distributed import pack, unpack

    m = _trained(tiny_dirs["bert"], "similarity")
    plain = m.encode(ROWS[:5])
    assert unpack(pack(plain)) == plain and plain.texts is None
    lexical = _with_lexical_view(m).encode(ROWS[:5])
    assert lexical.texts == [r["text"] for r in ROWS[:5]] and unpack(pack(lexical)) == lexical


# -- on a local Ray cluster ------------------------------------------------------------------------------------------

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -r requirements-scale.txt")


@pytest.fixture(scope="module")
def scorer():
    from list_core.distributed import drop_shared, init_local, shared_scorer

    if not ray.is_initialized():
        init_local(2)
    s = shared_scorer("local", 2)
    default = s.cfg
    s.cfg = dataclasses.replace(default, shard_size=16)  # 10 shards of 150 rows: more than the 4 kept in flight
    yield s
    s.cfg = default
    drop_shared("local")


def same(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize("head", ["prompt", "similarity", "probe", "classic"])
def test_ray_scorer_equals_the_local_path(scorer, tiny_dirs, head):
    m = _trained(tiny_dirs["bert"], head)
    enc = m.encode(ROWS)
    same(scorer.logits(m, enc, 16), LocalScorer().logits(m, enc, 16))
    same(scorer.features(m, enc, 16), LocalScorer().features(m, enc, 16))
    with torch.no_grad():  # changed weights make a new spec: the actors must not answer from the old model
        next(iter(m.trainable_named_parameters().values())).mul_(3)
    same(scorer.logits(m, enc, 16), LocalScorer().logits(m, enc, 16))


def test_ray_scorer_mixes_in_a_lexical_view_as_the_local_path_does(scorer, tiny_dirs):
    m = _with_lexical_view(_trained(tiny_dirs["bert"], "similarity", seed=5))
    enc = m.encode(ROWS)
    same(scorer.logits(m, enc, 16), LocalScorer().logits(m, enc, 16))


def test_a_list_run_on_the_cluster_equals_a_local_run(scorer, tiny_dirs):
    bb = load_backbone(str(tiny_dirs["bert"]), device="cpu")
    local = run_list(bb, PROMPT, task(), tiny_cfg())
    far = run_list(bb, PROMPT, task(), tiny_cfg(), scorer=scorer)
    assert [t.label for t in far.tables[-1]] == [t.label for t in local.tables[-1]]
    same(torch.tensor([t.probs for t in far.tables[-1]]), torch.tensor([t.probs for t in local.tables[-1]]))
    rows = task().unlabeled_rows
    same(far.predict_proba(rows), local.predict_proba(rows))


def test_a_killed_actor_is_restarted_and_its_shards_retried(scorer, tiny_dirs):
    m = _trained(tiny_dirs["bert"], "prompt", seed=3)
    enc = m.encode(ROWS)
    want = LocalScorer().logits(m, enc, 16)
    pid = ray.get(scorer.actors[0].pid.remote())
    os.kill(pid, signal.SIGKILL)
    same(scorer.logits(m, enc, 16), want)
    assert ray.get(scorer.actors[0].pid.remote(), timeout=120) != pid  # a new process took its place


def test_predict_cli_on_the_cluster_writes_the_local_results_and_shards(scorer, tiny_dirs, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from list_core.predict import main

    save_native(_trained(tiny_dirs["bert"], "similarity"), tmp_path / "a", labels=["neg", "pos"])
    folder = tmp_path / "in"
    folder.mkdir()
    texts = [r["text"] for r in ROWS]
    (folder / "a.csv").write_text("id,text\n" + "".join(f"{i},{t}\n" for i, t in enumerate(texts[:50])))
    (folder / "b.jsonl").write_text(
        "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts[50:100]))
    )
    pq.write_table(pa.table({"id": list(range(50)), "text": texts[100:]}), folder / "c.parquet")
    base = ["--adapter", str(tmp_path / "a"), "--input", str(folder), "--chunk-size", "20", "--batch-size", "8"]
    assert main([*base, "--output", str(tmp_path / "local.parquet")]) == 0
    assert main([*base, "--output", str(tmp_path / "ray.parquet"), "--engine", "ray", "--address", "local"]) == 0
    local, far = pq.read_table(tmp_path / "local.parquet"), pq.read_table(tmp_path / "ray.parquet")
    assert far.num_rows == 150 and far.column_names == local.column_names
    assert far.column("prediction").to_pylist() == local.column("prediction").to_pylist()
    for col in ("p_neg", "p_pos"):  # rounded to 6 decimals: equal, or one unit of the last digit apart
        assert max(abs(a - b) for a, b in zip(far.column(col).to_pylist(), local.column(col).to_pylist())) <= 2e-6
    assert far.column("source").to_pylist()[::50] == ["a.csv", "b.jsonl", "c.parquet"]
    shards = sorted((tmp_path / "ray.parquet.parts").glob("part-*.parquet"))
    assert len(shards) == 9 and sum(pq.read_table(s).num_rows for s in shards) == 150


def test_a_run_with_a_ray_address_trains_on_the_cluster_and_a_bad_one_is_retried_then_fails(
    scorer, tmp_path, tiny_dirs, monkeypatch
):
    db, p, path = make_project(tmp_path, tiny_dirs)
    run, _ = actions.start_run(db, p.id, "list", "fast", seed=3, overrides=TINY, ray_address="local")
    done = Worker(path, poll_s=0.1).run_once()
    assert done.status == "succeeded", done.error
    local, _ = actions.start_run(db, p.id, "list", "fast", seed=3, overrides=TINY)
    assert Worker(path, poll_s=0.1).run_once().status == "succeeded"
    far, near = runq.pseudo_labels(db, run.id, 2, limit=100), runq.pseudo_labels(db, local.id, 2, limit=100)
    assert [x.example_id for x in far] == [x.example_id for x in near]
    same(torch.tensor([x.probs for x in far]), torch.tensor([x.probs for x in near]))
    # a file prediction goes to the cluster named by $LIST_RAY_ADDRESS, with the local path's probabilities
    rows = [{"text": f"file row {i}", "source": json.dumps({"id": i})} for i in range(40)]
    probs = {}
    for address in ("local", ""):
        monkeypatch.setenv("LIST_RAY_ADDRESS", address)
        job = predq.enqueue_file_prediction(db, p.id, run.id, rows)
        assert Worker(path, poll_s=0.1).run_once().status == "succeeded"
        probs[address] = [pr for _, pr in predq.file_predictions(db, job.id)]
    monkeypatch.delenv("LIST_RAY_ADDRESS")
    assert len(probs[""]) == 40
    same(torch.tensor(probs["local"]), torch.tensor(probs[""]))
    # a cluster this process is not connected to: retried twice (the run resumes), then the job fails saying why
    bad, job = actions.start_run(db, p.id, "list", "fast", seed=3, overrides=TINY, ray_address="127.0.0.1:1")
    w = Worker(path, poll_s=0.1)
    for _ in range(3):
        w.run_once()
    job = jobq.get_job(db, job.id)
    assert job.status == "failed" and "127.0.0.1:1" in job.error and "gave up after 3 attempts" in job.error
    with pytest.raises(st.StoreError, match="Ray address"):
        actions.start_run(
            db, p.id, "list", "fast", seed=3, overrides=TINY, ray_address="not an address", alongside=True
        )
