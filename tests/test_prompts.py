import pytest

from list_core.prompts import Prompt, PromptError, encode, label_word_ids


def test_render_and_slots():
    p = Prompt("{text} It was {mask} .", ("terrible", "great"))
    assert not p.is_pair and p.text_slots == ("text",)
    assert p.render(text="Fine film.") == "Fine film. It was [MASK] ."
    pair = Prompt("{text_a} ? {mask} , {text_b}", ("Yes", "No"))
    assert pair.is_pair and pair.text_slots == ("text_a", "text_b")


@pytest.mark.parametrize(
    "template, match",
    [
        ("{text} It was great .", "exactly one"),
        ("{text} {mask} {mask}", "exactly one"),
        ("It was {mask} .", "must use"),
        ("{text_a} {mask}", "must use"),
        ("{text} {text} {mask}", "more than once"),
        ("   ", "empty"),
    ],
)
def test_bad_templates(template, match):
    with pytest.raises(PromptError, match=match):
        Prompt(template, ("a", "b"))


def test_bad_label_words():
    with pytest.raises(PromptError, match="duplicate"):
        Prompt("{text} {mask}", ("good", "good"))
    with pytest.raises(PromptError, match="at least two"):
        Prompt("{text} {mask}", ("good",))


def test_wordpiece_label_words(bert):
    tok = bert.tokenizer
    ids = label_word_ids(Prompt("{text} It was {mask} .", ("terrible", "great")), tok)
    assert tok.convert_ids_to_tokens(ids) == ["terrible", "great"]
    with pytest.raises(PromptError, match=r"'unfathomableness' is \d tokens.*\['un"):
        label_word_ids(Prompt("{text} It was {mask} .", ("great", "unfathomableness")), tok)


def test_bpe_label_words_take_leading_space_form(roberta):
    tok = roberta.tokenizer
    ids = label_word_ids(Prompt("{text} It was {mask} .", ("bad", "great")), tok)
    assert tok.convert_ids_to_tokens(ids) == ["Ġbad", "Ġgreat"]
    # with no space before the mask, the bare form is used
    bare = label_word_ids(Prompt("{text} It was:{mask} .", ("bad", "great")), tok)
    assert tok.convert_ids_to_tokens(bare) == ["bad", "great"]
    with pytest.raises(PromptError, match=r"'movie' is 3 tokens for this tokenizer: \['Ġ', 'mo', 'vie'\]"):
        label_word_ids(Prompt("{text} It was {mask} .", ("bad", "movie")), tok)


@pytest.mark.parametrize("fixture", ["bert", "roberta"])
def test_encoding_matches_whole_string_tokenisation(request, fixture):
    bb = request.getfixturevalue(fixture)
    tok = bb.tokenizer
    p = Prompt("{text} It was {mask} .", ("bad", "great"))
    ids, pos = encode(p, tok, [{"text": "the movie was great"}], max_length=64)
    # the mask absorbs the space before it (RoBERTa's <mask> is lstrip); the label word carries that space
    glue = "" if fixture == "roberta" else " "
    whole = tok(f"the movie was great It was{glue}{tok.mask_token} .")["input_ids"]
    assert ids[0] == whole
    assert ids[0][pos[0]] == tok.mask_token_id


def test_truncation_keeps_mask_and_template(bert):
    tok = bert.tokenizer
    p = Prompt("{text} It was {mask} .", ("bad", "great"))
    long = " ".join(["word"] * 500)
    ids, pos = encode(p, tok, [{"text": long}, {"text": "short"}], max_length=32)
    assert len(ids[0]) == 32 and len(ids[1]) < 32
    assert ids[0][pos[0]] == tok.mask_token_id
    assert tok.decode(ids[0][-5:]) == "it was [MASK]. [SEP]"


def test_pair_truncation_cuts_longest_first(bert):
    tok = bert.tokenizer
    p = Prompt("{text_a} ? {mask} , {text_b}", ("yes", "no"))
    a, b = " ".join(["alpha"] * 100), "beta beta"
    ids, pos = encode(p, tok, [{"text_a": a, "text_b": b}], max_length=24)
    assert len(ids[0]) == 24 and ids[0][pos[0]] == tok.mask_token_id
    assert tok.decode(ids[0]).endswith(", beta beta [SEP]")


def test_max_length_too_small_for_template(bert):
    p = Prompt("{text} this is a rather long template with many words {mask} .", ("bad", "great"))
    with pytest.raises(PromptError, match="leaves no room"):
        encode(p, bert.tokenizer, [{"text": "x"}], max_length=8)
