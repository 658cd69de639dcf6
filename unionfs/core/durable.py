"""Durability (the kernel's ``fsync`` in copy-up, ``volatile`` to turn it off): what reaches
the disk before an operation counts.

A rename makes a staged file visible atomically, but only on a running system: after a
power cut the rename may have reached the disk while the file's data did not (ext4's
delayed allocation then shows a renamed copy-up as 0 bytes). So, as the kernel's
copy-up does unless mounted ``volatile``, the staged file is fsynced before its rename,
and the directory that holds the new name is fsynced after it, so that an operation
that returned is on the disk. Sidecar records, ``FORMAT`` and journal entries are
synced the same way before the step that relies on them.

:class:`Syncer` does this for an upper with system paths (OSFS, or wrappers and
sub-directories of one); for any other upper (MemoryFS, cloud storage) and with
``volatile=True`` every method does nothing.

*Deferred* (:meth:`Syncer.defer`, what ``unionfs mount`` uses): a kernel filesystem makes
nothing durable before ``fsync``/``syncfs``/unmount, and a program on the mount expects
that contract, not one fsync per ``chmod``. Deferred, the syncs that only make a finished
operation durable (the directory of a new or removed name, a file after ``setinfo``) are
noted, not done, and :meth:`Syncer.flush` makes all of them durable at once (``syncfs(2)``
of the upper). The syncs that order data before the name that shows it stay immediate:
everything under the sidecar's directory (staged copy-ups and records before their rename,
journal entries before their first step, FORMAT), so a power cut still never shows a
half-made copy-up, a torn record or a step without its journal entry. A crash of the
process (SIGKILL) loses nothing either way: the kernel's page cache holds every write.
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any, Optional

from .. import _fsimport  # noqa: F401
from fs.base import FS

from .identity import identity


def system_root(layer_fs: FS) -> Optional[str]:
    """The real directory of ``layer_fs``'s root, looking through wrappers and ``SubFS``, as
    :func:`~unionfs.core.identity.identity` finds it; ``None`` for a filesystem without
    system paths (an archive's file is no directory to sync)."""
    found = identity(layer_fs)
    return None if found is None or found.archive else found.os_path


class Syncer:
    """fsync(2) of the upper's files and directories by overlay path; a no-op where the upper
    has no system paths or the overlay is ``volatile``."""

    def __init__(self, layer_fs: FS, volatile: bool = False) -> None:
        self.volatile = volatile
        self.root = None if volatile else system_root(layer_fs)
        #: overlay paths below which syncs stay immediate once deferred (None: not deferred)
        self._immediate: Optional[str] = None
        #: a deferred sync is owed (cleared by flush)
        self.pending = False

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def defer(self, immediate_under: str) -> None:
        """From now on, note the syncs of paths outside ``immediate_under`` (the sidecar's
        directory) instead of doing them; :meth:`flush` does them all."""
        self._immediate = immediate_under.rstrip("/") + "/"

    def _deferred(self, path: str) -> bool:
        immediate = self._immediate
        if immediate is None or (path.rstrip("/") + "/").startswith(immediate):
            return False
        self.pending = True
        return True

    def flush(self) -> None:
        """Make every deferred sync durable: ``syncfs(2)`` of the upper's filesystem (one
        call however many operations were deferred), ``sync(2)`` where libc has no syncfs."""
        if self.root is None or not self.pending:
            return
        self.pending = False  # before the call: a sync deferred meanwhile is owed again
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _syncfs(fd)
        finally:
            os.close(fd)

    def _sys(self, path: str) -> str:
        assert self.root is not None
        return os.path.join(self.root, path.lstrip("/"))

    def path(self, path: str) -> None:
        """Make the data and metadata of the file or directory ``path`` durable."""
        if self.root is None or self._deferred(path):
            return
        try:
            # O_NONBLOCK: a FIFO would block the open until a writer came (no effect on files)
            fd = os.open(self._sys(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            # a symbolic link (O_NOFOLLOW) has no data of its own: its directory entry is
            # made durable by syncing the directory
            self.dir(os.path.dirname(path.rstrip("/")) or "/")
            return
        try:
            os.fsync(fd)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            # a FIFO or device has no data to sync: its inode is its directory's entry
            self.dir(os.path.dirname(path.rstrip("/")) or "/")
        finally:
            os.close(fd)

    def dir(self, path: str) -> None:
        """Make the entries of directory ``path`` (names made, renamed or removed) durable."""
        if self.root is None or self._deferred(path):
            return
        try:
            fd = os.open(self._sys(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return  # removed since by the same operation: nothing of it is left to sync
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def dirs(self, *paths: str) -> None:
        """:meth:`dir` of each distinct path."""
        for path in dict.fromkeys(paths):
            self.dir(path)

    def handle(self, handle: Any) -> None:
        """Flush a file object and fsync the file under it, if it has a descriptor (deferred:
        and everything deferred so far, its name among it)."""
        handle.flush()
        if self.root is None:
            return
        try:
            fd = handle.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        if fd is not None:
            os.fsync(fd)
        self.flush()


def _syncfs_call() -> Any:
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


_SYNCFS = _syncfs_call()


def _syncfs(fd: int) -> None:
    if _SYNCFS is None:
        os.sync()
        return
    if _SYNCFS(fd) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))
