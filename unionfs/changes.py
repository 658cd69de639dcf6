"""What an overlay's upper changes, and what to do with it: the change set, commit, discard.

The change set is read from the upper and its sidecar alone: the upper's directory
tree is walked, and each entry found there is looked up (never walked) in a stack of
the lowers only, to tell an addition from a modification. Files of equal size are
compared by streaming both, so "modified" means the bytes differ and "metadata"
means only times, permissions or ownership do.

:func:`upper_entries` is the raw form both exports (OCI layer, kernel upperdir) write:
every entry and record of the upper in a fixed, reproducible order.

``commit`` writes either the merged view or only the change set into another FS,
file by file and chunk by chunk, reporting progress; ``discard`` empties the upper
so the overlay shows the pristine lowers again.
"""

from __future__ import annotations

import io
import os
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple, Union

import attr

from . import _fsimport  # noqa: F401
from fs import errors
from fs.base import FS
from fs.enums import ResourceType
from fs.info import Info
from fs.path import dirname, join

from .core.nofollow import is_link, link_on_path, remove_entry
from .core.identity import identity, overlaps, relation, same
from .core.walk import preorder
from .core.inode import COPIED_NAMESPACES, apply_metadata, copyable_metadata
from .core.stack import Layer
from .core.lookup import Lookup, Node
from .core.readdir import visible_children
from .core.sidecar import RESERVED_NAME, STAGING_DIR, TREE_DIR

ADDED = "added"
MODIFIED = "modified"
METADATA = "metadata"
DELETED = "deleted"
OPAQUE = "opaque"
KINDS = (ADDED, MODIFIED, METADATA, DELETED, OPAQUE)

_CHUNK = 1024 * 1024
#: the metadata that counts for "metadata-only" (directory times change with every child, so not those)
_FILE_FIELDS = (("details", "modified"), ("access", "permissions"), ("access", "uid"), ("access", "gid"))
_DIR_FIELDS = (("access", "permissions"), ("access", "uid"), ("access", "gid"))


@attr.s(frozen=True, slots=True)
class Change:
    """One path the upper changes: ``kind`` is one of :data:`KINDS`."""

    path: str = attr.ib()
    kind: str = attr.ib()
    is_dir: bool = attr.ib()


@attr.s(frozen=True, slots=True)
class ChangeSet:
    """The changes of an upper relative to its lowers, parents before children.

    ``added``: new in the upper; ``modified``: content or type differs from the lowers;
    ``metadata``: same content, other times/permissions/owner; ``deleted``: whited out;
    ``opaque``: a directory whose lower contents are all hidden (its upper entries are
    then listed as added)."""

    changes: Tuple[Change, ...] = attr.ib(converter=tuple)

    def paths(self, kind: str) -> Tuple[str, ...]:
        return tuple(change.path for change in self.changes if change.kind == kind)

    added = property(lambda self: self.paths(ADDED))
    modified = property(lambda self: self.paths(MODIFIED))
    metadata = property(lambda self: self.paths(METADATA))
    deleted = property(lambda self: self.paths(DELETED))
    opaque = property(lambda self: self.paths(OPAQUE))

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    def as_dict(self) -> Dict[str, List[str]]:
        """``{kind: [paths]}`` for every kind, for printing and comparing."""
        return {kind: list(self.paths(kind)) for kind in KINDS}


@attr.s(frozen=True, slots=True)
class Progress:
    """Where a commit is: reported after each chunk and each entry."""

    path: str = attr.ib()
    files_done: int = attr.ib()
    files_total: int = attr.ib()
    bytes_done: int = attr.ib()
    bytes_total: int = attr.ib()


ProgressCallback = Callable[[Progress], None]


# -- the change set ---------------------------------------------------------------------------------


