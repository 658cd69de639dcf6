"""The one walker: recursive order without recursion, so very deep trees work everywhere."""

from __future__ import annotations

import io
import os
import random
import tarfile
from typing import Dict, Iterator, List

import pytest
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS

from unionfs import OverlayFS
from unionfs.core.walk import fs_tree, preorder
from unionfs.testing import trees

DEPTH = 1200  # deeper than Python's default recursion limit of 1,000


def _recursive(tree: Dict[str, dict], prefix: str = "") -> Iterator[str]:
    for name in sorted(tree):
        yield prefix + "/" + name
        yield from _recursive(tree[name], prefix + "/" + name)


def test_preorder_visits_as_a_recursive_walk_would():
    rng = random.Random(12)
    for _ in range(50):
        tree: Dict[str, dict] = {}
        for _ in range(rng.randint(0, 30)):
            node = tree
            for _ in range(rng.randint(1, 5)):
                node = node.setdefault(rng.choice("abcd"), {})

        def children(item: tuple) -> List[tuple]:
            path, node = item
            return [(path + "/" + name, node[name]) for name in sorted(node)]

        assert [path for path, _ in preorder(("", tree), children)] == list(_recursive(tree))


def test_fs_tree_is_sorted_parents_first_with_depths():
    memory = trees.make_tree(MemoryFS(), {"b/y": "", "a/z/q": "", "a/x": "", "c": ""})
    seen = [(entry.path, entry.depth, entry.last) for entry in fs_tree(memory)]
    assert seen == [
        ("/a", 0, False), ("/a/x", 1, False), ("/a/z", 1, True), ("/a/z/q", 2, True),
        ("/b", 0, False), ("/b/y", 1, True), ("/c", 0, True),
    ]


def _deep_overlay():
    """An overlay whose upper adds a tree DEPTH levels deep and deletes a lower file. The
    upper is a MemoryFS (on disk its sidecar paths would pass PATH_MAX) filled directly, as
    a kernel upperdir may be: the overlay's own makedirs pays a lookup per level."""
    deep = "/" + "/".join("d" for _ in range(DEPTH))
    upper = trees.make_tree(MemoryFS(), {deep + "/leaf.txt": "at the bottom"})
    lower = trees.make_tree(MemoryFS(), {"/base.txt": "lower"})
    overlay = OverlayFS(lower, upper=upper)
    overlay.remove("/base.txt")
    return overlay, deep


def _remove_deep(top: str) -> None:
    """Delete a deep tree bottom-up without recursion (shutil.rmtree and os.walk recurse once
    per level on Python 3.11, and so does pytest's clean-up of old temporary directories)."""
    directories, pending = [], [top]
    while pending:
        current = pending.pop()
        directories.append(current)
        for entry in os.scandir(current):
            if entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
            else:
                os.unlink(entry.path)
    for directory in reversed(directories):
        os.rmdir(directory)


@pytest.fixture
def deep_dirs(tmp_path):
    yield tmp_path
    for name in os.listdir(tmp_path):
        _remove_deep(str(tmp_path / name))


def test_a_tree_1200_levels_deep_goes_through_changes_export_and_commit(deep_dirs):
    tmp_path = deep_dirs
    overlay, deep = _deep_overlay()

    change_set = overlay.changes()
    assert len(change_set.added) == DEPTH + 1 and change_set.added[-1] == deep + "/leaf.txt"
    assert change_set.deleted == ("/base.txt",)

    layer = io.BytesIO()
    overlay.export_layer(layer)
    layer.seek(0)
    with tarfile.open(fileobj=layer) as archive:
        names = archive.getnames()
    assert ".wh.base.txt" in names and deep.lstrip("/") + "/leaf.txt" in names

    (tmp_path / "target").mkdir()
    target = OSFS(str(tmp_path / "target"))  # a MemoryFS target pays O(depth) per step too
    overlay.commit(target)
    assert target.readtext(deep + "/leaf.txt") == "at the bottom" and not target.exists("/base.txt")

