"""The one archive member index: one name policy, one link resolution, one type table, one
info builder, one read-only FS base, shared by the archive lowers and the OCI layers."""

from __future__ import annotations

import io
import tarfile

import pytest
from fs import errors
from fs.enums import ResourceType

from unionfs.formats import archive_index
from unionfs.formats.archive_index import (
    MAX_LINK_HOPS,
    ArchiveIndexFS,
    link_target_path,
    member_info,
    normalise,
    plain_tar_files,
)
from unionfs.formats.archives import ArchiveFS, open_archive
from unionfs.formats.oci.oci import TarLayerFS, member_path


@pytest.mark.parametrize(
    "name, refuse, resolve, clamp",
    [
        ("a/b", "/a/b", "/a/b", "/a/b"),
        ("./a//b/", "/a/b", "/a/b", "/a/b"),
        ("/abs/x", "/abs/x", "/abs/x", "/abs/x"),
        (".", "/", "/", "/"),
        ("a/../b", ValueError, "/b", "/b"),
        ("../x", ValueError, ValueError, "/x"),
        ("a\0b", "/ab", "/ab", "/ab"),
        ("caf\udce9", "/caf\\xe9", "/caf\\xe9", "/caf\\xe9"),
    ],
)
def test_one_name_policy_three_ways_with_dotdot(name, refuse, resolve, clamp):
    for policy, expected in (("refuse", refuse), ("resolve", resolve), ("clamp", clamp)):
        if expected is ValueError:
            with pytest.raises(ValueError):
                normalise(name, dotdot=policy)
        else:
            assert normalise(name, dotdot=policy) == expected


def test_backslashes_separate_only_when_asked():
    assert normalise("a\\b") == "/a\\b"
    assert normalise("a\\b", backslashes=True) == "/a/b"


def test_link_targets_resolve_from_the_link_or_the_root():
    assert link_target_path("/d/link", "f") == "/d/f"
    assert link_target_path("/d/link", "../f") == "/f"
    assert link_target_path("/d/link", "/etc/f") == "/etc/f"
    assert link_target_path("/d/link", "e/f", symbolic=False) == "/e/f"  # hard links: from the root
    with pytest.raises(ValueError):
        link_target_path("/d/link", "../../f")
    assert link_target_path("/d/link", "../../f", dotdot="clamp") == "/f"
    assert MAX_LINK_HOPS == 40


def test_the_archive_readers_use_the_one_policy():
    # the archive lowers refuse "..", the OCI layers resolve it: the same function decides
    with pytest.raises(ValueError):
        normalise("a/../b", dotdot="refuse")
    assert member_path("a/../b", "layer") == normalise("a/../b", dotdot="resolve")
    assert member_path("../../etc", "layer", clamp=True) == "/etc"
    assert issubclass(ArchiveFS, ArchiveIndexFS) and issubclass(TarLayerFS, ArchiveIndexFS)


def test_member_info_namespaces_and_types():
    info = member_info("f", "hardlink", None, size=3, modified=5.0, access={"uid": 7}, link_target="g")
    assert info.raw["details"]["type"] == int(ResourceType.file) and info.size == 3
    assert info.raw["access"] == {"uid": 7} and info.raw["link"] == {"target": "g"}
    assert set(member_info("d", "directory", ()).raw) == {"basic"}
    assert member_info("d", ResourceType.directory, ["details"]).is_dir
    assert member_info("s", "symlink", ["details"]).raw["details"]["type"] == int(ResourceType.symlink)


def _tar(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data, linkname in members:
            entry = tarfile.TarInfo(name)
            if linkname is not None:
                entry.type, entry.linkname = tarfile.SYMTYPE, linkname
                archive.addfile(entry)
            else:
                entry.size = len(data)
                archive.addfile(entry, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def test_plain_tar_files_follow_symlinks_and_leave_out_escapes():
    handle = _tar([("./id/layer.tar", b"data", None), ("link.tar", b"", "id/layer.tar"), ("../out", b"x", None)])
    found = plain_tar_files(handle)
    assert set(found) == {"id/layer.tar", "link.tar"} and found["link.tar"] == found["id/layer.tar"]
    handle.seek(found["link.tar"][0])
    assert handle.read(found["link.tar"][1]) == b"data"


def test_the_read_only_base_refuses_every_write(tmp_path):
    path = tmp_path / "a.tar"
    path.write_bytes(_tar([("d/f", b"hello", None)]).getvalue())
    archive = open_archive(str(path))
    assert archive.listdir("/") == ["d"] and archive.readbytes("d/f") == b"hello"
    assert archive.getinfo("/").name == "" and archive.isdir("d") and archive.isfile("d/f")
    for write in (lambda: archive.makedir("x"), lambda: archive.remove("d/f"), lambda: archive.removedir("d"),
                  lambda: archive.setinfo("d/f", {}), lambda: archive.openbin("d/f", "w"), lambda: archive.openbin("d/f", "r+")):
        with pytest.raises(errors.ResourceReadOnly):
            write()
    assert not archive.exists("nothing")
    archive.close()


def test_the_index_module_is_the_only_home_of_the_tar_type_table():
    import inspect

    import unionfs.formats.archives as archives
    import unionfs.formats.oci.oci as oci

    for module in (archives, oci):
        source = inspect.getsource(module)
        assert "tarfile.CHRTYPE" not in source and "tarfile.SYMTYPE:" not in source, module.__name__
    assert archive_index.TAR_KINDS[tarfile.LNKTYPE] == "hardlink"
