"""What an overlay's upper changes: the change set, and the raw upper in export order.

The change set is read from the upper and its sidecar alone: the upper's directory
tree is walked, and each entry found there is looked up (never walked) in a stack of
the lowers only, to tell an addition from a modification. Files of equal size are
compared by streaming both, so "modified" means the bytes differ and "metadata"
means only times, permissions or ownership do.

:func:`upper_entries` is the raw form both exports (OCI layer, kernel upperdir) write:
every entry and record of the upper in a fixed, reproducible order. Writing a view or a
change set into another FS is :mod:`unionfs.commit`.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, cast

import attr

from . import _fsimport  # noqa: F401
from fs import errors
from fs.base import FS
from fs.enums import ResourceType
from fs.info import Info
from fs.path import join

from .errors import literal
from .io import CHUNK
from .core.identity import same
from .core.nofollow import syspath
from .core.inode import COPIED_NAMESPACES, first_name
from .core.stack import Layer
from .core.lookup import Lookup, Node
from .core.readdir import visible_children
from .core.walk import layer_tree

ADDED = "added"
MODIFIED = "modified"
METADATA = "metadata"
DELETED = "deleted"
OPAQUE = "opaque"
RENAMED = "renamed"
KINDS = (ADDED, MODIFIED, METADATA, DELETED, OPAQUE, RENAMED)

#: the metadata that counts for "metadata-only" (directory times change with every child, so not those)
_FILE_FIELDS = (("details", "modified"), ("access", "permissions"), ("access", "uid"), ("access", "gid"))
_DIR_FIELDS = (("access", "permissions"), ("access", "uid"), ("access", "gid"))


@attr.s(frozen=True, slots=True)
class Change:
    """One path the upper changes: ``kind`` is one of :data:`KINDS`."""

    path: str = attr.ib()
    kind: str = attr.ib()
    is_dir: bool = attr.ib()
    #: for ``renamed``: the path the entry came from (where the lowers hold its contents)
    source: Optional[str] = attr.ib(default=None)


@attr.s(frozen=True, slots=True)
class ChangeSet:
    """The changes of an upper relative to its lowers, parents before children.

    ``added``: new in the upper; ``modified``: content or type differs from the lowers;
    ``metadata``: same content, other times/permissions/owner; ``deleted``: whited out;
    ``opaque``: a directory whose lower contents are all hidden (its upper entries are
    then listed as added); ``renamed``: a directory moved through the overlay by a redirect,
    or a metadata-only file moved, with its ``source`` (the old name is ``deleted`` if a lower
    has it; the entries inside are compared with the source's)."""

    changes: Tuple[Change, ...] = attr.ib(converter=lambda changes: tuple(changes))  # type: ignore[misc]

    def paths(self, kind: str) -> Tuple[str, ...]:
        return tuple(change.path for change in self.changes if change.kind == kind)

    added = property(lambda self: self.paths(ADDED))
    modified = property(lambda self: self.paths(MODIFIED))
    metadata = property(lambda self: self.paths(METADATA))
    deleted = property(lambda self: self.paths(DELETED))
    opaque = property(lambda self: self.paths(OPAQUE))
    renamed = property(lambda self: self.paths(RENAMED))

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    def as_dict(self) -> Dict[str, List[str]]:
        """``{kind: [paths]}`` for every kind, for printing and comparing."""
        return {kind: list(self.paths(kind)) for kind in KINDS}




# -- the change set ---------------------------------------------------------------------------------


def compute(upper: Layer, lowers: Sequence[Layer]) -> ChangeSet:
    """The change set of ``upper`` over ``lowers`` (topmost first)."""
    lower_view = Lookup(list(lowers))
    #: directory -> where the lowers hold its contents (its own path, unless it or an ancestor
    #: was renamed by a redirect) and whether they show through it (decided when its entry is
    #: compared); the context of the names inside it
    below: Dict[str, Tuple[str, bool]] = {}
    found: List[Change] = []
    for entry in layer_tree(upper, order="names", descend=lambda entry: below.pop(entry.path), context=("/", True)):
        origin, lowers_visible = cast(Tuple[str, bool], entry.context)
        index, name = entry.parent, entry.name
        moved = None if entry.is_dir is None else (index.redirects if entry.is_dir else index.metacopy).get(name)
        source = moved if moved is not None else join(origin, name)
        lower = lower_view.node(source) if lowers_visible or moved is not None else None
        if entry.is_dir is None:
            if lower is not None:
                found.append(Change(entry.path, DELETED, lower.is_dir))
            continue
        kind: Optional[str]
        if moved is not None and moved != entry.path and lower is not None and lower.is_dir == entry.is_dir:
            kind = RENAMED
        elif entry.is_link or (lower is not None and lower.is_link):
            kind = _compare_links(upper, entry.path, entry.is_link, lower)
        else:
            kind = _compare(upper, entry.path, entry.is_dir, lower, opaque=entry.opaque, metacopy=name in index.metacopy)
        if kind is not None:
            found.append(Change(entry.path, kind, entry.is_dir, source if kind == RENAMED else None))
        if entry.is_dir:
            below[entry.path] = (source, lower is not None and lower.is_dir and kind != OPAQUE)
    return ChangeSet(found)


def _compare_links(upper: Layer, path: str, upper_is_link: bool, lower: Optional[Node]) -> Optional[str]:
    """A symbolic link on either side: the same only if both are links to the same target
    (a link's times and owner do not count: the kernel's readlink and stat of what it
    points to are what a reader sees)."""
    if lower is None:
        return ADDED
    if not (upper_is_link and lower.is_link):
        return MODIFIED
    return None if upper.readlink(path) == lower.top.readlink(lower.top_path) else MODIFIED


def _compare(upper: Layer, path: str, is_dir: bool, lower: Optional[Node], opaque: bool, metacopy: bool = False) -> Optional[str]:
    if lower is None:
        return ADDED
    if lower.is_dir != is_dir:
        return MODIFIED
    if is_dir:
        if opaque:
            return OPAQUE
        return METADATA if _metadata_differs(upper.fs, path, lower, _DIR_FIELDS) else None
    if not metacopy and not _same_bytes(upper.fs, path, lower):  # metadata only: the lower's bytes
        return MODIFIED
    return METADATA if _metadata_differs(upper.fs, path, lower, _FILE_FIELDS) else None


def _metadata_differs(upper_fs: FS, path: str, lower: Node, fields: Sequence[Tuple[str, str]]) -> bool:
    """Whether a field both layers report differs (a field one side cannot hold is not a change)."""
    mine = upper_fs.getinfo(path, COPIED_NAMESPACES).raw
    theirs = lower.top.fs.getinfo(lower.top_path, COPIED_NAMESPACES).raw
    for namespace, key in fields:
        a: Any = (mine.get(namespace) or {}).get(key)
        b: Any = (theirs.get(namespace) or {}).get(key)
        if a is None or b is None:
            continue
        if key == "modified":
            if int(a) != int(b):  # some filesystems keep whole seconds only
                return True
        elif key == "permissions":
            if sorted(a) != sorted(b):
                return True
        elif a != b:
            return True
    return False


#: entry types that hold no data to compare or copy (opening a FIFO blocks)
NO_DATA = frozenset((ResourceType.fifo, ResourceType.character, ResourceType.block_special_file, ResourceType.socket))


def _same_bytes(upper_fs: FS, path: str, lower: Node) -> bool:
    layer, data_path = lower.data
    upper_info, lower_info = upper_fs.getinfo(path, ["details"]), layer.fs.getinfo(data_path, ["details"])
    if NO_DATA.intersection((upper_info.type, lower_info.type)):
        return upper_info.type == lower_info.type  # a FIFO or device holds no bytes (and opening one blocks)
    if upper_info.size != lower_info.size:
        return False
    with upper_fs.openbin(path) as mine, layer.fs.openbin(data_path) as theirs:
        while True:
            a, b = mine.read(CHUNK), theirs.read(CHUNK)
            if a != b:
                return False
            if not a:
                return True


# -- the raw upper, in export order ----------------------------------------------------------------

#: the namespaces exports need of an upper entry
EXPORT_NAMESPACES = ("details", "access", "link")


@attr.s(frozen=True, slots=True)
class UpperEntry:
    """One entry of the upper as exports write it: a directory, a non-directory, or a whiteout."""

    path: str = attr.ib()
    kind: str = attr.ib()  # "dir", "file" (any non-directory) or "whiteout"
    info: Optional[Info] = attr.ib(default=None, eq=False)
    opaque: bool = attr.ib(default=False)  # a directory that hides its lower counterparts
    #: a directory renamed through the overlay: the absolute path its lower contents are at
    redirect: Optional[str] = attr.ib(default=None)
    #: a metadata-only file: the absolute path its data is at in the lowers
    metacopy: Optional[str] = attr.ib(default=None)
    #: an earlier entry of the export that is the same file (a hard link of an upper on disk)
    hardlink_of: Optional[str] = attr.ib(default=None)


def link_target(entry: UpperEntry) -> Optional[str]:
    """The target if the non-directory ``entry`` is a symlink, ``None`` for a regular file;
    other kinds (FIFOs, devices an other tool left in an upper directory) cannot be exported."""
    info = entry.info
    assert info is not None
    kind = info.get("details", "type", int(ResourceType.file))
    target = info.get("link", "target")
    if kind == int(ResourceType.symlink) or target:
        return str(target or "")
    if kind not in (int(ResourceType.file), int(ResourceType.unknown)):
        raise errors.Unsupported(entry.path, msg=literal("cannot export %s: a %s, not a file" % (entry.path, ResourceType(kind).name)))
    return None


def upper_entries(upper: Layer) -> Iterator[UpperEntry]:
    """Every entry and marker of ``upper`` (the sidecar excluded), in export order. A file the
    upper holds under several names (hard links, on disk) comes once as a file, then as
    ``hardlink_of`` that first name."""
    inodes: Dict[Tuple[int, int], str] = {}
    for entry in layer_tree(upper, order="export"):
        if entry.is_dir is None:
            yield UpperEntry(entry.path, "whiteout")
        elif entry.is_dir:
            info = upper.getinfo(entry.path, EXPORT_NAMESPACES)
            yield UpperEntry(entry.path, "dir", info, opaque=entry.opaque, redirect=entry.parent.redirects.get(entry.name))
        else:
            info = upper.getinfo(entry.path, EXPORT_NAMESPACES)
            metacopy = entry.parent.metacopy.get(entry.name)
            yield UpperEntry(entry.path, "file", info, metacopy=metacopy, hardlink_of=_first_name(upper, entry.path, inodes))


def _first_name(upper: Layer, path: str, inodes: Dict[Tuple[int, int], str]) -> Optional[str]:
    """The name an export already wrote for the same file as ``path`` (on disk, nlink > 1)."""
    sys_path = syspath(upper.fs, path)
    if sys_path is None:
        return None
    return first_name(inodes, os.lstat(sys_path), path)


def lower_names(lowers: Lookup, path: str) -> List[str]:
    """The names a view of the lowers alone shows in the directory ``path`` (none if it is not one)."""
    lookup = lowers
    node = lookup.node(path)
    if node is None or not node.is_dir:
        return []
    return sorted(child.path.rsplit("/", 1)[1] for child in visible_children(lookup, node))
