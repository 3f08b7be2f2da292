import numpy as np
import pytest
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from list_core.lexical import GOLD_WEIGHT, C, LexicalHead, cross_fitted, row_text, split_state, terms
from tests.conftest import DEVICE

GOOD = ["superb", "moving", "clever", "charming", "gripping"]
BAD = ["dull", "clumsy", "tedious", "bland", "lifeless"]
NOUNS = ["film", "script", "cast", "story", "ending", "score", "plot", "pacing"]
ODD = ["Ça va? Très BIEN!!", "a b c d", "x-ray, X-Ray; x_ray", "  ", "naïve café naïve café", "it's 2026 — don't"]


def sentiment_pool(dets=("the", "this")) -> tuple[list[str], np.ndarray]:
    """Texts whose class is the adjective's side (80 per determiner, half of each class)."""
    texts, truth = [], []
    for det in dets:
        for noun in NOUNS:
            for good, bad in zip(GOOD, BAD):
                texts += [f"{det} {noun} was {good}", f"{det} {noun} was {bad}"]
                truth += [1, 0]
    return texts, np.array(truth)


def one_hot(labels: np.ndarray, c: int = 2) -> np.ndarray:
    return np.eye(c)[labels] * 0.9 + 0.1 / c


def test_terms_and_features_are_scikit_learns_tfidf():
    texts, _ = sentiment_pool()
    docs = texts + ODD * 2
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit(docs)
    analyzer = vec.build_analyzer()
    for text in ODD + texts[:3]:
        assert terms(text) == analyzer(text)
    head = LexicalHead.fit(docs, one_hot(np.arange(len(docs)) % 2), [], [], 0.5)
    vocabulary = sorted(vec.vocabulary_, key=vec.vocabulary_.get)
    assert head.vocabulary == vocabulary
    probe = ODD + ["the film was superb superb , not dull", "unknown words only"]
    np.testing.assert_allclose(head.features(probe).toarray(), vec.transform(probe).toarray(), atol=1e-6)


@pytest.mark.parametrize("classes", [2, 3])
def test_probabilities_are_the_fitted_regressions(classes):
    texts, truth = sentiment_pool()
    labels = truth if classes == 2 else np.where(np.arange(len(truth)) % 5 == 0, 2, truth)
    q = one_hot(labels, classes)
    q[::7] = q[::7, ::-1]  # some less confident, some wrong: the weights follow the confidence
    gold_texts, gold = ["a superb plot", "a dull plot"], [1, 0]
    head = LexicalHead.fit(texts, q, gold_texts, gold, 0.3, seed=0)
    # by hand: gold worth GOLD_WEIGHT, pseudo-labels their confidence, each class the same total weight
    y = np.concatenate([gold, q.argmax(1)])
    w = np.concatenate([[GOLD_WEIGHT] * 2, q.max(1)])
    for c in np.unique(y):
        w[y == c] *= len(y) / (len(np.unique(y)) * w[y == c].sum())
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x = vec.fit_transform(gold_texts + texts)
    clf = LogisticRegression(C=C, max_iter=3000, random_state=0).fit(x, y, sample_weight=w)
    probe = texts[:5] + ["a superb , dull film", "nothing known"]
    expected = clf.predict_proba(vec.transform(probe))  # (N, classes)
    torch.testing.assert_close(head.proba(probe), torch.from_numpy(expected).float(), atol=1e-5, rtol=0)


def test_a_class_no_label_names_gets_probability_zero():
    texts, truth = sentiment_pool()
    q = np.zeros((len(texts), 3))
    q[np.arange(len(texts)), truth] = 1.0  # class 2 is never a label
    p = LexicalHead.fit(texts, q, [], [], 0.5).proba(["the plot was dull", "the plot was superb"])
    assert p.shape == (2, 3) and float(p[:, 2].max()) < 1e-6 and p[:, :2].argmax(1).tolist() == [0, 1]


