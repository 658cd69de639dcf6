"""Read-only file objects shared by the layers: a stream whose every read and seek holds a lock."""

from __future__ import annotations

import io
import threading
from typing import IO, Any, Optional, Union

from . import _fsimport  # noqa: F401

#: what every read-only, in-memory-indexed layer filesystem (archives, OCI tars) reports
READ_ONLY_ARCHIVE_META = {
    "case_insensitive": False,
    "invalid_path_chars": "\0",
    "max_path_length": None,
    "max_sys_path_length": None,
    "network": False,
    "read_only": True,
    "supports_rename": False,
    "thread_safe": True,
    "unicode_paths": True,
    "virtual": False,
}


class LockedReader(io.RawIOBase):
    """A read-only stream over ``inner``; every read and seek holds ``lock`` (members of one
    archive share its file position; a following reader swaps its ``inner``)."""

    def __init__(self, inner: IO[bytes], name: str, lock: Optional[Union[threading.Lock, threading.RLock]] = None) -> None:
        super().__init__()
        self._inner = inner
        self._lock = lock if lock is not None else threading.Lock()
        self.name = name
        self.mode = "rb"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._inner.seekable()

    def read(self, size: Optional[int] = -1) -> bytes:
        with self._lock:  # straight through: no intermediate buffer copy
            return self._inner.read(-1 if size is None else size)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        with self._lock:
            data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        with self._lock:
            return self._inner.seek(offset, whence)

    def tell(self) -> int:
        with self._lock:
            return self._inner.tell()

    def close(self) -> None:
        if not self.closed:
            with self._lock:
                self._inner.close()
        super().close()
