"""Merged directory reading (the kernel's ``readdir.c``).

A merged directory lists the union of the names of every layer that makes it up,
minus whiteouts, without duplicates; each entry's info comes from the layer that wins
it. Order: upper names first, then each lower's new names (the kernel's order differs
and is unspecified; callers must not rely on either).
"""

from __future__ import annotations

import os
from typing import Collection, Dict, Iterable, Iterator, List, Optional, Tuple

from .. import _fsimport  # noqa: F401
from fs import errors
from fs.info import Info
from fs.path import join

from .inode import node_info
from .stack import DirIndex, Layer
from .lookup import Lookup, Node

#: namespace requests a listing answers by itself (a link's target: one readlink per link)
BASIC_ONLY = frozenset({"basic", "link"})


def visible_children(lookup: Lookup, directory: Node) -> List[Node]:
    """The nodes of the entries of ``directory`` in the merged view."""
    return lookup.children(directory)


def is_empty(lookup: Lookup, directory: Node) -> bool:
    """Emptiness on the merged listing: whited-out entries do not count. A layer's xattr
    whiteout (an empty file the kernel hides only from listings) does: the kernel's rmdir
    reads it as an entry and answers ENOTEMPTY, merged directory or not."""
    if lookup.listing(directory).names:
        return False
    return not any(getattr(layer.dir(directory.path), "sticky", False) for layer in directory.layers)


def _layer_infos(layer: Layer, path: str, names: Collection[str], namespaces: Tuple[str, ...]) -> Dict[str, Info]:
    """Infos of ``names`` in one layer's directory: one scandir when most of it is wanted (the
    same scan indexes the directory if it was not), else one getinfo per name (each a link's
    own info, never its target's)."""
    index = layer.cached_dir(path)
    listed = len(index.entries) if isinstance(index, DirIndex) else len(names)
    if len(names) * 4 >= listed:
        return layer.scan(path, namespaces)
    return {name: layer.entry_info(join(path, name), namespaces) for name in names}


def scan(
    lookup: Lookup,
    directory: Node,
    namespaces: Optional[Collection[str]] = None,
    page: Optional[Tuple[int, int]] = None,
) -> List[Info]:
    """Infos of the merged listing, each from the layer that wins the entry; ``page`` slices
    the merged list, so only the page's infos are read."""
    wanted = tuple(namespaces or ())
    if BASIC_ONLY.issuperset(wanted):
        return _basic_infos(lookup, directory, "link" in wanted, page)
    return list(_infos_from_layers(lookup, directory, wanted, page))


def _infos_from_layers(lookup: Lookup, directory: Node, wanted: Tuple[str, ...], page: Optional[Tuple[int, int]]) -> Iterator[Info]:
    """:func:`scan` of namespaces beyond the basic ones: each entry's info read from its layer."""
    if lookup.redirect_mode:
        # redirects put an entry's top at another path of its layer, a metadata-only file's
        # size is its data's: each entry's info comes through its node
        listing = lookup.listing(directory)
        names = listing.names if page is None else listing.names[page[0]:page[1]]
        prefix = directory.path if directory.path == "/" else directory.path + "/"
        for name in names:
            child = lookup.node(prefix + name)
            if child is not None:
                # (entry_info: a dangling link is listed by its own lstat, as below)
                yield node_info(child, wanted) if child.metacopy else child.top.entry_info(child.top_path, wanted)
        return
    if page is None and lookup.cached_listing(directory) is None and len(directory.layers) == 1:
        # a cold details scan of a one-layer directory: that layer's scan is the answer (and
        # indexes the directory), not an index read followed by a second scan
        layer = directory.layers[0]
        scanned = layer.scan(directory.path, wanted)
        index = lookup.sole_index(directory)
        for name in index.entries if index is not None else lookup.listing(directory).names:
            one = scanned.get(name)
            if one is not None:
                yield one
        return
    listing = lookup.listing(directory)
    names, tops = listing.names, listing.tops
    if page is not None:
        start, end = page
        names, tops = names[start:end], tops[start:end]
    by_layer: Dict[int, List[str]] = {}
    layer_of: Dict[int, Layer] = {}
    for name, top in zip(names, tops):
        by_layer.setdefault(id(top), []).append(name)
        layer_of[id(top)] = top
    infos: Dict[str, Info] = {}
    for key, layer_names in by_layer.items():
        # no error is swallowed here: a layer that fails to describe an entry it lists raises,
        # rather than the entry vanishing from the listing (and from what commit writes)
        found = _layer_infos(layer_of[key], directory.path, layer_names, wanted)
        infos.update((name, found[name]) for name in layer_names if name in found)
    for name, top in zip(names, tops):
        info = infos.get(name)
        # a name the scandir did not return (the layer changed under us) is read on its own
        yield info if info is not None else top.entry_info(join(directory.path, name), wanted)


