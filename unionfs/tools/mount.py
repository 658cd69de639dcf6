"""``unionfs mount``: an :class:`~unionfs.OverlayFS` as a real filesystem, through FUSE.

The binding is `mfusepy <https://pypi.org/project/mfusepy/>`_ (``pip install
'unionfs[mount]'``): ctypes over libfuse 3's high-level, path-based API, so nothing is
compiled and every FUSE operation maps onto one path-based ``OverlayFS`` call. libfuse
runs the operations on its own worker threads; ctypes drops the GIL while libfuse waits
for the kernel, and data I/O on an open file runs outside the overlay's lock (``pread``
and ``pwrite`` on the upper file's descriptor), so a large read never stalls a ``stat``.
``docs/mount.rst`` has the choice of binding, the caching and the deviations.

The operations answer with the kernel overlay's errors: one translation from
``fs.errors`` to errno (:func:`errno_of`), the inverse of the kernel oracle's table in
``docs/semantics.rst``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple, TypeVar, Union, cast

import attr

from .. import _fsimport  # noqa: F401
from fs import errors
from fs.enums import ResourceType
from fs.path import dirname
from fs.permissions import Permissions

from ..errors import (
    AttributeExists, AttributeNameInvalid, AttributeTooLarge, IllegalDestination, LinkLoop, MountError,
    MountUnavailable, NoSuchAttribute, NotALink, ReservedPath, UpperInUse,
)
from ..core.copy_up import SPECIAL_TYPES
from ..core.durable import system_root
from ..core.xattr import ACLS
from .posix_acl import Inherited, inherit
from ..core.file import FollowingReader
from ..io import read_fully
from ..overlay import OverlayFS

#: libfuse's worker threads. Two: one serves the overlay while the other waits on a file's
#: data (pread, pwrite, fsync run outside the overlay's lock), and no more, because only one
#: thread runs Python at a time: every further worker only hands the GIL round. Measured
#: (benchmarks/RESULTS.md): ``git status`` in a 20k-file repository, whose preload threads keep
#: every worker busy, 1.66 s with 16 workers, 1.38 s with 2 (0.93 s with one); ``tar x`` 0.9x
WORKER_THREADS = 2
#: the kernel's "current time" and "leave alone" markers in utimensat's tv_nsec
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4
#: readdir's flag asking for attributes, and the filler's flag giving them (libfuse 3)
FUSE_READDIR_PLUS = 1
FUSE_FILL_DIR_PLUS = 2
#: the connection's capabilities (fuse_common.h): listings with attributes, and whether the
#: kernel decides per request to ask for them
FUSE_CAP_READDIRPLUS = 1 << 13
FUSE_CAP_READDIRPLUS_AUTO = 1 << 14
#: ... the kernel checks permissions by POSIX ACLs (read through getxattr), and leaves a new
#: entry's mode unmasked for the filesystem to apply the umask or its parent's default ACL
FUSE_CAP_POSIX_ACL = 1 << 19
FUSE_CAP_DONT_MASK = 1 << 6

#: the attribute the kernel asks for before every write(2) to a file (file capabilities), and
#: how many paths known not to have it the mount keeps (see ``Operations.no_capability``)
CAPABILITY = "security.capability"
CAPABILITY_BYTES = CAPABILITY.encode()
CAPABILITY_CACHE = 1024

#: seconds the kernel may keep names and attributes: the mount is the only writer of its
#: layers (lowers never change under an overlay, the upper only through it), so the only
#: staleness left is the other name of a hard link, whose size and times the kernel may
#: show this long after a write through the first name
CACHE_TIMEOUT = 1.0
#: the largest request libfuse 3 negotiates (1 MiB, with max_pages)
MAX_IO = 1 << 20
#: libfuse 3's shared library, as the dynamic loader knows it
LIBFUSE3_SONAME = "libfuse3.so.3"


def load_binding() -> Any:
    """The ``mfusepy`` module, or :class:`MountUnavailable` saying how to get it."""
    if "FUSE_LIBRARY_PATH" not in os.environ:
        # mfusepy prefers libfuse 2 where both are installed (unionfs-fuse pulls it in);
        # libfuse 3 has rename flags, readdirplus and 1 MiB requests. Its soname first: the
        # dynamic loader finds that itself, where find_library runs `ldconfig -p` (a process
        # per mount)
        try:
            ctypes.CDLL(LIBFUSE3_SONAME)
            found: Optional[str] = LIBFUSE3_SONAME
        except OSError:
            from ctypes.util import find_library

            found = find_library("fuse3")
        if found:
            os.environ["FUSE_LIBRARY_PATH"] = found
    try:
        import mfusepy
    except ImportError as error:
        raise MountUnavailable(
            msg="mounting needs the 'mount' extra: pip install 'unionfs[mount]' (mfusepy) and libfuse 3 (%s)" % error
        ) from None
    except (OSError, EnvironmentError) as error:  # mfusepy raises when libfuse cannot be loaded
        raise MountUnavailable(msg="libfuse 3 cannot be loaded (apt-get install fuse3): %s" % error) from None
    return mfusepy


# -- errors ------------------------------------------------------------------------------------------

#: fs.errors class -> errno, most specific first (the kernel oracle's table, read backwards)
_ERRNO_OF: Sequence[Tuple[type, int]] = (
    (NoSuchAttribute, errno.ENODATA),
    (AttributeExists, errno.EEXIST),
    (AttributeNameInvalid, errno.ERANGE),  # or EINVAL, which it carries as its OS error
    (AttributeTooLarge, errno.E2BIG),
    (errors.DirectoryNotEmpty, errno.ENOTEMPTY),
    (errors.RemoveRootError, errno.EBUSY),
    (IllegalDestination, errno.EINVAL),
    (LinkLoop, errno.ELOOP),
    (NotALink, errno.EINVAL),
    (errors.DirectoryExpected, errno.ENOTDIR),
    (errors.FileExpected, errno.EISDIR),
    (errors.DestinationExists, errno.EEXIST),
    (errors.DirectoryExists, errno.EEXIST),
    (errors.FileExists, errno.EEXIST),
    (errors.ResourceNotFound, errno.ENOENT),
    (ReservedPath, errno.EPERM),
    (errors.PermissionDenied, errno.EACCES),
    (errors.ResourceReadOnly, errno.EROFS),
    (errors.InsufficientStorage, errno.ENOSPC),
    (errors.InvalidCharsInPath, errno.EINVAL),
    (errors.Unsupported, errno.EOPNOTSUPP),
)


def errno_of(error: BaseException) -> int:
    """The errno the kernel overlay gives where ``OverlayFS`` raised ``error``. An error that
    wraps an OS error (``fs.errors`` keep it as ``exc``) keeps that errno."""
    if isinstance(error, OSError) and error.errno:
        return error.errno
    inner = getattr(error, "exc", None)
    if isinstance(inner, OSError) and inner.errno and not isinstance(error, ReservedPath):
        return inner.errno
    for cls, number in _ERRNO_OF:
        if isinstance(error, cls):
            return number
    return errno.EIO


_T = TypeVar("_T")
_NO_OWNER: Any = object()


def _oserror(number: int, path: Optional[str] = None) -> OSError:
    return OSError(number, os.strerror(number), path)


# -- inode numbers -------------------------------------------------------------------------------------


#: where the mount's own inode numbers start: above any a layer's filesystem hands out
OWN_INODES = 1 << 63


class Inodes:
    """st_ino for every name the mount has shown: a name keeps its number for the mount's
    life, across copy-up (which changes the real inode) and rename. The number is the
    entry's own inode number in the layer it was first seen in, as the kernel overlay's
    with its layers on one filesystem (programs that keep inode numbers, such as git's
    index, find them unchanged), unless another entry of the mount has that number already
    (layers on different filesystems): then, and for entries without one (archives, memory),
    it is one of the mount's own, from :data:`OWN_INODES` up. The names of one hard link
    share one number (the same device and inode). As on the kernel overlay, a copy-up that
    breaks a hard link (one name of a lower file with several names copied up alone) gives
    that name the number of its copy: it is another file now, and tools that match
    (st_dev, st_ino), ``cp -a``, ``tar``, ``du``, must not take the two for one."""

    def __init__(self) -> None:
        self._by_path: Dict[str, int] = {"/": 1}
        #: number -> (device, inode) of the layer entry that gave it (``None``: the mount's own)
        self._owners: Dict[int, Optional[Tuple[int, int]]] = {1: None}
        #: name -> (device, inode) of the file it showed as one of its several names
        self._linked: Dict[str, Tuple[int, int]] = {}
        self._next = OWN_INODES
        self._lock = threading.Lock()

    def get(self, path: str, real: Optional[Tuple[int, int, int]] = None, is_dir: bool = False,
            nlink: int = 1) -> int:
        """The number of ``path``; ``real`` is (0, device, inode) of its entry where the layer
        has one, ``nlink`` its link count. A directory never shares its number (a second path
        with the same directory would look like a loop to ``find``)."""
        number = self._by_path.get(path)
        linked = self._linked.get(path)
        if number is not None and (linked is None or real is None or linked == real[1:]) and \
                (nlink == 1 or linked is not None or real is None or is_dir):
            return number
        with self._lock:
            number = self._by_path.get(path)
            linked = self._linked.get(path)
            if number is None or (linked is not None and real is not None and linked != real[1:] and nlink > 0):
                # new, or one name of a hard link that is another file now: a copy-up broke the
                # link (an open file's fstat after its unlink, nlink 0, says nothing of the name)
                self._linked.pop(path, None)
                number = self._number(real, is_dir, nlink)
                self._by_path[path] = number
            if real is not None and nlink > 1 and not is_dir:
                self._linked[path] = (real[1], real[2])
            return number

    def linked_number(self, path: str) -> Optional[int]:
        """The number of ``path`` if it was last seen as one of several names of a file."""
        return self._by_path.get(path) if path in self._linked else None

    def _number(self, real: Optional[Tuple[int, int, int]], is_dir: bool, nlink: int = 1) -> int:
        if real is not None and 0 < real[2] < OWN_INODES:
            key = (real[1], real[2])
            owner = self._owners.get(real[2], _NO_OWNER)
            if owner is _NO_OWNER:
                self._owners[real[2]] = key
                return real[2]
            if owner == key and not is_dir and nlink > 1:
                # another name of the same file: a hard link. Only while it has several names:
                # a file with one is a new file the upper gave a freed inode number (the file
                # of a metadata-only copy replaced at its data copy-up), whose old number a
                # name still shows
                return real[2]
        number = self._next
        self._next += 1
        return number

    def share(self, existing: str, new: str) -> None:
        """``new`` became another name of ``existing`` (link(2))."""
        with self._lock:
            number = self._by_path.get(existing)
            if number is not None:
                self._by_path[new] = number

    def moved(self, src: str, dst: str) -> None:
        """rename(2): ``dst`` (and what is below it) now has the numbers ``src`` had."""
        with self._lock:
            _move_below(self._by_path, src, dst)
            _move_below(self._linked, src, dst)

    def forget(self, path: str) -> None:
        with self._lock:
            self._by_path.pop(path, None)
            self._linked.pop(path, None)

    def other_names(self, path: str) -> List[str]:
        """The other names shown with the number of ``path`` (the names of one hard link)."""
        with self._lock:
            number = self._by_path.get(path)
            if number is None:
                return []
            return [other for other, value in self._by_path.items() if value == number and other != path]


def _move_below(table: Dict[str, Any], src: str, dst: str) -> None:
    """Rename the keys ``src`` and below to ``dst`` and below, dropping what ``dst`` had."""
    prefix, dst_prefix = src.rstrip("/") + "/", dst.rstrip("/") + "/"
    for path in [p for p in table if p == dst or p.startswith(dst_prefix)]:
        del table[path]
    moved = [(p, value) for p, value in table.items() if p == src or p.startswith(prefix)]
    for path, _ in moved:
        del table[path]
    for path, value in moved:
        table[dst + path[len(src):]] = value


def _invalidate(paths: Sequence[str]) -> None:
    """Drop what the kernel caches of ``paths`` (attributes, data), from a request's thread:
    the mount's caching assumes each name changes only through itself, which the other
    names of a hard link break (libfuse's ``fuse_invalidate_path``; a no-op where the
    library or the request context is missing)."""
    if not paths:
        return
    try:
        import mfusepy

        library = mfusepy._libfuse
        context = library.fuse_get_context()
        if not context or not context.contents.fuse:
            return
        invalidate = library.fuse_invalidate_path
        invalidate.argtypes = (ctypes.c_void_p, ctypes.c_char_p)
        for path in paths:
            invalidate(ctypes.c_void_p(context.contents.fuse), os.fsencode(path))
    except (ImportError, AttributeError, OSError, ValueError):
        return


# -- open files ----------------------------------------------------------------------------------------


@attr.s(slots=True, eq=False)
class Handle:
    """One open file: the overlay's stream, and its descriptor where reads and writes can
    go straight to it (upper files; a read handle on a lower file must follow a copy-up,
    so it reads through its stream under its own lock)."""

    stream: Any = attr.ib()
    path: str = attr.ib()
    writable: bool = attr.ib()
    append: bool = attr.ib()
    fd: Optional[int] = attr.ib(default=None)
    lock: threading.Lock = attr.ib(factory=threading.Lock)
    #: a writer of a file with other names: what they show the kernel is stale after a write
    linked: bool = attr.ib(default=False)

    def __attrs_post_init__(self) -> None:
        try:
            self.fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError, errors.FSError):
            self.fd = None

    def read(self, size: int, offset: int) -> bytes:
        if self.fd is not None:
            return os.pread(self.fd, size, offset)
        if isinstance(self.stream, FollowingReader):
            # a lower file's reader: pread of the file it reads now, under its own lock
            return self.stream.pread(size, offset)
        with self.lock:
            self.stream.seek(offset)
            return read_fully(self.stream, size)

    def write(self, data: bytes, offset: int) -> int:
        if self.fd is not None and not self.append:
            return os.pwrite(self.fd, data, offset)
        with self.lock:
            if self.fd is not None:  # O_APPEND: at the end, whatever offset the kernel computed
                return os.pwrite(self.fd, data, os.fstat(self.fd).st_size)
            if self.append:
                self.stream.seek(0, os.SEEK_END)
            else:
                self.stream.seek(offset)
            return self.stream.write(data) or 0

    def truncate(self, length: int) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, length)
        else:
            with self.lock:
                self.stream.truncate(length)

    def close(self) -> None:
        self.stream.close()


def _open_mode(flags: int) -> Tuple[str, bool, bool]:
    """The ``openbin`` mode for open(2) ``flags`` of an existing file: (mode, writable, append)."""
    access = flags & os.O_ACCMODE
    writable = access != os.O_RDONLY
    append = bool(flags & os.O_APPEND)
    truncate = bool(flags & os.O_TRUNC)
    if not writable and not truncate:
        return "rb", False, False
    if truncate:
        return "w+b", writable, append  # O_RDONLY|O_TRUNC truncates too on Linux
    return ("a+b" if append else "r+b"), True, append


# -- the operations ------------------------------------------------------------------------------------


def _caller() -> Tuple[int, int]:
    """uid and gid of the process whose request this thread serves."""
    uid, gid, _pid = _context()
    return uid, gid


def _context() -> Tuple[int, int, int]:
    """uid, gid and pid of the process whose request this thread serves."""
    import mfusepy

    return cast(Tuple[int, int, int], mfusepy.fuse_get_context())


def _umask() -> int:
    """The umask of the process whose request this thread serves (FUSE sends it with every
    creation)."""
    import mfusepy

    return int(mfusepy._libfuse.fuse_get_context().contents.umask)


def _groups(pid: int) -> List[int]:
    """The supplementary groups of process ``pid`` (none if it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as status:
            for line in status:
                if line.startswith("Groups:"):
                    return [int(group) for group in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return []


class _Answered(threading.local):
    """Per libfuse worker thread: the entry a SETATTR part or a CREATE just changed, with its
    ``lstat`` after the change, for the getattr libfuse's high-level API calls next on the
    same thread (before it replies with the attributes). Taken by that getattr whatever it
    asks for, so it never outlives the request."""

    last: Optional[Tuple[str, os.stat_result]] = None


class Operations:
    """The FUSE operations of one mount, each one ``OverlayFS`` call. Errors come back as
    :class:`OSError` with the kernel overlay's errno (mfusepy turns those into replies)."""

    use_ns = True  # times as nanoseconds, as mfusepy 3 wants

    def __init__(
        self,
        overlay: OverlayFS,
        statfs_path: Optional[str] = None,
        on_ready: Optional[Callable[[], None]] = None,
        own_uid: Optional[int] = None,
        xattrs: bool = True,
        readdirplus: bool = True,
        defer_sync: bool = True,
    ) -> None:
        self.overlay = overlay
        self.readdirplus = readdirplus
        self.statfs_path = statfs_path
        self.on_ready = on_ready
        self.inodes = Inodes()
        self.handles: Dict[int, Handle] = {}
        self.dirs: Dict[int, str] = {}  # open directories: their path
        self.listings: Dict[int, List[List[Any]]] = {}  # open directories: what readdir continues
        self._next_fh = 1
        self._fh_lock = threading.Lock()
        upper = overlay.stack.upper
        if upper is None or system_root(upper.fs) is not None:
            # every writable handle writes through its descriptor (pwrite), so close(2) has
            # nothing to flush: without the operation the kernel stops sending FLUSH after
            # its first ENOSYS, one request less per close
            self.flush = None  # type: ignore[assignment]
        if not xattrs:
            # -o noxattrs: no xattr operations at all; the kernel, given ENOSYS, stops asking and
            # answers EOPNOTSUPP itself (a filesystem without xattrs), security.capability too
            self.getxattr = self.listxattr = self.setxattr = self.removexattr = None  # type: ignore[assignment]
        self.xattrs = xattrs
        #: whether new entries can carry ACLs (an upper with system paths: its filesystem
        #: keeps them); elsewhere a new entry gets the mode less the umask
        self._acl_upper = upper is not None and system_root(upper.fs) is not None
        #: set at init: the kernel checks ACLs and leaves creation modes unmasked (FUSE_POSIX_ACL)
        self.posix_acl = False
        #: paths whose file has no security.capability, as last asked: the kernel asks before
        #: every write(2) (file_remove_privs), and without FUSE_HANDLE_KILLPRIV_V2 (libfuse
        #: 3.14 cannot negotiate it) nothing else spares the mount that request
        self.no_capability: Set[str] = set()
        #: directories without a default ACL, as last asked (every creation in one asks it:
        #: what the new entry inherits); kept and dropped as ``no_capability`` is
        self.no_default_acl: Set[str] = set()
        #: other names of hard-linked files written since their attributes were last dropped:
        #: the next open of one drops them (a reader opening it after the write must see it,
        #: and RELEASE, which drops them too, may come after the reader's open)
        self.stale_names: Set[str] = set()
        self._capability_lock = threading.Lock()
        self._capability_epoch = 0  # counts what may have made an answer stale (see _other_file_at)
        # a kernel filesystem's durability: what an operation changed is durable after fsync,
        # syncfs or unmount, not when the operation returns (four fsyncs per file of a tar x);
        # what orders a change's data before its name still syncs at once (docs/mount.rst);
        # -o sync keeps every operation durable when it returns
        if defer_sync:
            overlay.defer_sync()
        self._euid = os.geteuid() if own_uid is None else own_uid
        self._egid = os.getegid()
        self._now_ns = time.time_ns
        self._answered = _Answered()

    # -- plumbing ------------------------------------------------------------------------------

    def _call(self, function: Callable[..., _T], *args: Any) -> _T:
        try:
            return function(*args)
        except errors.FSError as error:
            raise _oserror(errno_of(error), args[0] if args and isinstance(args[0], str) else None) from None

    def _new_fh(self, handle: Handle) -> int:
        with self._fh_lock:
            fh = self._next_fh
            self._next_fh += 1
            self.handles[fh] = handle
        return fh

    def _handle(self, fh: Optional[int]) -> Handle:
        handle = self.handles.get(fh) if fh is not None else None
        if handle is None:
            raise _oserror(errno.EBADF)
        return handle

    def _give_to_caller(self, path: str) -> None:
        """A new entry belongs to the process that made it (the daemon runs as root)."""
        uid, gid = _caller()
        if uid != self._euid or gid != self._egid:
            self._call(self.overlay.setinfo, path, {"access": {"uid": uid, "gid": gid}}, False)

    # -- lifecycle -----------------------------------------------------------------------------

    def init_with_config(self, conn: Any, config: Any) -> None:
        if config is not None:
            # operations on open files whose name is gone (hard_remove) come with a NULL
            # path: the descriptor answers (fstat, ftruncate, fsync)
            config.nullpath_ok = 1
        if conn is not None and self.xattrs and conn.capable & FUSE_CAP_POSIX_ACL and conn.capable & FUSE_CAP_DONT_MASK:
            # ACLs checked as the kernel overlay checks them (its upper's filesystem does):
            # the kernel reads them through getxattr; the mount applies umask and default ACLs
            conn.want |= FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK
            self.posix_acl = True
        if conn is not None and not self.readdirplus:
            conn.want &= ~(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO)  # plain READDIR only
        elif conn is not None and conn.capable & FUSE_CAP_READDIRPLUS:
            # READDIRPLUS for every listing request, not only the first of a directory (the
            # "auto" mode's choice): each reply then carries its entries' attributes
            conn.want = (conn.want | FUSE_CAP_READDIRPLUS) & ~FUSE_CAP_READDIRPLUS_AUTO
        if self.on_ready is not None:
            self.on_ready()

    def destroy(self, path: str) -> None:
        for handle in list(self.handles.values()):
            try:
                handle.close()
            except Exception:  # closing at unmount: what failed was already answered
                pass
        self.handles.clear()
        self.overlay.sync()  # unmounted: everything acknowledged is durable

    # -- attributes ----------------------------------------------------------------------------

    def getattr(self, path: Optional[str], fh: Optional[int] = None) -> Dict[str, Any]:
        answered = self._answered
        last = answered.last
        if last is not None:
            # the getattr that ends a SETATTR or CREATE on this thread: the entry's lstat
            # right after the change (set_stat's, or the new file's fstat), the one a
            # lookup now would make (the same translation, the same inode numbers)
            answered.last = None
            if last[0] == path:
                return self._stat_attributes(path, last[1])
        return self._getattr(path, fh)

    def _getattr(self, path: Optional[str], fh: Optional[int] = None) -> Dict[str, Any]:
        """getattr as asked now (the mount's own callers: never an answer kept by a SETATTR)."""
        if path is None:  # an open file removed from the namespace: its descriptor answers
            handle = self._handle(fh)
            if handle.fd is None:
                path = handle.path  # a lower file's reader: the name, if it is still there
            else:
                return self._stat_attributes(handle.path, os.fstat(handle.fd))
        # the top layer's own lstat where it is a directory on disk (one system call);
        # details and access where it is not (archives, memory)
        st = self._call(self.overlay.lstat, path)
        if st is not None:
            return self._stat_attributes(path, st)
        attributes = self._attributes(path, self._call(self.overlay.getinfo, path, ("details", "access")))
        if self.inodes.linked_number(path) is not None:
            # one name of a hard link, now a metadata-only copy (chmod, rename): its identity
            # (the copy's own inode) says whether it is still the file its other names are
            real = cast(Dict[str, int], self._call(self.overlay.getinfo, path, ("stat",)).raw.get("stat") or {})
            if real.get("st_ino"):
                attributes["st_ino"] = self.inodes.get(path, (0, real.get("st_dev", 0), real["st_ino"]), False,
                                                       real.get("st_nlink", 1))
        return attributes

    def _stat_attributes(self, path: str, st: Union[os.stat_result, Mapping[str, Any]]) -> Dict[str, Any]:
        """stat(2)'s fields for ``path`` from an ``lstat`` of its entry: an ``os.stat_result``,
        or the ``stat`` namespace of its info (the same names), the one translation of both."""
        if isinstance(st, os.stat_result):  # getattr's usual case: the fields read directly
            mode, nlink = st.st_mode, st.st_nlink
            is_dir = stat.S_ISDIR(mode)
            return {
                "st_mode": mode,
                "st_nlink": 1 if is_dir else nlink,
                "st_uid": st.st_uid,
                "st_gid": st.st_gid,
                "st_size": st.st_size,
                "st_atime": st.st_atime_ns,
                "st_mtime": st.st_mtime_ns,
                "st_ctime": st.st_ctime_ns,
                "st_blocks": st.st_blocks,
                "st_blksize": st.st_blksize,
                "st_rdev": st.st_rdev,
                "st_ino": self.inodes.get(path, (0, st.st_dev, st.st_ino), is_dir, nlink),
            }
        fields = st  # the stat namespace of an info
        is_dir = stat.S_ISDIR(fields["st_mode"])
        return {
            "st_mode": fields["st_mode"],
            # directories: 1, as the kernel says for merged directories (no subdirectory count)
            "st_nlink": 1 if is_dir else fields["st_nlink"],
            "st_uid": fields["st_uid"],
            "st_gid": fields["st_gid"],
            "st_size": fields["st_size"],
            "st_atime": fields["st_atime_ns"],
            "st_mtime": fields["st_mtime_ns"],
            "st_ctime": fields["st_ctime_ns"],
            "st_blocks": fields.get("st_blocks", 0),
            "st_blksize": fields.get("st_blksize", 4096),
            "st_rdev": fields.get("st_rdev", 0),
            "st_ino": self.inodes.get(path, (0, fields["st_dev"], fields["st_ino"]), is_dir, fields["st_nlink"]),
        }

    def _attributes(self, path: str, info: Any) -> Dict[str, Any]:
        """stat(2)'s fields for the entry ``path`` whose info is ``info``."""
        raw = cast(Dict[str, Any], info.raw)
        st: Optional[Dict[str, Any]] = raw.get("stat")
        if st is not None and "st_mode" in st:
            return self._stat_attributes(path, st)
        result = self._from_info(raw, info.is_dir)
        result["st_ino"] = self.inodes.get(path, None, info.is_dir)
        return result

    def _from_info(self, raw: Dict[str, Any], is_dir: bool) -> Dict[str, Any]:
        """Attributes of an entry whose layer has no stat (archives, memory)."""
        details = raw.get("details") or {}
        access = raw.get("access") or {}
        permissions = access.get("permissions")
        mode = Permissions(names=permissions).mode if permissions is not None else (0o755 if is_dir else 0o644)
        if details.get("type") == int(ResourceType.symlink):
            mode = stat.S_IFLNK | 0o777  # a link has no permissions of its own
        else:
            kind = cast(ResourceType, details.get("type"))  # (the raw int equals its ResourceType)
            mode |= stat.S_IFDIR if is_dir else SPECIAL_TYPES.get(kind, stat.S_IFREG)
        def ns(key: str) -> int:
            value = details.get(key) or details.get("modified") or 0
            return int(value * 1e9)
        size = details.get("size") or 0
        return {
            "st_mode": mode,
            "st_nlink": 1,
            "st_uid": access.get("uid", 0) or 0,
            "st_gid": access.get("gid", 0) or 0,
            "st_size": 0 if is_dir else size,
            "st_atime": ns("accessed"),
            "st_mtime": ns("modified"),
            "st_ctime": ns("metadata_changed"),
            "st_blocks": (size + 511) // 512,
        }

    def chmod(self, path: Optional[str], mode: int) -> None:
        self._set_stat(path, stat.S_IMODE(mode))

    def chown(self, path: Optional[str], uid: int, gid: int) -> None:
        # the kernel resolved any link on the way: a link here is lchown's, changed itself
        self._set_stat(path, None, uid, gid)

    def _set_stat(self, path: Optional[str], mode: Optional[int], uid: int = -1, gid: int = -1,
                  times_ns: Optional[Tuple[Optional[int], Optional[int]]] = None) -> None:
        """One part of a SETATTR (libfuse's high-level API calls chmod, chown, truncate and
        utimens in turn, then getattr): ``OverlayFS.set_stat``, whose answer is kept for that
        getattr (:class:`_Answered`)."""
        answered = self._answered
        answered.last = None  # a part that fails leaves no answer behind
        if path is None:
            raise _oserror(errno.ENOENT)
        try:
            st = self.overlay.set_stat(path, mode, uid, gid, times_ns, False)
        except errors.FSError as error:
            raise _oserror(errno_of(error), path) from None
        if st is not None:
            answered.last = (path, st)

    def utimens(self, path: Optional[str], times: Optional[Tuple[int, int]] = None) -> None:
        """mfusepy's form (nanoseconds, or None for now); the mount's FUSE class calls
        :meth:`utimens_ns` instead, which also knows UTIME_OMIT."""
        if times is None:
            self.utimens_ns(path, (0, UTIME_NOW), (0, UTIME_NOW))
        else:
            self.utimens_ns(path, divmod(times[0], 10**9), divmod(times[1], 10**9))

    def utimens_ns(self, path: Optional[str], atime: Tuple[int, int], mtime: Tuple[int, int]) -> None:
        """utimensat(2) with the kernel's (seconds, nanoseconds) pairs, UTIME_NOW/OMIT included."""
        self._answered.last = None
        if path is None:
            raise _oserror(errno.ENOENT)
        now = self._now_ns()
        times: List[Optional[int]] = []
        for sec, nsec in (atime, mtime):
            times.append(None if nsec == UTIME_OMIT else now if nsec == UTIME_NOW else sec * _NS + nsec)
        if times[0] is None and times[1] is None:
            self._call(self.overlay.getinfo, path)  # still ENOENT for a missing path
            return
        self._set_stat(path, None, times_ns=(times[0], times[1]))

    def statfs(self, path: str) -> Dict[str, int]:
        if self.statfs_path is not None:
            st = os.statvfs(self.statfs_path)
            return {key: getattr(st, key) for key in (
                "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_favail", "f_namemax")}
        # an upper without a system path (memory): no fixed size to report
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": 1 << 20, "f_bfree": 1 << 19, "f_bavail": 1 << 19,
                "f_files": 1 << 20, "f_ffree": 1 << 19, "f_favail": 1 << 19, "f_namemax": 255}

    def access(self, path: str, amode: int) -> None:
        # default_permissions makes the kernel check modes itself; this answers existence
        if not self._call(self.overlay.exists, path):
            raise _oserror(errno.ENOENT, path)

    # -- directories ---------------------------------------------------------------------------

    def opendir(self, path: str) -> int:
        # nullpath_ok: readdir may come without a path, so the handle keeps it
        if not self._call(self.overlay.isdir, path):
            raise _oserror(errno.ENOTDIR if self._call(self.overlay.exists, path) else errno.ENOENT, path)
        with self._fh_lock:
            fh = self._next_fh
            self._next_fh += 1
            self.dirs[fh] = path
        return fh

    def releasedir(self, path: Optional[str], fh: int) -> None:
        with self._fh_lock:
            self.dirs.pop(fh, None)
            self.listings.pop(fh, None)

    def readdir(self, path: Optional[str], fh: int) -> List[Tuple[str, Dict[str, int], int]]:
        """The merged listing with each entry's type and inode number (a zero d_ino would
        make readdir(3) skip the entry)."""
        if path is None:
            path = self.dirs.get(fh)
            if path is None:
                raise _oserror(errno.EBADF)
        # d_type from each entry's lstat in the layer that wins it (find -type and ls trust
        # d_type: a FIFO, device or socket is not a file), the one listing READDIRPLUS reads
        prefix = path.rstrip("/") + "/"
        entries = [(".", {"st_mode": stat.S_IFDIR, "st_ino": self.inodes.get(path)}, 0),
                   ("..", {"st_mode": stat.S_IFDIR, "st_ino": 1}, 0)]
        for name, st in self._call(self.overlay.lstat_listing, path):
            if st is None:  # a layer without system paths (archive, memory): its info says
                try:
                    attributes = self._getattr(prefix + name)
                except OSError:
                    continue  # gone since the listing (another thread's unlink)
                mode, number = attributes["st_mode"], attributes["st_ino"]
            else:
                mode = st.st_mode
                number = self.inodes.get(prefix + name, (0, st.st_dev, st.st_ino), stat.S_ISDIR(mode), st.st_nlink)
            entries.append((name, {"st_mode": stat.S_IFMT(mode), "st_ino": number}, 0))
        return entries

    def listing(self, fh: int, offset: int, plus: bool) -> List[List[Any]]:
        """The entries of the open directory ``fh``, "." and ".." first, each as [name,
        attributes]: read afresh at offset 0 (a new opendir, or a rewinddir, which must see
        changes since) and kept for the requests that continue from an offset. For
        READDIRPLUS with each one's attributes where its layer is on disk (the others are
        added by :meth:`entry_attributes` as libfuse takes them)."""
        path = self.dirs.get(fh)
        if path is None:
            raise _oserror(errno.EBADF)
        entries = self.listings.get(fh)
        if entries is None or offset == 0:
            if plus:
                entries = [[".", {"st_mode": stat.S_IFDIR, "st_ino": self.inodes.get(path)}],
                           ["..", {"st_mode": stat.S_IFDIR, "st_ino": 1}]]
                prefix = path.rstrip("/") + "/"
                for name, st in self._call(self.overlay.lstat_listing, path):
                    entries.append([name, None if st is None else self._stat_attributes(prefix + name, st)])
            else:
                entries = [[name, attributes] for name, attributes, _ in self.readdir(path, fh)]
            self.listings[fh] = entries
        return entries

    def entry_attributes(self, fh: int, entry: List[Any]) -> Optional[Dict[str, Any]]:
        """The full attributes of ``entry`` of the listing of directory ``fh`` (READDIRPLUS:
        the kernel caches them, so ``ls -l``, ``find`` and ``git status`` need no LOOKUP per
        entry); ``None`` if it is gone since the listing (another thread's unlink)."""
        attributes: Optional[Dict[str, Any]] = entry[1]
        if attributes is None:
            path = self.dirs.get(fh)
            if path is None:
                raise _oserror(errno.EBADF)
            try:
                attributes = entry[1] = self._getattr((path.rstrip("/") + "/") + entry[0])
            except OSError:
                return None
        return attributes  # (no cast: a subscripted Dict per entry is a typing call a walk makes 100k times)

    def mkdir(self, path: str, mode: int) -> None:
        inherited = self._inherit(path, mode, is_dir=True)
        self._call(self.overlay.makedir, path, Permissions(mode=stat.S_IMODE(inherited.mode)))
        self._set_inherited_acls(path, inherited)
        self._give_to_caller(path)

    def _inherit(self, path: str, mode: int, is_dir: bool = False) -> Inherited:
        """A new entry's mode and ACLs: with FUSE_POSIX_ACL the kernel left the mode
        unmasked, for the parent's default ACL or else the caller's umask (posix_acl.py)."""
        if not self.posix_acl:
            return Inherited(mode)  # the kernel applied the umask
        default = None
        parent = dirname(path)
        if self._acl_upper and parent not in self.no_default_acl:
            epoch = self._capability_epoch
            try:
                default = self.overlay.getxattr(parent, ACLS[1], False)
            except NoSuchAttribute:
                default = None
                self._remember(self.no_default_acl, parent, epoch)
            except errors.FSError as error:  # not read: no entry is made without what it inherits
                raise _oserror(errno_of(error), path) from None
        try:
            return inherit(default, mode, _umask(), is_dir)
        except ValueError:  # an unreadable default ACL: as the upper's filesystem would, EIO
            raise _oserror(errno.EIO, path) from None

    def _set_inherited_acls(self, path: str, inherited: Inherited) -> None:
        for name, value in zip(ACLS, (inherited.access, inherited.default)):
            if value is not None:
                self._call(self.overlay.setxattr, path, name, value, 0, False)

    # -- links ---------------------------------------------------------------------------------

    def readlink(self, path: str) -> str:
        return self._call(self.overlay.readlink, path)

    def symlink(self, target: str, source: str) -> None:
        """symlink(2): mfusepy's ``target`` is the new name, ``source`` the text it holds."""
        self._call(self.overlay.symlink, source, target)
        uid, gid = _caller()
        if uid != self._euid or gid != self._egid:  # the link itself, never what it points to
            self._call(self.overlay.setinfo, target, {"access": {"uid": uid, "gid": gid}}, False)

    def link(self, target: str, source: str) -> None:
        """link(2): ``target`` becomes a second name of ``source``, with its inode number."""
        self._call(self.overlay.link, source, target)
        self._other_file_at(target)
        # the source's number as of now: link copied it up, which may have broken a lower
        # hard link and so given it the number of its copy, the one the new name must share
        self._getattr(source)
        self.inodes.share(source, target)
        _invalidate([source])  # its link count changed

    def rmdir(self, path: str) -> None:
        self._call(self.overlay.removedir, path)
        self.inodes.forget(path)
        self._other_file_at(path)

    def unlink(self, path: str) -> None:
        self._call(self.overlay.remove, path)
        self.inodes.forget(path)
        self._other_file_at(path)

    def rename(self, old: str, new: str, flags: int = 0) -> None:
        if flags & ~RENAME_NOREPLACE:
            # RENAME_EXCHANGE and RENAME_WHITEOUT: not offered (EINVAL, as for a flag a
            # filesystem does not know)
            raise _oserror(errno.EINVAL, old)
        self._call(self.overlay.rename, old, new, bool(flags & RENAME_NOREPLACE))
        if self.overlay.exists(old):
            # between two names of one file (hard links): rename(2) changed nothing, and
            # each name keeps its number (the kernel, seeing two inodes, moved its dentry)
            return
        self.inodes.moved(old, new)
        self._other_file_at(old, new)

    # -- extended attributes and special files ------------------------------------------------
    # the kernel resolved any link on the way and checked the caller's rights (user.* only on
    # files and directories, trusted.* for CAP_SYS_ADMIN): each call is on the entry itself

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        epoch = self._capability_epoch
        try:
            return self.overlay.getxattr(path, name, False)
        except NoSuchAttribute:
            if name == CAPABILITY:
                self._remember(self.no_capability, path, epoch)
            raise _oserror(errno.ENODATA, path) from None
        except errors.FSError as error:
            raise _oserror(errno_of(error), path) from None

    def listxattr(self, path: str) -> List[str]:
        return self._call(self.overlay.listxattr, path, False)

    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> None:
        try:
            self._call(self.overlay.setxattr, path, name, value, options, False)
        finally:
            if name == CAPABILITY:
                with self._capability_lock:  # for every name of the file (hard links)
                    self._capability_epoch += 1
                    self.no_capability.clear()
            elif name == ACLS[1]:
                with self._capability_lock:
                    self._capability_epoch += 1
                    self.no_default_acl.clear()
        if name == ACLS[0]:
            self._acl_set(path)

    def _acl_set(self, path: str) -> None:
        """After a POSIX ACL was set on the upper entry (whose filesystem updated its mode
        from it): a caller outside the entry's group and without CAP_FSETID loses its
        set-group-ID bit, as the kernel overlay clears it (``ovl_set_or_remove_acl``: the
        upper is changed with the mounter's rights, which keep it). (The kernel drops its
        cached attributes after every setxattr: the new mode shows at once.)"""
        uid, gid, pid = _context()
        if uid != 0:  # (root stands for CAP_FSETID)
            attributes = self._getattr(path)
            mode, group = attributes["st_mode"], attributes["st_gid"]
            if mode & stat.S_ISGID and gid != group and group not in _groups(pid):
                self.chmod(path, stat.S_IMODE(mode) & ~stat.S_ISGID)
                self._answered.last = None  # no getattr follows a SETXATTR

    def removexattr(self, path: str, name: str) -> None:
        self._call(self.overlay.removexattr, path, name, False)

    def _remember(self, cache: Set[str], path: str, epoch: int) -> None:
        """Note in ``cache`` (:attr:`no_capability`, :attr:`no_default_acl`) what was found of
        ``path`` when the epoch was ``epoch``, unless something set, moved or removed since
        may have made it stale; at most ``CAPABILITY_CACHE`` paths (then it starts afresh)."""
        with self._capability_lock:
            if epoch == self._capability_epoch:
                if len(cache) >= CAPABILITY_CACHE:
                    cache.clear()
                cache.add(path)

    def _other_file_at(self, *paths: str) -> None:
        """Another file may be at ``paths`` (and below) now: what :attr:`no_capability` and
        :attr:`no_default_acl` knew of them no longer holds."""
        with self._capability_lock:
            self._capability_epoch += 1
            for cache in (self.no_capability, self.no_default_acl):
                if not cache:
                    continue
                for path in paths:
                    cache.discard(path)
                    prefix = path.rstrip("/") + "/"
                    for known in [known for known in cache if known.startswith(prefix)]:
                        cache.discard(known)

    def mknod(self, path: str, mode: int, dev: int) -> None:
        """mknod(2) of a FIFO, socket or device (regular files come through :meth:`create`)."""
        inherited = self._inherit(path, mode)
        self._call(self.overlay.mknod, path, inherited.mode, dev)
        self._set_inherited_acls(path, inherited)
        self._give_to_caller(path)

    # -- files ---------------------------------------------------------------------------------

    def open(self, path: str, flags: int) -> int:
        if path in self.stale_names:
            # in its own OPEN, which holds none of its pages (unlike READ and WRITE): safe
            self.stale_names.discard(path)
            _invalidate([path])
        mode, writable, append = _open_mode(flags)
        linked = self.inodes.linked_number(path) if writable else None
        # a reader unbuffered: every read is a pread of the file (the kernel caches pages),
        # and the open makes no buffer (and asks no isatty, no lseek)
        stream = self._call(self.overlay.openbin, path, mode, *((0,) if mode == "rb" else ()))
        handle = Handle(stream, path, writable, append)
        handle.linked = writable and handle.fd is not None and os.fstat(handle.fd).st_nlink > 1
        fh = self._new_fh(handle)
        if linked is not None and self._getattr(path)["st_ino"] != linked:
            # the open copied one name of a lower hard link up alone: it has the number of its
            # copy now, which the kernel's cached attributes (open has none in its reply) lack
            _invalidate([path])
        return fh

    def create(self, path: str, mode: int, flags: int) -> int:
        self._answered.last = None
        epoch = self._capability_epoch
        exclusive = bool(flags & os.O_EXCL)
        exists = self._call(self.overlay.exists, path)
        if exists and not exclusive:
            return self.open(path, flags)  # lost a race with another creator: O_CREAT opens it
        inherited = self._inherit(path, mode)
        stream = self._call(self.overlay.openbin, path, "x+b")
        handle = Handle(stream, path, (flags & os.O_ACCMODE) != os.O_RDONLY, bool(flags & os.O_APPEND))
        try:
            if handle.fd is not None:
                # the new file is in the upper: its own descriptor takes mode, ACLs and
                # owner, without another trip through the overlay
                os.fchmod(handle.fd, stat.S_IMODE(inherited.mode))
                if inherited.access is not None:
                    os.setxattr(handle.fd, ACLS[0], inherited.access)
                uid, gid = _caller()
                if uid != self._euid or gid != self._egid:
                    os.fchown(handle.fd, uid, gid)
                # the attributes libfuse asks for next (getattr, on this thread)
                self._answered.last = (path, os.fstat(handle.fd))
            else:
                permissions = Permissions(mode=stat.S_IMODE(inherited.mode)).dump()
                self._call(self.overlay.setinfo, path, {"access": {"permissions": permissions}})
                self._set_inherited_acls(path, inherited)
                self._give_to_caller(path)
        except BaseException:
            self._answered.last = None
            stream.close()
            raise
        # a new file has no capability: the kernel's question before its first write(2) is
        # answered without the overlay (unless a setxattr or rename came between)
        self._remember(self.no_capability, path, epoch)
        return self._new_fh(handle)

    def read(self, path: Optional[str], size: int, offset: int, fh: int) -> bytes:
        return self._handle(fh).read(size, offset)

    def write(self, path: Optional[str], data: bytes, offset: int, fh: int) -> int:
        handle = self._handle(fh)
        written = handle.write(data, offset)
        if handle.linked:  # the other names' cached size and times are stale now
            self.stale_names.update(self.inodes.other_names(handle.path))
        return written

    def truncate(self, path: Optional[str], length: int, fh: Optional[int] = None) -> None:
        self._answered.last = None  # a SETATTR's part too: the getattr after it asks afresh
        handle = self.handles.get(fh) if fh is not None else None
        if handle is not None and handle.writable:
            handle.truncate(length)
            return
        if path is None:
            raise _oserror(errno.EBADF)
        if length == 0:
            # the whole content goes: copy up only the metadata, as O_TRUNC does
            stream = self._call(self.overlay.openbin, path, "wb")
            stream.close()
            return
        stream = self._call(self.overlay.openbin, path, "r+b")
        try:
            stream.truncate(length)
        finally:
            stream.close()

    def flush(self, path: Optional[str], fh: int) -> None:
        handle = self.handles.get(fh)
        if handle is not None and handle.fd is None and handle.writable:
            with handle.lock:
                handle.stream.flush()

    def fsync(self, path: Optional[str], datasync: int, fh: int) -> None:
        """The file's data durable, and with it every change deferred so far (its name, its
        metadata: one syncfs of the upper, as ext4's fsync commits its journal)."""
        handle = self._handle(fh)
        if handle.fd is not None:
            (os.fdatasync if datasync else os.fsync)(handle.fd)
        else:
            with handle.lock:
                handle.stream.flush()
        self.overlay.sync()

    def fsyncdir(self, path: Optional[str], datasync: int, fh: int) -> None:
        """fsync(2) of a directory: its entries durable (and every other deferred change)."""
        self.overlay.sync()

    def release(self, path: Optional[str], fh: int) -> None:
        with self._fh_lock:
            handle = self.handles.pop(fh, None)
        if handle is not None:
            hard_linked = handle.writable and handle.fd is not None and os.fstat(handle.fd).st_nlink > 1
            handle.close()
            if hard_linked:  # what was written shows through every name of the file
                others = self.inodes.other_names(handle.path)
                self.stale_names.difference_update(others)
                _invalidate(others)


# -- the binding's glue --------------------------------------------------------------------------------


#: struct stat of x86_64 Linux, field by field as mfusepy's ``c_stat`` lays it out: dev, ino,
#: nlink, mode, uid, gid, padding, rdev, size, blksize, blocks, three timespecs, reserved
_STAT_LAYOUT = struct.Struct("=QQQIIIiQqqqqqqqqq24x")
_NS = 10**9


def _stat_filler(mfusepy: Any) -> Callable[[Any, Mapping[str, Any]], None]:
    """A function that writes attributes (:meth:`Operations.getattr`'s dict) into a ``c_stat``:
    one ``struct`` pack and one copy where the layout is x86_64 Linux's (checked here on a
    sample, field by field), else mfusepy's field-by-field ``set_st_attrs`` (a ctypes
    attribute set per field costs more than the whole rest of a cached getattr)."""
    size = ctypes.sizeof(mfusepy.c_stat)

    def fill_slowly(st: Any, attributes: Mapping[str, Any]) -> None:
        ctypes.memset(ctypes.byref(st), 0, size)
        mfusepy.set_st_attrs(st, attributes, use_ns=True)

    def fill(st: Any, attributes: Mapping[str, Any]) -> None:
        get = attributes.get
        atime, mtime, ctime = get("st_atime", 0), get("st_mtime", 0), get("st_ctime", 0)
        ctypes.memmove(ctypes.addressof(st), _STAT_LAYOUT.pack(
            0, get("st_ino", 0), get("st_nlink", 0), attributes["st_mode"], get("st_uid", 0), get("st_gid", 0), 0,
            get("st_rdev", 0), get("st_size", 0), get("st_blksize", 0), get("st_blocks", 0),
            atime // _NS, atime % _NS, mtime // _NS, mtime % _NS, ctime // _NS, ctime % _NS), size)

    sample = {"st_ino": 2**40 + 3, "st_nlink": 5, "st_mode": 0o100644, "st_uid": 7, "st_gid": 8, "st_rdev": 9,
              "st_size": 2**33 + 1, "st_blksize": 4096, "st_blocks": 11, "st_atime": 12 * _NS + 13,
              "st_mtime": 14 * _NS + 15, "st_ctime": 16 * _NS + 17}
    if size != _STAT_LAYOUT.size:
        return fill_slowly
    fast, slow = mfusepy.c_stat(), mfusepy.c_stat()
    try:
        fill(fast, sample)
        fill_slowly(slow, sample)
    except (AttributeError, TypeError, struct.error):
        return fill_slowly
    return fill if bytes(fast) == bytes(slow) else fill_slowly


#: chown's "leave alone" as libfuse passes it (uid_t and gid_t are unsigned 32-bit on Linux)
_ID_KEEP = (1 << 32) - 1


def _raiser(func: Any, error: BaseException) -> Callable[..., Any]:
    """A callable named as ``func`` that raises ``error``: hands an exception already caught
    to mfusepy's ``_wrapper``, which logs it, turns it into an errno or ends the mount."""

    def raiser(*args: Any, **kwargs: Any) -> Any:
        raise error

    raiser.__name__ = func.__name__
    return raiser


def _fuse_class(mfusepy: Any) -> Any:
    """mfusepy's ``FUSE`` with three callbacks passed on whole: rename's flags
    (RENAME_NOREPLACE), ftruncate's file handle and utimensat's UTIME_NOW/UTIME_OMIT,
    which mfusepy drops."""

    fill_stat = _stat_filler(mfusepy)
    import logging

    log = logging.getLogger("mfusepy")
    debug = log.isEnabledFor(logging.DEBUG)
    get_ident = threading.get_ident
    keep_thread_state = ctypes.pythonapi.PyGILState_Ensure
    keep_thread_state.restype = ctypes.c_int
    threads_kept: set = set()

    class FUSE(mfusepy.FUSE):  # type: ignore[misc,name-defined]
        def _wrapper(self, func: Any, *args: Any, **kwargs: Any) -> Any:
            # libfuse's worker threads are not Python's: ctypes makes a Python thread state
            # for every callback and frees it afterwards. One PyGILState_Ensure that is never
            # released keeps it for the thread's life (libfuse 3.12+ keeps its workers until
            # unmount, at most max_threads of them), which makes each request cheaper
            ident = get_ident()
            if ident not in threads_kept:
                threads_kept.add(ident)
                keep_thread_state()
            # the common ends answered here, one frame less per request: a result, or an
            # OSError with its errno (ENOENT of each lookup of a new name); anything else
            # (a bug, a negative errno, init's failure) goes to mfusepy's handling
            try:
                return func(*args, **kwargs) or 0
            except OSError as error:
                number = error.errno
                if type(number) is not int or number <= 0 or func.__name__.startswith("init"):
                    return super()._wrapper(_raiser(func, error), *args, **kwargs)
                if debug:
                    log.debug("FUSE operation %s (%s) returns errno %s", func.__name__, args, number)
                return -number
            except BaseException as error:
                return super()._wrapper(_raiser(func, error), *args, **kwargs)

        def chown_fuse_3(self, path: Optional[bytes], uid: int, gid: int, fip: Any) -> int:
            # libfuse passes -1 (keep) as the unsigned uid_t/gid_t it is
            return self.operations.chown(None if path is None else path.decode(self.encoding, self.errors),
                                         -1 if uid == _ID_KEEP else uid, -1 if gid == _ID_KEEP else gid)

        def getattr_fuse_3(self, path: Optional[bytes], buf: Any, fip: Any) -> int:
            fh = fip.contents.fh if fip else None
            fill_stat(buf.contents, self.operations.getattr(None if path is None else path.decode(self.encoding, self.errors), fh))
            return 0

        def getxattr(self, path: bytes, name: bytes, value: Any, size: int, *args: Any) -> int:
            # the kernel's question before every write(2): answered from the cache, no overlay call
            if name == CAPABILITY_BYTES and path.decode(self.encoding, self.errors) in self.operations.no_capability:
                return -errno.ENODATA
            return cast(int, super().getxattr(path, name, value, size, *args))

        def create(self, path: bytes, mode: int, fip: Any) -> int:
            # mfusepy's asks inspect.signature of the operation on every call
            fi = fip.contents
            fi.fh = self.operations.create(path.decode(self.encoding, self.errors), mode, fi.flags)
            return 0

        def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
            return self.operations.rename(old.decode(self.encoding, self.errors),
                                          new.decode(self.encoding, self.errors), flags)

        def readdir_fuse_3(self, path: Optional[bytes], buf: Any, filler: Any, offset: int, fip: Any, flags: int) -> int:
            """The listing in libfuse's offset mode: each entry goes with its position, so a
            READDIRPLUS reply carries the entries' attributes to the kernel (libfuse 3.14 sends
            those of a listing filled without offsets with node id 0, which the kernel ignores,
            and then LOOKUPs every entry), and a large directory is read a page at a time."""
            operations = self.operations
            fh = fip.contents.fh
            plus = bool(flags & FUSE_READDIR_PLUS)
            entries = operations.listing(fh, offset, plus)
            st = mfusepy.c_stat()
            encoding, errors_ = self.encoding, self.errors
            for position in range(offset, len(entries)):
                entry = entries[position]
                if plus and position > 1:  # "." and "..": libfuse gives the kernel no attributes
                    attributes = operations.entry_attributes(fh, entry)
                    if attributes is None:
                        continue
                    fill = FUSE_FILL_DIR_PLUS
                else:
                    attributes, fill = entry[1], 0
                fill_stat(st, attributes)
                if filler(buf, entry[0].encode(encoding, errors_), st, position + 1, fill) != 0:
                    break  # the kernel's buffer is full: it asks again from this position
            return 0

        def truncate_fuse_3(self, path: Optional[bytes], length: int, fip: Any) -> int:
            decoded = None if path is None else path.decode(self.encoding, self.errors)
            return self.operations.truncate(decoded, length, fip.contents.fh if fip else None)

        def utimens_fuse_3(self, path: Optional[bytes], buf: Any, fip: Any) -> int:
            decoded = None if path is None else path.decode(self.encoding, self.errors)
            if buf:
                times = buf.contents
                atime = (times.actime.tv_sec, times.actime.tv_nsec)
                mtime = (times.modtime.tv_sec, times.modtime.tv_nsec)
            else:
                atime = mtime = (0, UTIME_NOW)
            return self.operations.utimens_ns(decoded, atime, mtime)

    return FUSE


@attr.s(frozen=True, slots=True)
class MountOptions:
    """How to mount: FUSE options derived from these, see :func:`fuse_options`."""

    read_only: bool = attr.ib(default=False)
    allow_other: bool = attr.ib(default=True)
    debug: bool = attr.ib(default=False)
    fsname: str = attr.ib(default="unionfs")
    threads: bool = attr.ib(default=True)
    extra: Tuple[str, ...] = attr.ib(default=())  # kernel mount flags passed on: nodev, noexec, ...
    #: ``-o noxattrs``: no xattr operations (the kernel then answers EOPNOTSUPP itself)
    xattrs: bool = attr.ib(default=True)
    #: listings with attributes (READDIRPLUS); off: plain READDIR (for tests of that path)
    readdirplus: bool = attr.ib(default=True)


def fuse_options(options: MountOptions) -> Dict[str, Any]:
    """Keyword options for mfusepy's ``FUSE``: permissions checked by the kernel from the
    modes and owners the overlay reports (``default_permissions``), every user served
    (``allow_other``, as a kernel mount is), our inode numbers (``use_ino``), open-unlinked
    files kept by their descriptors (``hard_remove``), and the kernel's caches as long as
    correctness allows (see ``CACHE_TIMEOUT``)."""
    result: Dict[str, Any] = {
        "foreground": True,
        "nothreads": not options.threads,
        "debug": options.debug,
        "fsname": options.fsname,
        "subtype": "unionfs",
        "default_permissions": True,
        "use_ino": True,
        "hard_remove": True,
        "entry_timeout": CACHE_TIMEOUT,
        "attr_timeout": CACHE_TIMEOUT,
        "negative_timeout": CACHE_TIMEOUT,
        "auto_cache": True,
        "max_threads": WORKER_THREADS,  # libfuse 3's (mfusepy leaves the limit unset)
        # as many idle as there can be workers, so none exits (the same as libfuse's "unset"):
        # given unset, libfuse 3.14.0 prints "Ignoring invalid max threads value 4294967295"
        # at every mount
        "max_idle_threads": WORKER_THREADS,
    }
    if options.allow_other:
        result["allow_other"] = True
    if options.read_only:
        result["ro"] = True
    for flag in options.extra:
        result[flag] = True
    return result


def serve(
    overlay: OverlayFS,
    mountpoint: str,
    options: MountOptions = MountOptions(),
    statfs_path: Optional[str] = None,
    on_ready: Optional[Callable[[], None]] = None,
) -> None:
    """Mount ``overlay`` at ``mountpoint`` and serve it until unmounted (``fusermount3 -u``,
    ``umount``, SIGTERM or SIGINT: libfuse unmounts on each), in this process."""
    mfusepy = load_binding()
    import logging

    # mfusepy logs every errno reply (ENOENT for each failed lookup) at debug level only,
    # but a bug in an operation at error level: keep that one visible on stderr
    logging.getLogger("mfusepy").setLevel(logging.DEBUG if options.debug else logging.ERROR)
    previous_umask = os.umask(0)  # the kernel applied the caller's umask to every mode we get
    served = []

    def ready() -> None:
        served.append(True)
        if on_ready is not None:
            on_ready()

    try:
        operations = Operations(overlay, statfs_path=statfs_path, on_ready=ready, xattrs=options.xattrs,
                                readdirplus=options.readdirplus, defer_sync="sync" not in options.extra)
        _fuse_class(mfusepy)(operations, mountpoint, **fuse_options(options))
    except RuntimeError as error:
        if served:
            return  # libfuse reports the signal that ended a mount it then unmounted: a clean end
        raise MountError(msg="FUSE could not mount %r (libfuse said %s)" % (mountpoint, error)) from None
    finally:
        os.umask(previous_umask)


# -- what the command line needs -------------------------------------------------------------------------

#: kernel overlay options that only tune the kernel's own implementation: accepted and ignored
KERNEL_ONLY_OPTIONS = frozenset((
    "redirect_dir", "index", "xino", "metacopy", "nfs_export", "userxattr", "uuid",
    "default_permissions", "verity", "datadir", "lowerdir+", "datadir+",
))
#: generic mount flags passed on to FUSE
PASSED_FLAGS = frozenset(("nodev", "nosuid", "noexec", "noatime", "sync", "dirsync"))
#: generic mount flags FUSE already implies or that change nothing here
IGNORED_FLAGS = frozenset(("rw", "dev", "suid", "exec", "atime", "relatime", "strictatime", "nodiratime",
                           "diratime", "async", "auto", "noauto", "user", "nouser", "users", "_netdev",
                           "nofail", "defaults", "allow_other", "nonempty"))


@attr.s(frozen=True, slots=True)
class KernelMount:
    """What ``-o lowerdir=A:B,upperdir=U,workdir=W,...`` asks for."""

    lowers: Tuple[str, ...] = attr.ib()
    upper: Optional[str] = attr.ib()
    workdir: Optional[str] = attr.ib()
    read_only: bool = attr.ib()
    flags: Tuple[str, ...] = attr.ib()
    #: ``-o volatile``: the upper is not fsynced (``OverlayFS(volatile=True)``)
    volatile: bool = attr.ib(default=False)
    #: ``-o noxattrs``: no extended attributes served (``MountOptions.xattrs``)
    xattrs: bool = attr.ib(default=True)


def _split_lowerdir(value: str) -> List[str]:
    """``lowerdir=`` entries: ':' separates, '\\:' is a colon inside a name (as the kernel reads it)."""
    parts, current, escaped = [], "", False
    for char in value:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def parse_kernel_options(option_strings: Sequence[str]) -> KernelMount:
    """The overlay options of one or more ``-o`` strings, or :class:`MountError` naming the bad one."""
    lowers: List[str] = []
    upper = workdir = None
    read_only = volatile = False
    xattrs = True
    flags: List[str] = []
    for option_string in option_strings:
        for option in filter(None, option_string.split(",")):
            key, _, value = option.partition("=")
            if key == "lowerdir":
                lowers = _split_lowerdir(value)
            elif key == "upperdir":
                upper = value
            elif key == "workdir":
                workdir = value
            elif key == "ro":
                read_only = True
            elif key == "volatile":
                volatile = True
            elif key == "noxattrs":
                xattrs = False
            elif key in KERNEL_ONLY_OPTIONS or key in IGNORED_FLAGS:
                continue
            elif key in PASSED_FLAGS:
                flags.append(key)
            else:
                raise MountError(msg="unknown mount option %r" % option)
    if not lowers or any(not lower for lower in lowers):
        raise MountError(msg="the options name no lowerdir= (or an empty one): %r" % ",".join(option_strings))
    if (upper is None) != (workdir is None):
        raise MountError(msg="upperdir= and workdir= go together")
    if upper is None:
        read_only = True
    return KernelMount(tuple(lowers), upper, workdir, read_only, tuple(flags), volatile, xattrs)


def layer_for(source: str, position: int) -> List[Any]:
    """What one layer argument opens as, for :class:`OverlayFS`: a directory that is a
    former unionfs upper (a sidecar) by its path; an OCI image layout as its image's
    layers; any other directory as a kernel-format layer (a plain directory is one with no
    markers); an archive file or an FS URL as itself. A missing path: ``MountError``."""
    if "://" in source:
        return [source]
    if not os.path.exists(source):
        raise MountError(msg="layer %r does not exist" % source)
    if os.path.isdir(source):
        from ..core.sidecar import RESERVED_NAME

        if os.path.isdir(os.path.join(source, RESERVED_NAME)):
            return [os.path.abspath(source)]
        if os.path.isfile(os.path.join(source, "oci-layout")):
            from ..formats.oci.oci import image_stack

            return list(image_stack(source))
        from ..formats.kernel import KernelLayer

        return [KernelLayer(os.path.abspath(source), "lower %d (%s)" % (position, source))]
    return [os.path.abspath(source)]


def open_overlay(layers: Sequence[str], upper: Optional[str], read_only: bool = False, volatile: bool = False) -> OverlayFS:
    """The overlay a mount serves: ``layers`` topmost first; ``upper`` a directory, an FS URL
    (``mem://`` for an upper in memory) or ``None`` for a read-only overlay. With
    ``read_only`` an upper is shown, as the topmost lower, but never written; ``volatile``
    as for :class:`OverlayFS`."""
    sources = list(layers)
    if read_only and upper is not None:
        sources.insert(0, upper)
        upper = None
    opened: List[Any] = []
    for position, source in enumerate(sources):
        opened.extend(layer_for(source, position))
    if upper is not None and "://" not in upper:
        if not os.path.isdir(upper):
            raise MountError(msg="upper %r is not a directory" % upper)
        upper = os.path.abspath(upper)
    deadline = time.monotonic() + UPPER_WAIT
    while True:
        try:
            return OverlayFS(opened, upper=upper, volatile=volatile)
        except UpperInUse:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


#: seconds a mount waits for an upper another process holds before it says UpperInUse: a FUSE
#: umount returns before the unmounted mount's daemon has closed its overlay (it learns of the
#: umount from its next read of /dev/fuse), where the kernel's umount is done when it returns;
#: a remount right after an umount (the unionmount-testsuite's, hundreds) must not fail for that
UPPER_WAIT = 3.0


def check_mountpoint(mountpoint: str, allow_nonempty: bool) -> str:
    """The absolute mount point, or :class:`MountError` saying why it cannot be one."""
    path = os.path.abspath(mountpoint)
    if not os.path.isdir(path):
        raise MountError(msg="mount point %r is not a directory" % mountpoint)
    if os.path.ismount(path) and path != "/":
        raise MountError(msg="mount point %r is busy: something is mounted there (unionfs umount %s)" % (mountpoint, mountpoint))
    if not allow_nonempty and os.listdir(path):
        raise MountError(msg="mount point %r is not empty (give --nonempty to mount over its contents)" % mountpoint)
    return path


def check_fuse() -> None:
    """:class:`MountUnavailable` unless this process can mount FUSE filesystems."""
    load_binding()
    if not os.path.exists("/dev/fuse"):
        raise MountUnavailable(msg="/dev/fuse does not exist (no FUSE in this kernel or container: modprobe fuse)")
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        raise MountUnavailable(msg="no permission to open /dev/fuse (run as root or join the group that owns it)")
    if os.geteuid() != 0 and not any(os.access(os.path.join(d, "fusermount3"), os.X_OK)
                                     for d in os.environ.get("PATH", "/usr/bin:/bin").split(":")):
        raise MountUnavailable(msg="not root and no fusermount3 on PATH (apt-get install fuse3)")


def run(
    make_overlay: Callable[[], OverlayFS],
    mountpoint: str,
    options: MountOptions,
    foreground: bool,
    statfs_path: Optional[str] = None,
) -> int:
    """Open the overlay and serve it at ``mountpoint``. In the foreground: until unmounted.
    As a daemon: the overlay is opened in a child process (so its lock record names the
    daemon), and this process returns 0 once the kernel has the mount, or raises what
    went wrong before that."""
    if foreground:
        with make_overlay() as overlay:
            serve(overlay, mountpoint, options, statfs_path)
        return 0
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the daemon
        os.close(read_end)
        code = 1
        try:
            os.setsid()
            overlay = make_overlay()

            def ready() -> None:
                os.write(write_end, b"ok\n")
                os.close(write_end)
                _detach_stdio()

            with overlay:
                serve(overlay, mountpoint, options, statfs_path, on_ready=ready)
            code = 0
        except BaseException as error:  # tell the waiting parent, then go
            message = ("%s" % (error,)) or type(error).__name__
            try:
                os.write(write_end, ("error " + " ".join(message.split()) + "\n").encode("utf-8", "replace"))
            except OSError:
                pass
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read().decode("utf-8", "replace").strip()
    if answer.startswith("ok"):
        return 0
    os.waitpid(pid, 0)
    raise MountError(msg=answer[len("error "):] if answer.startswith("error ") else "the mount daemon died before mounting")


def _detach_stdio() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def unmount(mountpoint: str, lazy: bool = False) -> None:
    """Unmount a FUSE mount: ``fusermount3 -u`` (``-z`` lazily), or umount(8) as root."""
    import subprocess

    path = os.path.abspath(mountpoint)
    if not os.path.ismount(path):
        raise MountError(msg="%r is not a mount point" % mountpoint)
    commands = [["fusermount3", "-u"] + (["-z"] if lazy else []) + [path]]
    if os.geteuid() == 0:
        commands.append(["umount"] + (["-l"] if lazy else []) + [path])
    last = ""
    for command in commands:
        try:
            done = subprocess.run(command, capture_output=True, text=True)
        except FileNotFoundError:
            continue
        if done.returncode == 0:
            return
        last = (done.stderr or done.stdout).strip()
    raise MountError(msg="cannot unmount %r: %s" % (mountpoint, last or "no fusermount3 or umount"))


HELPER_PATH = "/sbin/mount.fuse.unionfs"


def helper_script(python: str) -> str:
    """The mount(8) helper: ``mount -t fuse.unionfs SRC MNT -o ...`` runs it as
    ``mount.fuse.unionfs SRC MNT -o ...``; it runs this installation's ``unionfs``."""
    return (
        "#!/bin/sh\n"
        "# installed by 'unionfs install-mount-helper': mount -t fuse.unionfs runs this\n"
        "# project's mount (not unionfs-fuse's /usr/bin/unionfs, whatever PATH says)\n"
        'exec %s -m unionfs mount.fuse "$@"\n' % _shell_quote(python)
    )


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def install_helper(path: str = HELPER_PATH, python: Optional[str] = None) -> str:
    """Write the mount(8) helper to ``path`` (executable); return it."""
    import sys

    script = helper_script(python or sys.executable)
    directory = os.path.dirname(path) or "."
    staged = os.path.join(directory, ".%s.%d" % (os.path.basename(path), os.getpid()))
    with open(staged, "w") as out:
        out.write(script)
    os.chmod(staged, 0o755)
    os.replace(staged, path)
    return path
