"""Judging a prompt before any training: zero-shot scores on the gold labels, the class distribution it
predicts on the pool, label-word suggestions, and a labeling order that covers the data.

Every function works for both kinds of backbone: with a pretrained MLM head the prompt is read at the mask;
for a sentence encoder (no MLM head) through the similarity head (cosine to the verbaliser embeddings).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .backbone import Backbone
from .data import Encoded, Row, collate
from .model import ListModel
from .prompts import Prompt, PromptError
from .teacher import prompt_evidence, prompt_looks_wrong

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,24}")
_STOP = set(
    [
        "the",
        "and",
        "for",
        "that",
        "this",
        "with",
        "was",
        "are",
        "but",
        "not",
        "you",
        "all",
        "any",
        "can",
        "had",
        "her",
        "his",
        "one",
        "our",
        "out",
        "has",
        "him",
        "how",
        "its",
        "may",
        "new",
        "now",
        "who",
        "why",
        "did",
        "get",
        "got",
        "let",
        "she",
        "too",
        "use",
        "way",
        "from",
        "have",
        "they",
        "will",
        "what",
        "when",
        "your",
        "there",
        "their",
        "then",
        "than",
        "them",
        "been",
        "were",
        "which",
        "would",
        "about",
        "could",
        "into",
        "more",
        "some",
        "such",
        "only",
        "also",
        "just",
        "like",
        "over",
        "very",
        "even",
        "most",
        "much",
        "many",
        "well",
        "here",
        "these",
        "those",
        "being",
        "after",
        "before",
        "where",
        "while",
        "because",
        "through",
        "movie",
        "film",
        "story",
    ]
)


def zero_shot_model(backbone: Backbone, prompt: Prompt, max_length: int = 128) -> ListModel:
    """The prompt alone as a classifier: the MLM head at the mask, or the similarity head."""
    return ListModel(backbone, prompt, head="auto", adapter=None, max_length=max_length)


def score_prompts(
    backbone: Backbone,
    candidates: Sequence[dict[str, Any]],
    gold_rows: Sequence[Row],
    gold_y: Sequence[int],
    pool_rows: Sequence[Row],
    labels: Sequence[str],
    max_length: int = 128,
    progress=None,
    eval_rows: Sequence[Row] = (),
    eval_y: Sequence[int] = (),
    features: dict[str, torch.Tensor] | None = None,
) -> list[dict[str, Any]]:
    """Each candidate (`{"template", "label_words", "descriptions"?}`) zero-shot: accuracy, loss and the evidence
    that it beats chance (`teacher.prompt_evidence`) on the gold labels (when there are any), accuracy on a labeled
    evaluation split (`eval_accuracy`, when given) and the share of each class it predicts on `pool_rows`. Best
    first: by evaluation accuracy when there is an evaluation split (hundreds of labels say more than 30), else by
    gold accuracy; a bad candidate gets an `error` instead. On a sentence encoder the texts' features are computed
    once for all candidates (and kept in the backbone's `feature_cache` for the next scoring), into `features`
    ("gold", "eval", "pool": (N, D)) when the caller passes a dict."""
    y = torch.tensor(list(gold_y), dtype=torch.long)
    y_eval = torch.tensor(list(eval_y), dtype=torch.long)
    if len(eval_rows) != len(y_eval):
        raise ValueError(f"{len(eval_rows)} evaluation rows but {len(y_eval)} evaluation labels")
    features = {} if features is None else features  # (N, D) per set of rows, for similarity heads

    def class_logits(model: ListModel, name: str, rows: Sequence[Row]) -> torch.Tensor:
        """(N, C) zero-shot logits. A similarity head reads the texts alone (its prompt is in its prototypes), so
        each set of texts is encoded once for every candidate: one pass over the pool instead of one per prompt."""
        if not model.plain_input:
            return model.logits(model.encode(rows))
        if name not in features:  # the backbone keeps the features of texts scored before (`feature_cache`)
            features[name] = backbone.feature_cache.row_features(model, rows)
        return model.feature_logits(features[name])

    board = []
    for k, cand in enumerate(candidates):
        if progress is not None:
            progress(k, len(candidates))
        entry: dict[str, Any] = {"template": cand["template"], "label_words": cand["label_words"]}
        for key in ("origin", "descriptions"):
            if cand.get(key):
                entry[key] = cand[key]
        try:
            prompt = Prompt.from_json(cand)
            if prompt.num_classes != len(labels):
                raise PromptError(f"{prompt.num_classes} label words for {len(labels)} labels")
            model = zero_shot_model(backbone, prompt, max_length)
            entry["head"] = model.head_kind
            if len(gold_rows):
                logits = class_logits(model, "gold", gold_rows)
                hits = int((logits.argmax(-1) == y).sum())
                entry["accuracy"] = hits / len(y)
                entry["evidence"] = prompt_evidence(hits, len(y), len(labels))  # P(it beats chance), as LiST weighs it
                entry["loss"] = float(torch.nn.functional.cross_entropy(logits, y))
            if len(eval_rows):
                pred = class_logits(model, "eval", eval_rows).argmax(-1)
                entry["eval_accuracy"] = float((pred == y_eval).float().mean())
            if len(pool_rows):
                pred = class_logits(model, "pool", pool_rows).argmax(-1)
                counts = torch.bincount(pred, minlength=len(labels)).tolist()
                entry["pool_distribution"] = {lab: n / len(pool_rows) for lab, n in zip(labels, counts)}
        except PromptError as e:
            entry["error"] = str(e)
        board.append(entry)
    score = lambda e, k: e.get(k) if e.get(k) is not None else -1  # noqa: E731
    board.sort(key=lambda e: (-score(e, "eval_accuracy"), -score(e, "accuracy"), e.get("loss", 1e9)))
    return board


def suggest_label_words(
    backbone: Backbone,
    prompt: Prompt,
    rows: Sequence[Row],
    y: Sequence[int],
    labels: Sequence[str],
    pool_rows: Sequence[Row] = (),
    k: int = 5,
    max_length: int = 128,
) -> dict[str, list[str]]:
    """Per class with gold examples, `k` label words that separate it from the others. With an MLM head: the words
    the head favours at the mask for that class's gold examples. For a sentence encoder: among the frequent words of
    the data, those whose verbaliser sentence ("It was <word> .") both lies nearest the class's gold examples and
    farthest from the other classes' (a difference of mean cosines) and lies nearest the class's own verbaliser
    and farthest from the other classes' (the prompt's meaning), the two scores standardised and added. The second
    keeps out words that only fit a few examples (names, topics): on the default backbone the first alone lowered
    mr's zero-shot accuracy by 10.5 points at K=10 (`benchmarks.suggestions`)."""
    if prompt.num_classes != len(labels):
        raise PromptError(f"{prompt.num_classes} label words for {len(labels)} labels")
    yt = torch.tensor(list(y), dtype=torch.long)
    if backbone.head_pretrained:
        return _mlm_suggestions(backbone, prompt, rows, yt, labels, k, max_length)
    model = zero_shot_model(backbone, prompt, max_length)
    cache = backbone.feature_cache  # the gold texts and the word sentences were most likely embedded before
    x = cache.row_features(model, rows)  # (N, D)
    words = candidate_words(list(rows) + list(pool_rows))
    if not words:
        return {}
    v = word_features(model, words)  # (W, D)
    sim = x @ v.T  # (N, W)
    protos = model.head.prototypes.detach()  # (C, D): the verbaliser prototypes, normalised (untrained head)
    to_protos = protos @ torch.nn.functional.normalize(v.float(), dim=-1).T  # (C, W)
    z = lambda t: (t - t.mean()) / t.std().clamp_min(1e-8)  # noqa: E731
    out = {}
    for c, name in enumerate(labels):
        if not (yt == c).any():
            continue
        data = sim[yt == c].mean(0) - (sim[yt != c].mean(0) if (yt != c).any() else 0)  # (W,)
        others = torch.cat([to_protos[:c], to_protos[c + 1 :]])  # (C-1, W)
        meaning = to_protos[c] - others.mean(0)  # (W,)
        score = z(data) + z(meaning) if len(words) > 1 else data
        out[name] = [words[i] for i in score.topk(min(k, len(words))).indices.tolist()]
    return out


