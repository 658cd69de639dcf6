"""The intent journal: what makes a multi-step operation atomic where ordering cannot.

``movedir`` of a merged tree moves entries one by one and ``removetree("/")`` hides the
root's children one by one; a crash between two of those steps would leave a mix of
before and after. Such an operation first records its :class:`Intent` in
``/.unionfs/journal`` and deletes it when done. Every step of both operations is
idempotent and each re-run starts from whatever the view shows, so an overlay opening
the upper simply runs every pending intent again (roll forward): the view then is the
state after the operation. See :mod:`unionfs.core.sidecar` for the format.
"""

from __future__ import annotations

import json
from typing import Any, List, Optional, Tuple

import attr

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs import errors
from fs.path import abspath, isbase, normpath

from ..errors import SidecarError
from .sidecar import JOURNAL_DIR, SIDECAR_DIR, Sidecar, is_reserved, read_text

OPERATIONS = ("movedir", "removetree", "discard")


#: a directory's times as a journal entry keeps them: (path, accessed, modified); the path is
#: relative to ``src`` in ``times``, absolute in ``kept``
DirTimes = Tuple[str, float, float]


@attr.s(frozen=True, slots=True)
class Intent:
    """One operation to finish: ``movedir`` of ``src`` into ``dst``, ``removetree`` of ``src``,
    or ``discard`` (``src`` is ``/``) of every change in the upper. ``times`` (movedir): the
    source directories' times when it began, which ``cp -a`` gives the destination's; its
    own renames restamp the source directories, so a re-run after a crash cannot read them
    there any more. ``kept`` (movedir): the directories whose times the move leaves as they
    were (ancestors copied up, destination directories merged into without an entry renamed
    into them), with those times: a copy-up puts its parent's times back only after its
    rename, so a crash between the two would otherwise leave the parent restamped."""

    operation: str = attr.ib(validator=attr.validators.in_(OPERATIONS))
    src: str = attr.ib()
    dst: Optional[str] = attr.ib(default=None)
    times: Tuple[DirTimes, ...] = attr.ib(default=(), eq=False, repr=False)
    kept: Tuple[DirTimes, ...] = attr.ib(default=(), eq=False, repr=False)

    def dumps(self) -> str:
        data: dict = {"operation": self.operation, "src": self.src, "dst": self.dst}
        if self.times:
            data["times"] = [list(entry) for entry in self.times]
        if self.kept:
            data["kept"] = [list(entry) for entry in self.kept]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def loads(cls, where: str, text: str) -> "Intent":
        try:
            data = json.loads(text)
            intent = cls(data["operation"], data["src"], data.get("dst"), _times(data.get("times") or []),
                         _times(data.get("kept") or []))
        except (ValueError, TypeError, KeyError) as error:
            raise SidecarError(where, "unreadable journal entry (%s)" % error) from None
        if not isinstance(intent.src, str) or not intent.src.startswith("/"):
            raise SidecarError(where, "journal entry without an absolute source path")
        if intent.operation == "movedir" and not (isinstance(intent.dst, str) and intent.dst.startswith("/")):
            raise SidecarError(where, "movedir journal entry without an absolute destination path")
        refusal = intent.refusal()
        if refusal is not None:
            raise SidecarError(where, "journal entry the overlay would never write: %s" % refusal)
        return intent

    def refusal(self) -> Optional[str]:
        """Why the API would never have journaled this intent (``None``: it could have). An
        entry is replayed with no caller to check it, so it is checked here, as the API checks."""
        paths = [("source", self.src)] + ([("destination", self.dst)] if self.dst is not None else [])
        paths += [("kept directory", path) for path, _, _ in self.kept]
        for what, path in paths:
            assert path is not None
            try:
                normal = abspath(normpath(path))
            except ValueError:
                return "the %s %r climbs out of the root" % (what, path)
            if normal != path or "\0" in path:
                return "the %s %r is not a normal absolute path" % (what, path)
            if is_reserved(path):
                return "the %s %r is inside the sidecar" % (what, path)
        if self.operation in ("removetree", "discard") and self.src != "/":
            return "%s is journaled for the root only, not %r" % (self.operation, self.src)
        if self.operation == "movedir":
            assert self.dst is not None
            if self.src == "/" or self.src == self.dst or isbase(self.src, self.dst):
                return "movedir %r into %r moves a directory into itself" % (self.src, self.dst)
        return None


