"""``fsck``: find and repair what an interrupted operation leaves in the upper's sidecar.

The core orders every change so that a crash shows the view before or after the
operation (see :mod:`unionfs.core.dir`); what it can leave behind hides nothing:

- ``staging``: a copy-up or trash tree in ``/.unionfs/tmp``;
- ``orphan-records``: the record directory of a directory the upper no longer has
  (records apply only where their layer has the directory);
- ``overridden-whiteout``: a whiteout record beside an upper entry of the same name
  (the entry wins);
- ``stray-opaque``: an opaque record of a name that is not a directory of the upper;
- ``whiteout-in-opaque``: a whiteout inside an opaque directory (nothing below shows
  through it anyway);
- ``stray-redirect``: a redirect record of a name that is not a directory of the upper;
- ``stray-metacopy``: a metacopy hint of a name that is not a metadata-only file;
- ``overridden-link``: a link record beside an upper entry of the same name (the entry
  wins; a crash while a file replaced a link);
- ``junk``: a name inside the record tree that is none of ``w``, ``o``, ``r``, ``m``, ``l``, ``d``;
- ``journal``: an operation pending in the journal.

Opening an overlay, like mounting one, already finishes the journal's operations and
empties the staging area; the first report lists what that removed too.

Repairing removes exactly these, so the merged view is the same before and after.
Whiteouts that hide nothing *now* are kept on purpose: as in the kernel, they keep
hiding a lower entry that comes back offline.
"""

from __future__ import annotations

from typing import Iterable, Iterator, List, Tuple

import attr

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs import errors
from fs.path import join

from .journal import Intent
from .journal import pending as journal_pending
from .sidecar import CHILDREN, LINK, METACOPY, OPAQUE, REDIRECT, STAGING_DIR, TREE_DIR, WHITEOUT
from .upper import Upper


@attr.s(frozen=True, slots=True)
class Finding:
    """One thing fsck found: its ``kind`` (see the module docs), the sidecar or upper path
    it concerns, and what it means."""

    kind: str = attr.ib()
    path: str = attr.ib()
    detail: str = attr.ib()


@attr.s(frozen=True, slots=True)
class FsckReport:
    """What :func:`fsck` found and whether it repaired it (``repaired`` is False for a dry run)."""

    findings: Tuple[Finding, ...] = attr.ib()
    repaired: bool = attr.ib()

    @property
    def clean(self) -> bool:
        return not self.findings

    def __str__(self) -> str:
        if self.clean:
            return "clean"
        verb = "repaired" if self.repaired else "found"
        lines = ["%s %d problem(s):" % (verb, len(self.findings))]
        lines += ["  %s %s: %s" % (finding.kind, finding.path, finding.detail) for finding in self.findings]
        return "\n".join(lines)


def find(upper: Upper) -> List[Tuple[Finding, str, bool]]:
    """Every leftover, as (finding, sidecar path to delete, whether it is a directory)."""
    found = list(_staging(upper))
    found += list(_records(upper))
    return found


def drop_torn_journal(upper: Upper) -> List[Finding]:
    """Remove journal entries a power cut left empty or cut short (``journal.torn``): such an
    entry was never durable, so its operation never began counting. Returns what was removed."""
    return [
        Finding("journal", where, "dropped an entry a power cut left incomplete (removed when the overlay opened)")
        for where in upper.drop_torn_journal()
    ]


def clear_staging(upper: Upper) -> List[Finding]:
    """Empty the staging area, as the kernel empties its workdir at mount: only an operation
    in progress uses it, and none is while the overlay opens. Returns what was removed."""
    cleared = []
    for finding, where, is_dir in _staging(upper):
        upper.delete(where, is_dir)
        cleared.append(attr.evolve(finding, detail=finding.detail + " (removed when the overlay opened)"))
    return cleared


