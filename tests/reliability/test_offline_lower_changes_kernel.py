"""Offline lower changes, checked against the kernel: the same operations through a real
overlayfs mount and through unionfs, the same change to each one's lower while neither is
open, then the same merged tree. Needs ``mount -t overlay`` (the ``kernel_overlay`` fixture
skips elsewhere, and fails under ``UNIONFS_REQUIRE_KERNEL=1``)."""

from __future__ import annotations

import os
import subprocess
from typing import Callable, Dict, Tuple

import pytest

from fs.base import FS
from fs.osfs import OSFS
from fs.wrap import read_only

from unionfs import OverlayFS
from unionfs.testing import trees

Step = Callable[[FS], None]

#: default-safe options: offline lower changes are defined only without these features
KERNEL_OPTIONS = "redirect_dir=off,index=off,metacopy=off,xino=off"


#: the lower both runs start from
LOWER = {"merged/kept": "kept", "merged/sub/s": "s", "file": "lower file", "gone": "to be whited out",
         "opaque/inside/old": "old"}


def _replace_with_dir(layer: FS, path: str) -> None:
    layer.remove(path)
    layer.makedirs(path + "/now/inside")
    layer.writetext(path + "/now/inside/x", "x")


def _replace_with_file(layer: FS, path: str) -> None:
    layer.removetree(path)
    layer.writetext(path, "now a file")


SCENARIOS: Dict[str, Tuple[Step, Step]] = {
    "whiteout keeps hiding a changed lower entry": (
        lambda view: view.remove("gone"),
        lambda lower: _replace_with_dir(lower, "gone"),
    ),
    "opaque dir keeps hiding lower additions": (
        lambda view: (view.removetree("opaque"), view.makedir("opaque"), view.writetext("opaque/mine", "m")),
        lambda lower: lower.writetext("opaque/added", "new"),
    ),
    "merged dir shows lower additions and removals": (
        lambda view: view.writetext("merged/upper", "u"),
        lambda lower: (lower.writetext("merged/added", "a"), lower.remove("merged/kept")),
    ),
    "upper file shadows a lower file that became a dir": (
        lambda view: view.writetext("file", "upper copy"),
        lambda lower: _replace_with_dir(lower, "file"),
    ),
    "lower file that became a dir shows as one": (
        lambda view: view.writetext("merged/upper", "u"),
        lambda lower: _replace_with_dir(lower, "file"),
    ),
    "upper dir over a lower dir that became a file": (
        lambda view: view.writetext("merged/upper", "u"),
        lambda lower: _replace_with_file(lower, "merged"),
    ),
    "mkdir over nothing merges a later lower dir": (
        lambda view: (view.makedir("fresh"), view.writetext("fresh/mine", "m")),
        lambda lower: (lower.makedirs("fresh/deeper"), lower.writetext("fresh/from-lower", "l")),
    ),
    "whiteout whose lower entry vanished": (
        lambda view: (view.remove("merged/kept"), view.removetree("merged/sub")),
        lambda lower: lower.remove("merged/kept"),
    ),
    "whiteout of a vanished entry hides it when it returns": (
        lambda view: view.remove("gone"),
        lambda lower: (lower.remove("gone"), lower.writetext("gone", "back")),
    ),
}

#: a second round of operations after the change (the kernel's rmdir of a dir whose only
#: remaining upper content is a whiteout of a vanished entry, for one)
AFTERWARDS: Dict[str, Step] = {
    "whiteout whose lower entry vanished": lambda view: view.removedir("merged"),
}


def _kernel_run(root: str, operations: Step, change: Step, afterwards: Step) -> Dict[str, object]:
    dirs = {name: os.path.join(root, name) for name in ("lower", "upper", "work", "merged")}
    for path in dirs.values():
        os.makedirs(path)
    trees.make_tree(OSFS(dirs["lower"]), LOWER)
    options = "lowerdir=%(lower)s,upperdir=%(upper)s,workdir=%(work)s," % dirs + KERNEL_OPTIONS

    def mount() -> None:
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, dirs["merged"]], check=True,
                       capture_output=True)

    def unmount() -> None:
        subprocess.run(["umount", dirs["merged"]], check=True, capture_output=True)

    mount()
    try:
        operations(OSFS(dirs["merged"]))
    finally:
        unmount()
    change(OSFS(dirs["lower"]))
    mount()
    try:
        afterwards(OSFS(dirs["merged"]))
        return trees.snapshot(OSFS(dirs["merged"]), sidecar=True)
    finally:
        unmount()


def _library_run(root: str, operations: Step, change: Step, afterwards: Step) -> Dict[str, object]:
    lower_dir, upper_dir = os.path.join(root, "lower"), os.path.join(root, "upper")
    os.makedirs(lower_dir)
    os.makedirs(upper_dir)
    trees.make_tree(OSFS(lower_dir), LOWER)
    with OverlayFS(read_only(OSFS(lower_dir)), OSFS(upper_dir)) as overlay:
        operations(overlay)
    change(OSFS(lower_dir))
    with OverlayFS(read_only(OSFS(lower_dir)), OSFS(upper_dir)) as overlay:
        afterwards(overlay)
        return trees.snapshot(overlay, sidecar=True)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_offline_lower_change_matches_the_kernel(kernel_overlay, tmp_path, name):
    operations, change = SCENARIOS[name]
    afterwards = AFTERWARDS.get(name, lambda view: None)
    kernel = _kernel_run(str(tmp_path / "kernel"), operations, change, afterwards)
    library = _library_run(str(tmp_path / "library"), operations, change, afterwards)
    assert library == kernel
