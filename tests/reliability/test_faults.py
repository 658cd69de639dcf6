"""The fault-injecting wrapper itself: what it counts and how each mode fails."""

from __future__ import annotations

import pytest

from fs import errors
from fs.memoryfs import MemoryFS

from unionfs.testing.faults import FaultyFS, InjectedFault


def _work(target) -> None:
    target.makedirs("a/b")
    target.writebytes("a/b/f", b"data")
    with target.openbin("a/b/f", "r+") as handle:
        handle.write(b"D")
        handle.truncate(2)
    target.setinfo("a/b/f", {"details": {"modified": 5.0}})
    target.move("a/b/f", "a/g")
    target.removetree("a")


def test_counts_each_primitive_of_compound_calls():
    faulty = FaultyFS(MemoryFS())
    _work(faulty)
    operations = [operation for operation, _ in faulty.log]
    assert operations == [
        "makedir", "makedir", "openbin(wb)", "write", "openbin(r+)", "write", "truncate",
        "setinfo", "move", "removedir", "remove", "removedir",
    ]
    assert faulty.calls == len(operations)
    assert faulty.listdir("/") == []


def test_reads_are_not_counted():
    inner = MemoryFS()
    inner.writetext("f", "x")
    faulty = FaultyFS(inner)
    faulty.readtext("f"), faulty.listdir("/"), faulty.getinfo("f", ["details"])
    with faulty.openbin("f") as handle:
        handle.read()
    assert faulty.calls == 0


@pytest.mark.parametrize("fail_at", range(1, 13))
def test_fail_mode_fails_one_call_only(fail_at):
    inner = MemoryFS()
    faulty = FaultyFS(inner, fail_at, "fail")
    with pytest.raises(InjectedFault):
        _work(faulty)
    assert faulty.fired and not faulty.crashed
    faulty.makedir("later")  # the next call works
    assert inner.isdir("later")


@pytest.mark.parametrize("fail_at", range(1, 13))
def test_crash_mode_refuses_every_later_write(fail_at):
    inner = MemoryFS()
    faulty = FaultyFS(inner, fail_at, "crash")
    with pytest.raises(InjectedFault):
        _work(faulty)
    assert faulty.crashed
    with pytest.raises(InjectedFault):
        faulty.makedir("later")
    assert not inner.exists("later")
    assert faulty.listdir("/") == inner.listdir("/")  # reads still work


def test_the_fault_is_an_fs_error_and_there_is_no_syspath(tmp_path):
    assert issubclass(InjectedFault, errors.OperationFailed)
    import fs.osfs

    faulty = FaultyFS(fs.osfs.OSFS(str(tmp_path)))
    with pytest.raises(errors.NoSysPath):
        faulty.getsyspath("/")
    with pytest.raises(ValueError):
        FaultyFS(MemoryFS(), 1, "explode")
