"""One scenario of extended attributes, FIFOs and mknod, run with system calls on a mounted
directory (a kernel overlay, a unionfs mount) and with ``OverlayFS`` calls on the library, so
the kernel overlay is the oracle of both: the outcomes (value or errno) of every step and the
state left behind (merged view and upper) must agree."""

from __future__ import annotations

import errno
import os
import stat
import struct
from typing import Any, Callable, Dict, List, Sequence, Tuple

from fs import errors

from unionfs.testing import trees

#: a name longer than XATTR_NAME_MAX, and a value longer than XATTR_SIZE_MAX
LONG_NAME = "user." + "n" * 251
BIG_VALUE = b"v" * 65537
#: a vfs_cap_data (revision 2, effective) granting CAP_NET_RAW
CAPABILITY = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)
ACL = "system.posix_acl_access"
DEFAULT_ACL = "system.posix_acl_default"


def acl(*entries: Tuple[int, int, int]) -> bytes:
    """A POSIX ACL as its xattr holds it (version 2; entries (tag, permissions, id))."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in entries)


_ANY = 0xFFFFFFFF
#: rwxrwxrwx as an ACL (what ``cp -a`` sets for a 1777 directory: mode bits only, sticky kept)
MINIMAL_ACL = acl((1, 7, _ANY), (4, 7, _ANY), (0x20, 7, _ANY))
#: rwx for the owner and for user 1, r-x for the group and as the mask, nothing for others
EXTENDED_ACL = acl((1, 7, _ANY), (2, 7, 1), (4, 5, _ANY), (0x10, 5, _ANY), (0x20, 0, _ANY))


def build_lower(root: str) -> None:
    """The lower: a file with attributes of every namespace the overlay treats differently
    (its own private one, the escaped form of it), a directory, a link, a FIFO, a plain file."""
    os.makedirs(root, exist_ok=True)
    f = os.path.join(root, "f")
    with open(f, "wb") as out:
        out.write(b"data")
    for name, value in (("user.a", b"1"), ("trusted.t", b"t"), ("security.s", b"s"),
                        ("trusted.overlay.overlay.esc", b"e"), ("trusted.overlay.priv", b"p"),
                        ("user.overlay.u", b"u")):
        os.setxattr(f, name, value)
    os.mkdir(os.path.join(root, "d"))
    os.setxattr(os.path.join(root, "d"), "user.d", b"dir")
    with open(os.path.join(root, "d", "inner"), "wb") as out:
        out.write(b"inner")
    os.symlink("f", os.path.join(root, "ln"))
    os.setxattr(os.path.join(root, "ln"), "trusted.l", b"link", follow_symlinks=False)
    os.mkfifo(os.path.join(root, "p"), 0o640)
    os.setxattr(os.path.join(root, "p"), "trusted.p", b"fifo")
    os.mkfifo(os.path.join(root, "d", "p"), 0o600)
    with open(os.path.join(root, "g"), "wb") as out:
        out.write(b"g")
    with open(os.path.join(root, "cap"), "wb") as out:  # file capabilities (CAP_NET_RAW): chown drops them
        out.write(b"#!/bin/sh\n")
    os.chown(os.path.join(root, "cap"), 1, 1)
    os.setxattr(os.path.join(root, "cap"), "security.capability", CAPABILITY)
    with open(os.path.join(root, "suid"), "wb") as out:  # a copy-up keeps set-user-ID and set-group-ID
        out.write(b"#!/bin/sh\n")
    os.chown(os.path.join(root, "suid"), 1, 100)
    os.chmod(os.path.join(root, "suid"), 0o6775)
    os.mkdir(os.path.join(root, "sticky"))  # the special bits of directories a POSIX ACL keeps
    os.chmod(os.path.join(root, "sticky"), 0o1700)
    os.mkdir(os.path.join(root, "sgid"))
    os.chmod(os.path.join(root, "sgid"), 0o2775)
    for entry in ("f", "d", "p", "g", "cap", "ln", "suid", "sticky", "sgid", os.path.join("d", "p"), os.path.join("d", "inner")):
        os.utime(os.path.join(root, entry), (1000, 1000), follow_symlinks=False)


#: (operation, path, arguments, follow links); NOLINK paths are used with follow=False
STEPS: Sequence[Tuple[str, str, Tuple[Any, ...], bool]] = (
    ("listxattr", "f", (), True),
    ("listxattr", "d", (), True),
    ("listxattr", "ln", (), False),
    ("listxattr", "p", (), True),
    ("listxattr", "g", (), True),
    ("listxattr", "missing", (), True),
    ("getxattr", "f", ("user.a",), True),
    ("getxattr", "f", ("trusted.t",), True),
    ("getxattr", "f", ("security.s",), True),
    ("getxattr", "f", ("trusted.overlay.esc",), True),
    ("getxattr", "f", ("trusted.overlay.priv",), True),
    ("getxattr", "f", ("user.overlay.u",), True),
    ("getxattr", "f", ("user.none",), True),
    ("getxattr", "f", ("",), True),
    ("getxattr", "f", (LONG_NAME,), True),
    ("getxattr", "f", ("foo.bar",), True),
    ("getxattr", "f", ("user.",), True),
    ("getxattr", "missing", ("user.a",), True),
    ("getxattr", "ln", ("user.a",), False),
    ("getxattr", "ln", ("trusted.l",), False),
    ("getxattr", "p", ("user.a",), True),
    ("getxattr", "p", ("trusted.p",), True),
    ("getxattr", "f", ("user.a",), True),  # through the link, as getxattr(2) follows
    ("setxattr", "g", ("user.x", b"1", os.XATTR_REPLACE), True),
    ("removexattr", "g", ("user.none",), True),
    ("setxattr", "f", ("system.foo", b"1", 0), True),
    ("setxattr", "f", ("foo.x", b"1", 0), True),
    ("setxattr", "f", ("user.", b"1", 0), True),
    ("setxattr", "f", ("", b"1", 0), True),
    ("setxattr", "f", (LONG_NAME, b"1", 0), True),
    ("setxattr", "f", ("user.big", BIG_VALUE, 0), True),
    ("setxattr", "missing", ("user.a", b"1", 0), True),
    ("setxattr", "ln", ("user.a", b"1", 0), False),
    ("removexattr", "ln", ("user.a",), False),
    ("setxattr", "p", ("user.a", b"1", 0), True),
    ("setxattr", "f", ("user.b", b"2", os.XATTR_CREATE), True),
    ("setxattr", "f", ("user.b", b"3", os.XATTR_CREATE), True),
    ("setxattr", "f", ("user.b", b"4", os.XATTR_REPLACE), True),
    ("setxattr", "f", ("user.c", b"5", os.XATTR_REPLACE), True),
    ("setxattr", "f", ("user.empty", b"", 0), True),
    ("getxattr", "f", ("user.empty",), True),
    ("setxattr", "f", ("trusted.overlay.opaque", b"y", 0), True),
    ("getxattr", "f", ("trusted.overlay.opaque",), True),
    ("removexattr", "f", ("user.a",), True),
    ("removexattr", "f", ("user.a",), True),
    ("getxattr", "f", ("user.a",), True),
    ("setxattr", "d", ("user.e", b"6", 0), True),
    ("setxattr", "d", ("trusted.overlay.opaque", b"y", 0), True),
    ("listxattr", "d", (), True),
    ("listdir", "d", (), True),  # a directory's escaped opaque name makes nothing opaque
    ("setxattr", "ln", ("trusted.m", b"7", 0), False),
    ("setxattr", "p", ("trusted.q", b"8", 0), True),
    ("listxattr", "f", (), True),
    ("listxattr", "p", (), True),
    ("listxattr", "ln", (), False),
    ("chmod", "cap", (0o750,), False),  # the copy-up keeps the capability (set after the owner)
    ("getxattr", "cap", ("security.capability",), True),
    ("setxattr", "suid", ("user.s", b"1", 0), True),  # a copy-up: owner and mode as they were
    ("type", "suid", (), False),
    # POSIX ACLs: kept in the upper, their filesystem sets the rwx bits from them (sticky and
    # set-group-ID stay) and keeps them in step with chmod; a minimal one is the mode only
    ("setxattr", "sticky", (ACL, MINIMAL_ACL, 0), True),
    ("type", "sticky", (), False),
    ("getxattr", "sticky", (ACL,), True),
    ("setxattr", "sgid", (ACL, EXTENDED_ACL, 0), True),
    ("type", "sgid", (), False),
    ("getxattr", "sgid", (ACL,), True),
    ("chmod", "sgid", (0o2750,), False),
    ("getxattr", "sgid", (ACL,), True),
    ("setxattr", "sgid", (DEFAULT_ACL, EXTENDED_ACL, 0), True),
    ("listxattr", "sgid", (), True),
    ("removexattr", "sgid", (DEFAULT_ACL,), True),
    ("setxattr", "g", (DEFAULT_ACL, EXTENDED_ACL, 0), True),  # a default ACL on a file: EACCES
    ("removexattr", "sgid", (ACL,), True),
    ("type", "sgid", (), False),
    ("type", "p", (), False),
    ("type", "d/p", (), False),
    ("mkfifo", "q", (0o640,), False),
    ("mkfifo", "q", (0o640,), False),
    ("mkfifo", "d/missing/q", (0o640,), False),
    ("type", "q", (), False),
    ("mknod", "c", (stat.S_IFCHR | 0o600, 0), False),
    ("mknod", "sock", (stat.S_IFSOCK | 0o600, 0), False),
    ("type", "sock", (), False),
    ("chmod", "d/p", (0o606,), False),  # copies the lower FIFO up: made, never opened
    ("type", "d/p", (), False),
    ("rename", "p", ("p2",), False),
    ("type", "p2", (), False),
    ("listxattr", "p2", (), True),
    ("remove", "g", (), False),
    ("mkfifo", "g", (0o600,), False),  # over the whiteout of a lower file
    ("type", "g", (), False),
    ("mknod", "reg", (stat.S_IFREG | 0o640, 0), False),
    ("type", "reg", (), False),
    ("remove", "q", (), False),
    ("remove", "sock", (), False),
    ("listdir", "", (), True),
    ("listdir", "d", (), True),
)


def _outcome(call: Callable[[], Any]) -> Tuple[str, Any]:
    try:
        value = call()
    except OSError as error:
        return ("error", errno.errorcode.get(error.errno, error.errno))
    if isinstance(value, list):
        value = sorted(value)
    return ("ok", value)


def _type_of(mode: int) -> Tuple[int, int]:
    return (stat.S_IFMT(mode), stat.S_IMODE(mode))


def run_os(root: str) -> List[Tuple[str, Any]]:
    """The scenario with system calls on the mounted directory ``root``."""
    results = []
    for operation, relative, args, follow in STEPS:
        path = os.path.join(root, relative)

        def call() -> Any:
            if operation == "listxattr":
                return os.listxattr(path, follow_symlinks=follow)
            if operation == "getxattr":
                return os.getxattr(path, args[0], follow_symlinks=follow)
            if operation == "setxattr":
                return os.setxattr(path, args[0], args[1], args[2], follow_symlinks=follow)
            if operation == "removexattr":
                return os.removexattr(path, args[0], follow_symlinks=follow)
            if operation == "listdir":
                return os.listdir(path)
            if operation == "type":
                return _type_of(os.lstat(path).st_mode)
            if operation == "mkfifo":
                return os.mkfifo(path, args[0])
            if operation == "mknod":
                return os.mknod(path, args[0], args[1])
            if operation == "chmod":
                return os.chmod(path, args[0])
            if operation == "rename":
                return os.rename(path, os.path.join(root, args[0]))
            if operation == "remove":
                return os.remove(path)
            raise AssertionError(operation)

        results.append((operation, relative, _outcome(call)))
    return results


def run_library(overlay: Any) -> List[Tuple[str, Any]]:
    """The scenario with ``OverlayFS`` calls; errors turned into errnos by the mount's one table."""
    from fs.enums import ResourceType
    from fs.permissions import Permissions

    from unionfs.tools.mount import errno_of

    kinds = {ResourceType.file: stat.S_IFREG, ResourceType.directory: stat.S_IFDIR, ResourceType.fifo: stat.S_IFIFO,
             ResourceType.socket: stat.S_IFSOCK, ResourceType.character: stat.S_IFCHR, ResourceType.symlink: stat.S_IFLNK}
    results = []
    for operation, relative, args, follow in STEPS:
        path = "/" + relative

        def call() -> Any:
            if operation == "listxattr":
                return overlay.listxattr(path, follow_symlinks=follow)
            if operation == "getxattr":
                return overlay.getxattr(path, args[0], follow_symlinks=follow)
            if operation == "setxattr":
                return overlay.setxattr(path, args[0], args[1], args[2], follow_symlinks=follow)
            if operation == "removexattr":
                return overlay.removexattr(path, args[0], follow_symlinks=follow)
            if operation == "listdir":
                return overlay.listdir(path)
            if operation == "type":
                info = overlay.getinfo(path, ["details", "access"])
                return (kinds[info.type], info.permissions.mode)
            if operation == "mkfifo":
                return overlay.mkfifo(path, args[0])
            if operation == "mknod":
                return overlay.mknod(path, args[0], args[1])
            if operation == "chmod":
                return overlay.setinfo(path, {"access": {"permissions": Permissions(mode=args[0]).dump()}})
            if operation == "rename":
                return overlay.rename(path, "/" + args[0])
            if operation == "remove":
                return overlay.remove(path)
            raise AssertionError(operation)

        def translated() -> Any:
            try:
                return call()
            except errors.FSError as error:
                raise OSError(errno_of(error), str(error)) from None

        results.append((operation, relative, _outcome(translated)))
    return results


def upper_state(upper: str) -> Dict[str, Tuple[Any, ...]]:
    """Each entry of an upper directory: its type and mode, and its xattrs but the kernel's
    own bookkeeping (origin, impure, ...: private names that are not escaped user names)."""
    state = {}
    for relative, path, status in trees.disk_entries(upper, skip=lambda relative: relative == "/.unionfs"):
        if stat.S_ISCHR(status.st_mode) and status.st_rdev == 0:
            continue  # a kernel whiteout (the library's are sidecar records)
        kept = {}
        for attribute in os.listxattr(path, follow_symlinks=False):
            if attribute.startswith("trusted.overlay.") and not attribute.startswith("trusted.overlay.overlay."):
                continue
            kept[attribute] = os.getxattr(path, attribute, follow_symlinks=False)
        # the lower's old times must be kept by copy-up; new entries are made "now" on each side
        mtime = int(status.st_mtime) if status.st_mtime < 10**6 else "new"
        state[relative[1:]] = (_type_of(status.st_mode), mtime, sorted(kept.items()))
    return state
