"""The benchmark harness on tiny data made here (the default suite never needs ../shared)."""

import json
import re
from pathlib import Path

import pytest

from list_core import bench

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def make_data(root: Path) -> Path:
    root.mkdir(parents=True)
    words = [("great", "positive"), ("good", "positive"), ("bad", "negative"), ("awful", "negative")]
    nouns = ["movie", "film", "acting", "story", "plot", "pacing", "cast", "score"]
    pool = [
        {"id": f"p{i}", "text": f"{w} {n}", "label": lab}
        for i, ((w, lab), n) in enumerate((x, n) for x in words for n in nouns)
    ]
    test = [{"id": f"t{i}", "text": f"a {w} one", "label": lab} for i, (w, lab) in enumerate(words * 2)]
    (root / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pool))
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))
    meta = {"name": "tinymr", "task": "single", "labels": ["negative", "positive"], "template": "{text} It was {mask} .",
            "label_words": {"negative": "bad", "positive": "great"}}  # fmt: skip
    (root / "meta.json").write_text(json.dumps(meta))
    (root / "fewshot").mkdir()
    for seed in (1, 2):
        ids = [pool[i]["id"] for i in ((0, 9, 17, 25) if seed == 1 else (1, 8, 16, 30))]
        (root / "fewshot" / f"k4-s{seed}.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in ids))
    return root


def test_bench_runs_methods_and_writes_json_and_report(tmp_path, tiny_dirs, capsys):
    data = make_data(tmp_path / "tinymr")
    out = tmp_path / "res.json"
    sets = [
        "rounds=1",
        "student_steps=4",
        "teacher_epochs=1",
        "finetune_epochs=1",
        "max_length=32",
        "adapter.bottleneck=4",
    ]
    argv = ["--data", str(data), str(tmp_path / "missing"), "--k", "4", "--seeds", "1", "2", "--methods",
            "self-train-probe,list", "--backbone", str(tiny_dirs["bert"]), "--out", str(out)]  # fmt: skip
    for s in sets:
        argv += ["--set", s]
    assert bench.main(argv) == 0
    printed = capsys.readouterr()
    assert "skipping" in printed.err and "| tinymr | list | 2 |" in printed.out
    res = json.loads(out.read_text())
    assert len(res["results"]) == 4 and res["machine"]["cores"] >= 1
    lst = [r for r in res["results"] if r["method"] == "list"]
    assert all(0 <= r["accuracy"] <= 1 and r["trainable_params"] > 0 and r["adapter_bytes"] > 0 for r in lst)
    assert all(0 <= rd["pseudo_label_accuracy"] <= 1 for r in lst for rd in r["rounds"])
    md = bench.report([res])
    assert md.startswith("# Benchmarks") and "pseudo-label acc" in md and "| tinymr | list (rounds=1," in md
    assert lst[0]["config"]["rounds"] == 1  # each result records its effective config

    # one process per seed, merged: each result keeps its overrides, a path tag and its machine
    for seed in (1, 2):
        part = {**res, "results": [r for r in res["results"] if r["seed"] == seed]}
        (tmp_path / f"old-s{seed}.json").write_text(json.dumps(part))
    merged_path = tmp_path / "merged.json"
    paths = [str(tmp_path / f"old-s{seed}.json") for seed in (1, 2)]
    assert (
        bench.main(["--merge", *paths, "--command", "bash make.sh", "--tag", "old-s=before", "--out", str(merged_path)])
        == 0
    )
    merged = json.loads(merged_path.read_text())
    assert len(merged["results"]) == 4 and merged["results"][0]["machine"]["cores"] >= 1
    md = bench.report([merged])
    assert "    bash make.sh" in md and "| tinymr | list (rounds=1," in md and ", before) | 2 |" in md
    assert "CPU cores |" in md
    # the same method on two machines: a row each, never pooled
    gpu = {**res, "machine": {**res["machine"], "gpu": "NVIDIA H200"}}
    md = bench.report([res, gpu])
    assert re.search(r"\| tinymr \| self-train-probe \([^|]*\) \[H200\] \| 2 \|", md)
    assert re.search(r"\| tinymr \| self-train-probe \([^|]*\) \[\d+ CPU cores\] \| 2 \|", md)


def test_a_later_file_s_run_of_the_same_seed_replaces_the_earlier_one():
    """An engine change that moves only some runs is re-measured on those seeds alone: the summary and the report
    count the new run in place of the old one (they pooled both), other seeds and methods untouched."""
    from list_core.bench_report import summary

    machine = {"cores": 2, "cpu": "x", "memory_gb": 24, "gpu": None, "torch": "2.13.0", "python": "3.12"}

    def run(seed, acc, method="list"):
        return {"set": "mr", "k": 10, "method": method, "seed": seed, "accuracy": acc, "seconds": 1.0,
                "peak_rss_mb": 1.0, "machine": machine}  # fmt: skip

    def merged(*runs):
        return {"args": {"merged": [], "commands": []}, "machine": None, "results": list(runs)}

    old = merged(run(1, 0.70), run(3, 0.65), run(1, 0.60, "zero-shot"))
    new = merged(run(3, 0.69))
    got = summary([old, new])["10"]["mr"]
    assert got["list"] == {"mean": pytest.approx(69.5), "std": pytest.approx(0.71, abs=0.01), "n": 2}
    assert got["zero-shot"]["n"] == 1
    assert summary([new, old])["10"]["mr"]["list"]["mean"] == pytest.approx(67.5)  # the order of the files decides
    assert "| mr | list | 2 | 69.5 ± 0.7 |" in bench.report([old, new])


def test_gold_ids_come_only_from_the_fewshot_file(tmp_path):
    data = bench.load_data(make_data(tmp_path / "d"))
    task, unlabeled = bench.make_task(data, 4, 1)
    assert task.gold_labels == [1, 1, 0, 0] and len(task.unlabeled_rows) == 28
    assert "label" not in task.unlabeled_rows[0] and len(unlabeled) == 28
    with pytest.raises(FileNotFoundError, match="k30-s1"):
        data.gold_ids(30, 1)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "subj").exists(), reason="../shared/data is not here")
