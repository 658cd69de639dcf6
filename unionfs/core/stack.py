"""Layers and their configuration (the kernel's ``super.c``).

A :class:`Layer` is one filesystem of the stack plus the way it records overlay
markers. It answers one question, fast: what does directory ``D`` hold in this layer
(entries with their type, whiteouts, opaque children)? Answers are cached per
directory. Lowers never change while mounted (as in the kernel, changing them under a
live overlay is undefined), and every change to the upper goes through
:mod:`unionfs.core.upper`, which updates the cache in place.
"""

from __future__ import annotations

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
from fs.osfs import OSFS
from fs.path import basename, dirname, join

from ..errors import UnsupportedLayer, convert_errors, literal, unsupported_layer
from .identity import identity, overlaps, relation
from .nofollow import lstat_info
from .sidecar import OPAQUE, RESERVED_NAME, SIDECAR_DIR, WHITEOUT, Sidecar, is_reserved, sys_root
from .treecache import TreeCache

_MISSING = object()
#: what :meth:`Layer.cached_dir` answers for a directory it has no index of
MISSING = _MISSING

LayerSource = Union[FS, str]


@attr.s(slots=True, eq=False)
class DirIndex:
    """What one directory of one layer holds, as far as merging is concerned."""

    entries: Dict[str, bool] = attr.ib()  # name -> is_dir
    whiteouts: Set[str] = attr.ib(factory=set)
    opaque: Set[str] = attr.ib(factory=set)  # child directories marked opaque
    #: holds a kernel xattr whiteout: the kernel's rmdir counts it as an entry (ENOTEMPTY)
    sticky: bool = attr.ib(default=False)

    def records(self, kind: str) -> Set[str]:
        """The names recorded as ``WHITEOUT`` or ``OPAQUE``."""
        return self.whiteouts if kind == WHITEOUT else self.opaque


#: what one layer says about one name of a directory (:meth:`Layer.lookup`), in the order
#: the merge tests them: nothing, a whiteout record, a file, a directory, an opaque directory
ABSENT, WHITED, FILE, DIR, OPAQUE_DIR = range(5)

