"""The backbone's cache of frozen features for the prompt tools: exact rows, only misses encoded, bounded by bytes,
kept on disk within `saved_in` for the next worker (per backbone), never read by training."""

import pytest
import torch

from list_core.backbone import load_backbone
from list_core.config import preset
from list_core.data import Encoded
from list_core.feature_cache import FeatureCache, fingerprint, saved_in
from list_core.model import ListModel
from list_core.prompt_tools import zero_shot_model
from list_core.prompts import Prompt
from list_core.self_training import TaskData, run_list

PROMPT = Prompt("{text} It was {mask} .", ("bad", "great"))
TEXTS = [f"{w} {x}" for w in ("great", "bad", "good", "awful") for x in ("movie", "film", "story")]


@pytest.fixture
def model(tiny_headless_dir):
    return zero_shot_model(load_backbone(str(tiny_headless_dir), device="cpu"), PROMPT)


def sentences(model, texts) -> Encoded:
    return Encoded.sentences(model.backbone.tokenizer, texts, model.max_length)


def counting(monkeypatch) -> list[int]:
    """Patch `ListModel.frozen_features` to record how many texts each call encodes."""
    passes, real = [], ListModel.frozen_features
    monkeypatch.setattr(ListModel, "frozen_features", lambda m, enc, *a: passes.append(len(enc)) or real(m, enc, *a))
    return passes


def test_rows_are_the_models_frozen_features_in_order_and_only_misses_are_encoded(model, monkeypatch):
    cache = FeatureCache()
    expected = model.frozen_features(sentences(model, TEXTS))  # (N, D)
    passes = counting(monkeypatch)
    first = cache.features(model, sentences(model, TEXTS[:5]))
    assert passes == [5] and torch.allclose(first, expected[:5], atol=1e-6)
    # a mix of cached and new texts, one of them twice, in a new order: only the 3 new ones are encoded, once
    order = [7, 0, 6, 7, 4, 5, 2]
    mixed = cache.features(model, sentences(model, [TEXTS[i] for i in order]))
    assert passes == [5, 3] and torch.allclose(mixed, expected[order], atol=1e-6)
    assert (cache.hits, cache.misses, len(cache)) == (3, 5 + 3, 8)
    assert cache.features(model, sentences(model, [])).shape == (0, model.backbone.hidden_size)


def test_rows_are_looked_up_by_their_texts_before_any_tokenizing(model, monkeypatch, tiny_dirs):
    """A hit costs no tokenizing (long texts take longer to tokenize than to look up); the rows are the texts
    alone, as the similarity head reads them (a pair as a tokenizer pair), whichever model asks (the diverse order
    asks with a classic head, on a backbone that may have an MLM head)."""
    import list_core.data as data

    cache = FeatureCache()
    rows = [{"text": t, "other": "not read"} for t in TEXTS]
    expected = model.frozen_features(model.encode(rows))
    assert torch.allclose(cache.row_features(model, rows[:6]), expected[:6], atol=1e-6)
    encoded, real = [], data.encode_plain
    monkeypatch.setattr(data, "encode_plain", lambda tok, r, *a: encoded.append(len(r)) or real(tok, r, *a))
    both = cache.row_features(model, rows[::-1])
    assert encoded == [6] and torch.allclose(both, expected.flip(0), atol=1e-6)  # only the 6 new rows tokenized
    pair = zero_shot_model(model.backbone, Prompt("{text_a} ? {mask} , {text_b}", ("no", "yes")))
    pairs = [{"text_a": "a cat sat", "text_b": "a cat"}, {"text_a": "a cat", "text_b": "a cat sat"}]
    assert torch.allclose(cache.row_features(pair, pairs), pair.frozen_features(pair.encode(pairs)), atol=1e-6)
    mlm = zero_shot_model(load_backbone(str(tiny_dirs["bert"]), device="cpu"), PROMPT)
    plain = Encoded.of(PROMPT, mlm.backbone.tokenizer, rows, mlm.max_length, plain=True)  # not the template
    assert torch.allclose(mlm.backbone.feature_cache.row_features(mlm, rows), mlm.frozen_features(plain), atol=1e-6)


def test_the_least_recently_used_rows_leave_first_once_the_budget_is_spent(model, monkeypatch):
    row_bytes = model.backbone.hidden_size * 4  # float32
    cache = FeatureCache(max_bytes=3 * row_bytes)
    cache.features(model, sentences(model, TEXTS[:3]))
    cache.features(model, sentences(model, TEXTS[:1]))  # TEXTS[0] is now the most recently used
    cache.features(model, sentences(model, TEXTS[3:5]))  # two more: TEXTS[1] and TEXTS[2] leave
    assert len(cache) == 3 and cache.nbytes == 3 * row_bytes
    passes = counting(monkeypatch)
    cache.features(model, sentences(model, [TEXTS[0], TEXTS[3], TEXTS[4]]))
    assert passes == []
    cache.features(model, sentences(model, [TEXTS[1]]))
    assert passes == [1]
    cache.clear()
    assert (len(cache), cache.nbytes) == (0, 0)
    with pytest.raises(ValueError, match="max_bytes must be >= 0, got -1"):
        FeatureCache(max_bytes=-1)


