"""Copy-up (``docs/semantics.rst``: copy-up): when it happens, what it carries, that it is
atomic and streams, and the read handles that follow it; one test per rule.

The ``lower`` fixture is a guarded MemoryFS (``/a/b/f.txt``, ``/a/g.txt``, ``/top.txt``,
``/empty/``); ``guard_lower`` fails the test if any lower changed by one byte. Split out of
the former ``tests/test_rules.py``; shared helpers in ``tests/support/rules.py``.
"""

from __future__ import annotations

import io
import tracemalloc

import pytest

import unionfs  # noqa: F401
from fs import errors
from fs.memoryfs import MemoryFS

from unionfs import OverlayFS

from tests.support.rules import T1000, records, upper_files


@pytest.mark.parametrize("mode", ["r+", "a", "ab", "w", "wb", "rb+"])
def test_copy_up_on_open_for_writing(overlay, upper, mode):
    with overlay.openbin("a/b/f.txt", mode) as handle:
        handle.write(b"!")
    assert upper.exists("a/b/f.txt")
    expected = {"r": b"!ower f", "a": b"lower f!", "w": b"!"}[mode[0]]
    assert overlay.readbytes("a/b/f.txt") == expected


def test_copy_up_truncate(overlay, upper):
    with overlay.openbin("a/g.txt", "r+") as handle:
        handle.truncate(3)
    assert overlay.readtext("a/g.txt") == "low"
    assert upper.readtext("a/g.txt") == "low"


def test_copy_up_on_setinfo(lower, upper):
    """With ``metacopy=False`` setinfo copies the whole file up (the kernel's default)."""
    overlay = OverlayFS(lower, upper, metacopy=False)
    overlay.setinfo("a/g.txt", {"details": {"modified": 1234}})
    assert upper.readtext("a/g.txt") == "lower g"
    assert overlay.getinfo("a/g.txt", ["details"]).modified.timestamp() == 1234


def test_metadata_only_copy_up_on_setinfo(overlay, upper):
    """With metacopy (the default) the upper gets the metadata and a token, not the data."""
    overlay.setinfo("a/g.txt", {"details": {"modified": 1234}})
    assert b"lower g" not in upper.readbytes("a/g.txt")
    assert overlay.readtext("a/g.txt") == "lower g"
    assert overlay.getinfo("a/g.txt", ["details"]).size == len("lower g")
    assert overlay.getinfo("a/g.txt", ["details"]).modified.timestamp() == 1234


def test_copy_up_of_move_source(overlay, upper, lower):
    overlay.move("a/g.txt", "moved.txt")
    assert overlay.readtext("moved.txt") == "lower g"
    assert not overlay.exists("a/g.txt")
    assert records(upper)["whiteouts"] == ["/a/g.txt"]


def test_copy_up_parents_with_their_metadata(lower, upper, guard_lower):
    lower.setinfo("a", {"details": {"modified": 1000}})
    lower.setinfo("a/b", {"details": {"modified": 1000}})
    overlay = OverlayFS(lower, upper)
    overlay.setinfo("a/b/f.txt", {"details": {"modified": 5}})
    assert upper.getinfo("a/b", ["details"]).modified == T1000
    assert overlay.getinfo("a", ["details"]).modified == T1000


def test_copy_up_preserves_modification_time(lower, upper):
    lower.setinfo("a/g.txt", {"details": {"modified": 1000}})
    overlay = OverlayFS(lower, upper)
    with overlay.openbin("a/g.txt", "r+"):
        pass
    assert upper.getinfo("a/g.txt", ["details"]).modified == T1000


def test_copy_up_never_on_read_only_access(overlay, upper):
    overlay.readtext("a/b/f.txt")
    overlay.getinfo("a/b/f.txt", ["details"])
    list(overlay.scandir("a"))
    overlay.listdir("a/b")
    with overlay.openbin("a/g.txt", "r") as handle:
        handle.read()
    overlay.move("top.txt", "top.txt", overwrite=True)  # rename(x, x)
    assert upper_files(upper) == [] and upper.listdir("/") == [".unionfs"]


