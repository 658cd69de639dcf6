"""Directory operations (the kernel's ``dir.c``): create, remove, rename, hide, make opaque.

Each function assumes the caller (:class:`unionfs.OverlayFS`) validated the path,
holds the lock and checked the kernel's error conditions; it performs the change in
an order that keeps the view atomic. The rule that makes that possible: within one
layer an entry wins over a whiteout record of the same name, so a record is added
*before* the entry it replaces is removed, and removed *after* the entry that
replaces it exists. A crash between two steps shows the view before or after the
operation, never a mix; what such a crash leaves (a stale record, a staging file)
hides nothing and is cleaned by ``fsck``. The operations no ordering can make
atomic, ``movedir`` of a merged tree, ``removetree("/")`` and ``discard``, go through the intent
journal (:mod:`unionfs.core.journal`): they are rolled forward after a crash.
"""

from __future__ import annotations

from typing import Any, BinaryIO, Dict, List, Optional, Set, Tuple

from .. import _fsimport  # noqa: F401
from fs import errors
from fs.path import basename, dirname, join, relpath
from fs.permissions import Permissions

from . import journal, walk
from .inode import COPIED_NAMESPACES, apply_metadata, copyable_metadata, first_name
from .copy_up import METADATA, copy_up, copy_up_parents
from .lookup import Lookup, Node
from .readdir import visible_children
from .upper import Upper


def create_file(lookup: Lookup, upper: Upper, path: str, mode: str, buffering: int = -1, **options: Any) -> BinaryIO:
    """Open a new file at ``path`` (nothing is visible there); it replaces any whiteout."""
    copy_up_parents(lookup, upper, path)
    upper.remove_opaque(path)
    handle = upper.openbin(path, mode, buffering, **options)
    upper.remove_whiteout(path)
    upper.touch(dirname(path))
    return handle


def install_file(
    lookup: Lookup, upper: Upper, path: str, source: Optional[BinaryIO], metadata: Any = None, replaced: Optional[Node] = None
) -> None:
    """Atomically make ``path`` a file with the content of ``source``: staged, then renamed
    into place over whatever file or whiteout was there. ``replaced``: the file that was
    visible there, which the kernel would have opened ``O_TRUNC``: its directory keeps its
    times and, if it is a lower file (copied up by that open), its read handles follow."""
    copy_up_parents(lookup, upper, path)
    staged = upper.stage(source)
    if metadata:
        apply_metadata(upper.fs, staged, metadata)
    upper.remove_opaque(path)
    if replaced is not None:
        with upper.keeping_times(dirname(path)):
            upper.install(staged, path, copy_up=not replaced.in_upper)
    else:
        upper.install(staged, path)
    upper.remove_whiteout(path)
    if replaced is None:
        upper.touch(dirname(path))


def make_dir(lookup: Lookup, upper: Upper, path: str, permissions: Optional[Permissions] = None) -> None:
    """mkdir: over a whiteout of the upper the new directory is opaque, elsewhere it is not."""
    copy_up_parents(lookup, upper, path)
    if upper.has_whiteout(path):
        upper.add_opaque(path)
        upper.makedir(path, permissions)
        upper.remove_whiteout(path)
    else:
        upper.remove_opaque(path)
        upper.makedir(path, permissions)
    upper.touch(dirname(path))


def hide(lookup: Lookup, upper: Upper, node: Node) -> None:
    """Take ``node`` (a file or a whole tree) out of the view: a whiteout iff a lower has
    something there, then the upper's own copy and its records go. ``remove``, ``removedir``,
    ``removetree`` and ``hide`` of the API all end here."""
    copy_up_parents(lookup, upper, node.path)
    upper.readers.detach(node.path, subtree=node.is_dir)  # its read handles stay on what they read
    if node.lower_positive:
        upper.add_whiteout(node.path)
    if node.in_upper:
        if node.is_dir:
            upper.remove_dir(node.path)
        else:
            upper.remove_file(node.path)
    if node.is_dir:
        upper.drop_records_below(node.path)
        upper.remove_redirect(node.path)
    upper.remove_opaque(node.path)
    upper.touch(dirname(node.path))


