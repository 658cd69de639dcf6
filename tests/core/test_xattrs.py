"""Extended attributes, FIFOs and mknod of ``OverlayFS`` against a real kernel overlay: the
same scenario (tests/support/xattrs.py) with system calls on a kernel overlay mount and with
the library's calls over the same lower, step by step and in the uppers left behind."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from typing import Iterator

import pytest
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS

from unionfs import AttributeExists, AttributeNameInvalid, AttributeTooLarge, NoSuchAttribute, OverlayFS
from tests.support.mount import force_unmount
from tests.support import xattrs


def _dirs(base, *names):
    paths = [base / name for name in names]
    for path in paths:
        path.mkdir(parents=True)
    return [str(path) for path in paths]


@contextlib.contextmanager
def _kernel_overlay_mount(lower: str, upper: str, work: str, mnt: str, options: str) -> Iterator[str]:
    subprocess.run(["mount", "-t", "overlay", "overlay", mnt, "-o",
                    "lowerdir=%s,upperdir=%s,workdir=%s%s" % (lower, upper, work, options)], check=True)
    try:
        yield mnt
    finally:
        force_unmount(mnt)


@pytest.mark.parametrize("lower_kind,metacopy", [("plain", False), ("kernel-format", False), ("plain", True)])
def test_xattrs_fifos_and_mknod_answer_as_the_kernel_overlay(tmp_path, kernel_overlay, lower_kind, metacopy):
    """With ``metacopy`` on both sides too: setxattr copies up metadata only, and the copy
    keeps the lower's attributes."""
    lower, upper, work, mnt = _dirs(tmp_path / "kernel", "lower", "upper", "work", "mnt")
    xattrs.build_lower(lower)
    options = ",metacopy=on,redirect_dir=on" if metacopy else ""
    with _kernel_overlay_mount(lower, upper, work, mnt, options):
        kernel = xattrs.run_os(mnt)
    library_lower, library_upper = _dirs(tmp_path / "library", "lower", "upper")
    xattrs.build_lower(library_lower)
    opened = OverlayFS([OSFS(library_lower)], OSFS(library_upper), metacopy=metacopy) if lower_kind == "plain" else \
        OverlayFS.from_kernel([library_lower], OSFS(library_upper))
    with opened as overlay:
        library = xattrs.run_library(overlay)
    for kernel_step, library_step in zip(kernel, library):
        assert library_step == kernel_step
    assert xattrs.upper_state(library_upper) == xattrs.upper_state(upper)
    # the lower is untouched, its FIFOs never opened
    assert os.listxattr(os.path.join(library_lower, "f")) == os.listxattr(os.path.join(lower, "f"))
    assert stat.S_ISFIFO(os.lstat(os.path.join(library_lower, "p")).st_mode)


def test_kernel_format_lower_hides_its_markers(tmp_path):
    """A kernel-format layer's own markers (``trusted.overlay.opaque``; ``user.overlay.*``
    read with userxattr) are never attributes of the view; its user attributes are."""
    lower = tmp_path / "lower"
    (lower / "d").mkdir(parents=True)
    os.setxattr(lower / "d", "trusted.overlay.opaque", b"y")
    os.setxattr(lower / "d", "user.overlay.opaque", b"y")
    os.setxattr(lower / "d", "user.keep", b"1")
    with OverlayFS.from_kernel([str(lower)]) as overlay:
        assert sorted(overlay.listxattr("/d")) == ["user.keep", "user.overlay.opaque"]
        with pytest.raises(NoSuchAttribute):
            overlay.getxattr("/d", "trusted.overlay.opaque")
    with OverlayFS.from_kernel([str(lower)], userxattr=True) as overlay:
        assert overlay.listxattr("/d") == ["user.keep"]
        with pytest.raises(NoSuchAttribute):
            overlay.getxattr("/d", "user.overlay.opaque")


def test_errors_name_the_callers_path(tmp_path):
    lower = tmp_path / "lower"
    lower.mkdir()
    (lower / "f").write_bytes(b"x")
    (tmp_path / "upper").mkdir()
    with OverlayFS([OSFS(str(lower))], OSFS(str(tmp_path / "upper"))) as overlay:
        for call, wanted in ((lambda: overlay.getxattr("f", "user.no"), NoSuchAttribute),
                             (lambda: overlay.getxattr("f", ""), AttributeNameInvalid),
                             (lambda: overlay.setxattr("f", "user.v", b"v" * 65537), AttributeTooLarge)):
            with pytest.raises(wanted) as raised:
                call()
            assert "'f'" in str(raised.value)
        overlay.setxattr("f", "user.v", b"1")
        with pytest.raises(AttributeExists):
            overlay.setxattr("f", "user.v", b"1", os.XATTR_CREATE)
        with pytest.raises(TypeError):
            overlay.setxattr("f", "user.v", "text")  # type: ignore[arg-type]


