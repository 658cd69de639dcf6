"""Read handles on lower files (the kernel's ``file.c``): they follow the file's copy-up.

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

import threading
import weakref
from typing import Any, BinaryIO, Dict

from .. import _fsimport  # noqa: F401
from fs.base import FS

from ..io import LockedReader


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

    def open(self, lower_fs: FS, path: str, mode: str, buffering: int = -1, **options: Any) -> FollowingReader:
        reader = FollowingReader(lower_fs.openbin(path, mode, buffering=buffering, **options), path, self, buffering)
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