def test_real_data_probe_on_subj(tmp_path):
    out = tmp_path / "subj.json"
    assert (
        bench.main(["--data", str(SHARED / "subj"), "--seeds", "1", "--methods", "self-train-probe", "--out", str(out)])
        == 0
    )
    acc = json.loads(out.read_text())["results"][0]["accuracy"]
    assert acc > 0.75  # the self-trained probe reaches ~87% on subj with this backbone


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "subj").exists(), reason="../shared/data is not here")
def test_real_data_list_on_subj_keeps_its_accuracy(tmp_path):
    """LiST's own accuracy, guarded: the fast preset on subj (K=30, seed 1) scored 88.2 on 2 CPU cores when this
    was written (BENCHMARKS.md); the floor leaves room for numerics, not for a broken method."""
    out = tmp_path / "subj.json"
    assert bench.main(["--data", str(SHARED / "subj"), "--seeds", "1", "--methods", "list", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["results"][0]["accuracy"] > 0.85


@pytest.mark.slow
def test_setfit_peers_run_on_tiny_data(tmp_path):
    pytest.importorskip("setfit")
    data = make_data(tmp_path / "tinymr")
    job = {"data": str(data), "seed": 1, "k": 4, "preset": "fast", "backbone": None}
    plain = bench.run_one({**job, "method": "setfit"})
    templated = bench.run_one({**job, "method": "setfit-templated"})
    assert plain["setfit"]["num_iterations"] == 20 and plain["setfit"]["train_size"] == 4
    # templated: 8 examples per class made from the template and the label words, beside the 4 gold ones
    assert templated["setfit"]["templated"] and templated["setfit"]["train_size"] == 4 + 2 * 8
    for out in (plain, templated):  # 8 test rows: the accuracy is a count of them
        assert abs(out["accuracy"] * 8 - round(out["accuracy"] * 8)) < 1e-6


def test_merge_as_preset_counts_only_runs_whose_config_is_the_presets(tmp_path):
    """`--as-preset fast`: a run made with overrides that the preset itself holds is the preset's run (`list`); a
    run whose config differs in any field keeps its tag."""
    from list_core.config import preset

    def results(overrides, cfg, seed):
        run = {"set": "tinymr", "k": 10, "seed": seed, "method": "list", "accuracy": 0.7, "config": cfg.to_dict()}
        return {"args": {"set": overrides}, "machine": {"cores": 2, "gpu": None}, "results": [run]}

    same = results(["rounds=3"], preset("fast", seed=1).with_(rounds=3), 1)  # fast already runs 3 rounds
    other = results(["rounds=1"], preset("fast", seed=2).with_(rounds=1), 2)
    paths = []
    for name, f in (("same", same), ("other", other)):
        (tmp_path / f"{name}.json").write_text(json.dumps(f))
        paths.append(str(tmp_path / f"{name}.json"))
    out = tmp_path / "merged.json"
    assert bench.main(["--merge", *paths, "--as-preset", "fast", "--out", str(out)]) == 0
    assert [r["method"] for r in json.loads(out.read_text())["results"]] == ["list", "list (rounds=1)"]
    assert bench.main(["--merge", *paths, "--out", str(out)]) == 0  # without it, every run keeps its tag
    assert [r["method"] for r in json.loads(out.read_text())["results"]] == ["list (rounds=3)", "list (rounds=1)"]
    again = tmp_path / "again.json"  # a merged file merged again as the preset's: its preset runs lose their tags
    assert bench.main(["--merge", str(out), "--as-preset", "fast", "--out", str(again)]) == 0
    runs = json.loads(again.read_text())["results"]
    assert [r["method"] for r in runs] == ["list", "list (rounds=1)"]
    assert all(r["machine"] == {"cores": 2, "gpu": None} for r in runs)  # each run keeps its machine


def test_merge_as_preset_reads_a_knob_added_after_the_run_as_its_default(tmp_path):
    """A run recorded before a knob existed did what the knob's default does: it counts as the preset's run when the
    preset holds that default, and keeps its tag when the preset sets the knob otherwise."""
    from list_core.config import PRESETS, preset

    cfg = preset("fast", seed=1).to_dict()
    old = {k: v for k, v in cfg.items() if k != "student_adapters"}  # recorded before student_adapters existed
    run = {"set": "tinymr", "k": 10, "seed": 1, "method": "list", "accuracy": 0.7, "config": old}
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"args": {"set": ["rounds=3"]}, "machine": {"cores": 2, "gpu": None}, "results": [run]}))
    out = tmp_path / "merged.json"
    assert bench.main(["--merge", str(path), "--as-preset", "fast", "--out", str(out)]) == 0
    assert [r["method"] for r in json.loads(out.read_text())["results"]] == ["list"]

    PRESETS["identity-students"] = {**PRESETS["fast"], "student_adapters": "identity"}
    try:
        assert bench.main(["--merge", str(path), "--as-preset", "identity-students", "--out", str(out)]) == 0
    finally:
        del PRESETS["identity-students"]
    assert [r["method"] for r in json.loads(out.read_text())["results"]] == ["list (rounds=3)"]