def make_opaque(lookup: Lookup, upper: Upper, path: str) -> None:
    """Make the directory at ``path`` (creating it if need be) opaque in the upper."""
    node = lookup.node(path)
    if node is None:
        make_dir(lookup, upper, path)
        node = lookup.node(path)
        assert node is not None
    copy_up(lookup, upper, node)
    upper.readers.detach(path, subtree=True)  # the lower files below are hidden, never copied up
    if not upper.has_opaque(path):
        upper.add_opaque(path)
    upper.drop_hidden_records(path)


def make_link(lookup: Lookup, upper: Upper, path: str, target: str) -> None:
    """symlink(2) at ``path`` (nothing is visible there): it replaces any whiteout."""
    copy_up_parents(lookup, upper, path)
    upper.remove_opaque(path)
    upper.install_link(path, target)
    upper.remove_whiteout(path)
    upper.touch(dirname(path))


def make_node(lookup: Lookup, upper: Upper, path: str, mode: int, device: int) -> None:
    """mknod(2) of a FIFO, socket or device node at ``path`` (nothing is visible there): it
    replaces any whiteout."""
    copy_up_parents(lookup, upper, path)
    upper.remove_opaque(path)
    upper.install_node(path, mode, device)
    upper.remove_whiteout(path)
    upper.touch(dirname(path))


def hard_link(lookup: Lookup, upper: Upper, existing: Node, new: str) -> None:
    """link(2): copy ``existing`` up (the kernel does too), then give it the second name ``new``
    in the upper (nothing is visible there); it replaces any whiteout."""
    copy_up(lookup, upper, existing)
    copy_up_parents(lookup, upper, new)
    upper.remove_opaque(new)
    upper.hard_link(existing.path, new)
    upper.remove_whiteout(new)
    upper.touch(dirname(new))


def rename_file(lookup: Lookup, upper: Upper, src: Node, dst: str, stamp_source: bool = True) -> None:
    """rename(2) of a non-directory: copy up (its metadata only with metacopy, as the
    kernel's rename does; the data stays where it is and the copy keeps naming it), move
    within the upper, whiteout the old name iff a lower has it, and drop any whiteout at the
    new name. Both directories get the time of the change, the source's unless
    ``stamp_source`` is False (a copying ``movedir``, whose ``cp -a`` only reads the source:
    its directories keep their times until they go)."""
    copy_up(lookup, upper, src, METADATA)
    copy_up_parents(lookup, upper, dst)
    if src.lower_positive:
        upper.add_whiteout(src.path)
    upper.remove_opaque(dst)
    upper.move_file(src.path, dst)
    upper.remove_whiteout(dst)
    if stamp_source:
        upper.touch(dirname(src.path))
    upper.touch(dirname(dst))


def _walk(lookup: Lookup, top: Node) -> List[Tuple[str, Node]]:
    """Every entry below ``top`` in the merged view, parents before children, as (relative path,
    node); a list, taken before the caller changes the view."""
    cut = 0 if top.path == "/" else len(top.path)
    return [(relpath(node.path[cut:]), node) for node in walk.merged(lookup, top)]


def move_tree(lookup: Lookup, upper: Upper, src: Node, dst: str, display: Optional[str] = None) -> None:
    """Move the contents of directory ``src`` into directory ``dst`` (created if missing), then
    remove ``src``. Type clashes are refused up front, named under ``display`` (the caller's
    spelling of ``dst``, which may go through symbolic links) where given.

    To a ``dst`` that does not exist this is rename(2): one rename of the upper directory,
    which for a lower or merged ``src`` carries a redirect record (the kernel's
    ``redirect_dir=on``). Into an existing ``dst`` each entry is renamed in, directories
    merging recursively (journaled). With ``redirect_dir`` off a lower or merged tree is
    copied: the tree ``cp -a src/. dst`` then ``rm -rf src`` gives on the kernel, which itself
    answers EXDEV there."""
    target = lookup.node(dst)
    if target is None and (upper.redirect_dir or _pure_upper(upper, src)):
        rename_dir(lookup, upper, src, dst)  # nothing at dst to clash with: the tree is not read
        return
    entries = _walk(lookup, src)
    # the destination directories the move merges into (relative to dst; "" is dst itself,
    # unless the move makes it)
    merged = {""} if target is not None else set()
    for rel, node in entries:
        existing = lookup.node(join(dst, rel))
        if existing is not None and existing.is_dir != node.is_dir:
            error = errors.DirectoryExpected if node.is_dir else errors.FileExpected
            raise error(join(display or dst, rel))
        if existing is not None and existing.is_dir:
            merged.add(rel)
    # the source directories' times, before the moves restamp them (journaled: a re-run
    # after a crash gives the destination these, not what the renames left)
    times: List[journal.DirTimes] = []
    for rel, node in [("", src)] + entries:
        began = _times(node) if node.is_dir else None
        if began is not None:
            times.append((rel, began[0], began[1]))
    journaled(lookup, upper, journal.Intent("movedir", src.path, dst, tuple(times),
                                            _kept_times(lookup, upper, src.path, dst, entries, merged)))


