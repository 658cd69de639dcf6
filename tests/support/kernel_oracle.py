"""The kernel oracle: the same layers and operations on ``OverlayFS`` and on Linux overlayfs.

Pieces, each used by ``test_kernel_properties.py`` and ``test_kernel_regressions.py``:

* **Layer specs.** A lower layer is described once, as ``{absolute path: Entry}``, and built
  twice: on disk in kernel form (whiteout = character device 0/0, opaque directory =
  ``trusted.overlay.opaque=y``) and as a ``MemoryFS`` in sidecar form (``/.unionfs``).
* **KernelOverlay.** Owns a temporary directory with the lower, upper, work and merged
  directories; mounts ``overlay`` over them and *always* unmounts (lazily if it must), also
  when a test fails. ``reopen`` is umount + mount; ``stack`` turns the upper into the topmost
  lower of a fresh mount with an empty upper.
* **Views.** :class:`KernelView` implements a small PyFilesystem2-shaped API with plain
  system calls on the merged directory; every ``OSError`` becomes an ``fs.errors`` class
  through the one table :data:`ERRNO_TO_FS_ERROR`. :class:`LibraryView` offers the same
  methods on any PyFilesystem2 FS (the ``OverlayFS`` under test). Both return plain,
  comparable values.
* **Comparison.** :func:`outcome` runs one call and records its result or error class;
  :func:`assert_same_outcome` and :func:`assert_same_tree` compare the two sides.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import stat
import subprocess
import tempfile
from typing import Any, BinaryIO, Callable, Collection, Dict, List, Optional, Sequence, Tuple, Type

import attr

import unionfs  # noqa: F401  (imports fs quietly first)
from fs import errors
from fs.base import FS
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS
from fs.path import dirname, recursepath
from fs.permissions import Permissions

from unionfs.errors import IllegalDestination, LinkLoop, NotALink
from unionfs.core import sidecar as sidecar_format
from unionfs.core.sidecar import Sidecar
from unionfs.testing import trees

# -------------------------------------------------------------------------------------------------
# Layer specs
# -------------------------------------------------------------------------------------------------

DIR = "dir"
OPAQUE = "opaque"  # a directory marked opaque in its layer
FILE = "file"
WHITEOUT = "whiteout"
SYMLINK = "symlink"  # ``target`` is the link's target, stored as given
HARDLINK = "hardlink"  # ``target`` is the path of a FILE of the same layer: a second name of it


@attr.s(frozen=True, slots=True)
class Entry:
    """One entry of a layer spec: a directory (maybe opaque), a file with data, a whiteout, a
    symbolic link, or a hard link to a file of the same layer."""

    kind: str = attr.ib(validator=attr.validators.in_((DIR, OPAQUE, FILE, WHITEOUT, SYMLINK, HARDLINK)))
    data: bytes = attr.ib(default=b"")
    #: permission bits of a directory or file; None: 0o755 / 0o644
    mode: Optional[int] = attr.ib(default=None)
    target: str = attr.ib(default="")

    @property
    def is_dir(self) -> bool:
        return self.kind in (DIR, OPAQUE)


LayerSpec = Dict[str, Entry]

#: The modification time of every file in a built lower layer, long before any test runs:
#: a file that shows it has not had its data changed since (copy-up and rename keep it).
LOWER_MTIME = 500_000_000
#: Times at or after this count as "set by the run"; older ones were copied or set explicitly.
RECENT = 1_000_000_000


def add_entry(layer: LayerSpec, path: str, entry: Entry) -> bool:
    """Add ``entry`` at ``path`` with plain directories for missing ancestors; refuse (False)
    where the path is taken or an ancestor is not a directory, so every spec is a real tree."""
    if path in layer:
        return False
    ancestors = list(recursepath(path))[1:-1]
    if any(a in layer and not layer[a].is_dir for a in ancestors):
        return False
    for ancestor in ancestors:
        layer.setdefault(ancestor, Entry(DIR))
    layer[path] = entry
    return True


def _resolve(layers: Sequence[LayerSpec], path: str) -> List[int]:
    """Indices of the layers making up ``path`` under the kernel's lookup rules (topmost first)."""
    contributors = list(range(len(layers)))
    for prefix in list(recursepath(path))[1:]:
        found: List[int] = []
        for index in contributors:
            entry = layers[index].get(prefix)
            if entry is None:
                continue
            if entry.kind == WHITEOUT:
                break
            if found and not (layers[found[0]][prefix].is_dir and entry.is_dir):
                break
            found.append(index)
            if entry.kind != DIR:  # a file or an opaque directory ends the merge
                break
        if not found:
            return []
        contributors = found
    return contributors


def realistic(layers: Sequence[LayerSpec]) -> List[LayerSpec]:
    """Drop every whiteout that hides nothing, as overlayfs never writes one.

    Such whiteouts are not harmless on the kernel: one inside a directory that no lower
    layer merges with (an opaque directory, or a directory with nothing below it) is listed
    by readdir as a character device, because the kernel filters whiteouts only in merged
    directories and in directories it copied up itself. That is a property of hand-made
    layers, not of the overlay semantics under test, so the generator does not make them."""
    result = [dict(layer) for layer in layers]
    for position, layer in enumerate(result):
        for path, entry in sorted(layer.items()):
            if entry.kind != WHITEOUT:
                continue
            below = [{} for _ in range(position)] + [dict(layer)] + result[position + 1:]
            del below[position][path]
            contributors = _resolve(below, path)
            parent = _resolve(below, dirname(path))
            if not contributors or position not in parent:
                del layer[path]
    return result


def _mode(entry: Entry) -> int:
    return entry.mode if entry.mode is not None else (0o755 if entry.is_dir else 0o644)


