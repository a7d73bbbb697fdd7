"""Exact and near-duplicate removal with MinHash LSH."""

from __future__ import annotations

import random

import pytest

from tests.tuner.traffic import BASE, near_copies
from tuner.dedup import deduplicate, normalize, shingles

DISTINCT = [
    "How do I reset my password?",
    "Can I get a refund for an annual plan?",
    "The app crashes when I open the settings screen.",
    "Which countries do you ship to?",
    "My invoice shows the wrong VAT number.",
]


def test_fifty_near_copies_collapse_to_the_first() -> None:
    items = near_copies(50) + DISTINCT
    kept, dropped = deduplicate(items, text=str, threshold=0.85)
    assert kept == [items[0], *DISTINCT]
    assert len(dropped) == 49


def test_exact_copies_collapse_even_without_lsh() -> None:
    kept, dropped = deduplicate(["Hello  World", "hello world", "other"], text=str, threshold=1.0)
    assert kept == ["Hello  World", "other"]
    assert dropped == ["hello world"]


def test_the_threshold_decides_what_counts_as_a_copy() -> None:
    pair = [BASE, BASE.replace("tracking page", "status page")]
    assert len(deduplicate(pair, text=str, threshold=0.6)[0]) == 1
    assert len(deduplicate(pair, text=str, threshold=0.99)[0]) == 2


def test_prompts_sharing_an_instruction_are_not_copies() -> None:
    # A task's fixed instruction with different tickets: distinct examples, not duplicates.
    prompts = [f"Route this ticket to a team: my {word} is broken again today" for word in ("invoice", "password")]
    prompts += ["Route this ticket to a team: the parcel was late", "Route this ticket to a team: screen flickers"]
    assert deduplicate(prompts, text=str, threshold=0.85)[0] == prompts


def test_a_templated_task_keeps_its_examples() -> None:
    # Ticket routing: one instruction, four filler words and a keyword that decides the answer.
    rng = random.Random(0)
    filler = ("my", "the", "a", "problem", "with", "help", "please", "today", "again", "urgent", "question", "about")
    keywords = ("invoice", "refund", "password", "login", "parcel", "delivery", "screen", "battery")
    prompts = []
    for _ in range(300):
        words = rng.sample(filler, 4)
        words.insert(rng.randrange(5), rng.choice(keywords))
        prompts.append("Route this ticket to a team: " + " ".join(words))
    distinct = list(dict.fromkeys(prompts))
    kept, dropped = deduplicate(prompts, text=str, threshold=0.85)
    assert kept == distinct and len(dropped) == len(prompts) - len(distinct)


def test_items_are_kept_whole() -> None:
    items = [("a", BASE), ("b", BASE + " "), ("c", "different")]
    kept, dropped = deduplicate(items, text=lambda item: item[1], threshold=0.85)
    assert kept == [("a", BASE), ("c", "different")] and dropped == [("b", BASE + " ")]


@pytest.mark.parametrize(("text", "expected"), [("", {b""}), ("Hi", {b"hi"}), ("abcdef", {b"abcde", b"bcdef"})])
def test_shingles(text: str, expected: set[bytes]) -> None:
    assert shingles(text) == expected


def test_normalize() -> None:
    assert normalize("  Hello\n\tWORLD ") == "hello world"
