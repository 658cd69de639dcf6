"""Lowers that change between two opens of the same upper: the kernel's offline-change
rules (overlay-semantics notes, section 1.9). The lowers are changed only while no overlay
is open; every change below is made on a MemoryFS lower between an overlay's writes and a
new overlay over the same upper. The overlays get the lower through ``fs.wrap.read_only``,
so the only changes to it are the test's own."""

from __future__ import annotations

import pytest

from fs.memoryfs import MemoryFS
from fs.wrap import read_only

from unionfs import OverlayFS
from unionfs.testing import trees


@pytest.fixture
def layers():
    spec = {"merged/kept": "kept", "merged/sub/s": "s", "file": "lower file", "gone": "to be whited out", "opaque/": None}
    return trees.make_tree(MemoryFS(), spec), MemoryFS()


def _reopen(lower, upper):
    return OverlayFS(read_only(lower), upper)


def test_a_whiteout_keeps_hiding_a_lower_entry_that_changed(layers):
    lower, upper = layers
    OverlayFS(read_only(lower), upper).remove("gone")
    lower.writetext("gone", "rewritten")
    assert not _reopen(lower, upper).exists("gone")
    lower.remove("gone")
    lower.makedirs("gone/now/a/dir")  # replaced by a directory: still hidden
    overlay = _reopen(lower, upper)
    assert not overlay.exists("gone") and "gone" not in overlay.listdir("/")


def test_an_opaque_directory_keeps_hiding_entries_added_below_it(layers):
    lower, upper = layers
    OverlayFS(read_only(lower), upper).make_opaque("opaque")
    lower.writetext("opaque/added", "new")
    assert _reopen(lower, upper).listdir("opaque") == []


def test_entries_added_to_or_removed_from_a_merged_directory_show(layers):
    lower, upper = layers
    OverlayFS(read_only(lower), upper).writetext("merged/upper", "u")  # merged is now in both layers
    lower.writetext("merged/added", "a")
    lower.remove("merged/kept")
    overlay = _reopen(lower, upper)
    assert sorted(overlay.listdir("merged")) == ["added", "sub", "upper"]
    assert overlay.readtext("merged/added") == "a"


def test_an_upper_file_keeps_shadowing_a_lower_file_that_became_a_directory(layers):
    lower, upper = layers
    OverlayFS(read_only(lower), upper).writetext("file", "upper copy")
    lower.remove("file")
    lower.makedirs("file/inside")
    overlay = _reopen(lower, upper)
    assert overlay.isfile("file") and overlay.readtext("file") == "upper copy"


def test_a_lower_file_that_became_a_directory_shows_as_one_where_the_upper_has_nothing(layers):
    lower, upper = layers
    OverlayFS(read_only(lower), upper).writetext("merged/upper", "u")
    lower.remove("file")
    lower.makedirs("file/inside")
    overlay = _reopen(lower, upper)
    assert overlay.isdir("file") and overlay.listdir("file") == ["inside"]


def test_an_upper_directory_over_a_lower_directory_that_became_a_file_stops_merging(layers):
    lower, upper = layers
    OverlayFS(read_only(lower), upper).writetext("merged/upper", "u")
    lower.removetree("merged")
    lower.writetext("merged", "now a file")
    overlay = _reopen(lower, upper)
    assert overlay.isdir("merged") and overlay.listdir("merged") == ["upper"]


def test_a_pure_upper_directory_merges_a_lower_directory_added_later(layers):
    """mkdir where nothing was below is not opaque (kernel rule 7), so it merges later additions."""
    lower, upper = layers
    OverlayFS(read_only(lower), upper).makedirs("fresh")
    lower.makedirs("fresh")
    lower.writetext("fresh/from-lower", "l")
    assert _reopen(lower, upper).listdir("fresh") == ["from-lower"]


def test_whiteouts_whose_lower_entry_vanished_stay_and_do_not_block_rmdir(layers):
    lower, upper = layers
    overlay = OverlayFS(read_only(lower), upper)
    overlay.remove("merged/kept")
    overlay.removetree("merged/sub")
    lower.remove("merged/kept")  # what the whiteout hid is gone
    overlay = _reopen(lower, upper)
    assert overlay.listdir("merged") == []
    assert overlay.fsck(repair=False).clean  # a whiteout that hides nothing now is not damage
    overlay.removedir("merged")
    assert not overlay.exists("merged")
    lower.writetext("merged/kept", "back")  # and it comes back: the directory's whiteout hides it
    assert not _reopen(lower, upper).exists("merged/kept")


def test_a_lower_removed_entirely_leaves_the_upper_view(layers):
    lower, upper = layers
    OverlayFS(read_only(lower), upper).writetext("merged/upper", "u")
    overlay = _reopen(MemoryFS(), upper)
    assert sorted(overlay.listdir("/")) == ["merged"] and overlay.listdir("merged") == ["upper"]
