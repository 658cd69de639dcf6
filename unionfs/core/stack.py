"""Layers and their configuration (the kernel's ``super.c``).

A :class:`Layer` is one filesystem of the stack plus the way it records overlay
markers. It answers one question, fast: what does directory ``D`` hold in this layer
(entries with their type, whiteouts, opaque children)? Answers are cached per
directory. Lowers never change while mounted (as in the kernel, changing them under a
live overlay is undefined), and every change to the upper goes through
:mod:`unionfs.core.upper`, which updates the cache in place.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from typing import Any, Callable, Collection, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import attr

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
import fs
from fs import errors
from fs.base import FS
from fs.error_tools import convert_os_errors
from fs.info import Info
from fs.enums import ResourceType
from fs.osfs import OSFS
from fs.path import basename, dirname, join

from ..errors import UnsupportedLayer, convert_errors, os_failure, unsupported_layer
from .treecache import child_of
from .identity import identity, overlaps, relation
from .nofollow import lstat_info, syspath
from .sidecar import LINK, OPAQUE, REDIRECT, RESERVED_NAME, SIDECAR_DIR, VERSIONS, WHITEOUT, Sidecar, is_reserved, sys_root
from .treecache import TreeCache, parent_of

_MISSING = object()
#: what :meth:`Layer.cached_dir` answers for a directory it has no index of
MISSING = _MISSING

LayerSource = Union[FS, str]


@attr.s(slots=True, eq=False)
class DirIndex:
    """What one directory of one layer holds, as far as merging is concerned."""

    entries: Dict[str, bool] = attr.ib()  # name -> is_dir (a symbolic link is not a directory)
    whiteouts: Set[str] = attr.ib(factory=set)
    opaque: Set[str] = attr.ib(factory=set)  # child directories marked opaque
    #: child directory -> where the lowers hold its contents (the kernel's overlay.redirect):
    #: an absolute path, or (kernel layers only) a name relative to this directory
    redirects: Dict[str, str] = attr.ib(factory=dict)
    #: child file holding metadata only -> where its data is (absolute or relative as above),
    #: ``None`` for the same name (the kernel's overlay.metacopy)
    metacopy: Dict[str, Optional[str]] = attr.ib(factory=dict)
    #: entries that are symbolic links (never followed by the lookup: a link is a non-directory)
    links: Set[str] = attr.ib(factory=set)
    #: the links among them that the sidecar keeps as records (the layer's FS cannot hold links)
    link_records: Set[str] = attr.ib(factory=set)
    #: holds a kernel xattr whiteout: the kernel's rmdir counts it as an entry (ENOTEMPTY)
    sticky: bool = attr.ib(default=False)

    def records(self, kind: str) -> Set[str]:
        """The names recorded as ``WHITEOUT``, ``OPAQUE`` or ``LINK``."""
        if kind == LINK:
            return self.link_records
        return self.whiteouts if kind == WHITEOUT else self.opaque


#: what one layer says about one name of a directory (:meth:`Layer.lookup`), in the order
#: the merge tests them: nothing, a whiteout record, a file, a symbolic link (a
#: non-directory too), a directory, an opaque directory. ``code >= FILE``: an entry;
#: ``code >= DIR``: a directory.
ABSENT, WHITED, FILE, SYMLINK, DIR, OPAQUE_DIR = range(6)

#: the namespaces an info is made of from one ``os.lstat`` (and a ``readlink`` for a link)
_STAT_NAMESPACES = frozenset({"basic", "details", "access", "stat", "lstat", "link"})


def disk_root(layer_fs: FS) -> Optional[str]:
    """The OS path of the root of a layer whose FS has system paths (no trailing slash), else
    ``None``. Such a layer is read with ``lstat``'s view, straight from the OS: a symbolic
    link is an entry of its own, never followed (its FS would follow it, and fail on a
    dangling one)."""
    try:
        root = layer_fs.getsyspath("/")
    except errors.NoSysPath:
        return None
    return root[:-1] if root.endswith("/") else root


def stat_info(name: str, status: os.stat_result, namespaces: Collection[str], target: Optional[str]) -> Info:
    """An ``OSFS``-shaped info from an ``lstat`` result, for the entry itself (never followed)."""
    raw: Dict[str, Dict[str, Any]] = {"basic": {"name": name, "is_dir": stat.S_ISDIR(status.st_mode)}}
    if "details" in namespaces:
        raw["details"] = OSFS._make_details_from_stat(status)
    if "access" in namespaces:
        raw["access"] = OSFS._make_access_from_stat(status)
    for namespace in ("stat", "lstat"):
        if namespace in namespaces:
            raw[namespace] = {key: getattr(status, key) for key in dir(status) if key.startswith("st_")}
    if "link" in namespaces:
        raw["link"] = {"target": target}
    return Info(raw)


def _with_link_namespace(info: Info, namespaces: Collection[str]) -> Info:
    """``info`` of a non-link with the ``link`` namespace filled in where it was asked for and
    the layer's FS does not know it (a MemoryFS): ``Info.is_link`` then answers False."""
    if "link" in namespaces and "link" not in info.raw:
        info.raw["link"] = {"target": None}  # type: ignore[index]
    return info


