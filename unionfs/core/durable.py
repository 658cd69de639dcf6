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
"""

from __future__ import annotations

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

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def _sys(self, path: str) -> str:
        assert self.root is not None
        return os.path.join(self.root, path.lstrip("/"))

    def path(self, path: str) -> None:
        """Make the data and metadata of the file or directory ``path`` durable."""
        if self.root is None:
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
        if self.root is None:
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
        """Flush a file object and fsync the file under it, if it has a descriptor."""
        handle.flush()
        if self.root is None:
            return
        try:
            fd = handle.fileno()
        except (AttributeError, OSError, ValueError):
            return
        os.fsync(fd)
