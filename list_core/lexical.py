"""A lexical second view in the final classifier: word and bigram TF-IDF, a logistic regression fitted on the last
round's pseudo-labels, its probabilities mixed with the model's (co-training's ensemble of two views).

LiST's teacher and students read the backbone's sentence embedding, where texts on one topic lie close whatever their
label (on mr a pool text's 10 nearest neighbours share its label 64% of the time): the model's mistakes are the
embedding's, and a student that learns the pseudo-labels back cannot get past them. Word and bigram counts see what
the embedding blurs ("not good", a rare adjective) and read the whole text where the backbone truncates it, so their
mistakes are largely other ones. Fitted on the gold labels and the last round's pool pseudo-labels, the lexical view
alone is about as good as the model on mr and subj and better on bbc (long texts), and the mean of the two views'
probabilities beats both (BENCHMARKS.md, "A lexical view"):

    p(c | x) = (1 - a) softmax(model logits)_c + a p_lex(c | x),   a = `TrainConfig.lexical_weight`

The view is a few arrays (vocabulary, idf, coefficients) kept with the adapters and head; its transform is written out
here (sklearn's `TfidfVectorizer` with `sublinear_tf`, l2 norm, word 1-2-grams, reproduced exactly) so a saved model
needs nothing fitted to be pickled. Only gold labels and pseudo-labels are read.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import Row

TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern
MIN_DF = 2  # a word seen in one text only cannot generalise to others
MAX_TERMS = 200_000  # the most frequent terms kept on a large pool (benchmark pools: 3,560 to 72,524)
C = 10.0  # a weaker penalty than the embedding teacher's C=100: TF-IDF rows are sparse and wide
GOLD_WEIGHT = 5.0  # a gold label counts as this many confident pseudo-labels
PREFIX = "lexical."  # its tensors' names in a model's trainable state (checkpoints, exports)
UNSEEN = -1e4  # the logit of a class no label named: probability 0


def row_text(row: Row, slots: Sequence[str]) -> str:
    """The text a row's slots hold, joined by newlines."""
    return "\n".join(row[s] for s in slots)


