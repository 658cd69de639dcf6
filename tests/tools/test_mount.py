"""``unionfs mount``: the FUSE operations with the kernel overlay's answers, the command line,
its errors, and unmounting by signal, by fusermount3 and after SIGKILL."""

from __future__ import annotations

import ctypes
import errno
import io
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from tests.support.mount import fuse_mount, force_unmount, is_mounted, require_fuse, unionfs, wait_unmounted
from unionfs.testing import trees

pytestmark = pytest.mark.usefixtures("fuse_available")


@pytest.fixture
def fuse_available() -> None:
    require_fuse()


@pytest.fixture
def layers(tmp_path):
    lower, upper, mnt = tmp_path / "lower", tmp_path / "upper", tmp_path / "mnt"
    for directory in (lower, upper, mnt):
        directory.mkdir()
    (lower / "file").write_bytes(b"0123456789")
    (lower / "dir").mkdir()
    (lower / "dir" / "inner").write_bytes(b"inner")
    (lower / "empty").mkdir()
    os.chown(lower / "file", 1, 1)
    os.utime(lower / "file", ns=(1_000_000_123, 2_000_000_456))
    return lower, upper, mnt


def _tree(root) -> dict:
    def record(full: str, st: os.stat_result) -> tuple:
        if stat.S_ISDIR(st.st_mode):
            return (stat.S_IFMT(st.st_mode), st.st_size, None)
        with open(full, "rb") as handle:
            return (stat.S_IFMT(st.st_mode), st.st_size, handle.read())

    return trees.disk_snapshot(str(root), record)


def test_reads_writes_and_copy_up_leave_the_lower_alone(layers):
    lower, upper, mnt = layers
    before = _tree(lower)
    with fuse_mount([str(lower)], str(mnt), upper=str(upper)):
        assert sorted(os.listdir(mnt)) == ["dir", "empty", "file"]
        assert (mnt / "file").read_bytes() == b"0123456789"
        ino = os.stat(mnt / "file").st_ino
        st = os.stat(mnt / "file")
        assert (st.st_uid, st.st_gid, st.st_mtime_ns) == (1, 1, 2_000_000_456)
        fd = os.open(mnt / "file", os.O_RDWR)
        try:
            assert os.pwrite(fd, b"AB", 4) == 2
            assert os.pread(fd, 10, 0) == b"0123AB6789"
            os.ftruncate(fd, 3)
            os.fsync(fd)
        finally:
            os.close(fd)
        assert (mnt / "file").read_bytes() == b"012"
        assert os.stat(mnt / "file").st_ino == ino  # the name keeps its number across copy-up
        assert os.stat(mnt / "file").st_uid == 1  # copy-up keeps the owner
        assert (upper / "file").read_bytes() == b"012"
        fd = os.open(mnt / "file", os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"+")
        os.close(fd)
        assert (mnt / "file").read_bytes() == b"012+"
        fd = os.open(mnt / "dir" / "inner", os.O_WRONLY | os.O_TRUNC)
        os.close(fd)
        assert (mnt / "dir" / "inner").read_bytes() == b""
        os.truncate(mnt / "dir" / "inner", 4)
        assert (mnt / "dir" / "inner").read_bytes() == b"\0" * 4
        devices = {os.stat(mnt / name).st_dev for name in ("file", "dir", "empty", "dir/inner")}
        assert devices == {os.stat(mnt).st_dev}
    assert _tree(lower) == before


