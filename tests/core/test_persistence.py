"""Stacking and persistence: an upper reused as a lower, hide and make_opaque kept on disk,
acknowledged writes surviving the overlay.

The ``lower`` fixture is a guarded MemoryFS (``/a/b/f.txt``, ``/a/g.txt``, ``/top.txt``,
``/empty/``); ``guard_lower`` fails the test if any lower changed by one byte. Split out of
the former ``tests/test_rules.py``; shared helpers in ``tests/support/rules.py``.
"""

from __future__ import annotations


import pytest

import unionfs  # noqa: F401
from fs import errors
from fs.memoryfs import MemoryFS

from unionfs import OverlayFS

from tests.support.rules import records, upper_files


def test_stacking_upper_reused_as_lower(lower, upper):
    first = OverlayFS(lower, upper)
    first.remove("a/g.txt")
    first.removetree("a/b")
    first.makedir("a/b")
    first.writetext("a/b/new", "n")
    second = OverlayFS([upper, lower], MemoryFS())
    assert sorted(second.walk.files("/")) == sorted(first.walk.files("/"))
    assert sorted(second.walk.dirs("/")) == sorted(first.walk.dirs("/"))
    third = OverlayFS([MemoryFS(), upper, lower])
    assert sorted(third.walk.files("/")) == sorted(first.walk.files("/"))


def test_hide_and_make_opaque_persist(lower, upper):
    overlay = OverlayFS(lower, upper)
    overlay.hide("a/b")
    overlay.make_opaque("empty")
    overlay.make_opaque("a")
    reopened = OverlayFS(lower, upper)
    assert reopened.listdir("a") == []
    assert sorted(reopened.listdir("/")) == ["a", "empty", "top.txt"]
    assert records(upper) == {"whiteouts": [], "opaque": ["/a", "/empty"]}


def test_hide_copies_nothing(overlay, upper):
    overlay.hide("a")
    assert upper_files(upper) == [] and not overlay.exists("a")


def test_make_opaque_creates_missing_directory(overlay):
    with pytest.raises(errors.ResourceNotFound):
        overlay.make_opaque("missing/dir")
    overlay.make_opaque("newdir")
    assert overlay.isdir("newdir")


def test_make_opaque_on_file_is_an_error(overlay):
    with pytest.raises(errors.DirectoryExpected):
        overlay.make_opaque("top.txt")


def test_acknowledged_writes_survive_dropping_the_overlay(lower, upper):
    overlay = OverlayFS(lower, upper)
    overlay.writetext("kept.txt", "k")
    overlay.remove("top.txt")
    del overlay  # never closed
    reopened = OverlayFS(lower, upper)
    assert reopened.readtext("kept.txt") == "k" and not reopened.exists("top.txt")
