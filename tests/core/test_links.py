"""Symbolic and hard links as overlay entries (issue 13): the reproducers, the link API on
every upper kind, resolution inside the view, copy-up, the sidecar's link records."""

from __future__ import annotations

import os
from unittest import mock

import pytest

import unionfs  # noqa: F401  (imports fs quietly first)
from fs import errors
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS

from unionfs import LinkLoop, NotALink, OverlayFS, SidecarError
from unionfs.core.sidecar import FORMAT_PATH, FORMAT_TEXT, Sidecar
from unionfs.testing import trees


def _dangling_tree(root):
    """``mkdir -p D1/pkg; echo a>D1/pkg/a.txt; ln -s ../nonexistent/dir D1/pkg/dangling``."""
    (root / "D1" / "pkg").mkdir(parents=True)
    (root / "D1u").mkdir()
    (root / "D1" / "pkg" / "a.txt").write_text("a\n")
    os.symlink("../nonexistent/dir", str(root / "D1" / "pkg" / "dangling"))
    return str(root / "D1"), str(root / "D1u")


def test_reproducer_dangling_link_is_listed_by_scandir(tmp_path, guard_lower):
    lower, upper = _dangling_tree(tmp_path)
    overlay = OverlayFS(guard_lower(OSFS(lower)), upper=upper)
    infos = {info.name: info for info in overlay.scandir("pkg", namespaces=["details", "link"])}
    assert sorted(infos) == ["a.txt", "dangling"] == sorted(overlay.listdir("pkg"))
    assert infos["dangling"].is_link and infos["dangling"].target == "../nonexistent/dir"
    assert infos["dangling"].size == len("../nonexistent/dir")  # lstat's size, as the kernel shows
    assert not infos["a.txt"].is_link


def test_reproducer_commit_keeps_the_directory_and_its_dangling_link(tmp_path, guard_lower):
    lower, upper = _dangling_tree(tmp_path)
    overlay = OverlayFS(guard_lower(OSFS(lower)), upper=upper)
    out = tmp_path / "out"
    overlay.commit(str(out))
    assert sorted(os.listdir(str(out / "pkg"))) == ["a.txt", "dangling"]
    assert os.readlink(str(out / "pkg" / "dangling")) == "../nonexistent/dir"
    assert (out / "pkg" / "a.txt").read_text() == "a\n"


def test_commit_of_links_into_an_fs_without_links_says_so(tmp_path, guard_lower):
    lower, upper = _dangling_tree(tmp_path)
    overlay = OverlayFS(guard_lower(OSFS(lower)), upper=upper)
    target = MemoryFS()
    with pytest.raises(errors.Unsupported, match="cannot hold symbolic links") as raised:
        overlay.commit(target)
    assert raised.value.path == "/pkg/dangling"
    assert target.listdir("/") == []  # refused before anything was written


def test_overlay_factory_over_a_template_with_a_dangling_link(tmp_path):
    """The other half of the reproducer: an overlay over such a template is usable."""
    lower, _ = _dangling_tree(tmp_path)
    overlay = OverlayFS(OSFS(lower), MemoryFS())
    assert overlay.exists("pkg/dangling") and not overlay.isfile("pkg/dangling")
    overlay.writetext("pkg/new", "x")
    assert sorted(overlay.listdir("pkg")) == ["a.txt", "dangling", "new"]


@pytest.fixture(params=["memory", "os"])
def upper(request, tmp_path):
    if request.param == "memory":
        return MemoryFS()
    (tmp_path / "upper").mkdir()
    return OSFS(str(tmp_path / "upper"))


@pytest.fixture
def base(guard_lower):
    lower = trees.make_tree(MemoryFS(), {"usr/bin/tool": "tool v1", "etc/motd": "hello"})
    sidecar = Sidecar.open(lower, create=True)
    sidecar.write_link("/bin", "usr/bin")  # merged-usr
    sidecar.write_link("/etc/alt", "/usr/bin/tool")  # absolute: from the overlay's root
    sidecar.write_link("/etc/up", "../../../../etc/motd")  # '..' stops at the root
    sidecar.write_link("/loop", "loop")
    return guard_lower(lower)