#: the namespaces an OSFS info is made of from one ``os.stat`` (others ask the FS itself)
_STAT_NAMESPACES = frozenset({"basic", "details", "access"})

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
        #: the OS path of the layer's root where it is a plain OS directory: a probe is then
        #: one ``lstat`` instead of a trip through the FS's getinfo
        self._sys_root = sys_root(layer_fs)
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
        to be a directory of this layer): ABSENT, WHITED, FILE, DIR or OPAQUE_DIR."""
        index = self._dirs.get(dir_path, _MISSING)
        if index is _MISSING:
            if self.probes and not self._hot(dir_path):
                return self._probe(dir_path, name)
            index = self.dir(dir_path)
        if index is None:
            return ABSENT
        is_dir = index.entries.get(name)  # type: ignore[union-attr]
        if is_dir is None:
            return WHITED if name in index.whiteouts else ABSENT  # type: ignore[union-attr]
        if is_dir:
            return OPAQUE_DIR if name in index.opaque else DIR  # type: ignore[union-attr]
        return FILE

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
        path = dir_path + name if dir_path == "/" else dir_path + "/" + name
        if path == SIDECAR_DIR:
            return ABSENT
        is_dir = self._stat_dir(path)
        sidecar = self.sidecar
        if is_dir is None:
            return WHITED if sidecar is not None and sidecar.has_record(path, WHITEOUT) else ABSENT
        if not is_dir:
            return FILE
        return OPAQUE_DIR if sidecar is not None and sidecar.has_record(path, OPAQUE) else DIR

    def _stat_dir(self, path: str) -> Optional[bool]:
        """Whether ``path`` is a directory of the layer's FS (``None``: nothing there), as its
        ``scandir`` would type it (a symlink is typed by its target, a dangling one a file)."""
        if self._sys_root is not None:
            sys_path = self._sys_root + path
            try:
                result = os.stat(sys_path)  # what OSFS.getinfo stats: kept for the getinfo that follows
            except (FileNotFoundError, NotADirectoryError):
                self._last_stat = None
                return False if os.path.islink(sys_path) else None  # a dangling symlink is listed
            except OSError as error:
                raise errors.OperationFailed(path, exc=error, msg=literal("cannot stat %r in %s: %s" % (path, self.label, error))) from error
            if not self.is_upper:  # a lower never changes while mounted: its stat stays true
                self._last_stat = (path, result)
            return stat.S_ISDIR(result.st_mode)
        try:
            return bool(self.fs.getinfo(path).is_dir)
        except (errors.ResourceNotFound, errors.DirectoryExpected):
            return None

    def probe_path(self, path: str) -> Optional[bool]:
        """:meth:`_stat_dir` of a whole path at once: for a path below a directory that only
        this layer makes up, where no other layer can add, hide or merge anything."""
        return None if is_reserved(path) else self._stat_dir(path)

    def getinfo(self, path: str, namespaces: Optional[Collection[str]] = None) -> Info:
        """The layer FS's info of ``path``; built from the ``stat`` that the lookup of ``path``
        just made when there was one (one system call per cold getinfo, not two)."""
        last, self._last_stat = self._last_stat, None
        if last is not None and last[0] == path and _STAT_NAMESPACES.issuperset(namespaces or ()):
            result = last[1]
            raw: Dict[str, Dict[str, object]] = {"basic": {"name": basename(path), "is_dir": stat.S_ISDIR(result.st_mode)}}
            wanted = namespaces or ()
            if "details" in wanted:
                raw["details"] = OSFS._make_details_from_stat(result)
            if "access" in wanted:
                raw["access"] = OSFS._make_access_from_stat(result)
            return Info(raw)
        return self.fs.getinfo(path, namespaces)

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
        """lstat(2) of ``path`` where this layer is a directory on disk (``None`` elsewhere):
        what a FUSE mount answers getattr with, without building an ``Info``."""
        if self._sys_root is None:
            return None
        try:
            return os.lstat(self._sys_root + path if path != "/" else self._sys_root or "/")
        except FileNotFoundError:
            raise errors.ResourceNotFound(path) from None
        except OSError as error:
            raise errors.OperationFailed(path, exc=error, msg=literal("cannot stat %r in %s: %s" % (path, self.label, error))) from error

    def _read_dir(self, path: str) -> Optional[DirIndex]:
        entries = list_dir(self.fs, self._sys_root, path)
        return None if entries is None else self._index_of(path, entries)

    def _index_of(self, path: str, entries: Dict[str, bool]) -> DirIndex:
        if path == "/":
            entries.pop(RESERVED_NAME, None)
        index = DirIndex(entries)
        if self.sidecar is not None:
            index.whiteouts, index.opaque = self.sidecar.records(path)
        return index

    def scan(self, path: str, namespaces: Tuple[str, ...]) -> Dict[str, Info]:
        """Infos of every entry of directory ``path`` with ``namespaces``, in one scandir; the
        directory's index is made from the same scan if it was not cached."""
        try:
            infos = {info.name: info for info in self.fs.scandir(path, namespaces)}
        except errors.ResourceNotFound:
            # one entry could not be described (OSFS stats each, and a dangling link has
            # nothing to stat): that is no reason for the others to vanish, so read each name
            entries = list_dir(self.fs, self._sys_root, path)
            if entries is None:
                raise
            infos = {name: self.entry_info(join(path, name), namespaces) for name in entries}
        if path == "/":
            infos.pop(RESERVED_NAME, None)
        if self.PROBES and self._dirs.peek(path, _MISSING) is _MISSING:
            self._dirs.put(path, self._index_of(path, {name: info.is_dir for name, info in infos.items()}))
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

    def note_entry(self, path: str, is_dir: Optional[bool], new_dir: bool = False) -> None:
        """Record that ``path`` now is a directory (``new_dir``: just made where nothing was, so
        empty), a file, or gone."""
        parent = self._parent_index(path)
        was_dir = True if parent is None else parent.entries.get(basename(path), False)
        if parent is not None:
            if is_dir is None:
                parent.entries.pop(basename(path), None)
            else:
                parent.entries[basename(path)] = is_dir
            self._dirs.reweigh(dirname(path))
        if new_dir:
            # nothing was there, so all that can be cached below is "no such directory",
            # which stays true of an empty directory: nothing to forget
            self._dirs.put(path, DirIndex({}))
            return
        if was_dir or is_dir:
            self.forget_below(path)
        self._dirs.discard(path)

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


def list_dir(layer_fs: FS, root: Optional[str], path: str) -> Optional[Dict[str, bool]]:
    """Name -> is_dir of the directory ``path`` of ``layer_fs``, ``None`` if it is not one. On
    an OSFS (``root``: its OS path) straight from ``os.scandir``, typed as OSFS types them (a
    symlink by its target): no ``Info`` per entry, which costs more than the scan itself."""
    if root is not None:
        try:
            with convert_os_errors("scandir", path, directory=True):
                with os.scandir(root + path) as scan:
                    return {entry.name: entry.is_dir() for entry in scan}
        except (errors.ResourceNotFound, errors.DirectoryExpected):
            return None
    try:
        # the basic namespace's raw dict: Info's properties cost more than the scan itself
        basics = (info.raw["basic"] for info in layer_fs.scandir(path))
        return {str(basic["name"]): bool(basic.get("is_dir", False)) for basic in basics}
    except (errors.ResourceNotFound, errors.DirectoryExpected):
        return None


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


def all_names(layers: Iterable[Layer], path: str) -> Dict[str, None]:
    """The names the directory ``path`` lists in any of ``layers``, upper first, without duplicates."""
    names: Dict[str, None] = {}
    for layer in layers:
        index = layer.dir(path)
        if index is not None:
            names.update(dict.fromkeys(index.entries))
    return names


