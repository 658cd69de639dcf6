"""Handles with the kernel's semantics on every upper, staged whole-file writes, and
durability: what is fsynced, in which order, and what ``volatile`` turns off.

* Item 4 of issue 10: PyFilesystem2's MemoryFS gets ``O_APPEND`` and ``ftruncate`` wrong;
  the overlay's writable handles (``unionfs.core.file.UpperFile``) correct for that on every
  upper. The same handle scenarios run through a kernel overlay mount (``os`` calls) and
  through ``OverlayFS`` over a MemoryFS, an on-disk and a wrapped upper; the outcomes
  (positions, sizes, bytes) must be the kernel's.
* Item 5: ``writetext``, ``appendtext``/``appendbytes`` of a new file and ``writefile`` are
  staged like ``writebytes``: crashed at each of their write-side calls (``FaultyFS``), a
  new overlay shows the old file (or none) or the whole new one, never an empty or partial one.
* Item 6: over an on-disk upper, the staged file is fsynced before its rename and the
  directory after it, records and journal entries before the step that relies on them
  (checked by recording ``os.fsync`` and ``os.rename`` calls); ``fsync()`` of an overlay
  handle syncs its file; ``volatile=True`` (also ``?volatile=1`` and ``--volatile``) syncs
  nothing. The power-loss test (``test_power_loss.py``) shows that it is enough.
"""

from __future__ import annotations

import io
import os
from typing import Any, Callable, Dict, List, Tuple

import pytest

import unionfs  # noqa: F401
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS
from fs.wrap import WrapReadOnly  # noqa: F401  (imported for the side effect of fs.wrap)
from fs.wrapfs import WrapFS

from unionfs import OverlayFS
from unionfs.core.sidecar import JOURNAL_DIR, STAGING_DIR, TREE_DIR
from unionfs.testing.faults import FaultyFS, InjectedFault
from unionfs.testing import trees

from tests.support.kernel_oracle import FILE, Entry, KernelOverlay
from tests.support.reliability_support import COUNTS

# -------------------------------------------------------------------------------------------------
# Item 4: append and truncate through overlay handles, against the kernel
# -------------------------------------------------------------------------------------------------

Opener = Callable[[str, str], Any]


def _two_appends(open_: Opener, read: Callable[[str], bytes]) -> Tuple[Any, ...]:
    first, second = open_("a", "ab"), open_("a", "ab")
    first.write(b"XX")
    second.write(b"YY")
    first.write(b"ZZ")
    positions = (first.tell(), second.tell())
    first.close()
    second.close()
    return positions, read("a")


def _truncate_keeps_position(open_: Opener, read: Callable[[str], bytes]) -> Tuple[Any, ...]:
    handle = open_("a", "r+b")
    handle.seek(5)
    handle.truncate(3)
    at = handle.tell()
    handle.write(b"Z")
    handle.seek(1)
    handle.truncate(2)
    at_too = handle.tell()
    handle.close()
    return at, at_too, read("a")


def _truncate_extends(open_: Opener, read: Callable[[str], bytes]) -> Tuple[Any, ...]:
    handle = open_("a", "r+b")
    handle.seek(5)
    size = handle.truncate(5)
    at = handle.tell()
    handle.seek(0)
    handle.truncate(8)
    at_too = handle.tell()
    handle.close()
    return size, at, at_too, read("a")


def _truncate_at_position(open_: Opener, read: Callable[[str], bytes]) -> Tuple[Any, ...]:
    handle = open_("a", "r+b")
    handle.seek(1)
    size = handle.truncate()
    handle.close()
    return size, read("a")


def _append_ignores_seek(open_: Opener, read: Callable[[str], bytes]) -> Tuple[Any, ...]:
    handle = open_("a", "a+b")
    handle.seek(0)
    handle.write(b"Q")
    at = handle.tell()
    handle.seek(0)
    content = handle.read()
    handle.truncate(1)
    handle.write(b"R")
    handle.close()
    return at, content, read("a")


