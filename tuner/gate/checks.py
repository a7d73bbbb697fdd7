"""Task checks on greedy answers, configured per adapter (``Adapter.task_checks``).

The stored form is ``{"checks": [{"type": "exact_match"}, {"type": "regex", "pattern": "..."}],
"max_tokens": 16}``. Each check looks at the model's answer (and, for exact match, at the
reference answer of the row) and passes or fails; the gate compares pass rates.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

import jsonschema
from pydantic import BaseModel, Field, field_validator, model_validator


class _Check(BaseModel):
    model_config = {"extra": "forbid"}

    name: str | None = Field(default=None, min_length=1, max_length=64)
    """How the check is reported; default: its type (numbered when a type repeats)."""


class ExactMatch(_Check):
    type: Literal["exact_match"] = "exact_match"
    case_sensitive: bool = True
    strip: bool = True
    """Ignore leading and trailing whitespace on both sides."""

    def passes(self, output: str, reference: str) -> bool:
        if self.strip:
            output, reference = output.strip(), reference.strip()
        if not self.case_sensitive:
            output, reference = output.casefold(), reference.casefold()
        return output == reference


def _parse_json(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except ValueError:
        return False, None


class JSONValid(_Check):
    type: Literal["json_valid"] = "json_valid"

    def passes(self, output: str, reference: str) -> bool:
        return _parse_json(output)[0]


class JSONSchemaCheck(_Check):
    type: Literal["json_schema"] = "json_schema"
    json_schema: dict[str, Any] = Field(alias="schema")
    """A JSON Schema (any draft ``jsonschema`` knows; the ``$schema`` key picks it)."""

    model_config = {"extra": "forbid", "populate_by_name": True}

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            jsonschema.validators.validator_for(value).check_schema(value)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"not a valid JSON schema: {exc.message}") from None
        return value

    def passes(self, output: str, reference: str) -> bool:
        ok, document = _parse_json(output)
        if not ok:
            return False
        validator = jsonschema.validators.validator_for(self.json_schema)(self.json_schema)
        return validator.is_valid(document)


class RegexCheck(_Check):
    type: Literal["regex"] = "regex"
    pattern: str = Field(min_length=1, max_length=1000)
    full_match: bool = True
    """The whole (stripped) answer must match; otherwise a match anywhere passes."""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    def passes(self, output: str, reference: str) -> bool:
        compiled = re.compile(self.pattern)
        return bool(compiled.fullmatch(output.strip()) if self.full_match else compiled.search(output))


CheckSpec = Annotated[ExactMatch | JSONValid | JSONSchemaCheck | RegexCheck, Field(discriminator="type")]


class TaskChecks(BaseModel):
    """An adapter's checks, as stored in ``Adapter.task_checks``."""

    model_config = {"extra": "forbid"}

    checks: list[CheckSpec] = Field(default_factory=list, max_length=32)
    max_tokens: int = Field(default=16, ge=1, le=4096)
    """Greedy tokens generated per row for the checks. With the demo's byte-level BPE a one-word
    answer takes up to ~8 tokens (DESIGN.md)."""

    @model_validator(mode="after")
    def _unique_names(self) -> TaskChecks:
        self.named()
        return self

    @classmethod
    def from_adapter(cls, task_checks: dict[str, Any] | None) -> TaskChecks:
        """Parse ``Adapter.task_checks``; an empty dict means no checks."""
        return cls.model_validate(task_checks or {})

    def named(self) -> list[tuple[str, CheckSpec]]:
        """(report name, check), names unique: ``regex``, ``regex_2``, ... unless named."""
        explicit = [check.name for check in self.checks if check.name]
        if len(set(explicit)) != len(explicit):
            raise ValueError("task check names must be unique")
        seen: dict[str, int] = {}
        result = []
        for check in self.checks:
            name = check.name
            if name is None:
                seen[check.type] = seen.get(check.type, 0) + 1
                name = check.type if seen[check.type] == 1 else f"{check.type}_{seen[check.type]}"
            result.append((name, check))
        if len({name for name, _ in result}) != len(result):
            raise ValueError("task check names must be unique")
        return result
