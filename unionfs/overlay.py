"""``OverlayFS``: the PyFilesystem2 API over the overlay's lookup, readdir, copy-up and
directory-operation modules. Each method validates its path once, takes the lock, checks the
kernel's error conditions in the kernel's order, and delegates."""

from __future__ import annotations

import errno
import io
import os
import stat
import tempfile
import threading
import weakref
from typing import Any, BinaryIO, Collection, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union, cast

from . import _fsimport  # noqa: F401
from fs import errors
from fs.base import FS
from fs.enums import ResourceType
from fs.info import Info
from fs.mode import Mode
from fs.path import abspath, dirname, isbase, join, normpath, relpath
from fs.permissions import Permissions
from fs.subfs import SubFS

from . import changes, commit as committing
from .core import dir as dirops
from .core import fsck, readdir, sharing, xattr
from .changes import ChangeSet
from .commit import ProgressCallback
from .core.inode import COPIED_NAMESPACES, apply_metadata, copyable_metadata, node_info, root_info
from .core.copy_up import EMPTY, METADATA, WRITE, copy_up
from .errors import IllegalDestination, LinkLoop, NoSuchAttribute, NotALink, ReservedPath, literal
from .core.fsck import FsckReport
from .core.journal import Intent
from .core.stack import Layer, LayerSource, Stack, open_layers
from .core.nofollow import syspath
from .formats import resolve
from .core.lookup import Lookup, Node
from .core.sidecar import SIDECAR_DIR, is_reserved
from .core.file import FollowingReaders
from .core.upper import Upper
from .io import CHUNK, copy_stream


#: how many validated paths an overlay remembers before it starts afresh
VALID_PATHS_KEPT = 1 << 16


#: openbin modes that only read (what ``Layer.open_read`` opens)
_READ_MODES = frozenset(("r", "rb", "br"))


