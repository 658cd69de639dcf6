"""Behaviour that fs-next's (and newer PyFilesystem2's) conformance suite expects, checked
under whichever ``fs`` distribution is installed."""

from __future__ import annotations

import pytest
from fs import errors
from fs.memoryfs import MemoryFS

import unionfs
from unionfs import OverlayFS


@pytest.fixture
def overlay(lower):
    with OverlayFS(lower, upper=MemoryFS()) as view:
        yield view


def test_illegal_destination_is_fs_own_class_where_fs_has_one():
    expected = getattr(errors, "IllegalDestination", errors.ResourceInvalid)
    assert issubclass(unionfs.IllegalDestination, expected)
    assert str(unionfs.IllegalDestination("a/b")) == "cannot move or copy into or onto itself: 'a/b'"


def test_copy_a_file_onto_itself(overlay):
    with pytest.raises(unionfs.IllegalDestination):
        overlay.copy("a/g.txt", "a/../a/g.txt", overwrite=True)
    with pytest.raises(errors.DestinationExists):
        overlay.copy("a/g.txt", "a/g.txt")
    assert overlay.readtext("a/g.txt") == "lower g"
    assert len(overlay.changes()) == 0


def test_movedir_onto_itself_changes_nothing(overlay):
    overlay.movedir("a", "a")
    assert overlay.readtext("a/b/f.txt") == "lower f"
    assert len(overlay.changes()) == 0
    with pytest.raises(unionfs.IllegalDestination):
        overlay.movedir("a", "a/b")
