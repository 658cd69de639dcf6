"""The directory operations (``docs/semantics.rst``): remove, removedir, makedir, creating and
moving files and directories; one test per rule, each named after the rule it checks.

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

from tests.support.rules import records


def test_remove_lower_file_records_whiteout(overlay, upper):
    overlay.remove("a/g.txt")
    assert not overlay.exists("a/g.txt")
    assert records(upper)["whiteouts"] == ["/a/g.txt"]


def test_remove_pure_upper_file_leaves_no_record(overlay, upper):
    overlay.writetext("a/new.txt", "x")
    overlay.remove("a/new.txt")
    assert records(upper) == {"whiteouts": [], "opaque": []}
    assert not upper.exists("a/new.txt")


def test_remove_copied_up_file_removes_copy_and_whiteouts(overlay, upper):
    overlay.writetext("top.txt", "changed")
    overlay.remove("top.txt")
    assert not upper.exists("top.txt")
    assert records(upper)["whiteouts"] == ["/top.txt"]
    assert not overlay.exists("top.txt")


def test_removedir_emptiness_on_merged_listing(overlay):
    with pytest.raises(errors.DirectoryNotEmpty):
        overlay.removedir("a/b")
    overlay.remove("a/b/f.txt")
    overlay.removedir("a/b")
    assert overlay.listdir("a") == ["g.txt"]


def test_removedir_all_lower_entries_whited_out_is_empty(overlay, upper):
    overlay.remove("a/b/f.txt")
    assert overlay.listdir("a/b") == []
    overlay.removedir("a/b")
    assert not overlay.exists("a/b")
    assert records(upper)["whiteouts"] == ["/a/b"]  # the inner whiteout went with the directory
    assert not upper.exists("a/b")


def test_removedir_pure_upper_leaves_no_record(overlay, upper):
    overlay.makedir("fresh")
    overlay.removedir("fresh")
    assert records(upper) == {"whiteouts": [], "opaque": []}


def test_removedir_root_refused(overlay):
    with pytest.raises(errors.RemoveRootError):
        overlay.removedir("/")


def test_makedir_over_whiteout_is_opaque(overlay, upper):
    overlay.removetree("a")
    overlay.makedir("a")
    assert overlay.listdir("a") == []
    assert records(upper) == {"whiteouts": [], "opaque": ["/a"]}


def test_makedir_where_nothing_existed_is_not_opaque(lower, upper):
    overlay = OverlayFS(lower, upper)
    overlay.makedir("new")
    assert records(upper) == {"whiteouts": [], "opaque": []}
    # as in the kernel, a lower directory added offline later merges into it
    later = MemoryFS()
    later.makedirs("new")
    later.writetext("new/from-later-lower", "x")
    assert OverlayFS([later], upper).listdir("new") == ["from-later-lower"]


def test_file_created_over_whiteout_replaces_it(overlay, upper):
    overlay.remove("a/g.txt")
    overlay.writetext("a/g.txt", "again")
    assert overlay.readtext("a/g.txt") == "again"
    assert records(upper)["whiteouts"] == []


def test_move_onto_whiteout_removes_it_and_whiteouts_source(overlay, upper):
    overlay.remove("a/g.txt")
    overlay.move("top.txt", "a/g.txt")
    assert overlay.readtext("a/g.txt") == "lower top"
    assert records(upper)["whiteouts"] == ["/top.txt"]


def test_move_pure_upper_file_leaves_no_whiteout(overlay, upper):
    overlay.writetext("new.txt", "n")
    overlay.move("new.txt", "a/renamed.txt")
    assert records(upper)["whiteouts"] == []
    assert overlay.readtext("a/renamed.txt") == "n"


def test_move_directory_into_own_subtree_is_an_error(overlay, lower):
    overlay.makedirs("a/b/c")
    with pytest.raises(unionfs.IllegalDestination):
        overlay.movedir("a", "a/b/c")
    assert overlay.readtext("a/b/f.txt") == "lower f"
    assert overlay.isdir("a/b/c")


def test_copydir_into_own_subtree_is_an_error(overlay):
    with pytest.raises(unionfs.IllegalDestination):
        overlay.copydir("a", "a/b", create=True)


def test_movedir_of_lower_directory_works(overlay, upper):
    overlay.movedir("a", "moved", create=True)
    assert not overlay.exists("a")
    assert sorted(overlay.walk.files("/moved")) == ["/moved/b/f.txt", "/moved/g.txt"]
    assert overlay.readtext("moved/b/f.txt") == "lower f"
    assert records(upper)["whiteouts"] == ["/a"]
    reopened = OverlayFS(overlay._lower_layers()[0].fs, upper)
    assert not reopened.exists("a") and reopened.readtext("moved/g.txt") == "lower g"


def test_movedir_of_merged_directory_nothing_lost_or_resurrected(overlay, upper):
    overlay.writetext("a/upper.txt", "u")
    overlay.remove("a/g.txt")
    overlay.makedir("dest")
    overlay.movedir("a", "dest")
    assert sorted(overlay.walk.files("/")) == ["/dest/b/f.txt", "/dest/upper.txt", "/top.txt"]
    assert not overlay.exists("dest/g.txt")


def test_movedir_of_pure_upper_directory_into_merged_parent_is_opaque(lower, upper):
    overlay = OverlayFS(lower, upper)
    overlay.removetree("a/b")
    overlay.makedirs("u/v")
    overlay.writetext("u/v/file", "x")
    overlay.movedir("u", "a/b", create=True)
    assert sorted(overlay.walk.files("/a")) == ["/a/b/v/file", "/a/g.txt"]


def test_movedir_type_clash_refused_before_any_change(overlay):
    overlay.makedirs("dest/g.txt")
    with pytest.raises(errors.DirectoryExpected):
        overlay.movedir("dest", "a")
    with pytest.raises(errors.FileExpected):
        overlay.movedir("a", "dest")
    assert overlay.readtext("a/g.txt") == "lower g" and overlay.isdir("dest/g.txt")