def compute(upper: Layer, lowers: Sequence[Layer]) -> ChangeSet:
    """The change set of ``upper`` over ``lowers`` (topmost first)."""
    lower_view = Lookup(list(lowers))
    top = _Step(None, _changes_in(upper, lower_view, "/", True))
    steps = preorder(top, lambda step: step.below or ())
    found: Tuple[Change, ...] = tuple(step.change for step in steps if step.change is not None)
    return ChangeSet(found)  # type: ignore[arg-type]  # (mypy reads the converter=tuple generically)


@attr.s(slots=True)
class _Step:
    """One entry of the upper's walk: its change (if any) and, for a directory, what lies below."""

    change: Optional[Change] = attr.ib()
    below: Optional[Iterator["_Step"]] = attr.ib(default=None)


def _changes_in(upper: Layer, lower_view: Lookup, directory: str, lowers_visible: bool) -> Iterator[_Step]:
    index = upper.dir(directory)
    if index is None:
        return
    entries = dict(index.entries)
    if directory == "/":
        entries.pop(RESERVED_NAME, None)
    for name in sorted(set(entries) | index.whiteouts):
        path = join(directory, name)
        lower = lower_view.node(path) if lowers_visible else None
        if name not in entries:
            if lower is not None:
                yield _Step(Change(path, DELETED, lower.is_dir))
            continue
        is_dir = entries[name]
        kind = _compare(upper, path, is_dir, lower, opaque=name in index.opaque)
        below = None
        if is_dir:
            # a generator: read only when the walk reaches it, after this entry is taken
            below = _changes_in(upper, lower_view, path, lower is not None and lower.is_dir and kind != OPAQUE)
        yield _Step(Change(path, kind, is_dir) if kind is not None else None, below)


def _compare(upper: Layer, path: str, is_dir: bool, lower: Optional[Node], opaque: bool) -> Optional[str]:
    if lower is None:
        return ADDED
    if lower.is_dir != is_dir:
        return MODIFIED
    if is_dir:
        if opaque:
            return OPAQUE
        return METADATA if _metadata_differs(upper.fs, lower.top.fs, path, _DIR_FIELDS) else None
    if not _same_bytes(upper.fs, lower.top.fs, path):
        return MODIFIED
    return METADATA if _metadata_differs(upper.fs, lower.top.fs, path, _FILE_FIELDS) else None


def _metadata_differs(upper_fs: FS, lower_fs: FS, path: str, fields: Sequence[Tuple[str, str]]) -> bool:
    """Whether a field both layers report differs (a field one side cannot hold is not a change)."""
    mine = upper_fs.getinfo(path, COPIED_NAMESPACES).raw
    theirs = lower_fs.getinfo(path, COPIED_NAMESPACES).raw
    for namespace, key in fields:
        a = (mine.get(namespace) or {}).get(key)
        b = (theirs.get(namespace) or {}).get(key)
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


def _same_bytes(upper_fs: FS, lower_fs: FS, path: str) -> bool:
    if upper_fs.getinfo(path, ["details"]).size != lower_fs.getinfo(path, ["details"]).size:
        return False
    with upper_fs.openbin(path) as mine, lower_fs.openbin(path) as theirs:
        while True:
            a, b = mine.read(_CHUNK), theirs.read(_CHUNK)
            if a != b:
                return False
            if not a:
                return True


# -- commit -------------------------------------------------------------------------------------------


class _Reporter:
    """Counts what a commit has written and tells the callback."""

    def __init__(self, callback: Optional[ProgressCallback], files_total: int, bytes_total: int) -> None:
        self.callback = callback
        self.files_total, self.bytes_total = files_total, bytes_total
        self.files_done = self.bytes_done = 0

    def report(self, path: str) -> None:
        if self.callback is not None:
            self.callback(Progress(path, self.files_done, self.files_total, self.bytes_done, self.bytes_total))


