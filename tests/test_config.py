import json

import pytest

from list_core.config import CONFIG_VERSION, TrainConfig, knobs, parse_overrides, preset


def test_bench_set_parses_values_by_the_fields_type(tmp_path, capsys):
    """`--set kd_selection=tau` used to crash with a JSONDecodeError (values were parsed by their first letter)."""
    from list_core.bench import main

    out = tmp_path / "r.json"
    assert main(["--data", str(tmp_path / "missing"), "--methods", "list", "--seeds", "1", "--set", "kd_selection=tau",
                 "--set", "unlabeled_limit=none", "--set", "adapter.bottleneck=8", "--out", str(out)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "skipping" in err and "nothing to run" in err
    assert parse_overrides(["kd_selection=tau", "unlabeled_limit=none", "meta_reweighting=false", "tau=0.5"]) == {
        "kd_selection": "tau", "unlabeled_limit": None, "meta_reweighting": False, "tau": 0.5}  # fmt: skip
    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path), "--set", "kd_selection=median"])
    assert "kd_selection='median': must be one of tau, class_median" in capsys.readouterr().err


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"meta_similarity": "cosin"}, "meta_similarity='cosin': must be one of dot, cosine"),
        ({"meta_reweighting": "no"}, "meta_reweighting='no': must be true or false"),
        ({"seed": -1}, "seed=-1: must be an integer"),
        ({"seed": 1.5}, "seed=1.5: must be an integer"),
        ({"student_steps": 10**9}, "student_steps=1000000000: must be an integer in"),
        ({"max_length": 10**9}, "max_length=1000000000"),
        ({"head": "mlm"}, "head='mlm': must be one of auto, prompt, similarity"),
        ({"unlabeled_limit": 0}, "unlabeled_limit=0"),
        ({"adapter": {"bottleneck": 0}}, "bottleneck=0"),
        ({"student_max_passes": 0}, "student_max_passes=0: must be a number in [0.1, 1000.0] or none"),
    ],
)
def test_every_bad_value_is_refused_with_its_name(changes, message):
    with pytest.raises(ValueError) as e:
        TrainConfig().with_(**changes)
    assert message in str(e.value)


def test_knobs_describe_every_field_once():
    names = [k.name for k in knobs()]
    assert len(names) == len(set(names)) and "adapter.bottleneck" in names and "adapter" not in names
    assert all(k.help for k in knobs())
    # the form shows only what applies: a probe baseline has no self-training rounds
    from list_core.methods import get

    assert "rounds" in {k.name for k in get("list").knobs()} and "rounds" not in {
        k.name for k in get("classic").knobs()
    }
    assert {k.name for k in get("linear-probe").knobs()} == {
        "max_length",
        "eval_batch_size",
        "seed",
        "feature_layers",
        "class_balance",
    }
    cfg = preset("fast").with_knobs({"adapter.bottleneck": 8, "rounds": 2})
    assert cfg.adapter.bottleneck == 8 and cfg.rounds == 2 and cfg.adapter.sigma == preset("fast").adapter.sigma


def test_stored_configs_carry_a_version_and_old_ones_still_load():
    stored = preset("fast").to_dict()
    assert stored["config_version"] == CONFIG_VERSION
    assert TrainConfig.from_dict(json.loads(json.dumps(stored))) == preset("fast")
    # a config stored before versions existed (v1): no version, no prompt_weight or verbaliser_points
    v1 = {k: v for k, v in stored.items() if k not in ("config_version", "prompt_weight", "verbaliser_points")}
    old = TrainConfig.from_dict(v1)
    assert old.prompt_weight == 5.0 and old.verbaliser_points == 5 and old.rounds == 3
    with pytest.raises(ValueError, match="config_version=99"):
        TrainConfig.from_dict({**stored, "config_version": 99})
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({**stored, "colour": "red"})


def test_the_layers_a_head_reads_are_offered_where_they_apply():
    from list_core.methods import get

    offered = {m: "feature_layers" in {k.name for k in get(m).knobs()} for m in
               ("list", "prompt", "linear-probe", "self-train-probe", "prompt-prior-probe", "zero-shot", "pair-similarity")}  # fmt: skip
    assert offered == {"list": True, "prompt": True, "linear-probe": True, "self-train-probe": True,
                       "prompt-prior-probe": True, "zero-shot": False, "pair-similarity": False}  # fmt: skip


def test_student_steps_are_capped_at_passes_over_a_small_pool():
    fast = preset("fast")  # 150 steps of 16, at most 3 passes; the warm-up 60% of the steps
    assert fast.student_schedule(338) == (64, 38)  # ceil(3 * 338 / 16)
    assert fast.student_schedule(800) == (150, 90)  # 150 steps are exactly 3 passes over 800
    assert fast.student_schedule(990) == (150, 90)  # subj, the benchmarks' smallest pool: the cap does not bind
    assert fast.student_schedule(1) == (1, 1)  # at least one step
    assert fast.student_schedule(0) == (150, 90)  # no pool: the student is skipped elsewhere, the count unchanged
    assert preset("paper").student_schedule(10) == (1000, 600)  # the paper's schedule is never capped
    assert fast.with_(student_max_passes=None).student_schedule(338) == (150, 90)
    assert fast.with_(student_max_passes=0.5, student_batch_size=4).student_schedule(10) == (2, 1)
