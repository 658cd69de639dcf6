"""Read handles on lower files (the kernel's ``file.c``): they follow the file's copy-up.

Since Linux 4.19 (stacked file operations) a file opened read-only while it was still a
lower file reads the upper copy once the file is copied up, so it sees what is written
through other handles afterwards. A handle of the lower layer's own filesystem would keep
reading the pristine lower file; :class:`FollowingReader` instead switches to the upper
copy, at the same offset, the moment the copy-up lands.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, BinaryIO, Dict

from .. import _fsimport  # noqa: F401
from fs.base import FS

from ..io import LockedReader


class FollowingReader(LockedReader):
    """A read-only handle that reads the lower file until a copy-up, the upper copy after."""

    def __init__(self, handle: BinaryIO, path: str, readers: "FollowingReaders") -> None:
        super().__init__(handle, path)
        self._readers = readers

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._readers.forget(self)
        super().close()

    def follow(self, upper_fs: FS, path: str) -> None:
        """Continue on the upper copy at ``path``, at the offset reached so far."""
        with self._lock:
            if self.closed:
                return
            offset = self._inner.tell()
            copy = upper_fs.openbin(path, "r")
            copy.seek(offset)
            previous, self._inner = self._inner, copy
        previous.close()


class FollowingReaders:
    """The open :class:`FollowingReader` handles of one upper, by path."""

    def __init__(self) -> None:
        self._by_path: Dict[str, "weakref.WeakSet[FollowingReader]"] = {}
        self._lock = threading.Lock()

    def open(self, lower_fs: FS, path: str, mode: str, data_path: str = "", **options: Any) -> FollowingReader:
        """A reader of the lower data at ``data_path`` (``path`` unless a redirect or a
        metadata-only copy-up says otherwise) that follows the copy-up of ``path``."""
        reader = FollowingReader(lower_fs.openbin(data_path or path, mode, **options), path, self)
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

    def copied_up(self, upper_fs: FS, path: str) -> None:
        """The file at ``path`` now lives in the upper: its lower readers move over to it."""
        with self._lock:
            readers = list(self._by_path.pop(path, ()))
        for reader in readers:
            reader.follow(upper_fs, path)
