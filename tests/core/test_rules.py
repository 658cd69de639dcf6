"""One test per overlayfs rule (``docs/semantics.rst``), each named after the rule it checks.

The ``lower`` fixture is a guarded MemoryFS (``/a/b/f.txt``, ``/a/g.txt``, ``/top.txt``,
``/empty/``); ``guard_lower`` fails the test if any lower changed by one byte.
"""

from __future__ import annotations

import io
import tracemalloc
from datetime import datetime, timezone

import pytest

import unionfs  # noqa: F401
from fs import errors
from fs.memoryfs import MemoryFS

from unionfs import OverlayFS, ReservedPath
from unionfs.core.sidecar import Sidecar

T1000 = datetime.fromtimestamp(1000, tz=timezone.utc)


def records(upper: MemoryFS) -> dict:
    """The sidecar of ``upper`` as {'whiteouts': [...], 'opaque': [...]} of merged-view paths."""
    found = {"whiteouts": [], "opaque": []}
    tree = "/.unionfs/tree"

    def visit(record_dir: str, view_dir: str) -> None:
        for kind, key in (("w", "whiteouts"), ("o", "opaque")):
            if upper.isdir(record_dir + "/" + kind):
                for name in upper.listdir(record_dir + "/" + kind):
                    found[key].append(view_dir.rstrip("/") + "/" + name)
        if upper.isdir(record_dir + "/d"):
            for name in upper.listdir(record_dir + "/d"):
                visit(record_dir + "/d/" + name, view_dir.rstrip("/") + "/" + name)

    visit(tree, "/")
    return {key: sorted(paths) for key, paths in found.items()}


@pytest.fixture
def upper() -> MemoryFS:
    return MemoryFS()


@pytest.fixture
def overlay(lower, upper) -> OverlayFS:
    return OverlayFS(lower, upper)


def upper_files(upper: MemoryFS) -> list:
    return sorted(path for path in upper.walk.files() if not path.startswith("/.unionfs/"))


# -- lookup -----------------------------------------------------------------------------------


def test_lookup_topmost_layer_wins(guard_lower):
    top, bottom = MemoryFS(), MemoryFS()
    top.writetext("x", "top")
    bottom.writetext("x", "bottom")
    assert OverlayFS([guard_lower(top), guard_lower(bottom)]).readtext("x") == "top"


def test_lookup_file_hides_directory_below(guard_lower):
    top, bottom = MemoryFS(), MemoryFS()
    top.writetext("x", "a file")
    bottom.makedirs("x/inside")
    overlay = OverlayFS([guard_lower(top), guard_lower(bottom)])
    assert overlay.isfile("x")
    assert not overlay.exists("x/inside")


def test_lookup_directory_hides_file_below(guard_lower):
    top, bottom = MemoryFS(), MemoryFS()
    top.makedir("x")
    bottom.writetext("x", "a file")
    overlay = OverlayFS([guard_lower(top), guard_lower(bottom)])
    assert overlay.isdir("x")
    assert overlay.listdir("x") == []


def test_lookup_directories_merge_until_a_non_directory(guard_lower):
    l0, l1, l2 = MemoryFS(), MemoryFS(), MemoryFS()
    l0.makedirs("d")
    l0.writetext("d/zero", "0")
    l1.writetext("d", "a file in the middle")
    l2.makedirs("d")
    l2.writetext("d/two", "2")
    overlay = OverlayFS([guard_lower(l0), guard_lower(l1), guard_lower(l2)])
    assert overlay.listdir("d") == ["zero"]


def test_lookup_merged_directory_metadata_from_topmost(guard_lower):
    top, bottom = MemoryFS(), MemoryFS()
    top.makedir("d")
    bottom.makedir("d")
    top.setinfo("d", {"details": {"modified": 2000}})
    bottom.setinfo("d", {"details": {"modified": 1000}})
    assert OverlayFS([guard_lower(top), guard_lower(bottom)]).getinfo("d", ["details"]).modified.timestamp() == 2000


def test_lookup_lower_whiteout_hides_layers_below(guard_lower):
    marked, bottom = MemoryFS(), MemoryFS()
    bottom.writetext("gone", "hidden")
    bottom.writetext("kept", "visible")
    Sidecar.open(marked, create=True).add_whiteout("/gone")
    overlay = OverlayFS([guard_lower(marked), guard_lower(bottom)])
    assert overlay.listdir("/") == ["kept"]
    assert not overlay.exists("gone")


