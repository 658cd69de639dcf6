"""Thread safety, and several overlays over one upper (shared in a process, refused across)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from typing import Callable, Dict, List, Sequence, Tuple, Type

import pytest

from fs import errors
from fs.base import FS
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS

from unionfs.core.sidecar import FORMAT_TEXT
from unionfs import IllegalDestination, OverlayFS, UpperInUse
from unionfs.core.sidecar import LOCK_PATH
from unionfs.testing import trees

from tests.support.reliability_support import invariant_problems, view

THREADS = 8
OPERATIONS_PER_THREAD = 300

NAMES = ["a", "a/b", "a/b/f.txt", "a/g.txt", "m", "m/x", "m/x/y", "d0", "d0/f", "d1", "d1/f", "top.txt", "f0"]

#: every operation with the fs.errors it may legitimately raise on some state of the tree
NOT_FOUND = (errors.ResourceNotFound,)
OPS: Dict[str, Tuple[Callable, Tuple[Type[Exception], ...]]] = {
    "writebytes": (lambda o, p, q, r: o.writebytes(p, b"%d" % r.randrange(100)), NOT_FOUND + (errors.FileExpected,)),
    "append": (lambda o, p, q, r: _append(o, p), NOT_FOUND + (errors.FileExpected,)),
    "readbytes": (lambda o, p, q, r: o.readbytes(p), NOT_FOUND + (errors.FileExpected,)),
    "remove": (lambda o, p, q, r: o.remove(p), NOT_FOUND + (errors.FileExpected,)),
    "makedir": (lambda o, p, q, r: o.makedir(p), NOT_FOUND + (errors.DirectoryExists, errors.DirectoryExpected)),
    "removedir": (lambda o, p, q, r: o.removedir(p), NOT_FOUND + (errors.DirectoryExpected, errors.DirectoryNotEmpty)),
    "removetree": (lambda o, p, q, r: o.removetree(p), NOT_FOUND + (errors.DirectoryExpected,)),
    "listdir": (lambda o, p, q, r: o.listdir(p), NOT_FOUND + (errors.DirectoryExpected,)),
    "move": (  # onto an ancestor of the source: ENOTEMPTY, as the VFS answers
        lambda o, p, q, r: o.move(p, q, overwrite=True),
        NOT_FOUND + (errors.FileExpected, errors.DirectoryNotEmpty),
    ),
    "movedir": (
        lambda o, p, q, r: o.movedir(p, q, create=True),
        NOT_FOUND + (errors.DirectoryExpected, errors.FileExpected, IllegalDestination),
    ),
    "copy": (lambda o, p, q, r: o.copy(p, q, overwrite=True), NOT_FOUND + (errors.FileExpected, IllegalDestination)),  # onto itself
    "setinfo": (lambda o, p, q, r: o.setinfo(p, {"details": {"modified": 1000.0}}), NOT_FOUND),
    "set_stat": (lambda o, p, q, r: o.set_stat(p, 0o644, -1, -1, (None, 1_000_000_000_000)), NOT_FOUND),
    "scandir": (lambda o, p, q, r: list(o.scandir(p, ["details"])), NOT_FOUND + (errors.DirectoryExpected,)),
    "read through a held handle": (lambda o, p, q, r: _read_slowly(o, p), NOT_FOUND + (errors.FileExpected,)),
    "discard": (lambda o, p, q, r: o.discard() if r.random() < 0.2 else None, ()),
    "fsck finds nothing between two operations": (lambda o, p, q, r: _assert_clean(o), ()),
}


def _read_slowly(overlay: OverlayFS, path: str) -> None:
    """A read handle held while other threads copy the file up, rewrite or remove it: every
    read returns bytes (what they are depends on the race), none raises."""
    with overlay.openbin(path) as handle:
        handle.read(1)
        handle.seek(0)
        handle.read()


def _assert_clean(overlay: OverlayFS) -> None:
    report = overlay.fsck(repair=False)
    if not report.clean:
        raise AssertionError("fsck between operations: %s" % report)


def _append(overlay: OverlayFS, path: str) -> None:
    if overlay.isfile(path):  # "a" would create; the race to a vanished file is a legal ENOENT
        with overlay.openbin(path, "r+") as handle:
            handle.seek(0, 2)
            handle.write(b"+")
    else:
        raise errors.ResourceNotFound(path)


@pytest.fixture
def lowers(guard_lower) -> List[FS]:
    layer = trees.make_tree(MemoryFS(), {"a/b/f.txt": "f", "a/g.txt": "g", "m/x/y": "y", "top.txt": "top"})
    second = trees.make_tree(MemoryFS(), {"m/lower2": "2", "d0/": None})
    return [guard_lower(layer), guard_lower(second)]


@pytest.fixture(autouse=True)
def _switch_often():
    """Switch threads every 10 microseconds instead of 5 ms: many more interleavings."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(interval)


