"""Token lengths with the base model's own tokenizer and chat template.

Counted as training will see the text: the prompt with the chat template applied (role markers,
BOS and the generation prompt included), the completion on its own. Characters or words would
misjudge a byte-level BPE by a factor of several.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def load_base_tokenizer(base_model: str) -> PreTrainedTokenizerBase:
    """The tokenizer of the served base model: a local folder, or a hub id already in the cache."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_model)


def prompt_tokens(tokenizer: PreTrainedTokenizerBase, prompt: Sequence[dict[str, str]]) -> int:
    ids = tokenizer.apply_chat_template(list(prompt), add_generation_prompt=True, tokenize=True, return_dict=False)
    return len(ids)


def completion_tokens(tokenizer: PreTrainedTokenizerBase, completion: str) -> int:
    return len(tokenizer(completion, add_special_tokens=False)["input_ids"])


def too_long(
    tokenizer: PreTrainedTokenizerBase,
    prompt: Sequence[dict[str, str]],
    completion: str,
    *,
    max_prompt_tokens: int,
    max_completion_tokens: int,
) -> bool:
    return (
        completion_tokens(tokenizer, completion) > max_completion_tokens
        or prompt_tokens(tokenizer, prompt) > max_prompt_tokens
    )
