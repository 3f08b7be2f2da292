import pytest
import torch

from list_core import pool as poolmod
from list_core.backbone import load_backbone
from list_core.distributed import LocalScorer
from list_core.model import ListModel
from list_core.pool import pass_over, sample, spans, take
from list_core.self_training import run_list

from .test_self_training import POOL, PROMPT, task, tiny_cfg


class CountingRows:
    """A pool read only through `take` (as from a database), recording the largest read."""

    def __init__(self, rows):
        self.rows, self.largest, self.reads = rows, 0, 0

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        raise AssertionError("a pool is read in chunks, never one row at a time")

    def __iter__(self):
        for part in spans(len(self)):
            yield from self.take(part)

    def take(self, index):
        self.largest, self.reads = max(self.largest, len(index)), self.reads + 1
        return [self.rows[i] for i in index]


def test_spans_sample_and_take():
    assert [list(r) for r in spans(7, 3)] == [[0, 1, 2], [3, 4, 5], [6]] and list(spans(0, 3)) == []
    g = torch.Generator().manual_seed(0)
    assert sample(5, None, g) == sample(5, 5, g) == [0, 1, 2, 3, 4]
    s = sample(100, 10, g)
    assert len(s) == len(set(s)) == 10 and s == sorted(s) and all(0 <= i < 100 for i in s)
    rows = [{"text": str(i)} for i in range(5)]
    assert take(rows, [3, 1]) == [{"text": "3"}, {"text": "1"}] == take(CountingRows(rows), [3, 1])


@pytest.mark.parametrize("what", ["logits", "features"])
def test_pass_over_in_chunks_equals_one_pass(bert, what):
    model = ListModel(bert, PROMPT, "prompt")
    rows = [{"text": t} for t in POOL]
    whole = getattr(LocalScorer(), what)(model, model.encode(rows))
    src = CountingRows(rows)
    chunked = pass_over(LocalScorer(), model, src, what, chunk=3)
    assert src.largest == 3 and torch.allclose(chunked, whole, atol=1e-5)
    part = pass_over(LocalScorer(), model, src, what, index=[4, 0, 7], chunk=2)
    assert torch.allclose(part, whole[[4, 0, 7]], atol=1e-5)


def test_a_pool_read_in_chunks_gives_the_same_run(tiny_headless_dir, monkeypatch):
    """The fast preset's path on a headless backbone (prompt-aware teacher, q0, rounds on a subset): a pool read in
    chunks through `take` trains exactly the run a list does, and no read is larger than a chunk or a round."""
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    cfg = tiny_cfg(probe_self_train=2, ensemble_teacher=True, unlabeled_limit=6)
    ref = run_list(bb, PROMPT, task(), cfg)
    monkeypatch.setattr(poolmod, "CHUNK", 4)
    src = CountingRows([{"text": t} for t in POOL])
    res = run_list(bb, PROMPT, task(unlabeled_rows=src), cfg)
    assert src.largest == len(POOL)  # the teacher's sample: the whole pool, as it is under `teacher_pool_limit`
    assert [r.eval_accuracy for r in res.rounds] == [r.eval_accuracy for r in ref.rounds]
    for a, b in zip(res.tables, ref.tables):
        assert [x.id for x in a] == [x.id for x in b]
        assert torch.allclose(torch.tensor([x.probs for x in a]), torch.tensor([x.probs for x in b]), atol=1e-5)


def test_the_teacher_is_fitted_on_a_sample_and_labels_the_whole_pool(tiny_headless_dir, monkeypatch):
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    monkeypatch.setattr(poolmod, "CHUNK", 4)
    src, events = CountingRows([{"text": t} for t in POOL]), []
    cfg = tiny_cfg(probe_self_train=2, ensemble_teacher=True, teacher_pool_limit=5, unlabeled_limit=6, rounds=2)
    res = run_list(bb, PROMPT, task(unlabeled_rows=src), cfg, callback=events.append)
    assert "on 5 of 20 pool texts" in next(e.message for e in events if e.stage == "probe")
    whole = [e for e in events if e.stage == "pseudo_label" and e.round == 0]
    # the sampled teacher still labels every pool text (for q0), reporting each chunk
    assert [e.step for e in whole] == [0, 4, 8, 12, 16, 20] and {e.total for e in whole} == {len(POOL)}
    assert src.largest == 6  # reads: the sample (5), chunks (4), each round's subset (6); never the whole pool
    assert len(res.rounds) == 2 and all(len(t) == 6 for t in res.tables)
    with pytest.raises(ValueError, match="teacher_pool_limit=0"):
        tiny_cfg(teacher_pool_limit=0)
