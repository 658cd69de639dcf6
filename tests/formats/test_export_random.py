"""Random changes through the overlay, exported both ways and read back by the real tools.

Each example applies random operations to an overlay over two OCI layers (which umoci
also unpacks into plain directories, the kernel's lowers), then checks that
- ``export_kernel`` mounted by the kernel over those directories shows the overlay's view;
- ``export_layer`` (either opaque style) added to the image and unpacked by umoci gives it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import List, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st
from fs import errors
from fs.osfs import OSFS

from unionfs import OverlayFS

from tests.support.imagetools import add_layer, new_layout, require_umoci, snapshot_dir, snapshot_fs, tar_entry as E, unpack, write_tar
from tests.formats.test_oci_umoci import CI, assert_same_tree, without_dir_times

BASE = [E("a/", kind="dir"), E("a/f", b"af"), E("a/d/", kind="dir"), E("a/d/x", b"x"), E("b/", kind="dir"),
        E("b/g", b"bg"), E("c", b"c"), E("e/", kind="dir")]
TOP = [E("a/", kind="dir"), E("a/t", b"top"), E("b/.wh.g"), E("b/h", b"bh"), E("e/", kind="dir"), E("e/.wh..wh..opq"),
       E("e/n", b"n")]
PATHS = ["a", "a/f", "a/d", "a/d/x", "a/t", "a/new", "b", "b/g", "b/h", "c", "e", "e/n", "z", "z/y"]
OPERATIONS = ["write", "remove", "removetree", "makedir", "make_opaque", "hide"]


def apply(overlay: OverlayFS, operation: str, path: str) -> None:
    try:
        if operation == "write":
            overlay.writetext(path, "written " + path)
        elif operation == "remove":
            overlay.remove(path)
        elif operation == "removetree":
            overlay.removetree(path)
        elif operation == "makedir":
            overlay.makedir(path)
        elif operation == "make_opaque":
            overlay.make_opaque(path)
        else:
            overlay.hide(path)
    except errors.FSError:
        pass  # not applicable to what the view has there: the overlay refused and changed nothing


def mount(lowers: List[str], upper: str, work: str, merged: str) -> None:
    options = "lowerdir=%s,upperdir=%s,workdir=%s" % (":".join(lowers), upper, work)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, merged], check=True, capture_output=True)


@settings(max_examples=60 if CI else 15, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(OPERATIONS), st.sampled_from(PATHS)), max_size=12))
def test_random_changes_export_to_what_kernel_and_umoci_show(kernel_overlay, operations: List[Tuple[str, str]]) -> None:
    require_umoci()
    tmp = tempfile.mkdtemp(prefix="unionfs-export-")
    try:
        layout = new_layout(os.path.join(tmp, "image"))
        add_layer(layout, "base", write_tar(os.path.join(tmp, "base.tar"), BASE), new_ref="one")
        add_layer(layout, "one", write_tar(os.path.join(tmp, "top.tar"), TOP), new_ref="two")
        flattened = unpack(layout, "two", os.path.join(tmp, "two"))  # the image as one kernel lowerdir
        with OverlayFS.from_oci(layout, ref="two", upper=OSFS(os.path.join(tmp, "upper"), create=True)) as overlay:
            for operation, path in operations:
                apply(overlay, operation, path)
            view = snapshot_fs(overlay)
            overlay.export_kernel(os.path.join(tmp, "kupper"))
            overlay.export_layer(os.path.join(tmp, "marker.tar"), layout=layout, ref="marker", base_ref="two")
            overlay.export_layer(os.path.join(tmp, "wh.tar"), opaque="whiteouts", layout=layout, ref="wh", base_ref="two")
        for ref in ("marker", "wh"):
            assert_same_tree(without_dir_times(view), without_dir_times(snapshot_dir(unpack(layout, ref, os.path.join(tmp, "b-" + ref)))))
        # the kernel: the image flattened by umoci is one lower, the exported upper on top
        merged, work = os.path.join(tmp, "merged"), os.path.join(tmp, "work")
        os.mkdir(merged)
        os.mkdir(work)
        mount([flattened], os.path.join(tmp, "kupper"), work, merged)
        try:
            assert_same_tree(without_dir_times(view), without_dir_times(snapshot_dir(merged)))
        finally:
            subprocess.run(["umount", merged], check=True)
    finally:
        shutil.rmtree(tmp)
