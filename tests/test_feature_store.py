"""Frozen features on disk: exact rows back, records appended by another process seen, a record cut short by a
killed process dropped, the oldest records compacted away past the budget, and a broken store never failing."""

import hashlib
import logging
import os

import numpy as np
import pytest
import torch

from list_core.feature_store import FeatureStore, store_budget_bytes

D = 6


def key(i: int) -> bytes:
    return hashlib.blake2b(str(i).encode(), digest_size=16).digest()


def rows(*ids: int) -> dict[bytes, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    table = torch.randn(100, D, generator=g)  # the same row for the same id in every call
    return {key(i): table[i] for i in ids}


def test_rows_come_back_exactly_and_only_for_the_keys_stored(tmp_path):
    store = FeatureStore(tmp_path / "f" / "s.f32", D, max_bytes=1 << 20)
    assert store.get([key(1)]) == {} and not (tmp_path / "f").exists()  # nothing stored: nothing created
    store.put(rows(1, 2, 3))
    got = store.get([key(3), key(9), key(1), key(3)])
    assert set(got) == {key(1), key(3)} and len(store) == 3
    assert torch.equal(got[key(1)], rows(1)[key(1)]) and torch.equal(got[key(3)], rows(3)[key(3)])  # bit for bit
    store.put(rows(2, 4))  # 2 is stored already: only 4 is appended
    assert os.path.getsize(store.path) == 4 * (16 + 4 * D)


def test_a_second_store_on_the_same_file_sees_what_the_first_appends(tmp_path):
    """A restarted worker (a new store object) reads what the old one wrote, and two live processes see each
    other's appends."""
    a, b = (FeatureStore(tmp_path / "s.f32", D, max_bytes=1 << 20) for _ in range(2))
    a.put(rows(1))
    assert set(b.get([key(1), key(2)])) == {key(1)}
    a.put(rows(2))
    assert torch.equal(b.get([key(2)])[key(2)], rows(2)[key(2)])


def test_a_record_cut_short_by_a_killed_process_is_ignored_then_dropped(tmp_path):
    store = FeatureStore(tmp_path / "s.f32", D, max_bytes=1 << 20)
    store.put(rows(1, 2))
    with open(store.path, "ab") as f:  # a process killed in the middle of an append
        f.write(key(3) + b"\0" * 7)
    fresh = FeatureStore(store.path, D, max_bytes=1 << 20)
    assert set(fresh.get([key(1), key(2), key(3)])) == {key(1), key(2)}
    fresh.put(rows(4))
    assert os.path.getsize(store.path) == 3 * (16 + 4 * D)  # the cut record dropped before the append
    assert torch.equal(FeatureStore(store.path, D).get([key(4)])[key(4)], rows(4)[key(4)])


def test_past_the_budget_the_newest_records_in_half_of_it_are_kept(tmp_path):
    record = 16 + 4 * D
    store = FeatureStore(tmp_path / "s.f32", D, max_bytes=10 * record)
    reader = FeatureStore(store.path, D, max_bytes=10 * record)  # another process, its index built before
    store.put(rows(*range(8)))
    assert len(reader) == 8
    store.put(rows(*range(8, 12)))  # 12 records > 10: compacted to the newest 5
    assert os.path.getsize(store.path) == 5 * record
    got = reader.get([key(i) for i in range(12)])  # the replaced file is indexed afresh, not read at stale places
    assert sorted(got) == sorted(key(i) for i in range(7, 12))
    assert all(torch.equal(got[key(i)], rows(i)[key(i)]) for i in range(7, 12))
    assert store.get([key(0)]) == {}
    assert not list(tmp_path.glob("*.tmp"))


def test_a_store_that_cannot_be_written_or_read_logs_and_reads_as_empty(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    store = FeatureStore(blocker / "s.f32", D, max_bytes=1 << 20)
    with caplog.at_level(logging.WARNING):
        store.put(rows(1))  # no exception: a cache must not fail the job
        assert store.get([key(1)]) == {}
    assert "feature store" in caplog.text and "not used" in caplog.text
    damaged = tmp_path / "damaged.f32"
    np.zeros(3, dtype=np.uint8).tofile(damaged)  # shorter than one record
    assert FeatureStore(damaged, D).get([key(1)]) == {}


def test_the_budget_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LIST_FEATURE_STORE_MB", "0.5")
    assert store_budget_bytes() == 2**19 and FeatureStore(tmp_path / "s", D).max_bytes == 2**19
    monkeypatch.setenv("LIST_FEATURE_STORE_MB", "0")
    off = FeatureStore(tmp_path / "s", D)
    off.put(rows(1))
    assert not off.path.exists()
    for bad in ("lots", "-1"):
        monkeypatch.setenv("LIST_FEATURE_STORE_MB", bad)
        with pytest.raises(ValueError, match="LIST_FEATURE_STORE_MB"):
            store_budget_bytes()
    with pytest.raises(ValueError, match="dim"):
        FeatureStore(tmp_path / "s", 0)
