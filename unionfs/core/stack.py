"""Layers and their configuration (the kernel's ``super.c``).

A :class:`Layer` is one filesystem of the stack plus the way it records overlay
markers. It answers one question, fast: what does directory ``D`` hold in this layer
(entries with their type, whiteouts, opaque children)? Answers are cached per
directory. Lowers never change while mounted (as in the kernel, changing them under a
live overlay is undefined), and every change to the upper goes through
:mod:`unionfs.core.upper`, which updates the cache in place.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import attr

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
import fs
from fs import errors
from fs.base import FS
from fs.opener.errors import OpenerError
from fs.path import basename, dirname, join

from ..formats.archives import as_lower
from ..errors import UnsupportedLayer
from .sidecar import RESERVED_NAME, WHITEOUT, Sidecar

LayerSource = Union[FS, str]


@attr.s(slots=True, eq=False)
class DirIndex:
    """What one directory of one layer holds, as far as merging is concerned."""

    entries: Dict[str, bool] = attr.ib()  # name -> is_dir
    whiteouts: Set[str] = attr.ib(factory=set)
    opaque: Set[str] = attr.ib(factory=set)  # child directories marked opaque
    #: child directory -> where the lowers hold its contents (the kernel's overlay.redirect):
    #: an absolute path, or (kernel layers only) a name relative to this directory
    redirects: Dict[str, str] = attr.ib(factory=dict)
    #: child file holding metadata only -> where its data is (absolute or relative as above),
    #: ``None`` for the same name (the kernel's overlay.metacopy)
    metacopy: Dict[str, Optional[str]] = attr.ib(factory=dict)

    def records(self, kind: str) -> Set[str]:
        """The names recorded as ``WHITEOUT`` or ``OPAQUE``."""
        return self.whiteouts if kind == WHITEOUT else self.opaque


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
        try:
            # the basic namespace's raw dict: Info's properties cost more than the scan itself
            basics = (info.raw["basic"] for info in self.fs.scandir(path))
            entries = {basic["name"]: basic.get("is_dir", False) for basic in basics}
        except (errors.ResourceNotFound, errors.DirectoryExpected):
            return None
        if path == "/":
            entries.pop(RESERVED_NAME, None)
        index = DirIndex(entries)
        if self.sidecar is not None:
            index.whiteouts = set(self.sidecar.whiteouts(path))
            index.opaque = set(self.sidecar.opaque_names(path))
            index.redirects = self.sidecar.redirects(path)
            for name in self.sidecar.metacopy_hints(path):
                if entries.get(name) is False:
                    origin = self.sidecar.metacopy_origin(join(path, name))
                    if origin is not None:
                        index.metacopy[name] = origin
        return index

    def reset(self) -> None:
        """Forget every cached listing (after the layer changed behind the overlay's back)."""
        self._dirs.clear()

    # -- keeping the cache true (upper only) -----------------------------------------------------

    def _parent_index(self, path: str) -> Optional[DirIndex]:
        return self._dirs.get(dirname(path))

    def note_entry(self, path: str, is_dir: Optional[bool], new_dir: bool = False) -> None:
        """Record that ``path`` now is a directory (``new_dir``: just made, so empty), a file, or gone."""
        parent = self._parent_index(path)
        was_dir = True if parent is None else parent.entries.get(basename(path), False)
        if parent is not None:
            parent.metacopy.pop(basename(path), None)  # a new or gone entry holds its own data
            if is_dir is None:
                parent.entries.pop(basename(path), None)
            else:
                parent.entries[basename(path)] = is_dir
        if was_dir or is_dir:
            self.forget_below(path)
        if new_dir:
            self._dirs[path] = DirIndex({})
        else:
            self._dirs.pop(path, None)

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
                index.redirects.clear()
                index.metacopy.clear()


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
    lowers: Union[LayerSource, Sequence[Union[LayerSource, "Layer"]]], upper: Optional[LayerSource]
) -> List[Layer]:
    """Open the stack top-down: the upper (if any), then the lowers in ``lowerdir=`` order.
    A lower may be a ready-made :class:`Layer` (a subclass with its own marker format)."""
    if isinstance(lowers, (FS, str)):
        lowers = [lowers]
    lowers = list(lowers)
    if not lowers:
        raise UnsupportedLayer(msg="an overlay needs at least one lower layer")
    upper_fs = _open_fs(upper, True, "the upper") if upper is not None else None
    # a ready-made Layer (a subclass with a marker format of its own: OCI tar, kernel dir) is kept
    opened: List[Union[Layer, FS]] = [
        source if isinstance(source, Layer) else _open_fs(as_lower(source), False, "lower %d" % position)
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


def all_names(indexes: Iterable[Tuple[Layer, str, DirIndex]]) -> Dict[str, None]:
    """The names a merged directory lists in any of its layers' ``indexes``, upper first,
    without duplicates."""
    names: Dict[str, None] = {}
    for _layer, _path, index in indexes:
        names.update(dict.fromkeys(index.entries))
    return names


