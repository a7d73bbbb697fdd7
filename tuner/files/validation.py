"""Line-by-line checks of OpenAI's chat fine-tuning format (JSONL, one conversation a line).

A line is ``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}`` with at
least one user message and an assistant message last; other keys of a line or a message (OpenAI's
``weight``, ``name``) are ignored. Tools and function calling are refused, since training does not
support them. Every bad line is counted and the first few are named, so a client can fix its file
in one round; faults of the whole file (not UTF-8, binary, too large) stop at the first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from tuner.exceptions import InvalidTrainingFile

ROLES = ("system", "user", "assistant")
TOOL_KEYS = ("tools", "functions")
TOOL_MESSAGE_KEYS = ("tool_calls", "function_call", "tool_call_id")
MAX_REPORTED_LINES = 5
BOM = "\ufeff"


@dataclass(frozen=True)
class FileLimits:
    """What one training file may hold."""

    max_bytes: int
    max_lines: int
    """Most examples (non-empty lines)."""
    max_line_bytes: int = 4 * 1024 * 1024
    max_messages: int = 1024
    """Most messages in one example."""
    max_example_chars: int = 1_000_000
    """Most characters of content in one example, all messages together."""


Message = dict[str, str]


class LineError(ValueError):
    """One example breaks the format (collected, then reported together)."""


class FileError(ValueError):
    """The file as a whole cannot be read as JSONL text (reported at once)."""


def _lines(stream: BinaryIO, limits: FileLimits) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) per line, bytes None for one over ``max_line_bytes`` (skipped
    without holding it in memory)."""
    number = 0
    while True:
        line = stream.readline(limits.max_line_bytes + 1)
        if not line:
            return
        number += 1
        if len(line) > limits.max_line_bytes and not line.endswith(b"\n"):
            while (rest := stream.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            yield number, None
            continue
        yield number, line


def _text(number: int, raw: bytes) -> str:
    if b"\x00" in raw:
        raise FileError(f"Invalid file format: line {number} holds NUL bytes; upload UTF-8 text, not a binary file.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FileError(f"Invalid file format: line {number} is not UTF-8 text; save the file as UTF-8.") from None
    return text.removeprefix(BOM) if number == 1 else text


def _message(index: int, message: Any) -> Message:
    where = f"message {index + 1}"
    if not isinstance(message, dict):
        raise LineError(f"{where} is not a JSON object")
    if any(key in message for key in TOOL_MESSAGE_KEYS) or message.get("role") in ("tool", "function"):
        raise LineError("tools and function calling are not supported")
    role, content = message.get("role"), message.get("content")
    if not isinstance(role, str):
        raise LineError(f"{where} has no role (system, user or assistant)")
    if role not in ROLES:
        raise LineError(f"{where} has role {role[:32]!r} (expected system, user or assistant)")
    if isinstance(content, list):
        raise LineError(f"{where} has content parts; only string content is supported")
    if not isinstance(content, str) or not content.strip():
        raise LineError(f"{where} has no content (a non-empty string)")
    if "\x00" in content:
        raise LineError(f"{where} holds a NUL character")
    try:
        content.encode("utf-8")
    except UnicodeEncodeError:
        raise LineError(f"{where} holds an unpaired surrogate (\\ud800-\\udfff)") from None
    return {"role": role, "content": content}


def parse_example(text: str, limits: FileLimits) -> list[Message]:
    """The conversation of one line, each message exactly ``{"role", "content"}``; else
    :class:`LineError` saying why."""
    try:
        line = json.loads(text)
    except RecursionError:
        raise LineError("not valid JSON (nested too deeply)") from None
    except ValueError:
        raise LineError("not valid JSON") from None
    if not isinstance(line, dict):
        raise LineError("not a JSON object")
    if any(key in line for key in TOOL_KEYS):
        raise LineError("tools and function calling are not supported")
    raw = line.get("messages")
    if not isinstance(raw, list):
        raise LineError("no 'messages' list")
    if not raw:
        raise LineError("'messages' is empty")
    if len(raw) > limits.max_messages:
        raise LineError(f"more than {limits.max_messages} messages")
    messages = [_message(i, m) for i, m in enumerate(raw)]
    if sum(len(m["content"]) for m in messages) > limits.max_example_chars:
        raise LineError(f"over {limits.max_example_chars} characters of content")
    if not any(m["role"] == "user" for m in messages):
        raise LineError("no user message")
    if messages[-1]["role"] != "assistant":
        raise LineError("the last message must be from the assistant")
    return messages


def _report(errors: list[tuple[int, str]], bad: int) -> str:
    shown = "; ".join(f"line {n}: {reason}" for n, reason in errors)
    message = f"Invalid file format. {shown[0].upper()}{shown[1:]}"
    if bad > len(errors):
        message += f"; … ({bad} invalid lines in all)"
    return message


def scan(stream: BinaryIO, *, limits: FileLimits, keep: bool = False) -> tuple[int, list[list[Message]]]:
    """Check every line of ``stream``; return the number of examples and, with ``keep``, the
    conversations. Raises :class:`InvalidTrainingFile` (``param="file"``) naming the bad lines."""
    examples: list[list[Message]] = []
    count = bad = 0
    errors: list[tuple[int, str]] = []
    try:
        for number, raw in _lines(stream, limits):
            if raw is None:
                reason: str | None = f"longer than {limits.max_line_bytes} bytes"
            else:
                text = _text(number, raw)
                if not text.strip():
                    continue
                try:
                    messages = parse_example(text, limits)
                    reason = None
                except LineError as exc:
                    reason = str(exc)
            count += 1
            if count > limits.max_lines:
                raise FileError(f"The file holds more than {limits.max_lines} examples, the most one file may hold.")
            if reason is not None:
                bad += 1
                if len(errors) < MAX_REPORTED_LINES:
                    errors.append((number, reason))
            elif keep and not bad:
                examples.append(messages)
    except FileError as exc:
        raise InvalidTrainingFile(str(exc), param="file") from None
    if errors:
        raise InvalidTrainingFile(_report(errors, bad), param="file")
    if count == 0:
        raise InvalidTrainingFile(
            "The file is empty: it must hold at least one example, a JSON object per line.", param="file"
        )
    return count, examples


def check_file(stream: BinaryIO, *, limits: FileLimits) -> int:
    """The number of examples in ``stream``, a valid training file; else :class:`InvalidTrainingFile`."""
    return scan(stream, limits=limits)[0]


def read_examples(stream: BinaryIO, *, limits: FileLimits) -> list[list[Message]]:
    """Every conversation of ``stream``, a valid training file; else :class:`InvalidTrainingFile`."""
    return scan(stream, limits=limits, keep=True)[1]
