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
from typing import Any, Collection, Dict, Iterable, List, Optional, Sequence, Set, Union

import attr

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
import fs
from fs import errors
from fs.base import FS
from fs.enums import ResourceType
from fs.error_tools import convert_os_errors
from fs.info import Info
from fs.opener.errors import OpenerError
from fs.osfs import OSFS
from fs.path import basename, dirname, join

from ..formats.archives import as_lower
from ..errors import UnsupportedLayer
from .sidecar import LINK, RESERVED_NAME, WHITEOUT, Sidecar

LayerSource = Union[FS, str]


@attr.s(slots=True, eq=False)
class DirIndex:
    """What one directory of one layer holds, as far as merging is concerned."""

    entries: Dict[str, bool] = attr.ib()  # name -> is_dir (a symbolic link is not a directory)
    whiteouts: Set[str] = attr.ib(factory=set)
    opaque: Set[str] = attr.ib(factory=set)  # child directories marked opaque
    #: entries that are symbolic links (never followed by the lookup: a link is a non-directory)
    links: Set[str] = attr.ib(factory=set)
    #: the links among them that the sidecar keeps as records (the layer's FS cannot hold links)
    link_records: Set[str] = attr.ib(factory=set)

    def records(self, kind: str) -> Set[str]:
        """The names recorded as ``WHITEOUT``, ``OPAQUE`` or ``LINK``."""
        if kind == LINK:
            return self.link_records
        return self.whiteouts if kind == WHITEOUT else self.opaque


def sys_path_of(layer_fs: FS, path: str) -> Optional[str]:
    """The OS path of ``path`` in ``layer_fs``, or ``None`` for a filesystem without one."""
    try:
        return layer_fs.getsyspath(path)
    except errors.NoSysPath:
        return None


def _stat_info(name: str, status: os.stat_result, namespaces: Collection[str], target: Optional[str]) -> Info:
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


class Layer:
    """One filesystem of the stack, read through its marker format with a directory cache."""

    def __init__(self, layer_fs: FS, label: str, is_upper: bool, sidecar: Optional[Sidecar]) -> None:
        self.fs = layer_fs
        self.label = label
        self.is_upper = is_upper
        self.sidecar = sidecar
        self._dirs: Dict[str, Optional[DirIndex]] = {}

    def __repr__(self) -> str:
        return "<Layer %s %r>" % (self.label, self.fs)

    # -- reading ------------------------------------------------------------------------------

    def dir(self, path: str) -> Optional[DirIndex]:
        """The index of directory ``path`` in this layer, or ``None`` if it is not a directory here."""
        try:
            return self._dirs[path]
        except KeyError:
            pass
        index = self._read_dir(path)
        self._dirs[path] = index
        return index

    def _read_dir(self, path: str) -> Optional[DirIndex]:
        sys_path = sys_path_of(self.fs, path)
        links: Set[str] = set()
        if sys_path is not None:
            # on disk, lstat's view: a symbolic link is an entry of its own, never followed (a
            # dangling or looping link is listed like any other, and hides what is below it)
            try:
                with convert_os_errors("scandir", path, directory=True):
                    with os.scandir(sys_path) as listing:
                        entries = {}
                        for entry in listing:
                            if entry.is_symlink():
                                entries[entry.name] = False
                                links.add(entry.name)
                            else:
                                entries[entry.name] = entry.is_dir(follow_symlinks=False)
            except (errors.ResourceNotFound, errors.DirectoryExpected):
                return None
        else:
            try:
                # the basic namespace's raw dict: Info's properties cost more than the scan itself
                basics = (info.raw["basic"] for info in self.fs.scandir(path))
                entries = {str(basic["name"]): bool(basic.get("is_dir", False)) for basic in basics}
            except (errors.ResourceNotFound, errors.DirectoryExpected):
                return None
            symlinks_in = getattr(self.fs, "symlinks_in", None)
            if symlinks_in is not None:  # an FS that knows its links (ArchiveFS) says which they are
                links.update(name for name in symlinks_in(path) if name in entries)
        if path == "/":
            entries.pop(RESERVED_NAME, None)
            links.discard(RESERVED_NAME)
        index = DirIndex(entries, links=links)
        if self.sidecar is not None:
            index.whiteouts = set(self.sidecar.whiteouts(path))
            index.opaque = set(self.sidecar.opaque_names(path))
            # an entry of the layer's own FS wins over a link record of the same name
            index.link_records = set(self.sidecar.link_names(path)) - set(entries)
            for name in index.link_records:
                entries[name] = False
            links.update(index.link_records)
        return index

    # -- links: the entry itself, never what it points to --------------------------------------

    def is_link(self, path: str) -> bool:
        index = self.dir(dirname(path))
        return index is not None and basename(path) in index.links

    def readlink(self, path: str) -> str:
        """The target of the symbolic link ``path`` of this layer."""
        index = self.dir(dirname(path))
        if index is not None and basename(path) in index.link_records:
            assert self.sidecar is not None
            return self.sidecar.read_link(path)
        sys_path = sys_path_of(self.fs, path)
        if sys_path is not None:
            with convert_os_errors("readlink", path):
                return os.readlink(sys_path)
        target = self.fs.getinfo(path, ["link"]).get("link", "target")
        if target is None:
            raise errors.ResourceNotFound(path)
        return str(target)

    def getinfo(self, path: str, namespaces: Optional[Collection[str]] = None) -> Info:
        """The info of the entry ``path`` of this layer; a symbolic link's own (``lstat``), not
        its target's."""
        wanted = tuple(namespaces or ())
        if not self.is_link(path):
            return _with_link_namespace(self.fs.getinfo(path, wanted), wanted)
        index = self.dir(dirname(path))
        assert index is not None
        if basename(path) in index.link_records:
            assert self.sidecar is not None
            record = self.fs.getinfo(self.sidecar.link_record(path), wanted)
            return link_info_from_record(basename(path), self.sidecar.read_link(path), record, wanted)
        sys_path = sys_path_of(self.fs, path)
        if sys_path is not None:
            with convert_os_errors("getinfo", path):
                status = os.lstat(sys_path)
                target = os.readlink(sys_path) if "link" in wanted else None
            return _stat_info(basename(path), status, wanted, target)
        return self.fs.getinfo(path, wanted)  # an FS that knows its links answers for the link

    def infos(self, path: str, names: Collection[str], namespaces: Collection[str]) -> Dict[str, Info]:
        """Infos of ``names`` in this layer's directory ``path``: one scandir when most of it is
        wanted and the directory holds no link (a scandir would follow links), else one by one."""
        index = self.dir(path)
        listed = len(index.entries) if index is not None else 0
        if index is not None and not index.links and len(names) * 4 >= listed:
            wanted = set(names)
            return {info.name: _with_link_namespace(info, namespaces) for info in self.fs.scandir(path, namespaces) if info.name in wanted}
        return {name: self.getinfo(join(path, name), namespaces) for name in names}

    def reset(self) -> None:
        """Forget every cached listing (after the layer changed behind the overlay's back)."""
        self._dirs.clear()

    # -- keeping the cache true (upper only) -----------------------------------------------------

    def _parent_index(self, path: str) -> Optional[DirIndex]:
        return self._dirs.get(dirname(path))

    def note_entry(
        self, path: str, is_dir: Optional[bool], new_dir: bool = False, link: Optional[str] = None
    ) -> None:
        """Record that ``path`` now is a directory (``new_dir``: just made, so empty), a file,
        a symbolic link (``link`` says where: ``"fs"`` a real one, ``"record"`` a sidecar
        record), or gone."""
        parent = self._parent_index(path)
        name = basename(path)
        was_dir = True if parent is None else parent.entries.get(name, False)
        if parent is not None:
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
        if was_dir or is_dir:
            self.forget_below(path)
        if new_dir:
            self._dirs[path] = DirIndex({})
        else:
            self._dirs.pop(path, None)

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
        prefix = path.rstrip("/") + "/"
        for cached in [p for p in self._dirs if p.startswith(prefix)]:
            del self._dirs[cached]

    def forget_records_below(self, path: str) -> None:
        """Clear the cached records of directories at and under ``path``."""
        prefix = path.rstrip("/") + "/"
        for cached, index in self._dirs.items():
            if index is not None and (cached == path or cached.startswith(prefix)):
                index.whiteouts.clear()
                index.opaque.clear()