def test_the_budget_comes_from_the_environment(model, monkeypatch):
    monkeypatch.setenv("LIST_FEATURE_CACHE_MB", "0.5")
    assert FeatureCache().max_bytes == 2**19
    monkeypatch.setenv("LIST_FEATURE_CACHE_MB", "0")  # off: every call encodes its texts, nothing is kept
    off, passes = FeatureCache(), counting(monkeypatch)
    off.features(model, sentences(model, TEXTS[:2]))
    off.features(model, sentences(model, TEXTS[:2]))
    assert passes == [2, 2] and len(off) == 0
    for bad in ("lots", "-3"):
        monkeypatch.setenv("LIST_FEATURE_CACHE_MB", bad)
        with pytest.raises(ValueError, match=f"LIST_FEATURE_CACHE_MB='{bad}'"):
            FeatureCache()


def test_inside_saved_in_a_new_worker_reads_the_features_back_from_disk(model, monkeypatch, tmp_path, tiny_dirs):
    """A restarted worker (a new backbone object and cache) reads the features an earlier one computed in the same
    folder instead of encoding the texts; another backbone's features are kept apart; outside `saved_in` nothing
    goes to disk."""
    rows = [{"text": t} for t in TEXTS]
    FeatureCache().row_features(model, rows[:4])
    assert not any(tmp_path.iterdir())
    with saved_in(tmp_path):
        first = FeatureCache().row_features(model, rows[:8])
    restarted = zero_shot_model(load_backbone(model.backbone.name, device="cpu"), PROMPT)
    passes, cache = counting(monkeypatch), FeatureCache()
    with saved_in(tmp_path):
        again = cache.row_features(restarted, rows)
    assert passes == [4] and torch.equal(again[:8], first)  # read back bit for bit; only the 4 new texts encoded
    assert (cache.hits, cache.stored_hits, cache.misses) == (0, 8, 4)
    with saved_in(tmp_path):
        assert torch.equal(cache.row_features(restarted, rows), again) and passes == [4]  # now from memory
    other = zero_shot_model(load_backbone(str(tiny_dirs["roberta"]), device="cpu"), PROMPT)
    with saved_in(tmp_path):
        FeatureCache().row_features(other, rows)
    assert passes == [4, 12] and len(list(tmp_path.glob("*.f32"))) == 2  # its own file, none of the other's rows


def test_the_fingerprint_follows_the_weights_and_the_tokenizer_not_the_object_or_its_adapters(model, tiny_dirs):
    bb = model.backbone
    same = load_backbone(bb.name, device="cpu")
    assert fingerprint(same) == fingerprint(bb)
    bb.adapter_layers()  # layers wrapped for adapters read as the plain layers
    assert fingerprint(bb) == fingerprint(same)
    with torch.no_grad():
        next(p for n, p in same.encoder.named_parameters() if "layer.0" in n).add_(1e-3)
    assert fingerprint(same) != fingerprint(bb)
    assert fingerprint(load_backbone(str(tiny_dirs["roberta"]), device="cpu")) != fingerprint(bb)


def test_a_run_never_reads_or_fills_the_cache(tiny_headless_dir, tmp_path):
    """A run's features are computed afresh, so its result cannot depend on what the prompt tools scored before it
    (a text's features can differ in the last bits with its batch); nothing goes to disk either."""
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    task = TaskData(["negative", "positive"], [{"text": t} for t in TEXTS[:6]], [1, 1, 1, 0, 0, 0],
                    [{"text": t} for t in TEXTS[6:]])  # fmt: skip
    cfg = preset("fast", rounds=1, student_steps=2, finetune_epochs=1, seed=0)
    with saved_in(tmp_path):
        run_list(bb, PROMPT, task, cfg)
    assert len(bb.feature_cache) == 0 and bb.feature_cache.hits == 0 and not any(tmp_path.iterdir())


def test_a_folder_keeps_the_stores_of_its_two_latest_backbones(model, tmp_path):
    """A project whose backbone changed keeps the previous backbone's store (switching back is common) and loses
    older ones, lock files included, when a store is opened; nothing else in the folder is touched."""
    import os

    for i, name in enumerate(("a" * 32 + "-8.f32", "b" * 32 + "-8.f32", "c" * 32 + "-8.f32")):
        (tmp_path / name).write_bytes(b"\0" * 48)
        (tmp_path / f"{name}.lock").touch()
        os.utime(tmp_path / name, (1000 + i, 1000 + i))  # c is the latest used
    (tmp_path / "notes.txt").write_text("mine")
    with saved_in(tmp_path):
        FeatureCache().row_features(model, [{"text": t} for t in TEXTS[:2]])
    names = sorted(p.name for p in tmp_path.iterdir())
    ours = f"{fingerprint(model.backbone)}-{model.backbone.hidden_size}.f32"
    assert names == sorted(["c" * 32 + "-8.f32", "c" * 32 + "-8.f32.lock", ours, f"{ours}.lock", "notes.txt"])
