"""The cross-process lock of an on-disk upper (issue 10 items 7 and 12), with real processes.

The lock is ``flock(2)`` on ``/.unionfs/lock`` (``unionfs.core.sharing.OSLock``): exclusive
under any race, released by the kernel when the holder dies (kill -9 included), blind to
pids (so another PID namespace cannot take it over), taken before anything is written to
the sidecar, and not inherited by a fork()ed child (which is refused). Two overlays whose
lowers are overlays of each other's upper are refused instead of deadlocking.

``test_eight_processes_race_for_the_upper`` runs rounds of 8 worker processes that all try
to open an overlay over one upper at the same moment: over a stale lock record (a dead
pid), over the lock of a holder just killed with SIGKILL, over a live holder, and over a
winner killed -9 while the others race again. Each round must end with exactly one holder
(none while a live holder has it) and every other process refused with ``UpperInUse``.
The counts are printed.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from typing import Dict, List, Optional

import pytest

import unionfs  # noqa: F401
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS

from unionfs import OverlayFS, UnsupportedLayer, UpperInUse
from unionfs.core.sidecar import LOCK_PATH, STAGING_DIR
from unionfs.testing import trees

from tests.support.reliability_support import COUNTS

WORKERS = 8
ROUNDS = {"stale record": 10, "holder killed -9": 4, "live holder": 4, "winner killed -9 mid-race": 4}

_WORKER = textwrap.dedent(
    """
    import os, sys, time
    import unionfs
    from fs.memoryfs import MemoryFS

    control, upper, me = sys.argv[1], sys.argv[2], sys.argv[3]

    def wait_for(name):
        while not os.path.exists(os.path.join(control, name)):
            if os.path.exists(os.path.join(control, "stop")):
                sys.exit(0)
            time.sleep(0.0005)

    def report(name, text):
        staged = os.path.join(control, ".%s.%s" % (name, me))
        with open(staged, "w") as out:
            out.write(text)
        os.rename(staged, os.path.join(control, "%s.%s" % (name, me)))

    attempt = 0
    while True:
        wait_for("go%d" % attempt)
        overlay = None
        try:
            overlay = unionfs.OverlayFS(MemoryFS(), upper)
            overlay.writetext("holder", me)  # a holder writes to the upper
            result = "opened"
        except unionfs.UpperInUse as error:
            result = "refused " + str(error)
        except BaseException as error:
            result = "error %s: %s" % (type(error).__name__, error)
        report("result%d" % attempt, result)
        if overlay is not None:
            wait_for("done%d" % attempt)
            overlay.close()
        report("closed%d" % attempt, "")
        attempt += 1
    """
)

_HOLDER = textwrap.dedent(
    """
    import sys, time
    import unionfs
    from fs.memoryfs import MemoryFS

    overlay = unionfs.OverlayFS(MemoryFS(), sys.argv[1])
    overlay.writetext("held-by-holder", "x")
    print("holding", flush=True)
    time.sleep(600)
    """
)


class Workers:
    """``WORKERS`` processes that try to open the upper once per attempt, all at once."""

    def __init__(self, control: str, upper: str) -> None:
        self.control = control
        self.upper = upper
        self.attempt = 0
        self.procs: Dict[str, subprocess.Popen] = {}
        for number in range(WORKERS):
            self.spawn("w%d" % number)

    def spawn(self, me: str) -> None:
        """Start worker ``me`` (again), taking part from the current attempt on."""
        script = _WORKER.replace("attempt = 0", "attempt = %d" % self.attempt)
        self.procs[me] = subprocess.Popen([sys.executable, "-c", script, self.control, self.upper, me])

    def _file(self, name: str) -> str:
        return os.path.join(self.control, name)

    def _wait(self, names: List[str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not all(os.path.exists(self._file(name)) for name in names):
            for me, proc in self.procs.items():
                assert proc.poll() is None or proc.returncode == -signal.SIGKILL, "worker %s died (%s)" % (me, proc.returncode)
            assert time.monotonic() < deadline, "workers did not report: %s" % names
            time.sleep(0.001)

    def race(self, alive: Optional[List[str]] = None) -> Dict[str, str]:
        """One attempt of every (living) worker at the same moment: their results."""
        alive = alive if alive is not None else [me for me, proc in self.procs.items() if proc.poll() is None]
        attempt = self.attempt
        open(self._file("go%d" % attempt), "w").close()
        self._wait(["result%d.%s" % (attempt, me) for me in alive])
        results = {}
        for me in alive:
            with open(self._file("result%d.%s" % (attempt, me))) as handle:
                results[me] = handle.read()
        return results

    def finish(self, alive: List[str]) -> None:
        open(self._file("done%d" % self.attempt), "w").close()
        self._wait(["closed%d.%s" % (self.attempt, me) for me in alive])
        self.attempt += 1

    def kill(self, me: str) -> None:
        self.procs[me].send_signal(signal.SIGKILL)
        self.procs[me].wait()

    def close(self) -> None:
        open(self._file("stop"), "w").close()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _holder(upper: str) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, upper], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


def _dead_pid() -> int:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(gone.stdout)


def _check(results: Dict[str, str], holders: int, round_name: str, counts: Dict[str, int]) -> List[str]:
    opened = [me for me, result in results.items() if result == "opened"]
    refused = [me for me, result in results.items() if result.startswith("refused")]
    errors = {me: result for me, result in results.items() if me not in opened and me not in refused}
    assert not errors, "%s: %s" % (round_name, errors)
    assert len(opened) == holders, "%s: %d holders %s" % (round_name, len(opened), results)
    counts["attempts"] += len(results)
    counts["refused"] += len(refused)
    return opened


def test_eight_processes_race_for_the_upper(tmp_path):
    upper = tmp_path / "upper"
    upper.mkdir()
    control = tmp_path / "control"
    control.mkdir()
    OverlayFS(MemoryFS(), str(upper)).close()
    workers = Workers(str(control), str(upper))
    counts = {name: 0 for name in ROUNDS}
    counts.update(attempts=0, refused=0, kills=0)
    import socket

    dead_pid = _dead_pid()
    try:
        for _ in range(ROUNDS["stale record"]):
            # a record left by a process that is gone, with no lock behind it
            (upper / ".unionfs" / "lock").write_text("%d %s\n" % (dead_pid, socket.gethostname()))
            opened = _check(workers.race(), 1, "stale record", counts)
            workers.finish(list(workers.procs))
            counts["stale record"] += 1
        for _ in range(ROUNDS["holder killed -9"]):
            holder = _holder(str(upper))
            holder.send_signal(signal.SIGKILL)
            holder.wait()
            counts["kills"] += 1
            assert (upper / ".unionfs" / "lock").exists()  # its record is left, its lock is not
            _check(workers.race(), 1, "holder killed -9", counts)
            workers.finish(list(workers.procs))
            counts["holder killed -9"] += 1
        holder = _holder(str(upper))
        try:
            for _ in range(ROUNDS["live holder"]):
                results = workers.race()
                _check(results, 0, "live holder", counts)
                assert all("process %d" % holder.pid in result for result in results.values()), results
                workers.finish(list(workers.procs))
                counts["live holder"] += 1
        finally:
            holder.kill()
            holder.wait()
        for _ in range(ROUNDS["winner killed -9 mid-race"]):
            alive = list(workers.procs)
            opened = _check(workers.race(alive), 1, "winner killed -9", counts)
            workers.kill(opened[0])  # the holder dies holding the lock, mid-round
            counts["kills"] += 1
            alive.remove(opened[0])
            workers.finish(alive)
            again = _check(workers.race(alive), 1, "after the winner was killed", counts)
            workers.finish(alive)
            workers.spawn(opened[0])  # a fresh worker joins at the next attempt
            counts["winner killed -9 mid-race"] += 1
            assert again
    finally:
        workers.close()
    summary = ", ".join("%s %d" % item for item in counts.items())
    COUNTS["upper lock: 8 processes racing"] = summary
    print("\nupper lock race: %s" % summary)
    # the upper is whole: a new overlay opens, fsck finds nothing beyond staging leftovers
    overlay = OverlayFS(MemoryFS(), str(upper))
    assert overlay.readtext("holder").startswith("w")
    assert all(finding.kind == "staging" for finding in overlay.fsck().findings)
    overlay.close()


# -------------------------------------------------------------------------------------------------
# fork, PID namespaces, the order of lock and sidecar, cycles
# -------------------------------------------------------------------------------------------------


def _child_opens(upper: str, queue: "multiprocessing.Queue[str]", inherited: OverlayFS) -> None:
    try:
        inherited.listdir("/")
        queue.put("the inherited overlay worked")
    except UpperInUse:
        queue.put("inherited refused")
    try:
        OverlayFS(MemoryFS(), upper).close()
        queue.put("opened")
    except UpperInUse as error:
        queue.put("refused " + str(error))


def test_a_forked_child_is_refused_and_leaves_the_parent_alone(tmp_path):
    """Regression (item 12): a multiprocessing "fork" child opened a new overlay over the
    parent's upper (the flock is shared across fork, the in-process registry was inherited),
    emptied ``/.unionfs/tmp`` and broke the parent's in-flight copy-up."""
    upper = str(tmp_path)
    parent = OverlayFS(MemoryFS(), upper)
    parent.writetext("mine", "parent")
    in_flight = os.path.join(upper, STAGING_DIR.lstrip("/"), "copy-up-in-flight")
    with open(in_flight, "w") as handle:
        handle.write("a copy-up the parent is making")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_opens, args=(upper, queue, parent))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert queue.get(timeout=10) == "inherited refused"
    answer = queue.get(timeout=10)
    assert answer.startswith("refused") and "process %d" % os.getpid() in answer, answer
    assert os.path.exists(in_flight), "the child emptied the parent's staging area"
    assert parent.readtext("mine") == "parent"  # the parent still holds and uses it
    parent.writetext("mine", "still the parent's")
    parent.close()
    # once the parent is done, a child may open it
    child = context.Process(target=_child_opens, args=(upper, queue, OverlayFS(MemoryFS(), MemoryFS())))
    child.start()
    child.join(60)
    assert queue.get(timeout=10) == "the inherited overlay worked"
    assert queue.get(timeout=10) == "opened"