def test_fitted_on_noisy_pseudo_labels_it_labels_new_texts_by_their_words():
    texts, truth = sentiment_pool(("the",))
    noisy = truth.copy()
    wrong = np.random.default_rng(0).permutation(len(texts))[: len(texts) // 5]  # 20% of the labels flipped
    noisy[wrong] = 1 - noisy[wrong]
    head = LexicalHead.fit(texts, one_hot(noisy), [], [], 0.5)
    new, new_truth = sentiment_pool(("that", "our"))  # texts it never saw, with the same adjectives
    assert float((head.proba(new).argmax(1).numpy() == new_truth).mean()) == 1.0


def test_mixing_by_hand():
    head = LexicalHead(["good", "bad"], np.ones(2, np.float32), np.array([[0, 0], [2, -2]], np.float32),
                       np.zeros(2, np.float32), 0.25)  # fmt: skip
    logits = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
    p_lex = head.proba(["good", "bad"])
    np.testing.assert_allclose(p_lex[0, 1], 1 / (1 + np.exp(-2)), rtol=1e-6)  # x = (1, 0): z = (0, 2)
    mixed = head.mix(logits, ["good", "bad"]).exp()
    torch.testing.assert_close(mixed, 0.75 * logits.softmax(-1) + 0.25 * p_lex)


def test_mixing_follows_the_logits_device():
    # the view's arrays live on the CPU; a GPU model's logits must get their mix back on the GPU
    head = LexicalHead(["good", "bad"], np.ones(2, np.float32), np.array([[0, 0], [2, -2]], np.float32),
                       np.zeros(2, np.float32), 0.25)  # fmt: skip
    assert head.mix(torch.zeros(2, 2, device="meta"), ["good", "bad"]).device.type == "meta"
    mixed = head.mix(torch.zeros(2, 2, device=DEVICE), ["good", "bad"])
    assert mixed.device.type == torch.device(DEVICE).type
    torch.testing.assert_close(mixed.cpu(), head.mix(torch.zeros(2, 2), ["good", "bad"]))


def test_state_round_trip_and_bad_states():
    texts, truth = sentiment_pool()
    head = LexicalHead.fit(texts + ["naïve café naïve café"] * 2, one_hot(np.append(truth, [1, 1])), [], [], 0.5)
    state = {"adapter.x": torch.zeros(1), **head.state()}
    rest, again = split_state(state)
    assert set(rest) == {"adapter.x"} and again.vocabulary == head.vocabulary and "naïve café" in again.vocabulary
    torch.testing.assert_close(again.proba(texts[:4]), head.proba(texts[:4]), atol=0, rtol=0)
    on_device = LexicalHead.from_state({k: v.to(DEVICE) for k, v in state.items() if k.startswith("lexical.")})
    assert on_device.vocabulary == head.vocabulary  # a checkpoint loaded onto a GPU
    assert split_state(rest) == (rest, None)
    del state["lexical.idf"]
    with pytest.raises(KeyError, match="lexical.idf"):
        split_state(state)
    with pytest.raises(ValueError, match="weight=0"):
        LexicalHead(head.vocabulary, head.idf, head.coef, head.intercept, 0.0)
    with pytest.raises(ValueError, match="do not fit a vocabulary"):
        LexicalHead(head.vocabulary[:-1], head.idf, head.coef, head.intercept, 0.5)


@pytest.mark.parametrize(
    "texts, labels",
    [
        (["!!!", "?!", "..."], [0, 1, 0]),  # no word at all
        (["good film", "good plot", "good cast"], [1, 1, 1]),  # one class only
    ],
)
def test_no_view_rather_than_a_guess(texts, labels):
    assert LexicalHead.fit(texts, one_hot(np.array(labels)), [], [], 0.5) is None


def test_row_text_joins_the_slots():
    assert row_text({"text_a": "a", "text_b": "b"}, ("text_a", "text_b")) == "a\nb"
    assert row_text({"text": "a", "other": "x"}, ("text",)) == "a"


def test_cross_fitted_labels_each_half_by_a_view_fitted_on_the_other():
    texts, truth = sentiment_pool()
    q, gold = one_hot(truth), (["the film was superb", "the film was dull"], [1, 0])
    p = cross_fitted(texts, q, *gold, seed=3)
    for h in (0, 1):  # alternate positions: a text never labels itself
        other = LexicalHead.fit(texts[1 - h :: 2], q[1 - h :: 2], *gold, 1.0, seed=3)
        np.testing.assert_allclose(p[h::2], other.proba(texts[h::2]).double().numpy(), atol=1e-7)
    assert cross_fitted(["!!!", "?!", "...", "--"], one_hot(np.array([0, 1, 0, 1])), [], []) is None
