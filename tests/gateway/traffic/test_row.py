"""A log row as the gateway builds it: storable on both databases whatever the request carried,
and without content (params included) when the key opted out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from gateway.auth.models import Principal
from gateway.exceptions import InvalidRequest, ModelNotFound
from gateway.generation.record import RequestRecord
from gateway.traffic.drain import LogDrain
from gateway.traffic.spool import Spool
from switchyard.traffic.crud import insert_logs_idempotent
from switchyard.traffic.models import RequestLog
from switchyard.traffic.sanitize import REPLACEMENT

PARAMS = {
    "max_tokens": 5,
    "temperature": 0.3,
    "top_p": 0.9,
    "n": 2,
    "seed": 7,
    "stream_options": {"include_usage": True},
    "user": "alice@example.com",
    "stop": ["END OF SECRET"],
    "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"secret": "yes"}}},
}


def record(
    *, log_content: bool = True, model: str = "demo-base", params: dict[str, Any] | None = None
) -> RequestRecord:
    return RequestRecord(
        request_id="chatcmpl-row",
        endpoint="chat.completions",
        principal=Principal(key_id=3, name="k", tenant="acme", log_content=log_content),
        model=model,
        stream=False,
        content=[{"role": "user", "content": "my secret"}],
        params=dict(PARAMS if params is None else params),
    )


async def store_through_the_drain(row: RequestRecord, tmp_path: Path, db: Engine) -> RequestLog | None:
    """The real path: the row appended to a spool, drained into the database, read back."""
    drain = LogDrain(
        Spool(tmp_path),
        lambda records: insert_logs_idempotent(engine=db, records=records),
        batch_size=10,
        interval_s=0.01,
        retry_max_s=0.05,
        max_field_chars=1024,
    )
    await drain.record(row.to_row())
    await drain.flush()
    assert drain.dead_lettered == 0
    await drain.stop()
    with Session(db) as session:
        return session.get(RequestLog, "chatcmpl-row")


def test_opted_out_rows_keep_only_sampling_knobs() -> None:
    opted_out = record(log_content=False)
    opted_out.on_tokens(0, "answer", 1, "stop")
    row = opted_out.to_row()
    assert row["request"] is None and row["output"] is None
    assert row["params"] == {
        "max_tokens": 5,
        "temperature": 0.3,
        "top_p": 0.9,
        "n": 2,
        "seed": 7,
        "stream_options": {"include_usage": True},
    }
    assert "secret" not in str(row) and "alice" not in str(row)
    assert record(log_content=True).to_row()["params"] == PARAMS


async def test_nul_and_unencodable_text_land_sanitised(tmp_path: Path, db: Engine) -> None:
    """The real path (record → row → drain → insert): the 404 for ``"model": "x\\u0000y"`` that
    once stopped all logging on PostgreSQL, with NUL in every other field besides."""
    bad = record(
        model="x\x00y",
        params={"max_tokens": 2, "user": "u\x00", "stop": ["a\x00b"], "response_format": {"k\x00": "\ud800"}},
    )
    bad.content = [{"role": "user", "content": "hi\x00there \ud83d"}]
    bad.on_tokens(0, "out\x00put", 1, None)
    bad.on_tokens(1, "second\x00", 1, "stop")
    bad.fail(ModelNotFound("The model 'x\x00y' does not exist."))
    stored = await store_through_the_drain(bad, tmp_path, db)
    assert stored is not None and stored.status == 404
    r = REPLACEMENT
    assert stored.model == f"x{r}y" and stored.error is not None and f"x{r}y" in stored.error
    assert stored.request == [{"role": "user", "content": f"hi{r}there {r}"}]
    assert stored.params == {"max_tokens": 2, "user": f"u{r}", "stop": [f"a{r}b"], "response_format": {f"k{r}": r}}
    assert stored.output == f"out{r}put"
    assert stored.choices is not None and stored.choices[1]["text"] == f"second{r}"
    assert "\x00" not in str(stored.model_dump())


async def test_overlong_text_is_cut_to_fit(tmp_path: Path, db: Engine) -> None:
    long = record(model="m" * 300)  # longer than its column; the request schema allows 256
    long.content = "p" * 5000
    long.on_tokens(0, "o" * 5000, 1, "length")
    long.succeed()
    stored = await store_through_the_drain(long, tmp_path, db)
    assert stored is not None
    assert len(stored.model) == 256 and stored.model.endswith("…[cut]")
    assert len(stored.output or "") == 1024 and len(stored.request) == 1024


def test_opted_out_rows_keep_error_codes_not_messages() -> None:
    """Engine and chat-template messages can quote the request; the code is all an opted-out row keeps."""
    error = InvalidRequest("The engine refused the request: schema {'secret': 'yes'} is invalid")
    opted_out, logged = record(log_content=False), record(log_content=True)
    for row in (opted_out, logged):
        row.fail(error)
    assert "secret" not in opted_out.to_row()["error"] and "invalid_value" in opted_out.to_row()["error"]
    assert "secret" in logged.to_row()["error"]