def _kept_times(lookup: Lookup, upper: Upper, src: str, dst: str, entries: List[Tuple[str, Node]],
                merged: Set[str]) -> Tuple[journal.DirTimes, ...]:
    """The directories whose times a journaled ``movedir`` leaves alone, with those times:
    the ancestors of ``dst`` and of ``src``'s parent (copied up, never changed; ``dst``'s
    parent changes where the move makes ``dst``: ``merged`` lacks ``""``) and, where
    entries are renamed in (``redirect_dir``), the destination directories merged into
    without an entry renamed into them. Their copy-ups put the times back after each
    rename; a re-run after a crash between the two cannot know them any more."""
    changed = {dirname(src)}  # loses the source: the time of the change
    if "" not in merged:
        changed.add(dirname(dst))  # gains the destination
    if upper.redirect_dir:
        # an entry renamed into a destination directory restamps it: a file (replacing
        # one or not) or a directory the destination lacks
        changed.update(join(dst, dirname(rel)) for rel, node in entries if not (node.is_dir and rel in merged))
        candidates = {join(dst, rel) if rel else dst for rel in merged}
    else:
        # cp -a gives every destination directory it copies into the source's times
        changed.add(dst)
        changed.update(join(dst, rel) for rel, node in entries if node.is_dir)
        candidates = set()
    for path in (dst, dirname(src)):
        while path != "/":
            path = dirname(path)
            candidates.add(path)
    kept = []
    for path in sorted(candidates - changed):
        node = lookup.node(path)
        times = _times(node) if node is not None and node.is_dir else None
        if times is not None:
            kept.append((path, times[0], times[1]))
    return tuple(kept)


def _pure_upper(upper: Upper, node: Node) -> bool:
    """Only the upper has the directory: no redirect is needed to move it."""
    return node.layers == (upper.layer,)


def rename_dir(lookup: Lookup, upper: Upper, src: Node, dst: str) -> None:
    """rename(2) of a directory to ``dst``, where the view has nothing: O(1) in the size of
    the tree. Everything the renamed directory needs at ``dst`` is written first where it is
    inert (records of ``dst`` apply only once the upper has that directory): its redirect
    (a lower or merged ``src``: the path its lower contents are at, kept if it has one), or
    an opaque record (a pure upper ``src`` moved where lowers could show through), and a copy
    of the records inside ``src``. Then the whiteout of the old name (iff a lower has it),
    then the one rename that switches the view; then the clean-up of ``src``'s records. Both
    parent directories get the time of the change, as rename(2) gives them."""
    copy_up(lookup, upper, src)  # the directory alone, as the kernel's copy-up before rename
    moved = lookup.node(src.path)
    assert moved is not None and moved.in_upper
    copy_up_parents(lookup, upper, dst)
    upper.remove_redirect(dst, known=False)  # what a former directory at dst may have left
    upper.drop_records_below(dst)
    if _pure_upper(upper, moved):
        if _needs_opaque(lookup, upper, dst):
            upper.add_opaque(dst)
    else:
        upper.remove_opaque(dst)
        upper.set_redirect(dst, moved.origin)
    upper.copy_records_below(src.path, dst)
    if src.lower_positive:
        upper.add_whiteout(src.path)
    upper.move_dir(src.path, dst)
    upper.remove_whiteout(dst)
    upper.remove_opaque(src.path)
    upper.remove_redirect(src.path)
    upper.drop_records_below(src.path)
    upper.touch(dirname(src.path))
    upper.touch(dirname(dst))


