"""Path lookup across the layers (the kernel's ``namei.c``).

Lookup goes top-down, one path component at a time: the topmost layer that has the
name wins; directories of consecutive layers merge until a non-directory, a whiteout
or an opaque directory; a non-directory hides everything below it. The result of a
lookup is a :class:`Node`, cached per path until the upper changes at that path.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import attr

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs import errors
from fs.path import basename, dirname, iteratepath, join

from .stack import DirIndex, Layer, all_names
from .sidecar import is_reserved


@attr.s(frozen=True, slots=True)
class Node:
    """A path as the merged view sees it."""

    path: str = attr.ib()
    is_dir: bool = attr.ib()
    #: the layers that make up this entry, topmost first; a file has one, or for a
    #: metadata-only copy-up its metadata layer(s) and last the layer holding its data
    layers: Tuple[Layer, ...] = attr.ib()
    #: some lower layer has an entry here, so removing it from the view needs a whiteout
    lower_positive: bool = attr.ib()
    #: where the entry is in each of ``layers`` (redirects make them differ from ``path``)
    paths: Tuple[str, ...] = attr.ib(default=())
    #: the path the layers below the upper look this entry up at (the kernel's redirect
    #: path): ``path`` unless the upper's entry or an ancestor's carries a redirect
    origin: str = attr.ib(default="")
    #: a file whose top layer holds its metadata only; the data is in ``layers[-1]``
    metacopy: bool = attr.ib(default=False)

    @property
    def top(self) -> Layer:
        """The layer whose entry wins: metadata comes from here (and data, but for metacopy)."""
        return self.layers[0]

    @property
    def top_path(self) -> str:
        """Where the winning entry is in :attr:`top`."""
        return self.paths[0] if self.paths else self.path

    @property
    def data(self) -> Tuple[Layer, str]:
        """The layer and path a file's content is read from."""
        if self.metacopy and len(self.layers) < 2:
            raise errors.OperationFailed(self.path, msg="%s is a metadata-only copy whose lower data is missing" % self.path)
        return self.layers[-1], (self.paths[-1] if self.paths else self.path)

    @property
    def in_upper(self) -> bool:
        return self.layers[0].is_upper

    def layer_paths(self) -> Iterator[Tuple[Layer, str]]:
        """Each layer with the entry's path in it, topmost first."""
        if self.paths:
            return zip(self.layers, self.paths)
        return ((layer, self.path) for layer in self.layers)


@attr.s(frozen=True, slots=True)
class Listing:
    """The visible entries of a merged directory, in listing order."""

    names: Tuple[str, ...] = attr.ib()
    nodes: Tuple[Node, ...] = attr.ib()


_MISSING = object()
_STOP = object()  # a whiteout, or a non-directory on the way: nothing here nor below


@attr.s(slots=True)
class _Hit:
    """What one layer has for the name being looked up."""

    path: str = attr.ib()  # where, in that layer
    is_dir: bool = attr.ib()
    opaque: bool = attr.ib()
    #: for the layers below: a redirect of this entry (absolute, or a relative name)
    redirect: Optional[str] = attr.ib()
    metacopy: bool = attr.ib()
    #: a directory on the way was opaque: no layer below this one has the name
    stop: bool = attr.ib(default=False)


def _in_index(index: DirIndex, dir_path: str, name: str) -> Any:
    """One name in one directory of one layer: a :class:`_Hit`, ``_MISSING`` or ``_STOP``."""
    is_dir = index.entries.get(name)
    if is_dir is None:
        return _STOP if name in index.whiteouts else _MISSING
    if is_dir:
        return _Hit(join(dir_path, name), True, name in index.opaque, index.redirects.get(name), False)
    if name in index.metacopy:
        return _Hit(join(dir_path, name), False, False, index.metacopy[name], True)
    return _Hit(join(dir_path, name), False, False, None, False)


def _below(parent_origin: str, name: str, redirect: Optional[str]) -> str:
    """Where the layers below look an entry up: its redirect, absolute or relative to the
    parent's place there, else its own name there."""
    if redirect is None:
        return join(parent_origin, name)
    return redirect if redirect.startswith("/") else join(parent_origin, redirect)


def _walk(layer: Layer, path: str) -> Tuple[Any, str]:
    """Look the absolute ``path`` up in one layer from its root, as the kernel's
    ``ovl_lookup_layer`` does for a redirect: a whiteout or a file on the way ends the
    lookup, an opaque directory on the way ends it below this layer, and a redirect of a
    directory on the way changes where the layers below continue. Returns the hit (or
    ``_MISSING``/``_STOP``) and the path the layers below look up."""
    parts = iteratepath(path)
    current, below, stop = "/", "/", False
    for position, part in enumerate(parts):
        index = layer.dir(current)
        hit = _in_index(index, current, part) if index is not None else _MISSING
        if not isinstance(hit, _Hit):
            return hit, join(below, *parts[position:])
        if position == len(parts) - 1:
            hit.stop = stop
            return hit, join(below, part)
        if not hit.is_dir:
            return _STOP, path
        stop = stop or hit.opaque
        below = _below(below, part, hit.redirect)
        current = hit.path
    return _MISSING, path  # the root itself is never looked up this way