def test_upper_without_system_paths_refuses_xattrs_and_fifos_and_reads_none(tmp_path):
    """A MemoryFS upper holds neither: ``Unsupported`` (ENOTSUP), documented; reads of a lower's
    attributes still work, and a lower FIFO is listed and typed as one."""
    from fs import errors

    lower = tmp_path / "lower"
    lower.mkdir()
    (lower / "f").write_bytes(b"x")
    os.setxattr(lower / "f", "user.a", b"1")
    os.mkfifo(lower / "p")
    with OverlayFS([OSFS(str(lower))], MemoryFS()) as overlay:
        assert overlay.getxattr("/f", "user.a") == b"1"
        assert overlay.getinfo("/p", ["details"]).type.name == "fifo"
        with pytest.raises(errors.Unsupported):
            overlay.setxattr("/f", "user.b", b"2")
        with pytest.raises(errors.Unsupported):
            overlay.mkfifo("/q")
        with pytest.raises(errors.Unsupported):
            overlay.setinfo("/p", {"details": {"modified": 5, "accessed": 5}})  # a copy-up of a FIFO
        overlay.writebytes("/m", b"m")
        assert overlay.listxattr("/m") == []
        overlay.mknod("/r", stat.S_IFREG | 0o644)  # a regular file can be made anywhere
        assert overlay.isfile("/r") and sorted(overlay.listdir("/")) == ["f", "m", "p", "r"]


def test_fifos_of_an_oci_layer_are_listed_typed_and_copied_up_as_fifos(tmp_path):
    """A FIFO member of a layer tar is a FIFO of the view (getinfo, listing, the mount's
    getattr) and a copy-up (chmod) makes a FIFO in the upper, never reading the member."""
    import io
    import tarfile

    from unionfs.tools.mount import Operations

    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as tar:
        member = tarfile.TarInfo("p")
        member.type, member.mode, member.mtime = tarfile.FIFOTYPE, 0o640, 1000
        tar.addfile(member)
        data = tarfile.TarInfo("f")
        data.size, data.mtime = 1, 1000
        tar.addfile(data, io.BytesIO(b"x"))
    (tmp_path / "upper").mkdir()
    with OverlayFS.from_oci([str(layer)], OSFS(str(tmp_path / "upper"))) as overlay:
        assert sorted(overlay.listdir("/")) == ["f", "p"]
        assert overlay.getinfo("/p", ["details"]).type.name == "fifo"
        assert [info.type.name for info in overlay.scandir("/", ["details"]) if info.name == "p"] == ["fifo"]
        assert stat.S_ISFIFO(Operations(overlay).getattr("/p")["st_mode"])
        overlay.setinfo("/p", {"access": {"permissions": ["u_r", "u_w"]}})
        status = os.lstat(tmp_path / "upper" / "p")
        assert stat.S_ISFIFO(status.st_mode) and stat.S_IMODE(status.st_mode) == 0o600 and status.st_mtime == 1000
        assert stat.S_ISFIFO(Operations(overlay).getattr("/p")["st_mode"])
        overlay.rename("/p", "/q")
        assert sorted(overlay.listdir("/")) == ["f", "q"]


def test_changes_commit_and_exports_never_open_a_fifo(tmp_path):
    """A copied-up FIFO is compared by type (no bytes to read: opening it would block), and
    commit and the exports refuse it with ``Unsupported`` naming it, instead of hanging."""
    import signal

    from fs import errors

    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    upper.mkdir()
    os.mkfifo(lower / "p")
    os.mkfifo(lower / "same")

    def hung(signum, frame):
        raise AssertionError("a FIFO was opened")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        with OverlayFS([OSFS(str(lower))], OSFS(str(upper))) as overlay:
            overlay.setinfo("/p", {"access": {"permissions": ["u_r"]}})
            overlay.setxattr("/same", "trusted.x", b"1")  # a copy-up that changes no mode
            found = overlay.changes().as_dict()
            assert found["metadata"] == ["/p"] and not found["modified"]  # /same: no change the view shows
            overlay.mkfifo("/new")
            with pytest.raises(errors.Unsupported) as raised:
                overlay.commit(str(tmp_path / "target"), only_changes=True)
            assert "/new" in str(raised.value) or "/p" in str(raised.value)
            with pytest.raises(errors.Unsupported):
                overlay.export_layer(str(tmp_path / "layer.tar"))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_an_overlay_as_a_lower_shows_its_views_xattrs(tmp_path):
    """Stacked overlays: the lower overlay's view is the layer, its attributes included; a
    ``trusted.overlay.*`` name it shows is the upper overlay's own namespace, hidden, as a
    kernel overlay over a kernel overlay hides it."""
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    upper.mkdir()
    (lower / "f").write_bytes(b"x")
    os.setxattr(lower / "f", "user.a", b"1")
    with OverlayFS([OSFS(str(lower))], OSFS(str(upper))) as inner:
        inner.setxattr("/f", "trusted.overlay.mine", b"2")
        with OverlayFS([inner], MemoryFS()) as outer:
            assert outer.listxattr("/f") == ["user.a"]
            assert outer.getxattr("/f", "user.a") == b"1"
