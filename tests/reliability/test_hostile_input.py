"""Hostile and odd paths: each works or raises a clear fs.errors exception, and nothing is
ever written outside the upper (an OSFS upper inside a temporary directory, whose
surroundings are hashed before and after)."""

from __future__ import annotations

import os
import unicodedata

import pytest

from fs import errors
from fs.osfs import OSFS

from unionfs.core.sidecar import FORMAT_TEXT
from unionfs import OverlayFS, ReservedPath
from unionfs.testing import trees


@pytest.fixture
def sandbox(tmp_path, guard_lower):
    """(overlay, upper OSFS, lower OSFS); at teardown nothing outside the upper changed."""
    trees.make_tree(OSFS(str(tmp_path)), {
        "lower/dir/f": "lower f", "lower/top": "lower top", "outside": "must never change", "upper/": None,
    })
    lower = guard_lower(OSFS(str(tmp_path / "lower")))
    upper = OSFS(str(tmp_path / "upper"))
    before = trees.disk_snapshot(str(tmp_path), skip=lambda path: path.startswith("/upper/"))
    overlay = OverlayFS(lower, upper)
    yield overlay, upper, lower
    overlay.close()
    assert trees.disk_snapshot(str(tmp_path), skip=lambda path: path.startswith("/upper/")) == before, "something was written outside the upper"


ESCAPES = ["..", "../x", "../../etc/passwd", "a/../../x", "/..", "/../upper/x", "dir/../../outside"]


@pytest.mark.parametrize("path", ESCAPES)
def test_back_references_out_of_the_root_are_refused(sandbox, path):
    overlay, _, _ = sandbox
    attempts = [
        lambda: overlay.writetext(path, "escape"),
        lambda: overlay.makedir(path),
        lambda: overlay.remove(path),
        lambda: overlay.removetree(path),
        lambda: overlay.readtext(path),
        lambda: overlay.exists(path),
        lambda: overlay.move("top", path),
        lambda: overlay.movedir("dir", path, create=True),
        lambda: overlay.copy("top", path),
        lambda: overlay.setinfo(path, {"details": {"modified": 1.0}}),
    ]
    for attempt in attempts:
        with pytest.raises(errors.IllegalBackReference) as raised:  # fs.errors, as every PyFilesystem2 FS
            attempt()
        assert path in str(raised.value)


def test_back_references_inside_the_root_are_resolved(sandbox):
    overlay, upper, _ = sandbox
    overlay.writetext("dir/../dir/./g", "inside")
    assert upper.readtext("dir/g") == "inside"
    assert overlay.readtext("/dir/x/../f") == "lower f"


def test_absolute_and_relative_forms_are_one_path(sandbox):
    overlay, _, _ = sandbox
    forms = ["dir/f", "/dir/f", "./dir/f", "//dir//f", "dir/./f", "dir/f/"]
    assert {overlay.readtext(form) for form in forms} == {"lower f"}
    overlay.writetext("dir/f", "changed")
    assert {overlay.readtext(form) for form in forms} == {"changed"}
    assert sorted(overlay.listdir("")) == sorted(overlay.listdir("/")) == sorted(overlay.listdir("."))


@pytest.mark.parametrize("name", ["a\\b", "..\\x", "\\", "c:\\windows", "..\\..\\outside"])
def test_backslashes_are_ordinary_characters(sandbox, name):
    overlay, upper, _ = sandbox
    overlay.writetext(name, "bs")
    assert overlay.readtext(name) == "bs" and name in overlay.listdir("/")
    assert upper.readtext(name) == "bs"  # stored under that very name, inside the upper
    overlay.remove(name)
    assert not overlay.exists(name)


@pytest.mark.parametrize("path", ["a\0b", "\0", "dir/\0", "dir/f\0.txt"])
def test_nul_bytes_are_refused(sandbox, path):
    overlay, _, _ = sandbox
    for attempt in (lambda: overlay.writetext(path, "x"), lambda: overlay.makedir(path), lambda: overlay.exists(path)):
        with pytest.raises(errors.InvalidCharsInPath):
            attempt()