def _open_fs(source: LayerSource, writeable: bool, what: str) -> FS:
    if isinstance(source, FS):
        return source
    if isinstance(source, str):
        try:
            return fs.open_fs(source, writeable=writeable, create=writeable)
        except (errors.FSError, OpenerError) as error:
            raise UnsupportedLayer(msg="cannot open %s %r: %s" % (what, source, error)) from error
    raise UnsupportedLayer(msg="%s must be an FS or an FS URL, not %r" % (what, type(source).__name__))


def open_layers(
    lowers: Union[LayerSource, Sequence[Union[LayerSource, "Layer"]]], upper: Optional[LayerSource], unsafe: str = "error"
) -> List[Layer]:
    """Open the stack top-down: the upper (if any), then the lowers in ``lowerdir=`` order.
    A lower may be a ready-made :class:`Layer` (a subclass with its own marker format).
    ``unsafe`` is the policy for hostile members of archive lowers (``"error"``, ``"skip"``)."""
    if isinstance(lowers, (FS, str)):
        lowers = [lowers]
    lowers = list(lowers)
    if not lowers:
        raise UnsupportedLayer(msg="an overlay needs at least one lower layer")
    upper_fs = _open_fs(upper, True, "the upper") if upper is not None else None
    # a ready-made Layer (a subclass with a marker format of its own: OCI tar, kernel dir) is kept
    opened: List[Union[Layer, FS]] = [
        source if isinstance(source, Layer) else _open_fs(as_lower(source, unsafe), False, "lower %d" % position)
        for position, source in enumerate(lowers)
    ]
    layers: List[Layer] = []
    if upper_fs is not None:
        if upper_fs.getmeta().get("read_only", False):
            raise UnsupportedLayer(msg="the upper %r is read-only" % (upper_fs,))
        if any((item.fs if isinstance(item, Layer) else item) is upper_fs for item in opened):
            raise UnsupportedLayer(msg="the upper %r cannot also be a lower" % (upper_fs,))
        layers.append(Layer(upper_fs, "upper", True, Sidecar.open(upper_fs, create=True)))
    for position, item in enumerate(opened):
        if isinstance(item, Layer):
            if item.is_upper:
                raise UnsupportedLayer(msg="lower %d is an upper layer" % position)
            layers.append(item)
        else:
            layers.append(Layer(item, "lower %d" % position, False, Sidecar.open(item, create=False)))
    return layers


def all_names(layers: Iterable[Layer], path: str) -> Dict[str, None]:
    """The names the directory ``path`` lists in any of ``layers``, upper first, without duplicates."""
    names: Dict[str, None] = {}
    for layer in layers:
        index = layer.dir(path)
        if index is not None:
            names.update(dict.fromkeys(index.entries))
    return names


