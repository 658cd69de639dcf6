"""xattrs, FIFOs and mknod through ``unionfs mount``, with the kernel overlay as the oracle:
the scenario of tests/support/xattrs.py by system calls on a kernel overlay and on a unionfs
mount of the same lower, step by step and in the uppers left behind."""

from __future__ import annotations

import os
import pathlib
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


def _user_tree(root: str) -> None:
    """What the unprivileged user of the next test copies: directories with the special bits."""
    for name, mode in (("sticky", 0o1777), ("sgid", 0o2775), ("both", 0o3777), ("sgid/inner", 0o755)):
        os.mkdir(os.path.join(root, name))
        os.chmod(os.path.join(root, name), mode)
    with open(os.path.join(root, "sgid", "file"), "wb") as out:
        out.write(b"x")
    os.chmod(os.path.join(root, "sgid", "file"), 0o2755)
    os.chown(os.path.join(root, "sgid"), 0, 100)


def _user_lower(lower: str) -> None:
    os.mkdir(os.path.join(lower, "w"))
    os.chown(os.path.join(lower, "w"), 65534, 65534)
    with open(os.path.join(lower, "w", "g"), "wb") as out:  # the user's, in a group it is not in
        out.write(b"g")
    os.chown(os.path.join(lower, "w", "g"), 65534, 100)
    os.chmod(os.path.join(lower, "w", "g"), 0o2775)


def test_cp_a_by_a_user_keeps_sticky_and_setgid_bits_as_the_kernel_overlay():
    """``cp -a`` by a user who cannot keep the owners makes each directory with its mode (the
    sticky bit included), then sets a POSIX ACL of the mode's rwx bits, which the kernel
    overlay keeps in its upper, special bits untouched. The mount refused the ACL (ENOTSUP) and
    cp fell back to chmod(2) without the special bits: the sticky bits were lost. An ACL set by
    a user outside the file's group clears its set-group-ID bit, as on the kernel."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="unionfs-acl-") as base:
        os.chmod(base, 0o755)  # the user must reach the mounts
        source = os.path.join(base, "source")
        os.mkdir(source)
        _user_tree(source)
        script = ("cp -a %s w/copy; python3 -c 'import os, sys; os.setxattr(\"w/g\", \"%s\", bytes.fromhex(sys.argv[1]))' %s;"
                  " find w -printf '%%M %%U:%%G %%P\\n' | sort" % (source, xattrs.ACL, xattrs.EXTENDED_ACL.hex()))
        outputs = []
        for side in ("kernel", "unionfs"):
            lower, upper, work, mnt = _dirs(pathlib.Path(base) / side, "lower", "upper", "work", "mnt")
            _user_lower(lower)
            mounted = kernel_mount([lower], upper, work, mnt) if side == "kernel" else fuse_mount([lower], mnt, upper=upper)
            with mounted:
                done = subprocess.run(["sh", "-c", script], cwd=mnt, capture_output=True, text=True,
                                      user=65534, group=65534, extra_groups=[])
                outputs.append(done.stdout + done.stderr)
        assert "drwxrwxrwt 65534:65534 copy/sticky" in outputs[0] and "-rwxr-x--- 65534:100 g" in outputs[0]
        assert outputs[1] == outputs[0]


def _capability_scenario(root: str) -> list:
    """Writes, file capabilities, hard links and renames: what getxattr of security.capability
    answers after each step (the kernel asks it before every write and removes the capability
    when a file with one is written)."""
    import errno

    def write(name: str) -> None:
        fd = os.open(os.path.join(root, name), os.O_WRONLY | os.O_CREAT, 0o755)
        try:
            for _ in range(3):
                os.write(fd, b"x" * 4096)
        finally:
            os.close(fd)

    def caps(name: str):
        try:
            return os.getxattr(os.path.join(root, name), "security.capability")
        except OSError as error:
            return errno.errorcode[error.errno]

    seen = []
    os.mkdir(os.path.join(root, "d"))
    os.mkdir(os.path.join(root, "e"))
    for name in ("a", "c", "d/x", "e/x"):
        write(name)
    for name in ("c", "e/x"):
        os.setxattr(os.path.join(root, name), "security.capability", xattrs.CAPABILITY)
    os.link(os.path.join(root, "a"), os.path.join(root, "b"))
    seen.append(caps("a"))
    os.setxattr(os.path.join(root, "b"), "security.capability", xattrs.CAPABILITY)  # another name of a
    seen += [caps("a"), caps("b")]
    write("a")  # the kernel removes the capability
    write("d/x")
    seen += [caps("a"), caps("b"), caps("c"), caps("e/x")]
    os.rename(os.path.join(root, "c"), os.path.join(root, "a"))  # over a name the kernel asked about
    seen.append(caps("a"))
    write("a")
    seen.append(caps("a"))
    os.rename(os.path.join(root, "d"), os.path.join(root, "old"))
    os.rename(os.path.join(root, "e"), os.path.join(root, "d"))  # a directory moved over the path's parent
    seen += [caps("d/x"), caps("old/x")]
    write("d/x")
    seen.append(caps("d/x"))
    return seen


def test_the_capability_asked_before_every_write_is_answered_without_the_overlay(tmp_path):
    """The kernel asks a FUSE filesystem that serves xattrs for ``security.capability`` before
    every write(2) (libfuse 3.14 cannot negotiate FUSE_HANDLE_KILLPRIV_V2): the mount answers
    from a per-path record of files without one, so the overlay is asked at most once per file
    (never for a file the mount created), and
    what getxattr answers stays the kernel overlay's through hard links, renames and the
    capability's removal by a write."""
    from tests.support.mount import ThreadMount

    lower, upper, work, mnt = _dirs(tmp_path / "kernel", "lower", "upper", "work", "mnt")
    with kernel_mount([lower], upper, work, mnt):
        kernel = _capability_scenario(mnt)
    lower, upper, mnt = _dirs(tmp_path / "unionfs", "lower", "upper", "mnt")
    mount = ThreadMount([lower], upper, mnt)
    asked = []
    real = mount.overlay.getxattr

    def counting(path, name, *args):
        asked.append((path, name))
        return real(path, name, *args)

    mount.overlay.getxattr = counting  # type: ignore[method-assign]
    try:
        fd = os.open(os.path.join(mnt, "big"), os.O_WRONLY | os.O_CREAT, 0o644)
        for _ in range(200):
            os.write(fd, b"y" * 4096)
        os.close(fd)
        # a file the mount just created has none: the overlay is not asked at all
        assert asked.count(("/big", "security.capability")) == 0
        mounted = _capability_scenario(mnt)
    finally:
        mount.close()
    assert kernel[:3] == ["ENODATA", xattrs.CAPABILITY, xattrs.CAPABILITY]
    assert mounted == kernel


