"""OCI layers as lowers: the image-spec marker rules, image sources, digests, lazy reads."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from typing import List

import pytest
from fs import errors
from fs.memoryfs import MemoryFS

from unionfs import LinkLoop, DigestMismatch, LayerFormatError, OverlayFS
from unionfs.formats.oci.image import host_architecture
from unionfs.testing import trees

from tests.support.imagetools import tar_entry as E, write_tar


def stack(tmp_path, *layers: List, compression: str = "") -> List[str]:
    """Layer tars (base first) with these members."""
    return [write_tar(str(tmp_path / ("l%d.tar" % i)), members, compression) for i, members in enumerate(layers)]


def test_whiteouts_hide_lower_layers_only(tmp_path) -> None:
    tars = stack(
        tmp_path,
        [E("a/", kind="dir"), E("a/x", b"lower x"), E("a/y", b"lower y"), E("b", b"lower b")],
        # the whiteout comes after a same-layer entry of that name: the entry stays
        [E("a/x", b"upper x"), E("a/.wh.x"), E("a/.wh.y"), E(".wh.b")],
    )
    with OverlayFS.from_oci(tars) as overlay:
        assert trees.snapshot(overlay, sidecar=True) == {"/a": "dir", "/a/x": b"upper x"}


def test_a_whited_out_name_recreated_in_the_same_layer_hides_everything_below(tmp_path) -> None:
    tars = stack(
        tmp_path,
        [E("d/", kind="dir"), E("d/old", b"old")],
        [E("d/", kind="dir"), E("d/new", b"new"), E(".wh.d")],
    )
    with OverlayFS.from_oci(tars) as overlay:
        assert overlay.listdir("d") == ["new"]


@pytest.mark.parametrize("marker_first", [True, False])
def test_opaque_marker_hides_lower_children_wherever_it_sits(tmp_path, marker_first) -> None:
    own = [E("o/", kind="dir"), E("o/mine", b"mine")]
    marker = [E("o/.wh..wh..opq")]
    tars = stack(
        tmp_path,
        [E("o/", kind="dir"), E("o/theirs", b"theirs"), E("o/sub/", kind="dir")],
        marker + own if marker_first else own + marker,
    )
    with OverlayFS.from_oci(tars) as overlay:
        assert overlay.listdir("o") == ["mine"]
        assert not overlay.exists("o/.wh..wh..opq")


def test_a_root_opaque_marker_cuts_off_every_layer_below(tmp_path) -> None:
    tars = stack(tmp_path, [E("base", b"b")], [E("mid", b"m")], [E(".wh..wh..opq"), E("top", b"t")])
    with OverlayFS.from_oci(tars) as overlay:
        assert overlay.listdir("/") == ["top"]


def test_markers_are_never_visible_and_aufs_metadata_is_ignored(tmp_path) -> None:
    tars = stack(
        tmp_path,
        [E("d/", kind="dir"), E("d/f", b"f")],
        [E(".wh..wh.plnk/", kind="dir"), E(".wh..wh.plnk/123", b"x"), E(".wh..wh.aufs"), E("d/.wh.nothing")],
    )
    with OverlayFS.from_oci(tars) as overlay:
        assert trees.snapshot(overlay, sidecar=True) == {"/d": "dir", "/d/f": b"f"}


def test_a_bare_whiteout_name_is_rejected(tmp_path) -> None:
    tars = stack(tmp_path, [E("d/", kind="dir"), E("d/.wh.")])
    with pytest.raises(LayerFormatError, match=r"l0\.tar.*invalid whiteout 'd/\.wh\.'"):
        OverlayFS.from_oci(tars)


def test_markers_alone_create_no_directory(tmp_path) -> None:
    # unpacking a whiteout inside a directory that does not exist creates nothing
    tars = stack(tmp_path, [E("f", b"file")], [E("f/.wh.x"), E("ghost/.wh.y"), E("ghost2/.wh..wh..opq")])
    with OverlayFS.from_oci(tars) as overlay:
        assert trees.snapshot(overlay, sidecar=True) == {"/f": b"file"}


def test_an_implied_directory_keeps_the_metadata_below_it(tmp_path) -> None:
    tars = stack(
        tmp_path,
        [E("d/", kind="dir", mode=0o700, uid=7, mtime=1234), E("d/old", b"o")],
        [E("d/new", b"n")],  # no header for d/
    )
    with OverlayFS.from_oci(tars) as overlay:
        info = overlay.getinfo("d", ["access", "details"])
        assert (info.permissions.mode, info.uid, int(info.modified.timestamp())) == (0o700, 7, 1234)
        assert sorted(overlay.listdir("d")) == ["new", "old"]


def test_escaping_member_names_are_rejected(tmp_path) -> None:
    tars = stack(tmp_path, [E("../evil", b"x")])
    with pytest.raises(LayerFormatError, match="escapes the layer root"):
        OverlayFS.from_oci(tars)


def test_gzip_layers_and_reads_in_any_order(tmp_path) -> None:
    members = [E("d/", kind="dir")] + [E("d/f%03d" % i, (b"%03d" % i) * 2000) for i in range(50)]
    tars = stack(tmp_path, members, compression="gzip")
    with OverlayFS.from_oci(tars) as overlay:
        for i in list(range(49, -1, -7)) + list(range(50)):
            assert overlay.readbytes("d/f%03d" % i) == (b"%03d" % i) * 2000
        with overlay.openbin("d/f010") as handle:
            handle.seek(3000)
            assert handle.read(3) == b"010"


def test_zstd_layers_where_python_can_read_them(tmp_path) -> None:
    zstd = pytest.importorskip("zstandard")
    plain = stack(tmp_path, [E("z", b"zstd data")])[0]
    with open(plain, "rb") as source, open(str(tmp_path / "z.tar.zst"), "wb") as out:
        out.write(zstd.ZstdCompressor().compress(source.read()))
    with OverlayFS.from_oci([str(tmp_path / "z.tar.zst")]) as overlay:
        assert overlay.readtext("z") == "zstd data"


def test_writes_go_to_the_upper_and_the_layer_files_stay_unchanged(tmp_path) -> None:
    tars = stack(tmp_path, [E("etc/", kind="dir"), E("etc/conf", b"v1")])
    before = open(tars[0], "rb").read()
    upper = MemoryFS()
    with OverlayFS.from_oci(tars, upper=upper) as overlay:
        overlay.writetext("etc/conf", "v2")
        overlay.remove("etc/conf")
        overlay.makedir("new")
    assert open(tars[0], "rb").read() == before
    with OverlayFS.from_oci(tars, upper=upper) as again:
        assert trees.snapshot(again, sidecar=True) == {"/etc": "dir", "/new": "dir"}


def test_closing_the_overlay_closes_the_layers(tmp_path) -> None:
    tars = stack(tmp_path, [E("f", b"x")])
    overlay = OverlayFS.from_oci(tars)
    layers = [layer.fs for layer in overlay._layers]
    overlay.close()
    assert all(layer.isclosed() for layer in layers)


# -- image layouts and docker save archives ------------------------------------------------------


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def put(layout, data: bytes) -> dict:
    digest = sha256(data)
    path = layout / "blobs" / "sha256" / digest.split(":")[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def make_layout(tmp_path, images: dict, gzip_layers: bool = False):
    """An OCI layout holding ``images`` (ref -> list of layer member lists, base first)."""
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    manifests = []
    for ref, layers in images.items():
        descriptors, diff_ids = [], []
        for i, members in enumerate(layers):
            raw = open(write_tar(str(tmp_path / ("%s-%d.tar" % (ref, i))), members), "rb").read()
            diff_ids.append(sha256(raw))
            blob = gzip.compress(raw, mtime=0) if gzip_layers else raw
            descriptors.append(dict(put(layout, blob), mediaType="application/vnd.oci.image.layer.v1.tar"))
        config = put(layout, json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode())
        manifest = {"schemaVersion": 2, "config": dict(config, mediaType="application/vnd.oci.image.config.v1+json"), "layers": descriptors}
        manifests.append(dict(put(layout, json.dumps(manifest).encode()), mediaType="application/vnd.oci.image.manifest.v1+json",
                              annotations={"org.opencontainers.image.ref.name": ref}))
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": manifests}))
    return layout


IMAGES = {
    "v1": [[E("app/", kind="dir"), E("app/run", b"v1"), E("app/old", b"old")]],
    "v2": [[E("app/", kind="dir"), E("app/run", b"v1"), E("app/old", b"old")], [E("app/run", b"v2"), E("app/.wh.old")]],
}


@pytest.mark.parametrize("gzip_layers", [False, True])
def test_an_image_of_a_layout_is_chosen_by_ref_or_index(tmp_path, gzip_layers) -> None:
    layout = make_layout(tmp_path, IMAGES, gzip_layers)
    with OverlayFS.from_oci(str(layout), ref="v2") as overlay:
        assert trees.snapshot(overlay, sidecar=True) == {"/app": "dir", "/app/run": b"v2"}
    with OverlayFS.from_oci(layout, index=0) as overlay:
        assert trees.snapshot(overlay, sidecar=True) == {"/app": "dir", "/app/run": b"v1", "/app/old": b"old"}
    with pytest.raises(LayerFormatError, match="choose one with ref= or index="):
        OverlayFS.from_oci(str(layout))
    with pytest.raises(LayerFormatError, match="no image matches ref 'v3'.*v1, v2"):
        OverlayFS.from_oci(str(layout), ref="v3")


def corrupt_layer(layout, offset: int) -> str:
    """Flip one byte of the first layer blob of the last manifest; return its path."""
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][-1]["digest"].split(":")[1]
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest).read_text())
    path = layout / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":")[1]
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    return str(path)


def test_a_blob_that_does_not_match_its_digest_is_an_error(tmp_path) -> None:
    layout = make_layout(tmp_path, {"v1": IMAGES["v1"]})
    path = corrupt_layer(layout, 1024)  # the first byte of app/run's data
    with pytest.raises(DigestMismatch, match="%s: digest mismatch" % path):
        OverlayFS.from_oci(str(layout))
    with OverlayFS.from_oci(str(layout), verify=False) as overlay:  # explicitly unchecked
        assert overlay.readtext("app/run") == "w1"


def test_a_damaged_header_is_an_error_even_unverified(tmp_path) -> None:
    layout = make_layout(tmp_path, {"v1": IMAGES["v1"]})
    corrupt_layer(layout, 1536 + 100)  # inside app/old's header: Python's tarfile would just stop there
    with pytest.raises(LayerFormatError, match="damaged tar header after 2 members"):
        OverlayFS.from_oci(str(layout), verify=False)


def test_a_layer_that_does_not_match_its_diff_id_is_an_error(tmp_path) -> None:
    layout = make_layout(tmp_path, {"v1": IMAGES["v1"]})
    index = json.loads((layout / "index.json").read_text())
    manifest_path = layout / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads(manifest_path.read_text())
    config_path = layout / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]
    config = json.loads(config_path.read_text())
    config["rootfs"]["diff_ids"] = [sha256(b"something else")]
    manifest["config"] = dict(manifest["config"], **put(layout, json.dumps(config).encode()))
    index["manifests"][0].update(put(layout, json.dumps(manifest).encode()))
    (layout / "index.json").write_text(json.dumps(index))
    with pytest.raises(DigestMismatch, match="diff_id mismatch"):
        OverlayFS.from_oci(str(layout))


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_an_uncompressed_layer_checks_its_digest_and_its_diff_id(tmp_path, algorithm) -> None:
    """An uncompressed layer is its tar, hashed once where its digest is SHA-256 (as its diff_id
    always is), twice otherwise; either way both are checked."""
    from unionfs.formats.oci import oci
    from unionfs.formats.oci.blobs import Blob

    raw = open(write_tar(str(tmp_path / "layer.tar"), IMAGES["v1"][0]), "rb").read()
    digest = algorithm + ":" + hashlib.new(algorithm, raw).hexdigest()
    blob = Blob("layer.tar", lambda: io.BytesIO(raw), digest, len(raw))
    index = oci.index_layer(blob, sha256(raw))
    assert (index.digest, index.diff_id) == (digest, sha256(raw))
    assert sorted(index.entries) == ["/app", "/app/old", "/app/run"]
    with pytest.raises(DigestMismatch, match="layer.tar: diff_id mismatch"):
        oci.index_layer(blob, sha256(raw + b"x"))
    with pytest.raises(DigestMismatch, match="layer.tar: digest mismatch"):
        oci.index_layer(Blob("layer.tar", lambda: io.BytesIO(raw), digest[:-4] + "0000", len(raw)), sha256(raw))


def test_a_tarred_layout_is_read_in_place(tmp_path) -> None:
    layout = make_layout(tmp_path, IMAGES)
    archive = str(tmp_path / "image.tar")
    with tarfile.open(archive, "w") as out:
        for name in sorted(os.listdir(layout)):
            out.add(str(layout / name), arcname=name)
    with OverlayFS.from_oci(archive, ref="v2") as overlay:
        assert trees.snapshot(overlay, sidecar=True) == {"/app": "dir", "/app/run": b"v2"}


def test_a_legacy_docker_save_archive(tmp_path) -> None:
    layers = IMAGES["v2"]
    archive = str(tmp_path / "saved.tar")
    entries = []
    names, diff_ids = [], []
    for i, members in enumerate(layers):
        raw = open(write_tar(str(tmp_path / ("d%d.tar" % i)), members), "rb").read()
        names.append("layer%d/layer.tar" % i)
        diff_ids.append(sha256(raw))
        entries.append((names[-1], raw))
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    entries.append(("cfg.json", config))
    entries.append(("manifest.json", json.dumps([{"Config": "cfg.json", "RepoTags": ["app:2"], "Layers": names}]).encode()))
    with tarfile.open(archive, "w") as out:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    with OverlayFS.from_oci(archive, ref="app:2") as overlay:
        assert trees.snapshot(overlay, sidecar=True) == {"/app": "dir", "/app/run": b"v2"}
    with OverlayFS.from_oci(archive) as overlay:  # the only image
        assert overlay.readtext("app/run") == "v2"


def test_missing_sources_are_clear_errors(tmp_path) -> None:
    with pytest.raises(LayerFormatError, match="nothing.tar does not exist"):
        OverlayFS.from_oci([str(tmp_path / "nothing.tar")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayerFormatError, match="neither an OCI image layout nor a docker save archive"):
        OverlayFS.from_oci(str(tmp_path / "empty"))
    layer = write_tar(str(tmp_path / "layer.tar"), [E("f", b"x")])
    with pytest.raises(LayerFormatError, match=r"layer tars are given as a list, base first: from_oci\(\['.*layer.tar'\]\)"):
        OverlayFS.from_oci(layer)


def test_hard_links_read_their_target(tmp_path) -> None:
    link = tarfile.TarInfo("d/hard")
    link.type = tarfile.LNKTYPE
    link.linkname = "d/data"
    tars = stack(tmp_path, [E("d/", kind="dir"), E("d/data", b"shared bytes"), (link, None)])
    with OverlayFS.from_oci(tars) as overlay:
        assert overlay.readbytes("d/hard") == b"shared bytes"
        assert overlay.getinfo("d/hard", ["details"]).size == len(b"shared bytes")
    dangling = [write_tar(str(tmp_path / "dangling.tar"), [E("d/", kind="dir"), (link, None)])]
    with pytest.raises(LayerFormatError, match="hard link '/d/hard' points to '/d/data'"):
        OverlayFS.from_oci(dangling)


def test_nested_indexes_and_containerd_names(tmp_path) -> None:
    layout = make_layout(tmp_path, {"v2": IMAGES["v2"]})
    index = json.loads((layout / "index.json").read_text())
    image = index["manifests"][0]
    other = dict(image, platform={"os": "linux", "architecture": "riscv-imaginary"})
    ours = dict(image, platform={"os": "linux", "architecture": host_architecture()})
    nested = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [other, ours]}
    descriptor = dict(put(layout, json.dumps(nested).encode()), mediaType="application/vnd.oci.image.index.v1+json",
                      annotations={"io.containerd.image.name": "docker.io/library/app:2"})
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))
    with OverlayFS.from_oci(str(layout), ref="library/app:2") as overlay:
        assert overlay.readtext("app/run") == "v2"
    nested["manifests"] = [other]
    descriptor.update(put(layout, json.dumps(nested).encode()))
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))
    with pytest.raises(LayerFormatError, match="no manifest for linux/%s" % host_architecture()):
        OverlayFS.from_oci(str(layout))


def test_a_compressed_outer_archive_is_refused_clearly(tmp_path) -> None:
    layout = make_layout(tmp_path, IMAGES)
    archive = str(tmp_path / "image.tar.gz")
    with tarfile.open(archive, "w:gz") as out:
        out.add(str(layout), arcname=".")
    with pytest.raises(LayerFormatError, match="image.tar.gz is compressed: an image archive must be a plain tar"):
        OverlayFS.from_oci(archive)


def test_symlinks_read_through_to_files_of_the_image(tmp_path) -> None:
    tars = stack(
        tmp_path,
        [E("usr/", kind="dir"), E("usr/lib/", kind="dir"), E("usr/lib/os-release", b"ID=test"),
         E("etc/", kind="dir"), E("etc/os-release", kind="symlink", target="../usr/lib/os-release")],
        [E("etc/", kind="dir"), E("etc/alias", kind="symlink", target="/etc/os-release"),
         E("etc/up", kind="symlink", target="../../../usr/lib/os-release"), E("etc/dangling", kind="symlink", target="nowhere"),
         E("etc/loop", kind="symlink", target="loop")],
    )
    with OverlayFS.from_oci(tars) as overlay:
        assert overlay.readtext("etc/os-release") == "ID=test"
        assert overlay.readtext("etc/alias") == "ID=test"  # absolute, through a link of the layer below
        assert overlay.readtext("etc/up") == "ID=test"  # '..' stops at the image root
        info = overlay.getinfo("etc/alias", ["link", "details"])
        assert info.target == "/etc/os-release" and info.is_link
        with pytest.raises(errors.ResourceNotFound):
            overlay.readtext("etc/dangling")
        with pytest.raises(LinkLoop):  # ELOOP after 40 hops, naming the caller's path
            overlay.readtext("etc/loop")
        assert sorted(overlay.listdir("etc")) == ["alias", "dangling", "loop", "os-release", "up"]
        assert overlay.readlink("etc/loop") == "loop" and overlay.islink("etc/dangling")


def test_the_root_without_a_header_has_default_or_lower_metadata(tmp_path) -> None:
    tars = stack(tmp_path, [E("./", kind="dir", mode=0o700, mtime=77), E("f", b"x")], [E("g", b"y")])
    with OverlayFS.from_oci(tars[1:]) as alone:
        assert alone.getinfo("/", ["access"]).permissions.mode == 0o755
    with OverlayFS.from_oci(tars) as overlay:
        info = overlay.getinfo("/", ["access", "details"])
        assert (info.name, info.permissions.mode, int(info.modified.timestamp())) == ("", 0o700, 77)


def test_a_descriptor_size_that_does_not_match_is_an_error(tmp_path) -> None:
    layout = make_layout(tmp_path, {"v1": IMAGES["v1"]})
    index = json.loads((layout / "index.json").read_text())
    manifest_path = layout / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads(manifest_path.read_text())
    manifest["layers"][0]["size"] += 1
    index["manifests"][0].update(put(layout, json.dumps(manifest).encode()))
    (layout / "index.json").write_text(json.dumps(index))
    with pytest.raises(DigestMismatch, match="size mismatch: the descriptor says"):
        OverlayFS.from_oci(str(layout))
    with OverlayFS.from_oci(str(layout), verify=False) as overlay:
        assert overlay.readtext("app/run") == "v1"


def test_a_docker_save_archive_naming_layers_through_symlinks(tmp_path) -> None:
    raw = open(write_tar(str(tmp_path / "d.tar"), IMAGES["v1"][0]), "rb").read()
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [sha256(raw)]}}).encode()
    manifest = json.dumps([{"Config": "c.json", "RepoTags": ["app:1"], "Layers": ["abc/layer.tar"]}]).encode()
    archive = str(tmp_path / "saved.tar")
    with tarfile.open(archive, "w") as out:
        for name, data in (("0123.tar", raw), ("c.json", config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("abc/layer.tar")
        link.type, link.linkname = tarfile.SYMTYPE, "../0123.tar"
        out.addfile(link)
    with OverlayFS.from_oci(archive) as overlay:
        assert overlay.readtext("app/run") == "v1"


def test_a_marker_only_directory_under_an_opaque_one_is_gone(tmp_path) -> None:
    # found by the umoci oracle: the opaque marker of a/ hides the lower a/c, and a marker
    # inside a/c does not bring it back
    tars = stack(tmp_path, [E("a/", kind="dir"), E("a/c/", kind="dir")], [E("a/c/.wh.f"), E("a/.wh..wh..opq"), E("a/", kind="dir")])
    with OverlayFS.from_oci(tars) as overlay:
        assert overlay.listdir("a") == []