def _new_file_appends(open_: Opener, read: Callable[[str], bytes]) -> Tuple[Any, ...]:
    writer = open_("n", "wb")
    appender = open_("n", "ab")
    writer.write(b"1234")
    writer.flush()
    appender.write(b"++")
    writer.write(b"5")
    writer.close()
    appender.close()
    return (read("n"),)


SCENARIOS = {
    "two append handles": _two_appends,
    "truncate keeps the position": _truncate_keeps_position,
    "truncate beyond the end extends with zeros": _truncate_extends,
    "truncate() cuts at the position": _truncate_at_position,
    "append ignores seek": _append_ignores_seek,
    "a writer and an appender": _new_file_appends,
}


def _kernel_outcomes() -> Dict[str, Tuple[Any, ...]]:
    outcomes = {}
    for name, scenario in SCENARIOS.items():
        with KernelOverlay([{"/a": Entry(FILE, b"abc")}]) as kernel:  # (mounted by __enter__)
            merged = kernel.merged

            def open_(path: str, mode: str) -> Any:
                return open(os.path.join(merged, path), mode, buffering=0)

            def read(path: str) -> bytes:
                with open(os.path.join(merged, path), "rb") as handle:
                    return handle.read()

            outcomes[name] = scenario(open_, read)
    return outcomes


@pytest.fixture(scope="module")
def kernel_outcomes(kernel_overlay: None) -> Dict[str, Tuple[Any, ...]]:
    return _kernel_outcomes()


UPPERS: Dict[str, Callable[[Any], Any]] = {
    "MemoryFS": lambda tmp_path: MemoryFS(),
    "OSFS": lambda tmp_path: OSFS(str(tmp_path)),
    "wrapped MemoryFS": lambda tmp_path: WrapFS(MemoryFS()),
}


@pytest.mark.parametrize("upper_kind", sorted(UPPERS))
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_handles_append_and_truncate_as_the_kernel_does(kernel_outcomes, tmp_path, upper_kind, name):
    lower = trees.make_tree(MemoryFS(), {"a": b"abc"})
    overlay = OverlayFS(lower, UPPERS[upper_kind](tmp_path))
    try:
        # unbuffered, as the kernel side's os-level writes (a buffered handle delays its writes)
        outcome = SCENARIOS[name](lambda path, mode: overlay.openbin(path, mode, buffering=0), overlay.readbytes)
    finally:
        overlay.close()
    assert outcome == kernel_outcomes[name], "%s on a %s upper" % (name, upper_kind)


def test_memoryfs_itself_gets_append_and_truncate_wrong(kernel_outcomes):
    """Why the overlay corrects: the raw MemoryFS handles (the upper's own) differ from the
    kernel in these scenarios, so the test above passes because of the correction."""
    wrong = []
    for name in sorted(SCENARIOS):
        memory = MemoryFS()
        memory.writebytes("a", b"abc")
        if SCENARIOS[name](memory.openbin, memory.readbytes) != kernel_outcomes[name]:
            wrong.append(name)
    assert {"two append handles", "truncate keeps the position", "truncate beyond the end extends with zeros"} <= set(wrong)


# -------------------------------------------------------------------------------------------------
# Item 5: whole-file text writes are staged
# -------------------------------------------------------------------------------------------------

WHOLE_FILE_WRITES: Dict[str, Callable[[OverlayFS, str], None]] = {
    "writetext": lambda o, p: o.writetext(p, "new text\n" * 50),
    "writefile (text)": lambda o, p: o.writefile(p, io.StringIO("new text\n" * 50), encoding="utf-8"),
    "writefile (binary)": lambda o, p: o.writefile(p, io.BytesIO(b"new text\n" * 50)),
    "appendtext of a new file": lambda o, p: o.appendtext("fresh", "new text\n" * 50),
    "appendbytes of a new file": lambda o, p: o.appendbytes("fresh", b"new text\n" * 50),
}


