"""The sidecar: whiteout and opaque records kept inside a layer's own filesystem.

The kernel keeps whiteouts as 0/0 character devices and opacity as an xattr. Neither
exists on a MemoryFS, a zip or a cloud bucket, so unionfs keeps them as empty files
under one reserved directory at the root of the layer, ``/.unionfs``. Format version 3::

    /.unionfs/FORMAT            "unionfs-sidecar 3\\n"
    /.unionfs/tree/             M(/), the record directory of the root
    M(D)/w/<name>               empty file: D/<name> is whited out in this layer
    M(D)/o/<name>               empty file: the directory D/<name> of this layer is opaque
    M(D)/l/<name>               the target of the symbolic link D/<name> (a layer whose FS
                                cannot hold links); an entry of the FS itself wins over it
    M(D)/d/<name>/              M(D/<name>), the record directory of the child directory
    /.unionfs/tmp/              staging for copy-up and trash; never part of the view
    /.unionfs/journal/<entry>   an unfinished multi-step operation, rolled forward on open
    /.unionfs/lock              "<pid> <host>": the process using this upper (system-path uppers)

A multi-step operation that no ordering makes atomic (``movedir`` of a merged tree,
``removetree("/")``) first writes its intent to ``/.unionfs/journal`` (staged in
``tmp`` and renamed into place) and deletes it when done; an overlay opening the upper
finishes (rolls forward) every pending entry before anything else. While an entry is
pending FORMAT reads the journal version (4; 2 for version 1): readers that cannot finish
it refuse it instead of showing the half-done operation. :data:`VERSIONS` is the one
table of every version and what it holds (``docs/sidecar.rst``).

Records, containers and child names live in separate sub-directories, so any user
name maps to a record without escaping. Every record is one file: creating or
removing one costs the same however many exist, and each write is atomic on any
filesystem that creates files atomically. Records of a layer apply only where that
layer has the parent directory, exactly as a kernel whiteout lives in its directory.
"""

from __future__ import annotations

import os
import uuid
from typing import Dict, FrozenSet, Optional

import attr

from .. import _fsimport  # noqa: F401
from fs import errors
from fs.base import FS
from fs.path import basename, dirname, iteratepath

from ..errors import SidecarError

RESERVED_NAME = ".unionfs"
SIDECAR_DIR = "/" + RESERVED_NAME
FORMAT_PATH = SIDECAR_DIR + "/FORMAT"
TREE_DIR = SIDECAR_DIR + "/tree"
STAGING_DIR = SIDECAR_DIR + "/tmp"
JOURNAL_DIR = SIDECAR_DIR + "/journal"
LOCK_PATH = SIDECAR_DIR + "/lock"

WHITEOUT = "w"  # record kinds, also the names of their sub-directories
OPAQUE = "o"
LINK = "l"  # M(D)/l/<name>: D/<name> is a symbolic link; the file holds the target (UTF-8)
CHILDREN = "d"
#: the record kinds a record directory may hold (anything else there is junk)
RECORD_KINDS = (WHITEOUT, OPAQUE, LINK)


@attr.s(frozen=True, slots=True)
class FormatVersion:
    """What a sidecar whose FORMAT says ``number`` may hold."""

    number: int = attr.ib()
    #: the record kinds of this version
    kinds: FrozenSet[str] = attr.ib()
    #: an operation may be pending in the journal (readers that cannot finish it refuse the layer)
    journal: bool = attr.ib(default=False)
    #: the version FORMAT returns to once the journal is empty
    settled: int = attr.ib(default=0)


#: Every version this unionfs reads, in one table, so that each later bump adds rows here and
#: nowhere else. Two rows per generation: the settled version, and the same plus a possibly
#: non-empty journal (FORMAT says the latter only while an operation is pending).
VERSIONS: Dict[int, FormatVersion] = {
    1: FormatVersion(1, frozenset({WHITEOUT, OPAQUE})),
    2: FormatVersion(2, frozenset({WHITEOUT, OPAQUE}), journal=True, settled=1),
    3: FormatVersion(3, frozenset({WHITEOUT, OPAQUE, LINK})),
    4: FormatVersion(4, frozenset({WHITEOUT, OPAQUE, LINK}), journal=True, settled=3),
}
#: what a writer's FORMAT says with no operation pending, and while one is
FORMAT_VERSION = 3
JOURNAL_FORMAT_VERSION = 4
NEWEST_VERSION = max(VERSIONS)
FORMAT_TEXT = "unionfs-sidecar %d\n" % FORMAT_VERSION


def record_dir(dir_path: str) -> str:
    """M(dir_path): where the records of the entries of ``dir_path`` live."""
    return TREE_DIR + "".join("/%s/%s" % (CHILDREN, part) for part in iteratepath(dir_path))


def is_reserved(path: str) -> bool:
    """Whether an absolute, normalised path names the sidecar or something inside it."""
    return path == SIDECAR_DIR or path.startswith(SIDECAR_DIR + "/")


