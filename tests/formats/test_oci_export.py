"""Exporting the upper as an OCI layer: content, marker styles, reproducibility, layouts."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import json
import tarfile

import pytest
from fs import errors
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS

from unionfs import OverlayFS
from unionfs.formats.oci.blobs import LayerFormatError

from tests.support.imagetools import snapshot_fs, tar_entry as E, write_tar
from tests.formats.test_oci_read import make_layout


def base_tar(tmp_path) -> str:
    return write_tar(str(tmp_path / "base.tar"), [
        E("etc/", kind="dir"), E("etc/passwd", b"root"), E("etc/group", b"g"),
        E("opq/", kind="dir"), E("opq/a", b"a"), E("opq/b/", kind="dir"), E("opq/b/c", b"c"),
        E("var/", kind="dir"), E("var/tmp/", kind="dir"), E("var/tmp/t", b"t"),
    ])


@pytest.fixture
def base(tmp_path, guard_lower) -> str:
    """The base layer tar, in a directory guarded against any change."""
    (tmp_path / "lowers").mkdir()
    path = base_tar(tmp_path / "lowers")
    guard_lower(OSFS(str(tmp_path / "lowers")))
    return path


def make_changes(overlay: OverlayFS) -> None:
    overlay.remove("etc/passwd")
    overlay.writetext("etc/new", "new")
    overlay.removetree("opq")
    overlay.makedir("opq")
    overlay.writetext("opq/a", "again")
    overlay.makedirs("deep/er/dir")
    overlay.writetext("var/tmp/t", "changed")


def members(data: bytes) -> list:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return [(m.name, m.type, m.uname, m.gname, m.mtime) for m in archive]


def test_the_layer_holds_the_changes_in_order_with_parents_and_markers(tmp_path, base) -> None:
    with OverlayFS.from_oci([base], upper=MemoryFS()) as overlay:
        make_changes(overlay)
        out = io.BytesIO()
        overlay.export_layer(out, mtime=1000)
    assert [m[:2] for m in members(out.getvalue())] == [
        ("deep", tarfile.DIRTYPE), ("deep/er", tarfile.DIRTYPE), ("deep/er/dir", tarfile.DIRTYPE),
        ("etc", tarfile.DIRTYPE), ("etc/.wh.passwd", tarfile.REGTYPE), ("etc/new", tarfile.REGTYPE),
        ("opq", tarfile.DIRTYPE), ("opq/.wh..wh..opq", tarfile.REGTYPE), ("opq/a", tarfile.REGTYPE),
        ("var", tarfile.DIRTYPE), ("var/tmp", tarfile.DIRTYPE), ("var/tmp/t", tarfile.REGTYPE),
    ]
    assert {(m[2], m[3], m[4]) for m in members(out.getvalue())} == {("", "", 1000)}  # numeric owners, fixed time


def test_opaque_directories_as_explicit_whiteouts(tmp_path, base) -> None:
    with OverlayFS.from_oci([base], upper=MemoryFS()) as overlay:
        make_changes(overlay)
        out = io.BytesIO()
        overlay.export_layer(out, opaque="whiteouts")
    names = [m[0] for m in members(out.getvalue()) if m[0].startswith("opq")]
    # every name the lowers have there, the re-created one too: a whiteout never hides its own layer
    assert names == ["opq", "opq/.wh.a", "opq/.wh.b", "opq/a"]


@pytest.mark.parametrize("opaque", ["marker", "whiteouts"])
@pytest.mark.parametrize("compress", [False, True])
def test_the_exported_layer_over_the_same_lowers_gives_the_same_view(tmp_path, base, opaque, compress) -> None:
    with OverlayFS.from_oci([base], upper=MemoryFS()) as overlay:
        make_changes(overlay)
        view = snapshot_fs(overlay, with_times=False)
        exported = overlay.export_layer(str(tmp_path / "layer"), opaque=opaque, gzip=compress)
    data = (tmp_path / "layer").read_bytes()
    assert exported.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert exported.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(data) if compress else data).hexdigest()
    assert exported.size == len(data)
    with OverlayFS.from_oci([base, str(tmp_path / "layer")]) as stacked:
        # an upper MemoryFS has no modes or owners, so the exported entries get 0644/0755 root
        assert {p: e[0] for p, e in snapshot_fs(stacked, with_times=False).items()} == {p: e[0] for p, e in view.items()}


@pytest.mark.parametrize("compress", [False, True])
def test_layers_are_reproducible_byte_for_byte(tmp_path, base, compress) -> None:
    outputs = []
    for attempt in range(2):
        with OverlayFS.from_oci([base], upper=MemoryFS()) as overlay:
            make_changes(overlay)
            overlay.settimes("etc/new", modified=datetime.datetime(2000 + attempt, 1, 1))  # times differ
            out = io.BytesIO()
            outputs.append((overlay.export_layer(out, gzip=compress, mtime=0), out.getvalue()))
            again = io.BytesIO()
            overlay.export_layer(again, gzip=compress, mtime=0)
            assert again.getvalue() == out.getvalue()
    assert outputs[0] == outputs[1]


def test_a_read_only_overlay_has_nothing_to_export(tmp_path, base) -> None:
    with OverlayFS.from_oci([base]) as overlay:
        with pytest.raises(errors.ResourceReadOnly):
            overlay.export_layer(io.BytesIO())
        with pytest.raises(errors.ResourceReadOnly):
            overlay.export_kernel(str(tmp_path / "k"))


def test_bad_arguments(tmp_path, base) -> None:
    with OverlayFS.from_oci([base], upper=MemoryFS()) as overlay:
        with pytest.raises(ValueError, match="opaque must be one of"):
            overlay.export_layer(io.BytesIO(), opaque="nope")
        with pytest.raises(ValueError, match="layout= and ref= go together"):
            overlay.export_layer(io.BytesIO(), layout=str(tmp_path))


def test_appending_to_a_layout_makes_a_new_image_and_keeps_the_old(tmp_path) -> None:
    layout = make_layout(tmp_path, {"v1": [[E("app/", kind="dir"), E("app/run", b"v1"), E("app/old", b"old")]]}, gzip_layers=True)
    with OverlayFS.from_oci(str(layout), ref="v1", upper=MemoryFS()) as overlay:
        overlay.writetext("app/run", "v2")
        overlay.remove("app/old")
        first = overlay.export_layer(layout=str(layout), ref="v2", base_ref="v1", gzip=True, mtime=0)
        second = overlay.export_layer(layout=str(layout), ref="v2", base_ref="v1", gzip=True, mtime=0)
    assert first == second  # same layer, same image: the ref is replaced, not duplicated
    index = json.loads((layout / "index.json").read_text())
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == ["v1", "v2"]
    with OverlayFS.from_oci(str(layout), ref="v2") as v2:
        assert v2.listdir("app") == ["run"] and v2.readtext("app/run") == "v2"
    with OverlayFS.from_oci(str(layout), ref="v1") as v1:
        assert sorted(v1.listdir("app")) == ["old", "run"]
    (tmp_path / "empty").mkdir()
    with OverlayFS.from_oci(str(layout), ref="v1", upper=MemoryFS()) as overlay:
        with pytest.raises(LayerFormatError, match="empty is not an OCI image layout"):
            overlay.export_layer(layout=str(tmp_path / "empty"), ref="x")
    assert list((tmp_path / "empty").iterdir()) == []


def test_special_files_in_the_upper_are_refused_by_name(tmp_path, base) -> None:
    import os

    os.makedirs(str(tmp_path / "upper" / "run"))
    os.mkfifo(str(tmp_path / "upper" / "run" / "pipe"))  # an upper directory made by other tools
    with OverlayFS.from_oci([base], upper=OSFS(str(tmp_path / "upper"))) as overlay:
        with pytest.raises(errors.Unsupported, match="cannot export /run/pipe: a fifo"):
            overlay.export_layer(io.BytesIO())


def test_names_that_read_as_markers_cannot_be_exported(tmp_path, base) -> None:
    with OverlayFS.from_oci([base], upper=MemoryFS()) as overlay:
        overlay.writetext("etc/.wh.sneaky", "not a whiteout")
        with pytest.raises(errors.Unsupported, match="cannot export /etc/.wh.sneaky"):
            overlay.export_layer(io.BytesIO())


@pytest.mark.parametrize("opaque", ["marker", "whiteouts"])
def test_redirected_directories_and_metadata_only_files_export_in_full(tmp_path, base, opaque) -> None:
    """OCI layers have no redirects: a directory renamed through the overlay is written as an
    opaque directory with its whole merged tree, a metadata-only file with its lower data."""
    with OverlayFS.from_oci([base], upper=MemoryFS()) as overlay:
        overlay.movedir("opq", "moved", create=True)  # redirected
        overlay.remove("moved/a")  # a whiteout inside the renamed tree
        overlay.movedir("var", "etc/var", create=True)  # redirected, with a subdirectory
        overlay.setinfo("etc/group", {"details": {"modified": 1000}})  # metadata only
        overlay.move("etc/var/tmp/t", "t-moved")  # a moved metadata-only file
        view = snapshot_fs(overlay, with_times=False)
        exported = io.BytesIO()
        overlay.export_layer(exported, opaque=opaque)
    names = [m[0] for m in members(exported.getvalue())]
    assert "moved/b/c" in names and "etc/var/tmp" in names and "moved/a" not in names, names
    (tmp_path / "layer").write_bytes(exported.getvalue())
    with OverlayFS.from_oci([base, str(tmp_path / "layer")]) as stacked:
        assert {p: e[0] for p, e in snapshot_fs(stacked, with_times=False).items()} == {p: e[0] for p, e in view.items()}
        assert stacked.readbytes("t-moved") == b"t" and stacked.readbytes("etc/group") == b"g"
