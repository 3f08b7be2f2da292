import pytest

from list_core.backbone import adapter_targets, load_backbone, resolve_backbone_path
from list_core.heads import choose_head

from .conftest import FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_loads_every_family_with_pretrained_head(tiny_dirs, family):
    bb = load_backbone(str(tiny_dirs[family]), device="cpu")
    assert bb.family == family
    assert bb.head_pretrained and bb.missing_head_keys == ()
    assert not any(p.requires_grad for p in bb.model.parameters())
    assert len(adapter_targets(bb)) == 4  # two blocks, two adapters each


def test_headless_checkpoint_is_detected_and_auto_picks_similarity(tiny_headless_dir):
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    assert not bb.head_pretrained
    assert any(k.startswith("cls.predictions") for k in bb.missing_head_keys)
    kind, why = choose_head("auto", bb)
    assert kind == "similarity" and "newly initialised" in why


def test_auto_head_prompt_when_pretrained(bert):
    assert choose_head("auto", bert)[0] == "prompt"


def test_default_backbone_resolves_offline(monkeypatch):
    monkeypatch.delenv("LIST_BACKBONE", raising=False)
    path = resolve_backbone_path(None)
    assert path.endswith("model")
    monkeypatch.setenv("LIST_BACKBONE", "/some/where")
    assert resolve_backbone_path(None) == "/some/where"


def test_missing_local_folder_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r"backbone folder .*nope does not exist"):
        load_backbone(str(tmp_path / "nope"), device="cpu")


def test_a_hub_id_offline_fails_at_once_with_what_to_do(monkeypatch):
    """Issue 12.9: a hub-id backbone offline spun about 4 minutes and ended with a wrong 'install sentencepiece'
    error. Not a folder, not cached, Hub unreachable: one clear error before any download attempt."""
    import time

    import list_core.backbone as backbone

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(backbone, "_hub_reachable", lambda timeout_s=3.0: False)
    monkeypatch.setattr(backbone.AutoModelForMaskedLM, "from_pretrained",
                        lambda *a, **k: pytest.fail("tried to load"))  # fmt: skip
    t = time.monotonic()
    with pytest.raises(OSError, match="cannot be reached from here .* give its folder"):
        backbone.load_backbone("some-org/some-model")
    assert time.monotonic() - t < 5
