"""Commit: write an overlay's merged view, or only its change set, into another FS.

File by file and chunk by chunk, with progress; never following a link out of the target;
streaming without the overlay's lock (it is held while the change set and the list of
entries are taken). The one identity rule (:mod:`unionfs.core.identity`) decides whether a
target is a layer of the overlay: the upper, and a lower unless it is the topmost and
``into_lower`` asks for it, are refused before the target is opened.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO, Callable, ContextManager, List, Optional, Sequence, Set, Tuple, Union, cast

import attr

from . import _fsimport  # noqa: F401
from fs import errors
from fs.base import FS
from fs.path import dirname, join
from fs.wrapfs import WrapFS

from .errors import literal
from .io import CHUNK, PassThroughReader
from .core.identity import identity, overlaps, relation, same
from .core.nofollow import is_link, link_on_path, remove_entry, syspath
from .core.inode import COPIED_NAMESPACES, apply_link_metadata, apply_metadata, copyable_metadata
from .core.stack import Layer
from .core.lookup import Lookup
from .core.walk import fs_tree
from .changes import ADDED, DELETED, METADATA, MODIFIED, NO_DATA, OPAQUE, RENAMED, ChangeSet, compute


@attr.s(frozen=True, slots=True)
class Progress:
    """Where a commit is: reported after each chunk and each entry."""

    path: str = attr.ib()
    files_done: int = attr.ib()
    files_total: int = attr.ib()
    bytes_done: int = attr.ib()
    bytes_total: int = attr.ib()


ProgressCallback = Callable[[Progress], None]


class _Reporter:
    """Counts what a commit has written and tells the callback."""

    def __init__(self, callback: Optional[ProgressCallback], files_total: int, bytes_total: int) -> None:
        self.callback = callback
        self.files_total, self.bytes_total = files_total, bytes_total
        self.files_done = self.bytes_done = 0

    def read(self, path: str, data: bytes) -> None:
        """Another chunk of ``path`` was read."""
        self.bytes_done += len(data)
        self.report(path)

    def report(self, path: str) -> None:
        if self.callback is not None:
            self.callback(Progress(path, self.files_done, self.files_total, self.bytes_done, self.bytes_total))


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
        if link_on_path(self.fs, dirname(path), self._real) is not None:
            return False
        return self.fs.exists(path) or is_link(self.fs, path)

    def remove(self, path: str) -> None:
        remove_entry(self.fs, path)
        prefix = path.rstrip("/") + "/"
        self._real = {known for known in self._real if known != path and not known.startswith(prefix)}


def _copy_entry(view: FS, target: _Target, path: str, is_dir: bool, reporter: _Reporter) -> None:
    """Put the view's ``path`` (a directory alone, a symbolic link as a link, or a file
    streamed) into ``target``, replacing an entry of the other type there (or a link), and
    give it the view's metadata."""
    view_link = _is_view_link(view, path)
    target.make_way(path)  # a link of the target there, or on the way, goes first
    if target.fs.exists(path) and (target.fs.isdir(path) != is_dir or view_link):
        target.remove(path)
    if view_link:
        _write_link(view, target.fs, path)
        reporter.report(path)
        return
    if is_dir:
        _make_dir(target.fs, path)
    else:
        kind = view.getinfo(path, ["details"]).type
        if kind in NO_DATA:  # never opened: opening a FIFO blocks
            raise errors.Unsupported(path, msg=literal("cannot commit %s: a %s, not a file" % (path, kind.name)))
        _make_dir(target.fs, dirname(path))
        with view.openbin(path) as source:
            reader = cast(BinaryIO, PassThroughReader(source, lambda data: reporter.read(path, data)))
            target.fs.upload(path, reader, chunk_size=CHUNK)
        reporter.files_done += 1
    apply_metadata(target.fs, path, copyable_metadata(view.getinfo(path, COPIED_NAMESPACES)))
    reporter.report(path)


def _copy_tree(
    view: FS, target: _Target, path: str, is_dir: bool, reporter: _Reporter, inside: Sequence[Tuple[str, bool, int, bool]]
) -> None:
    """Put the view's ``path`` and, for a directory, everything ``inside`` it (its
    :func:`_walk_view`) into ``target``: a renamed tree's contents are in no other change."""
    _copy_entry(view, target, path, is_dir, reporter)
    for child, child_is_dir, _size, _is_link in inside:
        _copy_entry(view, target, child, child_is_dir, reporter)
def _is_view_link(view: FS, path: str) -> bool:
    islink = getattr(view, "islink", None)
    return bool(islink(path)) if islink is not None else False


def _write_link(view: FS, target: FS, path: str) -> None:
    """Make ``path`` in ``target`` the symbolic link the view has there (an OS directory only;
    :func:`check_links_fit` refused any other target before anything was written)."""
    sys_path = syspath(target, path)
    assert sys_path is not None
    _make_dir(target, dirname(path))
    os.symlink(view.readlink(path), sys_path)  # type: ignore[attr-defined]
    apply_link_metadata(sys_path, copyable_metadata(view.getinfo(path, COPIED_NAMESPACES)))


