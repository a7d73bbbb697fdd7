"""Exact and near-duplicate removal with MinHash LSH (``datasketch``).

Fifty copies of one question would teach the adapter that question fifty times over, and a copy
on each side of the hold-out split would let the evaluation score memorisation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

SHINGLE_CHARS = 5
"""Character n-grams rather than words: prompts are short, and a changed digit or typo should
move the similarity a little, not by a whole word's share."""


def normalize(text: str) -> str:
    return " ".join(text.casefold().split())


def shingles(text: str, size: int = SHINGLE_CHARS) -> set[bytes]:
    text = normalize(text)
    if len(text) <= size:
        return {text.encode()}
    return {text[i : i + size].encode() for i in range(len(text) - size + 1)}


CANDIDATE_SLACK = 0.8
"""LSH looks for candidates at this share of the threshold: its banding misses some pairs just
above the threshold, and each candidate's exact similarity is checked anyway."""


def jaccard(a: set[bytes], b: set[bytes]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def deduplicate(
    items: Sequence[T], *, text: Callable[[T], str], threshold: float, num_perm: int = 128
) -> tuple[list[T], list[T]]:
    """(kept, dropped): each item whose ``text`` is a copy or near copy of an earlier item's is dropped.

    Put the item to keep first: of each group of near copies, the earliest in ``items`` survives.
    Near copies are those whose character 5-gram sets have a Jaccard similarity of at least
    ``threshold``. MinHash LSH finds the candidates without comparing every pair; the similarity
    of each candidate is then computed exactly, so MinHash's estimation noise decides nothing.
    """
    from datasketch import MinHash, MinHashLSH

    exact: set[bytes] = set()
    lsh = MinHashLSH(threshold=threshold * CANDIDATE_SLACK, num_perm=num_perm) if threshold < 1.0 else None
    kept_shingles: dict[int, set[bytes]] = {}
    kept: list[T] = []
    dropped: list[T] = []
    for index, item in enumerate(items):
        content = normalize(text(item))
        digest = hashlib.sha256(content.encode()).digest()
        if digest in exact:
            dropped.append(item)
            continue
        if lsh is not None:
            grams = shingles(content)
            signature = MinHash(num_perm=num_perm)
            signature.update_batch(grams)
            if any(jaccard(grams, kept_shingles[key]) >= threshold for key in lsh.query(signature)):
                dropped.append(item)
                continue
            lsh.insert(index, signature)
            kept_shingles[index] = grams
        exact.add(digest)
        kept.append(item)
    return kept, dropped