def pending(sidecar: Sidecar) -> List[Tuple[str, Intent]]:
    """The journal's entries as (entry path, intent). There is at most one: an overlay
    finishes a pending entry before its next write."""
    try:
        names = sorted(sidecar.fs.listdir(JOURNAL_DIR))
    except errors.ResourceNotFound:
        return []
    except errors.DirectoryExpected:
        raise SidecarError(JOURNAL_DIR, "the journal is a file, not a directory") from None
    entries = []
    for name in names:
        where = "%s/%s" % (JOURNAL_DIR, name)
        try:
            text = read_text(sidecar.fs, where, "the journal entry")
        except errors.FileExpected:
            raise SidecarError(where, "a journal entry is a directory") from None
        if torn(text):
            continue
        entries.append((where, Intent.loads(where, text)))
    return entries


def torn(text: str) -> bool:
    """Whether a journal entry is empty, zeros, or cut short: what a power cut leaves of an
    entry whose data never reached the disk (written without a sync: by a ``volatile``
    overlay or an older unionfs). Its operation never started counting; see :func:`drop_torn`."""
    text = text.rstrip("\0")
    return not text.endswith("}") and (_ENTRY_START.startswith(text) or text.startswith(_ENTRY_START))


def _times(entries: Any) -> Tuple[DirTimes, ...]:
    """The ``times`` of a journal entry, checked (a ValueError names what is wrong)."""
    if not isinstance(entries, list):
        raise ValueError("times is not a list")
    times = []
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
                and all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in entry[1:])):
            raise ValueError("a times entry is not [path, accessed, modified]")
        times.append((entry[0], float(entry[1]), float(entry[2])))
    return tuple(times)


#: how every entry :meth:`Intent.dumps` writes begins (its keys are sorted)
_ENTRY_START = '{"dst": '


def drop_torn(sidecar: Sidecar) -> List[str]:
    """Remove the torn entries of the journal (see :func:`torn`); return their paths."""
    try:
        names = sorted(sidecar.fs.listdir(JOURNAL_DIR))
    except (errors.ResourceNotFound, errors.DirectoryExpected):
        return []
    dropped = []
    for name in names:
        where = "%s/%s" % (JOURNAL_DIR, name)
        try:
            text = sidecar.fs.readtext(where)
        except (errors.FSError, ValueError):
            continue  # pending() names what is wrong with it
        if torn(text):
            sidecar.fs.remove(where)
            dropped.append(where)
    if dropped:
        sidecar.sync.dir(JOURNAL_DIR)
    return dropped


def begin(sidecar: Sidecar, intent: Intent) -> str:
    """Record ``intent`` before its first step: FORMAT first names the journal version of its
    format (2 for 1, 4 for 3: readers of the settled version now refuse the upper), then the
    entry appears by one rename. Returns the entry."""
    sidecar.set_journal(True)
    if not sidecar.fs.isdir(JOURNAL_DIR):
        sidecar.fs.makedir(JOURNAL_DIR, recreate=True)
        sidecar.sync.dir(SIDECAR_DIR)
    staged = sidecar.staging_path()
    sidecar.fs.writetext(staged, intent.dumps())
    sidecar.sync.path(staged)  # whole on the disk before it is an entry
    entry = "%s/%s" % (JOURNAL_DIR, staged.rsplit("/", 1)[1])
    sidecar.fs.move(staged, entry)
    sidecar.sync.dir(JOURNAL_DIR)  # and the entry durable before the first step
    return entry


def finish(sidecar: Sidecar, entry: Optional[str] = None) -> None:
    """Forget a completed entry; with the journal empty, FORMAT names the settled version again."""
    if entry is not None:
        sidecar.fs.remove(entry)
        sidecar.sync.dir(JOURNAL_DIR)
    if not pending(sidecar):
        sidecar.set_journal(False)
