"""Merged directory reading (the kernel's ``readdir.c``).

A merged directory lists the union of the names of every layer that makes it up,
minus whiteouts, without duplicates; each entry's info comes from the layer that wins
it. Order: upper names first, then each lower's new names (the kernel's order differs
and is unspecified; callers must not rely on either).
"""

from __future__ import annotations

from typing import Collection, Dict, Iterator, List, Optional, Tuple

from .. import _fsimport  # noqa: F401
from fs import errors
from fs.info import Info
from fs.path import join

from .stack import Layer
from .lookup import Lookup, Node, layer_indexes

#: namespace requests a listing answers by itself
BASIC_ONLY = frozenset({"basic"})


def visible_children(lookup: Lookup, directory: Node) -> Tuple[Node, ...]:
    """The nodes of the entries of ``directory`` in the merged view (cached by the lookup)."""
    return lookup.listing(directory).nodes


def is_empty(lookup: Lookup, directory: Node) -> bool:
    """Emptiness on the merged listing: whited-out entries do not count. A layer's xattr
    whiteout (an empty file the kernel hides only from listings) does: the kernel's rmdir
    reads it as an entry and answers ENOTEMPTY, merged directory or not."""
    if lookup.listing(directory).names:
        return False
    return not any(index.sticky for _, index in layer_indexes(directory))


def _bulk_infos(layer: Layer, path: str, names: Collection[str], namespaces: Tuple[str, ...]) -> Dict[str, Info]:
    """Infos of ``names`` in one layer's directory: one scandir when most of it is wanted."""
    index = layer.dir(path)
    listed = len(index.entries) if index is not None else 0
    if len(names) * 4 >= listed:
        wanted = set(names)
        return {info.name: info for info in layer.fs.scandir(path, namespaces) if info.name in wanted}
    return {name: layer.fs.getinfo(join(path, name), namespaces) for name in names}


def scan(
    lookup: Lookup,
    directory: Node,
    namespaces: Optional[Collection[str]] = None,
    page: Optional[Tuple[int, int]] = None,
) -> Iterator[Info]:
    """Infos of the merged listing, each from the layer that wins the entry; ``page`` slices
    the merged list, so only the page's infos are read."""
    listing = lookup.listing(directory)
    names, children = listing.names, listing.nodes
    if page is not None:
        start, end = page
        names, children = names[start:end], children[start:end]
    wanted = tuple(namespaces or ())
    if BASIC_ONLY.issuperset(wanted):
        # name and type are all the basic namespace holds, and the listing knows both: no layer is read
        for name, child in zip(names, children):
            yield Info({"basic": {"name": name, "is_dir": child.is_dir}})
        return
    by_layer: Dict[int, List[str]] = {}
    layer_of: Dict[int, Layer] = {}
    for name, child in zip(names, children):
        by_layer.setdefault(id(child.top), []).append(name)
        layer_of[id(child.top)] = child.top
    infos: Dict[str, Info] = {}
    for key, layer_names in by_layer.items():
        try:
            infos.update(_bulk_infos(layer_of[key], directory.path, layer_names, wanted))
        except errors.ResourceNotFound:  # pragma: no cover - a layer changed under us
            continue
    for name in names:
        info = infos.get(name)
        if info is not None:
            yield info