def fsck(
    upper: Upper, recovered: Iterable[Intent] = (), cleared: Iterable[Finding] = (), repair: bool = True, pending: bool = False
) -> FsckReport:
    """Find the leftovers of interrupted operations in ``upper`` and, if ``repair``, remove
    them. ``recovered`` and ``cleared``: what the overlay already did when it opened (journal
    entries rolled forward, staging emptied); they are reported too. ``pending``: also report
    journal entries still waiting (an overlay opened with ``recover=False``)."""
    finished = [Finding("journal", intent.src, "finished an interrupted %s" % _describe(intent)) for intent in recovered]
    finished += list(cleared)
    if pending:
        finished += [
            Finding("journal", intent.src, "an interrupted %s, finished by the next write or open" % _describe(intent))
            for _, intent in journal_pending(upper.sidecar)
        ]
    found = find(upper)
    if repair and found:
        for _finding, where, is_dir in found:
            try:
                upper.delete(where, is_dir)
            except errors.ResourceNotFound:
                pass  # inside a tree removed a moment ago
        upper.forget_all()
    return FsckReport(tuple(finished + [finding for finding, _, _ in found]), repaired=repair)


def _describe(intent: Intent) -> str:
    if intent.dst is None:
        return "%s %s" % (intent.operation, intent.src)
    return "%s %s -> %s" % (intent.operation, intent.src, intent.dst)


def _staging(upper: Upper) -> Iterator[Tuple[Finding, str, bool]]:
    try:
        leftovers = list(upper.fs.scandir(STAGING_DIR))
    except errors.ResourceNotFound:
        return
    for info in leftovers:
        where = join(STAGING_DIR, info.name)
        yield Finding("staging", where, "a copy-up or trashed tree left by an interrupted operation"), where, info.is_dir


def _is_upper_dir(upper: Upper, path: str) -> bool:
    index = upper.layer.dir(path)
    return index is not None


def _records(upper: Upper) -> Iterator[Tuple[Finding, str, bool]]:
    """The leftovers in the record tree, walked with a stack (trees may be very deep)."""
    pending = [("/", TREE_DIR, False)]  # (directory, its record directory, whether it is opaque)
    while pending:
        dir_path, record_dir, opaque = pending.pop()
        index = upper.layer.dir(dir_path)
        assert index is not None
        try:
            parts = list(upper.fs.scandir(record_dir))
        except errors.ResourceNotFound:
            continue
        for part in parts:
            where = join(record_dir, part.name)
            if part.name not in (WHITEOUT, OPAQUE, REDIRECT, METACOPY, LINK, CHILDREN) or not part.is_dir:
                yield Finding("junk", where, "not part of the sidecar format"), where, part.is_dir
                continue
            for record in upper.fs.scandir(where):
                path = join(dir_path, record.name)
                record_path = join(where, record.name)
                if part.name == CHILDREN:
                    if not record.is_dir:
                        yield Finding("junk", record_path, "a record directory that is a file"), record_path, False
                    elif _is_upper_dir(upper, path):
                        pending.append((path, record_path, record.name in index.opaque))
                    else:
                        yield Finding("orphan-records", path, "records of a directory the upper does not have"), record_path, True
                elif part.name == REDIRECT and index.entries.get(record.name) is not True:
                    yield Finding("stray-redirect", path, "redirect record without an upper directory"), record_path, False
                elif part.name == METACOPY and record.name not in index.metacopy:
                    yield Finding("stray-metacopy", path, "metacopy hint without a metadata-only file"), record_path, False
                elif part.name == LINK and record.is_dir:
                    yield Finding("junk", record_path, "a link record that is a directory"), record_path, True
                elif part.name == LINK and record.name not in index.link_records:
                    yield Finding("overridden-link", path, "link record beside an upper entry"), record_path, False
                elif part.name == OPAQUE and index.entries.get(record.name) is not True:
                    yield Finding("stray-opaque", path, "opaque record without an upper directory"), record_path, False
                elif part.name == WHITEOUT and record.name in index.entries:
                    yield Finding("overridden-whiteout", path, "whiteout record beside an upper entry"), record_path, False
                elif part.name == WHITEOUT and opaque:
                    yield Finding("whiteout-in-opaque", path, "whiteout inside an opaque directory"), record_path, False