def build_kernel_layer(layer: LayerSpec, root: str) -> None:
    """Write ``layer`` under the directory ``root`` in the kernel's marker form (hard links
    last: they need the file they name); files and directories get their modes and the old
    :data:`LOWER_MTIME`, links the old time too."""
    for path, entry in sorted(layer.items(), key=lambda item: (item[1].kind == HARDLINK, item[0])):
        real = root + path
        if entry.is_dir:
            os.mkdir(real)
            if entry.kind == OPAQUE:
                os.setxattr(real, "trusted.overlay.opaque", b"y")
        elif entry.kind == FILE:
            with open(real, "wb") as handle:
                handle.write(entry.data)
        elif entry.kind == SYMLINK:
            os.symlink(entry.target, real)
        elif entry.kind == HARDLINK:
            os.link(root + entry.target, real)
        else:
            os.mknod(real, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        if entry.kind not in (WHITEOUT, SYMLINK, HARDLINK):  # a hard link has its file's mode
            os.chmod(real, _mode(entry))
    for path, entry in sorted(layer.items(), reverse=True):  # children first: they stamp their parent
        if entry.kind != WHITEOUT:
            os.utime(root + path, (LOWER_MTIME, LOWER_MTIME), follow_symlinks=entry.kind != SYMLINK)


def build_library_layer(layer: LayerSpec, directory: Optional[str] = None) -> FS:
    """``layer`` in unionfs's sidecar form (a sidecar only if it has markers, or links it must
    keep as records): a MemoryFS, or with ``directory`` an OSFS there, which holds the
    entries' modes and real links too. A MemoryFS has no hard links: a second name is a copy,
    which reads the same, and a lower is never written, so nothing can tell them apart but
    ``st_nlink``."""
    layer_fs: FS = MemoryFS() if directory is None else OSFS(directory)
    sidecar = None
    record_kinds = (OPAQUE, WHITEOUT, SYMLINK) if directory is None else (OPAQUE, WHITEOUT)
    if any(entry.kind in record_kinds for entry in layer.values()):
        sidecar = Sidecar.open(layer_fs, create=True)
    for path, entry in sorted(layer.items(), key=lambda item: (item[1].kind == HARDLINK, item[0])):
        if entry.is_dir:
            layer_fs.makedir(path)
        elif entry.kind == FILE or (entry.kind == HARDLINK and directory is None):
            layer_fs.writebytes(path, layer[entry.target].data if entry.kind == HARDLINK else entry.data)
        elif entry.kind == HARDLINK:
            os.link(layer_fs.getsyspath(entry.target), layer_fs.getsyspath(path))
        elif entry.kind == SYMLINK and directory is not None:
            os.symlink(entry.target, layer_fs.getsyspath(path))
        if sidecar is not None and entry.kind == OPAQUE:
            sidecar.add_record(path, sidecar_format.OPAQUE)
        elif sidecar is not None and entry.kind == WHITEOUT:
            sidecar.add_record(path, sidecar_format.WHITEOUT)
        elif sidecar is not None and entry.kind == SYMLINK and directory is None:
            sidecar.write_link(path, entry.target)
        if directory is not None and entry.kind not in (WHITEOUT, SYMLINK, HARDLINK):
            os.chmod(layer_fs.getsyspath(path), _mode(entry))
    for path, entry in sorted(layer.items(), reverse=True):
        if entry.kind == SYMLINK and directory is not None:
            os.utime(layer_fs.getsyspath(path), (LOWER_MTIME, LOWER_MTIME), follow_symlinks=False)
        elif entry.kind not in (WHITEOUT, SYMLINK):
            layer_fs.setinfo(path, {"details": {"accessed": LOWER_MTIME, "modified": LOWER_MTIME}})
    return layer_fs


# -------------------------------------------------------------------------------------------------
# Mounting
# -------------------------------------------------------------------------------------------------

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_MNT_DETACH = 2


def _mount_overlay(options: str, target: str) -> None:
    """mount(2) of an overlay: what ``mount -t overlay overlay -o OPTIONS TARGET`` does, without
    a process per mount (the suite mounts thousands of times)."""
    if _libc.mount(b"overlay", target.encode(), b"overlay", 0, options.encode()) != 0:
        code = ctypes.get_errno()
        raise OSError(code, "mount -t overlay -o %s %s: %s" % (options, target, os.strerror(code)))


def _unmount(target: str) -> None:
    """umount(2); if the mount is busy, detach it lazily (``umount -l``) so it never outlives the test."""
    if _libc.umount2(target.encode(), 0) == 0:
        return
    if _libc.umount2(target.encode(), _MNT_DETACH) != 0:
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)


#: the kernel's O(1) directory rename and metadata-only copy-up (what OverlayFS does by default)
REDIRECT_OPTIONS = "redirect_dir=on,metacopy=on"


class KernelOverlay:
    """A kernel overlay mount over layer specs, in a private temporary directory.

    Use as a context manager (or call :meth:`close`): the mount is always undone and the
    directory removed, whatever happened in between."""

    def __init__(self, lowers: Sequence[LayerSpec], extra_options: str = "") -> None:
        #: mount options beyond the layers, e.g. ``REDIRECT_OPTIONS``
        self.extra_options = extra_options
        self.root = tempfile.mkdtemp(prefix="unionfs-kernel-")
        self.merged = os.path.join(self.root, "merged")
        os.mkdir(self.merged)
        self._serial = 0
        self.lowers: List[str] = []
        try:
            for layer in lowers:
                directory = self._fresh("lower")
                build_kernel_layer(layer, directory)
                self.lowers.append(directory)
            self.upper = self._fresh("upper")
            self.work = self._fresh("work")
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        self.mounted = False

    def _fresh(self, kind: str) -> str:
        self._serial += 1
        path = os.path.join(self.root, "%s%d" % (kind, self._serial))
        os.mkdir(path)
        return path

    @property
    def options(self) -> str:
        options = "lowerdir=%s,upperdir=%s,workdir=%s" % (":".join(self.lowers), self.upper, self.work)
        return options + ("," + self.extra_options if self.extra_options else "")

    @property
    def renames_directories(self) -> bool:
        """Whether rename(2) of a lower or merged directory works here (``redirect_dir=on``)."""
        return "redirect_dir=on" in self.extra_options

    def mount(self) -> None:
        _mount_overlay(self.options, self.merged)
        self.mounted = True

    def unmount(self) -> None:
        if self.mounted:
            self.mounted = False
            _unmount(self.merged)

    def reopen(self) -> None:
        """umount and mount the same directories: what the kernel keeps is on disk."""
        self.unmount()
        self.mount()

    def stack(self) -> None:
        """The upper becomes the topmost lower of a new mount with an empty upper."""
        self.unmount()
        self.lowers.insert(0, self.upper)
        self.upper = self._fresh("upper")
        self.work = self._fresh("work")
        self.mount()

    def close(self) -> None:
        try:
            self.unmount()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "KernelOverlay":
        try:
            self.mount()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


# -------------------------------------------------------------------------------------------------
# errno -> fs.errors
# -------------------------------------------------------------------------------------------------

