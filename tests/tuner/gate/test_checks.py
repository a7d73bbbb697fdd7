"""Task checks: each type passes and fails where it should, and bad configurations are refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tuner.gate import TaskChecks

SCHEMA = {
    "type": "object",
    "properties": {"label": {"enum": ["yes", "no"]}},
    "required": ["label"],
    "additionalProperties": False,
}

CASES = [
    # (check, output, reference, passes)
    ({"type": "exact_match"}, "billing", "billing", True),
    ({"type": "exact_match"}, "  billing\n", "billing", True),
    ({"type": "exact_match"}, "Billing", "billing", False),
    ({"type": "exact_match", "case_sensitive": False}, "Billing", "billing", True),
    ({"type": "exact_match", "strip": False}, "billing ", "billing", False),
    ({"type": "exact_match"}, "billing team", "billing", False),
    ({"type": "json_valid"}, '{"a": 1}', "", True),
    ({"type": "json_valid"}, "[1, 2]", "", True),
    ({"type": "json_valid"}, '{"a": 1', "", False),
    ({"type": "json_valid"}, "yes", "", False),
    ({"type": "json_schema", "schema": SCHEMA}, '{"label": "no"}', "", True),
    ({"type": "json_schema", "schema": SCHEMA}, '{"label": "maybe"}', "", False),
    ({"type": "json_schema", "schema": SCHEMA}, '{"label": "no", "x": 1}', "", False),
    ({"type": "json_schema", "schema": SCHEMA}, "not json", "", False),
    ({"type": "regex", "pattern": r"(billing|security)"}, " billing ", "", True),
    ({"type": "regex", "pattern": r"(billing|security)"}, "billing!", "", False),
    ({"type": "regex", "pattern": r"\d{3}", "full_match": False}, "call 555 now", "", True),
    ({"type": "regex", "pattern": r"\d{3}", "full_match": False}, "call now", "", False),
]


@pytest.mark.parametrize(("spec", "output", "reference", "passes"), CASES)
def test_check(spec: dict, output: str, reference: str, passes: bool) -> None:
    [(_, check)] = TaskChecks.from_adapter({"checks": [spec]}).named()
    assert check.passes(output, reference) is passes


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"checks": [{"type": "regex", "pattern": "("}]}, "not a valid regular expression"),
        ({"checks": [{"type": "json_schema", "schema": {"type": "nonsense"}}]}, "not a valid JSON schema"),
        ({"checks": [{"type": "contains"}]}, "does not match any of the expected tags"),
        ({"checks": [{"type": "exact_match", "extra": 1}]}, "Extra inputs are not permitted"),
        ({"max_tokens": 0}, "greater than or equal to 1"),
        ({"checks": [{"type": "regex", "pattern": "a", "name": "x"}, {"type": "exact_match", "name": "x"}]}, "unique"),
    ],
)
def test_bad_configurations_are_refused(config: dict, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        TaskChecks.from_adapter(config)


def test_names_are_unique_and_default_to_the_type() -> None:
    checks = TaskChecks.from_adapter(
        {
            "checks": [
                {"type": "regex", "pattern": "a"},
                {"type": "regex", "pattern": "b"},
                {"type": "exact_match", "name": "team"},
            ]
        }
    )
    assert [name for name, _ in checks.named()] == ["regex", "regex_2", "team"]


def test_no_checks() -> None:
    assert TaskChecks.from_adapter({}).named() == [] and TaskChecks.from_adapter(None).max_tokens == 16