def test_lookup_lower_opaque_directory_stops_merge(guard_lower):
    marked, bottom = MemoryFS(), MemoryFS()
    marked.makedirs("d")
    marked.writetext("d/mine", "m")
    bottom.makedirs("d")
    bottom.writetext("d/below", "b")
    Sidecar.open(marked, create=True).add_opaque("/d")
    overlay = OverlayFS([guard_lower(marked), guard_lower(bottom)])
    assert overlay.listdir("d") == ["mine"]


# -- listings ----------------------------------------------------------------------------------


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


# -- copy-up ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["r+", "a", "ab", "w", "wb", "rb+"])
def test_copy_up_on_open_for_writing(overlay, upper, mode):
    with overlay.openbin("a/b/f.txt", mode) as handle:
        handle.write(b"!")
    assert upper.exists("a/b/f.txt")
    expected = {"r": b"!ower f", "a": b"lower f!", "w": b"!"}[mode[0]]
    assert overlay.readbytes("a/b/f.txt") == expected


def test_copy_up_truncate(overlay, upper):
    with overlay.openbin("a/g.txt", "r+") as handle:
        handle.truncate(3)
    assert overlay.readtext("a/g.txt") == "low"
    assert upper.readtext("a/g.txt") == "low"


def test_copy_up_on_setinfo(lower, upper):
    """With ``metacopy=False`` setinfo copies the whole file up (the kernel's default)."""
    overlay = OverlayFS(lower, upper, metacopy=False)
    overlay.setinfo("a/g.txt", {"details": {"modified": 1234}})
    assert upper.readtext("a/g.txt") == "lower g"
    assert overlay.getinfo("a/g.txt", ["details"]).modified.timestamp() == 1234


def test_metadata_only_copy_up_on_setinfo(overlay, upper):
    """With metacopy (the default) the upper gets the metadata and a token, not the data."""
    overlay.setinfo("a/g.txt", {"details": {"modified": 1234}})
    assert b"lower g" not in upper.readbytes("a/g.txt")
    assert overlay.readtext("a/g.txt") == "lower g"
    assert overlay.getinfo("a/g.txt", ["details"]).size == len("lower g")
    assert overlay.getinfo("a/g.txt", ["details"]).modified.timestamp() == 1234


def test_copy_up_of_move_source(overlay, upper, lower):
    overlay.move("a/g.txt", "moved.txt")
    assert overlay.readtext("moved.txt") == "lower g"
    assert not overlay.exists("a/g.txt")
    assert records(upper)["whiteouts"] == ["/a/g.txt"]


def test_copy_up_parents_with_their_metadata(lower, upper, guard_lower):
    lower.setinfo("a", {"details": {"modified": 1000}})
    lower.setinfo("a/b", {"details": {"modified": 1000}})
    overlay = OverlayFS(lower, upper)
    overlay.setinfo("a/b/f.txt", {"details": {"modified": 5}})
    assert upper.getinfo("a/b", ["details"]).modified == T1000
    assert overlay.getinfo("a", ["details"]).modified == T1000


def test_copy_up_preserves_modification_time(lower, upper):
    lower.setinfo("a/g.txt", {"details": {"modified": 1000}})
    overlay = OverlayFS(lower, upper)
    with overlay.openbin("a/g.txt", "r+"):
        pass
    assert upper.getinfo("a/g.txt", ["details"]).modified == T1000


def test_copy_up_never_on_read_only_access(overlay, upper):
    overlay.readtext("a/b/f.txt")
    overlay.getinfo("a/b/f.txt", ["details"])
    list(overlay.scandir("a"))
    overlay.listdir("a/b")
    with overlay.openbin("a/g.txt", "r") as handle:
        handle.read()
    overlay.move("top.txt", "top.txt", overwrite=True)  # rename(x, x)
    assert upper_files(upper) == [] and upper.listdir("/") == [".unionfs"]


def test_copy_up_never_on_failed_operations(overlay, upper):
    with pytest.raises(errors.DestinationExists):
        overlay.move("a/g.txt", "top.txt")
    with pytest.raises(errors.ResourceNotFound):
        overlay.move("a/g.txt", "nowhere/x")
    with pytest.raises(errors.FileExists):
        overlay.openbin("a/g.txt", "x")
    assert upper.listdir("/") == [".unionfs"]


def test_copy_up_streams_in_constant_memory(guard_lower):
    big = MemoryFS()
    size = 32 * 1024 * 1024
    big.writebytes("big.bin", b"\x5a" * size)
    guard_lower(big)
    overlay = OverlayFS(big, MemoryFS())
    tracemalloc.start()
    try:
        with overlay.openbin("big.bin", "r+") as handle:
            handle.write(b"!")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # MemoryFS keeps the copy itself in memory (size bytes); the copy-up adds only chunks.
    assert peak < size + 8 * 1024 * 1024


