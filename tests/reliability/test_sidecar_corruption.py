"""A corrupted or hand-edited sidecar: a clear SidecarError naming what is wrong, never a
silently wrong view; what is merely stale, fsck reports and removes."""

from __future__ import annotations

import pytest

from fs.memoryfs import MemoryFS

from unionfs import OverlayFS, SidecarError
from unionfs.core.sidecar import FORMAT_PATH, JOURNAL_DIR, LOCK_PATH, SIDECAR_DIR, STAGING_DIR, TREE_DIR
from unionfs.testing import trees


@pytest.fixture
def layers(guard_lower):
    lower = trees.make_tree(MemoryFS(), {"a/b/": None, "a/f": "lower f"})
    upper = MemoryFS()
    overlay = OverlayFS(lower, upper)
    overlay.remove("a/f")
    overlay.make_opaque("a/b")
    return guard_lower(lower), upper


def _replace_with_dir(upper, path):
    upper.remove(path)
    upper.makedir(path)


def _replace_with_file(upper, path):
    upper.removetree(path)
    upper.writetext(path, "")


CORRUPTIONS = {
    "FORMAT missing": (lambda u: u.remove(FORMAT_PATH), FORMAT_PATH, "missing"),
    "FORMAT garbage": (lambda u: u.writetext(FORMAT_PATH, "hello"), FORMAT_PATH, "unrecognised"),
    "FORMAT too new": (lambda u: u.writetext(FORMAT_PATH, "unionfs-sidecar 99\n"), FORMAT_PATH, "newer"),
    "FORMAT version 0": (lambda u: u.writetext(FORMAT_PATH, "unionfs-sidecar 0\n"), FORMAT_PATH, "does not exist"),
    "FORMAT a directory": (lambda u: _replace_with_dir(u, FORMAT_PATH), FORMAT_PATH, "directory"),
    "tree missing": (lambda u: u.removetree(TREE_DIR), TREE_DIR, "missing"),
    "sidecar a file": (lambda u: _replace_with_file(u, SIDECAR_DIR), SIDECAR_DIR, "file"),
    "staging a file": (lambda u: _replace_with_file(u, STAGING_DIR), STAGING_DIR, "file"),
    "journal a file": (lambda u: u.writetext(JOURNAL_DIR, ""), JOURNAL_DIR, "file"),
    "lock a directory": (lambda u: u.makedir(LOCK_PATH), LOCK_PATH, "directory"),
    "journal entry a directory": (
        lambda u: (u.makedirs(JOURNAL_DIR + "/e"), u.writetext(FORMAT_PATH, "unionfs-sidecar 2\n")),
        JOURNAL_DIR + "/e",
        "directory",
    ),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corruption_is_refused_on_open_naming_the_path(layers, name):
    lower, upper = layers
    corrupt, where, complaint = CORRUPTIONS[name]
    corrupt(upper)
    with pytest.raises(SidecarError, match=complaint) as raised:
        OverlayFS(lower, upper)
    assert raised.value.path == where
    assert where in str(raised.value)


RECORD_CORRUPTIONS = {  # (corrupt, the path named, the name the records are about)
    "whiteout directory is a file": (lambda u: _replace_with_file(u, TREE_DIR + "/d/a/w"), TREE_DIR + "/d/a/w", "a/f"),
    "whiteout record is a directory": (
        lambda u: _replace_with_dir(u, TREE_DIR + "/d/a/w/f"), TREE_DIR + "/d/a/w/f", "a/f"),
    "opaque record is a directory": (lambda u: _replace_with_dir(u, TREE_DIR + "/d/a/o/b"), TREE_DIR + "/d/a/o/b", "a/b"),
}


@pytest.mark.parametrize("name", sorted(RECORD_CORRUPTIONS))
def test_corrupt_records_are_refused_when_their_directory_is_read(layers, name):
    """Records are read lazily: a listing of the directory raises (no listing is ever shown
    without its records), and so does a cold lookup of the name a broken record is about
    (a lookup asks that name's records only)."""
    lower, upper = layers
    corrupt, where, about = RECORD_CORRUPTIONS[name]
    corrupt(upper)
    for look in (lambda o: o.listdir("a"), lambda o: o.exists(about), lambda o: o.fsck(repair=False)):
        with pytest.raises(SidecarError) as raised:
            look(OverlayFS(lower, upper))  # a fresh overlay each: every look is a cold one
        assert raised.value.path == where


def test_stale_hand_edits_are_found_by_fsck_and_the_view_kept(layers):
    lower, upper = layers
    upper.makedirs(TREE_DIR + "/d/a/d")
    upper.writetext(TREE_DIR + "/d/a/d/b", "")  # a record directory that is a file
    upper.writetext(LOCK_PATH, "")  # a lock record never completed: stale, taken over
    upper.writetext(SIDECAR_DIR + "/NOTES", "unknown entries of the sidecar are left alone")
    overlay = OverlayFS(lower, upper)
    assert sorted(overlay.listdir("a")) == ["b"] and overlay.listdir("a/b") == []
    report = overlay.fsck()
    assert [(f.kind, f.path) for f in report.findings] == [("junk", TREE_DIR + "/d/a/d/b")]
    assert sorted(overlay.listdir("a")) == ["b"] and not upper.exists(TREE_DIR + "/d/a/d/b")
    assert upper.readtext(SIDECAR_DIR + "/NOTES").startswith("unknown")
