"""Lookup-cache regressions found while testing reliability."""

from __future__ import annotations

import pytest

from fs import errors
from fs.memoryfs import MemoryFS

from unionfs import OverlayFS
from unionfs.testing import trees


def test_a_subtree_forget_reaches_answers_below_a_path_forgotten_alone(guard_lower):
    """Copying up /a/b forgot /a/b alone; hiding /a later forgot the subtree of /a but missed
    the cached /a/b/f.txt, so writing it copied up parents the view no longer had (an
    AssertionError in copy_up_parents instead of ResourceNotFound)."""
    lower = trees.make_tree(MemoryFS(), {"a/b/f.txt": "lower f"})
    overlay = OverlayFS(guard_lower(lower), MemoryFS())
    assert overlay.isfile("a/b/f.txt")  # cached
    overlay.setinfo("a/b", {"details": {"modified": 12345.0}})  # copies up /a, then /a/b
    overlay.hide("a")
    assert not overlay.exists("a/b/f.txt")
    with pytest.raises(errors.ResourceNotFound):
        overlay.writebytes("a/b/f.txt", b"x")