def test_links_read_through_inside_the_view(base, upper):
    overlay = OverlayFS(base, upper)
    assert overlay.readtext("bin/tool") == "tool v1" == overlay.readtext("etc/alt")
    assert overlay.readtext("etc/up") == "hello"
    assert overlay.listdir("bin") == ["tool"] and overlay.isdir("bin") and overlay.islink("bin")
    assert not overlay.getinfo("bin").is_dir  # getinfo is the link's own (lstat)
    assert sorted(overlay.listdir("/")) == ["bin", "etc", "loop", "usr"]
    with pytest.raises(LinkLoop) as raised:
        overlay.readbytes("loop")
    assert raised.value.path == "loop"
    assert not overlay.isfile("loop") and overlay.exists("loop")
    with pytest.raises(NotALink):
        overlay.readlink("etc/motd")
    with pytest.raises(errors.ResourceNotFound):
        overlay.islink("nothing")


def test_relative_links_resolve_in_the_merged_view_not_their_layer(base, upper):
    """The issue's third finding: after ``remove('b')`` a lower link ``a -> b`` must not read b's old data."""
    overlay = OverlayFS(base, upper)
    overlay.remove("usr/bin/tool")
    with pytest.raises(errors.ResourceNotFound):
        overlay.readtext("bin/tool")
    with pytest.raises(errors.ResourceNotFound):
        overlay.readtext("etc/alt")
    overlay.writetext("usr/bin/tool", "tool v2")
    assert overlay.readtext("etc/alt") == "tool v2"


def test_writes_through_links_copy_up_the_target_only(base, upper):
    overlay = OverlayFS(base, upper)
    overlay.writetext("etc/alt", "patched")  # through the link
    assert overlay.readtext("usr/bin/tool") == "patched" and overlay.readlink("etc/alt") == "/usr/bin/tool"
    overlay.writetext("bin/new", "via merged-usr")  # a parent that is a link: created in its target
    assert overlay.readtext("usr/bin/new") == "via merged-usr"
    assert sorted(overlay.changes().added) == ["/usr/bin/new"]
    assert overlay.changes().modified == ("/usr/bin/tool",)


def test_symlink_remove_move_and_copy_up_act_on_the_link(base, upper):
    overlay = OverlayFS(base, upper)
    overlay.symlink("motd", "etc/greeting")
    assert overlay.readtext("etc/greeting") == "hello"
    with pytest.raises(errors.FileExists):
        overlay.symlink("x", "etc/greeting")
    with pytest.raises(errors.FileExists):
        overlay.symlink("x", "loop")  # a dangling or looping link is something
    overlay.remove("etc/motd")
    overlay.symlink("alt", "etc/motd")  # over a whiteout: replaces it
    assert overlay.readlink("etc/motd") == "alt" and overlay.readtext("etc/motd") == "tool v1"
    overlay.move("etc/up", "etc/up2")  # the lower link is copied up as a link, then renamed
    assert overlay.readlink("etc/up2") == "../../../../etc/motd" and not overlay.exists("etc/up")
    overlay.remove("bin")  # the link, not its target
    assert overlay.listdir("usr/bin") == ["tool"] and not overlay.exists("bin")
    reopened = OverlayFS(base, upper)
    assert reopened.readlink("etc/motd") == "alt" and reopened.readlink("etc/greeting") == "motd"
    assert sorted(reopened.changes().added) == ["/etc/greeting", "/etc/up2"]
    assert sorted(reopened.changes().deleted) == ["/bin", "/etc/up"]
    assert reopened.changes().modified == ("/etc/motd",)


