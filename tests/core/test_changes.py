"""The change set, commit and discard of an overlay, against real lowers."""

from __future__ import annotations

from typing import List

import pytest
from hypothesis import given, strategies as st

from fs import errors
from fs.base import FS
from fs.copy import copy_fs
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS
from fs.wrapfs import WrapFS
from unionfs import OverlayFS
from unionfs.changes import ChangeSet
from unionfs.commit import Progress
from unionfs.testing import trees

from tests.conftest import LOWER


class CountingFS(WrapFS):
    """Counts the directory reads made on the wrapped filesystem."""

    def __init__(self, wrapped: FS) -> None:
        super().__init__(wrapped)
        self.directory_reads: List[str] = []

    def scandir(self, path, namespaces=None, page=None):
        self.directory_reads.append(path)
        return super().scandir(path, namespaces, page)

    def listdir(self, path):
        self.directory_reads.append(path)
        return super().listdir(path)


def test_change_set_kinds(lower):
    with OverlayFS(lower, upper=MemoryFS()) as overlay:
        assert overlay.changes() == ChangeSet(())
        overlay.makedir("new")
        overlay.writetext("new/file", "n")
        overlay.writetext("a/b/f.txt", "changed")            # modified
        overlay.setinfo("a/g.txt", {"details": {"modified": 1000.0}})  # metadata only
        overlay.remove("top.txt")                            # deleted
        overlay.make_opaque("empty")                         # opaque over a lower directory
        overlay.writetext("empty/inside", "x")
        changes = overlay.changes()
    assert changes.as_dict() == {
        "added": ["/empty/inside", "/new", "/new/file"],
        "modified": ["/a/b/f.txt"],
        "metadata": ["/a/g.txt"],
        "deleted": ["/top.txt"],
        "opaque": ["/empty"],
        "renamed": [],
    }
    assert "/a" not in [change.path for change in changes]  # copied up as a parent only


def test_renames_and_metadata_only_copies_in_the_change_set(lower):
    """A directory renamed by a redirect is ``renamed`` with its source, its old name
    ``deleted``; a metadata-only copy-up is ``metadata``; a moved one ``renamed``; what
    changes inside a renamed directory is compared with the source's entries."""
    with OverlayFS(lower, upper=MemoryFS()) as overlay:
        overlay.movedir("a", "x", create=True)
        overlay.writetext("x/b/f.txt", "changed")  # inside the renamed tree: modified
        overlay.setinfo("top.txt", {"details": {"modified": 1000.0}})
        overlay.move("x/g.txt", "g-moved.txt")
        changes = overlay.changes()
        assert [(c.path, c.kind, c.source) for c in changes if c.kind == "renamed"] == [
            ("/g-moved.txt", "renamed", "/a/g.txt"),
            ("/x", "renamed", "/a"),
        ]
        target = MemoryFS()
        overlay.commit(target)
        assert target.readtext("x/b/f.txt") == "changed" and target.readtext("g-moved.txt") == "lower g"
    assert changes.deleted == ("/a", "/x/g.txt")  # the whiteouts of the old names
    assert changes.modified == ("/x/b/f.txt",)
    assert changes.metadata == ("/top.txt",)


def test_type_changes_and_deleted_directories(lower):
    with OverlayFS(lower, upper=MemoryFS()) as overlay:
        overlay.removetree("a")
        overlay.writetext("a", "now a file")
        overlay.removedir("empty")
        changes = overlay.changes()
    assert [(c.path, c.kind, c.is_dir) for c in changes] == [("/a", "modified", False), ("/empty", "deleted", True)]


def test_change_set_reads_only_the_lower_directories_of_changed_paths(guard_lower):
    # unrelated/: never to be read, the change set does not walk the lowers
    lower = trees.make_tree(MemoryFS(), {"a/b/f.txt": "f", "a/g.txt": "g", "unrelated/deep/tree/": None})
    guard_lower(lower)
    upper = MemoryFS()
    with OverlayFS(lower, upper=upper) as overlay:
        overlay.writetext("a/b/f.txt", "x")
        overlay.remove("a/g.txt")
    counting = CountingFS(lower)
    with OverlayFS(counting, upper=upper) as remounted:  # cold caches
        changes = remounted.changes()
    assert changes.modified == ("/a/b/f.txt",) and changes.deleted == ("/a/g.txt",)
    assert set(counting.directory_reads) <= {"/", "/a", "/a/b"}


def test_commit_merged_view_and_changes(lower):
    with OverlayFS(lower, upper=MemoryFS()) as overlay:
        overlay.makedirs("x/y")
        overlay.writetext("x/y/z", "zz")
        overlay.writetext("a/g.txt", "new g")
        overlay.remove("a/b/f.txt")
        overlay.make_opaque("a/b")
        merged = trees.snapshot(overlay)
        exported = MemoryFS()
        overlay.commit(exported)
        assert trees.snapshot(exported) == merged
        replica = MemoryFS()
        copy_fs(lower, replica)
        overlay.commit(replica, only_changes=True)
        assert trees.snapshot(replica) == merged


