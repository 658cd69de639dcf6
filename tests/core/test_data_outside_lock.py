"""File data streams without the overlay lock: a slow read of a large lower file (readbytes,
download, commit) does not block another thread's getinfo."""

from __future__ import annotations

import io
import threading
from typing import Any, Callable, List

import pytest
from fs.memoryfs import MemoryFS
from fs.wrapfs import WrapFS

from unionfs import OverlayFS
from unionfs.testing import trees

BIG = b"x" * (3 * 1024 * 1024)  # three chunks of a copy
WAIT = 20.0  # seconds: far more than any step takes; a deadlock fails, never hangs


class _GatedReader(io.RawIOBase):
    """A file whose first read announces itself and then waits for the test to let it go."""

    def __init__(self, inner: Any, reading: threading.Event, release: threading.Event) -> None:
        super().__init__()
        self._inner, self._reading, self._release = inner, reading, release

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._reading.set()
        assert self._release.wait(WAIT), "the test never released the read"
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()


class SlowFS(WrapFS):
    """A lower whose file data comes slowly: every read of ``/big`` waits for ``release``."""

    def __init__(self, inner: MemoryFS) -> None:
        super().__init__(inner)
        self.reading, self.release = threading.Event(), threading.Event()

    def openbin(self, path: str, mode: str = "r", buffering: int = -1, **options: Any) -> Any:
        inner = super().openbin(path, mode, buffering, **options)
        if path.lstrip("/") != "big":
            return inner
        return io.BufferedReader(_GatedReader(inner, self.reading, self.release))

    def readbytes(self, path: str) -> bytes:  # WrapFS would read the inner FS directly
        with self.openbin(path) as handle:
            return handle.read()

    def download(self, path: str, file: Any, chunk_size: Any = None, **options: Any) -> None:
        with self.openbin(path) as handle:
            file.write(handle.read())


def _layers():
    lower = trees.make_tree(MemoryFS(), {"big": BIG, "other.txt": "small"})
    slow = SlowFS(lower)
    return slow, OverlayFS(slow, upper=MemoryFS())


READS: List[Callable[[OverlayFS], Any]] = [
    lambda overlay: overlay.readbytes("big"),
    lambda overlay: overlay.download("big", io.BytesIO()),
    lambda overlay: overlay.commit(MemoryFS()),
    lambda overlay: OverlayFS(overlay.stack.lowers[0].fs).readbytes("big"),  # a read-only overlay too
]


@pytest.mark.parametrize("read", READS, ids=["readbytes", "download", "commit", "readbytes-read-only"])
def test_a_slow_lower_read_does_not_block_getinfo(read):
    slow, overlay = _layers()
    outcome: List[Any] = []
    reader = threading.Thread(target=lambda: outcome.append(read(overlay)), daemon=True)
    reader.start()
    try:
        assert slow.reading.wait(WAIT), "the read never started"
        answered: List[Any] = []
        other = threading.Thread(target=lambda: answered.append(overlay.getinfo("other.txt", ["details"]).size), daemon=True)
        other.start()
        other.join(WAIT)
        assert answered == [5], "getinfo waited for the slow read: the overlay lock was held across data I/O"
        assert reader.is_alive()  # the slow read is still going on
    finally:
        slow.release.set()
        reader.join(WAIT)
    assert not reader.is_alive() and len(outcome) == 1


def test_reads_still_return_the_data():
    slow, overlay = _layers()
    slow.release.set()
    assert overlay.readbytes("big") == BIG
    out = io.BytesIO()
    overlay.download("big", out)
    assert out.getvalue() == BIG
    target = MemoryFS()
    overlay.commit(target)
    assert target.readbytes("big") == BIG
    overlay.writetext("up.txt", "upper data")  # an upper file: read under the lock
    assert overlay.readbytes("up.txt") == b"upper data"
    with pytest.raises(Exception) as missing:
        overlay.readbytes("nothing")
    assert type(missing.value).__name__ == "ResourceNotFound"