def test_setinfo_without_following_sets_the_links_own_times(base, upper):
    """lchown/lutimes: ``follow_symlinks=False`` copies the link up as a link and sets its
    own times (on disk the symlink's, in the sidecar the record's); the target is untouched."""
    overlay = OverlayFS(base, upper)
    before = overlay.getinfo("usr/bin/tool", ["details"]).modified
    overlay.setinfo("etc/alt", {"details": {"accessed": 1_000_000.0, "modified": 2_000_000.0}}, follow_symlinks=False)
    info = overlay.getinfo("etc/alt", ["details", "link"])
    assert info.is_link and info.target == "/usr/bin/tool" and info.raw["details"]["modified"] == 2_000_000.0
    assert overlay.getinfo("usr/bin/tool", ["details"]).modified == before
    assert overlay.changes().added == () and "/usr/bin/tool" not in overlay.changes().modified
    overlay.setinfo("etc/alt", {"details": {"accessed": 1.0, "modified": 5.0}})  # follows: the target's
    assert overlay.getinfo("usr/bin/tool", ["details"]).raw["details"]["modified"] == 5.0
    assert overlay.getinfo("etc/alt", ["details"]).raw["details"]["modified"] == 2_000_000.0


def test_links_inside_a_moved_upper_directory_move_with_it(base, upper):
    overlay = OverlayFS(base, upper)
    overlay.makedir("new")
    overlay.symlink("../etc/motd", "new/l")
    overlay.movedir("new", "moved", create=True)
    assert overlay.readlink("moved/l") == "../etc/motd" and overlay.readtext("moved/l") == "hello"
    overlay.make_opaque("moved")
    assert overlay.readlink("moved/l") == "../etc/motd"
    assert OverlayFS(base, upper).readlink("moved/l") == "../etc/motd"


def test_hard_links_need_an_upper_on_disk(base, upper):
    overlay = OverlayFS(base, upper)
    if isinstance(upper, MemoryFS):
        with pytest.raises(errors.Unsupported, match="cannot hold hard links"):
            overlay.link("etc/motd", "etc/motd2")
        return
    with pytest.raises(errors.PermissionDenied):
        overlay.link("etc", "etc2")
    with pytest.raises(errors.FileExists):
        overlay.link("etc/motd", "usr/bin/tool")
    overlay.link("etc/motd", "etc/motd2")  # copies up first, then one file, two names
    overlay.writetext("etc/motd2", "both")  # written in place: every name reads it
    assert overlay.readtext("etc/motd") == "both"
    assert overlay.getinfo("etc/motd", ["stat"]).raw["stat"]["st_nlink"] == 2
    overlay.link("bin", "bin2")  # a symbolic link is linked as itself
    assert overlay.readlink("bin2") == "usr/bin"


def test_rename_between_two_hard_links_of_one_file_changes_nothing(base, tmp_path):
    """rename(2) from one name of a file to another of the same file leaves both, as the
    kernel overlay does (its VFS sees one inode); ``move`` did already, ``rename`` (which
    the mount serves rename(2) with) removed the source name. Found by the mount
    differential: link('/a', '/b'); rename('/a', '/b')."""
    overlay = OverlayFS(base, OSFS(str(tmp_path)))  # (hard links need an upper on disk)
    overlay.link("etc/motd", "etc/motd2")
    overlay.rename("etc/motd", "etc/motd2")
    overlay.rename("etc/motd2", "etc/motd", noreplace=False)
    assert overlay.readtext("etc/motd") == overlay.readtext("etc/motd2") == "hello"
    assert overlay.getinfo("etc/motd", ["stat"]).raw["stat"]["st_nlink"] == 2
    with pytest.raises(errors.FileExists):  # RENAME_NOREPLACE still refuses first
        overlay.rename("etc/motd", "etc/motd2", noreplace=True)


