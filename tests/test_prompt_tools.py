"""Prompt scoring: accuracy on the gold labels and on an evaluation split, and the order of the leaderboard."""

import pytest

from list_core.backbone import load_backbone
from list_core.prompt_tools import rematched, score_prompts, with_suggestions, zero_shot_model
from list_core.prompts import Prompt
from list_core.teacher import prompt_evidence

TEXTS = [{"text": f"{w} {x}"} for w in ("great", "bad", "good", "awful", "fine") for x in ("movie", "film", "story")]
A = {"template": "{text} It was {mask} .", "label_words": ["bad", "great"]}
B = {"template": "{text} It was {mask} .", "label_words": ["great", "bad"]}  # A's classes swapped


@pytest.fixture(params=["bert", "headless"])
def backbone(request, tiny_dirs, tiny_headless_dir):
    """Both head kinds: the MLM head of a masked LM, the similarity head of a sentence encoder."""
    return load_backbone(str(tiny_dirs["bert"] if request.param == "bert" else tiny_headless_dir), device="cpu")


def predictions(backbone, cand) -> list[int]:
    model = zero_shot_model(backbone, Prompt.from_json(cand))
    return model.logits(model.encode(TEXTS)).argmax(-1).tolist()


def test_evaluation_accuracy_is_the_zero_shot_accuracy_and_orders_the_board(backbone):
    """Labels are made to agree with A on the evaluation split and with B on the gold labels: A scores 1.0 on the
    split and B 1.0 on the gold labels, and the split (hundreds of labels in practice) decides the order."""
    pred_a, pred_b = predictions(backbone, A), predictions(backbone, B)
    assert pred_b == [1 - p for p in pred_a]  # swapping the words swaps the classes
    gold, evals = TEXTS[:6], TEXTS[6:]
    board = score_prompts(backbone, [B, A], gold, pred_b[:6], [], ["negative", "positive"],
                          eval_rows=evals, eval_y=pred_a[6:])  # fmt: skip
    assert [e["label_words"] for e in board] == [A["label_words"], B["label_words"]]
    assert (board[0]["eval_accuracy"], board[0]["accuracy"]) == (1.0, 0.0)
    assert (board[1]["eval_accuracy"], board[1]["accuracy"]) == (0.0, 1.0)
    # half right on the split: the accuracy is counted, not rounded
    half = [p if i % 2 else 1 - p for i, p in enumerate(pred_a[6:])]
    (only,) = score_prompts(backbone, [A], [], [], [], ["negative", "positive"], eval_rows=evals, eval_y=half)
    assert only["eval_accuracy"] == pytest.approx(sum(i % 2 for i in range(len(half))) / len(half))
    assert "accuracy" not in only


def test_on_a_sentence_encoder_the_texts_are_encoded_once_for_every_candidate(tiny_headless_dir, monkeypatch):
    """A similarity head reads the texts alone (the prompt is in its prototypes): the board of three candidates
    passes the encoder over each text once (not once per candidate; the pool's texts that are also gold or
    evaluation texts not again), and every number is what each candidate's own forward pass gives. Scoring the
    board again encodes only the prototypes: the backbone keeps the texts' features."""
    import torch

    from list_core.model import ListModel

    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    c = {"template": "{text} All in all, {mask} .", "label_words": [["bad", "awful"], "good"]}
    gold, evals, pool = TEXTS[:6], TEXTS[6:10], TEXTS
    y, y_eval = [0, 1, 0, 1, 1, 0], [1, 0, 0, 1]
    passes, real = [], ListModel.frozen_features
    monkeypatch.setattr(ListModel, "frozen_features", lambda m, enc, *a: passes.append(len(enc)) or real(m, enc, *a))
    board = score_prompts(bb, [A, B, c], gold, y, pool, ["negative", "positive"], eval_rows=evals, eval_y=y_eval)
    verbalisers = [2, 2, 3]  # each candidate's verbaliser sentences (its prototypes): one per label word
    assert sorted(passes) == sorted([*verbalisers, len(gold), len(evals), len(pool) - len(gold) - len(evals)])
    passes.clear()
    again = score_prompts(bb, [A, B, c], gold, y, pool, ["negative", "positive"], eval_rows=evals, eval_y=y_eval)
    assert sorted(passes) == sorted(verbalisers) and again == board
    for entry in board:
        model = zero_shot_model(bb, Prompt.from_json(entry))
        logits = model.logits(model.encode(gold))  # the head's own forward pass over the texts
        assert entry["accuracy"] == (logits.argmax(-1) == torch.tensor(y)).sum().item() / len(y)
        assert entry["loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, torch.tensor(y)).item(),
                                              abs=1e-5)  # fmt: skip
        assert (
            entry["eval_accuracy"]
            == (model.logits(model.encode(evals)).argmax(-1) == torch.tensor(y_eval)).float().mean().item()
        )
        pred = model.logits(model.encode(pool)).argmax(-1)
        assert entry["pool_distribution"] == {"negative": (pred == 0).sum().item() / len(pool),
                                              "positive": (pred == 1).sum().item() / len(pool)}  # fmt: skip