class _LinearModel:
    """A stand-in with the three methods `_teacher_mixes` uses: logits = x @ (head.w + up @ down)."""

    def __init__(self, state):
        self.state = dict(state)

    def trainable_state(self):
        return dict(self.state)

    def load_trainable_state(self, state):
        self.state = dict(state)

    def predict_proba(self, rows):
        import torch

        w = (
            self.state["head.w"]
            + self.state["encoder.l.adapter.up.weight"] @ self.state["encoder.l.adapter.down.weight"]
        )
        return (torch.tensor(rows) @ w).softmax(-1)


def test_teacher_mixes_average_probabilities_and_move_weights_half_way_back():
    import torch

    y = torch.tensor([0, 1])
    p0 = torch.tensor([[0.9, 0.1], [0.6, 0.4]])  # the teacher: right, wrong
    final_p = torch.tensor([[0.4, 0.6], [0.1, 0.9]])  # the final model: wrong, right
    last = {"head.w": torch.tensor([[0.0, 2.0], [0.0, 0.0]]), "encoder.l.adapter.up.weight": torch.eye(2),
            "encoder.l.adapter.down.weight": torch.tensor([[0.0, 0.0], [2.0, 0.0]])}  # fmt: skip
    teacher = {"head.w": torch.tensor([[3.0, 0.0], [0.0, 0.0]]), "encoder.l.adapter.up.weight": torch.zeros(2, 2),
               "encoder.l.adapter.down.weight": torch.full((2, 2), 9.0)}  # fmt: skip
    model = _LinearModel(last)
    rows = [[1.0, 0.0], [0.0, 1.0]]
    mixes = bench._teacher_mixes(model, teacher, {0: p0, 1: final_p}, final_p, rows, y)
    # averaged probabilities: (0.65, 0.35) and (0.35, 0.65), both right
    assert mixes["teacher+last"] == 1.0 and mixes["all_rounds"] == 1.0
    # half-way weights: head (1.5, 1) / (0, 0), adapter up/2 @ the final's down (the teacher's 9s unused) = (0, 0) / (1, 0):
    # row 0 scores (1.5, 1.0) -> class 0 (right); row 1 scores (1.0, 0.0) -> class 0 (wrong)
    assert mixes["weights_half"] == 0.5
    assert all(torch.equal(model.state[k], last[k]) for k in last)  # the final weights are back


