"""unionfs.testing.trees: make_tree builds what a spec says, snapshot records it back."""

from __future__ import annotations

import hashlib
import os
import stat

from fs.memoryfs import MemoryFS
from fs.osfs import OSFS

from unionfs import OverlayFS
from unionfs.testing import trees

SPEC = {"etc/": None, "etc/motd": "hello", "bin/tool": b"\x00\x01", "empty/": None, "a/b/c/deep.txt": "deep"}


def test_make_tree_then_snapshot_gives_the_spec_back():
    fs = trees.make_tree(MemoryFS(), SPEC)
    assert trees.snapshot(fs) == {
        "/a": "dir", "/a/b": "dir", "/a/b/c": "dir", "/a/b/c/deep.txt": b"deep",
        "/bin": "dir", "/bin/tool": b"\x00\x01", "/empty": "dir", "/etc": "dir", "/etc/motd": b"hello",
    }
    assert list(trees.snapshot(fs)) == sorted(trees.snapshot(fs))  # parents first, names sorted
    assert trees.snapshot(fs, trees.digest)["/etc/motd"] == "file:" + hashlib.sha256(b"hello").hexdigest()
    assert trees.snapshot(fs, top="/a") == {"/a/b": "dir", "/a/b/c": "dir", "/a/b/c/deep.txt": b"deep"}


def test_the_sidecar_is_left_out_unless_asked_for():
    upper = MemoryFS()
    overlay = OverlayFS(trees.make_tree(MemoryFS(), {"f": "x"}), upper=upper)
    overlay.remove("f")
    assert trees.snapshot(upper) == {}
    assert "/.unionfs" in trees.snapshot(upper, sidecar=True)
    assert trees.snapshot(overlay) == {}


def test_a_disk_snapshot_records_links_and_nodes_as_themselves(tmp_path):
    trees.make_tree(OSFS(str(tmp_path)), {"d/f": b"data", "d/sub/": None, "skipped/inner": "x"})
    os.symlink("d", str(tmp_path / "to-dir"))  # a link to a directory: recorded, never entered
    os.symlink("d/f", str(tmp_path / "to-file"))
    os.mkfifo(str(tmp_path / "fifo"))  # opening it would block: recorded, never opened
    got = trees.disk_snapshot(str(tmp_path), skip=lambda path: path == "/skipped")
    assert got == {
        "/d": "dir", "/d/f": "file:" + hashlib.sha256(b"data").hexdigest(), "/d/sub": "dir",
        "/fifo": "node:%o:0" % stat.S_IFIFO, "/to-dir": "link:d", "/to-file": "link:d/f",
    }
    assert list(got) == sorted(got)  # parents first, names sorted
    # the same record as digest() of the same tree through an FS (which would follow the links)
    os.remove(str(tmp_path / "fifo"))
    os.remove(str(tmp_path / "to-dir"))
    os.remove(str(tmp_path / "to-file"))
    assert trees.disk_snapshot(str(tmp_path)) == trees.snapshot(OSFS(str(tmp_path)), trees.digest)
    modes = trees.disk_snapshot(str(tmp_path), lambda full, status: stat.S_IMODE(status.st_mode))
    assert modes["/d"] == stat.S_IMODE(os.lstat(str(tmp_path / "d")).st_mode)