def test_without_an_evaluation_split_the_gold_labels_order_the_board(bert):
    pred_b = predictions(bert, B)
    board = score_prompts(bert, [A, B], TEXTS, pred_b, TEXTS[:3], ["negative", "positive"])
    assert board[0]["label_words"] == B["label_words"] and board[0]["accuracy"] == 1.0
    # the evidence that each beats chance, as LiST's teacher weighs the prompt: from its hits on the gold labels
    for e in board:
        hits = round(e["accuracy"] * len(TEXTS))
        assert e["evidence"] == pytest.approx(prompt_evidence(hits, len(TEXTS), 2))
    assert board[0]["evidence"] > 0.9
    assert all("eval_accuracy" not in e for e in board)
    assert sum(board[0]["pool_distribution"].values()) == pytest.approx(1.0)


def test_evaluation_rows_and_labels_must_match(bert):
    with pytest.raises(ValueError, match="3 evaluation rows but 2 evaluation labels"):
        score_prompts(bert, [A], [], [], [], ["negative", "positive"], eval_rows=TEXTS[:3], eval_y=[0, 1])


def test_a_bad_candidate_is_reported_and_ranked_last(bert):
    bad = {"template": "{text} no mask here", "label_words": ["bad", "great"]}
    board = score_prompts(bert, [bad, A], TEXTS[:4], [0, 1, 0, 1], [], ["negative", "positive"],
                          eval_rows=TEXTS[4:8], eval_y=[0, 1, 0, 1])  # fmt: skip
    assert board[0]["label_words"] == A["label_words"] and "mask" in board[1]["error"]
    assert board[0]["eval_accuracy"] in (0.0, 0.25, 0.5, 0.75, 1.0) and "eval_accuracy" not in board[1]


def test_the_prompt_with_its_suggested_words():
    """Up to n new words per class (case-insensitive duplicates skipped), the template and descriptions kept, marked
    as suggested; nothing to add gives None."""
    cand = {
        "template": "{text} It was {mask} .",
        "label_words": ["bad", ["great", "good"]],
        "descriptions": ["d0", "d1"],
    }
    sug = {"negative": ["Bad", "awful", "dull", "slow", "ugly"], "positive": ["good"]}
    got = with_suggestions(cand, sug, ["negative", "positive"], n=2)
    assert got == {"template": cand["template"], "label_words": [["bad", "awful", "dull"], ["great", "good"]],
                   "descriptions": ["d0", "d1"], "origin": "suggested"}  # fmt: skip
    assert with_suggestions(cand, {"positive": ["GREAT"]}, ["negative", "positive"]) is None
    # built on re-matched words, the row says so
    assert with_suggestions(cand, sug, ["negative", "positive"], origin="rematched+suggested")["origin"] == (
        "rematched+suggested"
    )
    # a word of another class, or one suggested for both classes, would make the prompt invalid: skipped
    both = with_suggestions(cand, {"negative": ["good", "meh", "fine"], "positive": ["fine", "wow"]}, ["n", "p"])
    assert both is None  # the labels do not match the suggestion keys: nothing to add
    both = with_suggestions(cand, {"negative": ["good", "meh", "fine"], "positive": ["fine", "wow"]},
                            ["negative", "positive"])  # fmt: skip
    assert both["label_words"] == [["bad", "meh"], ["great", "good", "wow"]]
    Prompt.from_json(both)  # a valid prompt
    assert cand["label_words"] == ["bad", ["great", "good"]]  # the candidate itself is not changed