def test_trace_test_records_each_round_and_the_teacher_mixes(tmp_path, tiny_dirs):
    data = make_data(tmp_path / "tinymr")
    out = tmp_path / "res.json"
    argv = ["--data", str(data), "--k", "4", "--seeds", "1", "--methods", "list", "--backbone", str(tiny_dirs["bert"]),
            "--trace-test", "--out", str(out)]  # fmt: skip
    for s in ("rounds=1", "student_steps=4", "teacher_epochs=1", "finetune_epochs=1", "max_length=32"):
        argv += ["--set", s]
    assert bench.main(argv) == 0
    (r,) = json.loads(out.read_text())["results"]
    assert set(r["round_test_accuracy"]) == {"0", "1"} and r["round_test_accuracy"]["1"] == r["accuracy"]
    assert set(r["teacher_mix_test_accuracy"]) == {"teacher+last", "all_rounds", "weights_half"}
    assert all(0.0 <= a <= 1.0 for a in r["teacher_mix_test_accuracy"].values())


def test_a_run_with_a_lexical_view_records_the_model_without_it_and_the_view_alone(tmp_path, tiny_headless_dir):
    data = make_data(tmp_path / "tinymr")
    runs = {}
    for weight in ("0.5", "0"):
        out = tmp_path / f"res{weight}.json"
        argv = ["--data", str(data), "--k", "4", "--seeds", "1", "--methods", "list", "--backbone",
                str(tiny_headless_dir), "--out", str(out), "--set", f"lexical_weight={weight}"]  # fmt: skip
        for s in ("rounds=1", "student_steps=4", "finetune_epochs=1", "max_length=32"):
            argv += ["--set", s]
        assert bench.main(argv) == 0
        (runs[weight],) = json.loads(out.read_text())["results"]
    with_view, plain = runs["0.5"], runs["0"]
    assert with_view["accuracy_without_lexical"] == plain["accuracy"]  # the view changes nothing before it
    assert 0.0 <= with_view["accuracy_lexical_alone"] <= 1.0 and "accuracy_without_lexical" not in plain
    assert with_view["trainable_params"] == plain["trainable_params"]  # the view's arrays are not parameters
    assert with_view["adapter_bytes"] > plain["adapter_bytes"]  # but they are saved


