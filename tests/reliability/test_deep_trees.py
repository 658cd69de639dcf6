"""Issue 10, items 9 and 13 (deep nesting): every tree walk works on a tree 1,200 levels
deep (deeper than Python's recursion limit), over an on-disk lower and upper and from
tar and zip members that deep."""

from __future__ import annotations

import io
import os
import sys
import tarfile
import zipfile

import pytest

from fs.osfs import OSFS

from unionfs import OverlayFS
from unionfs.core.nofollow import remove_entry
from unionfs.core.walk import preorder
from unionfs.testing import trees

DEPTH = 1200
DEEP = "/".join(["d"] * DEPTH)


def test_depth_is_beyond_the_recursion_limit():
    assert DEPTH > sys.getrecursionlimit()


def test_preorder_is_the_recursive_order_without_recursion():
    tree = {"": ["a", "b"], "a": ["a/x", "a/y"], "a/x": ["a/x/1"], "b": []}
    order = list(preorder("", lambda node: tree.get(node, ())))
    assert order == ["a", "a/x", "a/x/1", "a/y", "b"]
    chain = list(preorder(0, lambda n: [n + 1] if n < 5000 else ()))
    assert chain == list(range(1, 5001))


def _remove_all(where) -> None:
    """pytest's own clean-up of tmp_path recurses and fails on 1,200 levels: remove them here."""
    for name in list(os.listdir(str(where))):
        remove_entry(OSFS(str(where)), name)


@pytest.fixture(autouse=True)
def _remove_deep_trees(tmp_path):
    yield
    _remove_all(tmp_path)


@pytest.fixture(scope="module")
def deep_overlay(tmp_path_factory):
    """Built once: every write at that depth costs the depth in path handling."""
    tmp_path = tmp_path_factory.mktemp("deep")
    (tmp_path / "up").mkdir()
    lower = trees.make_tree(OSFS(str(tmp_path / "low"), create=True), {DEEP + "/old": "old", "d/old": "old"})
    overlay = OverlayFS([lower], upper=OSFS(str(tmp_path / "up")))
    overlay.writetext(DEEP + "/new", "new")
    # a whiteout's record path is longer than its path (4,096 bytes of OS path at most)
    overlay.remove("d/old")
    yield overlay
    overlay.close()
    _remove_all(tmp_path)


def test_item9_changes_on_a_deep_tree(deep_overlay):
    change_set = deep_overlay.changes()
    assert change_set.added == ("/" + DEEP + "/new",)
    assert change_set.deleted == ("/d/old",)


def test_item9_export_layer_on_a_deep_tree(deep_overlay, tmp_path):
    deep_overlay.export_layer(str(tmp_path / "layer.tar"))
    with tarfile.open(str(tmp_path / "layer.tar")) as archive:
        names = archive.getnames()
    assert DEEP + "/new" in names and "d/.wh.old" in names


@pytest.mark.parametrize("only_changes", [False, True])
def test_item9_commit_on_a_deep_tree(deep_overlay, only_changes, tmp_path):
    (tmp_path / "target").mkdir()
    target = OSFS(str(tmp_path / "target"))
    if only_changes:
        target.makedirs(DEEP)
        target.writetext("d/old", "old")
    deep_overlay.commit(target, only_changes=only_changes)
    assert target.readtext(DEEP + "/new") == "new"
    assert not target.exists("d/old")


def test_item9_export_kernel_on_a_deep_tree(deep_overlay, tmp_path):
    deep_overlay.export_kernel(str(tmp_path / "kernel"), whiteout="xattr")
    assert (tmp_path / "kernel" / DEEP / "new").read_text() == "new"


def _deep_tar(path: str) -> None:
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo(DEEP + "/f")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))


def _deep_zip(path: str) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(DEEP + "/f", "x")


@pytest.mark.parametrize("build", [_deep_tar, _deep_zip], ids=["tar", "zip"])
def test_item13_deep_archive_member_opens(tmp_path, build):
    archive = str(tmp_path / "deep.archive")
    build(archive)
    # (writing at that depth is the on-disk tests' part: MemoryFS costs depth squared per write)
    with OverlayFS(archive) as overlay:
        assert overlay.readtext(DEEP + "/f") == "x"
        assert overlay.listdir(DEEP) == ["f"]


def test_deep_object_store_key_opens():
    """An fsspec layer (here fsspec's in-memory store) finds a key 1,200 directories deep:
    the listings of its parents are taken in a loop, not one recursion per level."""
    fsspec = pytest.importorskip("fsspec")
    from fs.memoryfs import MemoryFS
    from unionfs.formats.fsspec_layer import FsspecFS

    store = fsspec.filesystem("memory", skip_instance_cache=True)
    store.pipe_file("/deep/" + DEEP + "/f", b"x")
    layer = FsspecFS(store, "/deep")
    assert layer.readbytes(DEEP + "/f") == b"x"
    assert OverlayFS([FsspecFS(store, "/deep")], upper=MemoryFS()).readbytes(DEEP + "/f") == b"x"
