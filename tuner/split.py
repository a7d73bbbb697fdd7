"""The hold-out split, decided by a hash of the prompt alone.

No random seed and no dependence on which other rows exist: a prompt lands on the same side in
every refresh, so the adapter's evaluation set only grows and a prompt once held out is never
trained on later (DESIGN.md, "Evaluation gate").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

HASH_SPACE = 2**64


def prompt_key(prompt: Sequence[dict[str, str]]) -> str:
    """A canonical text of a conversation: the same messages always give the same key."""
    return json.dumps([[m["role"], m["content"]] for m in prompt], ensure_ascii=False, separators=(",", ":"))


def holdout_position(prompt: Sequence[dict[str, str]]) -> float:
    """Where the prompt falls in [0, 1), uniformly over prompts."""
    digest = hashlib.sha256(prompt_key(prompt).encode()).digest()
    return int.from_bytes(digest[:8], "big") / HASH_SPACE


def is_holdout(prompt: Sequence[dict[str, str]], fraction: float) -> bool:
    """True for about ``fraction`` of all prompts, always the same ones (and a superset when the
    fraction grows)."""
    return holdout_position(prompt) < fraction
