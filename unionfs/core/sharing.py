"""Several overlays over one upper: shared safely within a process, refused across processes.

An overlay caches what the upper's directories hold, so a second overlay writing to the
same upper would leave the first one's caches stale. Within one process every overlay
over the same upper (the same FS object, or wrappers and sub-directories of it, or OSFS
objects of the same directory) shares one :class:`SharedUpper`: one lock serialises
them, and a generation count, bumped whenever one of them wrote, tells each overlay to
drop its caches before it next looks. Across processes an upper on disk is locked by
the OS (:class:`OSLock`, ``flock(2)`` on ``/.unionfs/lock``, which also names the holder
for humans): a second process, or a fork()ed child of the holder, gets
:class:`unionfs.UpperInUse`; the kernel releases the lock when the holder dies.
"""

from __future__ import annotations

import fcntl
import os
import socket
import stat
import threading
from typing import Any, Callable, Collection, Dict, Hashable, List, Optional, Tuple

import attr

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs import errors
from fs.base import FS
from fs.wrapfs import WrapFS

from ..errors import SidecarError, UnsupportedLayer, UpperInUse
from .identity import identity
from .sidecar import LINK_REASON, LOCK_PATH, RESERVED_NAME, SIDECAR_DIR

_registry: Dict[Hashable, "SharedUpper"] = {}
_registry_lock = threading.Lock()
#: leaves (shared upper, nested keys) that found the registry busy
_pending_leaves: List[Tuple["SharedUpper", Tuple[Hashable, ...]]] = []


class OSLock:
    """An exclusive ``flock(2)`` on ``/.unionfs/lock`` of an on-disk upper, held (its
    descriptor open) for as long as overlays of this process use the upper. The kernel
    releases it when the holder dies however it dies, so there is no stale lock to take
    over, no pid to trust (a pid of another PID namespace means nothing here) and no race:
    exactly one open file description holds it. The file also holds a record for humans,
    ``"<pid> <host>"``, written after the lock is taken and removed before it is released."""

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path

    @classmethod
    def take(cls, root: str, display: Any) -> "OSLock":
        """Lock the upper whose real directory is ``root``; :class:`UpperInUse` naming the
        holder if another process (or a fork()ed parent) has it. Writes nothing to the
        sidecar before the lock is held but the sidecar directory and the lock file."""
        sidecar_dir = os.path.join(root, RESERVED_NAME)
        path = os.path.join(sidecar_dir, "lock")
        try:
            os.mkdir(sidecar_dir)
        except FileExistsError:
            pass
        except OSError as error:
            raise SidecarError(SIDECAR_DIR, "cannot make the sidecar directory (%s)" % error.strerror) from None
        mode = os.lstat(sidecar_dir).st_mode  # lstat: never lock through a link
        if stat.S_ISLNK(mode):
            raise SidecarError(SIDECAR_DIR, LINK_REASON)
        if not stat.S_ISDIR(mode):
            raise SidecarError(SIDECAR_DIR, "it is a file, not a directory")
        for _attempt in range(1000):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            except IsADirectoryError:
                raise SidecarError(LOCK_PATH, "the lock record is a directory") from None
            except OSError as error:
                raise SidecarError(LOCK_PATH, "cannot open the lock file (%s)" % error.strerror) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_record(fd)
                os.close(fd)
                raise UpperInUse(
                    msg="the upper %r is in use by %s (lock %s); close that overlay first"
                    % (display, holder or "another process", LOCK_PATH)
                ) from None
            except BaseException:
                os.close(fd)
                raise
            # A holder that released the lock unlinked the file first: locking that old
            # file means nothing, so lock the one the name now gives.
            if _same_file(fd, path):
                record = ("%d %s\n" % (os.getpid(), socket.gethostname())).encode("utf-8")
                os.ftruncate(fd, 0)
                os.pwrite(fd, record, 0)
                return cls(fd, path)
            os.close(fd)
        raise UpperInUse(msg="the upper %r: its lock file kept changing under us (%s)" % (display, LOCK_PATH))

    def release(self) -> None:
        """Remove the record (while still holding the lock), then release the lock."""
        if self.fd < 0:
            return
        try:
            if _same_file(self.fd, self.path):
                os.unlink(self.path)
        except OSError:
            pass  # the upper is gone or read-only now; the next holder rewrites the record
        finally:
            os.close(self.fd)
            self.fd = -1

    def drop_inherited(self) -> None:
        """In a fork()ed child: close the child's copy of the descriptor. The lock stays
        with the parent (it belongs to the open file description, which the parent still
        has open); nothing is unlocked or unlinked."""
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1


def _same_file(fd: int, path: str) -> bool:
    try:
        named = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _read_record(fd: int) -> Optional[str]:
    """The holder named by the lock file, as "process <pid> on <host>", if it says."""
    try:
        words = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
    except OSError:
        return None
    if len(words) != 2 or not words[0].isdigit():
        return None
    return "process %s on %s" % (words[0], words[1])


@attr.s(eq=False)
class SharedUpper:
    """What the overlays of one process over one upper share."""

    key: Hashable = attr.ib()
    lock: Any = attr.ib(factory=threading.RLock)
    #: how many times one of the overlays changed the upper
    generation: int = attr.ib(default=0)
    users: int = attr.ib(default=0)
    #: the OS-level lock of an on-disk upper
    os_lock: Optional[OSLock] = attr.ib(default=None)
    #: the process that opened it; a fork()ed child inherits the object, not the lock
    pid: int = attr.ib(factory=os.getpid)
    inherited: bool = attr.ib(default=False)
    #: the uppers (keys) whose locks an operation of these overlays may take while holding
    #: this one: uppers of lowers that are overlays themselves, with a count of such lowers
    nested: Dict[Hashable, int] = attr.ib(factory=dict)


