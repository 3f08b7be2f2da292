"""benchmarks.suggestions: both prompts scored for real, the suggested words added as the workbench adds them."""

from benchmarks.suggestions import compare
from list_core.backbone import load_backbone
from list_core.prompts import Prompt
from list_core.self_training import TaskData

ADJECTIVES = ("great", "bad", "good", "awful", "superb", "dull", "lovely", "boring", "brilliant", "weak", "stunning",
              "poor", "charming", "tedious", "moving", "clumsy")  # fmt: skip
WORDS = [f"{w} {x}" for w in ADJECTIVES for x in ("movie", "film", "story")]


def test_compare_scores_the_prompt_alone_and_with_its_suggestions(tiny_headless_dir):
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    prompt = Prompt("{text} It was {mask} .", ("bad", "great"))
    task = TaskData(labels=["negative", "positive"], gold_rows=[{"text": t} for t in WORDS[:6]],
                    gold_labels=[1, 1, 1, 0, 0, 0], unlabeled_rows=[{"text": t} for t in WORDS[6:]])  # fmt: skip
    test = [{"text": t} for t in WORDS]
    y = [i % 2 for i in range(len(WORDS))]
    got = compare(bb, prompt, task, test, y)
    flipped = compare(bb, prompt, task, test, [1 - v for v in y])
    assert abs(got["prompt"] + flipped["prompt"] - 100.0) < 1e-4  # two classes: a real count of hits
    words = got["label_words"]
    assert [w[0] for w in words] == ["bad", "great"] and sum(len(w) for w in words) > 2
    manual = Prompt(prompt.template, tuple(tuple(w) if isinstance(w, list) else w for w in words))
    assert got["with_suggestions"] == compare(bb, manual, task, test, y)["prompt"]


def test_a_swapped_prompt_is_scored_with_the_words_the_workbench_re_matches(tiny_headless_dir):
    from benchmarks.suggestions import compare_rematched, swapped

    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    prompt = Prompt("{text} It was {mask} .", ("bad", "great"), ("a bad one", "a good one"))
    wrong = swapped(prompt)
    assert wrong.label_words == ("great", "bad") and list(wrong.descriptions) == ["a good one", "a bad one"]
    task = TaskData(labels=["negative", "positive"], gold_rows=[{"text": t} for t in WORDS[:6]],
                    gold_labels=[1, 1, 1, 0, 0, 0], unlabeled_rows=[{"text": t} for t in WORDS[6:]])  # fmt: skip
    test = [{"text": t} for t in WORDS]
    y = [i % 2 for i in range(len(WORDS))]
    got = compare_rematched(bb, wrong, task, test, y)
    right = compare(bb, prompt, task, test, y)  # the re-matched words are the right prompt's
    assert got["rematched"] == right["prompt"] and got["rematched_with_suggestions"] == right["with_suggestions"]
    assert compare_rematched(bb, prompt, task, test, y)["rematched"] is None  # a right prompt is not re-matched
