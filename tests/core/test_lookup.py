"""Lookup across the layers and merged listings (``docs/semantics.rst``: lookup, readdir), one test
per rule, each named after the rule it checks.

The ``lower`` fixture is a guarded MemoryFS (``/a/b/f.txt``, ``/a/g.txt``, ``/top.txt``,
``/empty/``); ``guard_lower`` fails the test if any lower changed by one byte. Split out of
the former ``tests/test_rules.py``; shared helpers in ``tests/support/rules.py``.
"""

from __future__ import annotations


import unionfs  # noqa: F401
from fs.memoryfs import MemoryFS

from unionfs import OverlayFS
from unionfs.core.sidecar import OPAQUE, WHITEOUT, Sidecar
from unionfs.testing import trees


def test_lookup_topmost_layer_wins(guard_lower):
    top, bottom = trees.make_tree(MemoryFS(), {"x": "top"}), trees.make_tree(MemoryFS(), {"x": "bottom"})
    assert OverlayFS([guard_lower(top), guard_lower(bottom)]).readtext("x") == "top"


def test_lookup_file_hides_directory_below(guard_lower):
    top, bottom = trees.make_tree(MemoryFS(), {"x": "a file"}), trees.make_tree(MemoryFS(), {"x/inside/": None})
    overlay = OverlayFS([guard_lower(top), guard_lower(bottom)])
    assert overlay.isfile("x")
    assert not overlay.exists("x/inside")


def test_lookup_directory_hides_file_below(guard_lower):
    top, bottom = trees.make_tree(MemoryFS(), {"x/": None}), trees.make_tree(MemoryFS(), {"x": "a file"})
    overlay = OverlayFS([guard_lower(top), guard_lower(bottom)])
    assert overlay.isdir("x")
    assert overlay.listdir("x") == []


def test_lookup_directories_merge_until_a_non_directory(guard_lower):
    l0, l1, l2 = (trees.make_tree(MemoryFS(), spec) for spec in ({"d/zero": "0"}, {"d": "a file in the middle"}, {"d/two": "2"}))
    overlay = OverlayFS([guard_lower(l0), guard_lower(l1), guard_lower(l2)])
    assert overlay.listdir("d") == ["zero"]


def test_lookup_merged_directory_metadata_from_topmost(guard_lower):
    top, bottom = trees.make_tree(MemoryFS(), {"d/": None}), trees.make_tree(MemoryFS(), {"d/": None})
    top.setinfo("d", {"details": {"modified": 2000}})
    bottom.setinfo("d", {"details": {"modified": 1000}})
    assert OverlayFS([guard_lower(top), guard_lower(bottom)]).getinfo("d", ["details"]).modified.timestamp() == 2000


def test_lookup_lower_whiteout_hides_layers_below(guard_lower):
    marked, bottom = MemoryFS(), trees.make_tree(MemoryFS(), {"gone": "hidden", "kept": "visible"})
    Sidecar.open(marked, create=True).add_record("/gone", WHITEOUT)
    overlay = OverlayFS([guard_lower(marked), guard_lower(bottom)])
    assert overlay.listdir("/") == ["kept"]
    assert not overlay.exists("gone")


def test_lookup_lower_opaque_directory_stops_merge(guard_lower):
    marked, bottom = trees.make_tree(MemoryFS(), {"d/mine": "m"}), trees.make_tree(MemoryFS(), {"d/below": "b"})
    Sidecar.open(marked, create=True).add_record("/d", OPAQUE)
    overlay = OverlayFS([guard_lower(marked), guard_lower(bottom)])
    assert overlay.listdir("d") == ["mine"]


def test_listing_is_union_minus_whiteouts_without_duplicates(overlay, lower):
    overlay.writetext("a/new.txt", "upper")
    overlay.writetext("a/g.txt", "shadowing")
    overlay.remove("a/b/f.txt")
    assert sorted(overlay.listdir("a")) == ["b", "g.txt", "new.txt"]
    assert overlay.listdir("a/b") == []


def test_listing_scandir_infos_from_the_winning_layer(overlay):
    overlay.writetext("a/g.txt", "a longer upper text")
    infos = {info.name: info for info in overlay.scandir("a", ["details"])}
    assert infos["g.txt"].size == len("a longer upper text")
    assert infos["b"].is_dir


def test_listing_paging_applies_to_the_merged_list(overlay):
    for index in range(5):
        overlay.writetext("a/u%d" % index, "x")
    everything = [info.name for info in overlay.scandir("a")]
    pages = [info.name for start in range(0, 8, 3) for info in overlay.scandir("a", page=(start, start + 3))]
    assert pages == everything and len(everything) == 7