def test_bytes_paths_are_refused(sandbox):
    overlay, _, _ = sandbox
    with pytest.raises(TypeError):
        overlay.listdir(b"/")  # type: ignore[arg-type]


def test_very_long_names_and_paths_raise_fs_errors(sandbox):
    overlay, upper, _ = sandbox
    longest = "n" * 255
    overlay.writetext(longest, "ok")  # NAME_MAX itself works
    assert overlay.readtext(longest) == "ok"
    for attempt in (lambda: overlay.writetext("n" * 256, "x"), lambda: overlay.makedir("dir/" + "n" * 1000)):
        with pytest.raises(errors.FSError):
            attempt()
    deep = "/".join(["d" * 200] * 25)  # 5000 characters, beyond PATH_MAX
    with pytest.raises(errors.FSError):
        overlay.makedirs(deep)
    with pytest.raises(errors.FSError):
        overlay.writetext("dir/" + deep, "x")
    assert overlay.readtext("dir/f") == "lower f"
    assert upper.listdir("/.unionfs/tmp") == []  # no staging file left behind by the refusals


def test_unicode_normalisation_forms_are_distinct_names(sandbox):
    """Like Linux filesystems, unionfs compares names byte for byte: NFC and NFD spellings
    are two entries, each round-trips exactly."""
    overlay, _, _ = sandbox
    nfc = unicodedata.normalize("NFC", "caf\u00e9")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    overlay.writetext(nfc, "composed")
    assert not overlay.exists(nfd)
    overlay.writetext(nfd, "decomposed")
    assert overlay.readtext(nfc) == "composed" and overlay.readtext(nfd) == "decomposed"
    assert {nfc, nfd} <= set(overlay.listdir("/"))
    overlay.remove(nfc)
    assert overlay.readtext(nfd) == "decomposed" and not overlay.exists(nfc)


RESERVED = ["/.unionfs", ".unionfs", "/.unionfs/FORMAT", ".unionfs/tree/w", "dir/../.unionfs", "./.unionfs/tmp/x"]


@pytest.mark.parametrize("path", RESERVED)
def test_the_sidecar_is_invisible_and_untouchable(sandbox, path):
    overlay, upper, _ = sandbox
    assert not overlay.exists(path)
    assert ".unionfs" not in overlay.listdir("/")
    with pytest.raises(errors.ResourceNotFound):
        overlay.readbytes(path)
    writes = [
        lambda: overlay.writetext(path, "x"),
        lambda: overlay.makedir(path),
        lambda: overlay.remove(path),
        lambda: overlay.removetree(path),
        lambda: overlay.makedirs(path + "/deeper"),
        lambda: overlay.move("top", path),
        lambda: overlay.movedir("dir", path, create=True),
        lambda: overlay.setinfo(path, {"details": {"modified": 1.0}}),
        lambda: overlay.hide(path),
    ]
    for attempt in writes:
        with pytest.raises(ReservedPath):
            attempt()
    assert upper.readtext("/.unionfs/FORMAT") == FORMAT_TEXT


@pytest.mark.parametrize("name", [".unionfs", ".unionfsx", ".unionfs.bak", "..unionfs", ".wh.x", ".wh..wh..opq"])
def test_lookalike_names_are_ordinary(sandbox, name):
    """``.unionfs`` is reserved only at the root; lookalikes, and kernel-style whiteout
    names (``.wh.*``, which aufs uses but overlayfs and unionfs do not), are plain names."""
    overlay, upper, _ = sandbox
    where = ("dir/" + name) if name == ".unionfs" else name
    overlay.makedir(where)
    overlay.writetext(where + "/FORMAT", "user data")
    assert overlay.readtext(where + "/FORMAT") == "user data"
    assert overlay.listdir(where) == ["FORMAT"]
    assert overlay.readtext("dir/f") == "lower f" and overlay.readtext("top") == "lower top"
    overlay.removetree(where)
    assert not overlay.exists(where)
    assert upper.readtext("/.unionfs/FORMAT") == FORMAT_TEXT


