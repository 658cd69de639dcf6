"""``OverlayFS.rename``: rename(2) for files and directories, refusals in the VFS's order;
``OverlayFS.lstat``: the top layer's own lstat where it is on disk;
``setinfo`` of ``access`` on a disk upper is chmod/chown."""

from __future__ import annotations

import os
import stat

import pytest
from fs import errors
from fs.permissions import Permissions
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS

from unionfs import IllegalDestination, OverlayFS
from unionfs.testing import trees


@pytest.fixture
def overlay():
    lower = trees.make_tree(MemoryFS(), {"d/sub/f": "deep", "empty/": None, "file": "lower", "other": "other"})
    return OverlayFS(lower, upper=MemoryFS())


def test_files_replace_files_and_noreplace_refuses(overlay):
    overlay.rename("file", "other")
    assert overlay.readtext("other") == "lower" and not overlay.exists("file")
    overlay.writetext("new", "n")
    with pytest.raises(errors.FileExists):
        overlay.rename("new", "other", noreplace=True)
    overlay.rename("new", "fresh", noreplace=True)
    assert overlay.readtext("fresh") == "n"
    overlay.rename("fresh", "fresh")  # a no-op


def test_refusals_in_the_vfs_order(overlay):
    with pytest.raises(errors.ResourceNotFound):
        overlay.rename("missing", "x")
    with pytest.raises(errors.ResourceNotFound):
        overlay.rename("file", "nodir/x")
    with pytest.raises(IllegalDestination):
        overlay.rename("d", "d/sub/x")
    with pytest.raises(errors.DirectoryNotEmpty):
        overlay.rename("d/sub/f", "d")  # onto an ancestor of the source
    with pytest.raises(errors.FileExpected):
        overlay.rename("file", "empty")
    with pytest.raises(errors.DirectoryExpected):
        overlay.rename("empty", "file")
    with pytest.raises(errors.DirectoryNotEmpty):
        overlay.rename("empty", "d")
    assert overlay.readtext("d/sub/f") == "deep"


def test_directories_move_and_replace_an_empty_directory(overlay):
    overlay.rename("d", "empty")
    assert overlay.readtext("empty/sub/f") == "deep"
    assert not overlay.exists("d")
    overlay.rename("empty", "moved")
    assert sorted(overlay.listdir("/")) == ["file", "moved", "other"]


def test_a_moved_lower_directory_keeps_its_metadata(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "d").mkdir(parents=True)
    (lower / "d" / "f").write_text("x")
    upper.mkdir()
    os.chmod(lower / "d", 0o750)
    os.utime(lower / "d", (1000, 1000))
    with OverlayFS(OSFS(str(lower)), upper=OSFS(str(upper))) as overlay:
        overlay.rename("d", "e")
        info = overlay.getinfo("e", ["details", "access"])
        assert info.permissions.mode == 0o750
        assert info.modified.timestamp() == 1000
    assert (lower / "d" / "f").read_text() == "x"


