"""Random access into compressed blobs: gzip checkpoints against the plain bytes."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random

import pytest
from hypothesis import given, strategies as st

from unionfs.formats.oci.blobs import GzipStream, LayerFormatError
from unionfs.io import HashingReader, WindowReader

# incompressible, then very compressible: many raw chunks, and steps that stop mid-chunk
PLAIN = random.Random(5).randbytes(400_000) + b"compressible " * 40_000


def opener(data: bytes):
    return lambda: io.BytesIO(data)


@given(st.lists(st.tuples(st.integers(0, len(PLAIN) + 10), st.integers(0, 5000)), min_size=1, max_size=30),
       st.sampled_from([1000, 50_000, 10_000_000]), st.sampled_from([0, 1, 70_000, None]), st.booleans())
def test_reads_anywhere_match_the_plain_bytes(reads, spacing, spill, rewind) -> None:
    """Whatever the checkpoints and the spill (none, a byte, part, all), and with a rewind
    after a first pass or not."""
    stream = GzipStream(opener(gzip.compress(PLAIN)), "blob", spacing=spacing, spill=spill)
    try:
        if rewind:
            assert stream.read_at(len(PLAIN) - 5, 10) == PLAIN[-5:]
            stream.rewind()
        for offset, size in reads:
            assert stream.read_at(offset, size) == PLAIN[offset:offset + size]
        assert stream.spilled <= (len(PLAIN) if spill is None else spill)
    finally:
        stream.close()
        assert stream.spilled == 0


def test_a_spilled_stream_reads_backwards_without_restarts() -> None:
    stream = GzipStream(opener(gzip.compress(PLAIN)), "blob", spacing=30_000, spill=None)
    assert stream.read_at(0, len(PLAIN)) == PLAIN
    for offset in range(len(PLAIN) - 7, 0, -37_111):
        assert stream.read_at(offset, 7) == PLAIN[offset:offset + 7]
    assert stream.restarts == 0 and stream.spilled == len(PLAIN)


def test_backward_reads_restart_from_checkpoints() -> None:
    stream = GzipStream(opener(gzip.compress(PLAIN)), "blob", spacing=30_000)
    assert stream.read_at(0, len(PLAIN)) == PLAIN  # one pass leaves checkpoints behind
    for offset in range(len(PLAIN) - 7, 0, -37_111):
        assert stream.read_at(offset, 7) == PLAIN[offset:offset + 7]
    assert stream.restarts > 0


def test_several_gzip_members_and_zero_padding_read_as_one_stream() -> None:
    half = len(PLAIN) // 2
    data = gzip.compress(PLAIN[:half]) + gzip.compress(PLAIN[half:]) + b"\0" * 512
    stream = GzipStream(opener(data), "blob", spacing=4096)
    assert stream.read_at(half - 10, 20) == PLAIN[half - 10: half + 10]
    assert stream.read_at(0, len(PLAIN) + 1) == PLAIN
    assert stream.read_at(5, 5) == PLAIN[5:10]


def test_a_truncated_gzip_blob_is_an_error_naming_it() -> None:
    stream = GzipStream(opener(gzip.compress(PLAIN)[:-100]), "layer.tgz")
    with pytest.raises(LayerFormatError, match="layer.tgz: the gzip stream is truncated"):
        stream.read_at(0, len(PLAIN))


def test_a_pass_through_reader_gives_every_byte_once_to_its_tap() -> None:
    data = os.urandom(100_000)
    for sizes in ([None], [-1], [1, 7, 4096, 65536, 50000, 10], [0, 99_999, 5]):
        reader = HashingReader(io.BytesIO(data))
        read = b"".join(reader.read(size) for size in sizes)
        assert read == data[: len(read)]
        reader.drain()
        assert (reader.size, reader.digest) == (len(data), "sha256:" + hashlib.sha256(data).hexdigest())
    buffer = bytearray(10)
    reader = HashingReader(io.BytesIO(data))
    assert reader.readinto(buffer) == 10 and bytes(buffer) == data[:10]


@given(st.integers(0, 2000), st.one_of(st.none(), st.integers(0, 3000)),
       st.lists(st.one_of(st.none(), st.integers(-1, 900)), min_size=1, max_size=8))
def test_a_window_reads_its_bytes_in_any_sizes(offset, size, sizes) -> None:
    """A window (``size`` bytes at ``offset``, or all from ``offset``) reads by ``read`` and
    ``readinto`` what slicing gives, never past its end."""
    data = os.urandom(4000)
    window = WindowReader(lambda at, count: data[at: at + count], offset, size)
    expected = data[offset:] if size is None else data[offset: offset + size]
    if size is not None and offset + size > len(data):
        with pytest.raises(OSError, match="unexpected end of layer data"):
            window.read()
        return
    got = b""
    for count in sizes:
        got += window.read(count)
        assert got == expected[: len(got)]
    buffer = bytearray(100)
    taken = window.readinto(buffer)
    got += bytes(buffer[:taken])
    got += window.read()
    assert got == expected and window.read(10) == b"" and window.tell() == len(expected)
