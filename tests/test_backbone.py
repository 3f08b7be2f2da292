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


def test_threads_that_load_at_once_all_get_a_working_backbone(tiny_dirs, tiny_headless_dir):
    """The worker's two lanes load backbones in threads of one process. Two loads at once both failed ("Cannot copy
    out of meta tensor": transformers builds on the meta device through process-wide state), and a training run
    and a prompt scoring started together were both lost. Loads take turns."""
    import threading

    paths = [str(tiny_dirs["bert"]), str(tiny_headless_dir), str(tiny_dirs["roberta"]), str(tiny_headless_dir)]
    start, got = threading.Barrier(len(paths)), {}

    def load(i: int) -> None:
        start.wait(timeout=30)
        try:
            bb = load_backbone(paths[i], device="cpu")
            got[i] = all(not p.is_meta for p in bb.model.parameters())
        except Exception as e:  # noqa: BLE001 - the failure is what this test reports
            got[i] = repr(e)

    threads = [threading.Thread(target=load, args=(i,)) for i in range(len(paths))]
    [t.start() for t in threads]
    [t.join(120) for t in threads]
    assert got == dict.fromkeys(range(len(paths)), True)