def _basic_infos(lookup: Lookup, directory: Node, with_links: bool, page: Optional[Tuple[int, int]]) -> List[Info]:
    """:func:`scan` of the basic namespace (and ``link`` with ``with_links``): name and type are
    all it holds, and the listing knows both: no layer is read (but each link's, for its
    target where the link namespace is asked for)."""
    index = lookup.sole_index(directory) if page is None and not with_links else None
    entries: Iterable[Tuple[str, bool]]
    if index is not None:  # most directories of a cold walk: no merged listing is made
        entries = index.entries.items()
    else:
        listing = lookup.listing(directory)
        names, is_dirs, tops = listing.names, listing.is_dirs, listing.tops
        if page is not None:
            start, end = page
            names, is_dirs, tops = names[start:end], is_dirs[start:end], tops[start:end]
        if with_links:
            prefix = directory.path if directory.path == "/" else directory.path + "/"
            return [
                Info({"basic": {"name": name, "is_dir": is_dir}, "link": {"target": top.readlink(prefix + name) if name in listing.links else None}})
                for name, is_dir, top in zip(names, is_dirs, tops)
            ]
        entries = zip(names, is_dirs)
    return [Info({"basic": {"name": name, "is_dir": is_dir}}) for name, is_dir in entries]


def lstat_listing(lookup: Lookup, directory: Node) -> List[Tuple[str, Optional[os.stat_result]]]:
    """Each visible entry of ``directory`` with its ``lstat(2)`` in the layer that wins it,
    where that layer is a directory on disk (``None``: ask that layer's getinfo), as
    :meth:`Layer.lstat` answers it: what a FUSE mount's READDIRPLUS answers with, from the
    listing's own record of each entry's layer instead of one lookup per entry. An entry
    gone from its layer since the listing was read is left out."""
    listing = lookup.listing(directory)
    prefix = directory.path if directory.path == "/" else directory.path + "/"
    # a redirected directory's entries live elsewhere in the lowers: look each one up
    redirected = bool(directory.paths) or directory.origin != directory.path
    found: List[Tuple[str, Optional[os.stat_result]]] = []
    for name, top in zip(listing.names, listing.tops):
        try:
            if redirected or _maybe_metacopy(top, directory.path, name):
                found.append((name, _entry_lstat(lookup, prefix + name)))
            else:
                found.append((name, top.lstat(prefix + name)))
        except errors.ResourceNotFound:
            continue
    return found


def _maybe_metacopy(top: Layer, dir_path: str, name: str) -> bool:
    """Whether ``name`` may be a metadata-only file in ``top`` (whose size is its data's)."""
    if top.sidecar is None:
        return False
    index = top.dir(dir_path)
    return index is None or name in index.metacopy


def _entry_lstat(lookup: Lookup, path: str) -> Optional[os.stat_result]:
    """:meth:`OverlayFS.lstat` of one entry, through its own lookup."""
    node = lookup.node(path)
    if node is None:
        raise errors.ResourceNotFound(path)
    return node_lstat(node)


def node_lstat(node: Node) -> Optional[os.stat_result]:
    """lstat(2) of ``node`` in its top layer where that is a directory on disk; ``None`` there
    is none, and for a metadata-only file (whose size is its data's: ask getinfo)."""
    return None if node.metacopy else node.top.lstat(node.top_path)
