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
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Sequence, Tuple, Type

import attr

import unionfs  # noqa: F401  (imports fs quietly first)
from fs import errors
from fs.base import FS
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS
from fs.path import dirname, recursepath

from unionfs.errors import IllegalDestination
from unionfs.core import sidecar as sidecar_format
from unionfs.core.sidecar import Sidecar

# -------------------------------------------------------------------------------------------------
# Layer specs
# -------------------------------------------------------------------------------------------------

DIR = "dir"
OPAQUE = "opaque"  # a directory marked opaque in its layer
FILE = "file"
WHITEOUT = "whiteout"


@attr.s(frozen=True, slots=True)
class Entry:
    """One entry of a layer spec: a directory (maybe opaque), a file with data, or a whiteout."""

    kind: str = attr.ib(validator=attr.validators.in_((DIR, OPAQUE, FILE, WHITEOUT)))
    data: bytes = attr.ib(default=b"")
    #: permission bits of a directory or file; None: 0o755 / 0o644
    mode: Optional[int] = attr.ib(default=None)

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
    """Write ``layer`` under the directory ``root`` in the kernel's marker form; files and
    directories get their modes and the old :data:`LOWER_MTIME`."""
    for path, entry in sorted(layer.items()):
        real = root + path
        if entry.is_dir:
            os.mkdir(real)
            if entry.kind == OPAQUE:
                os.setxattr(real, "trusted.overlay.opaque", b"y")
        elif entry.kind == FILE:
            with open(real, "wb") as handle:
                handle.write(entry.data)
        else:
            os.mknod(real, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        if entry.kind != WHITEOUT:
            os.chmod(real, _mode(entry))
    for path, entry in sorted(layer.items(), reverse=True):  # children first: they stamp their parent
        if entry.kind != WHITEOUT:
            os.utime(root + path, (LOWER_MTIME, LOWER_MTIME))


def build_library_layer(layer: LayerSpec, directory: Optional[str] = None) -> FS:
    """``layer`` in unionfs's sidecar form (a sidecar only if it has markers): a MemoryFS, or
    with ``directory`` an OSFS there, which holds the entries' modes too."""
    layer_fs: FS = MemoryFS() if directory is None else OSFS(directory)
    sidecar = None
    if any(entry.kind in (OPAQUE, WHITEOUT) for entry in layer.values()):
        sidecar = Sidecar.open(layer_fs, create=True)
    for path, entry in sorted(layer.items()):
        if entry.is_dir:
            layer_fs.makedir(path)
        elif entry.kind == FILE:
            layer_fs.writebytes(path, entry.data)
        if sidecar is not None and entry.kind == OPAQUE:
            sidecar.add_record(path, sidecar_format.OPAQUE)
        elif sidecar is not None and entry.kind == WHITEOUT:
            sidecar.add_record(path, sidecar_format.WHITEOUT)
        if directory is not None and entry.kind != WHITEOUT:
            os.chmod(layer_fs.getsyspath(path), _mode(entry))
    for path, entry in sorted(layer.items(), reverse=True):
        if entry.kind != WHITEOUT:
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


class KernelOverlay:
    """A kernel overlay mount over layer specs, in a private temporary directory.

    Use as a context manager (or call :meth:`close`): the mount is always undone and the
    directory removed, whatever happened in between."""

    def __init__(self, lowers: Sequence[LayerSpec]) -> None:
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
        return "lowerdir=%s,upperdir=%s,workdir=%s" % (":".join(self.lowers), self.upper, self.work)

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
ERRNO_TO_FS_ERROR: Dict[int, Tuple[Type[errors.FSError], Type[errors.FSError]]] = {
    errno.ENOENT: (errors.ResourceNotFound, errors.ResourceNotFound),
    errno.ENOTDIR: (errors.ResourceNotFound, errors.DirectoryExpected),
    errno.EISDIR: (errors.FileExpected, errors.FileExpected),
    errno.EEXIST: (errors.FileExists, errors.DirectoryExists),
    errno.ENOTEMPTY: (errors.DirectoryNotEmpty, errors.DirectoryNotEmpty),
    errno.EINVAL: (IllegalDestination, IllegalDestination),
    errno.EBUSY: (errors.RemoveRootError, errors.RemoveRootError),
    errno.EPERM: (errors.PermissionDenied, errors.PermissionDenied),
    errno.EACCES: (errors.PermissionDenied, errors.PermissionDenied),
    errno.EROFS: (errors.ResourceReadOnly, errors.ResourceReadOnly),
}


class UnmappedErrno(AssertionError):
    """The kernel answered with an errno the table does not cover: the oracle has no verdict."""


def fs_error_for(error: OSError, path: str, directory: bool) -> errors.FSError:
    """The ``fs.errors`` exception the library must raise where the kernel raised ``error``."""
    try:
        classes = ERRNO_TO_FS_ERROR[error.errno]
    except KeyError:
        raise UnmappedErrno("kernel errno %s (%s) on %r" % (errno.errorcode.get(error.errno), error, path)) from error
    return classes[1 if directory else 0](path)


class _KernelCall:
    """Context manager: OSError -> the mapped ``fs.errors`` exception."""

    def __init__(self, path: str, directory: bool = False) -> None:
        self.path = path
        self.directory = directory

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if isinstance(exc, OSError):
            raise fs_error_for(exc, self.path, self.directory) from exc
        return False


# -------------------------------------------------------------------------------------------------
# The two views
# -------------------------------------------------------------------------------------------------

#: What a tree walk reports per path: ("dir",) or ("file", data) or ("other", mode) for
#: anything else the kernel might show (a leaked whiteout device, say).
TreeEntry = Tuple[Any, ...]
Tree = Dict[str, TreeEntry]
#: getinfo's comparable answer: (is_dir, size of a file or None for a directory)
InfoSummary = Tuple[bool, Optional[int]]


class KernelView:
    """PyFilesystem2-shaped operations done with system calls on the kernel's merged directory.

    Each method is the system-call sequence the PyFilesystem2 call stands for (see the
    mapping in ``/work/shared/overlay-semantics.md``); where PyFilesystem2's contract adds a
    check of its own (``overwrite=False``, ``makedirs``' intermediate check, ``removetree``
    of the root), it is done here with ``lstat`` the way ``fs.base.FS`` does it."""

    def __init__(self, merged: str, mount: Optional["KernelOverlay"] = None) -> None:
        self.merged = merged
        self.mount = mount  # needed only by hide and make_opaque, which edit the upper offline

    def _real(self, path: str) -> str:
        return self.merged + path if path != "/" else self.merged

    def _lstat(self, path: str, directory: bool = False) -> os.stat_result:
        with _KernelCall(path, directory):
            return os.lstat(self._real(path))

    # -- reading ---------------------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        return os.path.lexists(self._real(path))

    def getinfo(self, path: str) -> InfoSummary:
        return _summary(self._lstat(path))

    def listdir(self, path: str) -> List[str]:
        with _KernelCall(path, directory=True):
            return sorted(os.listdir(self._real(path)))

    def scandir(self, path: str) -> List[Tuple[str, InfoSummary]]:
        with _KernelCall(path, directory=True):
            return sorted((entry.name, _summary(entry.stat(follow_symlinks=False))) for entry in os.scandir(self._real(path)))

    def open_reader(self, path: str) -> int:
        """A descriptor opened read-only, to be held across steps."""
        return self.open_handle(path, writable=False)

    def open_handle(self, path: str, writable: bool) -> int:
        """A descriptor opened read-only or read-write (a copy-up), to be held across steps."""
        with _KernelCall(path):
            return os.open(self._real(path), os.O_RDWR if writable else os.O_RDONLY)

    def readbytes(self, path: str) -> bytes:
        with _KernelCall(path):
            descriptor = os.open(self._real(path), os.O_RDONLY)
            try:
                return _read_all(descriptor)
            finally:
                os.close(descriptor)

    def tree(self, times: Optional[Dict[str, int]] = None, modes: Optional[Dict[str, int]] = None) -> Tree:
        """The whole merged tree; each file's and directory's whole-second mtime goes into
        ``times``, its permission bits into ``modes``, if given."""
        result: Tree = {}
        pending = ["/"]
        while pending:
            directory = pending.pop()
            for entry in os.scandir(self._real(directory)):
                path = directory.rstrip("/") + "/" + entry.name
                status = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(status.st_mode):
                    result[path] = ("dir",)
                    pending.append(path)
                elif stat.S_ISREG(status.st_mode):
                    result[path] = ("file", self.readbytes(path))
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
            descriptor = os.open(self._real(path), flags, 0o644)
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
            os.close(os.open(self._real(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))

    def write_at(self, path: str, offset: int, data: bytes) -> None:
        self._write(path, os.O_RDWR, data, offset)

    def create_exclusive(self, path: str, data: bytes) -> None:
        self._write(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, data)

    def truncate(self, path: str, size: int) -> None:
        with _KernelCall(path):
            os.truncate(self._real(path), size)

    def settimes(self, path: str, accessed: int, modified: int) -> int:
        with _KernelCall(path):
            os.utime(self._real(path), (accessed, modified), follow_symlinks=False)
        return int(self._lstat(path).st_mtime)

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
        """``rm -rf``: children first; the root itself stays (as in ``fs.base.FS.removetree``)."""
        if not stat.S_ISDIR(self._lstat(path, directory=True).st_mode):
            raise errors.DirectoryExpected(path)
        self._remove_contents(path)
        if path != "/":
            self.removedir(path)

    def _remove_contents(self, path: str) -> None:
        for entry in list(os.scandir(self._real(path))):
            child = path.rstrip("/") + "/" + entry.name
            if entry.is_dir(follow_symlinks=False):
                self._remove_contents(child)
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
        """The library's documented ``movedir``: ``cp -a src/. dst`` then ``rm -rf src``.

        Not rename(2), which answers EXDEV for a lower or merged directory. Like the
        library, refuse up front (before changing anything) a destination inside the
        source, an ancestor destination where part of the source would be copied onto the
        source itself, a missing destination without ``create``, and any file/directory
        clash between the two trees."""
        if not stat.S_ISDIR(self._lstat(src, directory=True).st_mode):
            raise errors.DirectoryExpected(src)
        if not self.exists(dst):
            if not create:
                raise errors.ResourceNotFound(dst)
            with _KernelCall(dst, directory=True):
                parent_mode = os.lstat(self._real(dirname(dst))).st_mode
            if not stat.S_ISDIR(parent_mode):
                raise errors.DirectoryExpected(dst)
        elif not stat.S_ISDIR(os.lstat(self._real(dst)).st_mode):
            raise errors.DirectoryExpected(dst)
        if dst == src:
            return  # PyFilesystem2's contract: moving a directory onto itself changes nothing
        if dst.startswith(src.rstrip("/") + "/"):
            raise IllegalDestination(dst)
        if src.startswith(dst.rstrip("/") + "/") and self.exists(src + src[len(dst.rstrip("/")):]):
            raise IllegalDestination(dst)  # cp -a would copy part of src onto src itself
        clashes = {}
        for relative, is_dir in self._walk(src):
            target = self._real(dst) + relative
            if os.path.lexists(target) and stat.S_ISDIR(os.lstat(target).st_mode) != is_dir:
                clashes[dst + relative] = errors.DirectoryExpected if is_dir else errors.FileExpected
        if clashes:
            # the order in which clashes are found is unspecified: with mixed kinds, expect either
            kinds = set(clashes.values())
            raise (kinds.pop() if len(kinds) == 1 else errors.ResourceInvalid)(min(clashes))
        copied = subprocess.run(["cp", "-a", self._real(src) + "/.", self._real(dst)], capture_output=True, text=True)
        assert copied.returncode == 0, copied.stderr
        self.removetree(src)

    # -- hand edits of the upper dir, the kernel form of OverlayFS.hide and make_opaque ----------

    def _copy_up(self, path: str, itself: bool) -> None:
        """Copy ``path``'s ancestors (and, if ``itself``, ``path``) up through the mount, by a
        chmod to the mode they have: a hand edit then finds them in the upper with their
        times, as a copy-up keeps them, instead of making them afresh."""
        steps = list(recursepath(path))[1:] if itself else list(recursepath(dirname(path)))[1:]
        for step in steps:
            real = self._real(step)
            if os.path.isdir(real) and not os.path.islink(real):
                os.chmod(real, stat.S_IMODE(os.lstat(real).st_mode))

    def _offline(self, edit: Callable[[str], None], path: str) -> None:
        """Unmount, apply ``edit`` to the upper's real path for ``path``, mount again."""
        assert self.mount is not None, "hand edits need the KernelOverlay"
        self._copy_up(path, itself=False)
        self.mount.unmount()
        try:
            edit(self.mount.upper + path)
        finally:
            self.mount.mount()

    def hide(self, path: str) -> None:
        """Delete the upper's entry by hand (making missing parents), then mount again; if a
        lower shows through, put a whiteout device there by hand."""
        if path == "/":
            raise errors.RemoveRootError(path)
        self._lstat(path)
        self._offline(_clear_upper_entry, path)
        if self.exists(path):
            self._offline(lambda real: os.mknod(real, stat.S_IFCHR | 0o000, os.makedev(0, 0)), path)

    def make_opaque(self, path: str) -> None:
        """``mkdir -p`` in the upper by hand (over any whiteout), ``setfattr -n
        trusted.overlay.opaque -v y``, and drop the whiteouts below, which an opaque
        directory must not hold."""
        if path == "/":
            raise errors.OperationFailed(path)
        if self.exists(path):
            if not stat.S_ISDIR(os.lstat(self._real(path)).st_mode):
                raise errors.DirectoryExpected(path)
            self._copy_up(path, itself=True)
        else:
            with _KernelCall(path, directory=True):
                parent_mode = os.lstat(self._real(dirname(path))).st_mode
            if not stat.S_ISDIR(parent_mode):
                raise errors.DirectoryExpected(path)
        self._offline(_make_opaque_by_hand, path)

    def _walk(self, top: str) -> List[Tuple[str, bool]]:
        found = []
        for entry in os.scandir(self._real(top)):
            relative = "/" + entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            found.append((relative, is_dir))
            if is_dir:
                found.extend((relative + sub, sub_is_dir) for sub, sub_is_dir in self._walk(top.rstrip("/") + relative))
        return found


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


def _make_opaque_by_hand(real: str) -> None:
    if os.path.lexists(real) and _is_whiteout(real):
        os.unlink(real)
    os.makedirs(real, exist_ok=True)
    os.setxattr(real, "trusted.overlay.opaque", b"y")
    for directory, _, names in os.walk(real):
        kept = os.stat(directory)
        for name in names:
            if _is_whiteout(os.path.join(directory, name)):
                os.unlink(os.path.join(directory, name))
        # the whiteouts were bookkeeping, not entries of the view: the directory keeps its times
        os.utime(directory, ns=(kept.st_atime_ns, kept.st_mtime_ns))


class LibraryView:
    """The same operations through the PyFilesystem2 API of ``fs`` (the overlay under test)."""

    def __init__(self, fs: FS) -> None:
        self.fs = fs

    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def getinfo(self, path: str) -> InfoSummary:
        info = self.fs.getinfo(path, ["details"])
        return (info.is_dir, None if info.is_dir else info.size)

    def listdir(self, path: str) -> List[str]:
        return sorted(self.fs.listdir(path))

    def scandir(self, path: str) -> List[Tuple[str, InfoSummary]]:
        return sorted((info.name, (info.is_dir, None if info.is_dir else info.size)) for info in self.fs.scandir(path, ["details"]))

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
        pending = ["/"]
        while pending:
            directory = pending.pop()
            for info in self.fs.scandir(directory, ["details", "access"]):
                path = directory.rstrip("/") + "/" + info.name
                if info.is_dir:
                    result[path] = ("dir",)
                    pending.append(path)
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

    def settimes(self, path: str, accessed: int, modified: int) -> int:
        self.fs.setinfo(path, {"details": {"accessed": accessed, "modified": modified}})
        return int(self.fs.getinfo(path, ["details"]).raw["details"]["modified"])

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
    return (is_dir, None if is_dir else status.st_size)


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