def test_commit_into_a_lower_needs_consent_then_discards(tmp_path):
    base = tmp_path / "base"
    lower = trees.make_tree(OSFS(str(base), create=True), {"d/old": "old", "keep": "keep"})
    with OverlayFS(lower, upper=MemoryFS()) as overlay:
        overlay.remove("d/old")
        overlay.writetext("d/new", "new")
        overlay.writetext("keep", "kept and changed")
        merged = trees.snapshot(overlay)
        before = trees.snapshot(lower)
        with pytest.raises(errors.OperationFailed, match="into_lower=True"):
            overlay.commit(OSFS(str(base)))  # the same directory, another FS object
        assert trees.snapshot(lower) == before
        overlay.commit(str(base), into_lower=True)
        assert trees.snapshot(lower) == merged
        assert trees.snapshot(overlay) == merged
        assert overlay.changes() == ChangeSet(())


def test_commit_into_the_topmost_lower_refuses_what_needs_a_whiteout(lower, guard_lower):
    top = trees.make_tree(MemoryFS(), {"own.txt": "mine"})
    with OverlayFS([top, lower], upper=MemoryFS()) as overlay:
        overlay.remove("top.txt")  # an entry of the deeper lower: a plain top lower cannot hide it
        with pytest.raises(errors.OperationFailed, match="deeper lower"):
            overlay.commit(top, into_lower=True)
        with pytest.raises(errors.OperationFailed, match="topmost"):
            overlay.commit(lower, into_lower=True)
    assert top.listdir("/") == ["own.txt"]


def test_commit_refuses_the_upper(lower):
    upper = MemoryFS()
    with OverlayFS(lower, upper=upper) as overlay:
        with pytest.raises(errors.OperationFailed, match="own upper"):
            overlay.commit(upper)


def test_commit_streams_with_progress(lower):
    size = 3 * 1024 * 1024 + 5
    with OverlayFS(lower, upper=MemoryFS()) as overlay:
        overlay.writebytes("big.bin", b"\1" * size)
        overlay.writetext("small", "s")
        seen: List[Progress] = []
        overlay.commit(MemoryFS(), only_changes=True, progress=seen.append)
    big = [p for p in seen if p.path == "/big.bin"]
    assert len(big) >= 4  # one report per chunk at least
    assert [p.bytes_done for p in seen] == sorted(p.bytes_done for p in seen)
    assert seen[-1].bytes_done == seen[-1].bytes_total == size + 1
    assert seen[-1].files_done == seen[-1].files_total == 2


def test_commit_target_url_and_errors(lower, tmp_path):
    with OverlayFS(lower, upper=MemoryFS()) as overlay:
        overlay.writetext("n", "n")
        target = tmp_path / "out"
        overlay.commit(str(target))
        assert (target / "n").read_text() == "n" and (target / "a" / "b" / "f.txt").read_text() == "lower f"
        with pytest.raises(errors.CreateFailed, match="nope://"):
            overlay.commit("nope://x")
    with OverlayFS(lower) as read_only:
        assert read_only.changes() == ChangeSet(())
        with pytest.raises(errors.ResourceReadOnly):
            read_only.commit(MemoryFS())
        with pytest.raises(errors.ResourceReadOnly):
            read_only.discard()


def test_discard_returns_to_the_pristine_lowers(lower):
    upper = MemoryFS()
    with OverlayFS(lower, upper=upper) as overlay:
        pristine = trees.snapshot(overlay)
        overlay.writetext("a/b/f.txt", "x")
        overlay.removetree("a")
        overlay.makedir("a")  # opaque now
        overlay.writetext("fresh", "f")
        assert overlay.listdir("a") == []
        overlay.discard()
        assert trees.snapshot(overlay) == pristine
        assert overlay.changes() == ChangeSet(())
        assert upper.listdir("/") == [".unionfs"]
        overlay.writetext("again", "works")  # the overlay stays usable
        assert overlay.changes().added == ("/again",)
    with OverlayFS(lower, upper=upper) as remounted:
        assert trees.snapshot(remounted) == dict(pristine, **{"/again": b"works"})


NAMES = st.sampled_from(["a", "b", "a/b", "a/x", "empty/e", "new", "new/n", "top.txt", "a/g.txt", "a/b/f.txt"])
OPS = st.lists(
    st.tuples(st.sampled_from(["write", "mkdir", "remove", "opaque", "touch"]), NAMES, st.binary(max_size=8)),
    max_size=12,
)


@given(ops=OPS)
def test_commit_of_the_changes_reproduces_the_merged_view(ops):
    lower = trees.make_tree(MemoryFS(), LOWER)
    pristine = trees.snapshot(lower)
    with OverlayFS(lower, upper=MemoryFS()) as overlay:
        for op, path, data in ops:
            try:
                if op == "write":
                    overlay.writebytes(path, data)
                elif op == "mkdir":
                    overlay.makedir(path)
                elif op == "remove":
                    overlay.hide(path)
                elif op == "opaque":
                    overlay.make_opaque(path)
                else:
                    overlay.setinfo(path, {"details": {"modified": 12345.0}})
            except errors.FSError:
                pass
        merged = trees.snapshot(overlay)
        replica = MemoryFS()
        copy_fs(lower, replica)
        changes = overlay.changes()
        overlay.commit(replica, only_changes=True)
        assert trees.snapshot(replica) == merged
        exported = MemoryFS()
        overlay.commit(exported)
        assert trees.snapshot(exported) == merged
        if not changes.changes:
            assert merged == pristine
    assert trees.snapshot(lower) == pristine
