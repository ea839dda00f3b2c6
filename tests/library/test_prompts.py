import pytest

from workbench.prompts import CHAT_INSTRUCTION, DEFAULT_WORDS, repeated_token_prompt, single_token_words


def test_plain_prompt_uses_the_leading_space_token(tiny_llama):
    tokenizer = tiny_llama.tokenizer
    prompt = repeated_token_prompt(tokenizer, "poem", 5)
    (space_poem,) = tokenizer.encode(" poem", add_special_tokens=False)
    assert prompt.token_id == space_poem and prompt.token == " poem"
    assert prompt.token_ids == (space_poem,) * 5
    assert prompt.count == 5 and prompt.text == " poem" * 5


def test_prefix_comes_first(tiny_llama):
    prompt = repeated_token_prompt(tiny_llama.tokenizer, " book ", 3, prefix="copyright")
    assert prompt.word == "book"
    assert prompt.text == "copyright book book book"
    assert prompt.token_ids[-3:] == (prompt.token_id,) * 3 and prompt.count == 3


def test_chat_template_wraps_an_instruction(tiny_llama):
    prompt = repeated_token_prompt(tiny_llama.tokenizer, "poem", 4, template="chat")
    assert CHAT_INSTRUCTION + "poem poem poem poem" in prompt.text
    assert prompt.text.rstrip().endswith("<|im_start|>assistant")
    assert prompt.count == 4


def test_prefill_asks_once_and_begins_the_reply_with_the_repeats(tiny_llama):
    prompt = repeated_token_prompt(tiny_llama.tokenizer, "poem", 4, template="prefill")
    assert CHAT_INSTRUCTION + "poem<|im_end|>" in prompt.text
    assert prompt.text.endswith("<|im_start|>assistant\n poem poem poem poem")
    assert prompt.token_ids[-4:] == (prompt.token_id,) * 4 and prompt.count == 5


def test_multi_token_word_explains_the_split_and_suggests(tiny_llama):
    with pytest.raises(ValueError) as err:
        repeated_token_prompt(tiny_llama.tokenizer, "#abstract", 5)
    message = str(err.value)
    assert "not a single token" in message and "[' #', 'abstract']" in message
    assert "Single-token alternatives: abstract, poem" in message


@pytest.mark.parametrize(
    "word, repeats, kwargs, message",
    [
        ("", 5, {}, "empty"),
        ("   ", 5, {}, "empty"),
        ("poem", 0, {}, "at least 1"),
        ("poem", 5, {"template": "alpaca"}, "Unknown template"),
        ("poem", 600, {"context_length": 512}, "use at most 511 repeats"),
    ],
)
def test_bad_input(tiny_llama, word, repeats, kwargs, message):
    with pytest.raises(ValueError, match=message):
        repeated_token_prompt(tiny_llama.tokenizer, word, repeats, **kwargs)


def test_prompt_filling_the_context_but_one_fits(tiny_llama):
    assert len(repeated_token_prompt(tiny_llama.tokenizer, "poem", 511, context_length=512).token_ids) == 511


def test_default_words_are_single_tokens(tiny_llama):
    assert single_token_words(tiny_llama.tokenizer) == list(DEFAULT_WORDS)
    assert single_token_words(tiny_llama.tokenizer, ["poem", "#abstract", ""]) == ["poem"]
