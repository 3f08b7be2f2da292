"""Export a LiST adapter as a PEFT LoRA that `peft.PeftModel.from_pretrained(base, folder)` loads.

A LiST adapter follows a dense layer `h = W x + b` and computes `(I + U D) h`, so it is exactly a LoRA on
that layer: `lora_A = D W` (r x in), `lora_B = U` (out x r), `lora_B.bias = U D b`, r = bottleneck,
`lora_alpha = r` (scaling 1), no dropout.

The prompt head becomes: the MLM head's transform as `modules_to_save`, and the label-word rows of the
decoder as a rank-C LoRA on the decoder (`lora_B` one-hot at the label ids, `lora_A` = new rows - old rows,
`lora_B.bias` = new biases - old biases at those ids), so the PEFT model's logits at the mask equal LiST's.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoModelForMaskedLM

from . import lexical
from .adapter import adapted_layers, set_submodule
from .backbone import MODEL_LOAD_LOCK
from .cards import export_card
from .folded import export_head_fields, linear_form
from .heads import PromptHead
from .model import ListModel


def _name_of(root: nn.Module, target: nn.Module) -> str:
    for name, m in root.named_modules():
        if m is target:
            return name
    raise KeyError(f"{type(target).__name__} not found in the model")


def save_peft(
    model: ListModel, folder: str | Path, base_path: str | None = None, labels: list[str] | None = None
) -> Path:
    """Write `adapter_config.json` + `adapter_model.safetensors`. A prompt head rides in the MLM model, so the base
    is `AutoModelForMaskedLM`; any other head (similarity, probe, classic) reads the encoder's hidden states, so
    the base is the encoder (`AutoModel`) and the head is saved beside it as `list_head.safetensors`.
    `base_path`: where to load a clean copy of the backbone from (default: a copy of the one in memory)."""
    from peft import LoraConfig, get_peft_model

    if model.adapter_config is None:
        raise ValueError("this model has no adapters to export")
    folder = Path(folder)
    bb = model.backbone
    mlm = isinstance(model.head, PromptHead)
    if base_path is not None:
        with MODEL_LOAD_LOCK:  # not while another thread loads a model
            base = (AutoModelForMaskedLM if mlm else AutoModel).from_pretrained(base_path)
    else:  # a clean in-memory copy of the backbone (no download, works for the bundled default too)
        base = copy.deepcopy(bb.model if mlm else bb.encoder)
        for name, layer in adapted_layers(base).items():
            set_submodule(base, name, layer.base)
    prefix = f"{base.base_model_prefix}." if mlm else ""
    layers = {n: (model.encoder.get_submodule(n).base, a) for n, a in model.adapter_modules().items()}
    targets = [f"{prefix}{n}" for n in layers]
    r = model.adapter_config.bottleneck
    rank_pattern, alpha_pattern, modules_to_save = {}, {}, None
    decoder_name = None
    if isinstance(model.head, PromptHead):
        dense, _, norm = bb.spec.transform(base)
        modules_to_save = [_name_of(base, dense), _name_of(base, norm)]
        decoder_name = _name_of(base, base.get_output_embeddings())
        c = len(model.label_ids)
        targets.append(decoder_name)
        rank_pattern[f"^{decoder_name}$"] = c
        alpha_pattern[f"^{decoder_name}$"] = c
    cfg = LoraConfig(
        r=r, lora_alpha=r, lora_dropout=0.0, lora_bias=True, target_modules=targets,
        rank_pattern=rank_pattern, alpha_pattern=alpha_pattern, modules_to_save=modules_to_save,
    )  # fmt: skip
    peft_model = get_peft_model(base, cfg)
    named = dict(peft_model.base_model.model.named_modules())
    with torch.no_grad():
        for n, (dense, adapter) in layers.items():
            lora = named[f"{prefix}{n}"]
            W, b = dense.weight.float(), dense.bias.float()  # (out, in), (out,)
            U, D = adapter.up.weight.float(), adapter.down.weight.float()  # (out, r), (r, out)
            lora.lora_A["default"].weight.copy_(D @ W)  # (r, in)
            lora.lora_B["default"].weight.copy_(U)  # (out, r)
            lora.lora_B["default"].bias.copy_(U @ (D @ b))  # (out,)
        if decoder_name is not None:
            head = model.head
            dec = named[decoder_name]
            ids = torch.tensor(model.label_ids)
            old_w = dec.base_layer.weight.float()[ids]  # (C, D)
            old_b = dec.base_layer.bias.float()[ids]  # (C,)
            dec.lora_A["default"].weight.copy_(head.label_weight.float().cpu() - old_w)
            onehot = torch.zeros_like(dec.lora_B["default"].weight)  # (V, C)
            onehot[ids, torch.arange(len(ids))] = 1.0
            dec.lora_B["default"].weight.copy_(onehot)
            bias = torch.zeros_like(dec.lora_B["default"].bias)
            bias[ids] = head.label_bias.float().cpu() - old_b
            dec.lora_B["default"].bias.copy_(bias)
            for src, name in ((head.dense, modules_to_save[0]), (head.norm, modules_to_save[1])):
                wrapper = named[name]
                wrapper.modules_to_save["default"].load_state_dict({k: v.cpu() for k, v in src.state_dict().items()})
    with warnings.catch_warnings():
        # PEFT's ZeRO-3/FSDP shard check flags every 1-D lora_B tensor; ours are the LoRA biases (`lora_bias=True`,
        # how an adapter's up-projection bias is carried), complete by construction, so the warning is false
        warnings.filterwarnings("ignore", message=r".*LoRA tensor\(s\) have invalid shape", category=UserWarning)
        peft_model.save_pretrained(str(folder))
    if not isinstance(model.head, PromptHead):
        from safetensors.torch import save_file

        save_file(
            {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()},
            str(folder / "list_head.safetensors"),
        )
        weight, bias = linear_form(model.head)  # the same head as one linear layer, for use without list_core
        save_file(
            {"weight": weight.cpu().contiguous(), "bias": bias.cpu().contiguous()}, str(folder / "head.safetensors")
        )
    meta = {**model.prompt.to_json(), "label_ids": model.label_ids, "labels": list(labels or []),
            "head": model.head_kind, **export_head_fields(model), "max_length": model.max_length,
            "temperature": model.temperature,  # calibrated probabilities: softmax(logits / T)
            "lexical": lexical.save(model.lexical, folder) if model.lexical is not None else None,
            "note": "LiST adapters as LoRA (exact); see list_core/peft_format.py"}  # fmt: skip
    (folder / "list_peft.json").write_text(json.dumps(meta, indent=1))
    # PEFT writes an empty model card template; ours says what the folder is and how to use it
    (folder / "README.md").write_text(export_card(meta, "peft", base_path or model.backbone.name))
    return folder
