"""Byte sources for image layers: files, windows into an outer tar, decompressed streams.

A layer tar is never extracted. Its members are read in place: for a plain tar by
seeking to the member's data, for a compressed one through a decompressing stream that
is shared by the layer and only reopened when a read goes backwards (so reading the
members in archive order costs one decompression in total). Digests are computed while
a blob is read through :class:`unionfs.io.HashingReader`.
"""

from __future__ import annotations

import bisect
import gzip
import hashlib
import io
import tempfile
import threading
import zlib
from typing import Any, BinaryIO, Callable, List, Optional, Tuple, cast

import attr

from ... import _fsimport  # noqa: F401  (imports fs quietly, see the module)

from ...errors import DigestMismatch, LayerFormatError, convert_errors
from ...io import CHUNK, WindowReader

#: opens a fresh, seekable binary handle on a blob (the caller closes it)
Opener = Callable[[], BinaryIO]

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@attr.s(frozen=True, slots=True)
class Blob:
    """A named blob: how to open it, and the digest it must have (if known)."""

    label: str = attr.ib()  # a path a human can find, for error messages
    opener: Opener = attr.ib(repr=False)
    digest: Optional[str] = attr.ib(default=None)
    size: Optional[int] = attr.ib(default=None)  # the size its descriptor states, if any


def file_opener(path: str) -> Opener:
    return lambda: open(path, "rb")


def window_opener(outer: Opener, offset: int, size: int) -> Opener:
    """An opener for a member stored uncompressed inside another (plain) tar."""

    def open_window() -> BinaryIO:
        read_at, close = seek_reader(outer)
        return io.BufferedReader(WindowReader(read_at, offset, size, close))  # type: ignore[return-value]

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