def test_links_inside_a_renamed_lower_directory(base, upper, tmp_path):
    """Links meet redirects: a renamed lower directory keeps its links (link records of a
    MemoryFS lower too), which still resolve in the merged view (a relative one to a name
    the rename took away then finds nothing), and a link made inside it stays there."""
    overlay = OverlayFS(base, upper)
    overlay.rename("etc", "config")  # a lower directory: one rename(2), with a redirect
    assert sorted(overlay.listdir("config")) == ["alt", "motd", "up"] and not overlay.exists("etc")
    assert overlay.islink("config/alt") and overlay.readlink("config/alt") == "/usr/bin/tool"
    assert overlay.readtext("config/alt") == "tool v1"
    with pytest.raises(errors.ResourceNotFound):
        overlay.readtext("config/up")  # -> /etc/motd, which the rename took away
    overlay.symlink("motd", "config/m")
    assert overlay.readtext("config/m") == "hello"
    again = OverlayFS(base, upper)
    assert again.readlink("config/up") == "../../../../etc/motd" and again.readtext("config/m") == "hello"
    if isinstance(upper, MemoryFS):
        return  # a commit of links needs a target that holds them (an OS directory)
    (tmp_path / "out").mkdir()
    again.commit(str(tmp_path / "out"))
    assert os.readlink(str(tmp_path / "out" / "config" / "alt")) == "/usr/bin/tool"
    assert os.readlink(str(tmp_path / "out" / "config" / "m")) == "motd"
    assert not (tmp_path / "out" / "etc").exists()


def test_a_hard_link_of_a_metadata_only_file_gets_its_data_first(base, upper):
    """link(2) of a metadata-only file: both names are one full file in the upper (never a
    second name of the token file, which no hint of the new name would explain)."""
    if isinstance(upper, MemoryFS):
        return  # hard links need an upper on disk (test_hard_links_need_an_upper_on_disk)
    overlay = OverlayFS(base, upper)
    overlay.setinfo("usr/bin/tool", {"details": {"modified": 1_000_000.0}})  # metadata only
    assert upper.readbytes("usr/bin/tool").startswith(b"unionfs-metacopy ")
    overlay.link("usr/bin/tool", "usr/bin/tool2")
    assert upper.readbytes("usr/bin/tool") == upper.readbytes("usr/bin/tool2") == b"tool v1"
    assert overlay.readtext("usr/bin/tool2") == "tool v1"
    assert overlay.getinfo("usr/bin/tool", ["details"]).modified.timestamp() == 1_000_000.0
    overlay.writetext("usr/bin/tool", "tool v2")
    assert OverlayFS(base, upper).readtext("usr/bin/tool2") == "tool v2"


def test_lower_hard_links_read_the_same_and_copy_up_breaks_them(tmp_path, guard_lower):
    """Without the kernel's index=on, copying up one name of a lower hard link breaks it."""
    (tmp_path / "lower").mkdir()
    (tmp_path / "lower" / "one").write_text("shared")
    os.link(str(tmp_path / "lower" / "one"), str(tmp_path / "lower" / "two"))
    overlay = OverlayFS(guard_lower(OSFS(str(tmp_path / "lower"))), MemoryFS())
    assert overlay.readtext("one") == overlay.readtext("two") == "shared"
    assert overlay.getinfo("two", ["stat"]).raw["stat"]["st_nlink"] == 2
    overlay.writetext("one", "changed")
    assert overlay.readtext("two") == "shared"


def _version_1_upper() -> MemoryFS:
    old = MemoryFS()
    Sidecar.open(old, create=True)
    old.writetext(FORMAT_PATH, "unionfs-sidecar 1\n")  # what unionfs before links wrote
    old.makedirs("/.unionfs/tree/w")
    old.create("/.unionfs/tree/w/etc")  # a whiteout of version 1
    return old


