"""Shared machinery of the reliability tests: exact upper clones, view snapshots, the
sidecar and cache invariants, and the tally of injection points."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple

import unionfs  # noqa: F401
from fs import errors
from fs.base import FS
from fs.memoryfs import MemoryFS
from fs.info import Info

from unionfs import OverlayFS
from unionfs.core.sidecar import (
    FORMAT_PATH, JOURNAL_DIR, METACOPY, RESERVED_NAME, SIDECAR_DIR, STAGING_DIR, TREE_DIR, VERSIONS, WHITEOUT,
    metacopy_token, record_dir,
)
from unionfs.testing import trees

#: operation name -> (injection points, modes), filled by the crash tests, printed at the end
INJECTION_POINTS: "OrderedDict[str, Tuple[int, int]]" = OrderedDict()

#: what the real-process tests counted (kills, lock races, power cuts, fsyncs), printed at the end
COUNTS: "OrderedDict[str, str]" = OrderedDict()

View = Dict[str, Tuple]


def clone(source: FS) -> MemoryFS:
    """A MemoryFS copy of ``source`` with the same tree, bytes and modification times (the
    sidecar too): entries parents first, then the times children first, so making an entry
    never leaves its directory's time changed."""
    copy = MemoryFS()
    found = list(trees.entries(source, namespaces=["details"], sidecar=True))
    for path, info in found:
        if info.is_dir:
            copy.makedir(path)
        else:
            copy.writebytes(path, source.readbytes(path))
    for path, info in reversed(found):
        copy.setinfo(path, {"details": {"modified": info.raw["details"]["modified"]}})
    return copy


def view(overlay: FS) -> View:
    """Everything the merged view shows: per path its type, content hash and mtime."""
    def record(fs: FS, path: str, info: Info) -> Tuple:
        modified = info.raw["details"]["modified"]
        if info.is_dir:
            return ("dir", modified)
        return ("file", hashlib.sha256(fs.readbytes(path)).hexdigest()[:16], modified)

    return trees.snapshot(overlay, record, namespaces=["details"], sidecar=True)


def describe_difference(got: View, expected: Sequence[View]) -> str:
    """A short account of how ``got`` differs from each expected view."""
    lines = []
    for number, want in enumerate(expected):
        extra = sorted(set(got) - set(want))[:5]
        missing = sorted(set(want) - set(got))[:5]
        changed = sorted(path for path in set(got) & set(want) if got[path] != want[path])[:5]
        lines.append("vs #%d: extra %s missing %s changed %s" % (number, extra, missing, changed))
    return "; ".join(lines)


def sidecar_problems(upper: FS) -> List[str]:
    """Structural problems of an upper's sidecar that no interruption may cause."""
    problems = []
    settled = ["unionfs-sidecar %d\n" % version for version, form in VERSIONS.items() if not form.journal]
    if upper.readtext(FORMAT_PATH) not in settled:
        problems.append("FORMAT reads %r after recovery" % upper.readtext(FORMAT_PATH))
    if not upper.isdir(TREE_DIR):
        problems.append("no record tree")
    if upper.exists(JOURNAL_DIR) and upper.listdir(JOURNAL_DIR):
        problems.append("journal entries left after recovery: %s" % upper.listdir(JOURNAL_DIR))
    for name in upper.listdir(SIDECAR_DIR):
        if name not in ("FORMAT", "tree", "tmp", "journal", "lock", "meta"):
            problems.append("unknown sidecar entry %s" % name)
    return problems


def upper_rule_problems(upper: FS, state: View) -> List[str]:
    """Checked from the raw upper, independently of unionfs's lookup: every upper entry is in
    the view with the upper's type and bytes (the upper always wins), and every whiteout
    record without an entry beside it hides its name."""
    problems = []
    pending = ["/"]
    while pending:
        directory = pending.pop()
        names = set()
        for info in upper.scandir(directory):
            if directory == "/" and info.name == RESERVED_NAME:
                continue
            names.add(info.name)
            path = directory.rstrip("/") + "/" + info.name
            shown = state.get(path)
            if info.is_dir:
                pending.append(path)
                if shown is None or shown[0] != "dir":
                    problems.append("upper directory %s is not a directory of the view" % path)
            else:
                content = upper.readbytes(path)
                digest = hashlib.sha256(content).hexdigest()[:16]
                hinted = upper.exists(record_dir(directory) + "/" + METACOPY + "/" + info.name)
                if hinted and metacopy_token(content) is not None:  # metadata only: the data is below
                    if shown is None or shown[0] != "file":
                        problems.append("metadata-only upper file %s is not a file of the view" % path)
                elif shown is None or shown[:2] != ("file", digest):
                    problems.append("upper file %s is not what the view shows" % path)
        try:
            whiteouts = upper.listdir(record_dir(directory) + "/" + WHITEOUT)
        except errors.ResourceNotFound:
            whiteouts = []
        for name in set(whiteouts) - names:
            if directory.rstrip("/") + "/" + name in state:
                problems.append("whited-out %s is visible" % (directory.rstrip("/") + "/" + name))
    return problems


def invariant_problems(overlay: OverlayFS, lowers: Sequence[FS], upper: FS) -> List[str]:
    """The invariants of a quiescent overlay: a fresh overlay over the same layers shows the
    same view (no stale cache), the upper's own entries and whiteouts are what the view shows,
    the sidecar is well formed and fsck finds nothing to repair, and every listed entry can be
    read as its type says."""
    problems = sidecar_problems(upper)
    live = view(overlay)
    fresh_overlay = OverlayFS(list(lowers), upper)
    fresh = view(fresh_overlay)
    if live != fresh:
        problems.append("live view differs from a fresh overlay: " + describe_difference(live, [fresh]))
    problems += upper_rule_problems(upper, fresh)
    report = fresh_overlay.fsck(repair=False)
    if not report.clean:
        problems.append("fsck finds: %s" % report)
    for path, entry in fresh.items():
        try:
            if entry[0] == "dir":
                overlay.listdir(path)
            else:
                overlay.readbytes(path)
        except errors.FSError as error:
            problems.append("%s listed but unreadable: %r" % (path, error))
    if upper.exists(STAGING_DIR) and upper.listdir(STAGING_DIR):
        problems.append("staging leftovers in a quiescent overlay: %s" % upper.listdir(STAGING_DIR))
    return problems