class _CountingReader(io.RawIOBase):
    """A source file that reports every chunk read from it."""

    def __init__(self, source: BinaryIO, path: str, reporter: _Reporter) -> None:
        super().__init__()
        self._source, self._path, self._reporter = source, path, reporter

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(_CHUNK if size is None or size < 0 else size)
        self._reporter.bytes_done += len(data)
        self._reporter.report(self._path)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Target:
    """The commit target, written without ever following a link out of it (an on-disk target
    may hold links to anywhere): a link where the view has an entry, or a directory on the
    way to one, is replaced like any entry of another type, never written through; a link
    on the way to a path being deleted means nothing of the target is there."""

    def __init__(self, target_fs: FS) -> None:
        self.fs = target_fs
        self._real: Set[str] = set()  # directories of the target known not to be links

    def make_way(self, path: str) -> None:
        """Replace every link at ``path`` or on the way there."""
        while True:
            link = link_on_path(self.fs, path, self._real)
            if link is None:
                return
            remove_entry(self.fs, link)

    def holds(self, path: str) -> bool:
        """Whether the target has an entry at ``path`` itself, reached without any link."""
        parent = dirname(path)
        if link_on_path(self.fs, parent, self._real) is not None:
            return False
        return self.fs.exists(path) or is_link(self.fs, path)

    def remove(self, path: str) -> None:
        remove_entry(self.fs, path)
        prefix = path.rstrip("/") + "/"
        self._real = {known for known in self._real if known != path and not known.startswith(prefix)}


def _copy_entry(view: FS, target: _Target, path: str, is_dir: bool, reporter: _Reporter) -> None:
    """Put the view's ``path`` (a directory alone, or a file streamed) into ``target``, replacing
    an entry of the other type there (or a link), and give it the view's metadata."""
    target.make_way(path)
    if target.fs.exists(path) and target.fs.isdir(path) != is_dir:
        target.remove(path)
    if is_dir:
        _make_dir(target.fs, path)
    else:
        _make_dir(target.fs, dirname(path))
        with view.openbin(path) as source:
            target.fs.upload(path, _CountingReader(source, path, reporter), chunk_size=_CHUNK)
        reporter.files_done += 1
    apply_metadata(target.fs, path, copyable_metadata(view.getinfo(path, COPIED_NAMESPACES)))
    reporter.report(path)


def _make_dir(target: FS, path: str) -> None:
    """Make the directory ``path`` of the target; its parent usually exists already (entries
    come parents first), and one ``makedir`` is cheaper than ``makedirs`` on a deep path."""
    try:
        target.makedir(path, recreate=True)
    except errors.ResourceNotFound:
        target.makedirs(path, recreate=True)


def _walk_view(view: FS) -> List[Tuple[str, bool, int]]:
    """Every entry of ``view`` as (path, is_dir, size), parents first."""
    found: List[Tuple[str, bool, int]] = []
    pending = ["/"]
    while pending:
        directory = pending.pop()
        for info in sorted(view.scandir(directory, ["details"]), key=lambda item: item.name):
            path = join(directory, info.name)
            found.append((path, info.is_dir, 0 if info.is_dir else info.size))
            if info.is_dir:
                pending.append(path)
    return found


def commit_merged(view: FS, target: FS, progress: Optional[ProgressCallback], layers: Sequence[Layer] = ()) -> None:
    """Copy every entry of the merged ``view`` into ``target`` (replacing same-named entries):
    the directories parents first, then the files in the order their layers store them."""
    entries = _walk_view(view)
    reporter = _Reporter(progress, sum(1 for e in entries if not e[1]), sum(e[2] for e in entries))
    files = [entry for entry in entries if not entry[1]]
    key = read_order(layers)
    if key is not None:
        files.sort(key=lambda entry: key(entry[0]))  # type: ignore[misc]
    safe = _Target(target)
    for path, is_dir, _size in [entry for entry in entries if entry[1]] + files:
        _copy_entry(view, safe, path, is_dir, reporter)