def test_noxattrs_serves_no_extended_attributes(tmp_path):
    """``--noxattrs`` (``-o noxattrs`` with mount -t fuse.unionfs): the mount offers no xattr
    operations, and the kernel answers every xattr call EOPNOTSUPP, as for a FUSE filesystem
    without them (nor asks for security.capability before each write)."""
    import errno

    from tests.support.mount import force_unmount, unionfs, wait_unmounted
    from unionfs.tools.mount import parse_kernel_options

    lower, upper, mnt, work = _dirs(tmp_path, "lower", "upper", "mnt", "work")
    with open(os.path.join(lower, "f"), "wb") as out:
        out.write(b"x")
    os.setxattr(os.path.join(lower, "f"), "user.a", b"1")
    assert parse_kernel_options(["lowerdir=%s,noxattrs" % lower]).xattrs is False
    assert parse_kernel_options(["lowerdir=%s" % lower]).xattrs is True
    for how in ("mount", "mount.fuse"):
        if how == "mount":
            unionfs("mount", lower, mnt, "--upper", upper, "--noxattrs")
        else:
            unionfs("mount.fuse", "unionfs", mnt, "-o", "lowerdir=%s,upperdir=%s,workdir=%s,noxattrs" % (lower, upper, work))
        try:
            path = os.path.join(mnt, "f")
            for call in (lambda: os.getxattr(path, "user.a"), lambda: os.listxattr(path),
                         lambda: os.setxattr(path, "user.b", b"2"), lambda: os.removexattr(path, "user.a")):
                with pytest.raises(OSError) as raised:
                    call()
                assert raised.value.errno == errno.EOPNOTSUPP
            with open(path, "ab") as out:
                out.write(b"y")
        finally:
            force_unmount(mnt)
            wait_unmounted(mnt)
    assert open(os.path.join(upper, "f"), "rb").read() == b"xyy"
    assert os.getxattr(os.path.join(lower, "f"), "user.a") == b"1"