class OverlayFS(FS):
    """A writable ``upper`` filesystem over read-only ``lowers``, with Linux overlayfs semantics.

    ``lowers`` is one FS or FS URL, or a sequence of them with the topmost first (the
    order of the kernel's ``lowerdir=``). ``upper`` is a writable FS or FS URL, or
    ``None`` for a read-only overlay. Layers given as URLs are opened, owned and closed
    by the overlay; layers given as FS objects stay open when the overlay closes.
    ``redirect_dir`` (the kernel's ``redirect_dir=on``): ``movedir`` of a lower or merged
    directory is one rename carrying a redirect record, not a copy of the tree. ``metacopy``
    (``metacopy=on``): ``setinfo`` and ``move`` of a lower file copy up its metadata only; the
    data follows on the first open for writing. Both default to on (the kernel's default is
    off); turn them off for an upper that tools without unionfs must read as plain files.
    Redirects and metacopy files already in a layer are followed either way.
    ``unsafe`` ("error" or "skip"): what archive lowers given by path or URL do with hostile
    members (``unionfs.formats.archives.open_archive``). ``recover=False`` opens without
    finishing interrupted operations or emptying the staging area (for inspection:
    ``fsck(repair=False)`` reports them; the first write finishes them).
    """

    def __init__(
        self,
        lowers: Union[LayerSource, Sequence[Union[LayerSource, Layer]]],
        upper: Optional[LayerSource] = None,
        volatile: bool = False,
        *,
        unsafe: str = "error",
        recover: bool = True,
        redirect_dir: bool = True,
        metacopy: bool = True,
    ) -> None:
        super().__init__()
        #: an RLock; with an upper, the lock shared by every overlay of it (sharing.InstanceLock)
        self._lock: Any = threading.RLock()
        self._owned: List[FS] = []  # set before anything can fail: close() runs from __del__ even then
        self._shared: Optional[sharing.SharedUpper] = None
        #: the kernel's ``-o volatile``: nothing is fsynced (faster; a power cut may lose or
        #: tear what operations wrote, see docs/reliability.rst)
        self.volatile = volatile
        try:

            def resolve_lower(source: Any, what: str) -> FS:
                return resolve.resolve_lower(source, what, unsafe)

            layers = open_layers(lowers, upper, resolve_lower, resolve.resolve_upper, self._join_upper, volatile=volatile)
        except BaseException:
            if self._shared is not None:
                self._leave()
            raise
        self._owned = [layer.fs for layer, source in zip(layers, _sources(lowers, upper)) if isinstance(source, str)]
        self._layers: Tuple[Layer, ...] = tuple(layers)
        self._lookup = Lookup(layers)
        #: read handles on lower files that follow a copy-up (the kernel's stacked file operations)
        self._readers = FollowingReaders()
        self._upper: Optional[Upper] = (
            Upper(layers[0], self._lookup, self._readers, redirect_dir=redirect_dir, metacopy=metacopy)
            if layers[0].is_upper
            else None
        )
        #: operations an earlier, interrupted overlay left in the journal and this one finished
        self.recovered: List[Intent] = []
        self._cleared: List[fsck.Finding] = []  # staging leftovers removed when opening
        if self._upper is not None:
            assert self._shared is not None
            self._lock = sharing.InstanceLock(self._shared, self._upper.forget_all)
            if recover:  # else left for inspection (fsck(repair=False)); the first write finishes them
                with self._lock:
                    self._cleared = fsck.drop_torn_journal(self._upper)
                    self.recovered = dirops.recover(self._lookup, self._upper)
                    self._cleared += fsck.clear_staging(self._upper)
                    self._lock.wrote = bool(self.recovered or self._cleared)
        self._meta = _merged_meta(self._layers, read_only=self._upper is None)
        self._invalid_chars = frozenset(str(self._meta.get("invalid_path_chars") or "")) | {"\0"}
        #: caller's path -> validated absolute normal path (a pure function of the path)
        self._valid_paths: Dict[str, str] = {}

    def _join_upper(self, upper_fs: FS, lowers: List[FS]) -> None:
        """Share (or, first in this process, lock) the upper before its sidecar is touched."""
        nested = sharing.nested_uppers(lowers)
        self._shared = sharing.join(upper_fs, nested)
        self._leave = weakref.finalize(self, sharing.leave, self._shared, nested)  # runs once: close or GC

    @property
    def shared_upper(self) -> Optional[sharing.SharedUpper]:
        """The process's record of this overlay's upper, shared by every overlay of it (its
        lock, generation and the uppers nested below it); ``None`` for a read-only overlay.
        :func:`unionfs.core.sharing.nested_uppers` reads it from an overlay used as a lower."""
        return self._shared

    def __enter__(self) -> "OverlayFS":
        return self

    def __repr__(self) -> str:
        upper = self._upper.fs if self._upper is not None else None
        return "OverlayFS(%r, upper=%r)" % ([layer.fs for layer in self._lower_layers()], upper)

    def _lower_layers(self) -> List[Layer]:
        return [layer for layer in self._layers if not layer.is_upper]

    @property
    def stack(self) -> Stack:
        """A read-only view of the layers (the upper's, if any, and the lowers), for exporters
        and tools: what they need without the overlay's private state."""
        return Stack(self._upper.layer if self._upper is not None else None, self._lower_layers())

    # -- path handling ------------------------------------------------------------------------------

    def validatepath(self, path: str) -> str:
        if isinstance(path, bytes):
            raise TypeError("paths must be unicode (not str)")
        if self._closed:  # (FS.check, without its two calls: every operation starts here)
            raise errors.FilesystemClosed()
        valid = self._valid_paths.get(path)  # every operation starts here: remember the answers
        if valid is not None:
            return valid
        if not self._invalid_chars.isdisjoint(path):
            raise errors.InvalidCharsInPath(path)
        if path[:1] == "/" and "//" not in path and "/." not in path and path[-1:] != "/":
            valid = path  # absolute and normal already (normpath's regex would answer the same)
        else:
            valid = abspath(normpath(path))
        if len(self._valid_paths) >= VALID_PATHS_KEPT:
            self._valid_paths.clear()
        self._valid_paths[path] = valid
        return valid

    # Each helper takes the normalised path and the caller's spelling of it, which errors name.

    def _node(self, path: str, display: str, want_dir: bool = False, follow: bool = True) -> Node:
        """The node at ``path``, symbolic links on the way followed (the last one too with
        ``follow``): its ``path`` is where it really stands, which every later step uses."""
        node, real = self._lookup.resolve(path, display, follow)
        if node is None:
            raise self._lookup.missing(real or path, display, want_dir)
        return node

    def _place(self, path: str, display: str, follow: bool) -> Tuple[Optional[Node], str]:
        """The node at ``path`` (links followed as in :meth:`_node`), or ``None`` and the path
        where a new entry would go (a dangling link's target, with ``follow``)."""
        node, real = self._lookup.resolve(path, display, follow, create=True)
        if real is None:  # an empty link target on the way: nowhere to make anything
            raise errors.ResourceNotFound(display)
        if node is None and real.endswith("/"):  # a link to "dir/" where no directory is: EISDIR
            raise errors.FileExpected(display)
        return node, real

    def _parent(self, path: str, display: str, want_dir: bool = False) -> Node:
        """The directory that will hold a new entry at ``path``."""
        parent = self._lookup.node(dirname(path))
        if parent is None:
            raise self._lookup.missing(path, display, want_dir)
        if not parent.is_dir:
            raise errors.DirectoryExpected(display) if want_dir else errors.ResourceNotFound(display)
        return parent

    def _file_destination(self, path: str, display: str, overwrite: bool, follow: bool) -> Tuple[bool, str]:
        """Check the target of a file copy (``follow``: written through a link) or move (the
        link itself is replaced); whether something is there to replace, and its real path."""
        if not overwrite and self._lookup.resolve(path, display, follow=False)[0] is not None:
            raise errors.DestinationExists(display)
        target, real = self._place(path, display, follow)
        if target is None:
            self._parent(real, display)
            return False, real
        if target.is_dir:
            raise errors.FileExpected(display)
        return True, real

    def _writable(self, path: str, display: str) -> Upper:
        if self._upper is None:
            raise errors.ResourceReadOnly(display)
        if is_reserved(path):
            raise ReservedPath(display)
        self._lock.wrote = True
        self.recovered.extend(dirops.recover(self._lookup, self._upper))
        return self._upper

    # -- the essential methods ---------------------------------------------------------------------

    def getinfo(self, path: str, namespaces: Optional[Collection[str]] = None) -> Info:
        """The entry's info; a symbolic link's own (``lstat``), with its target in the
        ``link`` namespace (``Info.is_link``, ``Info.target``)."""
        _path = self.validatepath(path)
        with self._lock:
            # (Lookup.resolve's first step, which is all of it for a path that resolves: a
            # cold getinfo is a handful of calls, each of them counts)
            node = self._lookup.node(_path)
            if node is None:
                node = self._node(_path, path, follow=False)
            info = node_info(node, namespaces)
        return root_info(info) if node.path == "/" else info

    def lstat(self, path: str) -> Optional[os.stat_result]:
        """lstat(2) of the entry at ``path`` in its topmost layer, where that layer is a
        directory on disk or an OCI layer tar (from its index: device and inode 0); ``None``
        where it has neither (archives, memory: ask :meth:`getinfo`), and for a metadata-only file (whose size is its lower data's). What
        ``unionfs mount`` answers stat(2) with, one system call and no ``Info`` built. Errors
        as :meth:`getinfo`'s."""
        _path = self.validatepath(path)
        with self._lock:
            return readdir.node_lstat(self._node(_path, path, follow=False))  # lstat(2): a link's own

    def lstat_listing(self, path: str) -> List[Tuple[str, Optional[os.stat_result]]]:
        """The entries of directory ``path``, each with :meth:`lstat`'s answer for it (``None``
        where its layer has no system path): one call for a whole listing with attributes
        (``unionfs mount``'s READDIRPLUS), not one lookup per entry."""
        _path = self.validatepath(path)
        with self._lock:
            node = self._node(_path, path, want_dir=True)
            if not node.is_dir:
                raise errors.DirectoryExpected(path)
            return readdir.lstat_listing(self._lookup, node)

    def listdir(self, path: str) -> List[str]:
        _path = self.validatepath(path)
        with self._lock:
            node = self._node(_path, path, want_dir=True)
            if not node.is_dir:
                raise errors.DirectoryExpected(path)
            return list(self._lookup.listing(node).names)

    def makedir(self, path: str, permissions: Optional[Permissions] = None, recreate: bool = False) -> SubFS[FS]:
        _path = self.validatepath(path)
        with self._lock:
            upper = self._writable(_path, path)
            node, real = self._place(_path, path, follow=False)
            if node is not None:
                if recreate and node.is_dir:
                    return self.opendir(_path)
                raise errors.DirectoryExists(path)
            self._parent(real, path, want_dir=True)
            self._writable(real, path)
            dirops.make_dir(self._lookup, upper, real, permissions)
            return self.opendir(_path)

    def openbin(self, path: str, mode: str = "r", buffering: int = -1, **options: Any) -> BinaryIO:
        _mode = Mode(mode)
        _mode.validate_bin()
        _path = self.validatepath(path)
        with self._lock:
            if _mode.exclusive and self._lookup.resolve(_path, path, follow=False)[0] is not None:
                # O_CREAT|O_EXCL fails with EEXIST on anything that exists, a directory or a
                # dangling link too
                raise errors.FileExists(path)
            node, real = self._lookup.resolve(_path, path, create=_mode.create)  # through links, as open(2) goes
            if node is not None and node.is_dir:
                raise errors.FileExpected(path)
            if not (_mode.writing or _mode.truncate):
                if node is None:
                    raise self._lookup.missing(real or _path, path)
                data_layer, data_path = node.data
                plain = not options and mode in _READ_MODES
                if data_layer.is_upper or self._upper is None:
                    if plain:
                        return cast(BinaryIO, data_layer.open_read(data_path, buffering))
                    return data_layer.fs.openbin(data_path, mode, buffering, **options)
                # lower data: the handle follows a later copy-up, as the kernel's does
                if plain:
                    return cast(BinaryIO, self._readers.follow(data_layer.open_read(data_path, buffering), node.path, buffering))
                return cast(
                    BinaryIO,
                    self._readers.open(data_layer.fs, node.path, mode, buffering=buffering, data_path=data_path, **options),
                )
            upper = self._writable(_path, path)
            if node is None:
                if _mode.create and real is not None and real.endswith("/"):
                    raise errors.FileExpected(path)  # a link to "dir/" where no directory is: EISDIR
                if not _mode.create or real is None:
                    raise self._lookup.missing(real or _path, path)
                self._parent(real, path)
                self._writable(real, path)  # a link into the sidecar stays refused
                return dirops.create_file(self._lookup, upper, real, mode, buffering, **options)
            if not node.in_upper or node.metacopy:
                # (a metadata-only upper file gets its data now, or none if truncating)
                copy_up(self._lookup, upper, node, EMPTY if _mode.truncate else WRITE)  # stamped if truncating
                return upper.openbin(node.path, mode, buffering, **options)
            before = upper.times(node.path) if _mode.truncate else None
            handle = upper.openbin(node.path, mode, buffering, **options)
            if before is not None and upper.times(node.path) == before:
                upper.set_times(node.path, None)  # O_TRUNC stamps the file, also where the upper (MemoryFS) does not
            return handle

    def remove(self, path: str) -> None:
        _path = self.validatepath(path)
        with self._lock:
            upper = self._writable(_path, path)
            node = self._node(_path, path, follow=False)  # unlink(2): the link itself
            if node.is_dir:
                raise errors.FileExpected(path)
            dirops.hide(self._lookup, upper, node)

    def removedir(self, path: str) -> None:
        _path = self.validatepath(path)
        with self._lock:
            upper = self._writable(_path, path)
            if _path == "/":
                raise errors.RemoveRootError(path)
            node = self._node(_path, path, want_dir=True, follow=False)
            if not node.is_dir:
                raise errors.DirectoryExpected(path)
            if not readdir.is_empty(self._lookup, node):
                raise errors.DirectoryNotEmpty(path)
            dirops.hide(self._lookup, upper, node)

    def setinfo(self, path: str, info: Mapping[str, Mapping[str, Any]], follow_symlinks: bool = True) -> None:
        """Set metadata; through a symbolic link, as chmod(2) and utimes(2) go, or with
        ``follow_symlinks=False`` on the link itself (lchown(2), lutimes(3): its owner and
        times; a link has no permissions of its own)."""
        _path = self.validatepath(path)
        with self._lock:
            upper = self._writable(_path, path)
            node = self._node(_path, path, follow=follow_symlinks)
            if not info:
                return
            copy_up(self._lookup, upper, node, METADATA)
            upper.setinfo(node.path, info, path)

    def set_stat(self, path: str, mode: Optional[int] = None, uid: int = -1, gid: int = -1,
                 times_ns: Optional[Tuple[Optional[int], Optional[int]]] = None,
                 follow_symlinks: bool = True) -> Optional[os.stat_result]:
        """chmod(2), chown(2) and utimensat(2) in one call, as a FUSE setattr asks them: the
        permission bits ``mode`` (``None``: kept), ``uid``/``gid`` (-1: kept), ``times_ns``
        (access and modification time in nanoseconds, either ``None`` to keep it). The entry
        is copied up (its metadata only where the overlay does metacopy) even if nothing is
        set, as a setattr does. Through a symbolic link unless ``follow_symlinks`` is false
        (then its owner and times are the link's own; a link has no mode). Returns what
        :meth:`lstat` would answer now (``None`` where that is ``None``), so a caller needs
        no second lookup. The same effect as :meth:`setinfo` with the ``access`` and
        ``details`` namespaces, with one lock and one lookup, and times to the nanosecond."""
        _path = self.validatepath(path)
        with self._lock:
            upper = self._writable(_path, path)
            node = self._node(_path, path, follow=follow_symlinks)
            copy_up(self._lookup, upper, node, METADATA)
            upper.set_stat(node.path, None if mode is None else stat.S_IMODE(mode), uid, gid, times_ns, path)
            after = self._lookup.node(node.path)
            return None if after is None else readdir.node_lstat(after)

    # -- overrides: correct and fast for an overlay --------------------------------------------------

    def scandir(
        self,
        path: str,
        namespaces: Optional[Collection[str]] = None,
        page: Optional[Tuple[int, int]] = None,
    ) -> Iterator[Info]:
        _path = self.validatepath(path)
        with self._lock:
            node = self._node(_path, path, want_dir=True)
            if not node.is_dir:
                raise errors.DirectoryExpected(path)
            return iter(readdir.scan(self._lookup, node, namespaces, page))

    def _quiet_node(self, path: str, follow: bool) -> Optional[Node]:
        """The node for a yes/no question: a link loop on the way is a no, as for ``os.path``."""
        _path = self.validatepath(path)
        with self._lock:
            try:
                return self._lookup.resolve(_path, path, follow)[0]
            except LinkLoop:
                return None

    def exists(self, path: str) -> bool:
        """Whether the view has an entry at ``path`` (a dangling link is one: ``lexists``)."""
        return self._quiet_node(path, follow=False) is not None

    def isdir(self, path: str) -> bool:
        node = self._quiet_node(path, follow=True)
        return node is not None and node.is_dir

    def isfile(self, path: str) -> bool:
        node = self._quiet_node(path, follow=True)
        return node is not None and not node.is_dir

    def _file_node(self, path: str, display: str) -> Node:
        node = self._node(path, display)
        if node.is_dir:
            raise errors.FileExpected(display)
        return node

    def _open_lower_data(self, path: str, display: str) -> Tuple[Node, Optional[BinaryIO]]:
        """The file node at ``path`` and, for a lower file, a handle opened on it. Called with
        the lock held; a lower file never changes, so its bytes are read after the lock is let
        go and one large read does not stall every other thread. An upper file (which a write
        may change in place) is read under the lock: the handle is ``None``."""
        node = self._file_node(path, display)
        layer, data_path = node.data  # (a metadata-only upper file's data is in a lower)
        if layer.is_upper:
            return node, None
        return node, layer.fs.openbin(data_path, "r")

    def readbytes(self, path: str) -> bytes:
        _path = self.validatepath(path)
        with self._lock:
            node, handle = self._open_lower_data(_path, path)
            if handle is None:
                return node.top.fs.readbytes(node.top_path)
        with handle:
            return handle.read()

    def download(self, path: str, file: BinaryIO, chunk_size: Optional[int] = None, **options: Any) -> None:
        _path = self.validatepath(path)
        with self._lock:
            node, handle = self._open_lower_data(_path, path)
            if handle is None:
                node.top.fs.download(node.top_path, file, chunk_size=chunk_size, **options)
                return
        with handle:
            copy_stream(handle, file, chunk_size or CHUNK)

    def writebytes(self, path: str, contents: bytes) -> None:
        if not isinstance(contents, bytes):
            raise TypeError("contents must be bytes")
        self.upload(path, io.BytesIO(contents))

    def writetext(
        self, path: str, contents: str, encoding: str = "utf-8", errors: Optional[str] = None, newline: str = ""
    ) -> None:
        """Replace a file with text, staged and renamed into place like :meth:`writebytes`
        (the base class would truncate it first and write after, showing it empty between)."""
        if not isinstance(contents, str):
            raise TypeError("contents must be unicode")
        self.upload(path, io.BytesIO(_encode(contents, encoding, errors, newline)))

    def writefile(
        self, path: str, file: Any, encoding: Optional[str] = None, errors: Optional[str] = None, newline: str = ""
    ) -> None:
        """Set a file to the contents of ``file`` (text with ``encoding``), staged like :meth:`upload`."""
        if encoding is None:  # binary, as the base class opens it
            self.upload(path, file)
            return
        with tempfile.SpooledTemporaryFile(max_size=CHUNK) as spool:
            text = io.TextIOWrapper(spool, encoding=encoding, errors=errors, newline=newline)  # type: ignore[arg-type]
            for chunk in iter(lambda: file.read(CHUNK), ""):
                text.write(chunk)
            text.flush()
            spool.seek(0)
            self.upload(path, spool)  # type: ignore[arg-type]
            text.detach()

    def appendbytes(self, path: str, data: bytes) -> None:
        """Append to a file: a new file is staged whole like :meth:`writebytes`, an existing
        one is appended to in place (an ``O_APPEND`` write, as on the kernel)."""
        if not isinstance(data, bytes):
            raise TypeError("must be bytes")
        _path = self.validatepath(path)
        with self._lock:
            if not self.exists(_path):
                self.writebytes(path, data)
                return
            with self.openbin(path, "ab") as append_file:
                append_file.write(data)

    def appendtext(
        self, path: str, text: str, encoding: str = "utf-8", errors: Optional[str] = None, newline: str = ""
    ) -> None:
        """Append text to a file, as :meth:`appendbytes` appends bytes."""
        if not isinstance(text, str):
            raise TypeError("must be unicode string")
        self.appendbytes(path, _encode(text, encoding, errors, newline))

    def upload(self, path: str, file: BinaryIO, chunk_size: Optional[int] = None, **options: Any) -> None:
        """Write a whole file atomically: staged in the upper, then renamed into place. An
        existing file keeps its permissions and owner, as an ``O_TRUNC`` open would."""
        _path = self.validatepath(path)
        with self._lock:
            upper = self._writable(_path, path)
            node, real = self._place(_path, path, follow=True)  # written through a link
            if node is None:
                self._parent(real, path)
                self._writable(real, path)
                kept = None
            elif node.is_dir:
                raise errors.FileExpected(path)
            else:
                kept = _kept_on_truncate(node)
            dirops.install_file(self._lookup, upper, real, file, kept, replaced=node)

    def copy(self, src_path: str, dst_path: str, overwrite: bool = False, preserve_time: bool = False) -> None:
        _src, _dst = self.validatepath(src_path), self.validatepath(dst_path)
        with self._lock:
            upper = self._writable(_dst, dst_path)
            src = self._file_node(_src, src_path)
            replaced, real = self._file_destination(_dst, dst_path, overwrite, follow=True)
            if _src == _dst:
                raise IllegalDestination(dst_path)  # cp: 'x' and 'x' are the same file
            self._writable(real, dst_path)
            target = self._lookup.node(real) if replaced else None
            # an existing destination keeps its mode and owner (cp opens it O_TRUNC: the same inode)
            metadata: Dict[str, Any] = _kept_on_truncate(target) if target is not None else {}
            if preserve_time:
                metadata.update(copyable_metadata(src.top.fs.getinfo(src.top_path, ["details"])))
            layer, data_path = src.data
            with layer.fs.openbin(data_path, "r") as source:
                dirops.install_file(self._lookup, upper, real, source, metadata, replaced=target)

    def move(self, src_path: str, dst_path: str, overwrite: bool = False, preserve_time: bool = False) -> None:
        _src, _dst = self.validatepath(src_path), self.validatepath(dst_path)
        with self._lock:
            upper = self._writable(_src, src_path)
            self._writable(_dst, dst_path)
            src = self._node(_src, src_path, follow=False)  # rename(2) moves a link itself
            if src.is_dir:
                raise errors.FileExpected(src_path)
            if overwrite:
                at = self._lookup.resolve(_dst, dst_path, follow=False)[1]  # (the links on the way followed)
                if at is not None and at != src.path and isbase(at, src.path):
                    raise errors.DirectoryNotEmpty(dst_path)  # the VFS: ENOTEMPTY onto an ancestor of the source
            replaces, real = self._file_destination(_dst, dst_path, overwrite, follow=False)
            if replaces and (src.path == real or upper.same_file(src.path, real)):
                return  # rename(x, x), or between two hard links of one file, changes nothing
            self._writable(real, dst_path)
            dirops.rename_file(self._lookup, upper, src, real)

    def movedir(self, src_path: str, dst_path: str, create: bool = False, preserve_time: bool = False) -> None:
        """Move the contents of ``src_path`` into ``dst_path`` and remove ``src_path``.

        Works for lower and merged directories too, where the kernel answers EXDEV:
        the result is what ``cp -a src/. dst && rm -rf src`` gives on the kernel."""
        _src, _dst = self.validatepath(src_path), self.validatepath(dst_path)
        with self._lock:
            upper = self._writable(_src, src_path)
            self._writable(_dst, dst_path)
            src = self._node(_src, src_path, want_dir=True, follow=False)
            if not src.is_dir:
                raise errors.DirectoryExpected(src_path)
            target, real = self._place(_dst, dst_path, follow=False)
            if target is None:
                if not create:
                    raise errors.ResourceNotFound(dst_path)
                self._parent(real, dst_path, want_dir=True)
            elif not target.is_dir:
                raise errors.DirectoryExpected(dst_path)
            self._writable(real, dst_path)
            if src.path == real:
                return  # rename(d, d) changes nothing, as in the kernel
            if isbase(src.path, real) or _lands_on_itself(self._lookup, src.path, real):
                raise IllegalDestination(dst_path)
            dirops.move_tree(self._lookup, upper, src, real, display=dst_path)

    def rename(self, src_path: str, dst_path: str, noreplace: bool = False) -> None:
        """rename(2): move a file or a directory to ``dst_path``, replacing what is there
        (a file by a file, an empty directory by a directory) unless ``noreplace``
        (``RENAME_NOREPLACE``: ``FileExists``). Refusals in the VFS's order: missing source,
        an existing target with ``noreplace``, a directory into itself
        (``IllegalDestination``), onto an ancestor of the source (``DirectoryNotEmpty``),
        a directory over a file (``DirectoryExpected``), a file over a directory
        (``FileExpected``), a non-empty target directory (``DirectoryNotEmpty``). A lower
        or merged directory moves as :meth:`movedir` moves it (where the kernel without
        ``redirect_dir`` says EXDEV)."""
        _src, _dst = self.validatepath(src_path), self.validatepath(dst_path)
        with self._lock:
            upper = self._writable(_src, src_path)
            self._writable(_dst, dst_path)
            src = self._node(_src, src_path, follow=False)  # a link moves as itself
            target, real = self._place(_dst, dst_path, follow=False)
            if target is None:
                self._parent(real, dst_path)
            elif noreplace:
                raise errors.FileExists(dst_path)
            self._writable(real, dst_path)
            _src, _dst = src.path, real  # the links on the way followed
            if _src == _dst or (target is not None and not src.is_dir and upper.same_file(_src, _dst)):
                return  # rename(x, x), or between two hard links of one file, changes nothing
            if src.is_dir and isbase(_src, _dst):
                raise IllegalDestination(dst_path)
            if target is not None and isbase(_dst, _src):
                raise errors.DirectoryNotEmpty(dst_path)
            if target is not None and src.is_dir != target.is_dir:
                raise errors.DirectoryExpected(dst_path) if src.is_dir else errors.FileExpected(dst_path)
            if not src.is_dir:
                dirops.rename_file(self._lookup, upper, src, _dst)
                return
            if target is not None:
                if not readdir.is_empty(self._lookup, target):
                    raise errors.DirectoryNotEmpty(dst_path)
                dirops.hide(self._lookup, upper, target)
            # a moved lower directory is rebuilt in the upper: it keeps its own mode, owner and times
            kept = copyable_metadata(src.top.fs.getinfo(src.top_path, COPIED_NAMESPACES))
            dirops.move_tree(self._lookup, upper, self._node(_src, src_path, follow=False), _dst, display=dst_path)
            apply_metadata(upper.fs, _dst, kept)

    def copydir(self, src_path: str, dst_path: str, create: bool = False, preserve_time: bool = False) -> None:
        _src, _dst = self.validatepath(src_path), self.validatepath(dst_path)
        with self._lock:
            self._writable(_dst, dst_path)
            if isbase(_src, _dst) and self.isdir(_src):
                raise IllegalDestination(dst_path)
            super().copydir(_src, _dst, create=create, preserve_time=preserve_time)

    def removetree(self, dir_path: str) -> None:
        _path = self.validatepath(dir_path)
        with self._lock:
            upper = self._writable(_path, dir_path)
            node = self._node(_path, dir_path, want_dir=True, follow=False)
            if node.is_link:
                dirops.hide(self._lookup, upper, node)  # as ``rm -rf link``: the link itself goes
                return
            if not node.is_dir:
                raise errors.DirectoryExpected(dir_path)
            if node.path == "/":
                dirops.hide_children(self._lookup, upper, node)
            elif node.path != _path:
                # reached through a link: as rm -rf, empty the directory the path led to, then
                # rmdir the path as spelled, which the emptying may have made lead nowhere
                dirops.empty(self._lookup, upper, node)
                self.removedir(dir_path)
            else:
                dirops.hide(self._lookup, upper, node)

    def getmeta(self, namespace: str = "standard") -> Mapping[str, object]:
        return dict(self._meta) if namespace == "standard" else {}

    def getsyspath(self, path: str) -> str:
        """Never a system path: one would let callers (``fs.move`` among them) bypass the overlay."""
        raise errors.NoSysPath(path=path)

    def defer_sync(self) -> None:
        """Make operations durable when :meth:`sync` (or :meth:`close`) runs, not each when it
        returns: a kernel filesystem's contract, which ``unionfs mount`` serves (fsync on the
        mount means durable). What orders data before the name that shows it (staged
        copy-ups, sidecar records, journal entries) is still synced at once, so a crash or
        a power cut never shows a half-made change; a power cut may lose the changes since
        the last sync, a crash of the process none. See ``unionfs.core.durable``."""
        if self._upper is not None:
            self._upper.sync.defer(SIDECAR_DIR)

    def sync(self) -> None:
        """syncfs(2) of the upper: every change deferred by :meth:`defer_sync` is durable when
        this returns (nothing to do otherwise: each operation already was)."""
        upper = getattr(self, "_upper", None)  # (close() runs from __del__ after a failed open too)
        if upper is not None:
            upper.sync.flush()

    def close(self) -> None:
        """Close the overlay and the layers it opened from URLs. Nothing is flushed here but
        what :meth:`defer_sync` deferred: every operation wrote its data and records when it
        returned."""
        if not self.isclosed():
            self.sync()
            if self._shared is not None:
                self._leave()
            for layer_fs in self._owned:
                layer_fs.close()
        super().close()

    # -- change set, commit, discard (logic in unionfs.changes and unionfs.commit) -----------------------------------------

    def changes(self) -> ChangeSet:
        """What the upper changes relative to the lowers, read from the upper and its sidecar."""
        self.check()
        with self._lock:
            if self._upper is None:
                return ChangeSet(())
            stack = self.stack
            assert stack.upper is not None
            return changes.compute(stack.upper, stack.lowers)

    def commit(
        self,
        target: Union[FS, str],
        only_changes: bool = False,
        into_lower: bool = False,
        progress: Optional[ProgressCallback] = None,
    ) -> ChangeSet:
        """Write the merged view (or with ``only_changes`` the change set) into ``target``, an FS
        or FS URL, streaming, calling ``progress`` as it goes. A target that is the topmost
        lower takes the changes only with ``into_lower=True``, and the upper is then discarded."""
        self.check()
        if self._upper is None:
            raise errors.ResourceReadOnly("/", msg="a read-only overlay has nothing to commit")
        stack = self.stack
        assert stack.upper is not None
        # the lock is taken inside for the structure, not for the file data (see commit.commit)
        return committing.commit(
            self, stack.upper, stack.lowers, target, only_changes, into_lower, progress, self._lock, self.discard
        )

    def discard(self) -> None:
        """Throw away every change: empty the upper and its sidecar, so the view is the lowers'."""
        self.check()
        with self._lock:
            upper = self._writable("/", "/")
            dirops.journaled(self._lookup, upper, Intent("discard", "/"))  # atomic: rolled forward
            for layer in self._layers:
                layer.reset()
            self._lookup.forget("/", subtree=True)
            upper.readers.detach("/", subtree=True)  # lower files come back: new files to old handles

    # -- explicit control ---------------------------------------------------------------------------

    def fsck(self, repair: bool = True) -> FsckReport:
        """Find, and unless ``repair`` is False remove, what interrupted operations left in
        the upper (records that hide nothing, junk), plus what opening already did (journal
        entries finished, staging emptied). The merged view is the same afterwards; the
        report says what was changed."""
        with self._lock:
            if self._upper is None:
                return FsckReport((), repaired=repair)
            report = fsck.fsck(self._upper, self.recovered, self._cleared, repair=repair, pending=not repair)
            if repair:
                self.recovered, self._cleared = [], []
            return report

    def hide(self, path: str) -> None:
        """Whiteout whatever the view has at ``path`` (a file or a whole tree) without copying
        anything, like a whiteout made by hand in a kernel upperdir."""
        _path = self.validatepath(path)
        with self._lock:
            upper = self._writable(_path, path)
            if _path == "/":
                raise errors.RemoveRootError(path)
            node = self._node(_path, path, follow=False)
            if node.path == "/":
                raise errors.RemoveRootError(path)
            dirops.hide(self._lookup, upper, node)

    def make_opaque(self, path: str) -> None:
        """Create the directory ``path``, or mark it, opaque in the upper: nothing of the lowers
        shows through it any more (``setfattr -n trusted.overlay.opaque -v y`` on a kernel upper)."""
        _path = self.validatepath(path)
        with self._lock:
            upper = self._writable(_path, path)
            if _path == "/":
                raise errors.OperationFailed(path, msg="the root cannot be made opaque; removetree('/') hides every lower entry")
            node, real = self._place(_path, path, follow=False)
            if node is None:
                self._parent(real, path, want_dir=True)
            elif not node.is_dir:
                raise errors.DirectoryExpected(path)
            if real == "/":
                raise errors.OperationFailed(path, msg="the root cannot be made opaque")
            self._writable(real, path)
            dirops.make_opaque(self._lookup, upper, real)

    # -- symbolic and hard links (extensions: PyFilesystem2 has no link API) -------------------------

    def readlink(self, path: str) -> str:
        """The target of the symbolic link ``path``, as stored (never interpreted).
        :class:`unionfs.NotALink` where ``path`` is no link (the kernel's EINVAL)."""
        _path = self.validatepath(path)
        with self._lock:
            node = self._node(_path, path, follow=False)
            if not node.is_link:
                raise NotALink(path)
            return node.top.readlink(node.top_path)

    def islink(self, path: str) -> bool:
        """Whether ``path`` is a symbolic link (dangling or not). ``ResourceNotFound`` where
        nothing is there, as PyFilesystem2's ``FS.islink`` contract says."""
        _path = self.validatepath(path)
        with self._lock:
            return self._node(_path, path, follow=False).is_link

    def symlink(self, target: str, path: str) -> None:
        """Create the symbolic link ``path`` -> ``target`` in the upper (symlink(2)): over a
        whiteout it replaces it; ``FileExists`` where the view has anything, a dangling link
        too. ``target`` is stored as given and resolved when read through, inside the overlay:
        relative from the link's directory, absolute from the overlay's root."""
        if not isinstance(target, str):
            raise TypeError("a link target must be str, not %s" % type(target).__name__)
        _path = self.validatepath(path)
        with self._lock:
            upper = self._writable(_path, path)
            if not target:
                raise errors.ResourceNotFound(path, msg="an empty link target: '%s'" % path)  # ENOENT, as symlink(2)
            if "\0" in target:
                raise errors.InvalidCharsInPath(path, msg="a link target holds a NUL byte: '%s'" % path)
            node, real = self._place(_path, path, follow=False)
            if node is not None:
                raise errors.FileExists(path)
            self._parent(real, path)
            self._writable(real, path)
            dirops.make_link(self._lookup, upper, real, target)

    def link(self, existing: str, new: str) -> None:
        """Give the non-directory ``existing`` the second name ``new`` (link(2); a symbolic
        link is linked as itself). The entry is copied up first, as the kernel does, and both
        names then share one file in the upper. Needs an upper with system paths (an OS
        directory): elsewhere ``fs.errors.Unsupported``. ``PermissionDenied`` for a
        directory, ``FileExists`` where ``new`` is taken."""
        _src, _dst = self.validatepath(existing), self.validatepath(new)
        with self._lock:
            upper = self._writable(_dst, new)
            src = self._node(_src, existing, follow=False)
            target, real = self._place(_dst, new, follow=False)
            if target is None:
                self._parent(real, new)
            else:
                raise errors.FileExists(new)
            if src.is_dir:
                raise errors.PermissionDenied(existing, msg="cannot hard-link a directory: '%s'" % existing)
            self._writable(src.path, existing)
            self._writable(real, new)
            if syspath(upper.fs, "/") is None:
                raise errors.Unsupported(new, msg="the upper %r cannot hold hard links (it has no system path): '%s'" % (upper.fs, new))
            dirops.hard_link(self._lookup, upper, src, real)


    # -- extended attributes and special files (extensions: PyFilesystem2 has neither) -------------

    def listxattr(self, path: str, follow_symlinks: bool = True) -> List[str]:
        """The names of the extended attributes of ``path`` (listxattr(2)): its topmost
        layer's, without the overlay's own (``trusted.overlay.*``)."""
        _path = self.validatepath(path)
        with self._lock:
            node = self._node(_path, path, follow=follow_symlinks)
            return xattr.names(node.top, node.top_path)

    def getxattr(self, path: str, name: str, follow_symlinks: bool = True) -> bytes:
        """The value of the extended attribute ``name`` of ``path`` (getxattr(2)), from its
        topmost layer; :class:`unionfs.NoSuchAttribute` where it has none (ENODATA)."""
        xattr.check_size(name, path)
        _path = self.validatepath(path)
        with self._lock:
            node = self._node(_path, path, follow=follow_symlinks)
            if name.startswith("user.") and self._special(node):
                raise NoSuchAttribute(path, name)  # the VFS: user.* only on files and directories
            xattr.check_namespace(name, path)
            return xattr.get(node.top, node.top_path, name, path)

    def setxattr(self, path: str, name: str, value: bytes, flags: int = 0, follow_symlinks: bool = True) -> None:
        """Set the extended attribute ``name`` of ``path`` (setxattr(2); ``flags``
        ``os.XATTR_CREATE``: :class:`unionfs.AttributeExists` if it has one,
        ``os.XATTR_REPLACE``: :class:`unionfs.NoSuchAttribute` if not). The entry is copied
        up first (metadata only where the overlay does ``metacopy``, as the kernel). Needs an upper with system
        paths: elsewhere ``fs.errors.Unsupported``. A ``trusted.overlay.*`` name is stored
        escaped, as the kernel stores it, and never means anything to the overlay."""
        xattr.check_size(name, path)
        xattr.check_value(name, value, path)
        _path = self.validatepath(path)
        with self._lock:
            upper = self._writable(_path, path)
            node = self._node(_path, path, follow=follow_symlinks)
            self._check_xattr_write(node, name, path)
            self._writable(node.path, path)
            # copied up before the flags are checked against the upper copy, as the kernel
            # does (an XATTR_REPLACE of a missing name still copies up)
            copy_up(self._lookup, upper, node, METADATA)  # metadata only where the overlay does metacopy
            upper.set_xattr(node.path, name, value, flags, path)

    def removexattr(self, path: str, name: str, follow_symlinks: bool = True) -> None:
        """Remove the extended attribute ``name`` of ``path`` (removexattr(2)), copying it up
        first; :class:`unionfs.NoSuchAttribute` (and no copy-up) where it has none."""
        xattr.check_size(name, path)
        _path = self.validatepath(path)
        with self._lock:
            upper = self._writable(_path, path)
            node = self._node(_path, path, follow=follow_symlinks)
            self._check_xattr_write(node, name, path)
            if not xattr.has(node.top, node.top_path, name):
                raise NoSuchAttribute(path, name)
            self._writable(node.path, path)
            copy_up(self._lookup, upper, node, METADATA)
            upper.remove_xattr(node.path, name, path)

    def _special(self, node: Node) -> bool:
        """Whether ``node`` is neither a regular file nor a directory (a link, a FIFO...)."""
        if node.is_dir:
            return False
        if node.is_link:
            return True
        return node.top.getinfo(node.top_path, ["details"]).type not in (ResourceType.file, ResourceType.unknown)

    def _check_xattr_write(self, node: Node, name: str, display: str) -> None:
        """The VFS's refusals of a change of ``name`` on ``node``, then the upper's."""
        if name.startswith("user.") and self._special(node):
            raise errors.PermissionDenied(
                display, exc=OSError(errno.EPERM, "user.* only on files and directories"),
                msg=literal("user.* attributes are only for files and directories: '%s'" % display),
            )
        xattr.check_namespace(name, display, setting=True)
        assert self._upper is not None
        if syspath(self._upper.fs, "/") is None:
            raise errors.Unsupported(display, msg=literal("the upper %r cannot hold extended attributes (it has no system path): '%s'" % (self._upper.fs, display)))

    def mknod(self, path: str, mode: int, device: int = 0) -> None:
        """mknod(2): a FIFO (``stat.S_IFIFO``), socket or character/block device node, or an
        empty regular file (``S_IFREG`` or no type), at ``path``, with the permission bits
        of ``mode`` (less the process umask, as mknod(2)). ``FileExists`` where the view has
        anything. Nodes need an upper with system paths (elsewhere ``fs.errors.Unsupported``)
        and devices the privilege to make them; a character device 0/0 (a whiteout) is
        refused with EPERM, as the kernel overlay refuses it."""
        kind = stat.S_IFMT(mode)
        _path = self.validatepath(path)
        if kind == stat.S_IFDIR:  # the VFS: EPERM (mkdir makes directories), EINVAL for no type it knows
            raise errors.PermissionDenied(path, exc=OSError(errno.EPERM, "mknod of a directory"), msg=literal("mknod cannot make a directory: '%s'" % path))
        if kind not in (0, stat.S_IFREG, stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK):
            raise errors.OperationFailed(path, exc=OSError(errno.EINVAL, "no such file type"), msg=literal("mknod cannot make entries of mode %o: '%s'" % (mode, path)))
        with self._lock:
            upper = self._writable(_path, path)
            node, real = self._place(_path, path, follow=False)
            if node is not None:
                raise errors.FileExists(path)
            self._parent(real, path)
            self._writable(real, path)
            if kind == stat.S_IFCHR and device == 0:
                raise errors.PermissionDenied(path, exc=OSError(errno.EPERM, "a whiteout"), msg=literal("cannot make a 0/0 character device (a whiteout): '%s'" % path))
            on_disk = syspath(upper.fs, "/") is not None
            if kind in (0, stat.S_IFREG) and not on_disk:
                # a regular file can be made anywhere (an upper without modes keeps none)
                dirops.create_file(self._lookup, upper, real, "xb").close()
                return
            if not on_disk:
                raise errors.Unsupported(path, msg=literal("the upper %r cannot hold FIFOs or device nodes (it has no system path): '%s'" % (upper.fs, path)))
            dirops.make_node(self._lookup, upper, real, stat.S_IFREG | stat.S_IMODE(mode) if kind == 0 else mode, device)

    def mkfifo(self, path: str, mode: int = 0o666) -> None:
        """mkfifo(3): :meth:`mknod` of a FIFO with the permission bits ``mode``."""
        self.mknod(path, stat.S_IFIFO | stat.S_IMODE(mode))

    # -- container images and kernel layers (unionfs.formats.oci, unionfs.formats.kernel) ---------------------

    @classmethod
    def from_oci(
        cls,
        source: Any,
        upper: Optional[LayerSource] = None,
        *,
        ref: Optional[str] = None,
        index: Optional[int] = None,
        verify: bool = True,
    ) -> "OverlayFS":
        """An overlay whose lowers are the layers of a container image, read in place.

        ``source``: an OCI image layout directory, a ``docker save`` archive (either
        format), or a sequence of layer tar files (plain, gzip, zstd where available) in
        image order, base first. ``ref``/``index`` choose the image of a layout or
        archive. With ``verify``, digests and diff_ids the image states are checked
        (:class:`unionfs.DigestMismatch` on a mismatch)."""
        return cls._over_own_layers(resolve.oci_layers(source, ref, index, verify), upper)

    @classmethod
    def _over_own_layers(cls, layers: List[Layer], upper: Optional[LayerSource]) -> "OverlayFS":
        """An overlay over layers it opened itself, and so closes."""
        return over_own_layers(layers, upper, cls)

    def export_layer(
        self,
        dest: Any = None,
        *,
        gzip: bool = False,
        opaque: str = "marker",
        mtime: Optional[int] = None,
        layout: Any = None,
        ref: Optional[str] = None,
        base_ref: Optional[str] = None,
    ) -> Any:
        """Write the upper's changes as an OCI layer tar to ``dest`` (a path or binary file).

        ``opaque="marker"`` writes opaque directories as ``.wh..wh..opq``; ``"whiteouts"``
        as one ``.wh.`` entry per name the lowers have there. ``mtime`` gives every entry
        that timestamp (reproducible layers). With ``layout`` and ``ref``, the layer is also
        stored in that OCI layout as a new image ``ref`` on top of image ``base_ref`` (or
        alone). Returns a :class:`unionfs.formats.oci.export.ExportedLayer` (diff_id, digest, ...)."""
        with self._lock:
            self.check()
            return resolve.export_oci(
                self.stack, dest, compress=gzip, opaque=opaque, mtime=mtime, layout=layout, ref=ref, base_ref=base_ref
            )

    @classmethod
    def from_kernel(
        cls, lowerdirs: Any, upper: Optional[LayerSource] = None, *, userxattr: Optional[bool] = False
    ) -> "OverlayFS":
        """An overlay over directories in the kernel's overlayfs format, topmost first as in
        ``lowerdir=`` (a former upperdir, a container engine's layers): 0/0 character devices
        and xattr whiteouts hide, ``overlay.opaque=y`` directories are opaque. ``userxattr``:
        ``False`` (or ``None``) reads ``trusted.overlay.*`` only, as the kernel's default mount
        does; ``True`` only ``user.overlay.*``, as a ``-o userxattr`` mount does."""
        return cls._over_own_layers(resolve.kernel_lowers(lowerdirs, userxattr), upper)

    def export_upper(self, target: Union[FS, str]) -> int:
        """Publish the upper as a layer: its entries and sidecar records copied into the empty
        ``target`` (an FS, or an FS URL such as ``s3://bucket/layers/mine``). An overlay with
        ``target`` stacked over the same lowers shows exactly this overlay's view; the upper
        itself is unchanged. Returns how many entries were written."""
        with self._lock:  # held throughout, so the published layer is one consistent state
            self.check()
            if self._upper is None:
                raise errors.ResourceReadOnly("/", msg="a read-only overlay has no upper to publish")
            target_fs, opened = resolve.open_target(target)
            try:
                return resolve.export_upper(self.stack, target_fs, str(target))
            finally:
                if opened:
                    target_fs.close()

    def export_kernel(self, dest_dir: str, *, userxattr: bool = False, whiteout: str = "device") -> None:
        """Write the upper (entries, whiteouts, opaque directories) to the empty or new
        directory ``dest_dir`` in the kernel's format: mounted as ``upperdir=`` (or as the
        top ``lowerdir=``) over the same lowers, the kernel shows this overlay's view.
        ``whiteout="device"`` writes 0/0 character devices (needs CAP_MKNOD);
        ``"xattr"`` writes xattr whiteouts (Linux 6.7+, for lower layers). ``userxattr``
        uses ``user.overlay.*`` (for ``-o userxattr`` mounts) instead of ``trusted.``."""
        with self._lock:
            self.check()
            resolve.export_kernel(self.stack, dest_dir, userxattr=userxattr, whiteout=whiteout)


