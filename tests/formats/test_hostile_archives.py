"""Issue 10, item 13: hostile and damaged archive and image input gets a clear error naming
the archive, never a silent partial view, a raw standard-library exception, a read outside
the image, or unbounded work."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import zipfile

import pytest

from fs.memoryfs import MemoryFS

from unionfs import OverlayFS
from unionfs.formats import archives
from unionfs.formats.archives import ArchiveLimits, ArchiveTooLarge, open_archive
from unionfs.formats.oci.blobs import LayerFormatError


def _tar_bytes(members, fmt=tarfile.GNU_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _write(path, data: bytes) -> str:
    with open(str(path), "wb") as handle:
        handle.write(data)
    return str(path)


# -- damaged tar headers -------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True], ids=["tar", "tar.gz"])
def test_damaged_second_tar_header_is_an_error_not_a_short_listing(tmp_path, compress):
    data = bytearray(_tar_bytes([("a", b"A" * 10), ("b", b"B" * 10), ("c", b"C")]))
    data[1024 + 148 : 1024 + 156] = b"garbage!"  # the second header's checksum
    name = "damaged.tar.gz" if compress else "damaged.tar"
    path = _write(tmp_path / name, gzip.compress(bytes(data)) if compress else bytes(data))
    with pytest.raises(LayerFormatError, match="damaged") as raised:
        OverlayFS(path)
    assert name in str(raised.value)


def test_truncated_tar_member_is_an_error(tmp_path):
    data = _tar_bytes([("a", b"A" * 10), ("b", b"B" * 5000)])
    path = _write(tmp_path / "cut.tar", data[: 1024 + 512 + 100])  # into b's data
    with pytest.raises(LayerFormatError, match="truncated") as raised:
        OverlayFS(path)
    assert "cut.tar" in str(raised.value)


def test_intact_tars_still_open(tmp_path):
    plain = _tar_bytes([("a", b"A"), ("d/b", b"B")])
    no_end_blocks = plain[: 4 * 512]  # ends after the last member, without the zero blocks
    for name, data in [("ok.tar", plain), ("ok.tar.gz", gzip.compress(plain)), ("short.tar", no_end_blocks)]:
        with OverlayFS(_write(tmp_path / name, data)) as overlay:
            assert overlay.readtext("d/b") == "B"


# -- zip members with a bad CRC ------------------------------------------------------------------


def test_zip_member_with_a_bad_crc_is_a_clear_error_and_leaves_no_staging_file(tmp_path):
    path = str(tmp_path / "crc.zip")
    with zipfile.ZipFile(path, "w") as handle:  # stored: the data is in the file as it is
        handle.writestr("f.txt", "hello world" * 100)
    data = bytearray(open(path, "rb").read())
    at = data.find(b"hello")
    data[at] = ord("j")
    _write(path, bytes(data))
    upper = MemoryFS()
    overlay = OverlayFS(path, upper=upper)
    with pytest.raises(LayerFormatError, match="crc.zip") as raised:
        overlay.readbytes("f.txt")
    assert "f.txt" in str(raised.value)
    with pytest.raises(LayerFormatError, match="crc.zip"):
        overlay.appendtext("f.txt", "more")  # the copy-up reads the damaged member
    assert upper.listdir("/.unionfs/tmp") == []
    assert not upper.exists("f.txt")


# -- sparse members --------------------------------------------------------------------------------


def _pax_sparse_tar(size: int) -> bytes:
    """A PAX sparse 1.0 member declaring ``size`` bytes, of which 512 are stored."""
    info = tarfile.TarInfo("GNUSparseFile.0/big")
    info.size = 512
    info.pax_headers = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": "big",
        "GNU.sparse.realsize": str(size),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(info, io.BytesIO(b"1\n0\n512\n".ljust(512, b"\0")))
    return buffer.getvalue()


def test_pax_sparse_member_of_a_pebibyte_is_refused_by_the_archive_reader(tmp_path):
    path = _write(tmp_path / "sparse.tar", _pax_sparse_tar(2**50))
    assert os.path.getsize(path) <= 10 * 1024
    with pytest.raises(LayerFormatError, match="sparse") as raised:
        OverlayFS(path, upper=MemoryFS())
    assert "sparse.tar" in str(raised.value)


def test_pax_sparse_member_is_refused_by_the_oci_reader(tmp_path):
    path = _write(tmp_path / "layer.tar", _pax_sparse_tar(2**30))
    with pytest.raises(LayerFormatError, match="sparse"):
        OverlayFS.from_oci([path], upper=MemoryFS())


# -- limits: compression bombs and member counts --------------------------------------------------


def test_gzip_bomb_is_refused_from_its_header_before_decompressing(tmp_path):
    # the header declares 4 GiB; the stream holds 1 MiB of it: decompressing would end in
    # "truncated", so ArchiveTooLarge proves the header alone decided
    header = tarfile.TarInfo("zeros")
    header.size = 4 * 2**30
    path = _write(tmp_path / "bomb.tar.gz", gzip.compress(header.tobuf(tarfile.GNU_FORMAT) + b"\0" * 2**20))
    with pytest.raises(ArchiveTooLarge, match="max_ratio") as raised:
        OverlayFS(path)
    assert "bomb.tar.gz" in str(raised.value) and "--max-ratio" in str(raised.value)


def test_a_real_gzip_bomb_is_refused_and_the_limit_can_be_raised(tmp_path):
    data = gzip.compress(_tar_bytes([("zeros", b"\0" * (64 * 2**20))]), compresslevel=9)
    path = _write(tmp_path / "zeros.tar.gz", data)
    with pytest.raises(ArchiveTooLarge):
        open_archive(path)
    with open_archive(path, limits=ArchiveLimits(max_ratio=None)) as layer:
        assert layer.getinfo("zeros", ["details"]).size == 64 * 2**20


def test_zip_bomb_is_refused_from_its_directory(tmp_path):
    path = str(tmp_path / "bomb.zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("zeros", b"\0" * (64 * 2**20))
    with pytest.raises(ArchiveTooLarge, match="bomb.zip"):
        open_archive(path)


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_member_count_limit(tmp_path, fmt, monkeypatch):
    members = [("m%03d" % number, b"x") for number in range(50)]
    if fmt == "tar":
        path = _write(tmp_path / "many.tar", _tar_bytes(members))
    else:
        path = str(tmp_path / "many.zip")
        with zipfile.ZipFile(path, "w") as handle:
            for name, data in members:
                handle.writestr(name, data)
    with pytest.raises(ArchiveTooLarge, match="max_members") as raised:
        open_archive(path, limits=ArchiveLimits(max_members=10))
    assert "many." + fmt in str(raised.value)
    assert len(open_archive(path, limits=ArchiveLimits(max_members=50)).listdir("/")) == 50
    monkeypatch.setattr(archives, "DEFAULT_LIMITS", ArchiveLimits(max_members=10))
    with pytest.raises(ArchiveTooLarge):
        OverlayFS(path)  # the default applies to lowers given as paths too


def test_cli_limit_flags(tmp_path, capsys):
    from unionfs.tools.cli import main

    path = _write(tmp_path / "many.tar", _tar_bytes([("m%d" % number, b"x") for number in range(20)]))
    try:
        assert main(["list", "-l", path, "--max-members", "5"]) == 1
        assert "max_members" in capsys.readouterr().err
        assert main(["list", "-l", path, "--max-members", "0"]) == 0
    finally:
        archives.DEFAULT_LIMITS = ArchiveLimits()


# -- OCI images --------------------------------------------------------------------------------------


def _docker_save_with_outside_layer(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    layer = _write(outside / "evil.tar", _tar_bytes([("secret", b"outside the image")]))
    image = tmp_path / "image"
    image.mkdir()
    diff_id = "sha256:" + hashlib.sha256(open(layer, "rb").read()).hexdigest()
    (image / "config.json").write_text(json.dumps({"rootfs": {"type": "layers", "diff_ids": [diff_id]}}))
    manifest = [{"Config": "config.json", "RepoTags": ["x:1"], "Layers": ["../outside/evil.tar"]}]
    (image / "manifest.json").write_text(json.dumps(manifest))
    return str(image)


@pytest.mark.parametrize("verify", [True, False])
def test_docker_save_layer_outside_the_image_is_refused(tmp_path, verify):
    image = _docker_save_with_outside_layer(tmp_path)
    with pytest.raises(LayerFormatError, match="outside the image"):
        OverlayFS.from_oci(image, verify=verify)


def _layout(tmp_path, index) -> str:
    root = tmp_path / "layout"
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (root / "index.json").write_text(json.dumps(index))
    return str(root)


def test_digest_that_is_a_path_is_refused_even_without_verify(tmp_path):
    _write(tmp_path / "x", b"{}")
    descriptor = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:../../../x", "size": 2}
    layout = _layout(tmp_path, {"schemaVersion": 2, "manifests": [descriptor]})
    with pytest.raises(LayerFormatError, match="malformed digest"):
        OverlayFS.from_oci(layout, verify=False)


@pytest.mark.parametrize("index", [{"manifests": 5}, [1, 2], {"manifests": [{"digest": 5}]}, "text"])
def test_ill_typed_index_json_is_a_layer_format_error(tmp_path, index):
    with pytest.raises(LayerFormatError, match="index.json|digest"):
        OverlayFS.from_oci(_layout(tmp_path, index), verify=False)


@pytest.mark.parametrize("manifest", [{"a": 1}, [{"Config": 5, "Layers": []}], [{"Config": "c.json", "Layers": 5}]])
def test_ill_typed_docker_manifest_is_a_layer_format_error(tmp_path, manifest):
    image = tmp_path / "image"
    image.mkdir()
    (image / "c.json").write_text(json.dumps({"rootfs": {"diff_ids": []}}))
    (image / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(LayerFormatError):
        OverlayFS.from_oci(str(image), verify=False)
