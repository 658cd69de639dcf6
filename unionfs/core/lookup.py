"""Path lookup across the layers (the kernel's ``namei.c``).

Lookup goes top-down, one path component at a time: the topmost layer that has the
name wins; directories of consecutive layers merge until a non-directory, a whiteout
or an opaque directory; a non-directory hides everything below it. The result of a
lookup is a :class:`Node`, cached per path until the upper changes at that path.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Dict, FrozenSet, Iterable, Iterator, List, Optional, Sequence, Set, Tuple, Union

import attr

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs import errors
from fs.path import basename, dirname, iteratepath, join

from ..errors import LinkLoop, literal
from .stack import ABSENT, DIR, FILE, OPAQUE_DIR, SYMLINK, WHITED, DirIndex, Layer, all_names
from .sidecar import is_reserved
from .treecache import TreeCache, child_of, parent_of


@attr.s(slots=True, eq=False)
class _Rest:
    """The part of a lookup left for later: the parent's layers from ``position`` on, asked
    about ``name`` only when they are wanted (they are all lowers, which never change, so
    asking later gives what asking now would have)."""

    parent: "Node" = attr.ib()
    name: str = attr.ib()
    position: int = attr.ib()


# eq=False: a node is a lookup's answer, compared by identity (its layers complete in place).
# Not frozen, though nothing but :meth:`Node._complete` changes one: a frozen attrs class sets
# each of its ten fields through ``object.__setattr__``, which costs a cold lookup more than
# the rest of making its node (0.9 us against 0.2)
@attr.s(slots=True, eq=False)
class Node:
    """A path as the merged view sees it (read-only: its fields are the lookup's answer)."""

    path: str = attr.ib()
    is_dir: bool = attr.ib()
    #: the layers that make up this entry, topmost first; a file has one, or for a
    #: metadata-only copy-up its metadata layer(s) and last the layer holding its data (see
    #: :attr:`layers`: of a merged directory only the top one may be known yet)
    _layers: Tuple[Layer, ...] = attr.ib()
    #: whether some lower has an entry here; ``None`` until asked (see :attr:`lower_positive`)
    _lower_positive: Optional[bool] = attr.ib(default=None)
    #: the lowers still to ask when the upper alone decided the entry (lowers never change):
    #: a tuple, or the parent's layers from a position on
    _below: Union[Tuple[Layer, ...], _Rest] = attr.ib(default=(), repr=False)
    #: where the entry is in each of ``layers`` (redirects make them differ from ``path``;
    #: empty: ``path`` in every layer)
    paths: Tuple[str, ...] = attr.ib(default=())
    #: the path the layers below the upper look this entry up at (the kernel's redirect
    #: path): ``path`` (empty) unless the upper's entry or an ancestor's carries a redirect
    _origin: str = attr.ib(default="")
    #: a file whose top layer holds its metadata only; the data is in ``layers[-1]``
    metacopy: bool = attr.ib(default=False)
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

    def _complete(self, indexing: bool = False) -> None:
        """Ask the rest of the layers, of the lazy ancestors first (top-down, a loop: any depth);
        ``indexing``: this node is about to be listed (:meth:`Layer.lookup_indexing`)."""
        chain = []
        node: Node = self
        while node._rest is not None:
            chain.append(node)
            node = node._rest.parent
        for node in reversed(chain):
            rest = node._rest
            assert rest is not None
            done = _merge(rest.parent, rest.name, node.path, rest.position, list(node._layers), bool(node._lower_positive),
                          indexing=indexing and node is self)
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
    def origin(self) -> str:
        """Where the layers below the upper look this entry up (its path unless a redirect of
        it or of an ancestor says otherwise)."""
        return self._origin or self.path

    @property
    def top_path(self) -> str:
        """Where the winning entry is in :attr:`top`."""
        return self.paths[0] if self.paths else self.path

    @property
    def data(self) -> Tuple[Layer, str]:
        """The layer and path a file's content is read from."""
        if self.metacopy and len(self.layers) < 2:
            raise errors.OperationFailed(self.path, msg=literal("%s is a metadata-only copy whose lower data is missing" % self.path))
        return self.layers[-1], (self.paths[-1] if self.paths else self.path)

    @property
    def in_upper(self) -> bool:
        return self._layers[0].is_upper


    def layer_paths(self) -> Iterator[Tuple[Layer, str]]:
        """Each layer with the entry's path in it, topmost first."""
        if self.paths:
            return zip(self.layers, self.paths)
        return ((layer, self.path) for layer in self.layers)


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
#: the end of a link target that ends in "/": the path resolved so far must be a directory
_DIR_NEEDED = "/"

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
    path = child_of(dir_path, name)
    layers = parent._layers
    if len(layers) == 1 and parent._rest is None:
        # one layer: its answer is the view's (what _merge answers, without its loop)
        layer = layers[0]
        code = layer.lookup(dir_path, name)
        if code < FILE:
            return None  # nothing there, or whited out (in the upper or in the one lower)
        return Node(path, code >= DIR, layers, not layer.is_upper, is_link=code == SYMLINK)
    return _merge(parent, name, path, 0, [], False, lazy=True)


def _merge(
    parent: Node, name: str, path: str, position: int, found: List[Layer], lower_positive: bool, lazy: bool = False,
    indexing: bool = False,
) -> Optional[Node]:
    """:func:`resolve_child` from the parent's layer ``position`` on, ``found`` the layers of a
    merging directory found above it (then only lowers are left to ask); ``indexing``: the
    entry is a directory about to be listed (each layer asked by :meth:`Layer.lookup_indexing`)."""
    dir_path = parent.path
    top_is_dir = bool(found)
    top_is_link = False
    merging = True  # can deeper layers still add to the entry?
    while True:
        layer = parent.layer_at(position)
        if layer is None:
            break
        position += 1
        code = layer.lookup_indexing(dir_path, name) if indexing else layer.lookup(dir_path, name)
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
    if not directory.complete:
        directory._complete(indexing=True)  # the layers below, each listed as it is found
    indexes = []
    for layer in directory.layers:
        index = layer.dir(directory.path)
        if index is not None:  # a layer whose listing vanished under us counts as empty
            indexes.append((layer, index))
    if len(indexes) == 1:  # one layer: its entries are the listing
        layer, index = indexes[0]
        names = tuple(index.entries)
        return Listing(directory.path, names, tuple(index.entries.values()), (layer,) * len(names), frozenset(index.links))
    if not any(index.whiteouts for _layer, index in indexes):
        return _union_listing(directory.path, indexes)
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


def _union_listing(path: str, indexes: List[Tuple[Layer, DirIndex]]) -> Listing:
    """:func:`merge_listing` where no layer has a whiteout: nothing hides a name then (whether
    a directory still merges, or is opaque, matters only to the whiteouts below it), so the
    listing is every name in the order the layers first list it, top-down, each won by the
    topmost layer that has it. Done with dict updates (C loops), not a Python step per name:
    an update keeps a key where it first came and takes the value given last."""
    order: Dict[str, bool] = {}
    for _layer, index in indexes:  # the names, in first-listed order
        order.update(index.entries)
    tops: Dict[str, Layer] = {}
    if len(order) == sum(len(index.entries) for _layer, index in indexes):
        # no name in two layers: each value above is its only layer's, and top-down updates
        # of the winners put each name where it first came, won by the layer that has it
        is_dirs = order
        for layer, index in indexes:
            tops.update(dict.fromkeys(index.entries, layer))
    else:
        is_dirs = dict(order)
        tops = dict.fromkeys(order, indexes[0][0])
        for layer, index in reversed(indexes):  # values: the topmost layer's
            is_dirs.update(index.entries)
            tops.update(dict.fromkeys(index.entries, layer))
    links: Set[str] = set()
    for layer, index in indexes:
        if index.links:
            links.update(name for name in index.links if tops[name] is layer)
    return Listing(path, tuple(order), tuple(is_dirs.values()), tuple(tops.values()), frozenset(links))


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
    #: a symbolic link (a non-directory: nothing below it is looked up)
    is_link: bool = attr.ib(default=False)


def _in_index(index: DirIndex, dir_path: str, name: str) -> Any:
    """One name (a plain component) in one directory (normalised) of one layer: a
    :class:`_Hit`, ``_MISSING`` or ``_STOP``."""
    is_dir = index.entries.get(name)
    if is_dir is None:
        return _STOP if name in index.whiteouts else _MISSING
    if is_dir:
        return _Hit(child_of(dir_path, name), True, name in index.opaque, index.redirects.get(name), False)
    if name in index.links:
        return _Hit(child_of(dir_path, name), False, False, None, False, is_link=True)
    if name in index.metacopy:
        return _Hit(child_of(dir_path, name), False, False, index.metacopy[name], True)
    return _Hit(child_of(dir_path, name), False, False, None, False)


def _lower_name(parent_origin: str, name: str, redirect: Optional[str]) -> str:
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
            # an opaque directory on the way stops a directory (ovl_lookup_single keeps d->stop),
            # not a metadata-only file, whose own lookup goes on to its data (d->stop = !metacopy)
            hit.stop = stop and hit.is_dir
            return hit, join(below, part)
        if not hit.is_dir:
            return _STOP, path
        stop = stop or hit.opaque
        below = _lower_name(below, part, hit.redirect)
        current = hit.path
    return _MISSING, path  # the root itself is never looked up this way


def resolve_redirected(parent: Node, name: str, all_layers: Sequence[Layer]) -> Optional[Node]:
    """Look ``name`` up in the directory ``parent`` by the kernel's rules, redirects and
    metadata-only files included (every layer's directory index read whole)."""
    return resolve_in(parent, layer_indexes(parent), name, child_of(parent.path, name), all_layers)


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
    parent_origin = parent.origin
    # where the layers below look the name up unless its own redirect says otherwise (the
    # kernel's d.name); the name's own path wherever no redirect above moved the parent
    below_name = path if parent_origin == parent.path else join(parent_origin, name)
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
        if found and (found[0].is_dir != hit.is_dir or hit.is_link):
            break  # a directory over a file (or a metacopy's data that is a directory or a link) ends it
        found.append(hit)
        layers.append(layer)
        if origin is None:
            # where the layers below the topmost entry look it up (the kernel's d.name)
            origin = _lower_name(parent_origin, name, hit.redirect) if layer.is_upper and hit.redirect else below_name
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
        paths=tuple(hit.path for hit in found),
        origin=origin or below_name,
        metacopy=not is_dir and found[0].metacopy,
        is_link=found[0].is_link,
    )