def _sources(
    lowers: Union[LayerSource, Sequence[Union[LayerSource, Layer]]], upper: Optional[LayerSource]
) -> List[Union[LayerSource, Layer]]:
    lower_list: List[Union[LayerSource, Layer]] = [lowers] if isinstance(lowers, (FS, str)) else list(lowers)
    return ([upper] if upper is not None else []) + lower_list


def _lands_on_itself(lookup: Lookup, src: str, dst: str) -> bool:
    """Whether moving the contents of ``src`` into its ancestor ``dst`` would put part of
    ``src`` onto ``src`` itself (``movedir('/b/b', '/b')`` with a ``/b/b/b``): ``cp -a``
    then gives a result that depends on readdir order, and rename(2) says ENOTEMPTY."""
    if not isbase(dst, src) or src == dst:
        return False
    return lookup.node(join(src, relpath(src[len(dst.rstrip("/")):]))) is not None


def _encode(text: str, encoding: str, errors: Optional[str], newline: str) -> bytes:
    """``text`` as a text-mode file with these arguments would write it."""
    buffer = io.BytesIO()
    wrapper = io.TextIOWrapper(buffer, encoding=encoding, errors=errors, newline=newline)
    wrapper.write(text)
    wrapper.flush()
    data = buffer.getvalue()
    wrapper.detach()
    return data