class ExplodingReader(io.RawIOBase):
    def __init__(self, after: int) -> None:
        self.left = after

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.left <= 0:
            raise OSError("disk on fire")
        count = min(len(buffer), self.left)
        buffer[:count] = b"y" * count
        self.left -= count
        return count


def test_copy_up_is_atomic_half_copies_never_visible(overlay, upper):
    with pytest.raises(OSError):
        overlay.upload("a/g.txt", ExplodingReader(after=3 * 1024 * 1024))
    assert overlay.readtext("a/g.txt") == "lower g"
    assert not upper.exists("a/g.txt")
    assert OverlayFS(overlay._lower_layers()[0].fs, upper).readtext("a/g.txt") == "lower g"


# -- remove ------------------------------------------------------------------------------------


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


# -- removedir ---------------------------------------------------------------------------------


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


# -- makedir -----------------------------------------------------------------------------------


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


# -- creating files and moving ------------------------------------------------------------------


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


# -- stacking and persistence ---------------------------------------------------------------------


def test_stacking_upper_reused_as_lower(lower, upper):
    first = OverlayFS(lower, upper)
    first.remove("a/g.txt")
    first.removetree("a/b")
    first.makedir("a/b")
    first.writetext("a/b/new", "n")
    second = OverlayFS([upper, lower], MemoryFS())
    assert sorted(second.walk.files("/")) == sorted(first.walk.files("/"))
    assert sorted(second.walk.dirs("/")) == sorted(first.walk.dirs("/"))
    third = OverlayFS([MemoryFS(), upper, lower])
    assert sorted(third.walk.files("/")) == sorted(first.walk.files("/"))


def test_hide_and_make_opaque_persist(lower, upper):
    overlay = OverlayFS(lower, upper)
    overlay.hide("a/b")
    overlay.make_opaque("empty")
    overlay.make_opaque("a")
    reopened = OverlayFS(lower, upper)
    assert reopened.listdir("a") == []
    assert sorted(reopened.listdir("/")) == ["a", "empty", "top.txt"]
    assert records(upper) == {"whiteouts": [], "opaque": ["/a", "/empty"]}


def test_hide_copies_nothing(overlay, upper):
    overlay.hide("a")
    assert upper_files(upper) == [] and not overlay.exists("a")


def test_make_opaque_creates_missing_directory(overlay):
    with pytest.raises(errors.ResourceNotFound):
        overlay.make_opaque("missing/dir")
    overlay.make_opaque("newdir")
    assert overlay.isdir("newdir")


def test_make_opaque_on_file_is_an_error(overlay):
    with pytest.raises(errors.DirectoryExpected):
        overlay.make_opaque("top.txt")


def test_acknowledged_writes_survive_dropping_the_overlay(lower, upper):
    overlay = OverlayFS(lower, upper)
    overlay.writetext("kept.txt", "k")
    overlay.remove("top.txt")
    del overlay  # never closed
    reopened = OverlayFS(lower, upper)
    assert reopened.readtext("kept.txt") == "k" and not reopened.exists("top.txt")


# -- the sidecar ---------------------------------------------------------------------------------


def test_sidecar_invisible_in_the_merged_view(overlay):
    overlay.remove("top.txt")
    assert ".unionfs" not in overlay.listdir("/")
    assert not overlay.exists("/.unionfs")
    assert not any(".unionfs" in path for path in overlay.walk.files("/"))
    rendered = io.StringIO()
    overlay.tree(file=rendered)
    assert ".unionfs" not in rendered.getvalue()


def test_sidecar_reserved_name_refused(overlay):
    for attempt in (
        lambda: overlay.makedir("/.unionfs"),
        lambda: overlay.writetext("/.unionfs", "x"),
        lambda: overlay.move("top.txt", "/.unionfs"),
    ):
        with pytest.raises(ReservedPath) as caught:
            attempt()
        assert ".unionfs" in str(caught.value)
    with pytest.raises(errors.ResourceNotFound):
        overlay.getinfo("/.unionfs/FORMAT")


def test_sidecar_name_allowed_below_the_root(overlay):
    overlay.makedir("a/.unionfs")
    overlay.writetext("a/.unionfs/x", "fine")
    assert overlay.readtext("a/.unionfs/x") == "fine"


# -- API surface ---------------------------------------------------------------------------------


