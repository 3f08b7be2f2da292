"""list_core.data.drop_tokens: the noisy student's token dropout."""

import torch

from list_core.data import drop_tokens


def _batch(lengths, width, mask_pos):
    am = torch.zeros(len(lengths), width, dtype=torch.long)
    for b, n in enumerate(lengths):
        am[b, :n] = 1
    ids = torch.arange(len(lengths) * width).view(len(lengths), width)
    return {"input_ids": ids, "attention_mask": am, "mask_pos": torch.tensor(mask_pos)}


def test_no_dropout_returns_the_batch_unchanged():
    batch = _batch([5, 3], 6, [2, 1])
    assert drop_tokens(batch, 0.0, torch.Generator().manual_seed(0)) is batch


def test_drops_about_p_of_the_content_tokens_and_never_the_special_tokens_mask_slot_or_padding():
    n, width = 2000, 24
    lengths = [int(x) for x in torch.randint(6, width + 1, (n,), generator=torch.Generator().manual_seed(1))]
    mask_pos = [n_ // 2 for n_ in lengths]
    batch = _batch(lengths, width, mask_pos)
    out = drop_tokens(batch, 0.3, torch.Generator().manual_seed(2))
    am, before = out["attention_mask"], batch["attention_mask"]
    assert torch.equal(out["input_ids"], batch["input_ids"]) and torch.equal(out["mask_pos"], batch["mask_pos"])
    assert not (am > before).any()  # padding stays padding
    rows = torch.arange(n)
    assert (am[:, 0] == 1).all() and (am[rows, torch.tensor(lengths) - 1] == 1).all()
    assert (am[rows, torch.tensor(mask_pos)] == 1).all()
    content = sum(n_ - 3 for n_ in lengths)  # every real token but the two special ones and the mask slot
    dropped = int((before - am).sum())
    assert abs(dropped / content - 0.3) < 0.02


def test_a_row_keeps_one_content_token_and_short_rows_lose_nothing():
    batch = _batch([4, 2, 3], 4, [0, 0, 0])  # row 0: [CLS] a b [SEP]; row 1: [CLS] [SEP]; row 2: [CLS] a [SEP]
    for seed in range(20):
        am = drop_tokens(batch, 0.9, torch.Generator().manual_seed(seed))["attention_mask"]
        assert int(am[0, 1:3].sum()) >= 1
        assert am[1].tolist() == [1, 1, 0, 0] and am[2].tolist() == [1, 1, 1, 0]