def _hammer(overlays: Sequence[OverlayFS], seed: int) -> List[str]:
    """Run THREADS threads of random operations over the overlays; the illegal errors seen."""
    problems: List[str] = []
    start = threading.Barrier(THREADS)

    def worker(number: int) -> None:
        chance = random.Random(seed * 100 + number)
        overlay = overlays[number % len(overlays)]
        start.wait()
        for _ in range(OPERATIONS_PER_THREAD):
            name = chance.choice(sorted(OPS))
            run, allowed = OPS[name]
            path, other = chance.choice(NAMES), chance.choice(NAMES)
            try:
                run(overlay, path, other, chance)
            except allowed:
                pass
            except Exception as error:  # noqa: BLE001 - anything else is the finding
                problems.append("%s(%s, %s): %r" % (name, path, other, error))

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return problems


@pytest.mark.parametrize("seed", range(3))
def test_eight_threads_on_one_overlay(lowers, seed):
    upper = MemoryFS()
    overlay = OverlayFS(lowers, upper)
    assert _hammer([overlay], seed) == []
    assert invariant_problems(overlay, lowers, upper) == []


@pytest.mark.parametrize("seed", range(2))
def test_eight_threads_on_two_overlays_sharing_an_upper(lowers, seed):
    upper = MemoryFS()
    first, second = OverlayFS(lowers, upper), OverlayFS(lowers, upper)
    assert _hammer([first, second], seed) == []
    assert invariant_problems(first, lowers, upper) == []
    assert view(first) == view(second)


def test_a_second_overlay_never_sees_stale_caches(lowers):
    upper = MemoryFS()
    first, second = OverlayFS(lowers, upper), OverlayFS(lowers, upper)
    assert sorted(second.listdir("a")) == ["b", "g.txt"]  # warm the second's caches
    first.remove("a/g.txt")
    first.writetext("a/new", "n")
    assert sorted(second.listdir("a")) == ["b", "new"]
    second.movedir("a", "z", create=True)
    assert not first.exists("a") and first.readtext("z/new") == "n"


def test_overlays_over_wrappers_of_one_upper_share_it(lowers):
    from unionfs.testing.faults import FaultyFS

    upper = MemoryFS()
    upper.makedir("sub")
    plain, wrapped = OverlayFS(lowers, upper), OverlayFS(lowers, FaultyFS(upper))
    plain.listdir("/")
    wrapped.writetext("w", "via the wrapper")
    assert plain.readtext("w") == "via the wrapper"
    on_sub, on_sub_too = OverlayFS(lowers, upper.opendir("sub")), OverlayFS(lowers, upper.opendir("/sub"))
    on_sub.listdir("/")
    on_sub_too.writetext("s", "sub")
    assert on_sub.readtext("s") == "sub"


_OPEN_IN_CHILD = """
import sys, unionfs
from fs.memoryfs import MemoryFS
try:
    unionfs.OverlayFS(MemoryFS(), sys.argv[1])
except unionfs.UpperInUse as error:
    print("refused:", error)
    sys.exit(3)
print("opened")
"""


def _open_in_child(upper_dir: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _OPEN_IN_CHILD, upper_dir], capture_output=True, text=True, timeout=120)


def test_another_process_is_refused_while_the_upper_is_open(tmp_path):
    upper_dir = tmp_path / "upper"
    upper_dir.mkdir()
    overlay = OverlayFS(MemoryFS(), OSFS(str(upper_dir)))
    record = (upper_dir / ".unionfs" / "lock").read_text().split()
    assert int(record[0]) == os.getpid()
    child = _open_in_child(str(upper_dir))
    assert child.returncode == 3, child.stdout + child.stderr
    assert "in use by process %d" % os.getpid() in child.stdout
    overlay.close()
    assert not (upper_dir / ".unionfs" / "lock").exists()
    child = _open_in_child(str(upper_dir))
    assert child.returncode == 0 and "opened" in child.stdout, child.stderr


