"""Path lookup across the layers (the kernel's ``namei.c``).

Lookup goes top-down, one path component at a time: the topmost layer that has the
name wins; directories of consecutive layers merge until a non-directory, a whiteout
or an opaque directory; a non-directory hides everything below it. The result of a
lookup is a :class:`Node`, cached per path until the upper changes at that path.
"""

from __future__ import annotations

from collections import deque
from typing import Dict, FrozenSet, Iterable, Iterator, List, Optional, Sequence, Set, Tuple, Union

import attr

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs import errors
from fs.path import basename, dirname

from ..errors import LinkLoop
from .stack import ABSENT, DIR, FILE, OPAQUE_DIR, SYMLINK, WHITED, Layer
from .sidecar import is_reserved
from .treecache import TreeCache, parent_of


@attr.s(slots=True, eq=False)
class _Rest:
    """The part of a lookup left for later: the parent's layers from ``position`` on, asked
    about ``name`` only when they are wanted (they are all lowers, which never change, so
    asking later gives what asking now would have)."""

    parent: "Node" = attr.ib()
    name: str = attr.ib()
    position: int = attr.ib()


# eq=False: a node is a lookup's answer, compared by identity (its layers complete in place)
@attr.s(frozen=True, slots=True, eq=False)
class Node:
    """A path as the merged view sees it."""

    path: str = attr.ib()
    is_dir: bool = attr.ib()
    #: the layers that make up this entry, topmost first; a file has exactly one (see
    #: :attr:`layers`: of a merged directory only the top one may be known yet)
    _layers: Tuple[Layer, ...] = attr.ib()
    #: whether some lower has an entry here; ``None`` until asked (see :attr:`lower_positive`)
    _lower_positive: Optional[bool] = attr.ib(default=None)
    #: the lowers still to ask when the upper alone decided the entry (lowers never change):
    #: a tuple, or the parent's layers from a position on
    _below: Union[Tuple[Layer, ...], _Rest] = attr.ib(default=(), repr=False)
    #: a symbolic link (a non-directory whose target the lookup never follows by itself)
    is_link: bool = attr.ib(default=False, kw_only=True)
    #: a directory whose layers below its top one are not asked yet (``None``: all known)
    _rest: Optional[_Rest] = attr.ib(default=None, kw_only=True, repr=False)

    @property
    def layers(self) -> Tuple[Layer, ...]:
        """Every layer that makes up this entry, topmost first. A cold lookup of a merged
        directory asks the layers below its top one only when they are wanted (here, or for a
        name its known layers do not decide), so that a lookup through it costs what the layers
        down to the one that answers cost, not what every lower below costs."""
        if self._rest is not None:
            self._complete()
        return self._layers

    @property
    def known_layers(self) -> Tuple[Layer, ...]:
        """The layers of this entry asked so far (:attr:`layers` without asking any more)."""
        return self._layers

    @property
    def complete(self) -> bool:
        """Whether :attr:`known_layers` are all its layers."""
        return self._rest is None

    def layer_at(self, position: int) -> Optional[Layer]:
        """``layers[position]`` (``None`` past the end), asking further layers only if needed."""
        layers = self._layers
        if position < len(layers):
            return layers[position]
        if self._rest is None:
            return None
        self._complete()
        layers = self._layers
        return layers[position] if position < len(layers) else None

    def _complete(self) -> None:
        """Ask the rest of the layers, of the lazy ancestors first (top-down, a loop: any depth)."""
        chain = []
        node: Node = self
        while node._rest is not None:
            chain.append(node)
            node = node._rest.parent
        for node in reversed(chain):
            rest = node._rest
            assert rest is not None
            done = _merge(rest.parent, rest.name, node.path, rest.position, list(node._layers), bool(node._lower_positive))
            assert done is not None and done._rest is None
            object.__setattr__(node, "_layers", done._layers)
            object.__setattr__(node, "_lower_positive", done._lower_positive)
            object.__setattr__(node, "_rest", None)

    @property
    def lower_positive(self) -> bool:
        """Some lower layer has an entry here, so removing it from the view needs a whiteout.
        An entry the upper decides does not read the lowers to be looked up: they are asked
        only when this is wanted (a removal or rename), one name each, down to the first lower
        that has the name or whites it out."""
        known = self._lower_positive
        if known is None and self._rest is not None:
            self._complete()
            known = self._lower_positive
        if known is None:
            known = False
            parent, name = dirname(self.path), basename(self.path)
            below = self._below
            if isinstance(below, _Rest):
                layers: Iterable[Layer] = _layers_from(below.parent, below.position)
            else:
                layers = below
            for layer in layers:
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
        return self._layers[0]

    @property
    def in_upper(self) -> bool:
        return self._layers[0].is_upper