#: The one mapping from the kernel's errno to the ``fs.errors`` class the library must raise:
#: ``errno: (class for file operations, class for directory operations)``. It follows
#: ``fs.error_tools.convert_os_errors`` (what ``OSFS`` raises), with three additions that
#: ``convert_os_errors`` lacks: EBUSY (only ``rmdir`` of the mount point, i.e. the root),
#: EROFS, and EINVAL, which the operations here only meet as "a directory into itself".
#: Directory operations are makedir, makedirs, removedir, removetree, listdir, scandir and
#: movedir; everything else is a file operation. EXDEV is deliberately absent: where the
#: kernel gives it (rename of a lower or merged directory), the library documents a
#: different, working behaviour, and the oracle checks that one instead.
#: The link operations (``readlink``, ``islink``, ``symlink``, ``link``: the library's extensions)
#: have a third column: EINVAL there is readlink of something that is not a link.
#: ELOOP (more than 40 links in one resolution) is :class:`unionfs.LinkLoop` everywhere.
ERRNO_TO_FS_ERROR: Dict[int, Tuple[Type[errors.FSError], Type[errors.FSError], Type[errors.FSError]]] = {
    errno.ENOENT: (errors.ResourceNotFound, errors.ResourceNotFound, errors.ResourceNotFound),
    errno.ENOTDIR: (errors.ResourceNotFound, errors.DirectoryExpected, errors.ResourceNotFound),
    errno.EISDIR: (errors.FileExpected, errors.FileExpected, errors.FileExpected),
    errno.EEXIST: (errors.FileExists, errors.DirectoryExists, errors.FileExists),
    errno.ENOTEMPTY: (errors.DirectoryNotEmpty, errors.DirectoryNotEmpty, errors.DirectoryNotEmpty),
    errno.EINVAL: (IllegalDestination, IllegalDestination, NotALink),
    errno.EBUSY: (errors.RemoveRootError, errors.RemoveRootError, errors.RemoveRootError),
    errno.EPERM: (errors.PermissionDenied, errors.PermissionDenied, errors.PermissionDenied),
    errno.EACCES: (errors.PermissionDenied, errors.PermissionDenied, errors.PermissionDenied),
    errno.EROFS: (errors.ResourceReadOnly, errors.ResourceReadOnly, errors.ResourceReadOnly),
    errno.ELOOP: (LinkLoop, LinkLoop, LinkLoop),
}
#: the columns of :data:`ERRNO_TO_FS_ERROR`
FILE_OPERATION, DIRECTORY_OPERATION, LINK_OPERATION = 0, 1, 2


class UnmappedErrno(AssertionError):
    """The kernel answered with an errno the table does not cover: the oracle has no verdict."""


def fs_error_for(error: OSError, path: str, directory: bool, link: bool = False) -> errors.FSError:
    """The ``fs.errors`` exception the library must raise where the kernel raised ``error``."""
    try:
        classes = ERRNO_TO_FS_ERROR[error.errno]
    except KeyError:
        raise UnmappedErrno("kernel errno %s (%s) on %r" % (errno.errorcode.get(error.errno), error, path)) from error
    return classes[LINK_OPERATION if link else DIRECTORY_OPERATION if directory else FILE_OPERATION](path)


class _KernelCall:
    """Context manager: OSError -> the mapped ``fs.errors`` exception."""

    def __init__(self, path: str, directory: bool = False, link: bool = False) -> None:
        self.path = path
        self.directory = directory
        self.link = link

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if isinstance(exc, OSError):
            raise fs_error_for(exc, self.path, self.directory, self.link) from exc
        return False


# -------------------------------------------------------------------------------------------------
# Resolving inside the mount, as a process chrooted into it would
# -------------------------------------------------------------------------------------------------


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_SYS_OPENAT2 = 437  # the same number on x86_64 and arm64
_RESOLVE_IN_ROOT = 0x10