def _crash_points(write: Callable[[OverlayFS, str], None], path: str) -> List[Tuple[int, Dict[str, Any]]]:
    """Crash ``write`` at each of its write-side calls; what a new overlay shows each time."""
    lower = trees.make_tree(MemoryFS(), {"old": b"old text\n"})
    counting = FaultyFS(MemoryFS())
    OverlayFS(lower, counting).close()  # the sidecar exists; count only the write itself
    before = counting.calls
    write(OverlayFS(lower, counting), path)
    points = counting.calls - before
    assert points >= 2, "nothing to interrupt"
    seen = []
    for fail_at in range(1, points + 1):
        disk = MemoryFS()
        OverlayFS(lower, disk).close()
        faulty = FaultyFS(disk, fail_at, "crash")
        overlay = OverlayFS(lower, faulty)
        try:
            write(overlay, path)
        except InjectedFault:
            pass
        else:
            # only the directory's time stamp, the last step, may fail without failing the
            # write: it is best effort (docs/semantics.rst, "Times of directories")
            assert faulty.log[fail_at - 1] == ("setinfo", "/"), faulty.log
        after = OverlayFS(lower, disk)
        seen.append((fail_at, {name: after.readbytes(name) for name in ("old", "fresh", "new") if after.exists(name)}))
        after.close()
    return seen


#: (write, path): appending to an existing file is an in-place O_APPEND write, as on the kernel
STAGED_CASES = [(name, path) for name in sorted(WHOLE_FILE_WRITES) for path in ("new", "old")
                if not (name.startswith("append") and path == "old")]


@pytest.mark.parametrize("name,path", STAGED_CASES)
def test_whole_file_writes_are_staged(name, path):
    """Regression (issue 10 item 5): ``writetext`` and friends truncated/created the file and
    wrote after: a crash in between showed it empty (76 of 200 real kills for a new file)."""
    write = WHOLE_FILE_WRITES[name]
    target = "fresh" if name.startswith("append") else path
    whole = b"new text\n" * 50
    for fail_at, view in _crash_points(write, path):
        shown = view.get(target)
        before = b"old text\n" if target == "old" else None
        assert shown in (before, whole), "%s crashed at call %d shows %r" % (name, fail_at, shown)


# -------------------------------------------------------------------------------------------------
# Item 6: durability
# -------------------------------------------------------------------------------------------------


class SyscallLog:
    """Records ``os.fsync`` (by the path of the descriptor) and ``os.rename``/``os.replace``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: str) -> None:
        self.root = os.path.realpath(root)
        self.calls: List[Tuple[str, str]] = []
        real_fsync, real_rename, real_replace = os.fsync, os.rename, os.replace

        def fsync(fd: int) -> None:
            self.calls.append(("fsync", self._rel(os.readlink("/proc/self/fd/%d" % fd))))
            real_fsync(fd)

        def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            self.calls.append(("rename", self._rel(str(src)) + " -> " + self._rel(str(dst))))
            real_rename(src, dst, *args, **kwargs)

        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            self.calls.append(("rename", self._rel(str(src)) + " -> " + self._rel(str(dst))))
            real_replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "rename", rename)
        monkeypatch.setattr(os, "replace", replace)

    def _rel(self, path: str) -> str:
        path = os.path.realpath(path)
        if not path.startswith(self.root):
            return path
        relative = os.path.relpath(path, self.root)
        return "/" if relative == "." else "/" + relative

    def clear(self) -> None:
        del self.calls[:]

    @property
    def fsyncs(self) -> List[str]:
        return [path for call, path in self.calls if call == "fsync"]

    def index(self, call: str, predicate: Callable[[str], bool]) -> int:
        for number, (name, path) in enumerate(self.calls):
            if name == call and predicate(path):
                return number
        raise AssertionError("no %s matching in %s" % (call, self.calls))


class _FsyncCounts(dict):
    """operation -> fsync calls over an on-disk upper; also reported in the reliability summary."""

    def __setitem__(self, operation: str, count: int) -> None:
        super().__setitem__(operation, count)
        COUNTS["fsyncs: " + operation] = str(count)


#: how many fsync calls each operation costs over an on-disk upper (printed at the end)
FSYNC_COUNTS: Dict[str, int] = _FsyncCounts()


@pytest.fixture
def disk(tmp_path, monkeypatch):
    lower = trees.make_tree(OSFS(str(tmp_path / "lower"), create=True), {"d/e/f": b"lower data", "d/g": b"g"})
    upper_dir = tmp_path / "upper"
    upper_dir.mkdir()
    log = SyscallLog(monkeypatch, str(upper_dir))
    yield lower, str(upper_dir), log


def _staged_then_renamed(log: SyscallLog, path: str) -> None:
    """The staged file fsynced, then renamed to ``path``, then ``path``'s directory fsynced."""
    renamed = log.index("rename", lambda p: p.startswith(STAGING_DIR) and p.endswith(" -> " + path))
    staged = log.calls[renamed][1].split(" -> ")[0]
    synced = log.index("fsync", lambda p: p == staged)
    assert synced < renamed, log.calls
    directory = os.path.dirname(path)
    assert any(call == ("fsync", directory) for call in log.calls[renamed + 1 :]), log.calls


