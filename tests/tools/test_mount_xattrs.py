"""xattrs, FIFOs and mknod through ``unionfs mount``, with the kernel overlay as the oracle:
the scenario of tests/support/xattrs.py by system calls on a kernel overlay and on a unionfs
mount of the same lower, step by step and in the uppers left behind."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from tests.support import xattrs
from tests.support.mount import fuse_mount, kernel_mount, require_fuse

pytestmark = pytest.mark.usefixtures("fuse_available")


@pytest.fixture
def fuse_available() -> None:
    require_fuse()


def _dirs(base, *names):
    paths = [base / name for name in names]
    for path in paths:
        path.mkdir(parents=True)
    return [str(path) for path in paths]


def test_xattrs_fifos_and_mknod_through_the_mount_answer_as_the_kernel_overlay(tmp_path):
    lower, upper, work, mnt = _dirs(tmp_path / "kernel", "lower", "upper", "work", "mnt")
    xattrs.build_lower(lower)
    with kernel_mount([lower], upper, work, mnt):
        kernel = xattrs.run_os(mnt)
    fuse_lower, fuse_upper, fuse_mnt = _dirs(tmp_path / "unionfs", "lower", "upper", "mnt")
    xattrs.build_lower(fuse_lower)
    with fuse_mount([fuse_lower], fuse_mnt, upper=fuse_upper):
        mounted = xattrs.run_os(fuse_mnt)
        # a FIFO made through the mount is a pipe between two processes on it
        fifo = os.path.join(fuse_mnt, "pipe")
        os.mkfifo(fifo)
        reader = subprocess.Popen(["cat", fifo], stdout=subprocess.PIPE)
        with open(fifo, "wb") as out:
            out.write(b"through the fifo")
        assert reader.communicate(timeout=20)[0] == b"through the fifo"
        assert stat.S_ISFIFO(os.lstat(os.path.join(fuse_upper, "pipe")).st_mode)
        os.remove(fifo)
    for kernel_step, mount_step in zip(kernel, mounted):
        assert mount_step == kernel_step
    assert xattrs.upper_state(fuse_upper) == xattrs.upper_state(upper)


def test_memory_upper_answers_enotsup_for_xattrs_and_fifos(tmp_path):
    import errno

    lower, mnt = _dirs(tmp_path, "lower", "mnt")
    with open(os.path.join(lower, "f"), "wb") as out:
        out.write(b"x")
    os.setxattr(os.path.join(lower, "f"), "user.a", b"1")
    with fuse_mount([lower], mnt, upper="mem://"):
        assert os.getxattr(os.path.join(mnt, "f"), "user.a") == b"1"
        for call in (lambda: os.setxattr(os.path.join(mnt, "f"), "user.b", b"2"),
                     lambda: os.mkfifo(os.path.join(mnt, "q"))):
            with pytest.raises(OSError) as raised:
                call()
            assert raised.value.errno == errno.EOPNOTSUPP
