"""The fixed general "forgetting" set shipped with the project.

Short general prompts with plain answers, unrelated to any adapter's task. An adapter that
learns its task by wrecking the base model's general behaviour raises its NLL here; the gate
refuses a rise past its tolerance. The set never changes with traffic, so refreshes compare on
the same ground.
"""

from __future__ import annotations

import json
from importlib import resources

from tuner.gate.scoring import EvalRow

FORGETTING_FILE = "forgetting.jsonl"


def load_forgetting_set() -> list[EvalRow]:
    """The shipped rows, in file order (each line ``{"prompt": str, "answer": str}``)."""
    text = resources.files("tuner.gate").joinpath(FORGETTING_FILE).read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        if line.strip():
            record = json.loads(line)
            rows.append(EvalRow(prompt=[{"role": "user", "content": record["prompt"]}], answer=record["answer"]))
    return rows
