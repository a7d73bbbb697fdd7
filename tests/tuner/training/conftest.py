"""Dataset folders for the training tests, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tuner.training.factories import Example, routing_task, write_dataset


@pytest.fixture(scope="session")
def routing_split() -> tuple[list[Example], list[Example]]:
    return routing_task(n_train=200, n_holdout=40, seed=0)


@pytest.fixture(scope="session")
def routing_dataset(tmp_path_factory: pytest.TempPathFactory, routing_split: tuple[list, list]) -> Path:
    """200 training and 40 held-out examples of the routing task."""
    train, holdout = routing_split
    return write_dataset(tmp_path_factory.mktemp("routing") / "data", train, holdout)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 training examples and no hold-out: for runs that only need steps to happen."""
    train, _ = routing_task(n_train=16, n_holdout=0, seed=1)
    return write_dataset(tmp_path_factory.mktemp("small") / "data", train)