def test_read_only_overlay_refuses_every_write(lower):
    overlay = OverlayFS(lower)
    attempts = [
        lambda: overlay.writetext("new", "x"),
        lambda: overlay.openbin("top.txt", "r+"),
        lambda: overlay.remove("top.txt"),
        lambda: overlay.removedir("empty"),
        lambda: overlay.makedir("d"),
        lambda: overlay.setinfo("top.txt", {"details": {"modified": 1}}),
        lambda: overlay.move("top.txt", "x"),
        lambda: overlay.movedir("a", "x", create=True),
        lambda: overlay.removetree("a"),
        lambda: overlay.hide("a"),
        lambda: overlay.make_opaque("a"),
    ]
    for attempt in attempts:
        with pytest.raises(errors.ResourceReadOnly):
            attempt()
    assert overlay.getmeta()["read_only"] is True
    assert overlay.readtext("top.txt") == "lower top"


def test_meta_and_no_system_path(overlay):
    meta = overlay.getmeta()
    assert meta["read_only"] is False and meta["thread_safe"] is True
    assert meta["supports_rename"] is False
    with pytest.raises(errors.NoSysPath):
        overlay.getsyspath("top.txt")
    assert not overlay.hassyspath("top.txt")


def test_close_leaves_passed_layers_open_and_closes_url_layers(lower, tmp_path):
    upper = MemoryFS()
    overlay = OverlayFS([lower, "mem://"], upper)
    url_layer = overlay._lower_layers()[1].fs
    overlay.close()
    assert not lower.isclosed() and not upper.isclosed()
    assert url_layer.isclosed()


def test_layers_from_urls(tmp_path):
    (tmp_path / "lower").mkdir()
    (tmp_path / "lower" / "hello.txt").write_text("hi")
    overlay = OverlayFS("osfs://%s" % (tmp_path / "lower"), "osfs://%s" % (tmp_path / "upper"))
    overlay.writetext("new.txt", "n")
    assert sorted(overlay.listdir("/")) == ["hello.txt", "new.txt"]
    assert (tmp_path / "upper" / "new.txt").read_text() == "n"
    overlay.close()


def test_errors_name_the_callers_path(overlay):
    with pytest.raises(errors.ResourceNotFound) as caught:
        overlay.readbytes("a/missing")
    assert caught.value.path == "a/missing"


def test_upper_cannot_be_one_of_its_lowers(lower):
    with pytest.raises(unionfs.UnsupportedLayer):
        OverlayFS(lower, lower)


def test_copy_up_preserves_mode_and_owner_on_disk(tmp_path, guard_lower):
    """On an OSFS upper a copy-up keeps the lower's mode and owner, as the kernel does."""
    import os

    from fs.osfs import OSFS

    (tmp_path / "lower" / "private").mkdir(parents=True)
    (tmp_path / "lower" / "private" / "secret").write_text("s")
    os.chmod(tmp_path / "lower" / "private", 0o700)
    os.chmod(tmp_path / "lower" / "private" / "secret", 0o600)
    if os.geteuid() == 0:
        os.chown(tmp_path / "lower" / "private" / "secret", 1000, 1000)
    (tmp_path / "upper").mkdir()
    lower = guard_lower(OSFS(str(tmp_path / "lower")))
    overlay = OverlayFS(lower, OSFS(str(tmp_path / "upper")))
    overlay.appendtext("private/secret", "!")
    copied = tmp_path / "upper" / "private" / "secret"
    assert copied.read_text() == "s!"
    assert oct((tmp_path / "upper" / "private").stat().st_mode & 0o777) == oct(0o700)
    assert oct(copied.stat().st_mode & 0o777) == oct(0o600)
    if os.geteuid() == 0:
        assert (copied.stat().st_uid, copied.stat().st_gid) == (1000, 1000)


def test_copy_up_read_handle_opened_before_follows_the_copy(overlay, upper):
    """Kernel 4.19+: an fd opened read-only on a lower file reads the upper copy after a
    copy-up, from the offset it had reached."""
    reader = overlay.openbin("a/g.txt", "r")
    assert reader.read(2) == b"lo"
    with overlay.openbin("a/g.txt", "r+") as writer:
        writer.write(b"LOWER")
    assert reader.read() == b"WER g"
    reader.seek(0)
    assert reader.read() == b"LOWER g"
    reader.close()


def test_copy_up_read_handle_of_a_removed_file_keeps_the_lower_data(overlay):
    reader = overlay.openbin("top.txt", "r")
    overlay.remove("top.txt")
    assert reader.read() == b"lower top"
    reader.close()


def test_setinfo_the_upper_cannot_hold_is_unsupported_naming_the_path(overlay):
    """MemoryFS cannot set its own root's times (it answers ResourceNotFound for '/'): the
    overlay says Unsupported, naming the caller's path, instead of 'not found'."""
    with pytest.raises(errors.Unsupported) as caught:
        overlay.setinfo("/", {"details": {"modified": 5}})
    assert caught.value.path == "/"
    assert overlay.exists("/")
