"""The spool file: append, batch reads, checkpoints, compaction, torn records, crash replay, one owner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.traffic.spool import Spool, SpoolInUse


def test_append_read_commit_compacts(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for i in range(5):
        spool.append({"id": f"r{i}"})
    batch, end = spool.read_batch(3)
    assert [r["id"] for r in batch] == ["r0", "r1", "r2"]
    spool.commit(end)
    assert spool.backlog_bytes > 0
    batch, end = spool.read_batch(10)
    assert [r["id"] for r in batch] == ["r3", "r4"]
    spool.commit(end)
    assert spool.backlog_bytes == 0 and spool.path.stat().st_size == 0  # compacted once drained
    spool.close()


def test_checkpoint_survives_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for i in range(4):
        spool.append({"id": f"r{i}"})
    _, end = spool.read_batch(2)
    spool.commit(end)
    spool.close()
    reopened = Spool(tmp_path)
    assert [r["id"] for r in reopened.read_batch(10)[0]] == ["r2", "r3"]
    reopened.close()


def test_torn_final_record_is_skipped_and_later_records_survive(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append({"id": "whole"})
    spool.close()
    with (tmp_path / "requests.jsonl").open("ab") as fh:
        fh.write(b'{"id": "tor')  # the process died mid-write
    reopened = Spool(tmp_path)
    reopened.append({"id": "after"})
    records, _ = reopened.read_batch(10)
    assert [r["id"] for r in records] == ["whole", "after"]
    assert reopened.corrupt_records == 1
    reopened.close()


def test_records_survive_sigkill(tmp_path: Path) -> None:
    """A record appended before the response ends is in the file even if the process is killed."""
    script = (
        "import sys, os, signal\n"
        "from pathlib import Path\n"
        "from gateway.traffic.spool import Spool\n"
        "spool = Spool(Path(sys.argv[1]))\n"
        "for i in range(100):\n"
        "    spool.append({'id': f'r{i}'})\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=Path(__file__).parents[3])
    assert result.returncode == -signal.SIGKILL
    spool = Spool(tmp_path)
    records, _ = spool.read_batch(1000)
    assert [r["id"] for r in records] == [f"r{i}" for i in range(100)]
    spool.close()


def test_fsync_mode_writes_the_same_bytes(tmp_path: Path) -> None:
    spool = Spool(tmp_path, fsync=True)
    spool.append({"id": "x", "n": 1})
    spool.close()
    assert json.loads((tmp_path / "requests.jsonl").read_text()) == {"id": "x", "n": 1}
    assert os.stat(tmp_path / "requests.jsonl").st_size > 0


def test_a_second_spool_on_the_same_folder_fails_fast(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append({"id": "mine"})
    with pytest.raises(SpoolInUse, match=str(tmp_path)):
        Spool(tmp_path)
    assert [r["id"] for r in spool.read_batch(10)[0]] == ["mine"]  # nothing was truncated
    spool.close()
    Spool(tmp_path).close()  # released on close


def test_a_spool_held_by_another_process_is_refused_until_it_exits(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from gateway.traffic.spool import Spool\n"
        "spool = Spool(Path(sys.argv[1]))\n"
        "spool.append({'id': 'theirs'})\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=Path(__file__).parents[3],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as other:
        try:
            assert other.stdout is not None and other.stdout.readline().strip() == "ready"
            with pytest.raises(SpoolInUse, match="in use by another gateway process"):
                Spool(tmp_path)
        finally:
            other.kill()
            other.wait()
    spool = Spool(tmp_path)  # the kernel released the lock with the process: the rows are intact
    assert [r["id"] for r in spool.read_batch(10)[0]] == ["theirs"]
    spool.close()


def test_a_forked_child_does_not_keep_the_lock(tmp_path: Path) -> None:
    """vLLM forks its engine core after the spool opens; an orphaned child must not lock out a successor."""
    spool = Spool(tmp_path)
    started, child_started = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: hold on, as an engine core outliving the gateway would
        try:
            os.write(child_started, b"x")  # fork hooks have run by now
            signal.pause()
        finally:
            os._exit(0)
    try:
        assert os.read(started, 1) == b"x"
        spool.close()
        Spool(tmp_path).close()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(started)
        os.close(child_started)


def test_positions_grow_across_compaction_and_find_pending_records(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    first = spool.append({"id": "a"})
    second = spool.append({"id": "b"})
    assert spool.read_at(second) == {"id": "b"}
    _, end = spool.read_batch(10)
    spool.commit(end)  # compacted: the file is empty again
    assert spool.read_at(first) is None and spool.stored_position == spool.end_position == end
    third = spool.append({"id": "c"})
    assert third == end > second and spool.read_at(third) == {"id": "c"}
    spool.close()
