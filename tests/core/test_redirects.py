"""Redirects and metadata-only copy-ups, rule by rule (the kernel's namei.c, dir.c, copy_up.c).

The kernel property suite compares them with a ``redirect_dir=on,metacopy=on`` mount at
random; these name each rule once, on MemoryFS layers, and check what the upper holds.
"""

from __future__ import annotations

import pytest
from fs.memoryfs import MemoryFS

from unionfs import OverlayFS, SidecarError
from unionfs.core.sidecar import FORMAT_PATH, METACOPY_FILE_SIZE, REDIRECT, record_dir
from unionfs.testing import trees


@pytest.fixture
def lower(guard_lower) -> MemoryFS:
    spec = {"a/f": "a/f", "a/sub/g": "a/sub/g", "b/h": "b/h", "big": b"x" * 100000}
    return guard_lower(trees.make_tree(MemoryFS(), spec))


def redirect_of(upper: MemoryFS, path: str) -> str:
    parent, _, name = path.rpartition("/")
    return upper.readtext(record_dir(parent or "/") + "/" + REDIRECT + "/" + name)


def test_a_renamed_lower_directory_is_one_directory_with_a_redirect(lower) -> None:
    upper = MemoryFS()
    with OverlayFS(lower, upper) as overlay:
        overlay.movedir("a", "x", create=True)
        assert sorted(overlay.walk.files()) == ["/b/h", "/big", "/x/f", "/x/sub/g"]
        assert overlay.readtext("x/sub/g") == "a/sub/g"
    assert upper.listdir("/x") == []  # nothing of the tree was copied
    assert redirect_of(upper, "/x") == "/a"
    assert upper.readtext(FORMAT_PATH) == "unionfs-sidecar 3\n"
    with OverlayFS(lower, upper) as again:  # persistent
        assert not again.exists("a") and again.readtext("x/f") == "a/f"


def test_redirects_inside_redirected_directories_and_renamed_twice(lower) -> None:
    upper = MemoryFS()
    with OverlayFS(lower, upper) as overlay:
        overlay.movedir("a", "x", create=True)
        overlay.movedir("x/sub", "x/sub2", create=True)  # inside a redirected directory
        assert redirect_of(upper, "/x/sub2") == "/a/sub"
        overlay.movedir("x", "b/y", create=True)  # an already redirected directory keeps its origin
        assert redirect_of(upper, "/b/y") == "/a"
        assert overlay.readtext("b/y/sub2/g") == "a/sub/g"
        assert sorted(overlay.walk.files()) == ["/b/h", "/b/y/f", "/b/y/sub2/g", "/big"]


def test_rename_back_onto_the_original_name(lower) -> None:
    upper = MemoryFS()
    with OverlayFS(lower, upper) as overlay:
        overlay.movedir("a", "x", create=True)
        overlay.writetext("x/new", "n")
        overlay.movedir("x", "a", create=True)  # over the whiteout it left
        assert sorted(overlay.walk.files()) == ["/a/f", "/a/new", "/a/sub/g", "/b/h", "/big"]
        assert overlay.changes().as_dict()["deleted"] == []


def test_a_pure_upper_directory_moves_by_a_plain_rename(lower) -> None:
    upper = MemoryFS()
    with OverlayFS(lower, upper) as overlay:
        overlay.makedirs("new/deep")
        overlay.movedir("new", "moved", create=True)
        assert not upper.exists(record_dir("/") + "/" + REDIRECT + "/moved")
        assert overlay.listdir("moved") == ["deep"]


def test_redirects_of_a_lower_layer_are_followed(lower) -> None:
    """Stacking: a former upper with a redirect is a lower; renaming again stores the path the
    layer below the upper looks it up at."""
    first = MemoryFS()
    with OverlayFS(lower, first) as overlay:
        overlay.movedir("a", "x", create=True)
    upper = MemoryFS()
    with OverlayFS([first, lower], upper) as stacked:
        assert stacked.readtext("x/sub/g") == "a/sub/g" and not stacked.exists("a")
        stacked.movedir("x", "z", create=True)
        assert redirect_of(upper, "/z") == "/x"
        assert sorted(stacked.walk.files()) == ["/b/h", "/big", "/z/f", "/z/sub/g"]


def test_metadata_only_copy_up_and_its_data_copy_up(lower) -> None:
    upper = MemoryFS()
    with OverlayFS(lower, upper) as overlay:
        overlay.setinfo("big", {"details": {"modified": 1234}})
        assert len(upper.readbytes("big")) == METACOPY_FILE_SIZE  # a token, not the 100000 bytes
        assert overlay.getinfo("big", ["details"]).size == 100000
        with overlay.openbin("big") as reader:
            assert reader.read() == b"x" * 100000
        overlay.move("big", "b/big")  # stays metadata-only
        assert len(upper.readbytes("b/big")) == METACOPY_FILE_SIZE
        assert overlay.changes().renamed == ("/b/big",)
        overlay.appendbytes("b/big", b"!")  # the first write copies the data up
        assert upper.readbytes("b/big") == b"x" * 100000 + b"!"
        assert overlay.getinfo("b/big", ["details"]).modified.timestamp() != 0
        assert overlay.fsck(repair=False).clean


def test_the_copying_options(lower) -> None:
    upper = MemoryFS()
    with OverlayFS(lower, upper, redirect_dir=False, metacopy=False) as overlay:
        overlay.movedir("a", "x", create=True)
        overlay.setinfo("big", {"details": {"modified": 1234}})
    assert upper.readtext("x/sub/g") == "a/sub/g" and upper.readbytes("big") == b"x" * 100000
    assert upper.readtext(FORMAT_PATH) == "unionfs-sidecar 1\n"


def test_an_older_unionfs_refuses_a_layer_with_redirects_and_a_bad_redirect_is_named(lower) -> None:
    upper = MemoryFS()
    with OverlayFS(lower, upper) as overlay:
        overlay.movedir("a", "x", create=True)
    upper.writetext(FORMAT_PATH, "unionfs-sidecar 9\n")  # a version after every one this unionfs knows
    with pytest.raises(SidecarError, match="newer"):
        OverlayFS(lower, upper)
    upper.writetext(FORMAT_PATH, "unionfs-sidecar 3\n")
    record = record_dir("/") + "/" + REDIRECT + "/x"
    upper.writetext(record, "relative")
    with pytest.raises(SidecarError, match=record):
        OverlayFS(lower, upper).listdir("/")


def test_discard_forgets_the_metacopy_table_too(lower) -> None:
    from unionfs.core.sidecar import METACOPY_DIR

    upper = MemoryFS()
    with OverlayFS(lower, upper) as overlay:
        overlay.setinfo("big", {"details": {"modified": 1234}})
        overlay.movedir("a", "x", create=True)
        assert upper.listdir(METACOPY_DIR)
        overlay.discard()
        assert sorted(overlay.walk.files()) == ["/a/f", "/a/sub/g", "/b/h", "/big"]
    assert upper.listdir(METACOPY_DIR) == []
