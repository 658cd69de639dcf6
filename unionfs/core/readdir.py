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

from .nofollow import lstat_info
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
    """Infos of ``names`` in one layer's directory: one scandir when most of it is wanted.
    A scandir that fails on one entry (OSFS stats each, and a dangling link has nothing to
    stat) is not a listing without entries: each name is then read on its own."""
    index = layer.dir(path)
    listed = len(index.entries) if index is not None else 0
    if len(names) * 4 >= listed:
        wanted = set(names)
        try:
            return {info.name: info for info in layer.fs.scandir(path, namespaces) if info.name in wanted}
        except errors.ResourceNotFound:
            pass
    return {name: _entry_info(layer, join(path, name), namespaces) for name in names}


def _entry_info(layer: Layer, path: str, namespaces: Tuple[str, ...]) -> Info:
    """The info of one listed entry: the layer's own, or where that fails because the entry
    is a link to nothing, the link itself (``lstat``); never silently nothing."""
    try:
        return layer.fs.getinfo(path, namespaces)
    except errors.ResourceNotFound:
        info = lstat_info(layer.fs, path, namespaces)
        if info is None:
            raise
        return info


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
        # no error is swallowed here: a layer that fails to describe an entry it lists raises,
        # rather than the entry vanishing from the listing (and from what commit writes)
        infos.update(_bulk_infos(layer_of[key], directory.path, layer_names, wanted))
    for name, child in zip(names, children):
        info = infos.get(name)
        # a name the scandir did not return (the layer changed under us) is read on its own
        yield info if info is not None else _entry_info(child.top, join(directory.path, name), wanted)