def test_another_pid_namespace_cannot_take_a_live_lock(tmp_path):
    """Regression (item 12): a process in another PID namespace saw the holder's pid as not
    running and took over its lock record. The OS lock knows no pids."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("cannot make a PID namespace here: %s" % probe.stderr.strip())
    holder = _holder(str(tmp_path))
    try:
        script = (
            "import os, sys, unionfs; from fs.memoryfs import MemoryFS\n"
            "print('pid', os.getpid())\n"
            "try:\n    unionfs.OverlayFS(MemoryFS(), sys.argv[1])\nexcept unionfs.UpperInUse as e:\n"
            "    print('refused', e); sys.exit(3)\nprint('opened')\n"
        )
        child = subprocess.run(
            ["unshare", "--pid", "--fork", sys.executable, "-c", script, str(tmp_path)],
            capture_output=True, text=True, timeout=120,
        )
        assert "pid 1\n" in child.stdout  # really another namespace: the holder's pid means nothing there
        assert child.returncode == 3, child.stdout + child.stderr
    finally:
        holder.kill()
        holder.wait()


def _record(full: str, status: os.stat_result) -> object:
    """Mode, time and bytes (a link's target) of one entry: what a refused process must not touch."""
    if stat.S_ISREG(status.st_mode):
        content: object = open(full, "rb").read()
    else:
        content = os.readlink(full) if stat.S_ISLNK(status.st_mode) else None
    return (status.st_mode, status.st_mtime_ns, content)


def test_a_refused_process_writes_nothing_to_the_sidecar(tmp_path):
    """Regression (item 12): the sidecar was written (FORMAT, the staging area) before the
    lock was taken, so even a process that was then refused changed the holder's upper."""
    holder = _holder(str(tmp_path))
    try:
        shutil.rmtree(tmp_path / ".unionfs" / "tmp")  # something an opening process would make
        before = trees.disk_snapshot(str(tmp_path), _record)
        child = subprocess.run(
            [sys.executable, "-c", "import sys, unionfs; from fs.memoryfs import MemoryFS\n"
             "try:\n    unionfs.OverlayFS(MemoryFS(), sys.argv[1])\nexcept unionfs.UpperInUse:\n    sys.exit(3)\n",
             str(tmp_path)],
            capture_output=True, text=True, timeout=120,
        )
        assert child.returncode == 3, child.stderr
        assert trees.disk_snapshot(str(tmp_path), _record) == before
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_released_when_the_holder_is_killed(tmp_path):
    holder = _holder(str(tmp_path))
    with pytest.raises(UpperInUse, match="process %d" % holder.pid):
        OverlayFS(MemoryFS(), OSFS(str(tmp_path)))
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    overlay = OverlayFS(MemoryFS(), OSFS(str(tmp_path)))  # no stale state to take over
    assert overlay.readtext("held-by-holder") == "x"
    assert (tmp_path / LOCK_PATH.lstrip("/")).read_text().split()[0] == str(os.getpid())
    overlay.close()


def test_overlays_over_each_others_uppers_are_refused_not_deadlocked(tmp_path):
    """Regression (item 12): overlay A (upper UA) over an overlay of UB and overlay C (upper UB)
    over an overlay of UA take the two upper locks in opposite orders: two threads deadlocked."""
    base = MemoryFS()
    base.writetext("f", "base")
    upper_a, upper_b = MemoryFS(), MemoryFS()
    view_a, view_b = OverlayFS(base, upper_a), OverlayFS(base, upper_b)
    over_b = OverlayFS([view_b], upper_a)  # lock UA, then (reading its lower) UB
    with pytest.raises(UnsupportedLayer, match="wait for each other"):
        OverlayFS([view_a], upper_b)  # lock UB, then UA: refused
    # the refusal left nothing behind: without over_b the same overlay is fine
    over_b.close()
    over_a = OverlayFS([view_a], upper_b)
    done: List[str] = []

    def reads(overlay: OverlayFS) -> None:
        for _ in range(200):
            overlay.readtext("f")
        done.append("ok")

    threads = [threading.Thread(target=reads, args=(overlay,), daemon=True) for overlay in (over_a, view_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert done == ["ok", "ok"]
    over_a.close()


def test_an_overlay_names_its_shared_upper_publicly_and_nesting_reads_it():
    """The uppers nested below an overlay are found through the public ``shared_upper`` of a
    lower overlay (seen through wrappers), not through the overlay's private state."""
    from fs.wrap import WrapReadOnly

    from unionfs.core import sharing

    upper = MemoryFS()
    view = OverlayFS(MemoryFS(), upper)
    read_only = OverlayFS(MemoryFS())
    assert view.shared_upper is not None and view.shared_upper.key == sharing.upper_key(upper)
    assert read_only.shared_upper is None
    assert sharing.nested_uppers([WrapReadOnly(view), read_only, MemoryFS()]) == (view.shared_upper.key,)
    view.close()
    read_only.close()