def open_in_root(root_fd: int, path: str, flags: int, mode: int = 0) -> int:
    """openat2(2) with RESOLVE_IN_ROOT: ``path`` resolved with ``root_fd`` as ``/``, absolute
    symlinks and ``..`` included (what a process chrooted into the merged directory sees,
    and what the library does with absolute link targets)."""
    # openat2 refuses a mode without O_CREAT (EINVAL), unlike open(2), which ignores it
    how = _OpenHow(flags | os.O_CLOEXEC, mode if flags & os.O_CREAT else 0, _RESOLVE_IN_ROOT)
    relative = (path.lstrip("/") or ".").encode("utf-8", "surrogateescape")
    for _ in range(100):
        fd = _libc.syscall(_SYS_OPENAT2, root_fd, relative, ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            return fd
        code = ctypes.get_errno()
        # EAGAIN: a rename anywhere (the overlay's own copy-up in its workdir, say) raced a
        # ".." step; openat2 asks the caller to try again
        if code != errno.EAGAIN:
            break
    raise OSError(code, os.strerror(code), path)


def _fd_path(fd: int) -> str:
    return os.readlink("/proc/self/fd/%d" % fd)


# -------------------------------------------------------------------------------------------------
# The two views
# -------------------------------------------------------------------------------------------------

#: What a tree walk reports per path: ("dir",) or ("file", data) or ("other", mode) for
#: anything else the kernel might show (a leaked whiteout device, say).
TreeEntry = Tuple[Any, ...]
Tree = Dict[str, TreeEntry]
#: getinfo's comparable answer: (is_dir, size of a non-directory or None, is a symbolic link)
InfoSummary = Tuple[bool, Optional[int], bool]


class KernelView:
    """PyFilesystem2-shaped operations done with system calls on the kernel's merged directory.

    Each method is the system-call sequence the PyFilesystem2 call stands for (see the
    mapping in ``/work/shared/overlay-semantics.md``); where PyFilesystem2's contract adds a
    check of its own (``overwrite=False``, ``makedirs``' intermediate check, ``removetree``
    of the root), it is done here with ``lstat`` the way ``fs.base.FS`` does it."""

    def __init__(self, merged: str, mount: Optional["KernelOverlay"] = None) -> None:
        self.merged = merged
        self.mount = mount  # needed only by hide and make_opaque, which edit the upper offline

    def _open(self, path: str, flags: int, mode: int = 0) -> int:
        """A descriptor of ``path`` resolved inside the mount (links followed, the last too)."""
        root = os.open(self.merged, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return open_in_root(root, path, flags, mode)
        finally:
            os.close(root)

    def _real(self, path: str) -> str:
        """The host path of ``path``: the links on the way resolved inside the mount, the last
        component as it is (so ``lstat``, ``unlink``, ``rename`` act on a link itself). An
        unresolvable parent raises the kernel's error."""
        if path == "/":
            return self.merged
        parent, _, name = path.rpartition("/")
        fd = self._open(parent or "/", os.O_PATH | os.O_DIRECTORY)
        try:
            return _fd_path(fd) + "/" + name
        finally:
            os.close(fd)

    def _followed(self, path: str) -> str:
        """The host path of what ``path`` leads to, every link followed inside the mount."""
        fd = self._open(path, os.O_PATH)
        try:
            return _fd_path(fd)
        finally:
            os.close(fd)

    def _lstat(self, path: str, directory: bool = False) -> os.stat_result:
        with _KernelCall(path, directory):
            return os.lstat(self._real(path))

    # -- reading ---------------------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        try:
            return os.path.lexists(self._real(path))
        except OSError:
            return False

    def getinfo(self, path: str) -> InfoSummary:
        return _summary(self._lstat(path))

    def listdir(self, path: str) -> List[str]:
        with _KernelCall(path, directory=True):
            return sorted(os.listdir(self._followed(path)))

    def scandir(self, path: str) -> List[Tuple[str, InfoSummary]]:
        with _KernelCall(path, directory=True):
            return sorted((entry.name, _summary(entry.stat(follow_symlinks=False))) for entry in os.scandir(self._followed(path)))

    def open_reader(self, path: str) -> int:
        """A descriptor opened read-only, to be held across steps."""
        return self.open_handle(path, writable=False)

    def open_handle(self, path: str, writable: bool) -> int:
        """A descriptor opened read-only or read-write (a copy-up), to be held across steps."""
        with _KernelCall(path):
            return self._open(path, os.O_RDWR if writable else os.O_RDONLY)

    def readbytes(self, path: str) -> bytes:
        with _KernelCall(path):
            descriptor = self._open(path, os.O_RDONLY)
            try:
                return _read_all(descriptor)
            finally:
                os.close(descriptor)

    # -- links -----------------------------------------------------------------------------------

    def readlink(self, path: str) -> str:
        with _KernelCall(path, link=True):
            return os.readlink(self._real(path))

    def islink(self, path: str) -> bool:
        """``lstat`` and S_ISLNK; ENOENT where nothing is there (PyFilesystem2's ``islink``)."""
        with _KernelCall(path, link=True):
            return stat.S_ISLNK(os.lstat(self._real(path)).st_mode)

    def symlink(self, target: str, path: str) -> None:
        with _KernelCall(path, link=True):
            os.symlink(target, self._real(path))

    def link(self, existing: str, new: str) -> None:
        with _KernelCall(existing, link=True):
            # link(2) looks the old name up before the new one's directory (do_linkat): a
            # missing source is ENOENT even where the way to the new name is a link loop
            source = self._real(existing)
            os.lstat(source)
        with _KernelCall(new, link=True):
            os.link(source, self._real(new), follow_symlinks=False)

    def isdir(self, path: str, follow: bool = True) -> bool:
        """Whether ``path`` is a directory (a link to one too, with ``follow``), resolved in the mount."""
        try:
            return os.path.isdir(self._followed(path)) if follow else stat.S_ISDIR(os.lstat(self._real(path)).st_mode)
        except OSError:
            return False

    def leads_to_root(self, path: str) -> bool:
        """Whether ``path`` is the root or a link that leads to it."""
        try:
            return os.path.samefile(self._followed(path), self.merged)
        except OSError:
            return False

    def nlink(self, path: str) -> int:
        return self._lstat(path).st_nlink

    def tree(self, times: Optional[Dict[str, int]] = None, modes: Optional[Dict[str, int]] = None) -> Tree:
        """The whole merged tree; each file's and directory's whole-second mtime goes into
        ``times``, its permission bits into ``modes``, if given (a link's are not compared)."""
        result: Tree = {}
        for path, real, status in trees.disk_entries(self.merged):
            if stat.S_ISDIR(status.st_mode):
                result[path] = ("dir",)
            elif stat.S_ISREG(status.st_mode):
                result[path] = ("file", self.readbytes(path))
            elif stat.S_ISLNK(status.st_mode):
                result[path] = ("link", os.readlink(real))
                continue
            else:
                result[path] = ("other", stat.filemode(status.st_mode))
                continue
            if times is not None:
                times[path] = int(status.st_mtime)
            if modes is not None:
                modes[path] = stat.S_IMODE(status.st_mode)
        return result

    # -- writing ---------------------------------------------------------------------------------

    def _write(self, path: str, flags: int, data: bytes, offset: Optional[int] = None) -> None:
        with _KernelCall(path):
            descriptor = self._open(path, flags, 0o644)
            try:
                if offset is None:
                    os.write(descriptor, data)
                else:
                    os.pwrite(descriptor, data, offset)
            finally:
                os.close(descriptor)

    def writebytes(self, path: str, data: bytes) -> None:
        self._write(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, data)

    def appendbytes(self, path: str, data: bytes) -> None:
        self._write(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, data)

    def write_streamed(self, path: str, data: bytes) -> None:
        self._write(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, data)

    def open_truncating(self, path: str) -> None:
        """open(O_WRONLY|O_CREAT|O_TRUNC) and close, nothing written: the mtime is stamped all the same."""
        with _KernelCall(path):
            os.close(self._open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))  # resolved inside the mount

    def write_at(self, path: str, offset: int, data: bytes) -> None:
        self._write(path, os.O_RDWR, data, offset)

    def create_exclusive(self, path: str, data: bytes) -> None:
        self._write(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, data)

    def truncate(self, path: str, size: int) -> None:
        with _KernelCall(path):
            os.truncate(self._followed(path), size)

    def settimes(self, path: str, accessed: int, modified: int) -> Optional[int]:
        """utimes(2) follows a link, as ``OSFS.setinfo`` (and so the library) does; the time
        read back is the entry's own, none for a link (the tree compares the target's)."""
        with _KernelCall(path):
            followed = self._followed(path)
            os.utime(followed, (accessed, modified))
            return None if os.path.islink(self._real(path)) else int(os.lstat(followed).st_mtime)

    def chmod(self, path: str, mode: int) -> int:
        """chmod(2) follows a link (resolved inside the mount, as the library resolves it:
        an absolute target from the overlay's root); the permission bits the entry itself
        shows afterwards."""
        with _KernelCall(path):
            os.chmod(self._followed(path), mode)
        return stat.S_IMODE(self._lstat(path).st_mode)

    def remove(self, path: str) -> None:
        with _KernelCall(path):
            os.unlink(self._real(path))

    def removedir(self, path: str) -> None:
        with _KernelCall(path, directory=True):
            os.rmdir(self._real(path))

    def makedir(self, path: str) -> None:
        with _KernelCall(path, directory=True):
            os.mkdir(self._real(path))

    def makedirs(self, path: str, recreate: bool) -> None:
        with _KernelCall(path, directory=True):  # an unresolvable path on the way is the kernel's error
            self._makedirs(path, recreate)

    def _makedirs(self, path: str, recreate: bool) -> None:
        """``fs.base.FS.makedirs``: refuse a non-directory on the way, make what is missing."""
        missing = []
        for step in reversed(list(recursepath(path))):
            try:
                mode = os.lstat(self._real(step)).st_mode
            except (FileNotFoundError, NotADirectoryError):
                missing.append(step)
                continue
            if stat.S_ISDIR(mode):
                break
            raise errors.DirectoryExpected(path)
        for step in reversed(missing[1:]):
            self.makedir(step)
        try:
            self.makedir(path)
        except errors.DirectoryExists:
            if not recreate:
                raise

    def removetree(self, path: str) -> None:
        with _KernelCall(path, directory=True):  # an unresolvable path on the way is the kernel's error
            self._removetree(path)

    def _removetree(self, path: str) -> None:
        """``rm -rf``: children first; the root itself stays (as in ``fs.base.FS.removetree``);
        a link goes itself, as ``rm -rf link`` removes it. As GNU rm and ``shutil.rmtree`` do
        it: the contents through the directory the path resolved to once (fts and rmtree
        work from its descriptor, so a link on the way that the removal takes away does not
        stop it), then rmdir(2) of the path as spelled, resolved again."""
        mode = self._lstat(path, directory=True).st_mode
        if stat.S_ISLNK(mode):
            self.remove(path)
            return
        if not stat.S_ISDIR(mode):
            raise errors.DirectoryExpected(path)
        self._remove_contents(self._real(path)[len(self.merged):] or "/")
        if path != "/":
            self.removedir(path)

    def _remove_contents(self, path: str) -> None:
        """Everything below ``path``, children before their directory (the walk's order reversed)."""
        for relative, _, status in reversed(list(trees.disk_entries(self._real(path)))):
            child = path.rstrip("/") + relative
            if stat.S_ISDIR(status.st_mode):
                self.removedir(child)
            else:
                self.remove(child)

    def move(self, src: str, dst: str, overwrite: bool) -> None:
        """rename(2) of a file, after PyFilesystem2's checks in ``MemoryFS``'s order: the source
        exists and is a file, then ``overwrite``."""
        if stat.S_ISDIR(self._lstat(src).st_mode):
            raise errors.FileExpected(src)
        if not overwrite and self.exists(dst):
            raise errors.DestinationExists(dst)
        with _KernelCall(dst):
            os.rename(self._real(src), self._real(dst))

    def copy(self, src: str, dst: str, overwrite: bool) -> None:
        """Read the source (its errors first, as in ``MemoryFS``), then create or truncate the
        destination and write."""
        data = self.readbytes(src)
        if not overwrite and self.exists(dst):
            raise errors.DestinationExists(dst)
        if src == dst:
            raise IllegalDestination(dst)  # PyFilesystem2's contract, as cp: 'x' and 'x' are the same file
        self.writebytes(dst, data)

    def movedir(self, src: str, dst: str, create: bool) -> None:
        with _KernelCall(src, directory=True):  # an unresolvable path on the way is the kernel's error
            self._movedir(src, dst, create)

    def _movedir(self, src: str, dst: str, create: bool) -> None:
        """The library's documented ``movedir``. On a ``redirect_dir=on`` mount the kernel's
        real renames: rename(2) of ``src`` to a missing ``dst``; into an existing ``dst`` each
        entry renamed in, directories that exist on both sides merged recursively, then
        ``rm -rf src`` of what is left (the emptied directories). On a default mount, where
        rename(2) answers EXDEV for a lower or merged directory: ``cp -a src/. dst`` then
        ``rm -rf src``.

        Like the library, refuse up front (before changing anything) a destination inside
        the source, an ancestor destination where part of the source would be copied onto
        the source itself, a missing destination without ``create``, and any file/directory
        clash between the two trees."""
        if not stat.S_ISDIR(self._lstat(src, directory=True).st_mode):
            raise errors.DirectoryExpected(src)
        try:
            self._real(dst)  # a link loop on the way to the destination is ELOOP, whatever ``create`` says
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise
        if not stat.S_ISDIR(self._lstat(src, directory=True).st_mode):
            raise errors.DirectoryExpected(src)
        if not self.exists(dst):
            if not create:
                raise errors.ResourceNotFound(dst)
            with _KernelCall(dst, directory=True):
                parent_mode = os.stat(self._followed(dirname(dst))).st_mode  # the links on the way followed
            if not stat.S_ISDIR(parent_mode):
                raise errors.DirectoryExpected(dst)
        elif not stat.S_ISDIR(os.lstat(self._real(dst)).st_mode):
            raise errors.DirectoryExpected(dst)
        # where both really are, the links on the way followed (``/c/c`` with ``/c -> a/a`` is ``/a/a/c``)
        at_src = self._real(src)[len(self.merged):] or "/"
        at_dst = self._real(dst)[len(self.merged):] or "/"
        if at_dst == at_src:
            return  # PyFilesystem2's contract: moving a directory onto itself changes nothing
        if at_dst.startswith(at_src.rstrip("/") + "/"):
            raise IllegalDestination(dst)
        if at_src.startswith(at_dst.rstrip("/") + "/") and self.exists(at_src + at_src[len(at_dst.rstrip("/")):]):
            raise IllegalDestination(dst)  # cp -a would copy part of src onto src itself
        clashes = {}
        for relative, _, status in trees.disk_entries(self._real(src)):
            is_dir = stat.S_ISDIR(status.st_mode)
            target = self._real(dst) + relative
            if os.path.lexists(target) and stat.S_ISDIR(os.lstat(target).st_mode) != is_dir:
                clashes[dst + relative] = errors.DirectoryExpected if is_dir else errors.FileExpected
        if clashes:
            # the order in which clashes are found is unspecified: with mixed kinds, expect either
            kinds = set(clashes.values())
            raise (kinds.pop() if len(kinds) == 1 else errors.ResourceInvalid)(min(clashes))
        # from here on where they really are, as the library resolves both once: a link on the
        # way to ``src`` may be among what moves (``/c/a/c`` with ``/c -> a/c`` and ``/a/c/a ->
        # ..`` is ``/a/c``, whose link ``a`` goes into ``/a``), and the spelled path then no
        # longer leads to the emptied source
        src, dst = at_src, at_dst
        if self.mount is not None and self.mount.renames_directories:
            if not self.exists(dst):
                with _KernelCall(dst, directory=True):
                    os.rename(self._real(src), self._real(dst))
                return
            self._rename_into(src, dst)
            self.removetree(src)
            return
        # -a: links as links; --remove-destination: an existing file or link is replaced, as the
        # library's per-file rename replaces it (never written through, its other hard links untouched)
        copied = subprocess.run(["cp", "-a", "--remove-destination", self._real(src) + "/.", self._real(dst)], capture_output=True, text=True)
        assert copied.returncode == 0, copied.stderr
        self.removetree(src)

    def _rename_into(self, src: str, dst: str) -> None:
        """rename(2) every entry of ``src`` into the directory ``dst``, recursing where both
        sides have a directory of the name."""
        pending = [(src, dst)]
        while pending:
            source, destination = pending.pop()
            for entry in sorted(os.listdir(self._real(source))):
                child, target = source.rstrip("/") + "/" + entry, destination.rstrip("/") + "/" + entry
                real_child = self._real(child)  # (a link is renamed as itself, never followed)
                if stat.S_ISDIR(os.lstat(real_child).st_mode) and os.path.lexists(self._real(target)):
                    pending.append((child, target))
                else:
                    with _KernelCall(target, directory=True):
                        os.rename(self._real(child), self._real(target))

    # -- hand edits of the upper dir, the kernel form of OverlayFS.hide and make_opaque ----------

    def _copy_up(self, path: str, itself: bool) -> None:
        """Copy ``path``'s ancestors (and, if ``itself``, ``path``) up through the mount, by a
        chmod to the mode they have: a hand edit then finds them in the upper with their
        times, as a copy-up keeps them, instead of making them afresh. The ancestors are those
        of where ``path`` really is (``/c/b/a`` with ``/c/b -> /c/c`` is ``/c/c/a``): the edit
        goes there, and a directory it had to make by hand would stamp its parent "now"."""
        try:
            path = self._real(path)[len(self.merged):] or "/"
        except OSError:
            return  # an unresolvable path on the way: the caller answers the kernel's error
        steps = list(recursepath(path))[1:] if itself else list(recursepath(dirname(path)))[1:]
        for step in steps:
            real = self._real(step)
            if os.path.isdir(real) and not os.path.islink(real):
                os.chmod(real, stat.S_IMODE(os.lstat(real).st_mode))

    def _offline(self, edit: Callable[[str], None], path: str) -> None:
        """Unmount, apply ``edit`` to the upper's real path for ``path`` (the links on the way
        resolved in the mount first), mount again."""
        assert self.mount is not None, "hand edits need the KernelOverlay"
        self._copy_up(path, itself=False)
        with _KernelCall(path):
            inside = self._real(path)[len(self.merged):]
        self.mount.unmount()
        try:
            edit(self.mount.upper + inside)
        finally:
            self.mount.mount()

    def hide(self, path: str) -> None:
        with _KernelCall(path, directory=False):  # an unresolvable path on the way is the kernel's error
            self._hide(path)

    def _hide(self, path: str) -> None:
        """Delete the upper's entry by hand (making missing parents), then mount again; if a
        lower shows through, put a whiteout device there by hand. The links on the way are
        resolved once, before the first edit, as the library resolves them: the entry removed
        can be on the way itself ('/b/a/b' with '/b/a -> ../../..' is '/b')."""
        if path == "/":
            raise errors.RemoveRootError(path)
        self._lstat(path)
        path = self._real(path)[len(self.merged):]
        self._offline(_clear_upper_entry, path)
        if self.exists(path):
            self._offline(lambda real: os.mknod(real, stat.S_IFCHR | 0o000, os.makedev(0, 0)), path)

    def make_opaque(self, path: str) -> None:
        with _KernelCall(path, directory=True):  # an unresolvable path on the way is the kernel's error
            self._make_opaque(path)

    def _make_opaque(self, path: str) -> None:
        """``mkdir -p`` in the upper by hand (over any whiteout), ``setfattr -n
        trusted.overlay.opaque -v y``, and drop the whiteouts below, which an opaque
        directory must not hold, but for those in a renamed directory: that one still
        merges with its lower (by the redirect), whose entries they hide. Renamed directories and metadata-only files below get an
        absolute ``overlay.redirect`` (their lower path) where they have none or a relative
        one: the library's records always name the lower path from the root, which the
        kernel follows past an opaque directory only when absolute (``export_kernel`` writes
        them so too)."""
        if path == "/":
            raise errors.OperationFailed(path)
        if self.exists(path):
            if not stat.S_ISDIR(os.lstat(self._real(path)).st_mode):
                raise errors.DirectoryExpected(path)
            self._copy_up(path, itself=True)
        else:
            with _KernelCall(path, directory=True):
                parent_mode = os.stat(self._followed(dirname(path))).st_mode  # the links on the way followed
            if not stat.S_ISDIR(parent_mode):
                raise errors.DirectoryExpected(path)
        assert self.mount is not None
        upper = self.mount.upper
        self._offline(lambda real: _make_opaque_by_hand(real, upper), path)

def _is_whiteout(real: str) -> bool:
    status = os.lstat(real)
    return stat.S_ISCHR(status.st_mode) and status.st_rdev == 0


def _clear_upper_entry(real: str) -> None:
    """Remove whatever the upper dir has at ``real``; make its missing parents."""
    os.makedirs(os.path.dirname(real), exist_ok=True)
    if os.path.isdir(real) and not os.path.islink(real):
        shutil.rmtree(real)
    elif os.path.lexists(real):
        os.unlink(real)


def _make_opaque_by_hand(real: str, upper: str) -> None:
    if os.path.lexists(real) and _is_whiteout(real):
        os.unlink(real)
    os.makedirs(real, exist_ok=True)
    os.setxattr(real, "trusted.overlay.opaque", b"y")
    found = list(trees.disk_entries(real))  # whiteouts have nothing below them: removing them changes no walk
    whiteouts = [
        entry
        for _, entry, status in found
        if stat.S_ISCHR(status.st_mode) and status.st_rdev == 0 and not _merged_below_opaque(os.path.dirname(entry), real)
    ]
    for directory in sorted({os.path.dirname(entry) for entry in whiteouts}):
        kept_times = os.stat(directory)
        for entry in whiteouts:
            if os.path.dirname(entry) == directory:
                os.unlink(entry)
        # the whiteouts were bookkeeping, not entries of the view: the directory keeps its times
        os.utime(directory, ns=(kept_times.st_atime_ns, kept_times.st_mtime_ns))
    for _, entry, status in found:
        redirect = _xattr(entry, "trusted.overlay.redirect")
        renamed = stat.S_ISDIR(status.st_mode) and redirect is not None
        metacopy = stat.S_ISREG(status.st_mode) and _xattr(entry, "trusted.overlay.metacopy") is not None
        if (renamed or metacopy) and not (redirect or b"").startswith(b"/"):
            os.setxattr(entry, "trusted.overlay.redirect", _lower_path(upper, entry).encode())


def _merged_below_opaque(directory: str, opaque: str) -> bool:
    """Whether the upper directory ``directory`` below the (new) opaque directory ``opaque``
    still merges with a lower: a renamed directory on the way down, nearer than any opaque
    one, takes its lower by its (absolute) redirect past the opaque directory, so its
    whiteouts still hide what that lower holds."""
    while directory != opaque:
        if _xattr(directory, "trusted.overlay.opaque") == b"y":
            return False
        if _xattr(directory, "trusted.overlay.redirect") is not None:
            return True
        directory = os.path.dirname(directory)
    return False


def _xattr(real: str, name: str) -> Optional[bytes]:
    try:
        return os.getxattr(real, name, follow_symlinks=False)
    except OSError:
        return None


def _lower_path(upper: str, real: str) -> str:
    """Where the lowers hold the upper entry ``real``: its path, sent elsewhere by the
    redirects of it and its ancestors (absolute, or relative to the parent's lower path)."""
    below = "/"
    current = upper
    for part in os.path.relpath(real, upper).split(os.sep):
        current = os.path.join(current, part)
        redirect = _xattr(current, "trusted.overlay.redirect")
        if redirect is None:
            below = os.path.join(below, part)
        elif redirect.startswith(b"/"):
            below = redirect.decode()
        else:
            below = os.path.join(below, redirect.decode())
    return below


class LibraryView:
    """The same operations through the PyFilesystem2 API of ``fs`` (the overlay under test)."""

    def __init__(self, fs: FS) -> None:
        self.fs = fs

    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def getinfo(self, path: str) -> InfoSummary:
        info = self.fs.getinfo(path, ["details", "link"])
        return (info.is_dir, None if info.is_dir else info.size, info.is_link)

    def listdir(self, path: str) -> List[str]:
        return sorted(self.fs.listdir(path))

    def scandir(self, path: str) -> List[Tuple[str, InfoSummary]]:
        return sorted(
            (info.name, (info.is_dir, None if info.is_dir else info.size, info.is_link)) for info in self.fs.scandir(path, ["details", "link"])
        )

    def readlink(self, path: str) -> str:
        return self.fs.readlink(path)  # type: ignore[attr-defined]

    def islink(self, path: str) -> bool:
        return self.fs.islink(path)  # type: ignore[attr-defined]

    def symlink(self, target: str, path: str) -> None:
        self.fs.symlink(target, path)  # type: ignore[attr-defined]

    def link(self, existing: str, new: str) -> None:
        self.fs.link(existing, new)  # type: ignore[attr-defined]

    def nlink(self, path: str) -> Optional[int]:
        """``st_nlink`` where the layer serving ``path`` shows it (an OS directory), else None."""
        raw = self.fs.getinfo(path, ["stat"]).raw.get("stat")
        return None if raw is None else raw["st_nlink"]

    def open_reader(self, path: str) -> BinaryIO:
        return self.fs.openbin(path, "r")

    def open_handle(self, path: str, writable: bool) -> BinaryIO:
        """Unbuffered, as a descriptor is: what it reads is what the file holds now."""
        return self.fs.openbin(path, "r+" if writable else "r", buffering=0)

    def readbytes(self, path: str) -> bytes:
        return self.fs.readbytes(path)

    def tree(self, times: Optional[Dict[str, int]] = None, modes: Optional[Dict[str, int]] = None) -> Tree:
        """The whole merged tree; each file's and directory's whole-second mtime goes into
        ``times``, its permission bits (where the layers hold them) into ``modes``, if given."""
        result: Tree = {}
        # sidecar=True: nothing is left out, a ``/.unionfs`` the overlay showed would be compared too
        for path, info in trees.entries(self.fs, namespaces=["details", "access", "link"], sidecar=True):
            if info.is_dir:
                result[path] = ("dir",)
            elif info.is_link:
                result[path] = ("link", info.target)
                continue  # a link's times and mode are not compared
            else:
                result[path] = ("file", self.fs.readbytes(path))
            if times is not None:
                times[path] = int(info.raw["details"]["modified"])
            if modes is not None and info.has_namespace("access") and info.permissions is not None:
                modes[path] = info.permissions.mode
        return result

    def writebytes(self, path: str, data: bytes) -> None:
        self.fs.writebytes(path, data)

    def appendbytes(self, path: str, data: bytes) -> None:
        self.fs.appendbytes(path, data)

    def write_streamed(self, path: str, data: bytes) -> None:
        """Through an open file (``openbin("w+")``), not the atomic whole-file ``writebytes``."""
        with self.fs.openbin(path, "w+") as handle:
            handle.write(data)

    def open_truncating(self, path: str) -> None:
        with self.fs.openbin(path, "w"):
            pass

    def write_at(self, path: str, offset: int, data: bytes) -> None:
        with self.fs.openbin(path, "r+") as handle:
            handle.seek(offset)
            handle.write(data)

    def create_exclusive(self, path: str, data: bytes) -> None:
        with self.fs.openbin(path, "x") as handle:
            handle.write(data)

    def truncate(self, path: str, size: int) -> None:
        with self.fs.openbin(path, "r+") as handle:
            handle.truncate(size)

    def settimes(self, path: str, accessed: int, modified: int) -> Optional[int]:
        self.fs.setinfo(path, {"details": {"accessed": accessed, "modified": modified}})
        info = self.fs.getinfo(path, ["details", "link"])
        return None if info.is_link else int(info.raw["details"]["modified"])

    def chmod(self, path: str, mode: int) -> int:
        self.fs.setinfo(path, {"access": {"permissions": Permissions(mode=mode).dump()}})
        return self.fs.getinfo(path, ["access"]).permissions.mode

    def remove(self, path: str) -> None:
        self.fs.remove(path)

    def removedir(self, path: str) -> None:
        self.fs.removedir(path)

    def makedir(self, path: str) -> None:
        self.fs.makedir(path)

    def makedirs(self, path: str, recreate: bool) -> None:
        self.fs.makedirs(path, recreate=recreate)

    def removetree(self, path: str) -> None:
        self.fs.removetree(path)

    def move(self, src: str, dst: str, overwrite: bool) -> None:
        self.fs.move(src, dst, overwrite=overwrite)

    def copy(self, src: str, dst: str, overwrite: bool) -> None:
        self.fs.copy(src, dst, overwrite=overwrite)

    def movedir(self, src: str, dst: str, create: bool) -> None:
        self.fs.movedir(src, dst, create=create)

    def hide(self, path: str) -> None:
        self.fs.hide(path)

    def make_opaque(self, path: str) -> None:
        self.fs.make_opaque(path)


def _summary(status: os.stat_result) -> InfoSummary:
    is_dir = stat.S_ISDIR(status.st_mode)
    return (is_dir, None if is_dir else status.st_size, stat.S_ISLNK(status.st_mode))


def _read_all(descriptor: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(descriptor, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


# -------------------------------------------------------------------------------------------------
# Comparing
# -------------------------------------------------------------------------------------------------


@attr.s(frozen=True, slots=True)
class Outcome:
    """What one call did: its value, or the ``fs.errors`` exception it raised."""

    value: Any = attr.ib(default=None)
    error: Optional[errors.FSError] = attr.ib(default=None)

    def describe(self) -> str:
        if self.error is None:
            return "ok %r" % (self.value,)
        return "%s(%r)" % (type(self.error).__name__, getattr(self.error, "path", None))


def outcome(call: Callable[[], Any]) -> Outcome:
    """Run ``call``; an ``fs.errors.FSError`` is an outcome, anything else propagates."""
    try:
        return Outcome(value=call())
    except errors.FSError as error:
        return Outcome(error=error)


def assert_same_outcome(what: str, library: Outcome, kernel: Outcome, paths: Sequence[str]) -> None:
    """Same success and value, or an error of the class the kernel's errno maps to, naming
    one of the caller's paths."""
    detail = "%s: library %s, kernel %s" % (what, library.describe(), kernel.describe())
    if kernel.error is None:
        assert library.error is None, detail
        assert library.value == kernel.value, detail
        return
    assert library.error is not None, detail
    assert isinstance(library.error, type(kernel.error)), detail
    named = getattr(library.error, "path", None)
    assert any(named == path or (named or "").startswith(path.rstrip("/") + "/") for path in paths), (
        "%s: the error names %r, neither a path of the caller nor one below it" % (what, named)
    )


def assert_same_tree(library: Tree, kernel: Tree) -> None:
    """Same paths, same types, same file contents (a readable diff first)."""
    only_library = sorted(set(library) - set(kernel))
    only_kernel = sorted(set(kernel) - set(library))
    different = sorted(p for p in set(library) & set(kernel) if library[p] != kernel[p])
    assert not (only_library or only_kernel or different), "merged trees differ: only in library %s, only in kernel %s, different %s" % (
        only_library,
        [(p, kernel[p]) for p in only_kernel],
        [(p, library[p], kernel[p]) for p in different],
    )


def assert_same_modes(library: Dict[str, int], kernel: Dict[str, int]) -> None:
    """Same permission bits for every file and directory."""
    wrong = {path: (oct(library.get(path, 0)), oct(mode)) for path, mode in kernel.items() if library.get(path) != mode}
    assert not wrong, "modes differ (library, kernel): %r" % (wrong,)


def assert_same_file_times(library: Dict[str, int], kernel: Dict[str, int]) -> None:
    """Where the kernel shows an old time (kept by copy-up and rename, or set by utimes) the
    library shows the same; where the kernel shows a time of this run, so does the library.
    Files and directories alike (a directory gets the time of a change of its entries)."""
    wrong = {
        path: (library.get(path), kernel_time)
        for path, kernel_time in kernel.items()
        if (library.get(path) != kernel_time if kernel_time < RECENT else (library.get(path) or 0) < RECENT)
    }
    assert not wrong, "file modification times differ (library, kernel): %r" % (wrong,)


# -------------------------------------------------------------------------------------------------
# Metadata-only copy-ups, as each side's upper holds them
# -------------------------------------------------------------------------------------------------


def _data_bytes(real: str) -> int:
    """Whether a file holds any data on disk: 0 for a sparse file without a data extent
    (``SEEK_DATA`` finds none), else its size. Not ``st_blocks``, which counts an ext4 xattr
    block too."""
    descriptor = os.open(real, os.O_RDONLY)
    try:
        os.lseek(descriptor, 0, os.SEEK_DATA)
    except OSError as error:
        if error.errno == errno.ENXIO:
            return 0
        raise
    finally:
        os.close(descriptor)
    return os.lstat(real).st_size


def kernel_metacopy_files(upper_dir: str, skip: Collection[Tuple[int, int]] = ()) -> Dict[str, int]:
    """Every file of a kernel upperdir marked ``trusted.overlay.metacopy``, with the bytes of
    data it holds on disk (none: the kernel leaves it sparse); files whose (st_dev, st_ino)
    is in ``skip`` left out."""
    found: Dict[str, int] = {}
    for path, real, status in trees.disk_entries(upper_dir):
        if stat.S_ISDIR(status.st_mode) or (status.st_dev, status.st_ino) in skip:
            continue
        try:
            os.getxattr(real, "trusted.overlay.metacopy", follow_symlinks=False)
        except OSError:
            continue
        found[path] = _data_bytes(real)
    return found


def _raw_files(upper: FS, reserved: str) -> List[str]:
    """The regular files of the raw upper (its sidecar left out), links never followed."""
    try:
        root = upper.getsyspath("/")
    except errors.NoSysPath:
        return [path for path, info in trees.entries(upper) if not info.is_dir]
    sidecar = "/" + reserved
    return [path for path, _, status in trees.disk_entries(root, skip=lambda path: path == sidecar) if stat.S_ISREG(status.st_mode)]


def library_metacopy_files(upper: FS) -> Dict[str, int]:
    """Every metadata-only file of a unionfs upper (a hint record and a token content, read
    from the raw upper, not through unionfs's lookup), with the bytes its upper file holds."""
    from unionfs.core.sidecar import METACOPY, METACOPY_DIR, RESERVED_NAME, metacopy_token, record_dir

    found: Dict[str, int] = {}
    for path in _raw_files(upper, RESERVED_NAME):
        if not upper.exists(record_dir(dirname(path)) + "/" + METACOPY + "/" + path.rsplit("/", 1)[1]):
            continue
        content = upper.readbytes(path)
        token = metacopy_token(content)
        if token is not None and upper.exists(METACOPY_DIR + "/" + token):
            found[path] = len(content)
    return found