def _rename_into(lookup: Lookup, upper: Upper, src: Node, dst: str) -> None:
    """Rename every entry of ``src`` into the directory ``dst``: what ``dst`` lacks moves by one
    rename (a directory with a redirect where it needs one), a file replaces a file, and a
    directory merges into the directory there, recursively. Each step is idempotent."""
    if lookup.node(dst) is None:
        make_dir(lookup, upper, dst)
    pending = [(src.path, dst)]
    while pending:
        source, destination = pending.pop()
        directory = lookup.node(source)
        if directory is None or not directory.is_dir:
            continue
        for child in visible_children(lookup, directory):
            target = join(destination, basename(child.path))
            existing = lookup.node(target)
            if child.is_dir and existing is not None:
                pending.append((child.path, target))
            elif child.is_dir:
                rename_dir(lookup, upper, child, target)
            else:
                rename_file(lookup, upper, child, target)


def _move_contents(lookup: Lookup, upper: Upper, src: Node, dst: str, times: Tuple[journal.DirTimes, ...] = ()) -> None:
    """The steps of a journaled ``movedir``, each idempotent: what is still in ``src``
    moves to ``dst``, then ``src`` goes. Re-running it after a crash finishes the move.
    ``times``: the source directories' times when the move began (from its journal entry),
    for the copying ``movedir`` (``redirect_dir=False``), which gives them as ``cp -a`` does;
    with ``redirect_dir`` each entry is renamed in, as the kernel's rename(2)s would."""
    if upper.redirect_dir:
        _rename_into(lookup, upper, src, dst)
        remaining = lookup.node(src.path)
        if remaining is not None:
            hide(lookup, upper, remaining)
        return
    entries = _walk(lookup, src)
    # cp -a gives every directory it copies (or copies into) the source's mode, owner and
    # times, last, after its contents: read them before moving anything changes them (the
    # times from the journal entry: an earlier, interrupted run may have restamped them)
    began = {rel: {"accessed": accessed, "modified": modified} for rel, accessed, modified in times}
    attributes = [
        (join(dst, rel) if rel else dst, _dir_metadata(node, began.get(rel)))
        for rel, node in [("", src)] + entries
        if node.is_dir
    ]
    _merge_dir_into(lookup, upper, dst)
    copied: Dict[Tuple[int, int], str] = {}  # a lower file's (st_dev, st_ino) -> where it went first
    for rel, node in entries:
        destination = join(dst, rel)
        if node.is_dir:
            _merge_dir_into(lookup, upper, destination)
            continue
        first = _linked_copy(node, destination, copied)
        if first is None:
            rename_file(lookup, upper, node, destination, stamp_source=False)
        else:
            _link_into(lookup, upper, first, destination)
    for destination, metadata in reversed(attributes):  # deepest first, as cp -a sets them
        try:
            apply_metadata(upper.fs, destination, metadata)
        except errors.ResourceNotFound:
            pass  # a MemoryFS upper cannot set its own root's attributes (docs/semantics.rst)
    remaining = lookup.node(src.path)
    if remaining is not None:
        hide(lookup, upper, remaining)


def _linked_copy(node: Node, destination: str, copied: Dict[Tuple[int, int], str]) -> Optional[str]:
    """Where an earlier name of the same lower file went in this move, if any. ``cp -a``
    keeps hard links among what it copies (one file, several names); an upper file needs
    nothing, its renames keep its inode. Noted for ``destination`` if it is the first."""
    if node.in_upper:
        return None
    return first_name(copied, node.top.lstat(node.top_path), destination)


