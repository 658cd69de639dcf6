"""The one tree walker: depth-first, parents before children, without recursion.

Every walk of unionfs goes through :func:`preorder`: the merged view (:func:`merged`,
for ``movedir``), any FS (:func:`fs_tree`, for commit and the CLI's tree), and one
layer's raw directory index (:func:`layer_tree`, the upper in export order; the change
set). It keeps an explicit stack of iterators, so a tree thousands of levels deep costs
memory, not Python's recursion limit, and it visits in exactly the order a recursive
walk would: an item, then everything below it, then its next sibling.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar

import attr

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs.base import FS
from fs.info import Info
from fs.path import join

from .lookup import Lookup, Node
from .readdir import visible_children
from .stack import DirIndex, Layer

T = TypeVar("T")


def preorder(top: T, children: Callable[[T], Iterable[T]]) -> Iterator[T]:
    """Every item below ``top`` (not ``top`` itself), each before its children, siblings in
    the order ``children`` gives them. ``children`` is called when the walk reaches an item,
    so it may decide from what it was given (a file has none)."""
    stack: List[Iterator[T]] = [iter(children(top))]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
            continue
        yield item  # type: ignore[misc]
        stack.append(iter(children(item)))  # type: ignore[arg-type]


_END: object = object()


# -- the merged view ----------------------------------------------------------------------------


def merged(lookup: Lookup, top: Node) -> Iterator[Node]:
    """Every node below the merged directory ``top``, parents before children."""
    return preorder(top, lambda node: visible_children(lookup, node) if node.is_dir else ())


# -- any filesystem ------------------------------------------------------------------------------


@attr.s(frozen=True, slots=True)
class Entry:
    """One entry of an FS walk: its path, its info, and where it sits in the tree."""

    path: str = attr.ib()
    info: Info = attr.ib(eq=False)
    depth: int = attr.ib(default=0)  # 0 for the children of the walk's top
    last: bool = attr.ib(default=False)  # the last of its siblings (in name order)
    #: for each ancestor below the top, whether it was the last of its siblings
    ancestors_last: Tuple[bool, ...] = attr.ib(default=())


def fs_tree(
    fs: FS, path: str = "/", namespaces: Optional[Sequence[str]] = None, skip: Callable[[str], bool] = lambda path: False
) -> Iterator[Entry]:
    """Every entry of ``fs`` below the directory ``path``, names sorted, parents first;
    entries for which ``skip(path)`` is true are left out with everything below them."""

    def children(entry: Optional[Entry]) -> Iterator[Entry]:
        if entry is not None and not entry.info.is_dir:
            return iter(())
        directory = path if entry is None else entry.path
        depth = 0 if entry is None else entry.depth + 1
        above = () if entry is None else entry.ancestors_last + (entry.last,)
        infos = sorted(fs.scandir(directory, namespaces), key=lambda info: info.name)
        infos = [info for info in infos if not skip(join(directory, info.name))]
        return (
            Entry(join(directory, info.name), info, depth, position == len(infos) - 1, above)
            for position, info in enumerate(infos)
        )

    return preorder(None, children)  # type: ignore[arg-type]


# -- one layer's raw index ------------------------------------------------------------------------


@attr.s(frozen=True, slots=True)
class RawEntry:
    """One name of a layer's directory index: an entry (``is_dir`` says which kind) or,
    with ``is_dir`` None, a whiteout record with no entry of the name."""

    path: str = attr.ib()
    name: str = attr.ib()
    is_dir: Optional[bool] = attr.ib()
    parent: DirIndex = attr.ib(eq=False, repr=False)  # the index the name was read from
    #: what the caller's ``descend`` decided for the directory holding it (see :func:`layer_tree`)
    context: object = attr.ib(default=None, eq=False)

    @property
    def is_whiteout(self) -> bool:
        return self.is_dir is None

    @property
    def opaque(self) -> bool:
        return self.name in self.parent.opaque

    @property
    def is_link(self) -> bool:
        """A symbolic link of the layer (a non-directory entry, never followed)."""
        return self.name in self.parent.links


def layer_tree(
    layer: Layer,
    path: str = "/",
    order: str = "export",
    descend: Callable[[RawEntry], object] = lambda entry: None,
    context: object = None,
) -> Iterator[RawEntry]:
    """Every name of ``layer``'s directory indexes below ``path`` (the sidecar excluded),
    parents before children. ``order="export"``: in each directory the whiteouts of names
    the layer has no entry for (sorted), then the entries (sorted), as both exports write
    them; ``order="names"``: entries and whiteouts together in name order, as the change set
    lists them. ``descend(entry)`` is called for each directory when the walk enters it;
    what it returns is the ``context`` of that directory's names (``context`` is the top's);
    returning :data:`SKIP` leaves the directory's contents out."""

    def names_of(directory: str, context: object) -> Iterator[RawEntry]:
        index = layer.dir(directory)
        if index is None:
            return
        entries = index.entries
        whiteouts = sorted(index.whiteouts - set(entries))
        if order == "export":
            names = [(name, None) for name in whiteouts] + [(name, entries[name]) for name in sorted(entries)]
        else:
            names = sorted([(name, None) for name in whiteouts] + list(entries.items()), key=lambda item: item[0])
        for name, is_dir in names:
            yield RawEntry(join(directory, name), name, is_dir, index, context)

    def children(entry: Optional[RawEntry]) -> Iterator[RawEntry]:
        if entry is None:
            return names_of(path, context)
        if not entry.is_dir:
            return iter(())
        below = descend(entry)
        return iter(()) if below is SKIP else names_of(entry.path, below)

    return preorder(None, children)  # type: ignore[arg-type]


#: what a ``descend`` callback of :func:`layer_tree` returns to leave a directory's contents out
SKIP: object = object()