class Sidecar:
    """Reads, and for the upper writes, the records of one layer."""

    def __init__(self, layer_fs: FS, version: int = FORMAT_VERSION) -> None:
        self.fs = layer_fs
        #: what FORMAT says: JOURNAL_FORMAT_VERSION while an operation may be pending
        self.version = version

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, layer_fs: FS, create: bool) -> Optional["Sidecar"]:
        """The layer's sidecar; ``None`` for a plain layer, created first if ``create``."""
        if layer_fs.exists(SIDECAR_DIR):
            if not layer_fs.isdir(SIDECAR_DIR):
                raise SidecarError(SIDECAR_DIR, "it is a file, not a directory")
            if create and cls._never_completed(layer_fs):
                return cls._create(layer_fs)
            version = cls._check_format(layer_fs)
            if not layer_fs.isdir(TREE_DIR):
                raise SidecarError(TREE_DIR, "the record tree is missing")
            for where, what in ((STAGING_DIR, "the staging area"), (JOURNAL_DIR, "the journal")):
                if layer_fs.exists(where) and not layer_fs.isdir(where):
                    raise SidecarError(where, "%s is a file, not a directory" % what)
            if layer_fs.isdir(LOCK_PATH):
                raise SidecarError(LOCK_PATH, "the lock record is a directory")
            if VERSIONS[version].journal and not create:
                raise SidecarError(
                    JOURNAL_DIR,
                    "an interrupted operation is pending in the journal of this read-only layer "
                    "(or one is running in another process); open it once as the upper of an "
                    "overlay to finish it",
                )
            if create and not layer_fs.isdir(STAGING_DIR):
                layer_fs.makedir(STAGING_DIR, recreate=True)  # checked once here, not per copy-up
            return cls(layer_fs, version)
        if not create:
            return None
        return cls._create(layer_fs)

    @classmethod
    def _create(cls, layer_fs: FS) -> "Sidecar":
        """Make (or finish making) the sidecar. FORMAT comes last, staged and renamed into
        place, so a sidecar without it was never completed and is made again."""
        for directory in (SIDECAR_DIR, TREE_DIR, STAGING_DIR):
            layer_fs.makedir(directory, recreate=True)
        sidecar = cls(layer_fs)
        staged = sidecar.staging_path()
        layer_fs.writetext(staged, FORMAT_TEXT)
        layer_fs.move(staged, FORMAT_PATH)
        return sidecar

    @staticmethod
    def _never_completed(layer_fs: FS) -> bool:
        """A sidecar whose creation was interrupted: no FORMAT and no record or journal yet
        (a sidecar that has those but lost FORMAT is damaged, not unfinished)."""
        if layer_fs.exists(FORMAT_PATH) or layer_fs.exists(JOURNAL_DIR):
            return False
        return not layer_fs.exists(TREE_DIR) or (layer_fs.isdir(TREE_DIR) and layer_fs.isempty(TREE_DIR))

    @staticmethod
    def _check_format(layer_fs: FS) -> int:
        try:
            text = layer_fs.readtext(FORMAT_PATH)
        except errors.ResourceNotFound:
            raise SidecarError(FORMAT_PATH, "the FORMAT file is missing") from None
        except errors.FileExpected:
            raise SidecarError(FORMAT_PATH, "FORMAT is a directory") from None
        words = text.split()
        if len(words) != 2 or words[0] != "unionfs-sidecar" or not words[1].isdigit():
            raise SidecarError(FORMAT_PATH, "unrecognised FORMAT line %r" % text[:80])
        number = int(words[1])
        if number > NEWEST_VERSION:
            raise SidecarError(FORMAT_PATH, "format version %s is newer than this unionfs (%d)" % (words[1], NEWEST_VERSION))
        if number not in VERSIONS:
            raise SidecarError(FORMAT_PATH, "format version %s does not exist" % words[1])
        return number

    def reread_version(self) -> None:
        """Read FORMAT again: another overlay of the upper may have left a journal entry."""
        self.version = self._check_format(self.fs)

    def set_version(self, version: int) -> None:
        """Atomically rewrite FORMAT to say ``version`` (staged, then renamed over it)."""
        if version == self.version:
            return
        staged = self.staging_path()
        self.fs.writetext(staged, "unionfs-sidecar %d\n" % version)
        self.fs.move(staged, FORMAT_PATH, overwrite=True)
        self.version = version

    # -- reading -----------------------------------------------------------------------------

    def _names(self, dir_path: str, kind: str) -> FrozenSet[str]:
        where = record_dir(dir_path) + "/" + kind
        try:
            infos = list(self.fs.scandir(where))
        except errors.ResourceNotFound:
            return frozenset()
        except errors.DirectoryExpected:
            raise SidecarError(where, "a record directory is a file") from None
        for info in infos:
            if info.is_dir:
                raise SidecarError(where + "/" + info.name, "a record is a directory")
        return frozenset(info.name for info in infos)

    def whiteouts(self, dir_path: str) -> FrozenSet[str]:
        """Names whited out in ``dir_path`` of this layer."""
        return self._names(dir_path, WHITEOUT)

    def opaque_names(self, dir_path: str) -> FrozenSet[str]:
        """Names of the children of ``dir_path`` that are opaque directories in this layer."""
        return self._names(dir_path, OPAQUE)

    def link_names(self, dir_path: str) -> FrozenSet[str]:
        """Names of the children of ``dir_path`` that are symbolic links kept as records
        (version 3 on; a version 1 sidecar has none)."""
        if LINK not in VERSIONS[self.version].kinds:
            return frozenset()
        return self._names(dir_path, LINK)

    def link_record(self, path: str) -> str:
        """Where the link record of ``path`` lives."""
        return self._record_path(path, LINK)

    def read_link(self, path: str) -> str:
        """The target stored in the link record of ``path``."""
        record = self._record_path(path, LINK)
        try:
            data = self.fs.readbytes(record)
        except errors.ResourceNotFound:
            raise errors.ResourceNotFound(path) from None
        except errors.FileExpected:
            raise SidecarError(record, "a record is a directory") from None
        try:
            return data.decode("utf-8", "surrogateescape")
        except UnicodeDecodeError:  # pragma: no cover - surrogateescape decodes any bytes
            raise SidecarError(record, "a link target that is not text") from None

    def write_link(self, path: str, target: str) -> None:
        """Record ``path`` as a symbolic link to ``target``: staged, then renamed into place,
        so a reader never sees half a target."""
        record = self._record_path(path, LINK)
        staged = self.staging_path()
        self.fs.writebytes(staged, target.encode("utf-8", "surrogateescape"))
        try:
            self.fs.move(staged, record, overwrite=True)
        except errors.ResourceNotFound:
            self.fs.makedirs(dirname(record), recreate=True)
            self.fs.move(staged, record, overwrite=True)

    # -- writing (upper only) ------------------------------------------------------------------

    def _record_path(self, path: str, kind: str) -> str:
        return "%s/%s/%s" % (record_dir(dirname(path)), kind, basename(path))

    def add_record(self, path: str, kind: str) -> None:
        """Record ``path`` as whited out (``WHITEOUT``) or as an opaque directory (``OPAQUE``)."""
        record = self._record_path(path, kind)
        try:  # one call when the record directory exists, as it does for all but the first
            self.fs.openbin(record, "w").close()
        except errors.ResourceNotFound:
            self.fs.makedirs(dirname(record), recreate=True)
            self.fs.openbin(record, "w").close()

    def remove_record(self, path: str, kind: str) -> None:
        try:
            self.fs.remove(self._record_path(path, kind))
        except errors.ResourceNotFound:
            pass

    def add_whiteout(self, path: str) -> None:
        self.add_record(path, WHITEOUT)

    def add_opaque(self, path: str) -> None:
        self.add_record(path, OPAQUE)

    def drop_markers_below(self, path: str) -> None:
        """Forget every whiteout and opaque record inside the directory ``path``, keeping the
        link records (those are entries, not markers)."""
        pending = [record_dir(path)]
        while pending:
            where = pending.pop()
            for kind in (WHITEOUT, OPAQUE):
                try:
                    self.fs.removetree(where + "/" + kind)
                except errors.ResourceNotFound:
                    pass
            try:
                pending.extend(where + "/" + CHILDREN + "/" + name for name in self.fs.listdir(where + "/" + CHILDREN))
            except errors.ResourceNotFound:
                pass

    def move_records(self, src: str, dst: str) -> None:
        """Move the records of the entries inside the directory ``src`` to ``dst`` (after the
        directory itself moved): the link records inside it are part of the tree."""
        source, destination = record_dir(src), record_dir(dst)
        if not self.fs.exists(source):
            return
        if self.fs.exists(destination):
            self.fs.removetree(destination)  # stale: ``dst`` was no directory of this layer
        self.fs.makedirs(dirname(destination), recreate=True)
        try:
            os.rename(self.fs.getsyspath(source), self.fs.getsyspath(destination))
            return
        except (errors.NoSysPath, OSError):
            pass
        self.fs.movedir(source, destination, create=True)
        if self.fs.exists(source):
            self.fs.removetree(source)

    def drop_records_below(self, path: str) -> None:
        """Forget every record of the entries inside the directory ``path``."""
        try:
            self.fs.removetree(record_dir(path))
        except errors.ResourceNotFound:
            pass
        if path == "/":
            self.fs.makedir(TREE_DIR, recreate=True)

    def staging_path(self) -> str:
        """A fresh name in the staging area (made when the sidecar was opened for writing),
        for a copy-up in progress or a trashed tree."""
        return "%s/%s" % (STAGING_DIR, uuid.uuid4().hex)