def upper_key(upper_fs: FS) -> Hashable:
    """What identifies an upper: its storage as :func:`unionfs.core.identity.identity` sees it
    (its real directory if it has one, else the innermost FS object under any wrappers plus
    the sub-directory they expose)."""
    found = identity(upper_fs)
    assert found is not None
    return found.key()


def nested_uppers(lowers: Collection[FS]) -> Tuple[Hashable, ...]:
    """The keys of the uppers of those ``lowers`` that are overlays (seen through wrappers and
    ``SubFS``): their operations take those uppers' locks while the outer one is held. An
    overlay says which upper it has through its public ``shared_upper`` property."""
    keys = []
    for lower in lowers:
        while isinstance(lower, WrapFS):
            lower = lower.delegate_fs()
        shared = getattr(lower, "shared_upper", None)
        if isinstance(shared, SharedUpper):
            keys.append(shared.key)
    return tuple(dict.fromkeys(keys))


def join(upper_fs: FS, nested: Collection[Hashable] = ()) -> SharedUpper:
    """Register one more overlay over ``upper_fs``: the first of a process takes the OS lock
    of an on-disk upper, before anything is written to its sidecar. ``nested``: the keys of
    the uppers of this overlay's lowers that are overlays; an overlay that would close a
    cycle of them (each waiting for the other's lock from two threads) is refused."""
    key = upper_key(upper_fs)
    with _registry_lock:
        while _pending_leaves:
            _leave_locked(_pending_leaves.pop())
        _refuse_cycle(key, nested, upper_fs)
        shared = _registry.get(key)
        if shared is None:
            shared = SharedUpper(key)
            if isinstance(key, tuple) and key[0] == "dir":  # on disk: lock it for the OS too
                shared.os_lock = OSLock.take(str(key[1]), upper_fs)
            _registry[key] = shared
        shared.users += 1
        for other in nested:
            shared.nested[other] = shared.nested.get(other, 0) + 1
        return shared


def _refuse_cycle(key: Hashable, nested: Collection[Hashable], upper_fs: FS) -> None:
    """Refuse an overlay whose lowers' operations would take, under its upper's lock, the lock
    of an upper whose own overlays take this one: two threads would wait for each other."""
    seen = set()
    todo = list(nested)
    while todo:
        other = todo.pop()
        if other == key:
            raise UnsupportedLayer(
                msg="the upper %r is also the upper of an overlay below one of its lowers: the two "
                "overlays would wait for each other's lock" % (upper_fs,)
            )
        if other in seen:
            continue
        seen.add(other)
        below = _registry.get(other)
        if below is not None:
            todo.extend(below.nested)


def leave(shared: SharedUpper, nested: Collection[Hashable] = ()) -> None:
    """One overlay fewer; the last one releases the OS lock. Also the finalizer of an
    overlay that was never closed: garbage collection may run it anywhere, even inside
    :func:`join` of this thread, so when the registry is busy the leave waits for the next
    :func:`join` or :func:`leave` instead of deadlocking."""
    if not _registry_lock.acquire(blocking=False):
        _pending_leaves.append((shared, tuple(nested)))
        return
    try:
        _leave_locked((shared, tuple(nested)))
        while _pending_leaves:
            _leave_locked(_pending_leaves.pop())
    finally:
        _registry_lock.release()


def _leave_locked(item: Tuple[SharedUpper, Tuple[Hashable, ...]]) -> None:
    shared, nested = item
    if shared.inherited:
        return  # the parent's: nothing of it is this process's to release
    for other in nested:
        count = shared.nested.get(other, 0) - 1
        if count > 0:
            shared.nested[other] = count
        else:
            shared.nested.pop(other, None)
    shared.users -= 1
    if shared.users > 0:
        return
    if _registry.get(shared.key) is shared:
        del _registry[shared.key]
    if shared.os_lock is not None:
        shared.os_lock.release()


def _after_fork_in_child() -> None:
    """A fork()ed child inherits the parent's overlays but must not use them: the OS lock is
    the parent's (flock belongs to the open file description, shared across fork), so the
    child would write under the parent's lock, empty its staging area and break its
    copy-ups. Mark every inherited upper; the child must open overlays of its own, and is
    refused while the parent holds the upper."""
    global _registry_lock
    _registry_lock = threading.Lock()
    for shared in _registry.values():
        if shared.os_lock is not None:
            shared.inherited = True
            shared.os_lock.drop_inherited()
    _registry.clear()
    del _pending_leaves[:]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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

    def _refuse_inherited(self) -> None:
        raise UpperInUse(
            msg="this overlay was opened by process %d, the parent of this fork()ed process: a child "
            "must open its own overlay (refused while the parent holds the upper)" % self.shared.pid
        )

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self.shared.inherited:
            self._refuse_inherited()
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

    def release(self, *_exc_info: Any) -> None:
        if self.wrote:
            self.wrote = False
            self.shared.generation += 1
            self._seen = self.shared.generation
        self._release()

    def __enter__(self) -> "InstanceLock":
        if self.shared.inherited:
            self._refuse_inherited()
        self._acquire()
        if self._seen != self.shared.generation:
            self._catch_up()
        return self

    #: (release itself, not a call of it: every operation of the overlay ends here)
    __exit__ = release
