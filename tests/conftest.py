"""Fixtures: tiny random masked LMs of each family, saved to disk and loaded like real checkpoints."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    BertConfig,
    DebertaV2Config,
    DistilBertConfig,
    ElectraConfig,
    MPNetConfig,
    RobertaConfig,
    RobertaTokenizer,
)

from list_core.backbone import load_backbone, resolve_backbone_path

FAMILIES = ["bert", "roberta", "distilbert", "electra", "mpnet", "deberta-v2"]
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)

CORPUS = [
    "the movie was great and the acting was terrible",
    "It was good . It was bad . This is subjective or objective ?",
    "a wonderful film with awful pacing , yes or no",
    "great bad great bad good",
] * 40


def _wordpiece_tokenizer():
    # the default backbone's WordPiece tokenizer (LIST_TEST_TOKENIZER: a folder with a copy of it)
    return AutoTokenizer.from_pretrained(os.environ.get("LIST_TEST_TOKENIZER") or resolve_backbone_path(None))


def _bpe_tokenizer(tmp: Path) -> RobertaTokenizer:
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        CORPUS, vocab_size=320, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    bpe.save_model(str(tmp))
    vocab = json.loads((tmp / "vocab.json").read_text())
    merges = [tuple(x.split()) for x in (tmp / "merges.txt").read_text().splitlines()[1:] if x]
    return RobertaTokenizer(vocab=vocab, merges=merges)


def _config(family: str, vocab_size: int):
    if family == "bert":
        return BertConfig(vocab_size=vocab_size, **SMALL)
    if family == "roberta":
        return RobertaConfig(vocab_size=vocab_size, max_position_embeddings=130, pad_token_id=1, **SMALL)
    if family == "electra":
        return ElectraConfig(vocab_size=vocab_size, embedding_size=32, **SMALL)
    if family == "mpnet":
        return MPNetConfig(vocab_size=vocab_size, **SMALL)
    if family == "deberta-v2":
        return DebertaV2Config(vocab_size=vocab_size, **SMALL)
    if family == "distilbert":
        return DistilBertConfig(vocab_size=vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=37)
    raise KeyError(family)


def build_tiny(family: str, root: Path, with_head: bool = True, seed: int = 0) -> Path:
    """Save a tiny random `family` masked LM (optionally without its MLM head) and its tokenizer to `root`."""
    root.mkdir(parents=True, exist_ok=True)
    tok = _bpe_tokenizer(root) if family == "roberta" else _wordpiece_tokenizer()
    torch.manual_seed(seed)
    model = AutoModelForMaskedLM.from_config(_config(family, len(tok)))
    (model if with_head else model.base_model).save_pretrained(root)
    tok.save_pretrained(root)
    return root


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("tiny")
    return {f: build_tiny(f, base / f) for f in FAMILIES}


@pytest.fixture(scope="session")
def tiny_headless_dir(tmp_path_factory) -> Path:
    return build_tiny("bert", tmp_path_factory.mktemp("tiny") / "bert-headless", with_head=False)


# No test may start a background worker by accident (AppTest can rerun app.py after a test's environment is
# restored); the browser test removes this for the server it starts.
os.environ["LIST_NO_WORKER"] = "1"

# LIST_TEST_DEVICE=cuda runs the engine tests on a GPU; the default suite is CPU only.
DEVICE = os.environ.get("LIST_TEST_DEVICE", "cpu")


@pytest.fixture()
def bert(tiny_dirs):
    """A freshly loaded tiny BERT (fresh each test: adapters are attached in place)."""
    return load_backbone(str(tiny_dirs["bert"]), device=DEVICE)


@pytest.fixture()
def roberta(tiny_dirs):
    return load_backbone(str(tiny_dirs["roberta"]), device=DEVICE)