def word_features(model: ListModel, words: Sequence[str]) -> torch.Tensor:
    """(W, D) frozen features of each word's verbaliser sentence in `model`'s template ("It was <word> ."), through
    the backbone's `feature_cache` (the same 1,500 candidate words come back at every scoring)."""
    template = " " + re.sub(r"\{(text|text_a|text_b)\}", "", model.prompt.template) + " "
    sentences = [" ".join(template.replace("{mask}", w).split()) for w in words]
    enc = Encoded.sentences(model.backbone.tokenizer, sentences, model.max_length)
    return model.backbone.feature_cache.features(model, enc)


def with_suggestions(
    candidate: dict[str, Any],
    suggestions: dict[str, list[str]],
    labels: Sequence[str],
    n: int = 3,
    origin: str = "suggested",
) -> dict[str, Any] | None:
    """The candidate prompt with up to `n` suggested words added to each class's label words, to be scored beside
    it (marked `origin`); None when nothing would be added. A word the prompt already uses, or one suggested for
    several classes, is skipped (a word stands for one class only)."""
    owns = [[w] if isinstance(w, str) else list(w) for w in candidate["label_words"]]
    suggested = Counter(w.lower() for lab in labels for w in set(suggestions.get(lab, [])))
    taken = {w.lower() for own in owns for w in own} | {w for w, k in suggested.items() if k > 1}
    words, added = [], False
    for own, lab in zip(owns, labels):
        new = [w for w in suggestions.get(lab, []) if w.lower() not in taken][:n]
        added |= bool(new)
        words.append(own + new if len(own) + len(new) > 1 else own[0])
    if not added:
        return None
    return {**candidate, "label_words": words, "origin": origin}