def _layers_from(node: Node, position: int) -> Iterator[Layer]:
    """``node.layers[position:]``, asking its further layers only when reached."""
    while True:
        layer = node.layer_at(position)
        if layer is None:
            return
        yield layer
        position += 1


@attr.s(frozen=True, slots=True)
class Listing:
    """The visible entries of a merged directory, in listing order: each name, whether it is a
    directory and the layer that wins it. No :class:`Node` is made per entry: a walk needs
    only these, and a child looked up later resolves from the same cached indexes."""

    path: str = attr.ib()
    names: Tuple[str, ...] = attr.ib()
    is_dirs: Tuple[bool, ...] = attr.ib()
    tops: Tuple[Layer, ...] = attr.ib()
    #: the names whose winning entry is a symbolic link
    links: FrozenSet[str] = attr.ib(default=frozenset())


_MISSING = object()

#: cached lookup answers (one per path) and merged listings (their names, all listings
#: together) kept at most; least recently used go first. Sized for a tree like /usr
#: (about 140,000 entries) to stay warm in full.
NODE_LIMIT = 200_000
LISTING_LIMIT = 400_000

#: how many symbolic links one path resolution follows at most (Linux's MAXSYMLINKS)
MAX_LINK_HOPS = 40


def resolve_child(parent: Node, name: str) -> Optional[Node]:
    """Look ``name`` up in the directory ``parent`` by the kernel's rules, one layer at a time,
    stopping at the first layer that decides (each layer is asked about this one name). A
    directory found in a layer with more below is answered with that layer alone, the rest
    asked when wanted (:attr:`Node.layers`)."""
    dir_path = parent.path
    path = dir_path + name if dir_path == "/" else dir_path + "/" + name
    return _merge(parent, name, path, 0, [], False, lazy=True)