def test_a_stale_lock_record_is_taken_over(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    upper = OSFS(str(tmp_path))
    OverlayFS(MemoryFS(), upper).close()
    import socket

    upper.writetext(LOCK_PATH, "%d %s\n" % (dead_pid, socket.gethostname()))
    overlay = OverlayFS(MemoryFS(), upper)
    assert upper.readtext(LOCK_PATH).split()[0] == str(os.getpid())
    overlay.close()
    # the OS lock decides, not the record: a record naming another host (another PID
    # namespace, a pid reused) with no live lock behind it is stale too
    upper.writetext(LOCK_PATH, "%d some-other-host\n" % dead_pid)
    overlay = OverlayFS(MemoryFS(), upper)
    assert upper.readtext(LOCK_PATH).split() == [str(os.getpid()), socket.gethostname()]
    overlay.close()


def test_two_overlays_of_one_process_over_one_directory_share_it(tmp_path):
    first = OverlayFS(MemoryFS(), OSFS(str(tmp_path)))
    second = OverlayFS(MemoryFS(), OSFS(str(tmp_path)))  # another FS object, same directory
    first.listdir("/")
    second.writetext("x", "from the second")
    assert first.readtext("x") == "from the second"
    first.close()
    assert (tmp_path / ".unionfs" / "lock").exists()  # the second still holds it
    second.close()
    assert not (tmp_path / ".unionfs" / "lock").exists()


def test_a_finalizer_running_inside_join_does_not_deadlock(tmp_path, monkeypatch, guard_lower):
    """Regression: the garbage collector may finalize an unreachable overlay (its ``leave``)
    while the same thread is inside ``sharing.join``; that used to wait forever for the
    registry lock the thread itself held."""
    import gc
    import threading

    from fs.osfs import OSFS

    from unionfs.core import sharing

    lower = guard_lower(MemoryFS())
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    garbage = OverlayFS(lower, OSFS(str(tmp_path / "first")))
    garbage.cycle = garbage  # only the cyclic collector can free it
    del garbage
    refuse_cycle = sharing._refuse_cycle

    def collecting(*args):
        gc.collect()  # runs the finalizer of the overlay above, inside join()
        return refuse_cycle(*args)

    monkeypatch.setattr(sharing, "_refuse_cycle", collecting)
    opened = []
    worker = threading.Thread(target=lambda: opened.append(OverlayFS(lower, OSFS(str(tmp_path / "second")))))
    worker.daemon = True
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "OverlayFS() deadlocked in sharing.join"
    monkeypatch.setattr(sharing, "_refuse_cycle", refuse_cycle)
    # the queued departure was finished by the next registry call: the first upper is free again
    OverlayFS(lower, OSFS(str(tmp_path / "first"))).close()
    assert not (tmp_path / "first" / ".unionfs" / "lock").exists()


def test_an_overlay_that_is_never_closed_releases_the_upper_when_collected(tmp_path):
    import gc

    overlay = OverlayFS(MemoryFS(), OSFS(str(tmp_path)))
    assert (tmp_path / ".unionfs" / "lock").exists()
    del overlay
    gc.collect()
    assert not (tmp_path / ".unionfs" / "lock").exists()
    assert _open_in_child(str(tmp_path)).returncode == 0


def test_a_leave_that_finds_the_registry_busy_is_finished_by_the_next_join(tmp_path):
    """What a garbage-collection finalizer inside join() would meet: no deadlock, no lost leave."""
    from unionfs.core import sharing

    upper = OSFS(str(tmp_path))
    overlay = OverlayFS(MemoryFS(), upper)
    with sharing._registry_lock:
        overlay.close()  # the registry is busy: the leave is deferred, not deadlocked
        assert (tmp_path / ".unionfs" / "lock").exists()
    OverlayFS(MemoryFS(), MemoryFS()).close()  # any join or leave finishes it
    assert not (tmp_path / ".unionfs" / "lock").exists()


def test_an_overlay_finishes_what_another_overlay_of_the_upper_left_in_the_journal(guard_lower):
    """Overlay B's movedir fails twice (a crash in its process's view of the upper) and leaves
    its intent pending; overlay A over the same upper must finish it before A's next write,
    not write into the half-moved tree."""
    from unionfs.testing.faults import FaultyFS, InjectedFault

    lower = guard_lower(trees.make_tree(MemoryFS(), {"src/" + name: name for name in ("one", "two", "deep/three")}))
    upper = MemoryFS()
    # the copying movedir (redirect_dir=False, metacopy=False) is the journaled one; with redirects a rename
    # to a new name is one atomic step and has nothing to leave pending
    first = OverlayFS([lower], upper, redirect_dir=False, metacopy=False)
    assert sorted(first.listdir("src")) == ["deep", "one", "two"]
    with_sidecar = MemoryFS()
    OverlayFS([lower], with_sidecar).close()
    counting = FaultyFS(with_sidecar)
    OverlayFS([lower], counting, redirect_dir=False, metacopy=False).movedir("src", "dst", create=True)
    second = OverlayFS([lower], FaultyFS(upper, counting.calls // 2, "crash"), redirect_dir=False, metacopy=False)
    with pytest.raises(InjectedFault):
        second.movedir("src", "dst", create=True)
    with pytest.raises(errors.ResourceNotFound):
        first.writetext("src/late", "would land in a tree that is moving away")
    assert [(i.operation, i.src) for i in first.recovered] == [("movedir", "/src")]
    assert not first.exists("src") and first.readtext("dst/deep/three") == "deep/three"
    assert upper.readtext("/.unionfs/FORMAT") == FORMAT_TEXT


def test_a_sidecar_broken_behind_an_overlays_back_is_an_error_not_a_deadlock(guard_lower):
    """When another overlay wrote, the next call re-reads FORMAT; if someone garbled it in
    between, that call raises SidecarError and the shared lock is free for everyone else."""
    from unionfs import SidecarError

    lower = guard_lower(MemoryFS())
    upper = MemoryFS()
    first, second = OverlayFS([lower], upper), OverlayFS([lower], upper)
    second.writetext("x", "x")
    upper.writetext("/.unionfs/FORMAT", "garbage")
    with pytest.raises(SidecarError):
        first.listdir("/")
    done = []
    worker = threading.Thread(target=lambda: done.append(second.readtext("x")), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert done == ["x"]
