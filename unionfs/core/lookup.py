"""Path lookup across the layers (the kernel's ``namei.c``).

Lookup goes top-down, one path component at a time: the topmost layer that has the
name wins; directories of consecutive layers merge until a non-directory, a whiteout
or an opaque directory; a non-directory hides everything below it. The result of a
lookup is a :class:`Node`, cached per path until the upper changes at that path.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import attr

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs import errors
from fs.path import basename, dirname

from .stack import DIR, FILE, OPAQUE_DIR, WHITED, Layer
from .sidecar import is_reserved
from .treecache import TreeCache, parent_of


@attr.s(frozen=True, slots=True)
class Node:
    """A path as the merged view sees it."""

    path: str = attr.ib()
    is_dir: bool = attr.ib()
    #: the layers that make up this entry, topmost first; a file has exactly one
    layers: Tuple[Layer, ...] = attr.ib()
    #: whether some lower has an entry here; ``None`` until asked (see :attr:`lower_positive`)
    _lower_positive: Optional[bool] = attr.ib(default=None)
    #: the lowers still to ask when the upper alone decided the entry (lowers never change)
    _below: Tuple[Layer, ...] = attr.ib(default=(), repr=False)

    @property
    def lower_positive(self) -> bool:
        """Some lower layer has an entry here, so removing it from the view needs a whiteout.
        An entry the upper decides does not read the lowers to be looked up: they are asked
        only when this is wanted (a removal or rename), one name each, down to the first lower
        that has the name or whites it out."""
        known = self._lower_positive
        if known is None:
            known = False
            parent, name = dirname(self.path), basename(self.path)
            for layer in self._below:
                code = layer.lookup(parent, name)
                if code >= FILE:
                    known = True
                    break
                if code == WHITED:
                    break  # a lower whiteout hides the name in every layer below it
            object.__setattr__(self, "_lower_positive", known)
        return known

    @property
    def top(self) -> Layer:
        """The layer whose entry wins: data and metadata come from here."""
        return self.layers[0]

    @property
    def in_upper(self) -> bool:
        return self.layers[0].is_upper


@attr.s(frozen=True, slots=True)
class Listing:
    """The visible entries of a merged directory, in listing order: each name, whether it is a
    directory and the layer that wins it. No :class:`Node` is made per entry: a walk needs
    only these, and a child looked up later resolves from the same cached indexes."""

    path: str = attr.ib()
    names: Tuple[str, ...] = attr.ib()
    is_dirs: Tuple[bool, ...] = attr.ib()
    tops: Tuple[Layer, ...] = attr.ib()


_MISSING = object()

#: cached lookup answers (one per path) and merged listings (their names, all listings
#: together) kept at most; least recently used go first. Sized for a tree like /usr
#: (about 140,000 entries) to stay warm in full.
NODE_LIMIT = 200_000
LISTING_LIMIT = 400_000


def resolve_child(parent: Node, name: str) -> Optional[Node]:
    """Look ``name`` up in the directory ``parent`` by the kernel's rules, one layer at a time,
    stopping at the first layer that decides (each layer is asked about this one name)."""
    dir_path = parent.path
    path = dir_path + name if dir_path == "/" else dir_path + "/" + name
    found: List[Layer] = []
    top_is_dir = False
    merging = True  # can deeper layers still add to the entry?
    lower_positive = False
    layers = parent.layers
    for position, layer in enumerate(layers):
        code = layer.lookup(dir_path, name)
        if code <= WHITED:
            if code == WHITED:
                if not layer.is_upper:
                    break  # a lower whiteout hides this name in every layer below it
                if not found:
                    return None  # the upper whites it out: nothing of the lowers shows
                merging = False
            continue
        is_dir = code >= DIR
        if not layer.is_upper:
            lower_positive = True
        if merging:
            if not found:
                found.append(layer)
                top_is_dir = is_dir
                merging = is_dir and code != OPAQUE_DIR
            elif top_is_dir and is_dir:
                found.append(layer)
                merging = code != OPAQUE_DIR
            else:
                merging = False
        if not merging:
            if lower_positive:
                break
            # decided by the upper alone: whether a lower has the name is asked when wanted
            return Node(path, top_is_dir, tuple(found), None, layers[position + 1:])
    if not found:
        return None
    return Node(path, top_is_dir, tuple(found), lower_positive)


def merge_listing(directory: Node) -> Listing:
    """The merged listing of ``directory``: each layer's index read once, layer by layer (not
    each name through every layer), with the rules of :func:`resolve_child`."""
    indexes = []
    for layer in directory.layers:
        index = layer.dir(directory.path)
        if index is not None:  # a layer whose listing vanished under us counts as empty
            indexes.append((layer, index))
    if len(indexes) == 1:  # one layer: its entries are the listing
        layer, index = indexes[0]
        names = tuple(index.entries)
        return Listing(directory.path, names, tuple(index.entries.values()), (layer,) * len(names))
    # per name: [top layer or None, top is a dir, still merging, decided]
    state: Dict[str, list] = {}
    for layer, index in indexes:
        upper = layer.is_upper
        for name, is_dir in index.entries.items():
            entry = state.get(name)
            if entry is None:
                state[name] = [layer, is_dir, is_dir and name not in index.opaque, False]
            elif not entry[3] and entry[2]:  # merging: a directory over this one, or not
                if is_dir and entry[1]:
                    entry[2] = name not in index.opaque
                else:
                    entry[2] = False
        if index.whiteouts:
            for name in index.whiteouts:
                if name in index.entries:
                    continue  # an entry wins over a record of the same name in one layer
                entry = state.get(name)
                if entry is None:
                    state[name] = [None, False, False, True]  # hidden from every layer below
                elif upper or entry[2]:
                    entry[2] = False
                    entry[3] = True
    names_: List[str] = []
    is_dirs: List[bool] = []
    tops: List[Layer] = []
    for name, entry in state.items():
        if entry[0] is not None:
            names_.append(name)
            is_dirs.append(entry[1])
            tops.append(entry[0])
    return Listing(directory.path, tuple(names_), tuple(is_dirs), tuple(tops))


class Lookup:
    """Resolves paths of the merged view and caches the answers (bounded: :data:`NODE_LIMIT`
    nodes and :data:`LISTING_LIMIT` listed names, least recently used forgotten first)."""

    def __init__(self, layers: Sequence[Layer], node_limit: Optional[int] = None, listing_limit: Optional[int] = None) -> None:
        self.layers = tuple(layers)
        self.root = Node("/", True, self.layers, any(not layer.is_upper for layer in layers))
        self._nodes: TreeCache[Optional[Node]] = TreeCache(node_limit or NODE_LIMIT)
        self._nodes.put("/", self.root)
        # merged listings by directory path; dropped with the directory's node or any child's
        self._listings: TreeCache[Listing] = TreeCache(listing_limit or LISTING_LIMIT, lambda listing: len(listing.names))

    def node(self, path: str) -> Optional[Node]:
        """The node at the absolute, normalised ``path``, or ``None`` if the view has nothing there."""
        nodes = self._nodes
        cached = nodes.get(path, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        if path == "/":
            nodes.put("/", self.root)
            return self.root
        if is_reserved(path):
            return None
        # up to the nearest cached ancestor, then down one component at a time: a loop, not
        # recursion, so a path of thousands of components is an answer, not a RecursionError
        unresolved = [path]
        while True:
            parent_path = parent_of(unresolved[-1])
            if parent_path == "/":
                parent: object = self.root
                break
            parent = nodes.get(parent_path, _MISSING)
            if parent is not _MISSING:
                break
            unresolved.append(parent_path)
        node: Optional[Node] = parent  # type: ignore[assignment]
        while unresolved:
            if node is None or not node.is_dir:
                for current in unresolved:
                    nodes.put(current, None)
                return None
            if len(unresolved) > 1 and len(node.layers) == 1 and node.layers[0].probes:
                # below a directory only one layer makes up, nothing merges, hides or adds: that
                # layer's answer for the whole path is the view's (one stat, not one per component;
                # one component goes through resolve_child, which uses the index if cached)
                return self._resolve_in_one(node.layers[0], unresolved)
            current = unresolved.pop()
            node = resolve_child(node, current[current.rfind("/") + 1:])
            nodes.put(current, node)
        return node

    def _resolve_in_one(self, layer: Layer, unresolved: List[str]) -> Optional[Node]:
        path = unresolved[0]
        is_dir = layer.probe_path(path)
        if is_dir is None:
            self._nodes.put(path, None)  # (which ancestor is missing is asked again if wanted)
            return None
        lower_positive = not layer.is_upper
        for current in reversed(unresolved[1:]):  # every ancestor of an existing path is a directory
            self._nodes.put(current, Node(current, True, (layer,), lower_positive))
        node = Node(path, is_dir, (layer,), lower_positive)
        self._nodes.put(path, node)
        return node

    def listing(self, directory: Node) -> Listing:
        """The visible entries of the merged ``directory``, cached until one of them changes."""
        listing = self._listings.get(directory.path)
        if listing is not None:
            return listing  # type: ignore[return-value]
        listing = merge_listing(directory)
        if directory is self.root or self._nodes.peek(directory.path) is directory:  # never cache a stale node's
            self._listings.put(directory.path, listing)
        return listing

    def cached_listing(self, directory: Node) -> Optional[Listing]:
        """The cached listing of ``directory``, if any (not marked as used)."""
        return self._listings.peek(directory.path)  # type: ignore[return-value]

    def children(self, directory: Node) -> List[Node]:
        """The nodes of the entries of ``directory`` (resolved from the indexes its listing read)."""
        listing = self.listing(directory)
        prefix = directory.path if directory.path == "/" else directory.path + "/"
        nodes = []
        for name in listing.names:
            child = self.node(prefix + name)
            if child is not None:  # (a layer changed under us)
                nodes.append(child)
        return nodes

    def missing(self, path: str, display: str, want_dir: bool = False) -> errors.FSError:
        """The error for a ``path`` that does not resolve, naming the caller's ``display`` path:
        an ancestor that is a file makes it ENOTDIR (``DirectoryExpected`` for directory
        operations), anything else ENOENT."""
        if want_dir:
            ancestor = dirname(path)
            while ancestor != "/":
                node = self.node(ancestor)
                if node is not None:
                    if not node.is_dir:
                        return errors.DirectoryExpected(display)
                    break
                ancestor = dirname(ancestor)
        return errors.ResourceNotFound(display)

    def copied_up_dir(self, path: str, upper: Layer) -> None:
        """The lower directory ``path`` was just copied up (an empty, non-opaque copy): its node
        is the old one with the upper on top, known without asking any layer again."""
        old = self._nodes.peek(path)
        self.forget(path)
        if isinstance(old, Node) and old.is_dir and not old.in_upper:
            self._nodes.put(path, Node(path, True, (upper,) + old.layers, True))

    def forget(self, path: str, subtree: bool = False) -> None:
        """Drop cached answers for ``path`` (and everything below it when ``subtree``), with the
        listings of ``path`` and of its parent."""
        self._listings.discard(path)
        if path == "/":
            if subtree:
                self._nodes.clear()
                self._nodes.put("/", self.root)
                self._listings.clear()
            return
        self._listings.discard(dirname(path))
        self._nodes.discard(path)
        if subtree:
            self._nodes.forget_below(path)
            self._listings.forget_below(path)