def test_copy_up_and_writebytes_sync_before_and_after_the_rename(disk):
    lower, upper_dir, log = disk
    overlay = OverlayFS(lower, upper_dir)
    log.clear()
    overlay.setinfo("d/e/f", {"details": {"modified": 1000}})  # copies up d, d/e, d/e/f
    _staged_then_renamed(log, "/d/e/f")
    for directory in ("/d", "/d/e"):
        renamed = log.index("rename", lambda p: p.endswith(" -> " + directory))
        assert log.index("fsync", lambda p: p.startswith(STAGING_DIR)) < renamed
        assert ("fsync", os.path.dirname(directory)) in log.calls[renamed + 1 :]
    FSYNC_COUNTS["copy-up of a file and 2 parents"] = len(log.fsyncs)
    log.clear()
    overlay.writebytes("d/new", b"new")
    _staged_then_renamed(log, "/d/new")
    FSYNC_COUNTS["writebytes of a new file"] = len(log.fsyncs)
    log.clear()
    overlay.writetext("d/g", "text")
    _staged_then_renamed(log, "/d/g")
    FSYNC_COUNTS["writetext over a lower file"] = len(log.fsyncs)
    overlay.close()


def test_records_are_durable_before_the_entry_goes(disk):
    lower, upper_dir, log = disk
    overlay = OverlayFS(lower, upper_dir)
    overlay.setinfo("d/g", {"details": {"modified": 1000}})
    log.clear()
    overlay.remove("d/g")  # whiteout first, then the upper copy goes
    record_dir = TREE_DIR + "/d/d/w"
    record_synced = log.index("fsync", lambda p: p == record_dir)
    upper_synced = log.index("fsync", lambda p: p == "/d")
    assert record_synced < upper_synced, log.calls
    FSYNC_COUNTS["remove of a copied-up file (whiteout)"] = len(log.fsyncs)
    overlay.close()


def test_journal_entries_are_durable_before_the_first_step(disk):
    lower, upper_dir, log = disk
    overlay = OverlayFS(lower, upper_dir, redirect_dir=False, metacopy=False)
    log.clear()
    overlay.movedir("d", "moved", create=True)  # a merged tree, copied (no redirect_dir): journaled
    entry = log.index("rename", lambda p: p.startswith(STAGING_DIR) and (" -> " + JOURNAL_DIR + "/") in p)
    staged = log.calls[entry][1].split(" -> ")[0]
    assert log.index("fsync", lambda p: p == staged) < entry
    journal_synced = log.index("fsync", lambda p: p == JOURNAL_DIR)
    assert entry < journal_synced
    first_step = log.index("rename", lambda p: not p.endswith(JOURNAL_DIR) and JOURNAL_DIR not in p and "FORMAT" not in p)
    assert journal_synced < first_step, log.calls
    FSYNC_COUNTS["movedir of a merged tree (3 entries)"] = len(log.fsyncs)
    assert overlay.readbytes("moved/e/f") == b"lower data"
    overlay.close()


