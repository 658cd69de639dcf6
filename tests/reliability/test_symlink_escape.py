"""Issue 10, item 10: no operation follows a symbolic link out of an on-disk upper or commit
target. Each test plants a link to a real victim directory outside every layer and requires
the victim to be byte for byte what it was."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from typing import Dict

import pytest

from fs.memoryfs import MemoryFS
from fs.osfs import OSFS

from unionfs import OverlayFS, SidecarError
from unionfs.core.nofollow import remove_entry
from unionfs.testing import trees


def _state(root: str) -> Dict[str, str]:
    """Every entry under ``root`` (links not followed) with its type and content hash."""
    found = {}
    for _path, full, status in trees.disk_entries(root):
        if stat.S_ISLNK(status.st_mode):
            found[full] = "link " + os.readlink(full)
        elif stat.S_ISDIR(status.st_mode):
            found[full] = "dir %o" % status.st_mode
        else:
            with open(full, "rb") as handle:
                found[full] = hashlib.sha256(handle.read()).hexdigest() + " %o" % status.st_mode
    return found


@pytest.fixture
def layout(tmp_path):
    """(base dir, victim state before); the victim is checked after the test."""
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "v.txt").write_text("precious")
    (victim / "sub" / "s").write_text("also precious")
    (tmp_path / "low").mkdir()
    (tmp_path / "low" / "f").write_text("lower")
    (tmp_path / "up").mkdir()
    before = _state(str(victim))
    yield str(tmp_path)
    assert _state(str(victim)) == before, "the victim outside every layer was changed"


def _overlay(base: str, upper=None) -> OverlayFS:
    return OverlayFS([OSFS(base + "/low")], upper if upper is not None else OSFS(base + "/up"))


def test_removetree_of_a_link_in_the_upper_removes_the_link_only(layout):
    os.symlink(layout + "/victim", layout + "/up/link")
    overlay = _overlay(layout)
    overlay.removetree("link")
    assert not os.path.lexists(layout + "/up/link")
    assert not overlay.exists("link")


def test_removetree_of_the_root_with_a_link_in_the_upper(layout):
    os.symlink(layout + "/victim", layout + "/up/link")
    overlay = _overlay(layout)
    overlay.removetree("/")
    assert overlay.listdir("/") == []


def test_removetree_of_a_directory_holding_a_link(layout):
    os.makedirs(layout + "/up/d")
    os.symlink(layout + "/victim", layout + "/up/d/link")
    _overlay(layout).removetree("d")
    assert not os.path.lexists(layout + "/up/d")


def test_discard_with_links_in_the_upper(layout):
    os.symlink(layout + "/victim", layout + "/up/link")
    os.makedirs(layout + "/up/d")
    os.symlink(layout + "/victim/v.txt", layout + "/up/d/file-link")
    overlay = _overlay(layout)
    overlay.discard()
    assert overlay.listdir("/") == ["f"]
    assert os.listdir(layout + "/up") == [".unionfs"]


@pytest.mark.parametrize("part", [".unionfs/tmp", ".unionfs/tree", ".unionfs", ".unionfs/journal"])
def test_a_linked_sidecar_part_is_refused_before_anything_is_touched(layout, part):
    _overlay(layout).close()
    where = os.path.join(layout, "up", part)
    if os.path.isdir(where):
        shutil.rmtree(where)
    os.symlink(layout + "/victim", where)
    with pytest.raises(SidecarError, match="symbolic link") as raised:
        _overlay(layout)
    assert "/" + part in str(raised.value)


def test_a_linked_record_directory_is_refused(layout):
    overlay = _overlay(layout)
    overlay.makedir("d")
    overlay.close()
    os.makedirs(layout + "/up/.unionfs/tree/d")
    os.symlink(layout + "/victim", layout + "/up/.unionfs/tree/d/d")  # M(/d) -> the victim
    overlay = _overlay(layout)
    with pytest.raises(SidecarError, match="symbolic link"):
        overlay.listdir("d")
    with pytest.raises(SidecarError, match="symbolic link"):
        overlay.writetext("d/x", "x") or overlay.remove("d/x")


def test_a_record_kind_directory_that_is_a_link_is_refused(layout):
    _overlay(layout).close()
    os.symlink(layout + "/victim", layout + "/up/.unionfs/tree/w")
    with pytest.raises(SidecarError, match="symbolic link"):
        _overlay(layout).remove("f")


def test_commit_replaces_a_linked_directory_of_the_target_instead_of_writing_through(layout):
    os.makedirs(layout + "/target")
    os.symlink(layout + "/victim", layout + "/target/sub")
    overlay = _overlay(layout, MemoryFS())
    overlay.makedirs("sub")
    overlay.writetext("sub/s", "overwritten?")
    overlay.writetext("sub/v.txt", "overwritten?")
    overlay.commit(OSFS(layout + "/target"))
    assert not os.path.islink(layout + "/target/sub")
    assert sorted(os.listdir(layout + "/target/sub")) == ["s", "v.txt"]


def test_commit_replaces_a_file_link_of_the_target_instead_of_writing_through(layout):
    os.makedirs(layout + "/target")
    os.symlink(layout + "/victim/v.txt", layout + "/target/f")
    overlay = _overlay(layout, MemoryFS())
    overlay.writetext("f", "clobber?")
    overlay.commit(OSFS(layout + "/target"), only_changes=True)
    assert not os.path.islink(layout + "/target/f")
    assert open(layout + "/target/f").read() == "clobber?"


def test_commit_deletes_nothing_through_a_linked_directory_of_the_target(layout):
    os.makedirs(layout + "/low/sub")
    (open(layout + "/low/sub/v.txt", "w")).write("lower")
    os.makedirs(layout + "/target")
    os.symlink(layout + "/victim", layout + "/target/sub")
    overlay = _overlay(layout, MemoryFS())
    overlay.remove("sub/v.txt")
    overlay.makedirs("sub/sub")
    overlay.writetext("sub/new", "n")
    overlay.commit(OSFS(layout + "/target"), only_changes=True)
    assert not os.path.islink(layout + "/target/sub")
    assert sorted(os.listdir(layout + "/target/sub")) == ["new", "sub"]


def test_commit_opaque_directory_does_not_empty_a_linked_target_directory(layout):
    os.makedirs(layout + "/low/sub")
    os.makedirs(layout + "/target")
    os.symlink(layout + "/victim", layout + "/target/sub")
    overlay = _overlay(layout, MemoryFS())
    overlay.make_opaque("sub")
    overlay.commit(OSFS(layout + "/target"), only_changes=True)
    assert os.listdir(layout + "/target/sub") == []


def test_commit_of_a_deleted_link_removes_the_link_only(layout):
    os.symlink(layout + "/victim", layout + "/low/link")
    os.makedirs(layout + "/target")
    os.symlink(layout + "/victim", layout + "/target/link")
    overlay = _overlay(layout, MemoryFS())
    overlay.hide("link")
    overlay.commit(OSFS(layout + "/target"), only_changes=True)
    assert not os.path.lexists(layout + "/target/link")


def test_remove_entry_never_follows_links(layout):
    tree = layout + "/tree"
    os.makedirs(tree + "/a/b")
    os.symlink(layout + "/victim", tree + "/a/b/to-victim")
    os.symlink(layout + "/victim/v.txt", tree + "/a/file-link")
    os.symlink(layout + "/nowhere", tree + "/dangling")
    remove_entry(OSFS(layout), "tree")
    assert not os.path.lexists(tree)
    os.symlink(layout + "/victim", layout + "/top-link")
    remove_entry(OSFS(layout), "top-link")
    assert not os.path.lexists(layout + "/top-link")
