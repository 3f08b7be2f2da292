import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoModelForMaskedLM

from list_core.backbone import load_backbone
from list_core.config import AdapterConfig
from list_core.data import collate
from list_core.export import ExportError, load_classifier, save_native
from list_core.folded import load_folded, save_folded
from list_core.model import ListModel
from list_core.peft_format import save_peft
from list_core.prompts import Prompt
from list_core.serving import AdapterServer

from .conftest import FAMILIES, build_tiny

ROOT = Path(__file__).resolve().parents[1]
PROMPT = Prompt("{text} It was {mask} .", ("bad", "great"))
ROWS = [{"text": "the movie was great"}, {"text": "bad acting and a long , long plot"}, {"text": "good"}]


def trained(path, head="prompt", bottleneck=4, seed=0) -> ListModel:
    """A model whose adapters and head are far from their initial values, as after training."""
    torch.manual_seed(seed)
    m = ListModel(
        load_backbone(str(path), device="cpu"), PROMPT, head=head, adapter=AdapterConfig(bottleneck=bottleneck)
    ).eval()
    with torch.no_grad():
        for p in m.trainable_named_parameters().values():
            p.add_(torch.randn_like(p) * 0.1)
    return m


@pytest.mark.parametrize("head", ["prompt", "classic", "similarity", "probe"])
def test_native_round_trip(tiny_dirs, tmp_path, head):
    m = trained(tiny_dirs["bert"], head)
    before = m.logits(m.encode(ROWS))
    save_native(m, tmp_path / "a", labels=["neg", "pos"], metrics={"eval_accuracy": 0.9})
    assert {p.name for p in (tmp_path / "a").iterdir()} == {"adapter.safetensors", "list_config.json", "README.md"}
    clf = load_classifier(tmp_path / "a", device="cpu")
    assert (clf.model.logits(clf.model.encode(ROWS)) - before).abs().max() <= 1e-5
    assert clf.predict(["great"])[0] in ("neg", "pos")
    assert "eval_accuracy: 0.9000" in (tmp_path / "a" / "README.md").read_text()


