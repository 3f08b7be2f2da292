"""Folded export: adapters folded into the dense weights and the prompt head written into the MLM head, saved
with `save_pretrained` as a plain transformers model. Inference then costs exactly the base model. Any other head
is one linear layer on a pooled feature (`head.safetensors`: weight, bias; `list_config.json` "head_formula"), so
`AutoModel` and two lines of torch use the export without this package."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from . import lexical
from .backbone import load_backbone
from .cards import HEAD_FORMULA, export_card
from .export import Classifier, ExportError, check_config
from .heads import ClassicHead, ProbeHead, PromptHead, SimilarityHead
from .model import ListModel
from .prompts import Prompt


def _feature(head: nn.Module) -> str:
    if isinstance(head, (SimilarityHead, ProbeHead)):
        return "normalised mean"
    if isinstance(head, ClassicHead):
        return head.pooling
    raise TypeError(f"no linear form for a {type(head).__name__}")


@torch.no_grad()
def linear_form(head: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, D) weight and (C,) bias with logits = feature @ weight.T + bias (`HEAD_FORMULA` names the feature)."""
    if isinstance(head, SimilarityHead):  # scale_c * cos(x, p_c) + b_c = x_hat . (scale_c * p_c / |p_c|) + b_c
        protos = nn.functional.normalize(head.prototypes.float(), dim=-1)
        return head.log_scale.float().exp()[:, None] * protos, head.bias.float().clone()
    _feature(head)  # refuses a head without a linear form
    return head.linear.weight.float().clone(), head.linear.bias.float().clone()


@torch.no_grad()
def set_linear_form(head: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> None:
    if isinstance(head, SimilarityHead):
        head.set_linear(weight, bias)
    else:
        head.linear.weight.copy_(weight)
        head.linear.bias.copy_(bias)


def save_folded(model: ListModel, folder: str | Path, labels: list[str]) -> Path:
    """`folder/model/` (config, weights, tokenizer), `folder/list_config.json`, and for any head but the MLM prompt
    head `folder/head.safetensors` in its linear form."""
    folder = Path(folder)
    plain = model.folded_copy()  # a copy: the shared backbone is untouched
    mlm = plain.backbone.model
    if isinstance(plain.head, PromptHead):
        dense, _, norm = plain.backbone.spec.transform(mlm)
        head = plain.head
        with torch.no_grad():
            dense.load_state_dict(head.dense.state_dict())
            norm.load_state_dict(head.norm.state_dict())
            dec = mlm.get_output_embeddings()
            dec.weight = nn.Parameter(dec.weight.detach().clone())  # untie from the input embeddings
            if dec.bias is not None:  # and the bias from its alias, so both are saved and reloaded as they are
                dec.bias = nn.Parameter(dec.bias.detach().clone())
            ids = torch.tensor(plain.label_ids, device=dec.weight.device)
            dec.weight[ids] = head.label_weight.to(dec.weight.dtype)
            # the decoder bias may have an alias (BERT's cls.predictions.bias, RoBERTa's lm_head.bias): set every copy
            vocab = dec.weight.shape[0]
            for name, prm in mlm.named_parameters(remove_duplicate=False):
                if name.endswith("bias") and tuple(prm.shape) == (vocab,):
                    prm[ids] = head.label_bias.to(prm.dtype)
        mlm.config.tie_word_embeddings = False
    else:  # every other head is one linear layer on a pooled feature: saved as such, loadable without this package
        folder.mkdir(parents=True, exist_ok=True)
        weight, bias = linear_form(plain.head)
        save_file(
            {"weight": weight.cpu().contiguous(), "bias": bias.cpu().contiguous()}, str(folder / "head.safetensors")
        )
    mlm.save_pretrained(str(folder / "model"))
    plain.backbone.tokenizer.save_pretrained(str(folder / "model"))
    cfg = {
        "format": "list-folded",
        **model.prompt.to_json(),
        "labels": list(labels),
        "head": model.head_kind,
        "pooling": getattr(model.head, "pooling", "mean"),
        "max_length": model.max_length,
        "feature_layers": model.feature_layers,
        "source_backbone": model.backbone.name,
        **export_head_fields(model),
        "temperature": model.temperature,  # divide the logits by it for calibrated probabilities
        "lexical": lexical.save(model.lexical, folder) if model.lexical is not None else None,
    }
    (folder / "list_config.json").write_text(json.dumps(cfg, indent=1))
    (folder / "README.md").write_text(export_card(cfg, "folded", model.backbone.name))
    return folder


def export_head_fields(model: ListModel) -> dict:
    """What a use without list_core needs to know about the head (model cards): the input it reads, and the label
    words' token ids and classes (prompt head) or the formula of `linear_form` (any other head)."""
    fields: dict = {"input": "plain" if model.plain_input else "template"}
    if model.head_kind == "prompt":
        fields["label_ids"] = list(model.label_ids)
        fields["label_classes"] = [c for c, group in enumerate(model.prompt.words) for _ in group]
    else:
        fields["head_formula"] = HEAD_FORMULA["layers" if model.feature_layers > 1 else _feature(model.head)]
        fields["feature_layers"] = model.feature_layers
    return fields


def load_folded(folder: str | Path, device: str | None = None) -> Classifier:
    """A folded export as a classifier: a plain backbone, no adapters."""
    folder = Path(folder)
    cfg_path = folder / "list_config.json"
    if not cfg_path.exists() or not (folder / "model").is_dir():
        raise ExportError(f"{folder} is not a folded LiST export (needs list_config.json and model/)")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"{cfg_path} is not valid JSON: {e}") from None
    if not isinstance(cfg, dict) or cfg.get("format") != "list-folded":
        raise ExportError(f"{cfg_path}: not a folded LiST export config (format 'list-folded')")
    check_config({**cfg, "backbone": "model", "backbone_hash": "-"}, str(cfg_path))  # same fields as native
    try:
        bb = load_backbone(str(folder / "model"), device=device)
    except (OSError, ValueError) as e:
        raise ExportError(f"{folder / 'model'} cannot be loaded as a model: {e}") from None
    prompt = Prompt.from_json(cfg)
    model = ListModel(bb, prompt, cfg["head"], adapter=None, pooling=cfg["pooling"], max_length=cfg["max_length"],
                      feature_layers=cfg.get("feature_layers", 1))  # fmt: skip
    if cfg["head"] != "prompt":  # the other heads travel beside the model
        try:
            state = load_file(str(folder / "head.safetensors"))
            if set(state) == {"weight", "bias"}:  # the linear form (older exports hold the head's own state)
                set_linear_form(model.head, state["weight"], state["bias"])
            else:
                model.head.load_state_dict(state)
        except (OSError, ValueError, RuntimeError, SafetensorError) as e:
            raise ExportError(f"{folder / 'head.safetensors'} is missing, damaged or does not fit: {e}") from None
    if cfg.get("lexical"):  # a lexical view mixed into the probabilities, beside the model
        try:
            model.lexical = lexical.load(folder)
        except (OSError, ValueError, KeyError, SafetensorError) as e:
            raise ExportError(f"{folder / lexical.FILE} is damaged: {e}") from None
        if model.lexical is None:
            raise ExportError(f"{folder / lexical.FILE} is missing (list_config.json names a lexical view)")
    model.temperature = float(cfg.get("temperature", 1.0))
    return Classifier(model, list(cfg["labels"]), cfg)