def rematched(
    backbone: Backbone,
    candidate: dict[str, Any],
    gold_rows: Sequence[Row],
    gold_y: Sequence[int],
    labels: Sequence[str],
    max_length: int = 128,
) -> dict[str, Any] | None:
    """The candidate with its verbalisers (label words and descriptions) moved between the classes, one class's to
    each, in the assignment that gets the most gold labels right zero-shot; offered only when the candidate itself
    looks wrong on them (`teacher.prompt_looks_wrong`: label words attached to the wrong classes) and the
    assignment gets more right. None otherwise (also for a candidate that is not a valid prompt: the board says
    why)."""
    try:
        prompt = Prompt.from_json(candidate)
        if not len(gold_rows) or prompt.num_classes != len(labels):
            return None
        model = zero_shot_model(backbone, prompt, max_length)  # a label word of several tokens fails here
    except PromptError:
        return None
    pred = model.logits(model.encode(gold_rows)).argmax(-1)  # (N,)
    c = prompt.num_classes
    hits = np.zeros((c, c))  # hits[v, k]: gold examples of class k that verbaliser v's class wins
    np.add.at(hits, (pred.numpy(), np.asarray(list(gold_y))), 1)
    own = int(np.trace(hits))
    if not prompt_looks_wrong(prompt_evidence(own, len(gold_rows), c)):
        return None
    from scipy.optimize import linear_sum_assignment

    verbaliser, cls = linear_sum_assignment(hits, maximize=True)
    order = [int(v) for _, v in sorted(zip(cls, verbaliser))]  # order[k]: the verbaliser class k gets
    if int(hits[order, range(c)].sum()) <= own:
        return None
    out = {**candidate, "label_words": [candidate["label_words"][v] for v in order], "origin": "rematched"}
    if candidate.get("descriptions"):
        out["descriptions"] = [candidate["descriptions"][v] for v in order]
    return out


def candidate_words(rows: Sequence[Row], limit: int = 1500) -> list[str]:
    """The most frequent content words of some rows (lower case, alphabetic, no stop words)."""
    counts: Counter[str] = Counter()
    for r in rows[:5000]:
        for text in r.values():
            counts.update(w.lower() for w in _WORD.findall(str(text)))
    return [w for w, _ in counts.most_common(limit + len(_STOP)) if w not in _STOP][:limit]


@torch.no_grad()
def _mlm_suggestions(backbone, prompt, rows, y, labels, k, max_length) -> dict[str, list[str]]:
    enc = Encoded.of(Prompt(prompt.template, ("a", "b")), backbone.tokenizer, rows, max_length)
    logp = []
    with backbone.activate(None):
        for s in range(0, len(enc), 32):
            idx = list(range(s, min(s + 32, len(enc))))
            b = collate(enc, idx, backbone.tokenizer.pad_token_id or 0, backbone.device)
            out = backbone.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits  # (B, T, V)
            logp.append(out[torch.arange(len(idx)), b["mask_pos"]].log_softmax(-1).float().cpu())
    lp = torch.cat(logp)  # (N, V)
    vocab = backbone.tokenizer.convert_ids_to_tokens(list(range(lp.shape[1])))
    ok = torch.tensor([t is not None and t.lstrip("Ġ▁").isalpha() and not t.startswith("##") for t in vocab])
    out = {}
    for c, name in enumerate(labels):
        if not (y == c).any():
            continue
        score = lp[y == c].mean(0) - lp[y != c].mean(0) if (y != c).any() else lp[y == c].mean(0)
        score[~ok] = -float("inf")
        out[name] = [vocab[i].lstrip("Ġ▁") for i in score.topk(k).indices.tolist()]
    return out


def diverse_order(features: np.ndarray, k: int, seed: int = 0) -> list[int]:
    """A labeling order that covers the data: k-means on (N, D) features, the example nearest each centre first
    (largest clusters first), then the rest round-robin by cluster, nearest first. Returns row indices."""
    from sklearn.cluster import KMeans

    k = max(1, min(k, len(features)))
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(features)
    dist = np.linalg.norm(features - km.cluster_centers_[km.labels_], axis=1)
    clusters = sorted(range(k), key=lambda c: -(km.labels_ == c).sum())
    members = {c: sorted(np.flatnonzero(km.labels_ == c), key=lambda i: dist[i]) for c in clusters}
    order: list[int] = []
    while any(members.values()):
        for c in clusters:
            if members[c]:
                order.append(int(members[c].pop(0)))
    return order
