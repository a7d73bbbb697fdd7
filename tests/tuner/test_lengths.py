"""Token lengths with the demo base model's byte-level BPE and chat template."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from tuner.lengths import completion_tokens, prompt_tokens, too_long

PROMPT = [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Is the sky blue?"}]


def test_prompt_tokens_include_the_chat_template(tokenizer: PreTrainedTokenizerBase) -> None:
    content_only = sum(len(tokenizer(m["content"], add_special_tokens=False)["input_ids"]) for m in PROMPT)
    counted = prompt_tokens(tokenizer, PROMPT)
    # BOS, role markers, end markers and the generation prompt all take room in the context.
    assert counted > content_only + 4
    assert counted == len(tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, return_dict=False))


def test_completion_tokens_have_no_special_tokens(tokenizer: PreTrainedTokenizerBase) -> None:
    assert completion_tokens(tokenizer, "") == 0
    assert completion_tokens(tokenizer, "yes") == len(tokenizer.encode("yes", add_special_tokens=False))


def test_bounds(tokenizer: PreTrainedTokenizerBase) -> None:
    n_prompt = prompt_tokens(tokenizer, PROMPT)
    n_answer = completion_tokens(tokenizer, "Yes, it is.")
    fits = {"max_prompt_tokens": n_prompt, "max_completion_tokens": n_answer}
    assert not too_long(tokenizer, PROMPT, "Yes, it is.", **fits)
    assert too_long(tokenizer, PROMPT, "Yes, it is.", **{**fits, "max_prompt_tokens": n_prompt - 1})
    assert too_long(tokenizer, PROMPT, "Yes, it is.", **{**fits, "max_completion_tokens": n_answer - 1})
