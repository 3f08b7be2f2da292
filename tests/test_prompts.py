import pytest

from list_core.prompts import Prompt, PromptError, encode, label_word_ids, starting_words


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


def test_starting_words_are_the_class_names():
    """Before the user writes label words they start as the class names, as a reader would say them."""
    labels = ["Positive", "NEGATIVE", "not_entailment", "sci-fi", "USA"]
    assert starting_words(labels, "{text} It was {mask} .") == [
        "positive",
        "NEGATIVE",
        "not entailment",
        "sci-fi",
        "USA",
    ]


def test_starting_words_for_an_mlm_head_leave_names_of_several_tokens_blank(bert, roberta):
    """An MLM head reads one token per label word: a class name that is not one token starts blank (the page then
    asks for a word) rather than as an error on a page the user has not touched yet."""
    assert starting_words(["great", "unfathomableness"], "{text} It was {mask} .", bert.tokenizer) == ["great", ""]
    # BPE: the leading-space form when the mask follows a space ("Ġbad" is one token, "movie" is three)
    assert starting_words(["bad", "movie"], "{text} It was {mask} .", roberta.tokenizer) == ["bad", ""]


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


def test_verbalisers_with_several_words_and_descriptions():
    p = Prompt("{text} It was {mask} .", (("terrible", "bad"), "great"), ("a negative review", ""))
    assert p.words == (("terrible", "bad"), ("great",)) and p.num_classes == 2
    assert p.verbaliser_sentences() == [["It was terrible .", "It was bad .", "a negative review"], ["It was great ."]]
    assert Prompt.from_json(p.to_json()) == p
    topic = Prompt("[ Topic : {mask} ] {text}", ("sports", "politics"))
    assert topic.verbaliser_sentences() == [["[ Topic : sports ]"], ["[ Topic : politics ]"]]
    assert Prompt("{text} {mask}", ("a", "b"), ("", "  ")).descriptions is None  # all empty: none


@pytest.mark.parametrize(
    "words, descriptions, match",
    [
        ((("good", "great"), ("bad", "great")), None, r"duplicate label words: \['great'\]"),
        ((("good", "good"), "bad"), None, "lists a label word twice"),
        (((), "bad"), None, "class 0 has no label word"),
        ((("good", " "), "bad"), None, "of class 0 is empty"),
        (("good", "bad"), ("only one",), "one description"),
        ("good", None, "at least two classes"),
    ],
)
def test_bad_verbalisers_name_the_problem(words, descriptions, match):
    with pytest.raises(PromptError, match=match):
        Prompt("{text} It was {mask} .", words, descriptions)


def test_mlm_head_averages_the_words_logits(bert):
    import torch

    from list_core.config import AdapterConfig
    from list_core.data import collate
    from list_core.model import ListModel

    prompt = Prompt("{text} It was {mask} .", (("bad", "terrible"), ("great", "good", "fine")))
    m = ListModel(bert, prompt, head="prompt", adapter=AdapterConfig(bottleneck=2)).eval()
    rows = [{"text": "a fine film"}, {"text": "bad acting"}]
    enc = m.encode(rows)
    b = collate(enc, [0, 1], m.pad_id, m.device)
    ids = label_word_ids(prompt, bert.tokenizer)
    assert len(ids) == 5
    with torch.no_grad():
        ours = m(**b)
    # the untrained head is the MLM head itself: the MLM's own logits of the five words, with the model's adapters
    with torch.no_grad(), bert.activate(m.adapter_name):
        adapted = bert.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    words = adapted[torch.arange(2), b["mask_pos"]][:, ids]
    expected = torch.stack([words[:, :2].mean(-1), words[:, 2:].mean(-1)], -1)
    assert torch.allclose(ours, expected, atol=1e-4)


