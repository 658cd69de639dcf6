"""The streams of unionfs, in one place: the locked read-only stream the layers share, the
pass-through tap (hashing, counting, progress), the hashing writer, the window onto a
stream read in place (archive members); the chunk size every copy uses, and the one copy
loop."""

from __future__ import annotations

import hashlib
import io
import threading
from typing import IO, Any, Callable, Dict, Optional, Union

from . import _fsimport  # noqa: F401

#: how much a copy moves at a time: large enough to stream fast, small enough to stay out of memory
CHUNK = 1024 * 1024


def copy_stream(source: IO[bytes], out: IO[bytes], chunk_size: int = CHUNK) -> int:
    """Copy ``source`` to ``out`` chunk by chunk; return how many bytes moved."""
    moved = 0
    while True:
        chunk = source.read(chunk_size)
        if not chunk:
            return moved
        out.write(chunk)
        moved += len(chunk)

#: what every read-only, in-memory-indexed layer filesystem (archives, OCI tars) reports
READ_ONLY_ARCHIVE_META: Dict[str, Union[str, int, bool, None]] = {
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


def read_fully(stream: Any, size: int) -> bytes:
    """``size`` bytes from ``stream``'s position, fewer only at its end (a raw stream may
    answer a read short before the end; a FUSE reply that short would mean end of file)."""
    chunks = []
    while size > 0:
        chunk = stream.read(size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class PassThroughReader(io.RawIOBase):
    """Reads ``source`` through, showing every block to ``seen`` on the way (hashing, counting,
    progress): the one tap on a stream that unionfs needs."""

    def __init__(self, source: IO[bytes], seen: Callable[[bytes], None]) -> None:
        super().__init__()
        self._source = source
        self._seen = seen

    def readable(self) -> bool:
        return True

    def read(self, size: Optional[int] = -1) -> bytes:
        """The source's own bytes (``RawIOBase.read`` would copy them twice more: into a
        buffer of its own through :meth:`readinto`, then out of it; a layer's indexing reads
        all of its tar through here)."""
        data = self._source.read(-1 if size is None else size)
        self._seen(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class HashingReader(PassThroughReader):
    """Passes reads through and hashes (and counts) every byte that goes by."""

    def __init__(self, handle: IO[bytes], algorithm: str = "sha256") -> None:
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self.size = 0
        super().__init__(handle, self._saw)

    def _saw(self, data: bytes) -> None:
        self._hash.update(data)
        self.size += len(data)

    def drain(self) -> None:
        """Read (and hash) whatever is left."""
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "%s:%s" % (self.algorithm, self._hash.hexdigest())


class HashingWriter(io.RawIOBase):
    """Passes writes through, hashing and counting them."""

    def __init__(self, handle: IO[bytes]) -> None:
        super().__init__()
        self._handle = handle
        self._hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._hash.update(data)
        self._handle.write(data)
        self.size += len(data)
        return len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class WindowReader(io.RawIOBase):
    """A read-only, seekable file for ``size`` bytes at ``offset`` of a stream read by
    ``read_at(offset, size)`` (an archive member in place); with ``size`` None, a plain
    stream from ``offset`` to wherever ``read_at`` runs out (a decompressed archive)."""

    def __init__(
        self,
        read_at: Callable[[int, int], bytes],
        offset: int = 0,
        size: Optional[int] = None,
        on_close: Optional[Callable[[], None]] = None,
    ) -> None:
        super().__init__()
        self._read_at = read_at
        self._offset = offset
        self._size = size
        self._pos = 0
        self._on_close = on_close

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        """Move where the next read starts (``tarfile`` over a decompressed stream seeks);
        a stream of unknown size has no end to seek from."""
        if whence == io.SEEK_END and self._size is None:
            raise io.UnsupportedOperation("a decompressed stream has no known end to seek from")
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size or 0}[whence]
        if base + pos < 0:
            raise ValueError("negative seek position")
        self._pos = base + pos
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: Optional[int] = -1) -> bytes:
        """Up to ``size`` bytes from the position (all that is left for ``None`` or a negative
        size), as ``read_at`` gives them (``RawIOBase.read`` would copy them twice more)."""
        if size is None or size < 0:
            return self.readall()
        return self._take(size)

    def readinto(self, buffer: Any) -> int:
        data = self._take(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _take(self, size: int) -> bytes:
        wanted = size if self._size is None else min(size, self._size - self._pos)
        if wanted <= 0:
            return b""
        data = self._read_at(self._offset + self._pos, wanted)
        if self._size is not None and len(data) < wanted:
            raise OSError("unexpected end of layer data")
        self._pos += len(data)
        return data

    def close(self) -> None:
        if not self.closed and self._on_close is not None:
            self._on_close()
        super().close()
