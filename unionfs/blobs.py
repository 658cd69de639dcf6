"""Byte sources for image layers: files, windows into an outer tar, decompressed streams.

A layer tar is never extracted. Its members are read in place: for a plain tar by
seeking to the member's data, for a compressed one through a decompressing stream that
is shared by the layer and only reopened when a read goes backwards (so reading the
members in archive order costs one decompression in total). Digests are computed while
a blob is read through :class:`HashingReader`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import threading
from typing import BinaryIO, Callable, Optional, Tuple

import attr

from . import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs import errors

#: opens a fresh, seekable binary handle on a blob (the caller closes it)
Opener = Callable[[], BinaryIO]

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1024 * 1024


class LayerFormatError(errors.CreateFailed):
    """An image, layout or layer is malformed; the message names the offending file or member."""

    default_message = "invalid image or layer: {details}"

    def __init__(self, msg: str) -> None:
        super().__init__(msg=msg)


class DigestMismatch(LayerFormatError):
    """A blob's content does not hash to the digest that names it."""


@attr.s(frozen=True, slots=True)
class Blob:
    """A named blob: how to open it, and the digest it must have (if known)."""

    label: str = attr.ib()  # a path a human can find, for error messages
    opener: Opener = attr.ib(repr=False)
    digest: Optional[str] = attr.ib(default=None)


def file_opener(path: str) -> Opener:
    return lambda: open(path, "rb")


def window_opener(outer: Opener, offset: int, size: int) -> Opener:
    """An opener for a member stored uncompressed inside another (plain) tar."""

    def open_window() -> BinaryIO:
        read_at, close = seek_reader(outer)
        return io.BufferedReader(MemberReader(read_at, offset, size, close))  # type: ignore[return-value]

    return open_window


def compression_of(head: bytes) -> str:
    """``"gzip"``, ``"zstd"`` or ``""`` (a plain tar), from a blob's first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return ""


def _zstd_reader(raw: BinaryIO, label: str) -> BinaryIO:
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+

        return zstd.ZstdFile(raw)  # type: ignore[no-any-return]
    except ImportError:
        pass
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        raise LayerFormatError(
            "%s is zstd-compressed; this Python has no zstd support (Python 3.14+, "
            "or install unionfs[zstd])" % label
        ) from None
    return zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)  # type: ignore[no-any-return]


def decompressed(raw: BinaryIO, compression: str, label: str) -> BinaryIO:
    """A forward-readable stream of the uncompressed bytes of ``raw``."""
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if compression == "zstd":
        return _zstd_reader(raw, label)
    return raw


def peek(opener: Opener, size: int = 4) -> bytes:
    with opener() as handle:
        return handle.read(size)


class HashingReader(io.RawIOBase):
    """Passes reads through and hashes every byte that goes by."""

    def __init__(self, handle: BinaryIO, algorithm: str = "sha256") -> None:
        super().__init__()
        self._handle = handle
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self._handle.read(len(buffer))
        self._hash.update(data)
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Read (and hash) whatever is left."""
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "%s:%s" % (self.algorithm, self._hash.hexdigest())


class HashingWriter(io.RawIOBase):
    """Passes writes through, hashing and counting them."""

    def __init__(self, handle: BinaryIO) -> None:
        super().__init__()
        self._handle = handle
        self._hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def]
        self._hash.update(data)
        self._handle.write(data)
        self.size += len(data)
        return len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def algorithm_of(digest: str, label: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    if algorithm not in ("sha256", "sha512") or not hex_part or not all(c in "0123456789abcdef" for c in hex_part):
        raise LayerFormatError("%s: unsupported or malformed digest %r" % (label, digest))
    return algorithm


def check_digest(label: str, expected: Optional[str], actual: str, what: str = "digest") -> None:
    if expected is not None and expected != actual:
        raise DigestMismatch("%s: %s mismatch: expected %s, content hashes to %s" % (label, what, expected, actual))


def read_verified(blob: Blob, limit: int = 64 * 1024 * 1024) -> bytes:
    """The whole (small) blob, checked against its digest."""
    try:
        with blob.opener() as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise LayerFormatError("cannot read %s: %s" % (blob.label, error)) from error
    if len(data) > limit:
        raise LayerFormatError("%s is larger than %d bytes" % (blob.label, limit))
    if blob.digest is not None:
        algorithm = algorithm_of(blob.digest, blob.label)
        check_digest(blob.label, blob.digest, "%s:%s" % (algorithm, hashlib.new(algorithm, data).hexdigest()))
    return data


class SharedStream:
    """The uncompressed bytes of a compressed blob, read at any offset through one stream.

    Reads going forward continue the stream; a read behind its position reopens it."""

    def __init__(self, opener: Opener, compression: str, label: str) -> None:
        self._opener = opener
        self._compression = compression
        self._label = label
        self._lock = threading.Lock()
        self._stream: Optional[BinaryIO] = None
        self._pos = 0

    def read_at(self, offset: int, size: int) -> bytes:
        with self._lock:
            if self._stream is None or self._pos > offset:
                self.close()
                self._stream = decompressed(self._opener(), self._compression, self._label)
                self._pos = 0
            while self._pos < offset:
                skipped = len(self._stream.read(min(CHUNK, offset - self._pos)))
                if not skipped:
                    raise LayerFormatError("%s ends before offset %d" % (self._label, offset))
                self._pos += skipped
            data = self._stream.read(size)
            self._pos += len(data)
            return data

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


class MemberReader(io.RawIOBase):
    """A read-only, seekable file for ``size`` bytes at ``offset`` of an uncompressed stream."""

    def __init__(self, read_at: Callable[[int, int], bytes], offset: int, size: int, on_close: Optional[Callable[[], None]] = None) -> None:
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
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + pos < 0:
            raise ValueError("negative seek position")
        self._pos = base + pos
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        wanted = min(len(buffer), self._size - self._pos)
        if wanted <= 0:
            return 0
        data = self._read_at(self._offset + self._pos, wanted)
        if len(data) < wanted:
            raise OSError("unexpected end of layer data")
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed and self._on_close is not None:
            self._on_close()
        super().close()


def seek_reader(opener: Opener) -> Tuple[Callable[[int, int], bytes], Callable[[], None]]:
    """``read_at`` over a fresh handle of a plain blob, and the function that closes it."""
    handle = opener()

    def read_at(offset: int, size: int) -> bytes:
        handle.seek(offset)
        return handle.read(size)

    return read_at, handle.close
