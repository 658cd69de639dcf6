"""unionfs.formats.tarscan: the one-pass header scanner says what ``tarfile.open(mode="r|")``
says of every member, or leaves the archive to tarfile (``Unsupported``) before yielding a
member it cannot vouch for; an OCI layer indexes the same either way."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
from typing import Any, List, Optional, Tuple

import attr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from unionfs.errors import LayerFormatError
from unionfs.formats import archives, tarscan
from unionfs.formats.oci import oci
from unionfs.formats.oci.blobs import Blob

FIELDS = ("name", "mode", "uid", "gid", "size", "mtime", "type", "linkname", "uname", "gname",
          "devmajor", "devminor", "offset", "offset_data", "pax_headers", "sparse")


def _fields(member: Any) -> Tuple[Any, ...]:
    return tuple(getattr(member, name) for name in FIELDS)


def by_tarfile(data: bytes) -> Tuple[List[Tuple[Any, ...]], Optional[BaseException]]:
    members: List[Tuple[Any, ...]] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as archive:
            for member in archive:
                members.append(_fields(member))
    except Exception as error:  # noqa: BLE001  (what tarfile says, compared below)
        return members, error
    return members, None


def by_scanner(data: bytes, chunk: Optional[int] = None) -> Tuple[List[Tuple[Any, ...]], bool]:
    """The members scanned, and whether the scanner left the archive to tarfile."""
    members: List[Tuple[Any, ...]] = []
    stream = io.BytesIO(data)
    read = stream.read if chunk is None else (lambda size: stream.read(min(size, chunk)))
    try:
        for member in tarscan.scan(read):
            members.append(_fields(member))
    except tarscan.Unsupported:
        return members, True
    return members, False


def assert_agrees(data: bytes, supported: Optional[bool] = True) -> None:
    """The scanner lists what tarfile lists; ``supported``: whether it must read the archive
    itself (True), must leave it to tarfile (False), or may do either (None)."""
    expected, error = by_tarfile(data)
    for chunk in (None, 700, 512 * 3 + 1):
        scanned, unsupported = by_scanner(data, chunk)
        if supported is not None:
            assert unsupported == (not supported), (scanned, expected, error)
        if unsupported:
            assert scanned == expected[: len(scanned)]
        else:
            assert error is None, error
            assert scanned == expected


def tar_bytes(fmt: int, members: List[Tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, **fields: Any) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.size = size
    for key, value in fields.items():
        setattr(member, key, value)
    return member


def tricky_members() -> List[Tuple[tarfile.TarInfo, bytes]]:
    long_dir = "/".join(["directory-%02d" % n for n in range(12)])
    return [
        (info("plain", size=5, mode=0o4755, uid=1000, gid=1000, uname="user", gname="group", mtime=1234567890), b"hello"),
        (info(long_dir, tarfile.DIRTYPE, mode=0o1777), b""),
        (info(long_dir + "/" + "f" * 150, size=1000), b"x" * 1000),
        (info("n" * 99, size=0), b""),
        (info("p" * 100, size=1), b"p"),
        (info("link", tarfile.SYMTYPE, linkname="t" * 200), b""),
        (info("hard", tarfile.LNKTYPE, linkname="plain"), b""),
        (info("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3), b""),
        (info("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0), b""),
        (info("fifo", tarfile.FIFOTYPE), b""),
        (info("ünïcödé/名前", size=3), b"abc"),
        (info("bad-\udcff-bytes", size=2), b"zz"),
        (info("big-ids", uid=2 ** 22, gid=2 ** 22 + 1, size=0), b""),
        (info("dir/", tarfile.DIRTYPE), b""),
        (info("odd-type", b"Z", size=700), b"q" * 700),
        (info("after", size=513), b"a" * 513),
    ]


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu", "pax"])
def test_tricky_members_as_tarfile_reads_them(fmt):
    assert_agrees(tar_bytes(fmt, tricky_members()))


def test_ustar_prefix_names():
    members = [(info("a" * 60 + "/" + "b" * 60 + "/" + "c" * 30, size=1), b"c"),
               (info("d" * 120 + "/e", tarfile.DIRTYPE), b"")]
    assert_agrees(tar_bytes(tarfile.USTAR_FORMAT, members))


@given(st.lists(st.integers(0, 511), max_size=512), st.integers(1, 255), st.randoms(use_true_random=False))
def test_the_byte_sum_is_every_headers_sum(places, value, rnd):
    """The Adler-32 shortcut of the checksum sums a header as ``sum`` does, dense or sparse."""
    header = bytearray(512)
    for place in places:
        header[place] = value if rnd.random() < 0.5 else rnd.randrange(1, 256)
    assert tarscan._byte_sum(bytes(header), header.count(0)) == sum(header)


@pytest.mark.parametrize("nonzero", [255, 256, 257, 512])
def test_the_byte_sum_at_the_shortcuts_bound(nonzero):
    header = b"\xff" * nonzero + bytes(512 - nonzero)  # the largest sums for so many bytes
    assert tarscan._byte_sum(header, header.count(0)) == sum(header)


def _with_checksum(header: bytearray, checksum: int) -> bytes:
    header[148:156] = b"%06o\0 " % checksum
    return bytes(header)


def test_a_checksum_off_by_the_adler_modulus_is_refused():
    """A dense header (its sum over 65521) whose stored checksum is its sum less 65521, which
    Adler-32 alone cannot tell from the right one: damaged to tarfile, so left to tarfile."""
    header = bytearray(tarscan.raw_header(b"\xfe" * 100, tarfile.SYMTYPE, prefix=b"\xfd" * 155, linkname=b"\xfc" * 100))
    right = sum(header[:148]) + sum(header[156:]) + 256
    assert right > 65521
    assert_agrees(_with_checksum(header, right) + bytes(1024), supported=None)
    assert_agrees(_with_checksum(bytearray(header), right - 65521) + bytes(1024), supported=False)


def test_a_header_with_more_than_256_non_zero_bytes():
    """ustar names of 255 characters (prefix and name full) leave over 256 bytes non-zero: those
    headers are summed byte by byte, and a damaged one is still found."""
    members = [(info("p" * 154 + "/" + "n" * 100, size=1, uname="u" * 31, gname="g" * 31), b"x")]
    data = bytearray(tar_bytes(tarfile.USTAR_FORMAT, members))
    assert 512 - data[:512].count(0) > 256
    assert_agrees(bytes(data))
    data[0] ^= 0x01  # the name changed, the checksum not
    assert_agrees(bytes(data), supported=False)


def test_pax_fields_override_the_header():
    members = [(info("é" * 10, size=3, mtime=1234567890.5, uid=3 ** 20, uname="ü" * 40), b"abc"),
               (info("dir/sub/", tarfile.DIRTYPE, mtime=1.25), b""),
               (info("plain", size=1), b"x")]
    assert_agrees(tar_bytes(tarfile.PAX_FORMAT, members))


def _pax_member(records: bytes, member: bytes, data: bytes = b"") -> bytes:
    padded = records + b"\0" * (-len(records) % 512)
    out = tarscan.raw_header(b"././@PaxHeader", tarfile.XHDTYPE, len(records)) + padded + member
    return out + data + b"\0" * (-len(data) % 512)


def _record(keyword: bytes, value: bytes) -> bytes:
    """One PAX record, its length field counting itself."""
    body = b" " + keyword + b"=" + value + b"\n"
    digits = 1
    while len(str(len(body) + digits)) != digits:
        digits += 1
    return str(len(body) + digits).encode() + body


@pytest.mark.parametrize("charset", [b"BINARY", b"ISO-IR 10646 2000 UTF-8"])
def test_pax_hdrcharset(charset):
    data = _pax_member(_record(b"path", b"\xff-not-utf8") + _record(b"hdrcharset", charset) + _record(b"uname", "ü".encode()),
                       tarscan.raw_header(b"c", tarfile.REGTYPE)) + bytes(1024)
    assert_agrees(data)


def test_pax_size_and_bad_numbers():
    data = _pax_member(_record(b"size", b"700") + _record(b"mtime", b"nonsense") + _record(b"uid", b"12"),
                       tarscan.raw_header(b"f", tarfile.REGTYPE, 5), b"y" * 700)
    data += tarscan.raw_header(b"g", tarfile.REGTYPE, 1) + b"z".ljust(512, b"\0") + b"\0" * 1024
    assert_agrees(data)


def test_pax_path_on_a_symlink_and_unknown_keys():
    data = _pax_member(_record(b"path", b"some/where//") + _record(b"linkpath", "tärget".encode())
                       + _record(b"SCHILY.xattr.user.x", b"\xff\x00binary"),
                       tarscan.raw_header(b"l", tarfile.SYMTYPE)) + b"\0" * 1024
    assert_agrees(data)


def test_chained_extension_headers():
    longname = b"L" * 300 + b"/"
    data = tarscan.raw_header(b"././@LongLink", tarfile.GNUTYPE_LONGNAME, len(longname))
    data += longname.ljust(512, b"\0")
    data += _pax_member(_record(b"path", b"from-pax"), tarscan.raw_header(b"x", tarfile.DIRTYPE))
    data += tarscan.raw_header(b"././@LongLink", tarfile.GNUTYPE_LONGNAME, len(longname)) + longname.ljust(512, b"\0")
    data += tarscan.raw_header(b"x/", tarfile.DIRTYPE) + b"\0" * 1024
    assert_agrees(data)


def test_v7_directory_and_prefix_quirks():
    data = tarscan.raw_header(b"old-dir/", tarfile.AREGTYPE) + tarscan.raw_header(b"/", tarfile.DIRTYPE, prefix=b"pre")
    data += tarscan.raw_header(b"x", tarfile.REGTYPE, prefix=b"pre/fix") + b"\0" * 1024
    assert_agrees(data)


def test_no_end_of_archive_blocks():
    assert_agrees(tarscan.raw_header(b"a", tarfile.REGTYPE, 3) + b"abc".ljust(512, b"\0"))
    assert_agrees(tarscan.raw_header(b"d", tarfile.DIRTYPE))


@pytest.mark.parametrize("damage", ["checksum", "truncated header", "truncated data", "empty", "zeros first",
                                    "bad number", "long name at the end", "zero length pax record",
                                    "malformed pax", "global header", "negative size"])
def test_what_it_leaves_to_tarfile(damage):
    good = tar_bytes(tarfile.GNU_FORMAT, [(info("a", size=10), b"A" * 10), (info("b", size=10), b"B" * 10)])
    data = bytearray(good)
    if damage == "checksum":
        data[512 * 2 + 148 : 512 * 2 + 156] = b"garbage!"
    elif damage == "truncated header":
        data = data[: 512 * 2 + 100]
    elif damage == "truncated data":
        data = data[: 512 * 3 + 5]
    elif damage == "empty":
        data = bytearray()
    elif damage == "zeros first":
        data = bytearray(1024)
    elif damage == "bad number":
        header = bytearray(tarscan.raw_header(b"c", tarfile.REGTYPE))
        header[100:108] = b"09999999"
        header[148:156] = b"%06o\0 " % (sum(header[:148]) + sum(header[156:]) + 256)
        data = data[:1024] + header + bytearray(1024)
    elif damage == "long name at the end":
        data = data[:2048] + tarscan.raw_header(b"././@LongLink", tarfile.GNUTYPE_LONGNAME, 3) + b"abc".ljust(512, b"\0") + bytearray(1024)
    elif damage == "zero length pax record":
        data = bytearray(_pax_member(b"0 path=x\n", tarscan.raw_header(b"c", tarfile.REGTYPE)) + bytes(1024))
    elif damage == "malformed pax":
        data = bytearray(_pax_member(b"99 path=x\n", tarscan.raw_header(b"c", tarfile.REGTYPE)) + bytes(1024))
    elif damage == "global header":
        data = bytearray(tarscan.raw_header(b"pax_global_header", tarfile.XGLTYPE, len(_record(b"comment", b"x")))
                         + _record(b"comment", b"x").ljust(512, b"\0") + good)
    elif damage == "negative size":
        header = bytearray(tarscan.raw_header(b"c", tarfile.REGTYPE))
        header[124:136] = b"\xff" * 12
        header[148:156] = b"%06o\0 " % (sum(header[:148]) + sum(header[156:]) + 256)
        data = header + bytearray(1024)
    assert_agrees(bytes(data), supported=False)


def test_sparse_members_are_left_to_tarfile(tmp_path):
    if shutil.which("tar") is None:
        pytest.skip("needs GNU tar")
    sparse = tmp_path / "tree" / "sparse"
    sparse.parent.mkdir()
    with open(str(sparse), "wb") as out:
        out.seek(1 << 20)
        out.write(b"end")
    for fmt in ("gnu", "posix"):
        archive = tmp_path / ("sparse-%s.tar" % fmt)
        subprocess.run(["tar", "--sparse", "--format=" + fmt, "-C", str(tmp_path / "tree"), "-cf", str(archive), "sparse"], check=True)
        assert_agrees(archive.read_bytes(), supported=False)


@pytest.mark.parametrize("fmt", ["gnu", "posix", "ustar", "v7", "oldgnu"])
def test_gnu_tar_archives(tmp_path, fmt):
    if shutil.which("tar") is None:
        pytest.skip("needs GNU tar")
    # v7 holds names of up to 99 bytes and no FIFOs: its tree is what it can hold
    v7 = fmt == "v7"
    tree = tmp_path / "tree"
    deep = tree / "/".join(["level-%02d" % n for n in range(3 if v7 else 8)])
    deep.mkdir(parents=True)
    (deep / ("f" * (40 if v7 else 80))).write_bytes(b"data" * 300)
    (tree / "ünï").write_bytes(b"u")
    os.symlink("level-00/" + "x" * 90, str(tree / "link"))
    os.link(str(tree / "ünï"), str(tree / "hard"))
    if not v7:
        os.mkfifo(str(tree / "fifo"))
    archive = tmp_path / "a.tar"
    subprocess.run(["tar", "--format=" + fmt, "-C", str(tree), "-cf", str(archive), "."], check=True, capture_output=True)
    assert_agrees(archive.read_bytes(), supported=None if fmt == "posix" else True)


_names = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF, blacklist_characters="/\\"), min_size=1, max_size=40)


@given(
    st.lists(st.tuples(st.lists(_names, min_size=1, max_size=6),
                       st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE]),
                       st.integers(0, 1500), st.integers(0, 2 ** 33), st.integers(0, 0o7777)),
             min_size=1, max_size=12),
    st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT]),
)
def test_generated_trees(entries, fmt):
    members = []
    for parts, kind, size, mtime, mode in entries:
        name = "/".join(parts)
        member = info(name, kind, size if kind == tarfile.REGTYPE else 0, mtime=mtime, mode=mode,
                      linkname=parts[0] if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else "")
        members.append((member, b"d" * member.size))
    try:
        data = tar_bytes(fmt, members)
    except ValueError:
        return  # (ustar: a name or number it cannot hold)
    assert_agrees(data)


def _layer_blob(tmp_path, data: bytes, name: str) -> Blob:
    path = tmp_path / name
    path.write_bytes(data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return Blob(name, lambda: open(str(path), "rb"), digest, len(data))


@pytest.mark.parametrize("compress", [False, True], ids=["tar", "tar.gz"])
def test_a_layer_indexes_alike_with_scanner_and_tarfile(tmp_path, compress):
    members = tricky_members()[:6] + [(info("dir/.wh.gone"), b""), (info("dir/.wh..wh..opq"), b""),
                                      (info("dir/kept", size=2), b"kk")]
    data = tar_bytes(tarfile.PAX_FORMAT, members)
    blob = _layer_blob(tmp_path, gzip.compress(data) if compress else data, "layer")
    scanned = oci._index_layer(blob, None, scanner=True)
    read = oci._index_layer(blob, None, scanner=False)
    assert scanned.entries == read.entries
    assert {path: attr.asdict(index) for path, index in scanned.dirs.items()} == \
        {path: attr.asdict(index) for path, index in read.dirs.items()}
    assert (scanned.digest, scanned.diff_id, scanned.root, scanned.root_opaque) == (read.digest, read.diff_id, read.root, read.root_opaque)
    for index in (scanned, read):
        if index.stream is not None:
            index.stream.close()


def test_a_layer_answers_lstat_as_the_mount_answers_from_getinfo(tmp_path):
    """TarLayer.lstat (the mount's getattr without an Info) gives every field the mount
    derives from getinfo, and the mount numbers the entries the same way."""
    from unionfs import OverlayFS
    from unionfs.tools.mount import Operations

    from tests.support.imagetools import tar_entry as E, write_tar

    def special(name, kind, **fields):
        member = info(name, kind, **fields)
        member.mtime, member.mode = 1_600_000_123, 0o640
        return member, None

    base = [E("kept/", kind="dir", mode=0o700, uid=5, gid=6, mtime=1_500_000_000), E("kept/old", b"old"),
            E("shown/", kind="dir", mode=0o750)]
    top = [E("kept/new", b"new data", mode=0o4755, uid=1000, gid=100, mtime=1_700_000_000),  # kept/: implied
           E("fresh/deep/file", b"x" * 1000),  # fresh/ and fresh/deep/: implied, nothing below
           E("shown/link", kind="symlink", target="../kept/new"), E("dir/", kind="dir", mode=0o1777),
           special("dir/fifo", tarfile.FIFOTYPE), special("dir/null", tarfile.CHRTYPE, devmajor=1, devminor=3),
           special("dir/disk", tarfile.BLKTYPE, devmajor=8), special("dir/hard", tarfile.LNKTYPE, linkname="kept/new")]
    tars = [write_tar(str(tmp_path / "base.tar"), base), write_tar(str(tmp_path / "top.tar"), top, "gzip")]
    paths = ["/kept", "/kept/old", "/kept/new", "/fresh", "/fresh/deep", "/fresh/deep/file", "/shown", "/shown/link",
             "/dir", "/dir/fifo", "/dir/null", "/dir/disk", "/dir/hard"]
    with OverlayFS.from_oci(tars) as overlay:
        answered = 0
        by_lstat, by_info = Operations(overlay), Operations(overlay)
        for path in paths:
            st = overlay.lstat(path)
            answered += st is not None
            fast = by_lstat.getattr(path)
            slow = by_info._attributes(path, overlay.getinfo(path, ("details", "access")))
            # (from getinfo, the mount leaves both out: 0 to the kernel, which shows its own
            # block size for a block size of 0)
            for attributes in (fast, slow):
                attributes.setdefault("st_blksize", 4096)
                attributes.setdefault("st_rdev", 0)
            assert fast == slow, path
        assert answered == len(paths) - 2  # all but /kept and /shown: implied, the base layer describes them
        listed = {name: st for name, st in overlay.lstat_listing("/dir")}
        assert set(listed) == {"fifo", "null", "disk", "hard"} and all(st is not None for st in listed.values())


@given(st.integers(0, 0o177777), st.integers(0, 2 ** 32 - 1), st.integers(0, 2 ** 32 - 1), st.integers(0, 2 ** 40),
       st.floats(0, 2 ** 33, allow_nan=False), st.integers(0, 2 ** 31))
def test_a_layer_entrys_stat_is_the_same_in_order_or_by_names(mode, uid, gid, size, mtime, blocks):
    """The 19-field tuple a layer entry's stat is made of (where this platform's layout is
    Linux's) says what the named fields say, every one of them."""
    fast, named = oci._stat_in_order(mode, uid, gid, size, mtime, blocks), oci._stat_by_names(mode, uid, gid, size, mtime, blocks)
    assert tuple(fast) == tuple(named)
    for name in (name for name in dir(named) if name.startswith("st_")):
        assert getattr(fast, name) == getattr(named, name), name


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the 19-field layout is Linux's")
def test_a_layer_entrys_stat_takes_the_quick_way_on_linux():
    assert oci._make_stat is oci._stat_in_order


def test_member_data_is_skipped_in_bounded_reads():
    """A member of 64 MiB is stepped over in reads of at most CHUNK bytes (not one read of
    its size: a layer's file may be gigabytes)."""
    size = 64 << 20
    data = io.BytesIO(tarscan.raw_header(b"big", tarfile.REGTYPE, size) + bytes(size)
                      + tarscan.raw_header(b"small", tarfile.REGTYPE, 1) + b"x".ljust(512, b"\0") + bytes(1024))
    asked: List[int] = []

    def read(count: int) -> bytes:
        asked.append(count)
        return data.read(count)

    assert [member.name for member in tarscan.scan(read)] == ["big", "small"]
    assert max(asked) <= tarscan.CHUNK


def _archive_view(tmp_path, data: bytes, name: str) -> Tuple[Any, ...]:
    """Everything an archive lower shows of ``data``: each path's info in every namespace,
    each file's bytes (a hard link's too), and what was left out."""
    path = tmp_path / name
    path.write_bytes(data)
    with archives.open_archive(str(path), unsafe="skip") as layer:
        shown = {}
        for step in layer.walk.info("/", namespaces=["details", "access", "link"]):
            entry, info_ = step
            contents = layer.readbytes(entry) if info_.is_file and not info_.is_link else None
            shown[entry] = (info_.raw, contents)
        return shown, layer.skipped


@pytest.mark.parametrize("compression", ["", "gz", "bz2", "xz"])
def test_an_archive_lower_indexes_alike_with_scanner_and_tarfile(tmp_path, monkeypatch, compression):
    members = tricky_members() + [(info("hard-to-long", tarfile.LNKTYPE, linkname="p" * 100), b""),
                                  (info("dir/inside", size=4), b"data")]
    data = tar_bytes(tarfile.PAX_FORMAT, members)
    packed = {"": lambda b: b, "gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[compression](data)
    read_by_tarfile = archives._tar_members

    def not_tarfile(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an ordinary archive is read by the scanner")

    monkeypatch.setattr(archives, "_tar_members", not_tarfile)
    scanned = _archive_view(tmp_path, packed, "scanned")
    monkeypatch.setattr(archives, "_tar_members", read_by_tarfile)
    monkeypatch.setattr(tarscan, "ENCODING", "latin-1")  # names the scanner would not decode as UTF-8
    read = _archive_view(tmp_path, packed, "read")
    assert scanned == read
    assert scanned[0]["/after"][1] == b"a" * 513 and scanned[0]["/hard"][1] == b"hello"
    assert scanned[0]["/ünïcödé/名前"][1] == b"abc"


def test_a_damaged_archive_lower_is_refused_as_tarfile_refuses_it(tmp_path):
    data = bytearray(tar_bytes(tarfile.PAX_FORMAT, [(info("a", size=3), b"aaa"), (info("b", size=3), b"bbb")]))
    data[1024 + 148] ^= 0x01  # the second member's checksum
    path = tmp_path / "damaged.tar"
    path.write_bytes(bytes(data))
    with pytest.raises(LayerFormatError, match="damaged.tar is damaged: the header at offset 1024"):
        archives.open_archive(str(path))


def test_an_archive_lower_steps_over_large_data_and_finds_a_truncation(tmp_path):
    big = os.urandom(3 * tarscan.CHUNK + 5)
    data = tar_bytes(tarfile.PAX_FORMAT, [(info("big", size=len(big)), big), (info("after", size=2), b"ok")])
    path = tmp_path / "big.tar"
    path.write_bytes(data)
    reads: List[int] = []
    real_scan = tarscan.scan

    def counting_scan(read: Any, skip_ahead: Any = None) -> Any:
        def counted(size: int) -> bytes:
            piece = read(size)
            reads.append(len(piece))
            return piece
        return real_scan(counted, skip_ahead)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tarscan, "scan", counting_scan)
        with archives.open_archive(str(path)) as layer:
            assert layer.readbytes("/big") == big and layer.readbytes("/after") == b"ok"
    assert sum(reads) < len(big)  # the data was stepped over, not read
    path.write_bytes(data[: 512 + 2 * tarscan.CHUNK])  # cut inside the big member
    with pytest.raises(LayerFormatError, match="truncated"):
        archives.open_archive(str(path))


def test_an_archive_lower_at_an_offset_of_an_open_file(tmp_path):
    data = tar_bytes(tarfile.PAX_FORMAT, [(info("a", size=3), b"aaa"), (info("d/b", size=1), b"b")])
    path = tmp_path / "wrapped"
    path.write_bytes(b"\xff" * 1536 + data)
    with open(str(path), "rb") as handle:
        handle.seek(1536)
        with archives.open_archive(handle) as layer:
            assert (layer.readbytes("/a"), layer.readbytes("/d/b")) == (b"aaa", b"b")