def link_info_from_record(name: str, target: str, record: Info, namespaces: Collection[str]) -> Info:
    """The info of a link the sidecar keeps: the record file's times and owner, type symlink,
    the size of the target (as ``lstat`` reports it), permissions ``rwxrwxrwx``."""
    raw: Dict[str, Dict[str, Any]] = {"basic": {"name": name, "is_dir": False}}
    if "details" in namespaces:
        details = dict(record.raw.get("details") or {})
        details.update(type=int(ResourceType.symlink), size=len(target.encode("utf-8", "surrogateescape")))
        raw["details"] = details
    if "access" in namespaces:
        access = dict(record.raw.get("access") or {})
        access["permissions"] = ["g_r", "g_w", "g_x", "o_r", "o_w", "o_x", "u_r", "u_w", "u_x"]
        raw["access"] = access
    if "link" in namespaces:
        raw["link"] = {"target": target}
    return Info(raw)

#: cold names asked of one directory of a network layer before that directory is listed
HOT_AFTER = 16

#: how many directory entries a layer keeps indexed at most (:class:`TreeCache` weight:
#: entries plus one per directory); least recently used directories go first
INDEX_LIMIT = 400_000


class Layer:
    """One filesystem of the stack, read through its marker format.

    A name is answered by :meth:`lookup`: from the directory's index where it is cached (a
    listing made it), else by asking the layer about that one name (:meth:`_probe`: a stat,
    plus one for a record where the layer has a sidecar) without reading the directory. A
    subclass whose markers need the whole directory (a kernel-format dir, an indexed tar)
    sets ``PROBES = False`` and always answers from :meth:`dir`.
    """

    #: whether :meth:`lookup` may answer a cold name without reading its directory
    PROBES = True

    def __init__(self, layer_fs: FS, label: str, is_upper: bool, sidecar: Optional[Sidecar]) -> None:
        self.fs = layer_fs
        self.label = label
        self.is_upper = is_upper
        self.sidecar = sidecar
        self._dirs: TreeCache[Optional[DirIndex]] = TreeCache(INDEX_LIMIT, _index_weight)
        #: the OS path of the layer's root where its FS has system paths: a probe is then one
        #: ``lstat`` instead of a trip through the FS's getinfo, and links are seen as links
        self._sys_root = disk_root(layer_fs)
        #: read-only opens go straight to the file (:meth:`open_read`): an OSFS whose openbin is OSFS's
        self._direct_reads = self._sys_root is not None and isinstance(layer_fs, OSFS) and \
            type(layer_fs).openbin is OSFS.openbin
        #: metadata set straight on the file (:meth:`metadata_path`): an OSFS whose setinfo is OSFS's
        self._direct_metadata = self._direct_reads and type(layer_fs).setinfo is OSFS.setinfo
        #: (path, os.stat_result) of the last probe of a lower that found something, until used
        #: or replaced (never of the upper, whose files change through open handles)
        self._last_stat: Optional[Tuple[str, os.stat_result]] = None
        self.probes = self.PROBES
        #: what the caller passed for this layer, kept alive with it
        self.source: object = None
        #: after this many cold names asked of one directory, the directory is indexed instead
        #: (``None``: never). Local filesystems answer a name with one cheap call; on a network
        #: filesystem (``getmeta()["network"]``) a listing answers many names per request
        self.hot_after: Optional[int] = HOT_AFTER if _is_network(layer_fs) else None
        self._asked: TreeCache[int] = TreeCache(INDEX_LIMIT)

    def __repr__(self) -> str:
        return "<Layer %s %r>" % (self.label, self.fs)

    @property
    def may_redirect(self) -> bool:
        """Whether this layer may hold redirects or metadata-only files: a sidecar of a version
        with those records (lookups then read directories whole, where the records are)."""
        sidecar = self.sidecar
        return sidecar is not None and REDIRECT in VERSIONS[sidecar.version].kinds

    # -- reading ------------------------------------------------------------------------------

    def dir(self, path: str) -> Optional[DirIndex]:
        """The index of directory ``path`` in this layer, or ``None`` if it is not a directory here."""
        index = self._dirs.get(path, _MISSING)
        if index is not _MISSING:
            return index  # type: ignore[return-value]
        index = self._read_dir(path)
        self._dirs.put(path, index)
        return index

    def cached_dir(self, path: str) -> object:
        """The cached index of ``path`` (``None``: not a directory here), or :data:`MISSING`."""
        return self._dirs.get(path, _MISSING)

    def lookup(self, dir_path: str, name: str) -> int:
        """What this layer has at ``name`` in its directory ``dir_path`` (which the caller knows
        to be a directory of this layer): ABSENT, WHITED, FILE, SYMLINK, DIR or OPAQUE_DIR."""
        index = self._dirs.get(dir_path, _MISSING)
        if index is _MISSING:
            if self.sidecar is None and self.hot_after is None and self.probes and self._sys_root is not None:
                # a plain local layer: :meth:`_probe` is one lstat (written out: every cold name)
                path = child_of(dir_path, name)
                if path == SIDECAR_DIR:
                    return ABSENT
                try:
                    result = os.lstat(self._sys_root + path)
                except (FileNotFoundError, NotADirectoryError):
                    self._last_stat = None
                    return ABSENT
                except OSError:
                    return self._probe(dir_path, name)  # (its errors)
                if not self.is_upper:  # kept for the getinfo that follows (see _stat_kind)
                    self._last_stat = (path, result)
                mode = result.st_mode
                return DIR if stat.S_ISDIR(mode) else SYMLINK if stat.S_ISLNK(mode) else FILE
            if self.probes and not self.may_redirect and (self.hot_after is None or not self._hot(dir_path)):
                return self._probe(dir_path, name)
            index = self.dir(dir_path)
        if index is None:
            return ABSENT
        is_dir = index.entries.get(name)  # type: ignore[union-attr]
        if is_dir is None:
            return WHITED if name in index.whiteouts else ABSENT  # type: ignore[union-attr]
        if is_dir:
            return OPAQUE_DIR if name in index.opaque else DIR  # type: ignore[union-attr]
        return SYMLINK if name in index.links else FILE  # type: ignore[union-attr]

    def lookup_indexing(self, dir_path: str, name: str) -> int:
        """:meth:`lookup`, for a merged directory about to be listed: where that one name is
        asked of the layer's disk (no cached index of ``dir_path``, no sidecar), a directory
        found there is opened with ``O_NOFOLLOW | O_DIRECTORY`` and listed at once, its index
        cached: the listing that follows needs it, and the open proves it a real directory
        (not a link) without the ``lstat`` a lookup makes. Anything else is :meth:`lookup`."""
        if self.sidecar is not None or self._sys_root is None or not self.probes or self.hot_after is not None:
            return self.lookup(dir_path, name)
        if self._dirs.peek(dir_path, _MISSING) is not _MISSING:
            return self.lookup(dir_path, name)
        path = child_of(dir_path, name)
        if path == SIDECAR_DIR or self._dirs.peek(path, _MISSING) is not _MISSING:
            return self.lookup(dir_path, name)
        try:
            fd = os.open(self._sys_root + path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return self.lookup(dir_path, name)  # absent, a file or a link (ENOTDIR, ELOOP): as ever
        try:
            with os.scandir(fd) as scan:
                found = list(scan)
        except OSError:
            return self.lookup(dir_path, name)
        finally:
            os.close(fd)
        entries, links = _scanned(found)
        self._dirs.put(path, DirIndex(entries, links=links))  # (_index_of of a layer without a sidecar)
        self._last_stat = None
        return DIR

    def _hot(self, dir_path: str) -> bool:
        """Count a cold name asked of ``dir_path``; whether the directory is now worth indexing."""
        if self.hot_after is None:
            return False
        asked = self._asked.get(dir_path, 0) + 1
        if asked > self.hot_after:
            self._asked.discard(dir_path)
            return True
        self._asked.put(dir_path, asked)
        return False

    def _probe(self, dir_path: str, name: str) -> int:
        """:meth:`lookup` for one name, without the directory's index: what a listing of the
        directory would say about it (an entry wins over a record of the same name)."""
        path = child_of(dir_path, name)
        if path == SIDECAR_DIR:
            return ABSENT
        code = self._stat_kind(path)
        sidecar = self.sidecar
        if sidecar is None or (code != ABSENT and code != DIR):
            return code
        kinds = sidecar.kinds(dir_path)  # (one look at the directory's record kinds, not one per kind)
        if not kinds:
            return code
        if code == ABSENT:
            if LINK in kinds and sidecar.record_exists(dir_path, name, LINK):
                return SYMLINK
            return WHITED if WHITEOUT in kinds and sidecar.record_exists(dir_path, name, WHITEOUT) else ABSENT
        if OPAQUE in kinds and sidecar.record_exists(dir_path, name, OPAQUE):
            return OPAQUE_DIR
        return code

    def open_read(self, path: str, buffering: int = -1) -> Any:
        """``openbin(path, "rb", buffering)`` of the layer's FS; for an OSFS (or a subclass
        that reads its files as they are on disk) the file opened straight, ``io.open`` of
        its system path, without the FS's path and mode checks (``path`` comes from a
        lookup: absolute and normal)."""
        if self._direct_reads:
            with convert_os_errors("openbin", path):
                return io.open(self._sys_root + path, "rb", buffering=buffering)  # type: ignore[operator]
        return self.fs.openbin(path, "rb", buffering=buffering)

    def metadata_path(self, path: str) -> Optional[str]:
        """The system path at which ``path``'s mode, owner and times may be set with the OS's
        calls (chmod, chown, utime) instead of the FS's ``setinfo``: for an OSFS whose setinfo
        is OSFS's (which sets them the same way), else ``None``."""
        return self._sys_root + path if self._direct_metadata else None  # type: ignore[operator]

    def _stat_kind(self, path: str) -> int:
        """What the layer's FS itself has at ``path``: ABSENT, FILE, SYMLINK or DIR, as
        ``lstat`` sees it (a symbolic link is itself, dangling or not, never its target)."""
        if self._sys_root is not None:
            try:
                result = os.lstat(self._sys_root + path)  # kept for the getinfo that follows
            except (FileNotFoundError, NotADirectoryError):
                self._last_stat = None
                return ABSENT
            except OSError as error:
                if error.errno == errno.ELOOP:  # (only a whole path's probe meets one) a link on
                    self._last_stat = None  # the way: the lookup never follows it, nothing is there
                    return ABSENT
                raise os_failure(path, error, "cannot stat %r in %s" % (path, self.label)) from error
            if not self.is_upper:  # a lower never changes while mounted: its stat stays true
                self._last_stat = (path, result)
            mode = result.st_mode
            return DIR if stat.S_ISDIR(mode) else SYMLINK if stat.S_ISLNK(mode) else FILE
        try:
            info = self.fs.getinfo(path, ["link"])
        except (errors.ResourceNotFound, errors.DirectoryExpected):
            return ABSENT
        if info.is_dir:
            return DIR
        return SYMLINK if info.get("link", "target") is not None else FILE

    def probe_path(self, path: str, depth: int) -> int:
        """:meth:`_stat_kind` of a whole path, ``depth`` components below a directory that only
        this layer makes up (where no other layer can add, hide or merge anything), with the
        link records of its sidecar. Nothing there if a component on the way is a symbolic
        link: the lookup never follows one (an ``lstat`` of the whole path would)."""
        if is_reserved(path):
            return ABSENT
        code = self._stat_kind(path)
        if code == ABSENT:
            if self.sidecar is not None and self.sidecar.has_record(path, LINK) and self._no_link_above(path, depth):
                return SYMLINK
            return ABSENT
        if depth > 1 and not self._no_link_above(path, depth):
            return ABSENT
        return code

    def _no_link_above(self, path: str, depth: int) -> bool:
        """Whether the ``depth - 1`` ancestors of ``path`` nearest to it are directories of
        this layer's FS, none a symbolic link (a found ``path`` already says they exist)."""
        kept = self._last_stat
        ancestor = path
        for _ in range(depth - 1):
            ancestor = parent_of(ancestor)
            if self._stat_kind(ancestor) != DIR:
                self._last_stat = None
                return False
        self._last_stat = kept
        return True

    def getinfo(self, path: str, namespaces: Optional[Collection[str]] = None) -> Info:
        """The info of the entry ``path`` of this layer: a symbolic link's own (``lstat``), not
        its target's. On disk built from the ``lstat`` that the lookup of ``path`` just made
        when there was one (one system call per cold getinfo, not two)."""
        last, self._last_stat = self._last_stat, None
        if not namespaces and last is not None and last[0] == path:  # (the basic namespace: most getinfos)
            return Info({"basic": {"name": path[path.rfind("/") + 1:], "is_dir": stat.S_ISDIR(last[1].st_mode)}})
        wanted = tuple(namespaces or ())
        if self._sys_root is not None and _STAT_NAMESPACES.issuperset(wanted):
            if last is not None and last[0] == path:
                status = last[1]
            else:
                with convert_os_errors("getinfo", path):
                    status = os.lstat(self._sys_root + path if path != "/" else self._sys_root or "/")
            target = None
            if "link" in wanted and stat.S_ISLNK(status.st_mode):
                with convert_os_errors("getinfo", path):
                    target = os.readlink(self._sys_root + path)
            return stat_info(path[path.rfind("/") + 1:], status, wanted, target)
        try:
            return _with_link_namespace(self.fs.getinfo(path, wanted), wanted)
        except errors.ResourceNotFound:
            if self.sidecar is None or path == "/" or not self.sidecar.has_record(path, LINK):
                raise
        return self._record_info(path, wanted)

    def _record_info(self, path: str, namespaces: Collection[str]) -> Info:
        """The info of ``path``, a link the sidecar keeps as a record."""
        assert self.sidecar is not None
        record = self.fs.getinfo(self.sidecar.link_record(path), namespaces)
        return link_info_from_record(basename(path), self.sidecar.read_link(path), record, namespaces)

    def readlink(self, path: str) -> str:
        """The target of the symbolic link ``path`` of this layer (an entry of its FS wins over
        a link record of the sidecar)."""
        if self._sys_root is not None:
            try:
                return os.readlink(self._sys_root + path)
            except FileNotFoundError:
                pass
            except OSError as error:
                if error.errno != errno.EINVAL:  # EINVAL: not a link (a record's name, perhaps)
                    raise os_failure(path, error, "cannot read the link %r in %s" % (path, self.label)) from error
        else:
            try:
                target = self.fs.getinfo(path, ["link"]).get("link", "target")
            except errors.ResourceNotFound:
                target = None
            if target is not None:
                return str(target)
        if self.sidecar is not None and self.sidecar.has_record(path, LINK):
            return self.sidecar.read_link(path)
        raise errors.ResourceNotFound(path)

    def is_link(self, path: str) -> bool:
        """Whether this layer's entry ``path`` is a symbolic link."""
        return self.lookup(dirname(path), basename(path)) == SYMLINK

    def entry_info(self, path: str, namespaces: Collection[str]) -> Info:
        """The info of an entry this layer lists: the layer's own, or where that fails because
        the entry is a link to nothing, the link itself (``lstat``); never silently nothing."""
        try:
            return self.getinfo(path, namespaces)
        except errors.ResourceNotFound:
            info = lstat_info(self.fs, path, namespaces)
            if info is None:
                raise
            return info

    def lstat(self, path: str) -> Optional[os.stat_result]:
        """lstat(2) of ``path`` where this layer is a directory on disk (``None`` elsewhere;
        a layer with an index of its own, an OCI layer tar, answers from it): what a FUSE
        mount answers getattr with, without building an ``Info``."""
        if self._sys_root is None:
            return None
        try:
            return os.lstat(self._sys_root + path if path != "/" else self._sys_root or "/")
        except FileNotFoundError:
            raise errors.ResourceNotFound(path) from None
        except OSError as error:
            raise os_failure(path, error, "cannot stat %r in %s" % (path, self.label)) from error

    def _read_dir(self, path: str) -> Optional[DirIndex]:
        listed = list_dir(self.fs, self._sys_root, path)
        return None if listed is None else self._index_of(path, *listed)

    def _index_of(self, path: str, entries: Dict[str, bool], links: Set[str]) -> DirIndex:
        if path == "/":
            entries.pop(RESERVED_NAME, None)
            links.discard(RESERVED_NAME)
        index = DirIndex(entries, links=links)
        if self.sidecar is not None:
            index.whiteouts, index.opaque, records = self.sidecar.records(path)
            # an entry of the layer's own FS wins over a link record of the same name
            index.link_records = records - set(entries)
            for name in index.link_records:
                entries[name] = False
            links.update(index.link_records)
            index.redirects = self.sidecar.redirects(path)
            for name in self.sidecar.metacopy_hints(path):
                if entries.get(name) is False and name not in links:  # (a link holds no data)
                    origin = self.sidecar.metacopy_origin(join(path, name))
                    if origin is not None:
                        index.metacopy[name] = origin
        return index

    def scan(self, path: str, namespaces: Tuple[str, ...]) -> Dict[str, Info]:
        """Infos of every entry of directory ``path`` with ``namespaces``, in one scan (a link's
        own info, never its target's); the directory's index is made from the same scan if it
        was not cached."""
        links: Set[str] = set()
        if self._sys_root is not None and _STAT_NAMESPACES.issuperset(namespaces):
            infos: Dict[str, Info] = {}
            sys_dir = self._sys_root + path if path != "/" else self._sys_root + "/"
            with convert_os_errors("scandir", path, directory=True):
                with os.scandir(sys_dir) as listing:
                    for entry in listing:
                        status = entry.stat(follow_symlinks=False)
                        target = None
                        if stat.S_ISLNK(status.st_mode):
                            links.add(entry.name)
                            if "link" in namespaces:
                                target = os.readlink(entry.path)
                        infos[entry.name] = stat_info(entry.name, status, namespaces, target)
        else:
            try:
                infos = {info.name: _with_link_namespace(info, namespaces) for info in self.fs.scandir(path, namespaces)}
            except errors.ResourceNotFound:
                # one entry could not be described (an FS that stats each, and a dangling link
                # has nothing to stat): that is no reason for the others to vanish
                listed = list_dir(self.fs, self._sys_root, path)
                if listed is None:
                    raise
                infos = {name: self.entry_info(join(path, name), namespaces) for name in listed[0]}
            symlinks_in = getattr(self.fs, "symlinks_in", None)
            if symlinks_in is not None:  # an FS that knows its links (an archive) says which they are
                links.update(name for name in symlinks_in(path) if name in infos)
        if path == "/":
            infos.pop(RESERVED_NAME, None)
        cached = self._dirs.peek(path, _MISSING)
        if cached is _MISSING:
            index = self._index_of(path, {name: info.is_dir and name not in links for name, info in infos.items()}, links)
            if self.PROBES:
                self._dirs.put(path, index)
        else:
            index = cached
        if isinstance(index, DirIndex):
            for name in index.link_records:
                if name not in infos:
                    infos[name] = self._record_info(join(path, name), namespaces)
        return infos

    def reset(self) -> None:
        """Forget every cached listing (after the layer changed behind the overlay's back)."""
        self._dirs.clear()
        self._asked.clear()
        if self.sidecar is not None:
            self.sidecar.forget()

    # -- keeping the cache true (upper only) -----------------------------------------------------

    def _parent_index(self, path: str) -> Optional[DirIndex]:
        return self._dirs.peek(dirname(path))  # type: ignore[return-value]

    def note_entry(
        self, path: str, is_dir: Optional[bool], new_dir: bool = False, link: Optional[str] = None
    ) -> None:
        """Record that ``path`` now is a directory (``new_dir``: just made where nothing was, so
        empty), a file, a symbolic link (``link`` says where: ``"fs"`` a real one, ``"record"``
        a sidecar record), or gone."""
        parent = self._parent_index(path)
        name = basename(path)
        was_dir = True if parent is None else parent.entries.get(name, False)
        if parent is not None:
            parent.metacopy.pop(basename(path), None)  # a new or gone entry holds its own data
            parent.links.discard(name)
            parent.link_records.discard(name)
            if is_dir is None:
                parent.entries.pop(name, None)
            else:
                parent.entries[name] = is_dir
                if link is not None:
                    parent.links.add(name)
                    if link == "record":
                        parent.link_records.add(name)
            self._dirs.reweigh(dirname(path))
        if new_dir:
            # nothing was there, so all that can be cached below is "no such directory",
            # which stays true of an empty directory: nothing to forget
            self._dirs.put(path, DirIndex({}))
            return
        if was_dir or is_dir:
            self.forget_below(path)
        self._dirs.discard(path)

    def note_metacopy(self, path: str, origin: Optional[str]) -> None:
        """Record that the upper file ``path`` now is (``origin``) or no longer is metadata-only."""
        parent = self._parent_index(path)
        if parent is not None:
            if origin is None:
                parent.metacopy.pop(basename(path), None)
            else:
                parent.metacopy[basename(path)] = origin

    def note_redirect(self, path: str, target: Optional[str]) -> None:
        """Record that the redirect record of ``path`` was set to ``target`` or removed."""
        parent = self._parent_index(path)
        if parent is not None:
            if target is None:
                parent.redirects.pop(basename(path), None)
            else:
                parent.redirects[basename(path)] = target

    def note_record(self, path: str, kind: str, present: bool) -> None:
        """Record that the whiteout or opaque record of ``path`` was added or removed."""
        parent = self._parent_index(path)
        if parent is None:
            return
        names = parent.records(kind)
        if present:
            names.add(basename(path))
        else:
            names.discard(basename(path))

    def forget_below(self, path: str) -> None:
        """Drop every cached listing of a directory strictly inside ``path``."""
        self._dirs.forget_below(path)

    def forget_records_below(self, path: str) -> None:
        """Clear the cached records of directories at and under ``path``."""
        for _cached, index in self._dirs.below(path):
            if index is not None:
                index.whiteouts.clear()
                index.opaque.clear()
                index.redirects.clear()
                index.metacopy.clear()
                for name in index.link_records:  # a link record is an entry: it goes too
                    index.entries.pop(name, None)
                    index.links.discard(name)
                index.link_records.clear()

    def forget_markers_below(self, path: str) -> None:
        """Clear the cached whiteout and opaque records (not the link records: those are
        entries) of directories at and under ``path``."""
        for _cached, index in self._dirs.below(path):
            if index is not None:
                index.whiteouts.clear()
                index.opaque.clear()


def _scanned(found: List[os.DirEntry]) -> Tuple[Dict[str, bool], Set[str]]:
    """Name -> is_dir and the names that are symbolic links, of an ``os.scandir``'s entries
    (comprehensions, not a loop: a link is no directory to ``is_dir(follow_symlinks=False)``)."""
    return {entry.name: entry.is_dir(follow_symlinks=False) for entry in found}, \
        {entry.name for entry in found if entry.is_symlink()}


def list_dir(layer_fs: FS, root: Optional[str], path: str) -> Optional[Tuple[Dict[str, bool], Set[str]]]:
    """Name -> is_dir of the directory ``path`` of ``layer_fs`` and the names that are
    symbolic links, ``None`` if it is not a directory. On disk (``root``: its OS path)
    straight from ``os.scandir`` with ``lstat``'s view (a link is a non-directory of its own,
    dangling or not): no ``Info`` per entry, which costs more than the scan itself."""
    links: Set[str] = set()
    if root is not None:
        try:
            with convert_os_errors("scandir", path, directory=True):
                with os.scandir(root + path if path != "/" else root + "/") as scan:
                    found = list(scan)
                return _scanned(found)
        except (errors.ResourceNotFound, errors.DirectoryExpected):
            return None
    try:
        # the basic namespace's raw dict: Info's properties cost more than the scan itself
        basics = (info.raw["basic"] for info in layer_fs.scandir(path))
        entries = {str(basic["name"]): bool(basic.get("is_dir", False)) for basic in basics}
    except (errors.ResourceNotFound, errors.DirectoryExpected):
        return None
    symlinks_in = getattr(layer_fs, "symlinks_in", None)
    if symlinks_in is not None:  # an FS that knows its links (an archive) says which they are
        links.update(name for name in symlinks_in(path) if name in entries)
        for name in links:
            entries[name] = False
    return entries, links


def _is_network(layer_fs: FS) -> bool:
    try:
        return bool(layer_fs.getmeta().get("network", False))
    except errors.FSError:  # pragma: no cover - a filesystem without meta
        return False


def _index_weight(index: Optional[DirIndex]) -> int:
    return 1 if index is None else 1 + len(index.entries) + len(index.whiteouts)


@attr.s(frozen=True, slots=True)
class Stack:
    """A read-only view of an overlay's layers (``OverlayFS.stack``): what exporters and tools
    read, so that they need none of the overlay's private state."""

    upper: Optional[Layer] = attr.ib()
    lowers: Tuple[Layer, ...] = attr.ib(converter=lambda layers: tuple(layers))  # type: ignore[misc]

    @property
    def layers(self) -> Tuple[Layer, ...]:
        """Every layer, topmost first."""
        return ((self.upper,) if self.upper is not None else ()) + self.lowers


#: turns a lower as the caller gave it (an FS, an FS URL, whatever the formats understand)
#: into an FS, ``what`` naming it in errors; the facade injects the formats' resolver, so
#: this module needs none of them
LowerResolver = Callable[[Any, str], FS]


def open_fs(source: LayerSource, writeable: bool, what: str) -> FS:
    """``source`` as an FS: an FS as it is, an FS URL opened (an :class:`UnsupportedLayer` naming
    ``what`` if it cannot be)."""
    if isinstance(source, FS):
        return source
    if isinstance(source, str):
        with convert_errors(unsupported_layer, "cannot open %s %r" % (what, source), fs_errors=True):
            if "://" not in source and "!" not in source:
                # what fs.open_fs makes of a plain path (its osfs opener), without the opener
                # registry's look through every installed distribution's entry points
                return OSFS(os.path.normpath(os.path.abspath(os.path.expanduser(source))), create=writeable)
            return fs.open_fs(source, writeable=writeable, create=writeable)
    raise UnsupportedLayer(msg="%s must be an FS or an FS URL, not %r" % (what, type(source).__name__))


def _plain_lower(source: Any, what: str) -> FS:
    return open_fs(source, False, what)


def _plain_upper(source: Any, what: str) -> FS:
    return open_fs(source, True, what)


def open_layers(
    lowers: Union[LayerSource, Sequence[Union[LayerSource, "Layer"]]],
    upper: Optional[LayerSource],
    resolve_lower: LowerResolver = _plain_lower,
    resolve_upper: LowerResolver = _plain_upper,
    lock_upper: Optional[Callable[[FS, List[FS]], None]] = None,
    volatile: bool = False,
) -> List[Layer]:
    """Open the stack top-down: the upper (if any), then the lowers in ``lowerdir=`` order.
    A lower may be a ready-made :class:`Layer` (a subclass with its own marker format); any
    other is given to ``resolve_lower``. ``lock_upper(upper, lowers)`` runs before anything
    is read from or written to the upper's sidecar; ``volatile`` turns off its syncing."""
    if isinstance(lowers, (FS, str)):
        lowers = [lowers]
    lowers = list(lowers)
    if not lowers:
        raise UnsupportedLayer(msg="an overlay needs at least one lower layer")
    upper_fs = resolve_upper(upper, "the upper") if upper is not None else None
    # a ready-made Layer (a subclass with a marker format of its own: OCI tar, kernel dir) is kept
    opened: List[Union[Layer, FS]] = [
        source if isinstance(source, Layer) else resolve_lower(source, "lower %d" % position)
        for position, source in enumerate(lowers)
    ]
    layers: List[Layer] = []
    if upper_fs is not None:
        if upper_fs.getmeta().get("read_only", False):
            raise UnsupportedLayer(msg="the upper %r is read-only" % (upper_fs,))
        if upper_fs.getmeta().get("supports_rename", True) is False:
            # copy-up, whole-file writes and the journal are atomic only through rename
            raise UnsupportedLayer(
                msg="the upper %s cannot rename, so copy-up could leave half-made files visible: keep "
                "the upper on a local filesystem and publish it with OverlayFS.export_upper" % (upper_fs,)
            )
        _refuse_overlaps(upper_fs, [item.fs if isinstance(item, Layer) else item for item in opened])
        if lock_upper is not None:
            lock_upper(upper_fs, [item.fs if isinstance(item, Layer) else item for item in opened])
        layers.append(Layer(upper_fs, "upper", True, Sidecar.open(upper_fs, create=True, volatile=volatile)))
    for position, item in enumerate(opened):
        if isinstance(item, Layer):
            if item.is_upper:
                raise UnsupportedLayer(msg="lower %d is an upper layer" % position)
            layers.append(item)
        else:
            layers.append(Layer(item, "lower %d" % position, False, Sidecar.open(item, create=False)))
    # the caller's objects live as long as the layers: one may own what its layer reads
    # (a ZipFS closes its archive when collected, and the layer reads that archive)
    for layer, source in zip(layers[1:] if upper_fs is not None else layers, lowers):
        layer.source = source
    return layers


def _refuse_overlaps(upper_fs: FS, lower_fss: Sequence[FS]) -> None:
    """Refuse an upper that is, contains or lies inside a lower, however either is spelled
    (the kernel refuses overlapping layers: writes to the upper would change a lower)."""
    upper_id = identity(upper_fs)
    assert upper_id is not None
    for position, lower_fs in enumerate(lower_fss):
        lower_id = identity(lower_fs)
        if lower_id is not None and overlaps(upper_id, lower_id):
            raise UnsupportedLayer(
                msg="overlapping layers: the upper (%s) %s lower %d (%s); an upper must not be, contain or "
                "lie inside a lower" % (upper_id.describe(), relation(upper_id, lower_id), position, lower_id.describe())
            )


def all_names(indexes: Iterable[Tuple[Layer, str, DirIndex]]) -> Dict[str, None]:
    """The names a merged directory lists in any of its layers' ``indexes``, upper first,
    without duplicates."""
    names: Dict[str, None] = {}
    for _layer, _path, index in indexes:
        names.update(dict.fromkeys(index.entries))
    return names