def check_links_fit(target: FS, links: Sequence[str]) -> None:
    """A commit of symbolic links into a filesystem that cannot hold them is refused up front,
    naming the first link: writing the file each points to instead would change the tree."""
    if links and syspath(target, "/") is None:
        raise errors.Unsupported(
            links[0],
            msg="cannot commit the symbolic link %r (and %d more) into %r: it cannot hold symbolic links; "
            "commit into an OS directory" % (links[0], len(links) - 1, target),
        )


def _make_dir(target: FS, path: str) -> None:
    """Make the directory ``path`` of the target; its parent usually exists already (entries
    come parents first), and one ``makedir`` is cheaper than ``makedirs`` on a deep path."""
    try:
        target.makedir(path, recreate=True)
    except errors.ResourceNotFound:
        target.makedirs(path, recreate=True)


def _walk_view(view: FS, top: str = "/") -> List[Tuple[str, bool, int, bool]]:
    """Every entry of ``view`` below ``top`` as (path, is_dir, size, is_link), parents first."""
    return [
        (entry.path, entry.info.is_dir, 0 if entry.info.is_dir or entry.info.is_link else entry.info.size, entry.info.is_link)
        for entry in fs_tree(view, top, ["details", "link"])
    ]


def commit_merged(
    view: FS,
    target: FS,
    progress: Optional[ProgressCallback],
    layers: Sequence[Layer] = (),
    entries: Optional[List[Tuple[str, bool, int, bool]]] = None,
) -> None:
    """Copy every entry of the merged ``view`` (or the ``entries`` taken from it before, see
    :func:`ordered_entries`) into ``target``, replacing same-named entries."""
    if entries is None:
        entries = ordered_entries(view, layers)
    check_links_fit(target, [e[0] for e in entries if e[3]])
    reporter = _Reporter(progress, sum(1 for e in entries if not e[1] and not e[3]), sum(e[2] for e in entries))
    safe = _Target(target)
    for path, is_dir, _size, _is_link in entries:
        _copy_entry(view, safe, path, is_dir, reporter)
    _settle_directory_times(view, target, [path for path, is_dir, _size, _is_link in entries if is_dir])


def _settle_directory_times(view: FS, target: FS, directories: Sequence[str]) -> None:
    """Give directories their metadata again, deepest first: writing their children changed
    their times after :func:`_copy_entry` set them."""
    for path in reversed(directories):
        apply_metadata(target, path, copyable_metadata(view.getinfo(path, COPIED_NAMESPACES)))


def ordered_entries(view: FS, layers: Sequence[Layer]) -> List[Tuple[str, bool, int, bool]]:
    """Every entry of ``view`` as (path, is_dir, size, is_link): the directories parents first, then the
    files in the order their layers store them (see :func:`read_order`)."""
    entries = _walk_view(view)
    files = [entry for entry in entries if not entry[1]]
    key = read_order(layers)
    if key is not None:
        files.sort(key=lambda entry: key(entry[0]))  # type: ignore[misc]
    return [entry for entry in entries if entry[1]] + files


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
        layer, data_path = node.data  # where the bytes are read from (a renamed file's origin)
        in_layer = getattr(layer.fs, "read_order", None)
        return (position[id(layer)], in_layer(data_path) if callable(in_layer) else 0)

    return key


def apply_changes(view: FS, changes: ChangeSet, target: FS, progress: Optional[ProgressCallback]) -> None:
    """Make ``target`` (a copy of the lowers' view) into the merged view by applying ``changes``."""
    # every file whose bytes will be written counts, a metadata-only change the target lacks
    # too (it is copied whole), so progress never passes 100%; links are written, not counted
    copied = [
        c for c in changes
        if not c.is_dir and (c.kind in (ADDED, MODIFIED) or (c.kind == METADATA and not target.exists(c.path)))
    ]
    # a renamed entry is written whole, with everything inside a renamed directory
    renamed = {c.path: _walk_view(view, c.path) if c.is_dir else [] for c in changes if c.kind == RENAMED}
    inside = [entry for entries in renamed.values() for entry in entries]
    copied += [c for c in changes if c.kind == RENAMED and not c.is_dir]
    links = [c.path for c in copied if _is_view_link(view, c.path)] + [e[0] for e in inside if e[3]]
    check_links_fit(target, links)
    linked = set(links)
    sizes = {c.path: view.getinfo(c.path, ["details"]).size for c in copied if c.path not in linked}
    sizes.update((path, size) for path, is_dir, size, is_link in inside if not is_dir and not is_link)
    reporter = _Reporter(progress, len(sizes), sum(sizes.values()))
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
        elif change.kind == RENAMED:
            _copy_tree(view, safe, path, change.is_dir, reporter, renamed[path])
        elif change.kind == METADATA and safe.holds(path) and not is_link(target, path) and not _is_view_link(view, path):
            apply_metadata(target, path, copyable_metadata(view.getinfo(path, COPIED_NAMESPACES)))
            reporter.report(path)
        else:
            _copy_entry(view, safe, path, change.is_dir, reporter)


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
            msg=literal(
                "cannot commit into %r: it %s this overlay's own upper (%s)"
                % (target, relation(target_id, upper_id), upper_id.describe())
            )
        )
    for position, layer in enumerate(lowers):
        lower_id = identity(layer.fs)
        if lower_id is None or not overlaps(target_id, lower_id):
            continue
        if not same(target_id, lower_id):
            raise errors.OperationFailed(
                msg=literal(
                    "cannot commit into %r: it %s %s of this overlay (%s), which would change that lower"
                    % (target, relation(target_id, lower_id), layer.label, lower_id.describe())
                )
            )
        if lower_id.archive:
            raise errors.OperationFailed(
                msg=literal(
                    "cannot commit into %r: it is %s of this overlay, an archive, which cannot be rewritten "
                    "in place; commit into a new archive and replace the old one with it" % (target, layer.label)
                )
            )
        return position
    return None