def test_native_rejects_damage_and_wrong_backbone(tiny_dirs, tmp_path):
    m = trained(tiny_dirs["bert"])
    save_native(m, tmp_path / "a", labels=["neg", "pos"])
    weights = (tmp_path / "a" / "adapter.safetensors").read_bytes()
    (tmp_path / "a" / "adapter.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(ExportError, match="damaged or truncated"):
        load_classifier(tmp_path / "a")
    (tmp_path / "a" / "adapter.safetensors").write_bytes(b"\xff" * 8 + weights[8:])
    with pytest.raises(ExportError, match="damaged or truncated"):
        load_classifier(tmp_path / "a")
    (tmp_path / "a" / "adapter.safetensors").write_bytes(weights)
    other = build_tiny("bert", tmp_path / "other-bert", seed=1)
    with pytest.raises(ExportError, match="not the one this adapter was trained on"):
        load_classifier(tmp_path / "a", backbone=str(other))
    assert load_classifier(tmp_path / "a", backbone=str(other), allow_backbone_mismatch=True)
    with pytest.raises(ExportError, match="not a LiST adapter folder"):
        load_classifier(tmp_path)
    save_peft(m, tmp_path / "p")  # one that loads elsewhere: said so, not "not an adapter"
    with pytest.raises(ExportError, match="is a PEFT export: load it with PEFT"):
        load_classifier(tmp_path / "p")


@pytest.mark.parametrize("family", FAMILIES)
def test_peft_round_trip_reproduces_mask_logits(tiny_dirs, tmp_path, family):
    from peft import PeftModel, PeftWarning

    m = trained(tiny_dirs[family])
    with warnings.catch_warnings():
        warnings.simplefilter(
            "error", PeftWarning
        )  # no PEFT warning: an export that looks broken is a bug (issue 12.5)
        save_peft(m, tmp_path / "peft")
        assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in (tmp_path / "peft").iterdir()}
        pm = PeftModel.from_pretrained(
            AutoModelForMaskedLM.from_pretrained(str(tiny_dirs[family])), str(tmp_path / "peft")
        ).eval()
    enc = m.encode(ROWS)
    b = collate(enc, list(range(len(ROWS))), m.pad_id, m.device)
    with torch.no_grad():
        ours = m(**b)
        logits = pm(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    theirs = logits[torch.arange(len(ROWS)), b["mask_pos"]][:, m.label_ids]
    assert (ours - theirs).abs().max() <= 1e-4


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("head", ["prompt", "classic", "similarity", "probe"])
def test_folded_round_trip(tiny_dirs, tmp_path, family, head):
    m = trained(tiny_dirs[family], head)
    before = m.logits(m.encode(ROWS))
    save_folded(m, tmp_path / "f", ["neg", "pos"])
    clf = load_folded(tmp_path / "f")
    assert not any("adapter" in n for n, _ in clf.model.named_parameters())
    assert (clf.model.logits(clf.model.encode(ROWS)) - before).abs().max() <= 1e-4
    if head == "prompt":  # the saved model alone, as plain transformers, gives the same mask logits
        plain = AutoModelForMaskedLM.from_pretrained(str(tmp_path / "f" / "model")).eval()
        enc = m.encode(ROWS)
        b = collate(enc, list(range(len(ROWS))), m.pad_id, m.device)
        with torch.no_grad():
            logits = plain(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        theirs = logits[torch.arange(len(ROWS)), b["mask_pos"]][:, m.label_ids]
        assert (theirs - before).abs().max() <= 1e-4
    else:  # issue 12.5: AutoModel + the documented linear head, no list_core, give the same logits
        from safetensors.torch import load_file

        cfg = json.loads((tmp_path / "f" / "list_config.json").read_text())
        w = load_file(str(tmp_path / "f" / "head.safetensors"))
        assert set(w) == {"weight", "bias"} and "weight.T + bias" in cfg["head_formula"]
        plain = AutoModel.from_pretrained(str(tmp_path / "f" / "model")).eval()
        enc = m.encode(ROWS)
        b = collate(enc, list(range(len(ROWS))), m.pad_id, m.device)
        with torch.no_grad():
            h = plain(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
        am = b["attention_mask"][..., None].float()
        feature = (h * am).sum(1) / am.sum(1)  # mean over the attention mask
        if cfg["head_formula"].startswith("logits = normalize("):
            feature = torch.nn.functional.normalize(feature, dim=-1)
        assert cfg["head_formula"].startswith(("logits = normalize(mean", "logits = mean"))  # these heads pool by mean
        assert (feature @ w["weight"].T + w["bias"] - before).abs().max() <= 1e-4


def test_serving_many_adapters_on_one_backbone(tiny_dirs, tmp_path):
    expected = {}
    for i, (head, r) in enumerate([("prompt", 4), ("classic", 4), ("prompt", 6), ("similarity", 4)]):
        m = trained(tiny_dirs["bert"], head, bottleneck=r, seed=i)
        expected[f"t{i}"] = m.logits(m.encode(ROWS)).softmax(-1)
        save_native(m, tmp_path / f"t{i}", labels=["neg", "pos"])
    server = AdapterServer(str(tiny_dirs["bert"]), device="cpu")
    for name in expected:
        server.add(name, tmp_path / name)
    for name in ["t0", "t1", "t2", "t0", "t2", "t1"]:  # switching back and forth
        assert (server.predict_proba(name, ROWS) - expected[name]).abs().max() <= 1e-5
    with pytest.raises(KeyError, match="no task 'nope'"):
        server.predict_proba("nope", ROWS)


def test_peft_round_trip_of_the_similarity_head(tiny_headless_dir, tmp_path):
    """A sentence encoder's export: the encoder with the adapters as LoRA, the similarity head beside it."""
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModel

    from list_core.heads import SimilarityHead

    m = trained(tiny_headless_dir, "similarity")
    assert m.head_kind == "similarity"
    m.temperature = 2.5  # a calibrated run: the PEFT export carries its temperature too (issue 12)
    save_peft(m, tmp_path / "peft", labels=["neg", "pos"])
    assert json.loads((tmp_path / "peft" / "list_peft.json").read_text())["temperature"] == 2.5
    enc = m.encode(ROWS)
    b = collate(enc, list(range(len(ROWS))), m.pad_id, m.device)
    pm = PeftModel.from_pretrained(AutoModel.from_pretrained(str(tiny_headless_dir)), str(tmp_path / "peft")).eval()
    head = SimilarityHead(torch.zeros(2, 32))
    head.load_state_dict(load_file(str(tmp_path / "peft" / "list_head.safetensors")))
    with torch.no_grad():
        hidden = pm(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
        theirs = head(hidden, b["attention_mask"], None)
        ours = m(**b)
    assert (ours - theirs).abs().max() <= 1e-4


def test_predict_cli_fails_once_and_non_zero_on_a_wrong_column_or_nothing_to_predict(tiny_dirs, tmp_path, capsys):
    """Issue 12.7: a wrong --text-column was one error per row, exit 0 and a header-only output file. (The first
    case runs the command, for its exit status; the second calls its `main`, without a fresh interpreter.)"""
    from list_core.predict import main

    save_native(trained(tiny_dirs["bert"]), tmp_path / "a", labels=["neg", "pos"])
    data = tmp_path / "in.csv"
    data.write_text("id,review\n1,great movie\n2,bad film\n3,fine\n")
    out = tmp_path / "out.csv"

    def cli(*args):
        cmd = [sys.executable, "-m", "list_core.predict", "--adapter", str(tmp_path / "a"), "--output", str(out)]
        return subprocess.run([*cmd, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)

    res = cli("--input", str(data))  # the default --text-column is "text"
    assert res.returncode == 2 and not out.exists()
    assert res.stderr.count("no column 'text'") == 1 and "columns: id, review" in res.stderr
    empty = tmp_path / "empty.csv"
    empty.write_text("id,text\n1,\n2,\n")
    code = main(["--adapter", str(tmp_path / "a"), "--output", str(out), "--input", str(empty)])
    assert code == 1 and not out.exists() and "nothing to predict" in capsys.readouterr().err


def test_predict_cli_reports_bad_rows_and_predicts_the_rest(tiny_dirs, tmp_path, capsys):
    from list_core.predict import main

    save_native(trained(tiny_dirs["bert"]), tmp_path / "a", labels=["neg", "pos"])
    data = tmp_path / "in.csv"
    data.write_bytes(b'id,text\n1,great movie\n2,"multi\nline review"\n3,too,many\n4,\n5,\xff\xfe broken\n6,bad film\n')
    out = tmp_path / "out.csv"
    res = subprocess.run(
        [sys.executable, "-m", "list_core.predict", "--adapter", str(tmp_path / "a"), "--input", str(data), "--output", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "line 5: 3 fields, expected 2" in res.stderr
    assert "line 6: empty text" in res.stderr
    assert "line 7: not valid UTF-8" in res.stderr
    import csv

    got = list(csv.DictReader(out.open()))
    assert list(got[0]) == ["id", "text", "prediction", "p_neg", "p_pos"]
    assert [r["id"] for r in got] == ["1", "2", "6"] and got[1]["text"] == "multi\nline review"
    jl = tmp_path / "in.jsonl"
    jl.write_text('{"text": "great"}\nnot json\n{"text": ""}\n{"txt": "x"}\n{"text": "bad"}\n')
    code = main(["--adapter", str(tmp_path / "a"), "--input", str(jl), "--output", str(tmp_path / "o.jsonl")])
    err = capsys.readouterr().err  # the command's `main`, in this process
    assert code == 0, err
    assert "line 2: invalid JSON" in err and "line 3: empty text" in err and "line 4: no column 'text'" in err
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 2


def _tamper_cases():
    """(name, change to the folder) pairs: each must give one ExportError before anything is loaded wrongly."""
    import json as _json

    from safetensors.torch import load_file, save_file

    def cfg_edit(fn):
        def apply(folder):
            path = folder / "list_config.json"
            cfg = _json.loads(path.read_text())
            fn(cfg)
            path.write_text(_json.dumps(cfg))

        return apply

    def weights_edit(fn, keep_metadata=True):
        def apply(folder):
            path = folder / "adapter.safetensors"
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                meta = f.metadata()
            state = load_file(str(path))
            fn(state)
            save_file(state, str(path), metadata=meta if keep_metadata else None)

        return apply

    def first(state):
        return sorted(state)[0]

    return [
        ("config truncated", lambda f: (f / "list_config.json").write_text('{"format": "list-ad')),
        ("config a list", lambda f: (f / "list_config.json").write_text("[1, 2]")),
        ("config missing", lambda f: (f / "list_config.json").unlink()),
        ("weights missing", lambda f: (f / "adapter.safetensors").unlink()),
        ("weights empty", lambda f: (f / "adapter.safetensors").write_bytes(b"")),
        ("format version from the future", cfg_edit(lambda c: c.update(format_version=99))),
        ("labels missing", cfg_edit(lambda c: c.pop("labels"))),
        ("labels not a list", cfg_edit(lambda c: c.update(labels="neg,pos"))),
        ("one label", cfg_edit(lambda c: c.update(labels=["neg"]))),
        ("duplicate labels", cfg_edit(lambda c: c.update(labels=["neg", "neg"]))),
        ("labels swapped", cfg_edit(lambda c: c.update(labels=["pos", "neg"]))),
        ("label words swapped", cfg_edit(lambda c: c.update(label_words=["great", "bad"]))),
        ("a third label", cfg_edit(lambda c: c.update(labels=["neg", "pos", "mid"]))),
        ("unknown head", cfg_edit(lambda c: c.update(head="evil"))),
        ("unknown pooling", cfg_edit(lambda c: c.update(pooling="max"))),
        ("template without mask", cfg_edit(lambda c: c.update(template="{text} It was ."))),
        ("adapter key unknown", cfg_edit(lambda c: c["adapter"].update(evil=1))),
        ("adapter bottleneck negative", cfg_edit(lambda c: c["adapter"].update(bottleneck=-4))),
        ("max_length not a number", cfg_edit(lambda c: c.update(max_length="long"))),
        ("backbone hash not text", cfg_edit(lambda c: c.update(backbone_hash=12))),
        ("weights values changed", weights_edit(lambda s: s[first(s)].add_(1.0))),
        ("a tensor reshaped", weights_edit(lambda s: s.update({first(s): s[first(s)].flatten()[:3].clone()}))),
        ("a tensor removed, no metadata", weights_edit(lambda s: s.pop(first(s)), keep_metadata=False)),
    ]


def test_tampered_adapter_folders_give_one_clear_error(tiny_dirs, tmp_path):
    """Issue 13.10: of 23 tampered adapter folders, 8 gave a clean error, 10 an uncaught exception and 3 loaded
    silently wrong. Every one now gives an ExportError naming the problem."""
    import shutil

    bb = load_backbone(str(tiny_dirs["bert"]), device="cpu")
    save_native(trained(tiny_dirs["bert"]), tmp_path / "good", labels=["neg", "pos"])
    assert load_classifier(tmp_path / "good", backbone=bb).predict(["great"])
    cases = _tamper_cases()
    assert len(cases) == 23
    for name, tamper in cases:
        folder = tmp_path / name.replace(" ", "_")
        shutil.copytree(tmp_path / "good", folder)
        tamper(folder)
        with pytest.raises(ExportError):
            load_classifier(folder, backbone=bb)
            pytest.fail(f"{name}: loaded")


def test_an_adapter_never_loads_a_backbone_it_names_before_its_checks(tiny_dirs, tmp_path, monkeypatch):
    """Issue 13.10: an adapter's `backbone` field was loaded before the hash check: a hub id (or a folder that is
    not a model) in a tampered config must be refused before anything is loaded."""
    import json as _json

    from safetensors.torch import load_file, save_file

    import list_core.export as export

    save_native(trained(tiny_dirs["bert"]), tmp_path / "a", labels=["neg", "pos"])
    cfg = _json.loads((tmp_path / "a" / "list_config.json").read_text())
    cfg["backbone"] = "evil-org/backdoored-model"
    (tmp_path / "a" / "list_config.json").write_text(_json.dumps(cfg))
    with pytest.raises(ExportError, match="changed after export"):  # the recorded hashes catch it first
        load_classifier(tmp_path / "a")
    # an export without recorded hashes (or a consistent forgery) still meets the allow-list
    weights = tmp_path / "a" / "adapter.safetensors"
    save_file(load_file(str(weights)), str(weights))
    cfg.pop("weights_sha256")
    loaded = []
    monkeypatch.setattr(export, "load_backbone", lambda *a, **k: loaded.append(a) or pytest.fail("loaded"))
    for named in ("evil-org/backdoored-model", str(tmp_path / "no-such-folder")):
        cfg["backbone"] = named
        (tmp_path / "a" / "list_config.json").write_text(_json.dumps(cfg))
        with pytest.raises(ExportError, match="LIST_BACKBONES|not a folder"):
            load_classifier(tmp_path / "a")
    assert loaded == []


def test_a_bad_line_after_the_first_chunk_is_reported_with_its_chunk(tmp_path):
    """Chunked reading: a problem met while reading chunk 2 belongs to chunk 2, not to the chunk already handed out."""
    from list_core.tabular import read_chunks

    data = tmp_path / "in.csv"
    data.write_text("text\na\nb\nc\n\nd\ne\n" + "f,extra\n" + "g\n")
    chunks = list(read_chunks(data, "text", chunk_size=2))
    assert [c.rows for c in chunks] == [[{"text": "a"}, {"text": "b"}], [{"text": "c"}, {"text": "d"}],
                                        [{"text": "e"}, {"text": "g"}], []]  # fmt: skip
    assert [c.problems for c in chunks] == [[], [], ["line 8: 2 fields, expected 1"], []]


def test_a_lexical_view_travels_with_the_native_export_serving_and_the_predict_cli(tiny_dirs, tmp_path):
    import csv

    import numpy as np

    from list_core.lexical import LexicalHead

    m = trained(tiny_dirs["bert"], "similarity")
    adapters = sum(p.numel() for p in m.trainable_named_parameters().values())
    texts = ["a great great film", "bad acting", "the plot was great", "a bad , long plot", "great", "bad film"]
    q = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    m.lexical = LexicalHead.fit(texts, q, ["great acting", "bad plot"], [1, 0], 0.5)
    rows = ROWS + [{"text": "bad bad plot"}]
    expected = m.predict_proba(rows)
    save_native(m, tmp_path / "a", labels=["neg", "pos"])
    cfg = json.loads((tmp_path / "a" / "list_config.json").read_text())
    assert cfg["lexical"] == {"file": "lexical.safetensors", "weight": 0.5, "vocabulary": len(m.lexical.vocabulary)}
    assert f"({adapters:,} parameters)" in (tmp_path / "a" / "README.md").read_text()  # the view's arrays are not
    clf = load_classifier(tmp_path / "a", device="cpu")
    assert clf.model.lexical is not None and clf.model.lexical.vocabulary == m.lexical.vocabulary
    torch.testing.assert_close(clf.predict_proba(rows), expected, atol=0, rtol=0)
    server = AdapterServer(str(tiny_dirs["bert"]), device="cpu")
    server.add("t", tmp_path / "a")
    torch.testing.assert_close(server.predict_proba("t", rows), expected, atol=1e-6, rtol=0)
    data = tmp_path / "in.csv"
    data.write_text("text\n" + "\n".join(r["text"].replace(",", "") for r in rows) + "\n")
    res = subprocess.run(
        [sys.executable, "-m", "list_core.predict", "--adapter", str(tmp_path / "a"), "--input", str(data), "--output", str(tmp_path / "o.csv")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    got = torch.tensor([[float(r["p_neg"]), float(r["p_pos"])] for r in csv.DictReader((tmp_path / "o.csv").open())])
    plain = [{"text": r["text"].replace(",", "")} for r in rows]
    torch.testing.assert_close(got, m.predict_proba(plain), atol=1e-5, rtol=0)
