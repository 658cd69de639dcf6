"""unionfs.testing.trees: make_tree builds what a spec says, snapshot records it back."""

from __future__ import annotations

import hashlib

from fs.memoryfs import MemoryFS

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