def terms(text: str) -> list[str]:
    """The lowercased words of two or more word characters, then each adjacent pair (scikit-learn's analyzer)."""
    words = TOKEN.findall(text.lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


class LexicalHead:
    """TF-IDF of word 1-2-grams and a linear classifier on it, mixed into a model's probabilities at `weight`."""

    def __init__(self, vocabulary: list[str], idf: np.ndarray, coef: np.ndarray, intercept: np.ndarray, weight: float):
        if coef.shape != (len(intercept), len(vocabulary)) or idf.shape != (len(vocabulary),):
            raise ValueError(f"lexical view: coef {coef.shape}, intercept {intercept.shape} and idf {idf.shape} do "
                             f"not fit a vocabulary of {len(vocabulary)}")  # fmt: skip
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"lexical view: weight={weight}: must be in (0, 1]")
        self.vocabulary, self.index = vocabulary, {t: i for i, t in enumerate(vocabulary)}
        self.idf, self.coef, self.intercept, self.weight = idf, coef, intercept, float(weight)

    @property
    def num_classes(self) -> int:
        return len(self.intercept)

    @classmethod
    def fit(
        cls,
        texts: Sequence[str],
        q: np.ndarray,
        gold_texts: Sequence[str],
        gold_labels: Sequence[int],
        weight: float,
        seed: int = 0,
    ) -> LexicalHead | None:
        """Fitted on the gold labels (each worth `GOLD_WEIGHT`) and the pool texts' pseudo-labels `q` (N, C), each
        weighted by its confidence, every class the same total weight. None when it cannot be: no word seen twice,
        or fewer than two classes among the labels."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        num_classes = q.shape[1]
        docs = [*gold_texts, *texts]
        y = np.concatenate([np.asarray(list(gold_labels), dtype=int), q.argmax(1)])
        w = np.concatenate([np.full(len(gold_texts), GOLD_WEIGHT), q.max(1)])
        if len(np.unique(y)) < 2:
            return None
        min_df = MIN_DF if len(docs) >= 2 * MIN_DF else 1  # a handful of texts: every word counts
        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=min_df, max_features=MAX_TERMS, sublinear_tf=True)
        try:
            x = vec.fit_transform(docs)  # (K + N, V)
        except ValueError:  # no word at all, or none seen twice
            return None
        for c in np.unique(y):  # class-balanced: each class's weights sum to the same total
            w[y == c] *= len(y) / (len(np.unique(y)) * w[y == c].sum())
        clf = LogisticRegression(C=C, max_iter=3000, random_state=seed).fit(x, y, sample_weight=w)
        vocabulary = [""] * len(vec.vocabulary_)
        for t, i in vec.vocabulary_.items():
            vocabulary[i] = t
        coef = np.zeros((num_classes, len(vocabulary)))
        intercept = np.full(num_classes, UNSEEN)
        if len(clf.classes_) == 2:  # binary: one decision value z, p = softmax([0, z])
            neg, pos = clf.classes_
            coef[pos], intercept[neg], intercept[pos] = clf.coef_[0], 0.0, clf.intercept_[0]
        else:
            coef[clf.classes_], intercept[clf.classes_] = clf.coef_, clf.intercept_
        return cls(vocabulary, vec.idf_.astype(np.float32), coef.astype(np.float32), intercept.astype(np.float32),
                   weight)  # fmt: skip

    def features(self, texts: Sequence[str]):
        """(N, V) sparse TF-IDF rows: 1 + log(count) times idf, l2-normalised."""
        from scipy.sparse import csr_matrix

        rows, cols, vals = [], [], []
        for n, text in enumerate(texts):
            counts = Counter(i for t in terms(text) if (i := self.index.get(t)) is not None)
            v = np.array([(1.0 + math.log(k)) * self.idf[i] for i, k in counts.items()], dtype=np.float64)
            norm = float(np.linalg.norm(v)) if len(v) else 0.0
            rows += [n] * len(v)
            cols += list(counts)
            vals += list(v / norm) if norm else []
        return csr_matrix((vals, (rows, cols)), shape=(len(texts), len(self.vocabulary)), dtype=np.float64)

    def proba(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, C) the lexical view's class probabilities."""
        z = self.features(texts) @ self.coef.T.astype(np.float64) + self.intercept  # (N, C)
        return torch.from_numpy(np.asarray(z)).float().softmax(-1)

    def mix(self, logits: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """(N, C) log of the mixed probabilities (they are the model's logits from here on: a softmax undoes it)."""
        p_lex = self.proba(texts).to(logits.device)  # the view's arrays stay on the CPU, the model may not
        p = (1.0 - self.weight) * logits.float().softmax(-1) + self.weight * p_lex
        return p.clamp_min(1e-12).log()

    def state(self) -> dict[str, torch.Tensor]:
        """Its arrays as tensors named `lexical.*` (the vocabulary as UTF-8 bytes, one term per line)."""
        words = "\n".join(self.vocabulary).encode()
        return {f"{PREFIX}vocabulary": torch.frombuffer(bytearray(words), dtype=torch.uint8).clone(),
                f"{PREFIX}idf": torch.from_numpy(self.idf), f"{PREFIX}coef": torch.from_numpy(self.coef),
                f"{PREFIX}intercept": torch.from_numpy(self.intercept),
                f"{PREFIX}weight": torch.tensor(self.weight, dtype=torch.float64)}  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> LexicalHead:
        """The view `state()` saved (its `lexical.*` tensors)."""
        try:
            words = bytes(state[f"{PREFIX}vocabulary"].cpu().numpy().tobytes()).decode()
            arrays = {k: state[f"{PREFIX}{k}"].cpu().numpy() for k in ("idf", "coef", "intercept")}
            return cls(words.split("\n") if words else [], arrays["idf"], arrays["coef"], arrays["intercept"],
                       float(state[f"{PREFIX}weight"]))  # fmt: skip
        except KeyError as e:
            raise KeyError(f"lexical view: {e.args[0]} missing from the saved state") from None


def cross_fitted(
    texts: Sequence[str], q: np.ndarray, gold_texts: Sequence[str], gold_labels: Sequence[int], seed: int = 0
) -> np.ndarray | None:
    """(N, C) each text's lexical-view probabilities from a view fitted on the other half of `texts` (alternate
    positions) and the gold labels: a view that never saw a text's own pseudo-label, so it cannot just repeat it.
    None when either half cannot be fitted."""
    out = np.zeros(q.shape)
    half = np.arange(len(texts)) % 2
    for h in (0, 1):
        fit_on, label = np.flatnonzero(half != h), np.flatnonzero(half == h)
        head = LexicalHead.fit([texts[i] for i in fit_on], q[fit_on], gold_texts, gold_labels, 1.0, seed)
        if head is None:
            return None
        out[label] = head.proba([texts[i] for i in label]).double().numpy()
    return out


FILE = "lexical.safetensors"  # the view beside a PEFT or folded export's model


def save(head: LexicalHead, folder) -> dict[str, Any]:
    """Write `folder/lexical.safetensors`; returns what an export's JSON says of it."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in head.state().items()}, str(Path(folder) / FILE))
    return describe(head)


def load(folder) -> LexicalHead | None:
    """The view `save` wrote to `folder` (None when there is none)."""
    from safetensors.torch import load_file

    path = Path(folder) / FILE
    return LexicalHead.from_state(load_file(str(path))) if path.exists() else None


def describe(head: LexicalHead | None) -> dict[str, Any] | None:
    """An export's JSON field: the view's file, weight and size (None: the model has none)."""
    if head is None:
        return None
    return {"file": FILE, "weight": head.weight, "vocabulary": len(head.vocabulary)}


def split_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], LexicalHead | None]:
    """A trainable state without its lexical view's tensors, and that view (None when it has none)."""
    rest = {k: v for k, v in state.items() if not k.startswith(PREFIX)}
    return rest, (LexicalHead.from_state(state) if len(rest) < len(state) else None)
