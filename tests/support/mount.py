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


class ThreadMount:
    """``unionfs mount`` served by a thread of this process (no interpreter start per mount,
    for tests that mount hundreds of times): lowers are directories as the command line
    opens them, the upper a directory. Unmount with :meth:`close` (always)."""

    def __init__(self, lowers: Sequence[str], upper: str, mountpoint: str, options: Optional[object] = None) -> None:
        import threading

        from unionfs.tools import mount

        chosen = options if isinstance(options, mount.MountOptions) else mount.MountOptions()

        self.mountpoint = mountpoint
        self.overlay = mount.open_overlay(lowers, upper)
        ready = threading.Event()
        self.failure: List[BaseException] = []

        def serve() -> None:
            try:
                mount.serve(self.overlay, mountpoint, chosen, statfs_path=upper, on_ready=ready.set)
            except BaseException as error:  # reported by the waiting thread
                self.failure.append(error)
                ready.set()

        self.thread = threading.Thread(target=serve, name="unionfs-mount %s" % mountpoint, daemon=True)
        self.thread.start()
        ready.wait(60)
        self.connection: Optional[int] = None
        if not self.failure and is_mounted(mountpoint):
            self.connection = os.minor(os.stat(mountpoint).st_dev)
            _LIVE.add(self)
        else:
            self.close()
            raise AssertionError("the mount did not come up: %r" % (self.failure,))

    def abort(self) -> None:
        """End the FUSE connection: a descriptor this process still holds on the mount would
        otherwise wait for ever at exit for a server thread that is gone."""
        if self.connection is None:
            return
        control = "/sys/fs/fuse/connections"
        if not os.path.isdir(os.path.join(control, str(self.connection))):
            subprocess.run(["mount", "-t", "fusectl", "fusectl", control], capture_output=True)
        try:
            with open(os.path.join(control, str(self.connection), "abort"), "w") as out:
                out.write("1")
        except OSError:
            pass  # already gone

    def close(self) -> None:
        force_unmount(self.mountpoint)
        self.thread.join(20)
        if self.thread.is_alive():
            self.abort()
            self.thread.join(20)
        _LIVE.discard(self)
        self.overlay.close()


_LIVE: "set[ThreadMount]" = set()


def _abort_live() -> None:
    for mount in list(_LIVE):
        mount.abort()


import atexit  # noqa: E402

atexit.register(_abort_live)