def test_a_killed_bench_stops_its_job_process(tmp_path):
    """Each job runs in a spawned process; killing the bench (even with SIGKILL) must not leave it running (two
    such orphans once trained for 20 minutes beside the next runs)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[1]
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys, time\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        "from list_core.bench import job_pool\n"
        "def job(path):\n"
        "    open(path, 'w').write(str(os.getpid()))\n"
        "    time.sleep(120)\n"
        "if __name__ == '__main__':\n"
        "    with job_pool() as pool:\n"
        "        pool.submit(job, sys.argv[1]).result()\n"
    )
    pid_file = tmp_path / "pid"
    parent = subprocess.Popen([sys.executable, str(script), str(pid_file)])
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    child = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()

    def alive(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            return False
        return state != "Z"  # a zombie has stopped; its reaper may be slow

    deadline = time.monotonic() + 15
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.2)
    stopped = not alive(child)
    if not stopped:
        os.kill(child, signal.SIGKILL)
    assert stopped


def test_a_peer_row_names_the_view_it_read_unless_it_is_the_default(tmp_path):
    """A peer run under a preset that reads more layers or balances the classes is not pooled with the peer's
    default rows under one name: its row names that view (as `--set` would), once, and a default view adds
    nothing; `list` is named by its preset, never by this rule."""
    from list_core.config import TrainConfig, preset

    def run(method, cfg, seed=1):
        return {"set": "tinymr", "k": 10, "seed": seed, "method": method, "accuracy": 0.7, "config": cfg.to_dict()}

    fast = preset("fast", seed=1)
    f = {"args": {"set": []}, "machine": {"cores": 2, "gpu": None},
         "results": [run("self-train-probe", fast), run("self-train-probe", TrainConfig(seed=2), 2), run("list", fast),
                     run("prompt", fast), run("zero-shot", fast)]}  # fmt: skip
    views = {"args": {"set": ["feature_layers=3", "class_balance=true"]}, "machine": {"cores": 2, "gpu": None},
             "results": [run("linear-probe", fast.with_(feature_layers=3, teacher_views=""))]}  # fmt: skip
    paths = []
    for name, data in (("fast", f), ("views", views)):
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
        paths.append(str(tmp_path / f"{name}.json"))
    out = tmp_path / "merged.json"
    assert bench.main(["--merge", *paths, "--out", str(out)]) == 0
    assert [r["method"] for r in json.loads(out.read_text())["results"]] == [
        "self-train-probe (feature_layers=6, class_balance=true)",
        "self-train-probe",
        "list",
        "prompt (feature_layers=6)",
        "zero-shot",
        "linear-probe (feature_layers=3, class_balance=true)",
    ]
    again = tmp_path / "again.json"  # merged again: the names stay as they are
    assert bench.main(["--merge", str(out), "--out", str(again)]) == 0
    assert [r["method"] for r in json.loads(again.read_text())["results"]] == [
        r["method"] for r in json.loads(out.read_text())["results"]
    ]


def test_paired_names_a_bench_files_runs_as_the_report_does(tmp_path):
    """`benchmarks.paired` on a file a bench process wrote (not merged): a `list` run with `--set` overrides is not
    `list`, and a peer run on a preset's wider view is not the peer's default row."""
    from benchmarks.paired import load
    from list_core.config import preset

    def run(method, seed):
        cfg = preset("fast", seed=seed).to_dict()
        return {"set": "mr", "k": 10, "seed": seed, "method": method, "accuracy": 0.7, "config": cfg}

    for name, sets in (("plain", []), ("mixed", ["final_mix=0.3"])):
        f = {"args": {"set": sets}, "machine": {"cores": 2, "gpu": None}, "results": [run("list", 1)]}
        (tmp_path / f"{name}.json").write_text(json.dumps(f))
    peers = {"args": {"set": []}, "machine": {"cores": 2, "gpu": None}, "results": [run("linear-probe", 1)]}
    (tmp_path / "peers.json").write_text(json.dumps(peers))
    runs = load([str(tmp_path / f"{n}.json") for n in ("plain", "mixed", "peers")])
    assert [r["method"] for r in runs] == [
        "list",
        "list (final_mix=0.3)",
        "linear-probe (feature_layers=6, class_balance=true)",
    ]


def test_each_rounds_pseudo_labels_are_compared_with_round_1s_on_the_texts_both_labeled():
    """With `unlabeled_limit` below the pool each round draws its own sample, so the plain per-round accuracies
    compare different texts; the paired numbers use the texts both rounds labeled, by hand here."""
    import torch

    from list_core.bench import _paired_with_first
    from list_core.records import PseudoLabelRow

    def rows(pairs):
        return [
            PseudoLabelRow(index=i, id=i, probs=[0.5, 0.5], label=lab, confidence=0.5, weight=None, flipped=False)
            for i, lab in pairs
        ]

    truth = torch.tensor([0, 1, 0, 1, 0])
    first = rows([(0, 0), (1, 0), (2, 0)])  # right on 0 and 2
    later = rows([(1, 1), (2, 1), (3, 1), (4, 0)])  # shares 1 and 2 with round 1: right on 1 only
    paired = _paired_with_first([first, later], truth)
    assert paired[0] == {
        "shared_with_round_1": 3,
        "pseudo_label_accuracy_shared": 2 / 3,
        "round_1_accuracy_shared": 2 / 3,
    }
    assert paired[1] == {
        "shared_with_round_1": 2,
        "pseudo_label_accuracy_shared": 1 / 2,
        "round_1_accuracy_shared": 1 / 2,
    }
    assert _paired_with_first([], truth) == []