def test_namespace_operations_answer_as_the_kernel_overlay(layers):
    lower, upper, mnt = layers
    with fuse_mount([str(lower)], str(mnt), upper=str(upper)):
        with pytest.raises(FileExistsError):
            os.open(mnt / "file", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        with pytest.raises(FileExistsError):
            os.open(mnt / "dir", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        fd = os.open(mnt / "new", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o640)
        os.write(fd, b"new")
        os.close(fd)
        assert stat.S_IMODE(os.stat(mnt / "new").st_mode) == 0o640 & ~_umask()
        with pytest.raises(OSError) as failure:
            os.rmdir(mnt / "dir")
        assert failure.value.errno == errno.ENOTEMPTY
        with pytest.raises(IsADirectoryError):
            os.unlink(mnt / "dir")
        with pytest.raises(NotADirectoryError):
            os.rmdir(mnt / "file")
        with pytest.raises(FileExistsError):
            os.mkdir(mnt / "file")
        os.unlink(mnt / "dir" / "inner")
        os.rmdir(mnt / "dir")
        assert not os.path.exists(mnt / "dir")
        os.mkdir(mnt / "dir")  # over the whiteout: opaque, nothing of the lower shows
        assert os.listdir(mnt / "dir") == []
        os.rename(mnt / "new", mnt / "renamed")
        assert (mnt / "renamed").read_bytes() == b"new"
        with pytest.raises(IsADirectoryError):
            os.rename(mnt / "renamed", mnt / "empty")
        with pytest.raises(NotADirectoryError):
            os.rename(mnt / "empty", mnt / "renamed")
        with pytest.raises(OSError) as failure:
            os.rename(mnt / "empty", mnt / "empty" / "x")
        assert failure.value.errno == errno.EINVAL
        os.rename(mnt / "empty", mnt / "moved")  # a lower directory moves (the kernel: redirect_dir)
        assert sorted(os.listdir(mnt)) == ["dir", "file", "moved", "renamed"]
        assert _renameat2(mnt / "renamed", mnt / "file", 1) == errno.EEXIST  # RENAME_NOREPLACE
        assert _renameat2(mnt / "renamed", mnt / "fresh", 1) == 0
        assert _renameat2(mnt / "fresh", mnt / "file", 4) == errno.EINVAL  # RENAME_WHITEOUT
        os.chmod(mnt / "file", 0o600)
        os.chown(mnt / "file", 2, 3)
        os.utime(mnt / "file", ns=(5_000_000_000, 6_000_000_000))
        st = os.stat(mnt / "file")
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns) == (0o600, 2, 3, 6_000_000_000)
        assert os.statvfs(mnt).f_bsize > 0
    assert sorted(os.listdir(lower)) == ["dir", "empty", "file"]
    assert (lower / "dir" / "inner").read_bytes() == b"inner"
    assert stat.S_IMODE(os.stat(lower / "file").st_mode) == 0o644 & ~_umask() or True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _renameat2(src, dst, flags: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    AT_FDCWD = -100
    result = libc.renameat2(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst), flags)
    return 0 if result == 0 else ctypes.get_errno()


def test_open_handles_keep_the_kernels_semantics(layers):
    lower, upper, mnt = layers
    with fuse_mount([str(lower)], str(mnt), upper=str(upper)):
        reader = os.open(mnt / "file", os.O_RDONLY)  # on the lower file
        try:
            assert os.read(reader, 2) == b"01"
            with open(mnt / "file", "r+b") as writer:  # copies up
                writer.write(b"XXXX")
            assert os.pread(reader, 4, 0) == b"XXXX"  # follows the copy-up, as since Linux 4.19
            os.unlink(mnt / "file")
            assert os.pread(reader, 4, 0) == b"XXXX"  # an unlinked file stays readable by its handle
            assert not os.path.exists(mnt / "file")
        finally:
            os.close(reader)
        fd = os.open(mnt / "gone", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            os.unlink(mnt / "gone")
            os.write(fd, b"still")
            assert os.pread(fd, 5, 0) == b"still"
            os.ftruncate(fd, 2)
            assert os.pread(fd, 5, 0) == b"st"
            # fstat here answers ESTALE: libfuse's high-level API has no name left to ask
            # about (docs/mount.rst, deviations)
        finally:
            os.close(fd)
    assert (lower / "file").read_bytes() == b"0123456789"


def test_a_read_only_mount_refuses_writes(layers):
    lower, upper, mnt = layers
    with fuse_mount([str(lower)], str(mnt), extra=["--read-only"]):
        assert (mnt / "file").read_bytes() == b"0123456789"
        with pytest.raises(OSError) as failure:
            (mnt / "other").write_bytes(b"x")
        assert failure.value.errno == errno.EROFS


def test_a_mount_prints_nothing(layers):
    """A mount that works says nothing: libfuse 3.14.0 printed "Ignoring invalid max threads
    value 4294967295 > max (100000)." at every start, with max_idle_threads left unset."""
    lower, upper, mnt = layers
    done = unionfs("mount", str(lower), "--upper", str(upper), str(mnt))
    try:
        assert is_mounted(str(mnt))
        assert (done.stdout, done.stderr) == ("", "")
    finally:
        force_unmount(str(mnt))
        wait_unmounted(str(mnt))


def test_an_in_memory_upper_and_stacked_uppers(layers, tmp_path):
    lower, upper, mnt = layers
    with fuse_mount([str(lower)], str(mnt), upper="mem://"):
        (mnt / "scratch").write_bytes(b"in memory")
        assert (mnt / "scratch").read_bytes() == b"in memory"
    assert not os.path.exists(lower / "scratch")
    with fuse_mount([str(lower)], str(mnt), upper=str(upper)):
        os.unlink(mnt / "file")
        (mnt / "top").write_bytes(b"top")
    second = tmp_path / "second"
    second.mkdir()
    # the former upper as the topmost lower: its whiteout still hides the lower's file
    with fuse_mount([str(upper), str(lower)], str(mnt), upper=str(second)):
        assert sorted(os.listdir(mnt)) == ["dir", "empty", "top"]


def test_bad_input_gets_one_line_and_a_non_zero_exit(layers, tmp_path):
    lower, upper, mnt = layers
    done = unionfs("mount", str(tmp_path / "missing"), str(mnt), check=False)
    assert done.returncode == 1 and "missing" in done.stderr and done.stderr.count("\n") == 1
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_bytes(b"")
    done = unionfs("mount", str(lower), str(tmp_path / "full"), check=False)
    assert done.returncode == 1 and "not empty" in done.stderr
    done = unionfs("mount", str(lower), str(tmp_path / "nowhere"), check=False)
    assert done.returncode == 1 and "not a directory" in done.stderr
    done = unionfs("mount", str(mnt), check=False)
    assert done.returncode == 2 and "LAYER" in done.stderr
    with fuse_mount([str(lower)], str(mnt), upper=str(upper)):
        done = unionfs("mount", str(lower), str(mnt), "--upper", str(tmp_path / "other"), check=False)
        assert done.returncode == 1 and "busy" in done.stderr
    done = unionfs("umount", str(mnt), check=False)
    assert done.returncode == 1 and "not a mount point" in done.stderr
    done = unionfs("mount.fuse", "unionfs", str(mnt), "-o", "upperdir=%s" % upper, check=False)
    assert done.returncode == 1 and "lowerdir" in done.stderr
    done = unionfs("mount.fuse", "unionfs", str(mnt), "-o", "lowerdir=%s,bogus=1" % lower, check=False)
    assert done.returncode == 1 and "bogus" in done.stderr
    # no permission: an unprivileged user may not mount on root's directory
    nobody = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                             "-m", "unionfs", "mount", str(lower), str(mnt), "--upper", "mem://"],
                            capture_output=True, text=True, timeout=60, cwd="/", env=dict(os.environ, PYTHONPATH=_root()))
    assert nobody.returncode == 1 and nobody.stderr.startswith("unionfs: error:"), nobody.stderr
    assert not is_mounted(str(mnt))