def resolve_child(parent: Node, name: str, all_layers: Sequence[Layer]) -> Optional[Node]:
    """Look ``name`` up in the directory ``parent`` by the kernel's rules."""
    return resolve_in(parent, layer_indexes(parent), name, join(parent.path, name), all_layers)


def layer_indexes(directory: Node) -> List[Tuple[Layer, str, DirIndex]]:
    """Each layer of the merged ``directory`` with the directory's path there and its index,
    topmost first; a layer whose listing vanished under us counts as empty and is left out."""
    indexes = []
    for layer, path in directory.layer_paths():
        index = layer.dir(path)
        if index is not None:
            indexes.append((layer, path, index))
    return indexes


def resolve_in(
    parent: Node,
    indexes: Sequence[Tuple[Layer, str, DirIndex]],
    name: str,
    path: str,
    all_layers: Sequence[Layer],
) -> Optional[Node]:
    """Resolve ``name`` (at ``path``) in the directory ``parent`` given by its
    :func:`layer_indexes` (a listing resolves every name against the same indexes), the way
    the kernel's ``ovl_lookup`` does: top-down, directories merge until a whiteout, a
    non-directory or an opaque directory; a redirect sends the layers below to another path
    (a relative one within the parent's layers, an absolute one from each layer's root);
    a metadata-only file continues down to the layer holding its data."""
    # the kernel's ovl_lower_positive: the name itself in the parent's lower layers
    lower_positive = False
    for layer, _dir_path, listed in indexes:
        if layer.is_upper:
            continue
        if name in listed.entries:
            lower_positive = True
            break
        if name in listed.whiteouts:
            break
    found: List[_Hit] = []
    layers: List[Layer] = []
    parent_origin = parent.origin or parent.path
    origin: Optional[str] = None
    relative = name  # the name looked up in the parent's layers
    absolute: Optional[str] = None  # once a redirect is absolute: the path walked in each layer
    candidates: Sequence[Tuple[Layer, Optional[str], Optional[DirIndex]]] = indexes
    position = 0
    while position < len(candidates):
        layer, dir_path, index = candidates[position]
        position += 1
        walked: Optional[str] = None  # what the layers below look up after a walk of this one
        if absolute is None:
            assert index is not None and dir_path is not None
            hit = _in_index(index, dir_path, relative)
        else:
            hit, walked = _walk(layer, absolute)
        if hit is _MISSING:
            absolute = walked or absolute
            continue
        if hit is _STOP:
            break
        assert isinstance(hit, _Hit)
        if found and found[0].is_dir != hit.is_dir:
            break  # a directory over a file (or a metacopy's data that is a directory) ends it
        found.append(hit)
        layers.append(layer)
        if origin is None:
            # where the layers below the topmost entry look it up (the kernel's d.name)
            origin = _below(parent_origin, name, hit.redirect) if layer.is_upper else join(parent_origin, name)
        if not hit.is_dir and not hit.metacopy:
            break
        if hit.opaque or hit.stop:
            break
        target = walked if walked != absolute else None
        if hit.redirect is not None:
            if hit.redirect.startswith("/"):
                target = hit.redirect
            elif absolute is not None:  # relative to the parent's place in the walked path
                target = join(dirname(target or absolute), hit.redirect)
            else:
                relative = hit.redirect
        if target is not None and target != absolute:
            absolute = target
            # an absolute path is walked in every layer below this one, not only the parent's
            rest = list(all_layers)
            rest = rest[rest.index(layer) + 1:]
            candidates = [(deeper, None, None) for deeper in rest]
            position = 0
    if not found:
        return None
    if found[0].metacopy and found[-1].metacopy:
        found, layers = found[:1], layers[:1]  # no layer holds the data: missing, not a wrong file
    is_dir = found[0].is_dir
    return Node(
        path,
        is_dir,
        tuple(layers),
        lower_positive,
        tuple(hit.path for hit in found),
        origin or join(parent_origin, name),
        metacopy=not is_dir and found[0].metacopy,
    )


class Lookup:
    """Resolves paths of the merged view and caches the answers."""

    def __init__(self, layers: Sequence[Layer]) -> None:
        self.layers = tuple(layers)
        self.root = Node(
            "/", True, self.layers, any(not layer.is_upper for layer in layers), ("/",) * len(self.layers), "/"
        )
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
            node = resolve_child(node, basename(current), self.layers) if node is not None and node.is_dir else None
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
        for name in all_names(indexes):
            path = prefix + name
            child = cached.get(path, _MISSING)
            if child is _MISSING:  # resolved here, not by node(): the parent and its indexes are in hand
                child = cached[path] = resolve_in(directory, indexes, name, path, self.layers)
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