def test_discard_is_durable_before_its_journal_entry_goes(disk):
    lower, upper_dir, log = disk
    overlay = OverlayFS(lower, upper_dir)
    overlay.writebytes("new", b"new")
    overlay.remove("d/g")  # a whiteout record
    log.clear()
    overlay.discard()
    journal_syncs = [number for number, call in enumerate(log.calls) if call == ("fsync", JOURNAL_DIR)]
    assert len(journal_syncs) >= 2, log.calls  # the entry made durable, then its removal
    begun, finished = journal_syncs[0], journal_syncs[-1]
    for directory in ("/", TREE_DIR, STAGING_DIR):
        assert ("fsync", directory) in log.calls[begun + 1 : finished], (directory, log.calls)
    FSYNC_COUNTS["discard of 2 changes"] = len(log.fsyncs)
    overlay.close()
    assert sorted(os.listdir(upper_dir)) == [".unionfs"]


def test_an_overlay_handle_fsyncs_and_flushes(disk):
    lower, upper_dir, log = disk
    overlay = OverlayFS(lower, upper_dir)
    handle = overlay.openbin("d/e/f", "r+")
    handle.write(b"LOWER")
    handle.flush()  # flush: the data is in the upper file (a new reader sees it), not synced
    assert open(os.path.join(upper_dir, "d/e/f"), "rb").read() == b"LOWER data"
    log.clear()
    handle.fsync()
    assert log.fsyncs == ["/d/e/f"]
    log.clear()
    os.fsync(handle.fileno())
    assert log.fsyncs == ["/d/e/f"]
    handle.close()
    log.clear()
    created = overlay.openbin("d/made", "w")  # the new name is durable when open returns
    assert ("fsync", "/d") in log.calls
    created.close()
    overlay.close()


def test_deferred_sync_defers_what_finishes_an_operation_and_keeps_what_orders_it(disk, monkeypatch):
    """``defer_sync`` (the mount's kernel contract): a new file, its metadata and a new
    directory cost no fsync (they were four per file of a ``tar x``), but a copy-up's staged
    file is still synced before its rename and a whiteout record before the entry goes;
    ``sync()``, a handle's ``fsync()`` and ``close()`` make everything durable (one syncfs)."""
    import unionfs.core.durable as durable

    lower, upper_dir, log = disk
    syncfs: List[str] = []
    real_syncfs = durable._syncfs
    monkeypatch.setattr(durable, "_syncfs", lambda fd: (syncfs.append(log._rel(os.readlink("/proc/self/fd/%d" % fd))), real_syncfs(fd)))
    overlay = OverlayFS(lower, upper_dir)
    overlay.defer_sync()
    log.clear()
    with overlay.openbin("made", "w") as out:
        out.write(b"made")
    overlay.setinfo("made", {"details": {"modified": 1000}, "access": {"permissions": ["u_r", "u_w"]}})
    overlay.makedir("n")
    assert log.fsyncs == [] and syncfs == []
    overlay.setinfo("d/e/f", {"details": {"modified": 1000}})  # copy-up of d/e/f, d/e
    _staged = log.index("rename", lambda p: p.startswith(STAGING_DIR) and p.endswith(" -> /d/e/f"))
    assert log.index("fsync", lambda p: p == log.calls[_staged][1].split(" -> ")[0]) < _staged
    assert all((path + "/").startswith("/.unionfs/") for path in log.fsyncs), log.fsyncs  # the sidecar only
    log.clear()
    overlay.remove("d/g")  # lower: a whiteout record, synced before the call returns
    assert (TREE_DIR + "/d/d/w") in log.fsyncs and "/d" not in log.fsyncs, log.calls
    overlay.sync()
    assert syncfs == ["/"]
    overlay.sync()  # nothing deferred since
    assert syncfs == ["/"]
    handle = overlay.openbin("made", "r+")
    handle.write(b"M")
    log.clear()
    handle.fsync()
    assert log.fsyncs == ["/made"] and syncfs == ["/"]  # nothing else was owed
    handle.close()
    overlay.writebytes("d/later", b"later")
    overlay.close()
    assert syncfs == ["/", "/"]  # close made the new name durable
    assert open(os.path.join(upper_dir, "d/later"), "rb").read() == b"later"