def read_order(layers: Sequence[Layer]) -> Optional[Callable[[str], Tuple[int, int]]]:
    """A sort key that reads files layer by layer, each layer's in the order it stores them
    (an archive's members in archive order: one pass, no decompression restart); ``None``
    when no layer has an order of its own (any order is as good)."""
    if not any(callable(getattr(layer.fs, "read_order", None)) for layer in layers):
        return None
    lookup = Lookup(layers)
    position = {id(layer): number for number, layer in enumerate(layers)}

    def key(path: str) -> Tuple[int, int]:
        node = lookup.node(path)
        if node is None:  # pragma: no cover - the view changed under us
            return (len(layers), 0)
        in_layer = getattr(node.top.fs, "read_order", None)
        return (position[id(node.top)], in_layer(path) if callable(in_layer) else 0)

    return key


def apply_changes(view: FS, changes: ChangeSet, target: FS, progress: Optional[ProgressCallback]) -> None:
    """Make ``target`` (a copy of the lowers' view) into the merged view by applying ``changes``."""
    copied = [c for c in changes if c.kind in (ADDED, MODIFIED) and not c.is_dir]
    sizes = {c.path: view.getinfo(c.path, ["details"]).size for c in copied}
    reporter = _Reporter(progress, len(copied), sum(sizes.values()))
    safe = _Target(target)
    for change in changes:
        path = change.path
        if change.kind == DELETED:
            if safe.holds(path):
                safe.remove(path)
            reporter.report(path)
        elif change.kind == OPAQUE:
            _copy_entry(view, safe, path, True, reporter)
            for name in target.listdir(path):
                safe.remove(join(path, name))
        elif change.kind == METADATA and safe.holds(path) and not is_link(target, path):
            apply_metadata(target, path, copyable_metadata(view.getinfo(path, COPIED_NAMESPACES)))
            reporter.report(path)
        else:
            _copy_entry(view, safe, path, change.is_dir, reporter)


# -- discard -------------------------------------------------------------------------------------------


def empty_upper(upper_fs: FS) -> None:
    """Remove every entry of the upper and every sidecar record, keeping an empty sidecar."""
    for info in list(upper_fs.scandir("/")):
        if info.name == RESERVED_NAME:
            continue
        remove_entry(upper_fs, "/" + info.name)  # a link goes itself: never what it points to
    for folder in (TREE_DIR, STAGING_DIR):
        # emptied, not removed and made again: a crash in between must not lose the folder
        upper_fs.makedir(folder, recreate=True)
        for name in upper_fs.listdir(folder):
            remove_entry(upper_fs, join(folder, name))


def open_target(target: Union[FS, str]) -> Tuple[FS, bool]:
    """The commit target as an FS, and whether we opened it (and so must close it)."""
    if isinstance(target, FS):
        return target, False
    import fs as _fs
    from fs.opener.errors import OpenerError

    try:
        return _fs.open_fs(target, writeable=True, create=True), True
    except (errors.FSError, OpenerError) as error:
        raise errors.CreateFailed(msg="cannot open commit target %r: %s" % (target, error)) from error


def _target_position(target: Union[FS, str], upper: Layer, lowers: Sequence[Layer]) -> Optional[int]:
    """Which lower the commit target is (``None``: none). A target that is the upper, or that
    contains or lies inside the upper or a lower, is refused: writing it would change a layer.
    A URL is identified before it is opened: opening ``zip://`` for writing rewrites the file
    when closed, so a refused target must never be opened."""
    target_id = identity(target)
    if target_id is None:
        return None  # storage unknown until opened: the caller identifies the opened FS
    upper_id = identity(upper.fs)
    assert upper_id is not None
    if overlaps(target_id, upper_id):
        raise errors.OperationFailed(
            msg="cannot commit into %r: it %s this overlay's own upper (%s)"
            % (target, relation(target_id, upper_id), upper_id.describe())
        )
    for position, layer in enumerate(lowers):
        lower_id = identity(layer.fs)
        if lower_id is None or not overlaps(target_id, lower_id):
            continue
        if not same(target_id, lower_id):
            raise errors.OperationFailed(
                msg="cannot commit into %r: it %s %s of this overlay (%s), which would change that lower"
                % (target, relation(target_id, lower_id), layer.label, lower_id.describe())
            )
        if lower_id.archive:
            raise errors.OperationFailed(
                msg="cannot commit into %r: it is %s of this overlay, an archive, which cannot be rewritten "
                "in place; commit into a new archive and replace the old one with it" % (target, layer.label)
            )
        return position
    return None


