"""File handles of the overlay (the kernel's ``file.c``): read handles on lower files follow
the file's copy-up; writable handles (:class:`UpperFile`) have the kernel's semantics on any upper.

Since Linux 4.19 (stacked file operations) a file opened read-only while it was still a
lower file reads the upper copy once the file is copied up, so it sees what is written
through other handles afterwards. A handle of the lower layer's own filesystem would keep
reading the pristine lower file; :class:`FollowingReader` instead switches to the upper
copy, at the same offset, the moment the copy-up lands, opened with the buffering the
caller asked for (``buffering=0`` stays unbuffered, so it reads every later write).

Only a copy-up moves a handle. A name that is removed (or hidden) and made again is a
new file: the kernel's descriptor keeps reading the old one, and so does this handle.
"""

from __future__ import annotations

import errno
import io
import os
import threading
import weakref
from typing import Any, BinaryIO, Dict, Optional

from .. import _fsimport  # noqa: F401
from fs.base import FS
from fs.mode import Mode

from ..io import CHUNK, LockedReader, read_fully
from .durable import Syncer


class FollowingReader(LockedReader):
    """A read-only handle that reads the lower file until a copy-up, the upper copy after."""

    def __init__(self, handle: BinaryIO, path: str, readers: "FollowingReaders", buffering: int = -1) -> None:
        super().__init__(handle, path)
        self._readers = readers
        self._buffering = buffering

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._readers.forget(self)
        super().close()

    def pread(self, size: int, offset: int) -> bytes:
        """``size`` bytes at ``offset`` (fewer only at the end of the file) of whichever file
        the handle reads now, without moving its position: one ``pread(2)`` where that file
        has a descriptor, under the handle's lock (a copy-up cannot swap the file mid-read)."""
        with self._lock:
            inner = self._inner
            try:
                fd = inner.fileno()
            except (AttributeError, OSError, ValueError):
                fd = None
            if fd is not None:
                return os.pread(fd, size, offset)
            position = inner.tell()
            try:
                inner.seek(offset)
                return read_fully(inner, size)
            finally:
                inner.seek(position)

    def follow(self, upper_fs: FS, path: str) -> None:
        """Continue on the upper copy at ``path``, at the offset reached so far."""
        with self._lock:
            if self.closed:
                return
            offset = self._inner.tell()
            copy = upper_fs.openbin(path, "r", buffering=self._buffering)
            copy.seek(offset)
            previous, self._inner = self._inner, copy
        previous.close()


class FollowingReaders:
    """The open :class:`FollowingReader` handles of one upper, by path."""

    def __init__(self) -> None:
        self._by_path: Dict[str, "weakref.WeakSet[FollowingReader]"] = {}
        self._lock = threading.Lock()

    def open(
        self, lower_fs: FS, path: str, mode: str, buffering: int = -1, data_path: str = "", **options: Any
    ) -> FollowingReader:
        """A reader of the lower data at ``data_path`` (``path`` unless a redirect or a
        metadata-only copy-up says otherwise) that follows the copy-up of ``path``."""
        return self.follow(lower_fs.openbin(data_path or path, mode, buffering=buffering, **options), path, buffering)

    def follow(self, handle: BinaryIO, path: str, buffering: int = -1) -> FollowingReader:
        """A reader of ``handle`` (opened on the lower data of ``path``) that follows the
        copy-up of ``path``."""
        reader = FollowingReader(handle, path, self, buffering)
        with self._lock:
            self._by_path.setdefault(path, weakref.WeakSet()).add(reader)
        return reader

    def forget(self, reader: FollowingReader) -> None:
        with self._lock:
            readers = self._by_path.get(reader.name)
            if readers is not None:
                readers.discard(reader)
                if not readers:
                    del self._by_path[reader.name]

    def moved(self, src: str, dst: str) -> None:
        """The entry at ``src`` (a file, or a directory and everything below it) is now at
        ``dst``: its readers follow a later copy-up there, as the kernel's descriptors follow
        their inode across rename(2)."""
        prefix = src.rstrip("/") + "/"
        with self._lock:
            for path in [p for p in self._by_path if p == src or p.startswith(prefix)]:
                readers = self._by_path.pop(path)
                for reader in readers:
                    reader.name = dst + path[len(src):]
                self._by_path.setdefault(dst + path[len(src):], weakref.WeakSet()).update(readers)

    def detach(self, path: str, subtree: bool = False) -> None:
        """The lower file at ``path`` (or every one below it, with ``subtree``) left the view
        without a copy-up: its handles stay on it and never follow a later file of that name."""
        prefix = path.rstrip("/") + "/"
        with self._lock:
            for name in [name for name in self._by_path if name == path or (subtree and name.startswith(prefix))]:
                del self._by_path[name]

    def copied_up(self, upper_fs: FS, path: str) -> None:
        """The file at ``path`` now lives in the upper: its lower readers move over to it."""
        with self._lock:
            readers = list(self._by_path.pop(path, ()))
        for reader in readers:
            reader.follow(upper_fs, path)