def test_copy_up_never_on_failed_operations(overlay, upper):
    with pytest.raises(errors.DestinationExists):
        overlay.move("a/g.txt", "top.txt")
    with pytest.raises(errors.ResourceNotFound):
        overlay.move("a/g.txt", "nowhere/x")
    with pytest.raises(errors.FileExists):
        overlay.openbin("a/g.txt", "x")
    assert upper.listdir("/") == [".unionfs"]


def test_copy_up_streams_in_constant_memory(guard_lower):
    big = MemoryFS()
    size = 32 * 1024 * 1024
    big.writebytes("big.bin", b"\x5a" * size)
    guard_lower(big)
    overlay = OverlayFS(big, MemoryFS())
    tracemalloc.start()
    try:
        with overlay.openbin("big.bin", "r+") as handle:
            handle.write(b"!")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # MemoryFS keeps the copy itself in memory (size bytes); the copy-up adds only chunks.
    assert peak < size + 8 * 1024 * 1024


class ExplodingReader(io.RawIOBase):
    def __init__(self, after: int) -> None:
        self.left = after

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.left <= 0:
            raise OSError("disk on fire")
        count = min(len(buffer), self.left)
        buffer[:count] = b"y" * count
        self.left -= count
        return count


def test_copy_up_is_atomic_half_copies_never_visible(overlay, upper):
    with pytest.raises(OSError):
        overlay.upload("a/g.txt", ExplodingReader(after=3 * 1024 * 1024))
    assert overlay.readtext("a/g.txt") == "lower g"
    assert not upper.exists("a/g.txt")
    assert OverlayFS(overlay._lower_layers()[0].fs, upper).readtext("a/g.txt") == "lower g"


def test_copy_up_preserves_mode_and_owner_on_disk(tmp_path, guard_lower):
    """On an OSFS upper a copy-up keeps the lower's mode and owner, as the kernel does."""
    import os

    from fs.osfs import OSFS

    (tmp_path / "lower" / "private").mkdir(parents=True)
    (tmp_path / "lower" / "private" / "secret").write_text("s")
    os.chmod(tmp_path / "lower" / "private", 0o700)
    os.chmod(tmp_path / "lower" / "private" / "secret", 0o600)
    if os.geteuid() == 0:
        os.chown(tmp_path / "lower" / "private" / "secret", 1000, 1000)
    (tmp_path / "upper").mkdir()
    lower = guard_lower(OSFS(str(tmp_path / "lower")))
    overlay = OverlayFS(lower, OSFS(str(tmp_path / "upper")))
    overlay.appendtext("private/secret", "!")
    copied = tmp_path / "upper" / "private" / "secret"
    assert copied.read_text() == "s!"
    assert oct((tmp_path / "upper" / "private").stat().st_mode & 0o777) == oct(0o700)
    assert oct(copied.stat().st_mode & 0o777) == oct(0o600)
    if os.geteuid() == 0:
        assert (copied.stat().st_uid, copied.stat().st_gid) == (1000, 1000)


def test_copy_up_read_handle_opened_before_follows_the_copy(overlay, upper):
    """Kernel 4.19+: an fd opened read-only on a lower file reads the upper copy after a
    copy-up, from the offset it had reached."""
    reader = overlay.openbin("a/g.txt", "r")
    assert reader.read(2) == b"lo"
    with overlay.openbin("a/g.txt", "r+") as writer:
        writer.write(b"LOWER")
    assert reader.read() == b"WER g"
    reader.seek(0)
    assert reader.read() == b"LOWER g"
    reader.close()


def test_copy_up_read_handle_of_a_removed_file_keeps_the_lower_data(overlay):
    reader = overlay.openbin("top.txt", "r")
    overlay.remove("top.txt")
    assert reader.read() == b"lower top"
    reader.close()
