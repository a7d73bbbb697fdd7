"""Curation fixtures: the demo base model's tokenizer, loaded once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tuner.lengths import load_base_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@pytest.fixture(scope="session")
def tokenizer(demo_model: Path) -> PreTrainedTokenizerBase:
    return load_base_tokenizer(str(demo_model))