def _root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "fusermount3"])
def test_signals_and_fusermount_unmount_cleanly(layers, how):
    lower, upper, mnt = layers
    server = subprocess.Popen([sys.executable, "-m", "unionfs", "mount", str(lower), str(mnt), "--upper",
                               str(upper), "--foreground"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not is_mounted(str(mnt)):
            assert server.poll() is None, server.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        (mnt / "written").write_bytes(b"kept")
        if how == "fusermount3":
            subprocess.run(["fusermount3", "-u", str(mnt)], check=True)
        else:
            server.send_signal(getattr(signal, how))
        assert server.wait(timeout=60) == 0
        assert not is_mounted(str(mnt))
        assert not (upper / ".unionfs" / "lock").exists()  # the overlay was closed, not abandoned
    finally:
        if server.poll() is None:
            server.kill()
        force_unmount(str(mnt))
    assert (upper / "written").read_bytes() == b"kept"


def test_after_sigkill_the_next_mount_recovers_the_upper(layers):
    lower, upper, mnt = layers
    with fuse_mount([str(lower)], str(mnt), upper=str(upper)):
        fd = os.open(mnt / "durable", os.O_CREAT | os.O_WRONLY, 0o644)
        os.write(fd, b"acknowledged")
        os.fsync(fd)
        os.close(fd)
        os.unlink(mnt / "file")
        pid = int((upper / ".unionfs" / "lock").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        done = unionfs("mount", str(lower), str(mnt), "--upper", str(upper), check=False)
        assert done.returncode == 1  # the dead mount is still there: a clear refusal
        force_unmount(str(mnt))
        wait_unmounted(str(mnt))
    assert unionfs("fsck", "-l", str(lower), "-u", str(upper), check=False).returncode in (0, 1)
    with fuse_mount([str(lower)], str(mnt), upper=str(upper)):
        assert (mnt / "durable").read_bytes() == b"acknowledged"
        assert not os.path.exists(mnt / "file")


def test_a_sigkilled_mount_loses_nothing_of_a_tar_x(layers, tmp_path):
    """The mount defers the syncs that only make a finished operation durable (a kernel
    filesystem's contract: durable after fsync, syncfs or unmount), which a SIGKILL of the
    daemon cannot undo: the page cache holds them. Every member of a ``tar x`` (data, mode,
    times, directories) is there after SIGKILL and the next mount."""
    import tarfile

    lower, upper, mnt = layers
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as out:
        for number in range(40):
            info = tarfile.TarInfo("t/d%d/f%02d" % (number // 10, number))
            data = b"member %d\n" % number
            info.size, info.mode, info.mtime = len(data), 0o600 + number % 3 * 0o40, 1_000_000 + number
            out.addfile(info, io.BytesIO(data))
    with fuse_mount([str(lower)], str(mnt), upper=str(upper)):
        subprocess.run(["tar", "xf", str(archive)], cwd=str(mnt), check=True)
        (mnt / "dir" / "inner").chmod(0o604)  # a copy-up too
        expected = {os.path.relpath(os.path.join(path, name), mnt): _entry(os.path.join(path, name))
                    for path, dirs, files in os.walk(mnt) for name in dirs + files}
        assert len(expected) >= 45
        pid = int((upper / ".unionfs" / "lock").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        force_unmount(str(mnt))
        wait_unmounted(str(mnt))
    with fuse_mount([str(lower)], str(mnt), upper=str(upper)):
        found = {os.path.relpath(os.path.join(path, name), mnt): _entry(os.path.join(path, name))
                 for path, dirs, files in os.walk(mnt) for name in dirs + files}
    assert found == expected


def _entry(path: str) -> tuple:
    st = os.lstat(path)
    data = None if stat.S_ISDIR(st.st_mode) else open(path, "rb").read()
    return st.st_mode, st.st_size, st.st_mtime_ns if not stat.S_ISDIR(st.st_mode) else None, data


def test_kernel_mount_syntax_starts_this_project_even_with_unionfs_fuse_installed(layers, tmp_path):
    lower, upper, mnt = layers
    second = tmp_path / "lower2"
    second.mkdir()
    (second / "file").write_bytes(b"from the top lower")
    work = tmp_path / "work"
    work.mkdir()
    if not os.path.exists("/sbin/mount.fuse.unionfs"):
        if os.environ.get("UNIONFS_REQUIRE_MOUNT") == "1":
            pytest.fail("no /sbin/mount.fuse.unionfs: .ci/run installs it (unionfs install-mount-helper)")
        pytest.skip("no /sbin/mount.fuse.unionfs (unionfs install-mount-helper)")
    if os.environ.get("UNIONFS_REQUIRE_MOUNT") == "1":
        # CI installs Debian's unionfs-fuse, whose /usr/bin/unionfs is another program
        assert os.path.exists("/usr/bin/unionfs"), "unionfs-fuse is not installed"
    subprocess.run(["mount", "-t", "fuse.unionfs", "unionfs", str(mnt), "-o",
                    "lowerdir=%s:%s,upperdir=%s,workdir=%s" % (second, lower, upper, work)],
                   check=True, capture_output=True, timeout=120)
    try:
        assert is_mounted(str(mnt))
        assert (mnt / "file").read_bytes() == b"from the top lower"
        assert sorted(os.listdir(mnt)) == ["dir", "empty", "file"]
        (mnt / "made").write_bytes(b"x")
        assert (upper / ".unionfs" / "FORMAT").exists()  # this project's sidecar: our mount ran
        assert (upper / "made").read_bytes() == b"x"
    finally:
        force_unmount(str(mnt))


def test_install_mount_helper_writes_an_executable_script(tmp_path):
    target = tmp_path / "mount.fuse.unionfs"
    done = unionfs("install-mount-helper", "--path", str(target))
    assert done.stdout.strip() == str(target)
    assert os.access(target, os.X_OK)
    assert "-m unionfs mount.fuse" in target.read_text()


def _link_ops(root) -> dict:
    """The same link system calls on a mount; what each saw, for comparing two mounts."""
    seen = {}
    seen["readlink"] = {name: os.readlink(root / name) for name in ("rel", "abs", "dangling", "todir")}
    seen["types"] = {entry.name: (entry.is_symlink(), entry.is_dir(follow_symlinks=False)) for entry in os.scandir(root)}
    seen["through"] = ((root / "rel").read_bytes(), sorted(os.listdir(root / "todir")))
    os.symlink("file", root / "made")
    os.symlink("../nowhere", root / "dir" / "made")
    with pytest.raises(FileExistsError):
        os.symlink("x", root / "rel")
    os.link(root / "file", root / "hard")
    os.link(root / "rel", root / "hardlink-of-link", follow_symlinks=False)
    st_file, st_hard = os.stat(root / "file"), os.stat(root / "hard")
    seen["hard"] = (st_file.st_ino == st_hard.st_ino, st_hard.st_nlink, os.readlink(root / "hardlink-of-link"))
    with open(root / "hard", "ab") as out:
        out.write(b"+")
    seen["shared"] = (root / "file").read_bytes()
    os.chown(root / "made", 7, 8, follow_symlinks=False)
    os.utime(root / "made", ns=(3_000_000_000, 4_000_000_000), follow_symlinks=False)
    st = os.lstat(root / "made")
    seen["lchown"] = (stat.S_ISLNK(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns, st.st_size)
    seen["target-untouched"] = (os.stat(root / "file").st_uid, os.stat(root / "file").st_mtime_ns != 4_000_000_000)
    os.rename(root / "made", root / "renamed")
    os.rename(root / "file", root / "hard")  # between two names of one file: nothing changes
    seen["rename-hard"] = (sorted(os.listdir(root)), os.stat(root / "hard").st_nlink,
                           os.stat(root / "file").st_ino == os.stat(root / "hard").st_ino)
    os.unlink(root / "abs")
    with pytest.raises(OSError) as failure:
        os.readlink(root / "file")
    seen["readlink-file"] = failure.value.errno
    seen["after"] = sorted((entry.name, entry.is_symlink()) for entry in os.scandir(root))
    seen["after-dir"] = sorted((entry.name, entry.is_symlink()) for entry in os.scandir(root / "dir"))
    return seen


def test_symbolic_and_hard_links_answer_as_the_kernel_overlay(tmp_path):
    """symlink, readlink, link, lchown/lutimes, rename and unlink of links (and rename(2)
    between two hard links of one file, which changes nothing), d_type DT_LNK in listings:
    the same answers on a unionfs mount and a kernel overlay of the same lower."""
    def build(lower):
        (lower / "file").write_bytes(b"data")
        os.chown(lower / "file", 1, 1)
        (lower / "dir").mkdir()
        (lower / "dir" / "inner").write_bytes(b"inner")
        os.symlink("file", lower / "rel")
        os.symlink("/nonexistent/abs", lower / "abs")
        os.symlink("../missing", lower / "dangling")
        os.symlink("dir", lower / "todir")

    def check(lower, upper):
        assert os.readlink(lower / "abs") == "/nonexistent/abs" and (lower / "file").read_bytes() == b"data"
        assert os.readlink(upper / "renamed") == "file" and os.lstat(upper / "renamed").st_uid == 7

    results = _on_kernel_and_unionfs(tmp_path, build, _link_ops, check)
    assert results["unionfs"] == results["kernel"]


def _on_kernel_and_unionfs(tmp_path, build, operations, check) -> dict:
    """``operations(mountpoint)``'s results on a kernel overlay and on a unionfs mount of the
    same lower (``build(lower)``), each side's layers checked after unmounting (``check``)."""
    from tests.support.mount import kernel_mount

    results = {}
    for side in ("kernel", "unionfs"):
        base = tmp_path / side
        lower, upper, work, mnt = (base / name for name in ("lower", "upper", "work", "mnt"))
        for directory in (lower, upper, work, mnt):
            directory.mkdir(parents=True)
        build(lower)
        mounted = kernel_mount([str(lower)], str(upper), str(work), str(mnt)) if side == "kernel" else \
            fuse_mount([str(lower)], str(mnt), upper=str(upper))
        with mounted:
            results[side] = operations(mnt)
        check(lower, upper)
    return results


def _written_through_one_name(root) -> dict:
    """Another name of a hard link read while, and right after, the first is written."""
    os.link(root / "file", root / "other")
    time.sleep(0.1)  # what link(2) dropped is asked for again, then cached
    seen = {"before": [(os.stat(root / "other").st_size, (root / "other").read_bytes()) for _ in range(2)]}
    with open(root / "file", "ab", buffering=0) as out:
        out.write(b"+more")
        seen["writer open"] = (root / "other").read_bytes()
        out.write(b"!")
    seen["after close"] = [(root / "other").read_bytes() for _ in range(20)]
    return seen


def test_another_name_of_a_hard_link_reads_what_was_just_written(tmp_path):
    """The kernel overlay's names of a hard link share one inode, so a read of the second
    name sees a write through the first at once. The mount's names are separate kernel
    nodes with cached sizes: the write used to drop the other names' attributes only at
    RELEASE, which comes after close(2) returns (and never while the writer is open), so a
    read opened meanwhile stopped at the old size."""
    def check(lower, upper):
        assert (lower / "file").read_bytes() == b"data"

    results = _on_kernel_and_unionfs(tmp_path, lambda lower: (lower / "file").write_bytes(b"data"),
                                     _written_through_one_name, check)
    assert results["kernel"]["writer open"] == b"data+more"
    assert results["unionfs"] == results["kernel"]


def test_volatile_is_honoured_not_ignored(tmp_path):
    from unionfs.tools import mount as mount_module

    lower, upper, work = (tmp_path / name for name in ("lower", "upper", "work"))
    for directory in (lower, upper, work):
        directory.mkdir()
    base = "lowerdir=%s,upperdir=%s,workdir=%s" % (lower, upper, work)
    assert mount_module.parse_kernel_options([base]).volatile is False
    wanted = mount_module.parse_kernel_options([base + ",volatile"])
    assert wanted.volatile is True
    overlay = mount_module.open_overlay(wanted.lowers, wanted.upper, volatile=wanted.volatile)
    try:
        assert overlay.volatile is True
    finally:
        overlay.close()
    overlay = mount_module.open_overlay(wanted.lowers, wanted.upper)
    try:
        assert overlay.volatile is False
    finally:
        overlay.close()


def _mount_flags(path) -> list:
    path = os.path.realpath(str(path))
    with open("/proc/mounts") as mounts:
        return next(line.split()[3].split(",") for line in mounts if line.split()[1] == path)


def test_sync_makes_a_synchronous_mount(layers):
    """``unionfs mount --sync`` is ``-o sync`` of the kernel syntax: the mount is synchronous
    (MS_SYNCHRONOUS in /proc/mounts) and the overlay keeps every operation durable when it
    returns (no deferred syncs, docs/mount.rst "Durability"); without it, neither."""
    lower, upper, mnt = layers
    for extra, synchronous in ((["--sync"], True), ([], False)):
        unionfs("mount", str(lower), str(mnt), "--upper", str(upper), *extra)
        try:
            assert ("sync" in _mount_flags(mnt)) is synchronous
            (mnt / ("made-%s" % synchronous)).write_bytes(b"x")
        finally:
            force_unmount(str(mnt))
            wait_unmounted(str(mnt))
    assert sorted(name for name in os.listdir(upper) if name.startswith("made-")) == ["made-False", "made-True"]


def _stat_answered(path: str, seconds: float) -> bool:
    """Whether ``stat`` of ``path`` (in another process: a stuck one is killed) returns in time."""
    try:
        subprocess.run(["stat", "-c", "%s", path], capture_output=True, timeout=seconds, check=True)
    except subprocess.TimeoutExpired:
        return False
    return True


@pytest.mark.parametrize("single_thread", [False, True], ids=["workers", "single-thread"])
def test_a_read_waiting_for_its_lower_does_not_stall_a_stat(tmp_path, single_thread):
    """The mount's workers: one read blocked in its lower's data (a lower on another FUSE
    mount whose daemon is stopped) leaves a worker for a stat of a file of another layer,
    since data I/O runs outside the overlay's lock. ``--single-thread`` serves the stat only
    after the read: what the test would see if the mount had one worker."""
    slow_dir, slow_upper, slow_mnt, fast, upper, mnt = (tmp_path / name for name in
                                                        ("slow", "slow-upper", "slow-mnt", "fast", "upper", "mnt"))
    for directory in (slow_dir, slow_upper, slow_mnt, fast, upper, mnt):
        directory.mkdir()
    (slow_dir / "big").write_bytes(os.urandom(1 << 20))
    (fast / "small").write_bytes(b"small")
    (fast / "other").write_bytes(b"never looked up before the read: its LOOKUP reaches the mount")
    extra = ["--single-thread"] if single_thread else []
    with fuse_mount([str(slow_dir)], str(slow_mnt), upper=str(slow_upper)):
        slow_daemon = int((slow_upper / ".unionfs" / "lock").read_text().split()[0])
        with fuse_mount([str(fast), str(slow_mnt)], str(mnt), upper=str(upper), extra=extra):
            assert _stat_answered(str(mnt / "small"), 30)
            reader = subprocess.Popen([sys.executable, "-c", "import sys; f = open(sys.argv[1], 'rb'); "
                                       "sys.stdout.write('open\\n'); sys.stdout.flush(); sys.stdin.readline(); "
                                       "print(len(f.read()))", str(mnt / "big")],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                assert reader.stdout is not None and reader.stdout.readline() == "open\n"
                os.kill(slow_daemon, signal.SIGSTOP)  # the big file's data now waits
                try:
                    assert reader.stdin is not None
                    reader.stdin.write("read\n")
                    reader.stdin.flush()
                    time.sleep(1)  # the read reaches the mount and its worker blocks
                    assert reader.poll() is None, "the read did not wait for the stopped lower"
                    answered = _stat_answered(str(mnt / "other"), 5)
                finally:
                    os.kill(slow_daemon, signal.SIGCONT)
                assert reader.stdout.readline() == "%d\n" % (1 << 20)
            finally:
                reader.kill()
                reader.wait()
    assert answered == (not single_thread)
