"""Shared fixtures of the mount tests: FUSE mounts and kernel overlay mounts in private
temporary directories, always unmounted (lazily if busy), and the skip rule."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from typing import Iterator, List, Optional, Sequence

import pytest

REQUIRE = os.environ.get("UNIONFS_REQUIRE_MOUNT") == "1"


def why_no_fuse() -> Optional[str]:
    from unionfs.errors import MountUnavailable
    from unionfs.tools.mount import load_binding

    try:
        load_binding()
    except MountUnavailable as error:
        return str(error)
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if os.geteuid() != 0:
        return "the mount tests mount with allow_other and compare with kernel overlays: they need root"
    return None


def require_fuse() -> None:
    """Skip (or, with UNIONFS_REQUIRE_MOUNT=1 as in CI, fail) where FUSE mounts cannot run."""
    reason = why_no_fuse()
    if reason is not None:
        if REQUIRE:
            pytest.fail("UNIONFS_REQUIRE_MOUNT=1 but " + reason)
        pytest.skip(reason)


def unionfs(*args: str, check: bool = True, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run this checkout's command line."""
    done = subprocess.run([sys.executable, "-m", "unionfs", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, **kwargs)
    if check and done.returncode != 0:
        raise AssertionError("unionfs %s failed (%d): %s%s" % (" ".join(args), done.returncode, done.stdout, done.stderr))
    return done


def is_mounted(path: str) -> bool:
    path = os.path.realpath(path)
    with open("/proc/mounts") as mounts:
        return any(line.split()[1] == path for line in mounts)


def force_unmount(path: str) -> None:
    for command in (["fusermount3", "-u", path], ["umount", path], ["umount", "-l", path]):
        if not is_mounted(path):
            return
        subprocess.run(command, capture_output=True)


def wait_unmounted(path: str, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not is_mounted(path):
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def fuse_mount(layers: Sequence[str], mountpoint: str, upper: Optional[str] = None,
               extra: Sequence[str] = ()) -> Iterator[str]:
    """``unionfs mount LAYERS --upper UPPER MOUNTPOINT`` as a daemon; unmounted afterwards."""
    args: List[str] = ["mount", *layers, mountpoint]
    if upper is not None:
        args += ["--upper", upper]
    unionfs(*args, *extra)
    try:
        yield mountpoint
    finally:
        force_unmount(mountpoint)
        wait_unmounted(mountpoint)


@contextlib.contextmanager
def kernel_mount(lowers: Sequence[str], upper: str, work: str, mountpoint: str) -> Iterator[str]:
    """``mount -t overlay`` with the same layers; unmounted afterwards."""
    subprocess.run(["mount", "-t", "overlay", "overlay", mountpoint, "-o",
                    "lowerdir=%s,upperdir=%s,workdir=%s" % (":".join(lowers), upper, work)], check=True)
    try:
        yield mountpoint
    finally:
        force_unmount(mountpoint)
