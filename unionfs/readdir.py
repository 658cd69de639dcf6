"""Merged directory reading (the kernel's ``readdir.c``).

A merged directory lists the union of the names of every layer that makes it up,
minus whiteouts, without duplicates; each entry's info comes from the layer that wins
it. Order: upper names first, then each lower's new names (the kernel's order differs
and is unspecified; callers must not rely on either).
"""

from __future__ import annotations

from typing import Collection, Dict, Iterator, List, Optional, Tuple

from . import _fsimport  # noqa: F401
from fs import errors
from fs.info import Info
from fs.path import join

from .layers import Layer, all_names
from .lookup import Lookup, Node


def visible_children(lookup: Lookup, directory: Node) -> List[Node]:
    """The nodes of the entries of ``directory`` in the merged view."""
    children = []
    for name in all_names(directory.layers, directory.path):
        child = lookup.node(join(directory.path, name))
        if child is not None:
            children.append(child)
    return children


def is_empty(lookup: Lookup, directory: Node) -> bool:
    """Emptiness on the merged listing: whited-out entries do not count."""
    for name in all_names(directory.layers, directory.path):
        if lookup.node(join(directory.path, name)) is not None:
            return False
    return True


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
    children = visible_children(lookup, directory)
    if page is not None:
        start, end = page
        children = children[start:end]
    wanted = tuple(namespaces or ())
    by_layer: Dict[int, List[Node]] = {}
    layer_of: Dict[int, Layer] = {}
    for child in children:
        by_layer.setdefault(id(child.top), []).append(child)
        layer_of[id(child.top)] = child.top
    infos: Dict[str, Info] = {}
    for key, nodes in by_layer.items():
        try:
            infos.update(_bulk_infos(layer_of[key], directory.path, [n.path.rsplit("/", 1)[1] for n in nodes], wanted))
        except errors.ResourceNotFound:  # pragma: no cover - a layer changed under us
            continue
    for child in children:
        info = infos.get(child.path.rsplit("/", 1)[1])
        if info is not None:
            yield info
