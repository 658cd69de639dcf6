"""Issue 10, item 3: a merged listing never loses entries to a layer error. A dangling link in
an on-disk lower made ``scandir`` of its directory return ``[]`` (OSFS stats every entry, the
error was swallowed for the whole layer) and ``commit`` then wrote the directory empty."""

from __future__ import annotations

import os

import pytest

from fs import errors
from fs.enums import ResourceType
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS

from unionfs import OverlayFS
from unionfs.testing import trees


@pytest.fixture
def lower(tmp_path):
    trees.make_tree(OSFS(str(tmp_path / "low"), create=True), {"d/a": "a", "d/b": "b"})
    os.symlink(str(tmp_path / "nowhere"), str(tmp_path / "low" / "d" / "dangling"))
    return OSFS(str(tmp_path / "low"))


@pytest.mark.parametrize("namespaces", [None, ["details"], ["details", "access"]])
def test_item3_a_dangling_link_does_not_empty_scandir(lower, namespaces):
    overlay = OverlayFS([lower], upper=MemoryFS())
    names = sorted(info.name for info in overlay.scandir("d", namespaces))
    assert names == sorted(overlay.listdir("d")) == ["a", "b", "dangling"]
    if namespaces:
        infos = {info.name: info for info in overlay.scandir("d", namespaces)}
        assert infos["a"].size == 1
        # the link itself, described without following it
        assert infos["dangling"].type == ResourceType.symlink


def test_item3_a_dangling_link_is_listed_beside_upper_entries(lower):
    overlay = OverlayFS([lower], upper=MemoryFS())
    overlay.writetext("d/new", "n")
    names = sorted(info.name for info in overlay.scandir("d", ["details"]))
    assert names == ["a", "b", "dangling", "new"]
    assert sorted(info.name for info in overlay.scandir("d", ["details"], page=(0, 4))) == names


def test_item3_commit_never_writes_the_directory_without_its_entries(lower):
    overlay = OverlayFS([lower], upper=MemoryFS())
    target = MemoryFS()
    try:
        overlay.commit(target)
    except errors.FSError as error:
        assert "dangling" in str(error)  # a clear error naming the entry, not a silent loss
    else:
        assert sorted(target.listdir("d")) == ["a", "b", "dangling"]
    assert target.exists("d/a") or not target.exists("d")  # never an emptied directory