#: serialises appends through handles whose upper file has no O_APPEND of its own
_APPEND_LOCK = threading.Lock()


class UpperFile(io.RawIOBase):
    """A writable handle on an upper file, with the kernel's semantics on any upper.

    PyFilesystem2's MemoryFS gets ``O_APPEND`` and ``ftruncate`` wrong: an append handle
    writes at its own position, not at the end (two append handles overwrite each
    other's data), ``truncate`` moves the position, and ``truncate`` beyond the end does
    not always extend the file with zeros. The overlay promises the kernel's semantics
    whatever the upper is, so its handles correct for that here, once, for every upper:
    every write of an append handle goes to the current end of the file, ``truncate(n)``
    sets the size to ``n`` (zeros beyond the old end) and leaves the position alone.
    ``flush`` pushes buffered data to the upper file (it does not sync, as on the
    kernel); :meth:`fsync` makes it durable, and ``os.fsync(handle.fileno())`` works too
    where the upper file has a descriptor.
    """

    def __init__(self, inner: Any, path: str, mode: Mode, syncer: Syncer) -> None:
        super().__init__()
        self._inner = inner
        self._append = mode.appending
        self._syncer = syncer
        self.name = path
        self.mode = mode.to_platform_bin()

    def readable(self) -> bool:
        return bool(self._inner.readable())

    def writable(self) -> bool:
        return bool(self._inner.writable())

    def seekable(self) -> bool:
        return True

    def read(self, size: Optional[int] = -1) -> bytes:
        return self._inner.read(-1 if size is None else size)  # type: ignore[no-any-return]

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def write(self, data: Any) -> int:
        if not self._append:
            return self._inner.write(data)  # type: ignore[no-any-return]
        with _APPEND_LOCK:  # O_APPEND: find the end and write there as one step
            self._inner.seek(0, io.SEEK_END)
            return self._inner.write(data)  # type: ignore[no-any-return]

    def truncate(self, size: Optional[int] = None) -> int:
        position = self._inner.tell()
        if size is None:
            size = position
        if size < 0:
            raise OSError(errno.EINVAL, "negative size", self.name)
        self._inner.truncate(size)
        end = self._inner.seek(0, io.SEEK_END)
        while end < size:  # the upper did not extend it: ftruncate(2) fills with zeros (in pieces)
            end += self._inner.write(b"\0" * min(size - end, CHUNK))
        self._inner.seek(position)
        return size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._inner.seek(offset, whence)  # type: ignore[no-any-return]

    def tell(self) -> int:
        return self._inner.tell()  # type: ignore[no-any-return]

    def fileno(self) -> int:
        return self._inner.fileno()  # type: ignore[no-any-return]

    def flush(self) -> None:
        if not self.closed:
            self._inner.flush()

    def fsync(self) -> None:
        """fsync(2): flush, then make the file's data durable (nothing to do on an upper
        without descriptors, or on a ``volatile`` overlay)."""
        self._syncer.handle(self._inner)

    def close(self) -> None:
        if not self.closed:
            try:
                super().close()  # flushes first
            finally:
                self._inner.close()