def test_a_version_1_sidecar_is_read_as_a_lower_and_becomes_version_5_with_its_first_link(base):
    old = _version_1_upper()
    assert not OverlayFS([old, base]).exists("etc")  # read as it is, unchanged
    assert old.readtext(FORMAT_PATH) == "unionfs-sidecar 1\n"
    overlay = OverlayFS(base, old)  # a writer keeps the lowest version that holds its records
    assert old.readtext(FORMAT_PATH) == FORMAT_TEXT == "unionfs-sidecar 1\n" and not overlay.exists("etc")
    overlay.symlink("usr", "u")
    assert old.readtext(FORMAT_PATH) == "unionfs-sidecar 5\n"
    assert overlay.readlink("u") == "usr" and not OverlayFS(base, old).exists("etc")


def test_link_records_make_the_sidecar_version_5_and_7_with_redirects(base):
    """A sidecar with link records says version 5 (7 with redirect or metacopy records too):
    an older unionfs refuses it as newer instead of showing the links as missing entries."""
    upper = MemoryFS()
    overlay = OverlayFS(base, upper)
    overlay.symlink("x", "l")
    assert upper.readtext(FORMAT_PATH) == "unionfs-sidecar 5\n"
    assert upper.listdir("/.unionfs/tree/l") == ["l"] and upper.readtext("/.unionfs/tree/l/l") == "x"
    overlay.movedir("etc", "renamed", create=True)  # a lower directory renamed: a redirect record
    assert upper.readtext(FORMAT_PATH) == "unionfs-sidecar 7\n"
    with pytest.raises(SidecarError, match="newer"):
        _reader_without_links(upper, base)


def _reader_without_links(upper, base):
    """An overlay as a unionfs that knows versions 1 to 4 only (before links) opens ``upper``."""
    from unionfs.core import sidecar

    known = {number: version for number, version in sidecar.VERSIONS.items() if number <= 4}
    with mock.patch.object(sidecar, "VERSIONS", known), mock.patch.object(sidecar, "NEWEST_VERSION", 4):
        return OverlayFS(base, upper)


def test_fsck_keeps_link_records_and_reports_an_overridden_one(base):
    upper = MemoryFS()
    overlay = OverlayFS(base, upper)
    overlay.symlink("motd", "etc/greeting")
    assert overlay.fsck(repair=True).clean and overlay.readlink("etc/greeting") == "motd"
    upper.writetext("etc/greeting", "a file left beside the record by a crash")
    fresh = OverlayFS(base, upper)
    assert fresh.readtext("etc/greeting").startswith("a file")  # the entry wins over the record
    report = fresh.fsck(repair=True)
    assert [f.kind for f in report.findings] == ["overridden-link"]
    assert not upper.exists("/.unionfs/tree/d/etc/l/greeting")


def _hostile_tar(path):
    import tarfile

    with tarfile.open(path, "w") as archive:
        link = tarfile.TarInfo("l")
        link.type, link.linkname = tarfile.SYMTYPE, "/tmp"
        archive.addfile(link)
        member = tarfile.TarInfo("l/evil")
        archive.addfile(member, __import__("io").BytesIO(b""))
        good = tarfile.TarInfo("ok")
        good.size = 2
        archive.addfile(good, __import__("io").BytesIO(b"ok"))
    return path


def test_unsafe_reaches_archive_lowers_from_the_api_urls_and_the_cli(tmp_path, capsys):
    import fs as _fs

    from unionfs.formats.archives import UnsafeArchive
    from unionfs.tools.cli import main

    tar = _hostile_tar(str(tmp_path / "hostile.tar"))
    with pytest.raises(UnsafeArchive, match="written through the symbolic link"):
        OverlayFS(tar)
    assert sorted(OverlayFS(tar, unsafe="skip").listdir("/")) == ["l", "ok"]
    assert sorted(OverlayFS("tar://%s?unsafe=skip" % tar).listdir("/")) == ["l", "ok"]
    assert sorted(_fs.open_fs("overlay://%s?unsafe=skip" % tar).listdir("/")) == ["l", "ok"]
    with pytest.raises(errors.CreateFailed):
        _fs.open_fs("overlay://%s" % tar)
    assert main(["list", "-l", tar, "--unsafe", "skip", "/"]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["list", "-l", tar, "/"]) == 1