def open_target(target: Union[FS, str]) -> Tuple[FS, bool]:
    """The commit target as an FS, and whether we opened it (and so must close it)."""
    from .formats.resolve import open_target as resolve_target

    return resolve_target(target)


def commit(
    view: FS,
    upper: Layer,
    lowers: Sequence[Layer],
    target: Union[FS, str],
    only_changes: bool,
    into_lower: bool,
    progress: Optional[ProgressCallback],
    lock: ContextManager[Any],
    discard: Callable[[], None],
) -> ChangeSet:
    """Write ``view`` (or only its changes) into ``target``; return the change set.

    ``lock`` (the overlay's) is held while the change set and the list of entries are taken,
    not while file data streams: each file is opened through ``view``, which takes the lock
    to resolve and open it, and read without it, so one large commit does not stall every
    other thread. A target that is the topmost lower is rewritten under the lock from start
    to end, and then the upper is emptied (``discard``) before the lock is let go."""
    with lock:
        position = _target_position(target, upper, lowers)
        if position is not None:  # refused before the target is opened (see _target_position)
            _check_into_lower(compute(upper, lowers), lowers, position, into_lower)
    opened_fs, opened = open_target(target)
    # a zip being written cannot hold times before 1980: clamped, not a failed archive
    target_fs = _ZipTimes(opened_fs) if _is_zip_writer(opened_fs) else opened_fs
    try:
        with lock:
            if isinstance(target, str):
                position = _target_position(opened_fs, upper, lowers)  # as opened: mem://, s3://...
            change_set = compute(upper, lowers)
            if position is not None:
                _check_into_lower(change_set, lowers, position, into_lower)
                apply_changes(view, change_set, target_fs, progress)
                discard()
                return change_set
            entries = None if only_changes else ordered_entries(view, [upper] + list(lowers))
        if entries is None:
            apply_changes(view, change_set, target_fs, progress)
        else:
            commit_merged(view, target_fs, progress, entries=entries)
        return change_set
    finally:
        if opened:
            _close(opened_fs)


#: the earliest time a zip archive can hold (1980-01-01 00:00 UTC; its DOS date has no earlier)
ZIP_EPOCH = 315532800


def _is_zip_writer(target: FS) -> bool:
    from fs.zipfs import WriteZipFS

    return isinstance(getattr(target, "_wrap_fs", target), WriteZipFS) or isinstance(target, WriteZipFS)


class _ZipTimes(WrapFS):
    """A zip being written, whose times are clamped to :data:`ZIP_EPOCH`: a file of mtime 0 (what
    reproducible exports use) would otherwise fail the whole archive when it is closed."""

    def setinfo(self, path: str, info: Any) -> None:
        details = dict(info.get("details") or {})
        for key in ("modified", "accessed", "created"):
            if details.get(key) is not None and details[key] < ZIP_EPOCH:
                details[key] = ZIP_EPOCH
        super().setinfo(path, dict(info, details=details) if details else info)


def _close(target: FS) -> None:
    """Close a target we opened. If its close fails half-way (a zip that cannot be written), it
    is marked closed all the same, so ``FS.__del__`` does not try again and print a traceback."""
    try:
        target.close()
    except Exception:
        FS.close(target)
        inner = getattr(target, "_wrap_fs", None)
        if inner is not None:
            FS.close(inner)
        raise


def _check_into_lower(change_set: ChangeSet, lowers: Sequence[Layer], position: int, into_lower: bool) -> None:
    """Committing into a lower rewrites it in place: only on request, only the topmost, and
    only where plain files can express the result (no whiteout of a deeper lower's entry)."""
    label = lowers[position].label
    if not into_lower:
        raise errors.OperationFailed(
            msg=literal(
                "the commit target is %s of this overlay; ask for it explicitly to rewrite it "
                "(into_lower=True; --into-lower on the command line)" % label
            )
        )
    if position != 0:
        raise errors.OperationFailed(msg=literal("cannot commit into %s: only the topmost lower can take the changes" % label))
    deeper = Lookup(list(lowers[1:])) if len(lowers) > 1 else None
    if deeper is None:
        return
    for change in change_set:
        if change.kind in (DELETED, OPAQUE) and deeper.node(change.path) is not None:
            raise errors.OperationFailed(
                msg=literal("cannot commit into %s: %r is %s but a deeper lower still has it" % (label, change.path, change.kind))
            )