def _merge(
    parent: Node, name: str, path: str, position: int, found: List[Layer], lower_positive: bool, lazy: bool = False
) -> Optional[Node]:
    """:func:`resolve_child` from the parent's layer ``position`` on, ``found`` the layers of a
    merging directory found above it (then only lowers are left to ask)."""
    dir_path = parent.path
    top_is_dir = bool(found)
    top_is_link = False
    merging = True  # can deeper layers still add to the entry?
    while True:
        layer = parent.layer_at(position)
        if layer is None:
            break
        position += 1
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
                top_is_link = code == SYMLINK
                merging = is_dir and code != OPAQUE_DIR
                if merging and lazy and (position < len(parent.known_layers) or not parent.complete):
                    # a directory with layers below: those are asked when wanted, not now
                    return Node(path, True, (layer,), True if lower_positive else None, rest=_Rest(parent, name, position))
            elif top_is_dir and is_dir:
                found.append(layer)
                merging = code != OPAQUE_DIR
            else:
                merging = False
        if not merging:
            if lower_positive:
                break
            # decided by the upper alone: whether a lower has the name is asked when wanted
            below: Union[Tuple[Layer, ...], _Rest]
            if parent.complete:
                below = parent.known_layers[position:]
            else:
                below = _Rest(parent, name, position)
            return Node(path, top_is_dir, tuple(found), None, below, is_link=top_is_link)
    if not found:
        return None
    return Node(path, top_is_dir, tuple(found), lower_positive, is_link=top_is_link)


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
        return Listing(directory.path, names, tuple(index.entries.values()), (layer,) * len(names), frozenset(index.links))
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
    links: Set[str] = set()
    link_tops = {id(layer): index.links for layer, index in indexes if index.links}
    for name, entry in state.items():
        if entry[0] is not None:
            names_.append(name)
            is_dirs.append(entry[1])
            tops.append(entry[0])
            if link_tops and name in link_tops.get(id(entry[0]), ()):
                links.add(name)
    return Listing(directory.path, tuple(names_), tuple(is_dirs), tuple(tops), frozenset(links))


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
            if len(unresolved) > 1 and node.complete and len(node.known_layers) == 1 and node.top.probes:
                # below a directory only one layer makes up, nothing merges, hides or adds: that
                # layer's answer for the whole path is the view's (one stat, not one per component;
                # one component goes through resolve_child, which uses the index if cached)
                return self._resolve_in_one(node.top, unresolved)
            current = unresolved.pop()
            node = resolve_child(node, current[current.rfind("/") + 1:])
            nodes.put(current, node)
        return node

    def _resolve_in_one(self, layer: Layer, unresolved: List[str]) -> Optional[Node]:
        path = unresolved[0]
        code = layer.probe_path(path, len(unresolved))
        if code == ABSENT:
            self._nodes.put(path, None)  # (which ancestor is missing is asked again if wanted)
            return None
        lower_positive = not layer.is_upper
        for current in reversed(unresolved[1:]):  # every ancestor of an existing path is a directory
            self._nodes.put(current, Node(current, True, (layer,), lower_positive))
        node = Node(path, code >= DIR, (layer,), lower_positive, is_link=code == SYMLINK)
        self._nodes.put(path, node)
        return node

    def resolve(self, path: str, display: str, follow: bool = True) -> Tuple[Optional[Node], Optional[str]]:
        """The node at ``path`` with the symbolic links on the way followed (the last component's
        too if ``follow``, as ``stat`` does; else as ``lstat``), and the path it stands at. For a
        path that does not resolve, the node is ``None`` and the path is where a new entry
        would be made (through a dangling link, its target), ``None`` if nowhere.

        A link is followed as a process inside the overlay follows it, as in a chroot or an
        OCI rootfs: a relative target from the link's directory, an absolute one from the
        overlay's root, component by component (``..`` after a link is the parent of where
        the link led), ``..`` at the root stays there: never outside the overlay. More than
        :data:`MAX_LINK_HOPS` links raise :class:`unionfs.errors.LinkLoop` naming ``display``."""
        node = self.node(path)
        if node is not None and not (follow and node.is_link):
            return node, path  # no link on the way: lookup stops at any non-directory
        hops = 0
        current = "/"
        pending = deque(part for part in path.split("/") if part)
        while pending:
            part = pending.popleft()
            if part in ("", "."):
                continue
            if part == "..":
                current = dirname(current)
                continue
            candidate = current + part if current == "/" else current + "/" + part
            node = self.node(candidate)
            if node is None or (pending and not node.is_dir and not node.is_link):
                # missing here, or a file in the middle (ENOTDIR): the rest goes nowhere
                rest = [piece for piece in pending if piece not in ("", ".")]
                return None, candidate + "".join("/" + piece for piece in rest)  # its parent is missing
            if node.is_link and (pending or follow):
                hops += 1
                if hops > MAX_LINK_HOPS:
                    raise LinkLoop(display)
                target = node.top.readlink(candidate)
                if not target:
                    return None, None  # an empty target: ENOENT, and nothing can be made there
                if target.startswith("/"):
                    current = "/"
                pending.extendleft(reversed(target.split("/")))
                continue
            current = candidate
        return self.node(current), current

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
