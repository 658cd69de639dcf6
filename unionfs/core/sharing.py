"""Several overlays over one upper: shared safely within a process, refused across processes.

An overlay caches what the upper's directories hold, so a second overlay writing to the
same upper would leave the first one's caches stale. Within one process every overlay
over the same upper (the same FS object, or wrappers and sub-directories of it, or OSFS
objects of the same directory) shares one :class:`SharedUpper`: one lock serialises
them, and a generation count, bumped whenever one of them wrote, tells each overlay to
drop its caches before it next looks. Across processes no lock can be shared, so an
upper with a system path gets a lock record, ``/.unionfs/lock`` ("<pid> <host>"), and a
second process is refused with :class:`unionfs.UpperInUse`; a record whose process is
gone (same host, pid not running) is stale and taken over.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any, Callable, Dict, Hashable, List, Optional, Tuple

import attr

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs import errors
from fs.base import FS
from fs.wrapfs import WrapFS

from ..errors import UpperInUse
from .sidecar import LOCK_PATH

_registry: Dict[Hashable, "SharedUpper"] = {}
_registry_lock = threading.Lock()
_pending_leaves: List["SharedUpper"] = []  # leaves that found the registry busy


@attr.s(eq=False)
class SharedUpper:
    """What the overlays of one process over one upper share."""

    key: Hashable = attr.ib()
    lock: Any = attr.ib(factory=threading.RLock)
    #: how many times one of the overlays changed the upper
    generation: int = attr.ib(default=0)
    users: int = attr.ib(default=0)
    #: the upper FS holding our lock record, if we wrote one
    record_fs: Optional[FS] = attr.ib(default=None)


def upper_key(upper_fs: FS) -> Hashable:
    """What identifies an upper: its real directory if it has one, else the innermost FS
    object under any wrappers plus the sub-directory they expose."""
    path = "/"
    while isinstance(upper_fs, WrapFS):
        upper_fs, path = upper_fs.delegate_path(path)
    try:
        return ("dir", os.path.realpath(upper_fs.getsyspath(path)))
    except errors.NoSysPath:
        return ("fs", id(upper_fs), path)


def _has_syspath(upper_fs: FS) -> bool:
    try:
        upper_fs.getsyspath("/")
    except errors.NoSysPath:
        return False
    return True


def join(upper_fs: FS) -> SharedUpper:
    """Register one more overlay over ``upper_fs``; the first of a process takes the lock record."""
    key = upper_key(upper_fs)
    with _registry_lock:
        while _pending_leaves:
            _leave_locked(_pending_leaves.pop())
        shared = _registry.get(key)
        if shared is None:
            shared = SharedUpper(key)
            if _has_syspath(upper_fs):
                _take_record(upper_fs)
                shared.record_fs = upper_fs
            _registry[key] = shared
        shared.users += 1
        return shared


def leave(shared: SharedUpper) -> None:
    """One overlay fewer; the last one removes the lock record. Also the finalizer of an
    overlay that was never closed: garbage collection may run it anywhere, even inside
    :func:`join` of this thread, so when the registry is busy the leave waits for the next
    :func:`join` or :func:`leave` instead of deadlocking."""
    if not _registry_lock.acquire(blocking=False):
        _pending_leaves.append(shared)
        return
    try:
        _leave_locked(shared)
        while _pending_leaves:
            _leave_locked(_pending_leaves.pop())
    finally:
        _registry_lock.release()


def _leave_locked(shared: SharedUpper) -> None:
    shared.users -= 1
    if shared.users > 0:
        return
    if _registry.get(shared.key) is shared:
        del _registry[shared.key]
    if shared.record_fs is not None:
        try:
            if _read_record(shared.record_fs) == _this_process():
                shared.record_fs.remove(LOCK_PATH)
        except errors.FSError:
            pass  # the upper is closed or gone; the record is stale and will be taken over


def _this_process() -> Tuple[int, str]:
    return os.getpid(), socket.gethostname()


def _read_record(upper_fs: FS) -> Optional[Tuple[int, str]]:
    """The (pid, host) of the lock record; ``(0, "")`` for one that was never completed."""
    try:
        words = upper_fs.readtext(LOCK_PATH).split()
    except errors.ResourceNotFound:
        return None
    if len(words) != 2 or not words[0].isdigit():
        return 0, ""
    return int(words[0]), words[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _take_record(upper_fs: FS) -> None:
    pid, host = _this_process()
    holder = _read_record(upper_fs)
    if holder is not None:
        holder_pid, holder_host = holder
        unfinished = holder == (0, "")  # a crash between creating the record and writing it
        stale = unfinished or (holder_host == host and (holder_pid == pid or not _alive(holder_pid)))
        if not stale:
            raise UpperInUse(
                msg="the upper %r is in use by process %d on %s (lock record %s); close that overlay "
                "first, or delete the record if that process is gone" % (upper_fs, holder_pid, holder_host, LOCK_PATH)
            )
        upper_fs.remove(LOCK_PATH)
    try:
        with upper_fs.openbin(LOCK_PATH, "x") as record:
            record.write(("%d %s\n" % (pid, host)).encode("utf-8"))
    except errors.FileExists:  # another process was quicker
        raise UpperInUse(msg="the upper %r was locked by another process just now" % (upper_fs,)) from None


class InstanceLock:
    """One overlay's view of the shared lock: entering it drops the overlay's caches if
    another overlay changed the upper; leaving it after a write tells the others. On the
    path of every call, so kept to a lock acquisition and one comparison."""

    def __init__(self, shared: SharedUpper, on_stale: Callable[[], None]) -> None:
        self.shared = shared
        self._on_stale = on_stale
        self._seen = shared.generation
        self._acquire = shared.lock.acquire
        self._release = shared.lock.release
        #: set by a writing operation; the release that follows tells the other overlays
        self.wrote = False

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not self._acquire(blocking, timeout):
            return False
        if self._seen != self.shared.generation:
            self._catch_up()
        return True

    def _catch_up(self) -> None:
        """Drop the stale caches; if that fails (a sidecar made unreadable), give the lock
        back before raising, or every other thread would wait for ever."""
        try:
            self._on_stale()
        except BaseException:
            self._release()
            raise
        self._seen = self.shared.generation

    def release(self) -> None:
        if self.wrote:
            self.wrote = False
            self.shared.generation += 1
            self._seen = self.shared.generation
        self._release()

    def __enter__(self) -> "InstanceLock":
        self._acquire()
        if self._seen != self.shared.generation:
            self._catch_up()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()
