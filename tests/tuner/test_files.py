"""Training files: the JSONL format checks, and storage on SQLite and PostgreSQL (tenant scope,
pagination, nothing left behind by a failed upload, the rows a job trains on)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, SQLModel, select

from tuner.exceptions import InvalidTrainingFile, TuningResourceNotFound
from tuner.files import (
    FileLimits,
    TuningFile,
    TuningFileCreate,
    check_file,
    content_path,
    create_file,
    delete_file,
    get_file,
    list_files,
    read_training_rows,
)
from tuner.jobs.crud import ANY_TENANT

LIMITS = FileLimits(max_bytes=64 * 1024, max_lines=100)


def example(question: str = "What is 2+2?", answer: str = "4", *, system: str | None = None) -> dict[str, Any]:
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return {"messages": messages}


def jsonl(*lines: Any) -> bytes:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines).encode()


def error_of(data: bytes, limits: FileLimits = LIMITS) -> InvalidTrainingFile:
    with pytest.raises(InvalidTrainingFile) as info:
        check_file(io.BytesIO(data), limits=limits)
    assert info.value.param == "file"
    return info.value


# -- the format ----------------------------------------------------------------------------


def test_a_valid_file_counts_its_examples() -> None:
    weighted = example()
    weighted["messages"][-1]["weight"] = 1  # OpenAI's per-message weight: ignored
    data = "\ufeff".encode() + jsonl(example(system="Be brief."), "", "   ", weighted, {**example(), "id": 7})
    assert check_file(io.BytesIO(data), limits=LIMITS) == 3
    assert check_file(io.BytesIO(json.dumps(example()).encode()), limits=LIMITS) == 1  # no final newline


TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {}}}]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[" * 100_000, "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ({"prompt": "hi", "completion": "there"}, "no 'messages' list"),
        ({"messages": []}, "'messages' is empty"),
        ({"messages": ["hi"]}, "message 1 is not a JSON object"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "message 1 has role 'bot'"),
        ({"messages": [{"content": "x"}]}, "message 1 has no role"),
        ({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}]}, "no content"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " "}]}, "no content"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant"}]}, "message 2 has no content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
            "only string content is supported",
        ),
        ({"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]}, "no user message"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "the last message must be from the assistant"),
        ({**example(), "tools": TOOLS}, "tools and function calling are not supported"),
        (
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "tool_calls": []}]},
            "tools and function calling are not supported",
        ),
        ({"messages": [{"role": "tool", "content": "42"}]}, "tools and function calling are not supported"),
        (example("a\u0000b"), "holds a NUL character"),
        ('{"messages": [{"role": "user", "content": "\\ud800"}, {"role": "assistant", "content": "x"}]}', "surrogate"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}] * 3}, "more than 4"),
        (example("q" * 50), "over 40 characters"),
    ],
)
def test_a_bad_line_is_named_with_its_reason(line: Any, reason: str) -> None:
    limits = FileLimits(max_bytes=1 << 20, max_lines=10, max_messages=4, max_example_chars=40)
    error = error_of(jsonl(example(), line), limits)
    assert error.message.startswith("Invalid file format. Line 2: "), error.message
    assert reason in error.message


def test_the_first_bad_lines_are_named_and_all_counted() -> None:
    lines = [example()] * 3 + ["nope"] + [example()] + [{"messages": [{"role": "user", "content": "hi"}]}] * 11
    error = error_of(jsonl(*lines))
    assert error.message == (
        "Invalid file format. Line 4: not valid JSON; line 6: the last message must be from the assistant; "
        "line 7: the last message must be from the assistant; line 8: the last message must be from the assistant; "
        "line 9: the last message must be from the assistant; … (12 invalid lines in all)"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"\n  \n\n", "The file is empty"),
        (jsonl(example()) + b'{"messages": \x00}\n', "line 2 holds NUL bytes"),
        ("ab".encode("utf-16"), "NUL bytes"),
        (jsonl(example()) + '{"messages": "é"}\n'.encode("latin-1"), "line 2 is not UTF-8 text"),
        (jsonl(*[example()] * 101), "more than 100 examples"),
    ],
)
def test_faults_of_the_whole_file(data: bytes, message: str) -> None:
    assert message in error_of(data).message


def test_a_huge_line_is_refused_without_being_read_whole() -> None:
    limits = FileLimits(max_bytes=1 << 20, max_lines=10, max_line_bytes=1000)
    huge = json.dumps(example("q" * 5000))
    error = error_of(jsonl(example(), huge, "oops"), limits)
    assert error.message == ("Invalid file format. Line 2: longer than 1000 bytes; line 3: not valid JSON")


def test_file_names_are_basenames_and_purposes_are_checked() -> None:
    assert TuningFileCreate(filename="../../etc/pass\x00wd", purpose="fine-tune").filename == "passwd"
    assert TuningFileCreate(filename="C:\\data\\train.jsonl", purpose="fine-tune").filename == "train.jsonl"
    assert TuningFileCreate(filename=None, purpose="fine-tune").filename == "upload.jsonl"  # type: ignore[arg-type]
    assert len(TuningFileCreate(filename="x" * 1000, purpose="fine-tune").filename) == 255
    with pytest.raises(ValidationError, match="purpose"):
        TuningFileCreate(filename="a.jsonl", purpose="fine-tune-results")


# -- storage ---------------------------------------------------------------------------------


@pytest.fixture
def files_dir(tmp_path: Path) -> Path:
    return tmp_path / "files"  # beside, not inside, the SQLite database's folder


def store(
    session: Session, files_dir: Path, data: bytes, *, tenant: str | None = None, limits: FileLimits = LIMITS
) -> TuningFile:
    return create_file(
        session=session,
        files_dir=files_dir,
        upload=io.BytesIO(data),
        file_in=TuningFileCreate(filename="train.jsonl", purpose="fine-tune"),
        limits=limits,
        tenant=tenant,
        key_id=3,
    )


def test_a_stored_file_round_trips(db: Engine, files_dir: Path) -> None:
    data = jsonl(example(system="Be brief."), example("Capital of France?", "Paris"))
    with Session(db) as session:
        row = store(session, files_dir, data, tenant="acme")
    assert row.public_id.startswith("file-") and len(row.public_id) == len("file-") + 24
    assert (row.bytes, row.examples, row.sha256) == (len(data), 2, hashlib.sha256(data).hexdigest())
    assert (row.tenant, row.key_id, row.filename, row.purpose) == ("acme", 3, "train.jsonl", "fine-tune")
    assert [p.name for p in files_dir.iterdir()] == [row.path]
    assert content_path(files_dir=files_dir, row=row).read_bytes() == data
    with Session(db) as session:
        rows = read_training_rows(session=session, files_dir=files_dir, file_id=row.public_id, scope="acme")
    assert rows == [
        {
            "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}],
            "completion": [{"role": "assistant", "content": "4"}],
        },
        {
            "prompt": [{"role": "user", "content": "Capital of France?"}],
            "completion": [{"role": "assistant", "content": "Paris"}],
        },
    ]


def test_a_tenant_sees_only_its_files(db: Engine, files_dir: Path) -> None:
    with Session(db) as session:
        acme = store(session, files_dir, jsonl(example()), tenant="acme").public_id
        untenanted = store(session, files_dir, jsonl(example()), tenant=None).public_id
        for scope, visible in (("acme", acme), (None, untenanted)):
            assert get_file(session=session, file_id=visible, scope=scope).public_id == visible
            assert [r.public_id for r in list_files(session=session, scope=scope)[0]] == [visible]
        for file_id, scope in ((acme, "globex"), (acme, None), (untenanted, "acme"), ("file-nope", ANY_TENANT)):
            with pytest.raises(TuningResourceNotFound) as info:
                get_file(session=session, file_id=file_id, scope=scope)
            assert (info.value.param, info.value.message) == ("file_id", f"No such File object: {file_id}")
            with pytest.raises(TuningResourceNotFound):
                read_training_rows(session=session, files_dir=files_dir, file_id=file_id, scope=scope)
            with pytest.raises(TuningResourceNotFound):
                delete_file(session=session, files_dir=files_dir, file_id=file_id, scope=scope)
        # Not an id at all (a NUL would make PostgreSQL refuse the query): simply not found.
        with pytest.raises(TuningResourceNotFound):
            get_file(session=session, file_id="file-\x00", scope=ANY_TENANT)
        assert {r.public_id for r in list_files(session=session, scope=ANY_TENANT)[0]} == {acme, untenanted}


def test_pages_follow_the_cursor_both_ways(db: Engine, files_dir: Path) -> None:
    with Session(db) as session:
        ids = [store(session, files_dir, jsonl(example()), tenant="acme").public_id for _ in range(5)]
        store(session, files_dir, jsonl(example()), tenant="globex")

        def page(**kwargs: Any) -> tuple[list[str], bool]:
            rows, has_more = list_files(session=session, scope="acme", **kwargs)
            return [r.public_id for r in rows], has_more

        assert page() == (ids[::-1], False)
        assert page(limit=2) == ([ids[4], ids[3]], True)
        assert page(limit=2, after=ids[3]) == ([ids[2], ids[1]], True)
        assert page(limit=2, after=ids[1]) == ([ids[0]], False)
        assert page(order="asc", limit=3) == (ids[:3], True)
        assert page(order="asc", after=ids[2]) == (ids[3:], False)
        assert page(purpose="fine-tune", limit=1) == ([ids[4]], True)
        assert page(purpose="batch") == ([], False)
        assert page(after="file-unknown") == ([], False)


def test_delete_removes_the_row_and_the_bytes(db: Engine, files_dir: Path) -> None:
    with Session(db) as session:
        kept = store(session, files_dir, jsonl(example()), tenant="acme").path
        row = store(session, files_dir, jsonl(example()), tenant="acme")
        delete_file(session=session, files_dir=files_dir, file_id=row.public_id, scope="acme")
        with pytest.raises(TuningResourceNotFound):
            get_file(session=session, file_id=row.public_id, scope=ANY_TENANT)
    assert [p.name for p in files_dir.iterdir()] == [kept]


def nothing_stored(db: Engine, files_dir: Path) -> bool:
    with Session(db) as session:
        rows = session.exec(select(TuningFile)).all()
    return rows == [] and (not files_dir.exists() or list(files_dir.iterdir()) == [])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (jsonl(*[example("q" * 600)] * 2), "The file is over the limit of 1024 bytes."),
        (jsonl(example(), "{"), "Invalid file format. Line 2: not valid JSON"),
        (b"\x00\x01", "holds NUL bytes"),
        (b"", "The file is empty"),
    ],
)
def test_a_refused_upload_leaves_nothing(db: Engine, files_dir: Path, data: bytes, message: str) -> None:
    with Session(db) as session, pytest.raises(InvalidTrainingFile) as info:
        store(session, files_dir, data, limits=FileLimits(max_bytes=1024, max_lines=10))
    assert info.value.param == "file" and message in info.value.message
    assert nothing_stored(db, files_dir)


def test_a_failed_insert_leaves_no_file(db: Engine, files_dir: Path) -> None:
    SQLModel.metadata.tables["tuning_file"].drop(db)  # the database refuses the row
    with Session(db) as session, pytest.raises(DBAPIError, match="tuning_file"):
        store(session, files_dir, jsonl(example()))
    assert list(files_dir.iterdir()) == []


def test_a_changed_or_lost_file_is_not_trained_on(db: Engine, files_dir: Path) -> None:
    with Session(db) as session:
        row = store(session, files_dir, jsonl(example(), example()))
        path = content_path(files_dir=files_dir, row=row)
        assert len(read_training_rows(session=session, files_dir=files_dir, file_id=row.public_id, scope=None)) == 2
        path.write_bytes(jsonl(example(), {"messages": []}))
        with pytest.raises(InvalidTrainingFile, match="changed or is missing"):
            read_training_rows(session=session, files_dir=files_dir, file_id=row.public_id, scope=None)
        path.unlink()
        with pytest.raises(InvalidTrainingFile, match="changed or is missing"):
            read_training_rows(session=session, files_dir=files_dir, file_id=row.public_id, scope=None)
