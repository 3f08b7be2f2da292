import json

from benchmarks.lexical_rounds import main


def _write(path, results):
    path.write_text(json.dumps({"args": {}, "machine": {}, "results": results}))
    return str(path)


def _run(name, seed, acc, pl, seconds=60.0, without=None):
    r = {"set": name, "method": "list", "k": 10, "seed": seed, "accuracy": acc, "seconds": seconds,
         "rounds": [{"pseudo_label_accuracy": x} for x in pl]}  # fmt: skip
    return r | ({"accuracy_without_lexical": without} if without is not None else {})


def test_co_trained_runs_against_the_same_runs_without_it(tmp_path, capsys):
    runs = _write(tmp_path / "runs.json", [
        {**_run("mr", 1, 0.74, [0.70, 0.72, 0.73], 80, 0.71), "method": "list (lexical_rounds=true)"},
        _run("mr", 2, 0.70, [0.70, 0.69, 0.68], 90, 0.69),
        _run("mr", 3, 0.99, [0.9, 0.9, 0.9]),  # no base run: left out
        _run("bbc", 1, 0.97, [0.95, 0.96, 0.97], 70, 0.95),
    ])  # fmt: skip
    base = _write(tmp_path / "base.json", [_run("mr", 1, 0.72, [0.70, 0.70, 0.71], 60, 0.72),
                                           _run("mr", 2, 0.72, [0.70, 0.70, 0.70], 60, 0.71),
                                           _run("bbc", 1, 0.96, [0.95, 0.95, 0.94], 50, 0.95)])  # fmt: skip
    assert main(["--runs", runs, "--base", base]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("K=10 bbc (seeds 1): final 96.00 -> 97.00 (1 better, 0 worse); without the final view 95.00 -> "
                      "95.00; pseudo-label accuracy by round 95.00 -> 96.00 -> 97.00 (base's last 94.00), rising on 1 "
                      "of 1 seeds; seconds 50 -> 70")  # fmt: skip
    assert out[1] == ("K=10 mr (seeds 1, 2): final 72.00 -> 72.00 (1 better, 1 worse); without the final view 71.50 -> "
                      "70.00; pseudo-label accuracy by round 70.00 -> 70.50 -> 70.50 (base's last 70.50), rising on 1 "
                      "of 2 seeds; seconds 60 -> 85")  # fmt: skip
    assert out[2] == "K=10 mean of bbc, mr: final 84.00 -> 84.50"


def test_no_matching_base_run_is_an_error(tmp_path, capsys):
    runs = _write(tmp_path / "runs.json", [_run("mr", 1, 0.74, [0.7])])
    base = _write(tmp_path / "base.json", [_run("mr", 2, 0.74, [0.7])])
    assert main(["--runs", runs, "--base", base]) == 1
    assert "no run of --runs has a run of the same set" in capsys.readouterr().out
