"""Tar and zip archives as lower layers: formats, implied directories, stacking,
streaming of large members, and hostile archives."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tracemalloc
import zipfile

import pytest
from hypothesis import given, settings, strategies as st

import unionfs
from fs import errors
from fs.enums import ResourceType
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS
from fs.tarfs import TarFS
from fs.zipfs import ZipFS
from unionfs import OverlayFS
from unionfs.formats.archives import ArchiveFS, ArchiveLimits, UnsafeArchive, open_archive
from unionfs.formats.oci import blobs
from unionfs.testing import trees

from tests.support.archive_builders import FORMATS, PatternStream, add_tar_member, build, build_tar

SAMPLE = {"a/b/f.txt": b"archive f", "a/g.txt": b"archive g", "top.txt": b"archive top"}


@pytest.fixture
def archive_dir(tmp_path):
    folder = tmp_path / "archives"
    folder.mkdir()
    return folder


def guarded(guard_lower, path: str) -> str:
    """Register the folder of ``path`` with the lower guard; return ``path``."""
    guard_lower(OSFS(os.path.dirname(path)))
    return path


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_is_a_lower_with_implied_directories(archive_dir, guard_lower, fmt):
    path = guarded(guard_lower, build(str(archive_dir / ("layer." + fmt)), SAMPLE, fmt))
    with OverlayFS(path, upper=MemoryFS()) as overlay:
        assert sorted(overlay.listdir("/")) == ["a", "top.txt"]
        assert overlay.isdir("a") and overlay.isdir("a/b")  # implied: no entry in the archive
        assert sorted(overlay.listdir("a")) == ["b", "g.txt"]
        assert overlay.readbytes("a/b/f.txt") == b"archive f"
        assert overlay.getinfo("a/b/f.txt", ["details"]).size == len(b"archive f")
        overlay.appendbytes("a/b/f.txt", b" changed")  # copy-up out of the archive
        overlay.makedir("a/b/new")
        overlay.remove("top.txt")
        assert overlay.readbytes("a/b/f.txt") == b"archive f changed"
        assert sorted(overlay.listdir("/")) == ["a"]
    reopened = open_archive(path)
    assert reopened.readbytes("a/b/f.txt") == b"archive f"
    reopened.close()


def test_explicit_directory_entries_keep_their_metadata(archive_dir, guard_lower):
    path = guarded(guard_lower, build(str(archive_dir / "d.tar"), {"d": None, "d/x": b"x"}, "tar"))
    with open_archive(path) as layer:
        info = layer.getinfo("d", ["details", "access"])
        assert info.is_dir and info.modified is not None and info.permissions.mode == 0o755
        assert layer.getmeta()["case_insensitive"] is False


def test_archives_and_directories_stack_in_any_position(archive_dir, tmp_path, guard_lower):
    tar = build(str(archive_dir / "top.tar.gz"), {"shared/one": b"tar one", "top.txt": b"from tar"}, "tar.gz")
    zipped = build(str(archive_dir / "mid.zip"), {"shared/one": b"zip one", "shared/two": b"zip two", "top.txt": b"from zip"}, "zip")
    plain = tmp_path / "plain"
    (plain / "shared").mkdir(parents=True)
    (plain / "shared" / "three").write_bytes(b"dir three")
    (plain / "top.txt").write_bytes(b"from dir")
    guarded(guard_lower, tar)
    guard_lower(OSFS(str(plain)))
    for order, winner in (([tar, zipped, str(plain)], b"from tar"), ([str(plain), tar, zipped], b"from dir"), ([zipped, str(plain), tar], b"from zip")):
        with OverlayFS(order, upper=MemoryFS()) as overlay:
            assert sorted(overlay.listdir("shared")) == ["one", "three", "two"]
            assert overlay.readbytes("top.txt") == winner
            overlay.writebytes("shared/two", b"upper two")
            assert overlay.readbytes("shared/two") == b"upper two"


def test_archive_inside_an_open_fs(archive_dir, guard_lower):
    build(str(archive_dir / "inner.tar.xz"), SAMPLE, "tar.xz")
    holder = guard_lower(OSFS(str(archive_dir)))
    with open_archive("inner.tar.xz", within=holder) as layer, OverlayFS(layer, upper=MemoryFS()) as overlay:
        assert overlay.readbytes("a/g.txt") == b"archive g"
        assert "inner.tar.xz" in repr(layer)


def test_open_fs_tar_and_zip_readers_become_normalised_layers(archive_dir, guard_lower):
    tar = build_tar(
        str(archive_dir / "links.tar"),
        [("data/real.txt", b"real"), ("data/hard.txt", b"", tarfile.LNKTYPE, "data/real.txt")],
    )
    zipped = build(str(archive_dir / "z.zip"), {"x/y.txt": b"zip y"}, "zip")
    guarded(guard_lower, tar)
    with TarFS(tar) as tar_fs, ZipFS(zipped) as zip_fs:
        # fs's own ReadTarFS types a hard link as a symlink and cannot open it
        with pytest.raises(errors.FileExpected):
            tar_fs.readbytes("data/hard.txt")
        with OverlayFS([tar_fs, zip_fs], upper=MemoryFS()) as overlay:
            assert overlay.readbytes("data/hard.txt") == b"real"
            assert overlay.readbytes("x/y.txt") == b"zip y"
            assert overlay.getmeta()["case_insensitive"] is False  # ReadTarFS claims True
        assert tar_fs.readbytes("data/real.txt") == b"real"  # still open: it is the caller's


def test_tar_and_zip_urls_are_lowers(archive_dir, guard_lower):
    tar = build(str(archive_dir / "u.tar.bz2"), SAMPLE, "tar.bz2")
    zipped = guarded(guard_lower, build(str(archive_dir / "u.zip"), {"z.txt": b"zip"}, "zip"))
    with OverlayFS(["tar://" + tar, "zip://" + zipped], upper="mem://") as overlay:
        assert sorted(overlay.listdir("/")) == ["a", "top.txt", "z.txt"]


# -- large members stream ------------------------------------------------------------------------

LARGE = 32 * 1024 * 1024  # well above the 1 MiB chunks of copy-up and download


def _large_archive(path: str, fmt: str) -> str:
    if fmt == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            with archive.open("big/blob.bin", "w", force_zip64=True) as out:
                stream = PatternStream(LARGE)
                while True:
                    chunk = stream.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
        return path
    with tarfile.open(path, {"tar": "w", "tar.gz": "w:gz"}[fmt]) as archive:
        add_tar_member(archive, "big/blob.bin", PatternStream(LARGE), size=LARGE)
    return path


def _expected_digest() -> str:
    digest, stream = hashlib.sha256(), PatternStream(LARGE)
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            return digest.hexdigest()
        digest.update(chunk)


class HashSink(io.RawIOBase):
    def __init__(self) -> None:
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def]
        self.digest.update(data)
        return len(data)


@pytest.mark.parametrize("fmt", ["tar", "tar.gz", "zip"])
def test_large_members_stream_without_loading(archive_dir, tmp_path, guard_lower, fmt):
    path = guarded(guard_lower, _large_archive(str(archive_dir / ("big." + fmt)), fmt))
    upper = tmp_path / "upper"
    upper.mkdir()
    with OverlayFS(path, upper=str(upper)) as overlay:
        sink = HashSink()
        tracemalloc.start()
        try:
            overlay.download("big/blob.bin", sink)
            after_read = tracemalloc.get_traced_memory()[1]
            overlay.appendbytes("big/blob.bin", b"!")  # copy-up streams the member into the upper
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert sink.digest.hexdigest() == _expected_digest()
        assert overlay.getinfo("big/blob.bin", ["details"]).size == LARGE + 1
    # a member read in full would need LARGE bytes at least; streaming stays near one chunk
    assert after_read < LARGE / 4, after_read
    assert peak < LARGE / 4, peak


# -- hostile and malformed archives ----------------------------------------------------------------


def test_dot_dot_members_are_refused_or_skipped(archive_dir, guard_lower):
    path = guarded(guard_lower, build_tar(str(archive_dir / "evil.tar"), [("ok.txt", b"ok"), ("../../etc/evil", b"x"), ("a/../../b", b"y")]))
    with pytest.raises(UnsafeArchive) as raised:
        OverlayFS(path)
    assert isinstance(raised.value, errors.CreateFailed)
    assert path in str(raised.value) and "../../etc/evil" in str(raised.value)
    with open_archive(path, unsafe="skip") as layer:
        assert layer.listdir("/") == ["ok.txt"]
        assert [skipped.member for skipped in layer.skipped] == ["../../etc/evil", "a/../../b"]


def test_absolute_names_are_made_relative(archive_dir, guard_lower):
    path = guarded(guard_lower, build_tar(str(archive_dir / "abs.tar"), [("/etc/passwd", b"root"), ("./rel/x", b"x")]))
    with OverlayFS(path, upper=MemoryFS()) as overlay:
        assert overlay.readbytes("etc/passwd") == b"root"
        assert overlay.readbytes("rel/x") == b"x"


def test_zip_absolute_and_dot_dot_names(archive_dir, guard_lower):
    path = str(archive_dir / "abs.zip")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("/abs/file", b"abs")
        archive.writestr("../escape", b"bad")
    guarded(guard_lower, path)
    with pytest.raises(UnsafeArchive, match="escape"):
        open_archive(path)
    with open_archive(path, unsafe="skip") as layer:
        assert layer.readbytes("abs/file") == b"abs"  # fs's ReadZipFS lists it but cannot read it
        assert not layer.exists("escape")


def test_duplicate_names_last_member_wins(archive_dir, guard_lower):
    path = guarded(guard_lower, build_tar(str(archive_dir / "dup.tar"), [("x", b"first"), ("d/y", b"1"), ("x", b"second")]))
    with open_archive(path) as layer:
        assert layer.readbytes("x") == b"second"
        assert sorted(layer.listdir("/")) == ["d", "x"]


def test_file_used_as_a_directory_is_unsafe(archive_dir, guard_lower):
    path = guarded(guard_lower, build_tar(str(archive_dir / "clash.tar"), [("a", b"file"), ("a/b", b"inside")]))
    with pytest.raises(UnsafeArchive, match="other members are inside it"):
        open_archive(path)
    with open_archive(path, unsafe="skip") as layer:
        assert layer.isdir("a") and layer.readbytes("a/b") == b"inside"


def test_links(archive_dir, guard_lower):
    entries = [
        ("lib/real.so", b"ELF"),
        ("lib/alias.so", b"", tarfile.SYMTYPE, "real.so"),
        ("bin/up.so", b"", tarfile.SYMTYPE, "../lib/alias.so"),  # a chain, inside
        ("lib/hard.so", b"", tarfile.LNKTYPE, "lib/real.so"),
        ("lib/hardalias", b"", tarfile.LNKTYPE, "lib/alias.so"),  # a second name of a symlink
        ("lib/dangling", b"", tarfile.SYMTYPE, "missing"),
        ("lib/dirlink", b"", tarfile.SYMTYPE, "."),
        ("dev/null", b"", tarfile.CHRTYPE),
    ]
    path = guarded(guard_lower, build_tar(str(archive_dir / "links.tar"), entries))
    with open_archive(path) as layer:
        assert layer.readbytes("lib/hard.so") == b"ELF"  # a hard link reads as the member it names
        info = layer.getinfo("lib/alias.so", ["link", "details"])
        assert info.target == "real.so" and info.is_link and info.type == ResourceType.symlink
        assert layer.getinfo("lib/hardalias", ["link"]).target == "real.so"
        assert layer.getinfo("lib/hard.so", ["link"]).target is None
        assert sorted(layer.listdir("lib")) == ["alias.so", "dangling", "dirlink", "hard.so", "hardalias", "real.so"]
        assert sorted(layer.symlinks_in("lib")) == ["alias.so", "dangling", "dirlink", "hardalias"]
        with pytest.raises(errors.FileExpected, match="symbolic link"):
            layer.readbytes("lib/alias.so")  # the layer alone does not resolve links
        reasons = {skipped.member: skipped.reason for skipped in layer.skipped}
        assert "character device" in reasons["dev/null"] and len(reasons) == 1
        assert layer.isdir("dev")  # the parent stays, empty
    with OverlayFS(guard_lower(open_archive(path))) as overlay:  # an overlay resolves them in its view
        assert overlay.readbytes("lib/alias.so") == b"ELF" == overlay.readbytes("bin/up.so")
        assert overlay.readbytes("lib/hardalias") == b"ELF"
        assert sorted(overlay.listdir("lib/dirlink")) == sorted(overlay.listdir("lib"))
        assert overlay.islink("lib/dangling") and not overlay.isfile("lib/dangling")


@pytest.mark.parametrize("target", ["/etc/shadow", "../../etc/shadow", "../../outside", "../x/../../up", "/etc/hostname"])
def test_links_pointing_outside_are_plain_link_entries(archive_dir, guard_lower, target):
    """Absolute targets and targets that leave the archive are entries like any other link:
    they resolve inside the overlay (never on the host), so here they lead nowhere."""
    path = guarded(guard_lower, build_tar(str(archive_dir / "out.tar"), [("x/link", b"", tarfile.SYMTYPE, target), ("x/ok", b"ok")]))
    with open_archive(path) as layer:
        assert sorted(layer.listdir("x")) == ["link", "ok"] and layer.skipped == ()
    with OverlayFS(open_archive(path)) as overlay:
        assert overlay.readlink("x/link") == target
        with pytest.raises(errors.ResourceNotFound):
            overlay.readbytes("x/link")


def test_an_absolute_symlink_tar_is_a_lower(archive_dir, guard_lower):
    """The reproducer of issue 13: ``ln -s /etc/hostname x`` in a tarball made it refused whole."""
    path = guarded(guard_lower, build_tar(str(archive_dir / "abs.tar"), [("etc/hostname", b"box\n"), ("x", b"", tarfile.SYMTYPE, "/etc/hostname")]))
    with OverlayFS(open_archive(path)) as overlay:
        assert overlay.readtext("x") == "box\n"  # resolved at the overlay's root, not the host's
        assert overlay.getinfo("x", ["link"]).target == "/etc/hostname"


@pytest.mark.parametrize("hostile", [[("l", b"", tarfile.SYMTYPE, "/tmp"), ("l/evil", b"written through the link")],
                                     [("d/l", b"", tarfile.SYMTYPE, "../.."), ("d/l/x/y", b"deeper")]])
def test_members_written_through_a_link_are_unsafe(archive_dir, guard_lower, hostile):
    path = guarded(guard_lower, build_tar(str(archive_dir / "through.tar"), hostile))
    with pytest.raises(UnsafeArchive, match="written through the symbolic link"):
        open_archive(path)
    with open_archive(path, unsafe="skip") as layer:
        link = hostile[0][0]
        assert layer.getinfo(link, ["link"]).target == hostile[0][3] and not layer.isdir(link)


def test_hard_link_outside_is_unsafe(archive_dir, guard_lower):
    path = guarded(guard_lower, build_tar(str(archive_dir / "hard.tar"), [("x", b"", tarfile.LNKTYPE, "../../etc/passwd")]))
    with pytest.raises(UnsafeArchive, match="links outside"):
        open_archive(path)


def test_non_utf8_names_are_escaped(archive_dir, guard_lower):
    tar = build_tar(str(archive_dir / "latin.tar"), [("caf\udce9.txt", b"tar cafe")])
    zipped = str(archive_dir / "latin.zip")
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("cafX.txt", b"zip cafe")
        archive.writestr("utf8-\u00e9.txt", b"flagged")
    with open(zipped, "rb") as handle:
        data = handle.read()
    with open(zipped, "wb") as handle:
        handle.write(data.replace(b"cafX", b"caf\xe9"))  # a name in neither UTF-8 nor flagged
    guarded(guard_lower, tar)
    with OverlayFS([tar, zipped], upper=MemoryFS()) as overlay:
        names = sorted(overlay.listdir("/"))
        assert "caf\\xe9.txt" in names  # tar: undecodable byte kept visibly
        assert overlay.readbytes("caf\\xe9.txt") == b"tar cafe"
        assert "caf\u0398.txt" in names  # zip: CP437, as the zip spec says for unflagged names
        assert overlay.readbytes("utf8-\u00e9.txt") == b"flagged"
        for name in names:
            name.encode("utf-8")  # every name is valid text


def test_not_an_archive_and_truncated_archives_fail_clearly(archive_dir, guard_lower):
    junk = archive_dir / "junk.tar"
    junk.write_bytes(b"this is not an archive at all" * 40)
    good = build(str(archive_dir / "cut.tar.gz"), SAMPLE, "tar.gz")
    with open(good, "rb") as handle:
        data = handle.read()
    (archive_dir / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    guarded(guard_lower, good)
    with pytest.raises(unionfs.UnsupportedLayer, match="junk.tar"):
        OverlayFS(str(junk))
    with pytest.raises(unionfs.UnsupportedLayer, match="cut.tar.gz"):
        OverlayFS(good)
    with pytest.raises(unionfs.UnsupportedLayer, match="missing.zip"):
        open_archive(str(archive_dir / "missing.zip"))


def test_archive_layer_is_read_only_and_closes(archive_dir, guard_lower):
    path = guarded(guard_lower, build(str(archive_dir / "ro.zip"), SAMPLE, "zip"))
    layer = open_archive(path)
    assert isinstance(layer, ArchiveFS)
    with pytest.raises(errors.ResourceReadOnly):
        layer.writebytes("new", b"x")
    with pytest.raises(errors.ResourceReadOnly):
        layer.makedir("d")
    with pytest.raises(errors.ResourceReadOnly):
        layer.openbin("top.txt", "r+")
    with pytest.raises(errors.ResourceNotFound):
        layer.getinfo("nope")
    with pytest.raises(errors.DirectoryExpected):
        layer.listdir("top.txt")
    with pytest.raises(errors.FileExpected):
        layer.openbin("a")
    layer.close()
    with pytest.raises(errors.FilesystemClosed):
        layer.listdir("/")


def test_a_tarred_upper_is_a_lower_with_its_whiteouts(tmp_path, archive_dir, guard_lower):
    """Layer rotation through an archive: tar up an upper (sidecar included) and stack it."""
    base = guard_lower(trees.make_tree(MemoryFS(), {"etc/keep": "keep", "etc/gone": "gone"}))
    upper_dir = tmp_path / "upper"
    with OverlayFS(base, upper=str(upper_dir)) as overlay:
        overlay.remove("etc/gone")
        overlay.writetext("etc/new", "new")
        merged = sorted(overlay.listdir("etc"))
    layer_path = str(archive_dir / "layer.tar.gz")
    with tarfile.open(layer_path, "w:gz") as archive:
        for name in sorted(os.listdir(upper_dir)):
            archive.add(str(upper_dir / name), arcname=name)
    guarded(guard_lower, layer_path)
    with OverlayFS([layer_path, base], upper=MemoryFS()) as stacked:
        assert sorted(stacked.listdir("etc")) == merged == ["keep", "new"]


def test_encrypted_zip_members_are_left_out(archive_dir, guard_lower):
    path = archive_dir / "secret.zip"
    with zipfile.ZipFile(str(path), "w") as archive:
        archive.writestr("secret.txt", b"hidden")
        archive.writestr("plain.txt", b"plain")
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")  # the central directory entry of secret.txt
    data[central + 8] |= 0x1  # its "encrypted" flag
    path.write_bytes(bytes(data))
    guarded(guard_lower, str(path))
    with open_archive(str(path)) as layer:
        assert layer.listdir("/") == ["plain.txt"]
        assert [(s.member, s.reason) for s in layer.skipped] == [("secret.txt", "is an encrypted member, which a layer cannot hold")]


def test_concurrent_reads_of_one_archive(archive_dir, guard_lower):
    import threading

    members = {"m%d/data.bin" % n: bytes([n]) * (300_000 + n) for n in range(6)}
    path = guarded(guard_lower, build(str(archive_dir / "many.tar.gz"), members, "tar.gz"))
    failures: list = []
    with OverlayFS(path) as overlay:

        def read(name: str, expected: bytes) -> None:
            for _ in range(3):
                with overlay.openbin(name) as handle:
                    data = b"".join(iter(lambda: handle.read(4096), b""))
                if data != expected:
                    failures.append(name)

        threads = [threading.Thread(target=read, args=item) for item in members.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


MEMBER_NAMES = st.lists(
    st.tuples(
        st.lists(st.sampled_from(["a", "b", "..", ".", "", "c\udce9"]), min_size=1, max_size=4).map("/".join),
        st.sampled_from([b"1", b"22", None]),
    ),
    max_size=8,
)


@given(entries=MEMBER_NAMES, absolute=st.booleans())
@settings(deadline=None)
def test_any_member_list_gives_a_consistent_tree_or_a_clear_error(tmp_path_factory, entries, absolute):
    """Whatever names an archive holds, the layer either refuses it with UnsafeArchive or
    shows a tree in which every file holds the content of the last member of its name."""
    path = str(tmp_path_factory.mktemp("fuzz") / "fuzz.tar")
    raw = [(("/" if absolute else "") + name, content) for name, content in entries]
    build_tar(path, [(name, content) for name, content in raw])
    for policy in ("error", "skip"):
        try:
            layer = open_archive(path, unsafe=policy)
        except UnsafeArchive as error:
            assert policy == "error" and error.member.rstrip("/") in [name.rstrip("/") for name, _ in raw]
            continue
        with layer:
            expected = {}
            for name, content in raw:
                parts = [p for p in name.replace("\udce9", "\\xe9").split("/") if p not in ("", ".")]
                if ".." in parts or not parts:
                    continue
                expected["/" + "/".join(parts)] = content
            for member_path, info in layer.walk.info():
                assert member_path.count("/") >= 1 and ".." not in member_path.split("/")
                if not info.is_dir:
                    assert layer.readbytes(member_path) == expected[member_path]
            for member_path, content in expected.items():
                if content is not None and layer.isfile(member_path):
                    assert layer.readbytes(member_path) == content


def _scattered_targz(path: str, alias: bool = False) -> dict:
    """A tar.gz whose archive order is far from any sorted or breadth-first walk order, with
    incompressible members so that the gzip stream has checkpoints to go back to; with
    ``alias``, also a member larger than the stream keeps behind its reads, and a hard link
    to it under a name the walk reaches right after it (its data read twice in a row)."""
    rng = __import__("random").Random(8)
    contents = {}
    with tarfile.open(path, "w:gz") as archive:
        for index in range(60):
            name = "%s/d%d/f%02d" % ("zyxwvutsrq"[index % 10], index % 3, 59 - index)
            data = bytes(rng.getrandbits(8) for _ in range(40_000))
            contents["/" + name] = data
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
        if alias:
            data = rng.randbytes(blobs.KEEP_BEHIND * 2)
            member = tarfile.TarInfo("q/big")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
            link = tarfile.TarInfo("q/big2")
            link.type, link.linkname = tarfile.LNKTYPE, "q/big"
            archive.addfile(link)
            contents["/q/big"] = contents["/q/big2"] = data
    return contents


#: no spill: every read behind the decompressor goes back to a checkpoint (counted)
NO_SPILL = ArchiveLimits(max_spill=0)


@pytest.mark.parametrize("limits", [None, NO_SPILL], ids=["spill", "no-spill"])
def test_commit_from_a_targz_reads_it_in_one_pass(tmp_path, limits):
    """Issue 11: a commit from a .tar.gz lower read members in walk order, and every member
    behind the stream's position decompressed the archive again from its start. Without the
    spill this is the order of the commit alone (``read_order``)."""
    contents = _scattered_targz(str(tmp_path / "tree.tar.gz"))
    archive = open_archive(str(tmp_path / "tree.tar.gz"), limits=limits)
    with OverlayFS(archive, upper=MemoryFS()) as overlay:
        assert archive.restarts == 0
        overlay.commit(str(tmp_path / "out"))
        assert archive.restarts == 0
    archive.close()
    out = OSFS(str(tmp_path / "out"))
    assert {path: out.readbytes(path) for path in out.walk.files()} == contents


def _whole_tree_reads(overlay: OverlayFS, contents: dict, tmp_path) -> None:
    """What reads a whole tree out of an overlay over one archive lower: walks reading every
    file (breadth-first, fs's default, and depth-first), copy-up of files against archive
    order, the change set (which compares copied-up files with the lower's bytes, in name
    order), commits (whole and changes only) and the exports."""
    for search in ("breadth", "depth"):
        assert {path: overlay.readbytes(path) for path in overlay.walk.files(search=search)} == contents
    for path in sorted(contents, reverse=True)[::3]:
        overlay.setinfo(path, {"details": {"modified": 1_000_000}})  # copies it up: data read from the lower
    assert overlay.changes().paths("metadata") == tuple(sorted(contents, reverse=True)[::3][::-1])
    overlay.commit(str(tmp_path / "whole"))
    overlay.commit(str(tmp_path / "only"), only_changes=True)
    overlay.export_layer(io.BytesIO())
    overlay.export_upper(MemoryFS())
    out = OSFS(str(tmp_path / "whole"))
    assert {path: out.readbytes(path) for path in out.walk.files()} == contents


def test_whole_tree_reads_over_a_targz_lower_decompress_it_once(tmp_path):
    """Issue 11: every whole-tree read over a .tar.gz lower (walk + read in either order, the
    second name of a member, copy-up and change set out of archive order, commit, exports)
    reads the archive without one decompression restart: the spill taken while the archive
    was indexed serves every read behind the decompressor."""
    contents = _scattered_targz(str(tmp_path / "tree.tar.gz"), alias=True)
    archive = open_archive(str(tmp_path / "tree.tar.gz"))
    with open(str(tmp_path / "tree.tar.gz"), "rb") as handle:  # all of it, taken while indexing
        assert archive._stream is not None and archive._stream.spilled == len(__import__("gzip").decompress(handle.read()))
    with OverlayFS(archive, upper=MemoryFS()) as overlay:
        _whole_tree_reads(overlay, contents, tmp_path)
        assert archive.restarts == 0
    archive.close()
    assert archive._stream is not None and archive._stream.spilled == 0  # the spill went with it


def test_whole_tree_reads_without_the_spill_restart(tmp_path):
    """The same reads with no spill go back over the archive (what the test above would
    count if the spill were not taken or not read)."""
    contents = _scattered_targz(str(tmp_path / "tree.tar.gz"), alias=True)
    archive = open_archive(str(tmp_path / "tree.tar.gz"), limits=NO_SPILL)
    with OverlayFS(archive, upper=MemoryFS()) as overlay:
        _whole_tree_reads(overlay, contents, tmp_path)
        assert archive.restarts > 0
    archive.close()


def test_targz_members_read_in_any_order_are_right_and_counted(tmp_path):
    contents = _scattered_targz(str(tmp_path / "tree.tar.gz"), alias=True)
    with open(str(tmp_path / "tree.tar.gz"), "rb") as handle:
        plain = len(__import__("gzip").decompress(handle.read()))
    for limits, spill in ((NO_SPILL, 0), (None, None), (ArchiveLimits(max_spill=500_000), 500_000)):
        archive = open_archive(str(tmp_path / "tree.tar.gz"), limits=limits)
        try:
            stream = archive._stream
            assert stream is not None
            assert stream.spilled == (spill if spill is not None else plain) and plain > 500_000
            for path in sorted(contents, reverse=True):  # against archive order: the counter sees it
                assert archive.readbytes(path) == contents[path]
            # no spill, or past a partial one: restarts; all spilled: none
            assert (archive.restarts > 0) == (spill is not None)
        finally:
            archive.close()


def test_a_spill_that_cannot_be_written_leaves_the_checkpoints(tmp_path, monkeypatch):
    """No room for the spill (ENOSPC, no temporary directory) is no error: reads decompress."""
    contents = _scattered_targz(str(tmp_path / "tree.tar.gz"))

    def no_room(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(blobs.tempfile, "TemporaryFile", no_room)
    archive = open_archive(str(tmp_path / "tree.tar.gz"))
    try:
        assert archive._stream is not None and archive._stream.spilled == 0
        assert {path: archive.readbytes(path) for path in sorted(contents, reverse=True)} == contents
        assert archive.restarts > 0
    finally:
        archive.close()
