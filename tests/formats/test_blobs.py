"""Random access into compressed blobs: gzip checkpoints against the plain bytes."""

from __future__ import annotations

import gzip
import io
import random

import pytest
from hypothesis import given, strategies as st

from unionfs.formats.oci.blobs import GzipStream, LayerFormatError

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
