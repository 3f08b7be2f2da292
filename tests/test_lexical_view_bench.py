import json

from benchmarks.lexical_view import main


def _write(path, results):
    path.write_text(json.dumps({"args": {}, "machine": {}, "results": results}))
    return str(path)


def _run(name, k, seed, acc, without=None, alone=None):
    r = {"set": name, "method": "list", "k": k, "seed": seed, "accuracy": acc}
    if without is not None:
        r |= {"accuracy_without_lexical": without, "accuracy_lexical_alone": alone}
    return r


def test_the_view_against_the_same_runs_without_it(tmp_path, capsys):
    tagged = {**_run("mr", 30, 2, 0.76, 0.74, 0.71), "method": "list (lexical_weight=0.5)"}  # a merged file's run
    runs = _write(tmp_path / "runs.json", [_run("mr", 30, 1, 0.74, 0.72, 0.70), tagged,
                                           _run("bbc", 30, 1, 0.97, 0.95, 0.975)])  # fmt: skip
    base = _write(tmp_path / "base.json", [_run("mr", 30, 1, 0.72), _run("mr", 30, 2, 0.74), _run("bbc", 30, 1, 0.951),
                                           {**_run("mr", 30, 1, 0.5), "method": "setfit"}])  # fmt: skip
    assert main(["--runs", runs, "--base", base]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("K=30 bbc: with the view 97.00, without 95.00 (base run 95.10, DIFFERENT)")
    assert out[1].startswith("K=30 mr: with the view 75.00, without 73.00 (base run 73.00, equal to the bit), the view "
                             "alone 70.50; by seed (with / without / alone): s1 74.00 / 72.00 / 70.00; s2")  # fmt: skip
    assert out[2] == "K=30 mean of bbc, mr: with the view 86.00, without 84.00, the view alone 84.00"


def test_a_run_without_the_view_is_an_error(tmp_path, capsys):
    runs = _write(tmp_path / "runs.json", [_run("mr", 30, 1, 0.74)])
    assert main(["--runs", runs]) == 1
    assert "a run without a lexical view" in capsys.readouterr().out
