"""The evaluation gate: a candidate version serves only if it beats the champion.

Champion and candidate are scored through the serving engine (a :class:`Scorer`) on the
adapter's fixed hold-out rows and on a fixed general "forgetting" set, in the same run; the
decision (:func:`decide`) is pure and explains itself with its numbers and reasons.
"""

from tuner.gate.checks import (
    CheckSpec,
    ExactMatch,
    JSONSchemaCheck,
    JSONValid,
    RegexCheck,
    TaskChecks,
)
from tuner.gate.decision import GateDecision, GatePolicy, Verdict, decide
from tuner.gate.forgetting import load_forgetting_set
from tuner.gate.scoring import EvalRow, GateScores, Scorer, Scores, compare, evaluate, rows_from_examples

__all__ = [
    "CheckSpec",
    "EvalRow",
    "ExactMatch",
    "GateDecision",
    "GatePolicy",
    "GateScores",
    "JSONSchemaCheck",
    "JSONValid",
    "RegexCheck",
    "Scorer",
    "Scores",
    "TaskChecks",
    "Verdict",
    "compare",
    "decide",
    "evaluate",
    "load_forgetting_set",
    "rows_from_examples",
]