def commit(
    view: FS,
    upper: Layer,
    lowers: Sequence[Layer],
    target: Union[FS, str],
    only_changes: bool,
    into_lower: bool,
    progress: Optional[ProgressCallback],
) -> Tuple[ChangeSet, bool]:
    """Write ``view`` (or only its changes) into ``target``; return the change set and whether
    the target was the topmost lower (the caller must then discard the upper)."""
    position = _target_position(target, upper, lowers)
    if position is not None:
        change_set = compute(upper, lowers)
        _check_into_lower(change_set, lowers, position, into_lower)
    target_fs, opened = open_target(target)
    try:
        if isinstance(target, str):
            position = _target_position(target_fs, upper, lowers)  # as opened: mem://, s3://...
        change_set = compute(upper, lowers)
        if position is not None:
            _check_into_lower(change_set, lowers, position, into_lower)
            apply_changes(view, change_set, target_fs, progress)
        elif only_changes:
            apply_changes(view, change_set, target_fs, progress)
        else:
            commit_merged(view, target_fs, progress, [upper] + list(lowers))
        return change_set, position is not None
    finally:
        if opened:
            target_fs.close()


def _check_into_lower(change_set: ChangeSet, lowers: Sequence[Layer], position: int, into_lower: bool) -> None:
    """Committing into a lower rewrites it in place: only on request, only the topmost, and
    only where plain files can express the result (no whiteout of a deeper lower's entry)."""
    label = lowers[position].label
    if not into_lower:
        raise errors.OperationFailed(
            msg="the commit target is %s of this overlay; ask for it explicitly to rewrite it "
            "(into_lower=True; --into-lower on the command line)" % label
        )
    if position != 0:
        raise errors.OperationFailed(msg="cannot commit into %s: only the topmost lower can take the changes" % label)
    deeper = Lookup(list(lowers[1:])) if len(lowers) > 1 else None
    if deeper is None:
        return
    for change in change_set:
        if change.kind in (DELETED, OPAQUE) and deeper.node(change.path) is not None:
            raise errors.OperationFailed(
                msg="cannot commit into %s: %r is %s but a deeper lower still has it" % (label, change.path, change.kind)
            )


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
        raise errors.Unsupported(entry.path, msg="cannot export %s: a %s, not a file" % (entry.path, ResourceType(kind).name))
    return None


def upper_entries(upper: Layer) -> Iterator[UpperEntry]:
    """Every entry and marker of ``upper`` (the sidecar excluded), in export order."""
    top = UpperEntry("/", "dir")
    return preorder(top, lambda entry: _entries_in(upper, entry.path) if entry.kind == "dir" else ())


def _entries_in(upper: Layer, path: str) -> Iterator[UpperEntry]:
    index = upper.dir(path)
    if index is None:
        return
    for name in sorted(index.whiteouts - set(index.entries)):
        yield UpperEntry(join(path, name), "whiteout")
    for name in sorted(index.entries):
        child = join(path, name)
        info = upper.fs.getinfo(child, EXPORT_NAMESPACES)
        if index.entries[name]:
            yield UpperEntry(child, "dir", info, opaque=name in index.opaque)
        else:
            yield UpperEntry(child, "file", info)


def lower_names(lowers: Lookup, path: str) -> List[str]:
    """The names a view of the lowers alone shows in the directory ``path`` (none if it is not one)."""
    lookup = lowers
    node = lookup.node(path)
    if node is None or not node.is_dir:
        return []
    return sorted(child.path.rsplit("/", 1)[1] for child in visible_children(lookup, node))
