"""unionfs against an independent implementation of OCI layers: umoci.

Forward: images built by umoci (``repack`` of real deletions) and hand-made layers with
every marker rule (added verbatim by ``umoci raw add-layer``) give the root filesystem
``umoci unpack`` produces. Reverse: a layer exported by unionfs, added to the image by
unionfs itself or by ``umoci raw add-layer``, unpacks to exactly unionfs's merged view.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from typing import Dict, List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from fs.osfs import OSFS

from unionfs import OverlayFS

from tests.support.imagetools import (
    add_layer,
    new_layout,
    require_skopeo,
    require_umoci,
    skopeo_copy,
    snapshot_dir,
    snapshot_fs,
    tar_entry,
    umoci,
    unpack,
    write_tar,
)

CI = os.environ.get("HYPOTHESIS_PROFILE") == "ci"


@pytest.fixture
def layout(tmp_path) -> str:
    require_umoci()
    return new_layout(str(tmp_path / "image"))


def assert_same_tree(expected: Dict, actual: Dict) -> None:
    differences = {path: (expected.get(path), actual.get(path)) for path in set(expected) | set(actual) if expected.get(path) != actual.get(path)}
    assert not differences, "umoci vs unionfs: %r" % differences


def without_dir_times(tree: Dict) -> Dict:
    return {path: entry[:3] if entry[0] == "dir" else entry for path, entry in tree.items()}


def repack(layout: str, tmp_path, change) -> None:
    """A real umoci layer: unpack, change the root filesystem, repack."""
    bundle = str(tmp_path / ("bundle-%s" % change.__name__))
    rootfs = unpack(layout, "base", bundle)
    change(rootfs)
    umoci("repack", "--image", layout + ":base", bundle)
    shutil.rmtree(bundle)


def populate(rootfs: str) -> None:
    for directory in ("etc/conf.d", "usr/lib/mod", "var/cache", "opt/app"):
        os.makedirs(os.path.join(rootfs, directory))
    for path, data in {"etc/passwd": "root:x:0:0", "etc/conf.d/a": "a", "usr/lib/mod/m.so": "elf" * 999,
                       "var/cache/c1": "c1", "opt/app/bin": "app", "top": "top"}.items():
        with open(os.path.join(rootfs, path), "w") as out:
            out.write(data)
    os.chmod(os.path.join(rootfs, "usr/lib/mod"), 0o700)
    os.chown(os.path.join(rootfs, "opt/app/bin"), 1000, 100)
    os.symlink("../etc/passwd", os.path.join(rootfs, "opt/passwd-link"))
    os.symlink("../usr/lib", os.path.join(rootfs, "opt/lib-link"))  # a symlink to a directory
    os.link(os.path.join(rootfs, "etc/passwd"), os.path.join(rootfs, "opt/hard"))  # umoci writes a hard link


def delete_things(rootfs: str) -> None:
    os.remove(os.path.join(rootfs, "etc/conf.d/a"))
    shutil.rmtree(os.path.join(rootfs, "var/cache"))
    shutil.rmtree(os.path.join(rootfs, "opt/app"))
    with open(os.path.join(rootfs, "opt/app"), "w") as out:  # a directory became a file
        out.write("now a file")
    os.remove(os.path.join(rootfs, "top"))
    os.makedirs(os.path.join(rootfs, "top/inside"))  # a file became a directory


def test_an_image_umoci_built_with_deletions_and_opaque_dirs(layout, tmp_path) -> None:
    repack(layout, tmp_path, populate)
    repack(layout, tmp_path, delete_things)
    markers = write_tar(str(tmp_path / "markers.tar"), [
        tar_entry("usr/", kind="dir"), tar_entry("usr/lib/", kind="dir", mode=0o750),
        tar_entry("usr/lib/new", b"new"), tar_entry("usr/lib/.wh..wh..opq"),  # opaque marker after its sibling
        tar_entry("etc/.wh..wh..opq"), tar_entry("etc/conf.d/", kind="dir"), tar_entry("etc/conf.d/b", b"b"),
        tar_entry("etc/.wh.conf.d"),  # whiteout after the same-layer entry: hides only the layers below
        tar_entry("var/.wh.nothing-there"), tar_entry("ghost/.wh.x"),
    ])
    add_layer(layout, "base", markers)
    expected = snapshot_dir(unpack(layout, "base", str(tmp_path / "final")))
    with OverlayFS.from_oci(layout, ref="base") as overlay:
        assert_same_tree(expected, snapshot_fs(overlay))
        assert overlay.listdir("etc") == ["conf.d"] and overlay.listdir("etc/conf.d") == ["b"]
        assert overlay.readtext("opt/hard") == "root:x:0:0"  # its target is hidden by now, its data is not


@pytest.mark.parametrize("transport", ["docker-archive", "oci-archive"])
def test_archives_written_by_skopeo(layout, tmp_path, transport) -> None:
    """``docker save``'s format and a tarred layout, as an independent tool writes them."""
    require_skopeo()
    repack(layout, tmp_path, populate)
    repack(layout, tmp_path, delete_things)
    add_layer(layout, "base", write_tar(str(tmp_path / "opaque.tar"), [tar_entry("usr/", kind="dir"), tar_entry("usr/.wh..wh..opq")]))
    expected = snapshot_dir(unpack(layout, "base", str(tmp_path / "bundle")))
    archive = str(tmp_path / "saved.tar")
    skopeo_copy("oci:%s:base" % layout, "%s:%s:example.org/app:1" % (transport, archive))
    with OverlayFS.from_oci(archive, ref="app:1" if transport == "docker-archive" else None) as overlay:
        assert_same_tree(expected, snapshot_fs(overlay))