def test_similarity_prototypes_average_the_verbaliser_embeddings(tiny_headless_dir):
    import torch

    from list_core.backbone import load_backbone
    from list_core.data import Encoded
    from list_core.model import ListModel

    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    prompt = Prompt("{text} It was {mask} .", (("bad", "awful"), "great"), ("", "a positive review"))
    m = ListModel(bb, prompt, head="auto", adapter=None)
    assert m.head_kind == "similarity" and m.plain_input
    sentences = [{"text": s} for s in ("It was bad .", "It was awful .", "It was great .", "a positive review")]
    x = m.frozen_features(Encoded.of(prompt, bb.tokenizer, sentences, 128, plain=True))
    expected = torch.nn.functional.normalize(torch.stack([x[:2].mean(0), x[2:].mean(0)]), dim=-1)
    assert torch.allclose(m.head.prototypes.detach(), expected, atol=1e-5)
    # zero-shot = argmax of the cosine between the text alone and each prototype
    rows = [{"text": "great stuff"}, {"text": "bad stuff"}]
    feats = m.frozen_features(m.encode(rows))
    assert torch.allclose(m.logits(m.encode(rows)), m.head.log_scale.exp() * (feats @ expected.T), atol=1e-4)


def test_a_huge_text_is_cut_before_tokenizing(tiny_dirs):
    """Issue 13.9: one 10 MB text cost 7.7 s and 1.2 GB per tokenization. Texts are cut at max_length * 32
    characters before the tokenizer sees them, with the same ids as the whole text."""
    from transformers import AutoTokenizer

    from list_core.prompts import MAX_CHARS_PER_TOKEN, encode

    class Spy:  # the tokenizer, noting the longest text it was given
        def __init__(self, tok):
            self.tok, self.longest = tok, 0

        def __getattr__(self, name):
            return getattr(self.tok, name)

        def __call__(self, texts, **kw):
            self.longest = max([self.longest, *(len(t) for t in ([texts] if isinstance(texts, str) else texts))])
            return self.tok(texts, **kw)

    tok = Spy(AutoTokenizer.from_pretrained(str(tiny_dirs["bert"])))
    prompt = Prompt("{text} It was {mask} .", ("bad", "great"))
    words = ["good", "bad", "movie", "film", "story", "acting", "great", "awful", "plot"]
    huge = " ".join(words[i % len(words)] for i in range(1_000_000))  # about 5 MB
    ids, _ = encode(prompt, tok, [{"text": huge}], 64)
    assert tok.longest <= 64 * MAX_CHARS_PER_TOKEN + 1
    assert ids == encode(prompt, tok.tok, [{"text": huge[:20_000]}], 64)[0] and len(ids[0]) == 64


def test_pair_prompt_prototypes_embed_the_verbaliser_sentences(tiny_headless_dir):
    """A pair template's verbalisers ("? Yes ," / "? No ,") were encoded as an empty pair (the prompt's text_a and
    text_b slots read from rows that only had "text"): every class got the same prototype and the zero-shot prompt
    predicted one class for everything."""
    import torch

    from list_core.backbone import load_backbone
    from list_core.data import Encoded
    from list_core.model import ListModel

    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    pair = ListModel(bb, Prompt("{text_a} ? {mask} , {text_b}", ("Yes", "No")), head="auto", adapter=None)
    single = Prompt("{text} It was {mask} .", ("a", "b"))
    x = pair.frozen_features(Encoded.sentences(bb.tokenizer, ["? Yes ,", "? No ,"], 128))
    expected = torch.nn.functional.normalize(x, dim=-1)
    got = pair.verbaliser_prototypes()
    assert torch.allclose(got, expected, atol=1e-5) and not torch.allclose(got[0], got[1], atol=1e-3)
    plain = pair.frozen_features(Encoded.of(single, bb.tokenizer, [{"text": "? Yes ,"}], 128, plain=True))
    assert torch.allclose(x[0], plain[0], atol=1e-6)  # a sentence alone, as a single-text prompt reads it
