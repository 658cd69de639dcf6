"""Path lookup across the layers (the kernel's ``namei.c``).

Lookup goes top-down, one path component at a time: the topmost layer that has the
name wins; directories of consecutive layers merge until a non-directory, a whiteout
or an opaque directory; a non-directory hides everything below it. The result of a
lookup is a :class:`Node`, cached per path until the upper changes at that path.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Set, Tuple

import attr

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs import errors
from fs.path import basename, dirname, join

from .stack import DirIndex, Layer, all_names
from .sidecar import is_reserved


@attr.s(frozen=True, slots=True)
class Node:
    """A path as the merged view sees it."""

    path: str = attr.ib()
    is_dir: bool = attr.ib()
    #: the layers that make up this entry, topmost first; a file has exactly one
    layers: Tuple[Layer, ...] = attr.ib()
    #: some lower layer has an entry here, so removing it from the view needs a whiteout
    lower_positive: bool = attr.ib()

    @property
    def top(self) -> Layer:
        """The layer whose entry wins: data and metadata come from here."""
        return self.layers[0]

    @property
    def in_upper(self) -> bool:
        return self.layers[0].is_upper


@attr.s(frozen=True, slots=True)
class Listing:
    """The visible entries of a merged directory, in listing order."""

    names: Tuple[str, ...] = attr.ib()
    nodes: Tuple[Node, ...] = attr.ib()


_MISSING = object()


def resolve_child(parent: Node, name: str) -> Optional[Node]:
    """Look ``name`` up in the directory ``parent`` by the kernel's rules."""
    return resolve_in(layer_indexes(parent), name, join(parent.path, name))


def layer_indexes(directory: Node) -> List[Tuple[Layer, DirIndex]]:
    """Each layer of the merged ``directory`` with its index there, topmost first; a layer whose
    listing vanished under us counts as empty and is left out."""
    indexes = []
    for layer in directory.layers:
        index = layer.dir(directory.path)
        if index is not None:
            indexes.append((layer, index))
    return indexes


def resolve_in(indexes: Sequence[Tuple[Layer, DirIndex]], name: str, path: str) -> Optional[Node]:
    """Resolve ``name`` (at ``path``) in a directory given by its :func:`layer_indexes`; a
    listing resolves every name against the same indexes."""
    found: List[Layer] = []
    top_is_dir = False
    merging = True  # can deeper layers still add to the entry?
    lower_positive = False
    for layer, index in indexes:
        is_dir = index.entries.get(name)
        if is_dir is None:
            if name in index.whiteouts:
                if not layer.is_upper:
                    break  # a lower whiteout hides this name in every layer below it
                merging = False  # the upper whiteout hides the lowers from the view only
            continue
        if not layer.is_upper:
            lower_positive = True
        if merging:
            if not found:
                found.append(layer)
                top_is_dir = is_dir
                merging = is_dir and name not in index.opaque
            elif top_is_dir and is_dir:
                found.append(layer)
                merging = name not in index.opaque
            else:
                merging = False
        if not merging and lower_positive:
            break
    if not found:
        return None
    return Node(path, top_is_dir, tuple(found), lower_positive)


class Lookup:
    """Resolves paths of the merged view and caches the answers."""

    def __init__(self, layers: Sequence[Layer]) -> None:
        self.layers = tuple(layers)
        self.root = Node("/", True, self.layers, lower_positive=any(not layer.is_upper for layer in layers))
        self._nodes: Dict[str, Optional[Node]] = {"/": self.root}
        # cached paths by parent, so forgetting a subtree costs the size of what is cached in it
        self._cached_children: Dict[str, Set[str]] = {}
        # merged listings by directory path; dropped with the directory's node or any child's
        self._listings: Dict[str, Listing] = {}

    def node(self, path: str) -> Optional[Node]:
        """The node at the absolute, normalised ``path``, or ``None`` if the view has nothing there."""
        cached = self._nodes.get(path, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        if is_reserved(path):
            return None
        # up to the nearest cached ancestor, then down one component at a time: a loop, not
        # recursion, so a path of thousands of components is an answer, not a RecursionError
        unresolved = [path]
        while dirname(unresolved[-1]) not in self._nodes:
            unresolved.append(dirname(unresolved[-1]))
        node = self._nodes[dirname(unresolved[-1])]
        for current in reversed(unresolved):
            node = resolve_child(node, basename(current)) if node is not None and node.is_dir else None
            self._remember(dirname(current), current, node)
        return node

    def _remember(self, parent_path: str, path: str, node: Optional[Node]) -> None:
        self._nodes[path] = node
        self._cached_children.setdefault(parent_path, set()).add(path)

    def listing(self, directory: Node) -> Listing:
        """The visible entries of the merged ``directory``, cached until one of them changes."""
        listing = self._listings.get(directory.path)
        if listing is not None:
            return listing
        prefix = directory.path if directory.path == "/" else directory.path + "/"
        indexes = layer_indexes(directory)
        cached, siblings = self._nodes, self._cached_children.setdefault(directory.path, set())
        names: List[str] = []
        nodes: List[Node] = []
        for name in all_names(directory.layers, directory.path):
            path = prefix + name
            child = cached.get(path, _MISSING)
            if child is _MISSING:  # resolved here, not by node(): the parent and its indexes are in hand
                child = cached[path] = resolve_in(indexes, name, path)
                siblings.add(path)
            if child is not None:
                names.append(name)
                nodes.append(child)  # type: ignore[arg-type]
        listing = Listing(tuple(names), tuple(nodes))
        if self._nodes.get(directory.path) is directory:  # never cache a listing of a stale node
            self._listings[directory.path] = listing
        return listing

    def child(self, parent: Node, name: str) -> Optional[Node]:
        return self.node(join(parent.path, name))

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

    def forget(self, path: str, subtree: bool = False) -> None:
        """Drop cached answers for ``path`` (and everything below it when ``subtree``), with the
        listings of ``path`` and of its parent."""
        self._listings.pop(path, None)
        if path == "/":
            if subtree:
                self._nodes = {"/": self.root}
                self._cached_children = {}
                self._listings = {}
            return
        self._listings.pop(dirname(path), None)
        self._nodes.pop(path, None)
        # ``path`` stays in its parent's set: answers cached below it must stay reachable
        # for a later subtree forget of an ancestor
        if subtree:
            pending = [path]
            while pending:
                for child in self._cached_children.pop(pending.pop(), ()):
                    self._nodes.pop(child, None)
                    self._listings.pop(child, None)
                    pending.append(child)