# -- random layer stacks --------------------------------------------------------------------------

PATHS = ["a", "a/f", "a/c", "a/c/f", "a/g", "b", "b/f", "f", "l"]
DIRS = {"a", "a/c", "b"}
STATES = ["absent", "file", "dir", "whiteout", "opaque", "symlink", "replaced"]  # replaced: whiteout + entry


def _ancestors(path: str) -> List[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _legal(path: str, state: str, layer: Dict[str, str]) -> str:
    """Repair a random state into one a valid layer can hold (given its ancestors' states)."""
    if any(layer[a] in ("file", "symlink") for a in _ancestors(path)):
        return "absent"  # nothing can lie inside a non-directory of the same layer
    if state in ("dir", "opaque") and path not in DIRS:
        state = "symlink" if path == "l" else "file"
    if state == "symlink" and path != "l":
        state = "file"
    if state in ("file", "dir", "opaque", "symlink", "replaced"):
        for ancestor in _ancestors(path):
            if layer[ancestor] not in ("dir", "opaque", "replaced"):  # (ancestors are all in DIRS)
                layer[ancestor] = "dir"  # a real entry comes with its parent directory entries
    return state


@st.composite
def layer_stacks(draw) -> List[List[Tuple]]:
    layers = []
    for _ in range(draw(st.integers(1, 4))):
        layer: Dict[str, str] = {}
        for path in PATHS:
            layer[path] = _legal(path, draw(st.sampled_from(STATES)), layer)
        members = []
        for path in PATHS:
            state = layer[path]
            name, base = os.path.dirname(path), os.path.basename(path)
            meta = dict(mode=draw(st.sampled_from([0o644, 0o600, 0o755])), uid=draw(st.sampled_from([0, 1000])),
                        mtime=draw(st.integers(1_000_000_000, 1_700_000_000)))
            if state == "file":
                members.append(tar_entry(path, draw(st.binary(max_size=20)), **meta))
            elif state == "symlink":
                members.append(tar_entry(path, kind="symlink", target=draw(st.sampled_from(["f", "a/f", "/b"]))))
            elif state == "replaced":  # the whiteout hides the layers below only, never this entry
                members.append(tar_entry(os.path.join(name, ".wh." + base)))
                if path in DIRS:
                    members.append(tar_entry(path + "/", kind="dir", **meta))
                else:
                    members.append(tar_entry(path, draw(st.binary(max_size=20)), **meta))
            elif state in ("dir", "opaque"):
                members.append(tar_entry(path + "/", kind="dir", **meta))
                if state == "opaque":
                    members.append(tar_entry(path + "/.wh..wh..opq"))
            elif state == "whiteout":
                members.append(tar_entry(os.path.join(name, ".wh." + base)))
        # markers move anywhere; entries keep parents before children
        markers = [m for m in members if "/.wh." in "/" + m[0].name]
        entries = [m for m in members if m not in markers]
        for marker in markers:
            entries.insert(draw(st.integers(0, len(entries))), marker)
        layers.append(entries)
    return layers


@settings(max_examples=100 if CI else 20, deadline=None)
@given(layer_stacks())
def test_random_layer_stacks_match_umoci(stacks) -> None:
    require_umoci()
    work = tempfile.mkdtemp(prefix="unionfs-umoci-")
    try:
        layout = new_layout(os.path.join(work, "image"))
        for position, members in enumerate(stacks):
            add_layer(layout, "base", write_tar(os.path.join(work, "l%d.tar" % position), members))
        expected = snapshot_dir(unpack(layout, "base", os.path.join(work, "bundle")))
        with OverlayFS.from_oci(layout, ref="base") as overlay:
            # umoci restores the mtime of a whiteout's own directory only; one whose child
            # an opaque marker of its parent removed gets the time of the unpack
            assert_same_tree(without_dir_times(expected), without_dir_times(snapshot_fs(overlay)))
    finally:
        shutil.rmtree(work)


# -- the reverse: layers exported by unionfs ------------------------------------------------------


def change_through_overlay(overlay: OverlayFS) -> None:
    overlay.remove("etc/passwd")  # whiteout
    overlay.writetext("etc/conf.d/new", "new")  # a new file in a copied-up dir
    overlay.removetree("var/cache")
    overlay.makedir("var/cache")  # opaque: made over a whiteout
    overlay.writetext("var/cache/fresh", "fresh")
    overlay.writetext("usr/lib/mod/m.so", "patched")  # copy-up of a file in a 0700 dir
    overlay.removetree("opt/app")
    overlay.writetext("opt/app", "dir -> file")
    overlay.remove("top")
    overlay.makedirs("top/made/deep")  # file -> dir
    overlay.make_opaque("usr/lib")  # an opaque dir with lower children
    overlay.writetext("usr/lib/only", "only")
    overlay.settimes("etc/conf.d/new", modified=datetime.datetime(2021, 5, 4, tzinfo=datetime.timezone.utc))


@pytest.mark.parametrize("opaque", ["marker", "whiteouts"])
def test_exported_layers_unpack_to_the_merged_view(layout, tmp_path, opaque) -> None:
    repack(layout, tmp_path, populate)
    upper = OSFS(str(tmp_path / "upper"), create=True)  # an upper that keeps modes and owners
    with OverlayFS.from_oci(layout, ref="base", upper=upper) as overlay:
        change_through_overlay(overlay)
        view = snapshot_fs(overlay)
        layer_path = str(tmp_path / "exported.tar")
        exported = overlay.export_layer(layer_path, opaque=opaque, layout=layout, ref="ours", base_ref="base")
    assert_same_tree(view, snapshot_dir(unpack(layout, "ours", str(tmp_path / "ours"))))
    add_layer(layout, "base", layer_path, new_ref="umoci-added")
    assert_same_tree(view, snapshot_dir(unpack(layout, "umoci-added", str(tmp_path / "theirs"))))
    # and unionfs reads its own image back to the same view
    with OverlayFS.from_oci(layout, ref="ours") as again:
        assert_same_tree(view, snapshot_fs(again))
    assert exported.diff_id == exported.digest  # uncompressed


@pytest.mark.parametrize("mtime", [None, 0])
def test_umoci_stat_reads_the_history_of_an_exported_image(layout, tmp_path, mtime) -> None:
    """Issue 11 item 13: the history entry export_layer appends carries ``created`` (the export's
    time, or ``mtime`` for a reproducible layer), ``created_by`` and ``empty_layer``;
    ``umoci stat`` crashed on the entry without ``created``."""
    import json

    upper = OSFS(str(tmp_path / "upper"), create=True)
    with OverlayFS.from_oci(layout, ref="base", upper=upper) as overlay:
        overlay.writetext("new", "new")
        overlay.export_layer(layout=layout, ref="ours", base_ref="base", mtime=mtime)
    stat = json.loads(umoci("stat", "--image", layout + ":ours", "--json"))
    ours = stat["history"][-1]
    assert ours["created_by"] == "unionfs export_layer" and not ours.get("empty_layer")  # umoci omits false
    assert "unionfs export_layer" in umoci("stat", "--image", layout + ":ours")
    assert ours["created"].startswith("1970-01-01T00:00:00") if mtime == 0 else not ours["created"].startswith("0001")
    assert "ours" in umoci("ls", "--layout", layout)