def test_sentence_encoder_suggestions_follow_the_prompt_and_the_gold_labels(tiny_headless_dir):
    """The suggested words depend on the class's own verbaliser (not only on the template and the gold examples),
    a class without gold examples gets none, and a prompt for another number of classes is refused."""
    from list_core.prompt_tools import suggest_label_words
    from list_core.prompts import PromptError

    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    rows = [{"text": f"{w} {x}"} for w in ("superb", "lovely", "dull", "boring", "moving", "clumsy", "witty", "weak")
            for x in ("acting", "plot")]  # fmt: skip
    y = [0, 0, 1, 1] * 4
    one = suggest_label_words(bb, Prompt("{text} It was {mask} .", ("bad", "great")), rows, y, ["neg", "pos"], k=4)
    two = suggest_label_words(bb, Prompt("{text} It was {mask} .", ("great", "bad")), rows, y, ["neg", "pos"], k=4)
    assert set(one) == {"neg", "pos"} and all(len(w) == 4 for w in one.values()) and one != two
    only = suggest_label_words(bb, Prompt("{text} It was {mask} .", ("bad", "great")), rows, [0] * 16, ["neg", "pos"])
    assert set(only) == {"neg"}
    with pytest.raises(PromptError, match="3 label words for 2 labels"):
        suggest_label_words(bb, Prompt("{text} It was {mask} .", ("a", "b", "c")), rows, y, ["neg", "pos"])


def test_label_words_on_the_wrong_classes_are_re_matched_by_the_gold_labels(backbone):
    """A prompt the gold labels contradict gets a candidate with its verbalisers moved between the classes, one
    class's to each, in the assignment that gets the most gold labels right (here all: the gold labels are its own
    predictions with the classes rolled); descriptions move with their words. A prompt the gold labels support,
    or an invalid one, gets none."""
    three = {"template": "{text} It was {mask} .", "label_words": ["bad", "great", "fine"],
             "descriptions": ["a bad one", "a great one", "a fine one"]}  # fmt: skip
    labels = ["negative", "positive", "neutral"]
    pred = predictions(backbone, three)
    gold_y = [(p + 1) % 3 for p in pred]  # verbaliser v's predictions belong to class v + 1
    fixed = rematched(backbone, three, TEXTS, gold_y, labels)
    assert fixed["origin"] == "rematched" and fixed["template"] == three["template"]
    assert predictions(backbone, fixed) == gold_y  # every gold label right
    pairs = set(zip(three["label_words"], three["descriptions"]))  # each description moves with its words
    assert set(zip(fixed["label_words"], fixed["descriptions"])) == pairs
    if len(set(pred)) == 3:  # every verbaliser wins somewhere: the assignment is the only one
        assert fixed["label_words"] == [three["label_words"][(k - 1) % 3] for k in range(3)]  # class k: v = k - 1
    assert rematched(backbone, three, TEXTS, pred, labels) is None  # the prompt is right on its own predictions
    assert rematched(backbone, {**three, "template": "{text} no mask"}, TEXTS, gold_y, labels) is None
    if backbone.head_pretrained:  # a label word of several tokens: an MLM head cannot read it (the board says so)
        several = {**three, "label_words": ["bad", "unfathomableness", "fine"]}
        assert rematched(backbone, several, TEXTS, gold_y, labels) is None
    assert rematched(backbone, three, TEXTS, gold_y, labels[:2]) is None  # 3 verbalisers for 2 classes