def _kept_on_truncate(node: Node) -> Dict[str, Any]:
    """What a file keeps when its content is replaced: permissions and owner, not times."""
    metadata = copyable_metadata(node.top.fs.getinfo(node.top_path, COPIED_NAMESPACES))
    metadata.pop("details", None)
    return metadata


def _merged_meta(layers: Sequence[Layer], read_only: bool) -> Dict[str, Union[str, int, bool, None]]:
    """The overlay's ``getmeta``: what holds for every path, whichever layer serves it."""
    metas = [layer.fs.getmeta() for layer in layers]
    lengths = [int(cast(int, meta["max_path_length"])) for meta in metas if meta.get("max_path_length")]
    invalid = sorted(set("".join(str(meta.get("invalid_path_chars") or "") for meta in metas)) | {"\0"})
    return {
        "case_insensitive": any(meta.get("case_insensitive", False) for meta in metas),
        "invalid_path_chars": "".join(invalid),
        "max_path_length": min(lengths) if lengths else None,
        "max_sys_path_length": None,
        "network": any(meta.get("network", False) for meta in metas),
        "read_only": read_only,
        "supports_rename": False,
        "thread_safe": True,
        "unicode_paths": all(meta.get("unicode_paths", True) for meta in metas),
        "virtual": True,
    }


def over_own_layers(
    lowers: Sequence[Union[Layer, LayerSource]], upper: Optional[LayerSource], cls: type = OverlayFS, **options: Any
) -> OverlayFS:
    """``cls(lowers, upper, **options)`` that owns the :class:`Layer` lowers, opened for it by
    the caller (a format's resolver, the CLI): it closes them when it closes, and at once if
    it cannot be made. The other lowers are as for the constructor."""
    layers = [lower for lower in lowers if isinstance(lower, Layer)]
    try:
        overlay = cls(lowers, upper, **options)
    except BaseException:
        for layer in layers:
            layer.fs.close()
        raise
    overlay._owned.extend(layer.fs for layer in layers)
    return overlay
