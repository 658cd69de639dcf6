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
from fs.path import dirname, join

from .inode import node_info
from .stack import Layer
from .lookup import Lookup, Node

#: namespace requests a listing answers by itself
BASIC_ONLY = frozenset({"basic"})


def visible_children(lookup: Lookup, directory: Node) -> Tuple[Node, ...]:
    """The nodes of the entries of ``directory`` in the merged view (cached by the lookup)."""
    return lookup.listing(directory).nodes


def is_empty(lookup: Lookup, directory: Node) -> bool:
    """Emptiness on the merged listing: whited-out entries do not count."""
    return not lookup.listing(directory).names


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
    # one bulk read per (layer, directory in that layer): redirects can make them differ
    by_place: Dict[Tuple[int, str], List[str]] = {}
    layer_of: Dict[int, Layer] = {}
    infos: Dict[str, Info] = {}
    for name, child in zip(names, children):
        if child.metacopy:  # metadata from the top, size from the data
            infos[name] = node_info(child, wanted)
            continue
        by_place.setdefault((id(child.top), dirname(child.top_path)), []).append(name)
        layer_of[id(child.top)] = child.top
    for (key, place), layer_names in by_place.items():
        try:
            found = _bulk_infos(layer_of[key], place, layer_names, wanted)
        except errors.ResourceNotFound:  # pragma: no cover - a layer changed under us
            continue
        infos.update(found)
    for name in names:
        info = infos.get(name)
        if info is not None:
            yield info