def _link_into(lookup: Lookup, upper: Upper, first: str, destination: str) -> None:
    """Give the file this move already put at ``first`` the further name ``destination``
    (replacing what is there), as ``cp -a`` links a second name of a file it copied; the
    source name goes with the rest of the source tree."""
    existing = lookup.node(destination)
    if existing is not None:
        hide(lookup, upper, existing)
    moved = lookup.node(first)
    assert moved is not None  # put there by this move, under the overlay's lock
    hard_link(lookup, upper, moved, destination)


def _dir_metadata(node: Node, times: Optional[Dict[str, float]] = None) -> Dict[str, Dict[str, Any]]:
    """What ``cp -a`` carries over from a source directory: mode, owner, times (``times``
    instead of the directory's own, where given)."""
    metadata = copyable_metadata(node.top.fs.getinfo(node.top_path, COPIED_NAMESPACES))
    if times is not None:
        metadata["details"] = dict(times)
    return metadata


def _times(node: Node) -> Optional[Tuple[float, float]]:
    """(accessed, modified) of a directory as the view shows it; None where its layer has none."""
    details: Dict[str, Any] = dict(node.top.fs.getinfo(node.top_path, ["details"]).raw.get("details") or {})
    modified, accessed = details.get("modified"), details.get("accessed")
    if modified is None:
        return None
    return float(accessed if accessed is not None else modified), float(modified)


def _merge_dir_into(lookup: Lookup, upper: Upper, path: str) -> None:
    """Make the directory ``path`` of a ``movedir`` destination exist in the upper: ``cp -a``
    creates it, or sets the attributes of the one that exists, which copies it up."""
    existing = lookup.node(path)
    if existing is None:
        make_dir(lookup, upper, path)
    else:
        copy_up(lookup, upper, existing)


def hide_children(lookup: Lookup, upper: Upper, directory: Node) -> None:
    """Take every entry of ``directory`` out of the view (``removetree("/")``), journaled."""
    journaled(lookup, upper, journal.Intent("removetree", directory.path))


def _replay(lookup: Lookup, upper: Upper, intent: journal.Intent) -> None:
    """Run the steps of ``intent`` from wherever the view stands (nothing, if all are done)."""
    if intent.operation == "discard":
        upper.empty()
        return
    node = lookup.node(intent.src)
    if intent.operation == "movedir":
        assert intent.dst is not None
        if node is not None and node.is_dir:
            _move_contents(lookup, upper, node, intent.dst, intent.times)
        # the last steps, also when a crash came after the source went but before its stamp
        upper.touch(dirname(intent.src))
        for path, accessed, modified in intent.kept:
            upper.restore_times(path, (accessed, modified))
        return
    if node is not None and node.is_dir:
        empty(lookup, upper, node)


def empty(lookup: Lookup, upper: Upper, directory: Node) -> None:
    """Hide the entries of ``directory`` one by one: each removal whole, the emptying not one
    step (the journal's replay of ``removetree("/")``; ``rm -rf`` through a link)."""
    for child in visible_children(lookup, directory):
        hide(lookup, upper, child)


def journaled(lookup: Lookup, upper: Upper, intent: journal.Intent) -> None:
    """Record ``intent``, run its steps, forget it. A step that fails is retried once on
    fresh caches (every step is idempotent); if that fails too the entry stays, and the
    overlay finishes it before its next write or on the next open."""
    entry = upper.begin(intent)
    try:
        _replay(lookup, upper, intent)
    except errors.FSError:
        upper.forget_all()
        _replay(lookup, upper, intent)
    upper.finish(entry)


def recover(lookup: Lookup, upper: Upper) -> List[journal.Intent]:
    """Finish (roll forward) every operation pending in the journal; return them."""
    if not upper.sidecar.journal_pending:
        return []
    upper.forget_all()
    finished = []
    for entry, intent in journal.pending(upper.sidecar):
        _replay(lookup, upper, intent)
        upper.finish(entry)
        finished.append(intent)
    upper.finish()
    return finished


def _needs_opaque(lookup: Lookup, upper: Upper, dst: str) -> bool:
    """A directory moved to ``dst`` must be opaque when lowers could show through it."""
    parent = lookup.node(dirname(dst))
    return upper.has_whiteout(dst) or (parent is not None and any(not layer.is_upper for layer in parent.layers))