def test_volatile_syncs_nothing(disk, tmp_path):
    lower, upper_dir, log = disk
    overlay = OverlayFS(lower, upper_dir, volatile=True)
    overlay.setinfo("d/e/f", {"details": {"modified": 1000}})
    overlay.writetext("d/new", "new")
    overlay.remove("d/g")
    overlay.movedir("d", "moved", create=True)
    with overlay.openbin("moved/new", "r+") as handle:
        handle.write(b"N")
        handle.fsync()  # even this: volatile means no syncing at all, as on the kernel
    overlay.close()
    assert log.fsyncs == []
    import fs

    from unionfs.tools.opener import overlay_url

    url = overlay_url([str(tmp_path / "lower")], upper_dir, volatile=True)
    assert url.endswith("volatile=1")
    with fs.open_fs(url) as opened:
        assert opened.volatile
        opened.writetext("via-url", "x")
    with fs.open_fs(overlay_url([str(tmp_path / "lower")], upper_dir)) as opened:
        assert not opened.volatile
    assert log.fsyncs == []


def test_volatile_on_the_command_line(disk, tmp_path, capsys):
    from unionfs.tools.cli import main

    lower, upper_dir, log = disk
    assert main(["fsck", "-l", str(tmp_path / "lower"), "-u", upper_dir, "--volatile"]) == 0
    assert log.fsyncs == []
    assert main(["fsck", "-l", str(tmp_path / "lower"), "-u", upper_dir]) == 0
    assert log.fsyncs == []  # fsck of a clean upper writes nothing, so syncs nothing either


def test_memory_uppers_sync_nothing_and_handles_have_fsync(monkeypatch):
    calls = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    overlay = OverlayFS(MemoryFS(), MemoryFS())
    with overlay.openbin("f", "w") as handle:
        handle.write(b"x")
        handle.fsync()  # nothing to sync in memory; it must still be callable
    overlay.writebytes("g", b"g")
    assert calls == []


def test_fsync_counts_are_printed():
    """Print what durability costs per operation (the numbers in docs/reliability.rst)."""
    if not FSYNC_COUNTS:
        pytest.skip("the fsync tests did not run")
    print()
    for name, count in sorted(FSYNC_COUNTS.items()):
        print("fsyncs: %-45s %d" % (name, count))


def test_deferred_syncs_are_made_durable_before_a_journal_entry_goes(disk, monkeypatch):
    """Deferred (the mount), a journaled operation's steps (movedir's renames into an
    existing directory: their directories' syncs are deferred) are made durable by a syncfs
    before the journal entry that would replay them is removed: a power cut keeps either the
    entry or every step."""
    import unionfs.core.durable as durable
    import unionfs.core.journal as journal

    lower, upper_dir, log = disk
    events: List[str] = []
    real_syncfs, real_finish = durable._syncfs, journal.finish
    monkeypatch.setattr(durable, "_syncfs", lambda fd: (events.append("syncfs"), real_syncfs(fd)))
    monkeypatch.setattr(journal, "finish", lambda *args: (events.append("finish"), real_finish(*args)))
    overlay = OverlayFS(lower, upper_dir)
    overlay.defer_sync()
    overlay.makedir("moved")  # into an existing directory: entry by entry, journaled
    overlay.movedir("d/e", "moved")
    assert events == ["syncfs", "finish"]
    assert overlay.listdir("moved") == ["f"]
    overlay.close()