def _acl_scenario(root: str) -> list:
    """Default ACLs inherited at creation (files, directories, FIFOs; a umask that would
    take more), the umask where there is none, and named entries granting and refusing
    reads, on a new file and on a lower one: each entry's mode, ACLs and who could read."""
    import errno

    def acls(path: str) -> tuple:
        found = []
        for name in (xattrs.ACL, "system.posix_acl_default"):
            try:
                found.append(os.getxattr(path, name).hex())
            except OSError as error:
                found.append(errno.errorcode[error.errno])
        return tuple(found)

    def readers(path: str) -> list:
        return [subprocess.run(["cat", path], capture_output=True, user=user, group=user, extra_groups=[]).returncode
                for user in (1, 2)]

    d = os.path.join(root, "d")
    os.mkdir(d)
    os.chmod(d, 0o755)
    with open(os.path.join(d, "before"), "wb") as out:  # made before d has a default ACL (the
        out.write(b"b")  # mount then knows d has none: the setxattr below must undo that)
    os.setxattr(d, "system.posix_acl_default", xattrs.EXTENDED_ACL)
    old = os.umask(0o077)
    try:
        with open(os.path.join(d, "f"), "wb") as out:
            out.write(b"f")
        os.mkdir(os.path.join(d, "sub"))
        os.mkfifo(os.path.join(d, "fifo"))
        with open(os.path.join(d, "sub", "deeper"), "wb") as out:  # the default ACL passed on
            out.write(b"g")
        with open(os.path.join(root, "plain"), "wb") as out:
            out.write(b"p")
        os.mkdir(os.path.join(root, "plaindir"))
    finally:
        os.umask(old)
    seen = []
    for name in ("d/f", "d/sub", "d/fifo", "d/sub/deeper", "plain", "plaindir", "d/before"):
        path = os.path.join(root, name)
        seen.append((name, oct(stat.S_IMODE(os.stat(path).st_mode)), acls(path)))
    secret = os.path.join(root, "secret")
    with open(secret, "wb") as out:
        out.write(b"s")
    os.chmod(secret, 0o600)
    os.setxattr(secret, xattrs.ACL, xattrs.acl((1, 6, 0xFFFFFFFF), (2, 4, 1), (4, 0, 0xFFFFFFFF),
                                              (0x10, 4, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)))
    seen += [("secret", readers(secret)), ("lower", readers(os.path.join(root, "lower")))]
    return seen


def test_posix_acls_are_checked_and_inherited_as_on_the_kernel_overlay():
    """The mount asks for FUSE_POSIX_ACL: the kernel checks named entries (user 1 may read
    by one, user 2 may not; a lower file's ACL counts too), and new entries get their
    parent's default ACL masked by the mode asked for (a FIFO too) or else the umask, as the
    kernel overlay's upper gives them. Before, named entries granted nothing, a new file
    under a default ACL lost its group class to the umask and a FIFO got no ACL."""
    import tempfile

    outcomes = []
    with tempfile.TemporaryDirectory(prefix="unionfs-acl-") as base:
        os.chmod(base, 0o755)
        for side in ("kernel", "unionfs"):
            lower, upper, work, mnt = _dirs(pathlib.Path(base) / side, "lower", "upper", "work", "mnt")
            for path in (lower, upper, mnt):
                os.chmod(path, 0o755)
            with open(os.path.join(lower, "lower"), "wb") as out:
                out.write(b"l")
            os.chmod(os.path.join(lower, "lower"), 0o600)
            os.setxattr(os.path.join(lower, "lower"), xattrs.ACL, xattrs.EXTENDED_ACL)
            mounted = kernel_mount([lower], upper, work, mnt) if side == "kernel" else fuse_mount([lower], mnt, upper=upper)
            with mounted:
                outcomes.append(_acl_scenario(mnt))
    kernel, unionfs = outcomes
    assert ("secret", [0, 1]) in kernel and ("lower", [0, 1]) in kernel
    assert kernel[0][1] == "0o640" and kernel[0][2][0] != "ENODATA"  # the default ACL, not umask 077
    assert unionfs == kernel