class Lookup:
    """Resolves paths of the merged view and caches the answers (bounded: :data:`NODE_LIMIT`
    nodes and :data:`LISTING_LIMIT` listed names, least recently used forgotten first)."""

    def __init__(self, layers: Sequence[Layer], node_limit: Optional[int] = None, listing_limit: Optional[int] = None) -> None:
        self.layers = tuple(layers)
        self.root = Node("/", True, self.layers, any(not layer.is_upper for layer in layers))
        #: a lower may hold redirects or metadata-only files (they never change while open)
        self._lower_redirects = any(layer.may_redirect for layer in self.layers if not layer.is_upper)
        self._upper = self.layers[0] if self.layers and self.layers[0].is_upper else None
        self._nodes: TreeCache[Optional[Node]] = TreeCache(node_limit or NODE_LIMIT)
        self._nodes.put("/", self.root)
        # merged listings by directory path; dropped with the directory's node or any child's
        self._listings: TreeCache[Listing] = TreeCache(listing_limit or LISTING_LIMIT, lambda listing: len(listing.names))

    @property
    def redirect_mode(self) -> bool:
        """Whether some layer may hold redirects or metadata-only files: lookups then follow
        them, reading each directory's index whole (the upper becomes such a layer with its
        first redirect or metacopy record, and its lookups that could see one are forgotten)."""
        return self._lower_redirects or (self._upper is not None and self._upper.may_redirect)

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
            child = unresolved[-1]
            cut = child.rfind("/")  # (parent_of, written out)
            parent_path = child[:cut] if cut > 0 else "/"
            if parent_path == "/":
                parent: object = self.root
                break
            parent = nodes.get(parent_path, _MISSING)
            if parent is not _MISSING:
                break
            unresolved.append(parent_path)
        node: Optional[Node] = parent  # type: ignore[assignment]
        redirects = self.redirect_mode
        while unresolved:
            if node is None or not node.is_dir:
                for current in unresolved:
                    nodes.put(current, None)
                return None
            if not redirects and len(unresolved) > 1 and node.complete and len(node.known_layers) == 1 and node.top.probes:
                # below a directory only one layer makes up, nothing merges, hides or adds: that
                # layer's answer for the whole path is the view's (one stat, not one per component;
                # one component goes through resolve_child, which uses the index if cached)
                return self._resolve_in_one(node.top, unresolved)
            current = unresolved.pop()
            name = current[current.rfind("/") + 1:]
            node = resolve_redirected(node, name, self.layers) if redirects else resolve_child(node, name)
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

    def resolve(self, path: str, display: str, follow: bool = True, create: bool = False) -> Tuple[Optional[Node], Optional[str]]:
        """The node at ``path`` with the symbolic links on the way followed (the last component's
        too if ``follow``, as ``stat`` does; else as ``lstat``), and the path it stands at. For a
        path that does not resolve, the node is ``None`` and the path is where a new entry
        would be made (through a dangling link, its target), ``None`` if nowhere; a path ending
        in ``/`` where a link's target ending in ``/`` leads to no directory (only a directory
        may be there: a file may not be made, as ``open(O_CREAT)`` answers EISDIR).

        A link is followed as a process inside the overlay follows it, as in a chroot or an
        OCI rootfs: a relative target from the link's directory, an absolute one from the
        overlay's root, component by component (``..`` after a link is the parent of where
        the link led), ``..`` at the root stays there: never outside the overlay. More than
        :data:`MAX_LINK_HOPS` links raise :class:`unionfs.errors.LinkLoop` naming ``display``.

        ``create``: the path is opened with O_CREAT, where the kernel answers a last
        component with a trailing ``/`` (a followed link's ``x/``) with EISDIR before it looks
        it up (``open_last_lookups``): the answer is then ``None`` and ``x/``, whatever ``x``
        is (a loop too)."""
        node = self.node(path)
        if node is not None and not (follow and node.is_link):
            return node, path  # no link on the way: lookup stops at any non-directory
        if node is None and path != "/":
            parent = self._nodes.peek(parent_of(path))
            if parent is not None and parent.is_dir:
                # a cached directory was reached through directories only (a lookup descends
                # through nothing else), so no link is on the way: the walk below would end
                # here too, having asked every component again (a missing name: ENOENT)
                return None, path
        hops = 0
        current = "/"
        pending = deque(part for part in path.split("/") if part)
        while pending:
            part = pending.popleft()
            if part == _DIR_NEEDED:
                if pending:
                    continue  # what comes next needs a directory anyway
                node = self.node(current)
                if node is None or not node.is_dir:
                    # a target ending in "/" names a directory: ENOENT or ENOTDIR, EISDIR for
                    # O_CREAT, as path resolution answers (callers see the trailing "/")
                    return None, current.rstrip("/") + "/"
                continue
            if part in ("", "."):
                continue
            if part == "..":
                current = dirname(current)
                continue
            candidate = child_of(current, part)
            if create and follow and pending and pending[-1] == _DIR_NEEDED and all(piece == "" for piece in list(pending)[:-1]):
                return None, candidate + "/"
            node = self.node(candidate)
            if node is None or (pending and not node.is_dir and not node.is_link):
                # missing here, or a file in the middle (ENOTDIR): the rest goes nowhere; where
                # only a link target's final "/" is left, the path keeps it (see above)
                rest = [piece for piece in pending if piece not in ("", ".", _DIR_NEEDED)]
                tail = "/" if not rest and _DIR_NEEDED in pending else ""
                return None, candidate + "".join("/" + piece for piece in rest) + tail  # its parent is missing
            if node.is_link and (pending or follow):
                hops += 1
                if hops > MAX_LINK_HOPS:
                    raise LinkLoop(display)
                target = node.top.readlink(node.top_path)
                if not target:
                    return None, None  # an empty target: ENOENT, and nothing can be made there
                if target.startswith("/"):
                    current = "/"
                if target.endswith("/") and target.strip("/"):
                    pending.appendleft(_DIR_NEEDED)
                pending.extendleft(reversed(target.split("/")))
                continue
            current = candidate
        return self.node(current), current

    def listing(self, directory: Node) -> Listing:
        """The visible entries of the merged ``directory``, cached until one of them changes."""
        listing = self._listings.get(directory.path)
        if listing is not None:
            return listing  # type: ignore[return-value]
        listing = self._merge_redirected(directory) if self.redirect_mode else merge_listing(directory)
        if directory is self.root or self._nodes.peek(directory.path) is directory:  # never cache a stale node's
            self._listings.put(directory.path, listing)
        return listing

    def _merge_redirected(self, directory: Node) -> Listing:
        """The merged listing where redirects may be followed: every name of the layers'
        indexes (each at the directory's path in that layer) resolved by :func:`resolve_in`."""
        indexes = layer_indexes(directory)
        prefix = directory.path if directory.path == "/" else directory.path + "/"
        names: List[str] = []
        is_dirs: List[bool] = []
        tops: List[Layer] = []
        links: Set[str] = set()
        for name in all_names(indexes):
            path = prefix + name
            child = self._nodes.get(path, _MISSING)
            if child is _MISSING:  # resolved here: the parent and its indexes are in hand
                child = resolve_in(directory, indexes, name, path, self.layers)
                self._nodes.put(path, child)
            if child is not None:
                names.append(name)
                is_dirs.append(child.is_dir)  # type: ignore[union-attr]
                tops.append(child.top)  # type: ignore[union-attr]
                if child.is_link:  # type: ignore[union-attr]
                    links.add(name)
        return Listing(directory.path, tuple(names), tuple(is_dirs), tuple(tops), frozenset(links))

    def sole_index(self, directory: Node) -> Optional[DirIndex]:
        """The index of ``directory`` where one layer makes it up alone and no redirect can
        change what it lists: its entries, in order, are the merged listing, which need not be
        made (nor cached) to be read. ``None`` where the listing must be merged."""
        if self.redirect_mode or not directory.complete or len(directory.known_layers) != 1:
            return None
        return directory.known_layers[0].dir(directory.path)

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
            paths = ((path,) + old.paths) if old.paths else ()
            self._nodes.put(path, Node(path, True, (upper,) + old.layers, True, paths=paths, origin=old._origin))

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