def test_symlinks_in_a_lower_never_lead_out_of_the_overlay(tmp_path, guard_lower):
    """A lower's symbolic links to a directory and a file outside every layer (absolute host
    paths): they resolve inside the overlay's root, where nothing is there, so reads and
    writes through them fail with ResourceNotFound and the host files are never read or
    written; the links themselves are entries, listed, removable, copied up as links."""
    outside = tmp_path / "elsewhere"
    (outside / "etc").mkdir(parents=True)
    (outside / "etc" / "passwd").write_text("root:x:0:0")
    lower_dir, upper_dir = tmp_path / "lower", tmp_path / "upper"
    lower_dir.mkdir()
    upper_dir.mkdir()
    os.symlink(str(outside / "etc"), str(lower_dir / "evil"))
    os.symlink(str(outside / "etc" / "passwd"), str(lower_dir / "pw"))
    os.symlink("../../../../../../../../etc/passwd", str(lower_dir / "up"))
    lower = guard_lower(OSFS(str(lower_dir)))
    before = trees.disk_snapshot(str(outside))
    overlay = OverlayFS(lower, OSFS(str(upper_dir)))
    assert sorted(overlay.listdir("/")) == ["evil", "pw", "up"]
    assert overlay.readlink("evil") == str(outside / "etc") and overlay.islink("pw")
    for path in ("evil/passwd", "pw", "up"):
        with pytest.raises(errors.ResourceNotFound):
            overlay.readtext(path)
    with pytest.raises(errors.ResourceNotFound):
        overlay.writetext("evil/passwd", "owned")
    with pytest.raises(errors.ResourceNotFound):
        overlay.writetext("pw", "owned")  # the target's parent is not in the view
    with pytest.raises(errors.ResourceNotFound):
        overlay.listdir("evil")
    overlay.move("pw", "pw2")  # the link moves as itself
    overlay.remove("evil")
    overlay.close()
    assert trees.disk_snapshot(str(outside)) == before
    assert (outside / "etc" / "passwd").read_text() == "root:x:0:0"
    assert os.readlink(str(upper_dir / "pw2")) == str(outside / "etc" / "passwd")
    assert not os.path.lexists(str(upper_dir / "evil"))
    assert sorted(os.listdir(str(outside / "etc"))) == ["passwd"]


def test_deep_paths_are_walked_with_loops_not_recursion(guard_lower):
    """Lookup and fsck walk paths with loops, so depth is bounded by memory, not by Python's
    recursion limit: here the limit is lowered to 150 frames above this test and paths are
    300 components deep (a 5000-deep lookup is checked at the normal limit)."""
    import inspect
    import sys

    from fs.memoryfs import MemoryFS

    deep = "/".join(["d"] * 300)
    lower = MemoryFS()
    lower.makedirs(deep)
    lower.writetext(deep + "/f", "deep lower")
    overlay = OverlayFS(guard_lower(lower), MemoryFS())
    assert not overlay.exists("/".join(["x"] * 5000))
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 150)
    try:
        assert overlay.readtext(deep + "/f") == "deep lower"
        with pytest.raises(errors.ResourceNotFound):
            overlay.listdir(deep + "/nothing/" + deep)
        overlay.remove(deep + "/f")  # copies 300 parents up and records a whiteout 300 levels down
        overlay.makedirs(deep + "/e/x")
        overlay.writetext(deep + "/e/x/g", "made")
        assert overlay.fsck(repair=False).clean
        assert OverlayFS(lower, overlay._upper.fs).listdir(deep) == ["e"]
    finally:
        sys.setrecursionlimit(limit)