def test_setinfo_access_is_chmod_and_chown_on_a_disk_upper(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    upper.mkdir()
    (lower / "f").write_text("x")
    with OverlayFS(OSFS(str(lower)), upper=OSFS(str(upper))) as overlay:
        overlay.setinfo("f", {"access": {"permissions": ["u_r", "u_w"]}})
        assert os.stat(upper / "f").st_mode & 0o777 == 0o600
        if os.geteuid() == 0:
            overlay.setinfo("f", {"access": {"uid": 1, "gid": 2}})
            assert (os.stat(upper / "f").st_uid, os.stat(upper / "f").st_gid) == (1, 2)
        with pytest.raises(errors.ResourceNotFound):
            overlay.setinfo("missing", {"access": {"permissions": ["u_r"]}})
    assert os.stat(lower / "f").st_mode & 0o777 != 0o600


def test_lstat_answers_from_the_top_layer_on_disk_and_none_elsewhere(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    upper.mkdir()
    (lower / "f").write_text("lower")
    with OverlayFS(OSFS(str(lower)), upper=OSFS(str(upper))) as overlay:
        assert overlay.lstat("f").st_ino == os.lstat(lower / "f").st_ino
        overlay.writetext("f", "upper!")
        assert overlay.lstat("f").st_ino == os.lstat(upper / "f").st_ino and overlay.lstat("f").st_size == 6
        assert overlay.lstat("/").st_ino == os.lstat(upper).st_ino
        with pytest.raises(errors.ResourceNotFound):
            overlay.lstat("missing")
    memory = MemoryFS()
    memory.writetext("f", "x")
    with OverlayFS(memory, upper=MemoryFS()) as overlay:
        assert overlay.lstat("f") is None


def test_lstat_listing_is_each_visible_entrys_lstat(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "d" / "sub").mkdir(parents=True)
    upper.mkdir()
    for name in ("a", "b", "c"):
        (lower / "d" / name).write_text(name)
    with OverlayFS(OSFS(str(lower)), upper=OSFS(str(upper))) as overlay:
        overlay.writetext("d/b", "upper b")  # copied up: the upper's lstat
        overlay.remove("d/c")  # whited out: not listed
        overlay.writetext("d/new", "n")
        found = dict(overlay.lstat_listing("d"))
        assert sorted(found) == sorted(overlay.listdir("d")) == ["a", "b", "new", "sub"]
        assert {name: found[name] for name in found} == {name: overlay.lstat("d/" + name) for name in found}
        assert found["a"].st_ino == os.lstat(lower / "d" / "a").st_ino
        assert found["b"].st_ino == os.lstat(upper / "d" / "b").st_ino
        with pytest.raises(errors.DirectoryExpected):
            overlay.lstat_listing("d/a")
        with pytest.raises(errors.ResourceNotFound):
            overlay.lstat_listing("missing")
    memory = MemoryFS()
    memory.writetext("f", "x")
    with OverlayFS(memory, upper=MemoryFS()) as overlay:
        assert overlay.lstat_listing("/") == [("f", None)]


def test_lstat_listing_of_metadata_only_files_and_redirected_dirs_is_lstats(tmp_path):
    """A metadata-only file's size is its data's (``lstat`` answers ``None``: ask getinfo),
    and a renamed (redirected) directory lists its lower entries with their lstat."""
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "d").mkdir(parents=True)
    upper.mkdir()
    (lower / "d" / "data").write_bytes(b"123")
    (lower / "d" / "other").write_bytes(b"45")
    with OverlayFS(OSFS(str(lower)), upper=OSFS(str(upper))) as overlay:
        overlay.setinfo("d/data", {"access": {"permissions": ["u_r", "u_w"]}})  # metadata-only copy-up
        found = dict(overlay.lstat_listing("d"))
        assert found == {name: overlay.lstat("d/" + name) for name in ("data", "other")}
        assert found["data"] is None and overlay.getsize("d/data") == 3
        overlay.movedir("d", "moved", create=True)  # one rename and a redirect record
        found = dict(overlay.lstat_listing("moved"))
        assert sorted(found) == sorted(overlay.listdir("moved")) == ["data", "other"]
        assert found == {name: overlay.lstat("moved/" + name) for name in found}
        assert found["other"].st_ino == os.lstat(lower / "d" / "other").st_ino


@pytest.mark.parametrize("upper_on_disk", [True, False])
def test_set_stat_is_chmod_chown_and_utimensat_in_one_call(tmp_path, upper_on_disk):
    """``OverlayFS.set_stat``: what setinfo's ``access`` and ``details`` do (a lower file
    copied up, its metadata only), in one call, times to the nanosecond on disk, and its
    answer is what ``lstat`` says after it (``None`` off disk)."""
    lower = tmp_path / "lower"
    lower.mkdir()
    for name in ("f", "twin", "g"):
        (lower / name).write_text("lower data")
        os.utime(lower / name, ns=(1_000_000_001, 2_000_000_002))
    upper_path = tmp_path / "upper"
    upper_path.mkdir()
    uid, gid = os.getuid(), os.getgid()
    with OverlayFS(OSFS(str(lower)), upper=str(upper_path) if upper_on_disk else MemoryFS()) as overlay:
        answer = overlay.set_stat("f", 0o1711, uid, gid, (3_000_000_003, 4_000_000_004))
        assert answer == overlay.lstat("f")
        overlay.setinfo("twin", {"access": {"permissions": Permissions(mode=0o1711).dump(), "uid": uid, "gid": gid},
                                 "details": {"accessed": 3.000000003, "modified": 4.000000004}})
        namespaces = ("details", "access")
        ours, theirs = (overlay.getinfo(name, namespaces).raw for name in ("f", "twin"))
        for raw in (ours, theirs):
            raw["basic"].pop("name")
            raw["details"].pop("metadata_changed", None)
            raw["details"].pop("created", None)
            for key in ("accessed", "modified"):
                raw["details"][key] = round(raw["details"][key], 6)
        assert ours == theirs
        assert overlay.readtext("f") == "lower data"
        if upper_on_disk:
            st = os.lstat(upper_path / "f")
            assert stat.S_IMODE(st.st_mode) == 0o1711 and (st.st_uid, st.st_gid) == (uid, gid)
            assert (st.st_atime_ns, st.st_mtime_ns) == (3_000_000_003, 4_000_000_004)
        # one time left alone (UTIME_OMIT), the owner too (-1)
        overlay.set_stat("g", None, -1, -1, (None, 5_000_000_005))
        details = overlay.getinfo("g", ("details",)).raw["details"]
        assert round(details["accessed"], 6) == 1.0 and round(details["modified"], 6) == 5.0
        assert overlay.readtext("g") == "lower data"
        with pytest.raises(errors.ResourceNotFound):
            overlay.set_stat("missing", 0o644)
    if upper_on_disk:
        with OverlayFS(OSFS(str(lower)), upper=str(upper_path)) as overlay:  # it reached the upper
            assert overlay.getinfo("f", ("access",)).permissions.mode == 0o1711
            overlay.set_stat("f", 0o4755, uid, gid)  # the owner first: chown clears set-user-ID
            assert stat.S_IMODE(os.lstat(upper_path / "f").st_mode) == 0o4755