def algorithm_of(digest: str, label: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    if algorithm not in ("sha256", "sha512") or not hex_part or not all(c in "0123456789abcdef" for c in hex_part):
        raise LayerFormatError("%s: unsupported or malformed digest %r" % (label, digest))
    return algorithm


def check_digest(label: str, expected: Optional[str], actual: str, what: str = "digest") -> None:
    if expected is not None and expected != actual:
        raise DigestMismatch("%s: %s mismatch: expected %s, content hashes to %s" % (label, what, expected, actual))


def check_size(blob: Blob, actual: int) -> None:
    if blob.size is not None and blob.size != actual:
        raise DigestMismatch("%s: size mismatch: the descriptor says %d bytes, the blob has %d" % (blob.label, blob.size, actual))


def read_verified(blob: Blob, limit: int = 64 * 1024 * 1024) -> bytes:
    """The whole (small) blob, checked against its digest."""
    with convert_errors(LayerFormatError, "cannot read %s" % blob.label, (OSError,)):
        with blob.opener() as handle:
            data = handle.read(limit + 1)
    if len(data) > limit:
        raise LayerFormatError("%s is larger than %d bytes" % (blob.label, limit))
    check_size(blob, len(data))
    if blob.digest is not None:
        algorithm = algorithm_of(blob.digest, blob.label)
        check_digest(blob.label, blob.digest, "%s:%s" % (algorithm, hashlib.new(algorithm, data).hexdigest()))
    return data


class SharedStream:
    """The uncompressed bytes of a compressed blob, read at any offset through one stream.

    Reads going forward continue the stream; a read behind its position reopens it.
    ``first_raw``: an already open handle on the blob for the first pass (the indexing
    pass hashes what goes through it)."""

    def __init__(self, opener: Opener, compression: str, label: str, first_raw: Optional[BinaryIO] = None) -> None:
        self._opener = opener
        self._compression = compression
        self._label = label
        self._first_raw = first_raw
        self._lock = threading.Lock()
        self._stream: Optional[BinaryIO] = None
        self._pos = 0

    def _open_raw(self) -> BinaryIO:
        raw, self._first_raw = self._first_raw, None
        return raw if raw is not None else self._opener()

    def read_at(self, offset: int, size: int) -> bytes:
        with self._lock:
            if self._stream is None or self._pos > offset:
                self.close()
                self._stream = decompressed(self._open_raw(), self._compression, self._label)
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


@attr.s(frozen=True, slots=True)
class _Checkpoint:
    out_pos: int = attr.ib()  # uncompressed offset
    raw_pos: int = attr.ib()  # compressed offset of the next input byte
    state: Any = attr.ib()  # a copy of the zlib decompressor at that point


#: uncompressed bytes a gzip stream keeps behind its last read (a reader's read-ahead
#: going back a little then needs no restart from a checkpoint)
KEEP_BEHIND = 256 * 1024


class GzipStream(SharedStream):
    """Random access into a gzip blob: while decompressing, a copy of the decompressor is
    kept every ``spacing`` uncompressed bytes, so a read anywhere restarts from the nearest
    checkpoint before it instead of from the start (zlib's ``zran`` idea).

    With ``spill`` (bytes; ``None``: no bound), the decompressed bytes are also kept, up to
    that many from the start, in an anonymous temporary file (deleted when closed, or when
    the process dies) as the first pass (an archive's indexing) goes by: a read within them
    reads that file and decompresses nothing, so reads in any order (a second name of the
    same member, a breadth-first walk over a depth-first archive, a comparison in another
    order) cost no restart. Past the spill, checkpoints as above."""

    def __init__(
        self,
        opener: Opener,
        label: str,
        first_raw: Optional[BinaryIO] = None,
        spacing: int = 2 * CHUNK,
        spill: Optional[int] = 0,
    ) -> None:
        super().__init__(opener, "gzip", label, first_raw)
        self._spacing = spacing
        self._spill_limit = spill
        self._spilling = spill is None or spill > 0
        self._spill: Optional[BinaryIO] = None
        #: uncompressed bytes 0 .. spilled are in the spill file
        self.spilled = 0
        self._checkpoints: List[_Checkpoint] = [_Checkpoint(0, 0, zlib.decompressobj(31))]
        self._checkpoint_offsets: List[int] = [0]
        self._raw: Optional[BinaryIO] = None
        self._inflater: Any = None
        self._raw_pos = self._out_pos = 0
        self._buffer = bytearray()  # uncompressed bytes from _out_pos - len(_buffer) to _out_pos
        self._at_end = False
        #: how many times decompression went back to a checkpoint (reads out of stream order);
        #: reading in archive order keeps it 0
        self.restarts = 0

    def _best(self, offset: int) -> _Checkpoint:
        """The last checkpoint at or before ``offset``."""
        return self._checkpoints[bisect.bisect_right(self._checkpoint_offsets, offset) - 1]

    def _restore(self, checkpoint: _Checkpoint) -> None:
        if self._raw is None:
            self._raw = self._open_raw()
            self._raw_pos = 0
        if checkpoint.raw_pos != self._raw_pos:
            self._raw.seek(checkpoint.raw_pos)
        self._raw_pos, self._out_pos = checkpoint.raw_pos, checkpoint.out_pos
        self._inflater = checkpoint.state.copy()
        self._buffer = bytearray()
        self._pending = b""
        self._at_end = False

    def _produce(self) -> None:
        """Inflate a bounded step (so a checkpoint is never far behind any offset)."""
        assert self._raw is not None
        if self._out_pos - self._checkpoints[-1].out_pos >= self._spacing:
            consumed = self._raw_pos - len(self._pending)
            self._checkpoints.append(_Checkpoint(self._out_pos, consumed, self._inflater.copy()))
            self._checkpoint_offsets.append(self._out_pos)
        if not self._pending:
            self._pending = self._raw.read(64 * 1024)
            self._raw_pos += len(self._pending)
            if not self._pending:
                if not self._inflater.eof:
                    raise LayerFormatError("%s: the gzip stream is truncated" % self._label)
                self._at_end = True
                return
        if self._inflater.eof:  # a further gzip member, or trailing zero padding
            if not self._pending.strip(b"\0"):
                self._pending = b""
                return
            self._inflater = zlib.decompressobj(31)
        try:
            data = self._inflater.decompress(self._pending, 256 * 1024)
        except zlib.error as error:
            raise LayerFormatError("%s: corrupt gzip data: %s" % (self._label, error)) from error
        self._pending = self._inflater.unused_data if self._inflater.eof else self._inflater.unconsumed_tail
        if self._spilling:
            self._spill_out(data)
        self._buffer += data
        self._out_pos += len(data)

    def _spill_out(self, data: bytes) -> None:
        """Append what of ``data`` (starting at ``_out_pos``) extends the spill, within its limit."""
        skip = self.spilled - self._out_pos
        room = len(data) if self._spill_limit is None else self._spill_limit - self.spilled
        if skip < 0 or skip >= len(data) or room <= 0:
            return  # not contiguous with the spill (after a restart behind it), or full
        piece = data[skip: skip + room]
        try:
            if self._spill is None:
                self._spill = cast(BinaryIO, tempfile.TemporaryFile(prefix="unionfs-gzip-"))
            self._spill.seek(self.spilled)
            self._spill.write(piece)
        except OSError:  # no room for it: go on with the checkpoints alone
            self.drop_spill()
            return
        self.spilled += len(piece)

    def drop_spill(self) -> None:
        """Delete the spill file (its reads decompress again); its owner calls this on close,
        which does not close the blob itself (a caller's open handle)."""
        self._spilling = False
        self.spilled = 0
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def _from_spill(self, offset: int, size: int) -> Optional[bytes]:
        """``size`` bytes at ``offset`` out of the spill, or ``None`` if it cannot give them."""
        try:
            assert self._spill is not None
            self._spill.seek(offset)
            data = self._spill.read(size)
        except OSError:
            self.drop_spill()
            return None
        return data if len(data) == size else None

    def rewind(self) -> None:
        """Be at the start again for a pass that follows the indexing pass (not a restart:
        the reads after it go forward from the start)."""
        with self._lock:
            if self._raw is not None and self.spilled < self._out_pos:
                # from the spill's end (reads before it read the spill), or the start
                self._restore(self._best(self.spilled) if self._spilling else self._checkpoints[0])

    def read_at(self, offset: int, size: int) -> bytes:
        with self._lock:
            start = self._out_pos - len(self._buffer)
            if offset < start and offset < self.spilled and size > 0:
                # behind the decompressor, but kept: no decompression at all
                head = self._from_spill(offset, min(size, self.spilled - offset))
                if head is not None:
                    if len(head) == size:
                        return head
                    return head + self._read_stream(offset + len(head), size - len(head))
            return self._read_stream(offset, size)

    def _read_stream(self, offset: int, size: int) -> bytes:
        """``read_at`` from the decompressor (going back to a checkpoint if it must); locked."""
        start = self._out_pos - len(self._buffer)
        best = self._best(offset)
        if self._raw is None or offset < start or best.out_pos > self._out_pos:
            if self._raw is not None:
                self.restarts += 1
            self._restore(best)
        while self._out_pos < offset + size and not self._at_end:
            self._produce()
            start = self._out_pos - len(self._buffer)
            drop = min(offset, self._out_pos) - start - KEEP_BEHIND
            if drop > 0:  # keep what this read can use, and a window behind it
                del self._buffer[:drop]
        start = self._out_pos - len(self._buffer)
        data = bytes(self._buffer[offset - start: offset - start + size])
        drop = offset - start + len(data) - KEEP_BEHIND
        if drop > 0:  # a read a little behind this one (a reader's read-ahead) needs no restart
            del self._buffer[:drop]
        return data

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        self.drop_spill()


def random_access(opener: Opener, compression: str, label: str, first_raw: Optional[BinaryIO] = None) -> SharedStream:
    """Offset reads into the uncompressed content of a compressed blob."""
    if compression == "gzip":
        return GzipStream(opener, label, first_raw)
    return SharedStream(opener, compression, label, first_raw)


def seek_reader(opener: Opener) -> Tuple[Callable[[int, int], bytes], Callable[[], None]]:
    """``read_at`` over a fresh handle of a plain blob, and the function that closes it."""
    handle = opener()

    def read_at(offset: int, size: int) -> bytes:
        handle.seek(offset)
        return handle.read(size)

    return read_at, handle.close
