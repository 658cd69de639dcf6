"""The sidecar: whiteout and opaque records kept inside a layer's own filesystem.

The kernel keeps whiteouts as 0/0 character devices and opacity as an xattr. Neither
exists on a MemoryFS, a zip or a cloud bucket, so unionfs keeps them as empty files
under one reserved directory at the root of the layer, ``/.unionfs``::

    /.unionfs/FORMAT            "unionfs-sidecar N\\n": the version, a key of VERSIONS
    /.unionfs/tree/             M(/), the record directory of the root
    M(D)/w/<name>               empty file: D/<name> is whited out in this layer
    M(D)/o/<name>               empty file: the directory D/<name> of this layer is opaque
    M(D)/r/<name>               the lowers' path of the renamed directory D/<name> (redirect)
    M(D)/m/<name>               empty file: D/<name> may be a metadata-only copy-up
    M(D)/l/<name>               the target of the symbolic link D/<name> (a layer whose FS
                                cannot hold links); an entry of the FS itself wins over it
    M(D)/d/<name>/              M(D/<name>), the record directory of the child directory
    /.unionfs/meta/<token>      the data path of a metadata-only copy-up
    /.unionfs/tmp/              staging for copy-up and trash; never part of the view
    /.unionfs/journal/<entry>   an unfinished multi-step operation, rolled forward on open
    /.unionfs/lock              "<pid> <host>": the process using this upper (system-path uppers)

A writer keeps FORMAT at the lowest version of :data:`VERSIONS` whose record kinds cover
what the layer holds (``docs/sidecar.rst``), so a layer that never used a newer kind stays
readable by an older unionfs. A multi-step operation that no ordering makes atomic
(``movedir`` of a merged tree, ``removetree("/")``) first writes its intent to
``/.unionfs/journal`` (staged in ``tmp`` and renamed into place) and deletes it when done;
an overlay opening the upper finishes (rolls forward) every pending entry before anything
else. While an entry is pending FORMAT names the journal twin of its version (2 for 1, 4
for 3, 6 for 5, 8 for 7): readers that cannot finish it refuse the layer instead of
showing the half-done operation.

Records, containers and child names live in separate sub-directories, so any user
name maps to a record without escaping. Every record is one file: creating or
removing one costs the same however many exist, and each write is atomic on any
filesystem that creates files atomically. Records of a layer apply only where that
layer has the parent directory, exactly as a kernel whiteout lives in its directory.
"""

from __future__ import annotations

import errno
import os
import stat
import uuid
from typing import Dict, FrozenSet, NoReturn, Optional, Set, Tuple

import attr

from .. import _fsimport  # noqa: F401
from fs import errors
from fs.base import FS
from fs.copy import copy_dir
from fs.error_tools import convert_os_errors
from fs.osfs import OSFS
from fs.path import basename, dirname, iteratepath

from ..errors import SidecarError
from .durable import Syncer
from .nofollow import is_link, remove_entry, syspath
from .treecache import BoundedSet, TreeCache

RESERVED_NAME = ".unionfs"
SIDECAR_DIR = "/" + RESERVED_NAME
FORMAT_PATH = SIDECAR_DIR + "/FORMAT"
TREE_DIR = SIDECAR_DIR + "/tree"
STAGING_DIR = SIDECAR_DIR + "/tmp"
JOURNAL_DIR = SIDECAR_DIR + "/journal"
LOCK_PATH = SIDECAR_DIR + "/lock"

#: directories whose record kinds a sidecar remembers at most (least recently used go first)
RECORD_DIR_LIMIT = 100_000
#: sidecar directories a sidecar remembers as checked not to be links, at most (the oldest
#: checked go first: forgetting one costs an ``lstat`` when it is next needed)
REAL_DIR_LIMIT = 100_000
_MISSING = object()

#: the metacopy table: one file per metadata-only copy-up, named by its token, holding its data path
METACOPY_DIR = SIDECAR_DIR + "/meta"

WHITEOUT = "w"  # record kinds, also the names of their sub-directories
OPAQUE = "o"
REDIRECT = "r"  # content: the absolute path the lowers hold this directory at
METACOPY = "m"  # empty: the file of this name may be a metadata-only copy-up (see METACOPY_DIR)
LINK = "l"  # M(D)/l/<name>: D/<name> is a symbolic link; the file holds the target (UTF-8)
CHILDREN = "d"
#: what a metadata-only upper file holds: this prefix and its token, nothing of the data
METACOPY_MAGIC = b"unionfs-metacopy "
METACOPY_FILE_SIZE = len(METACOPY_MAGIC) + 32 + 1  # magic, a uuid4 in hex, a newline


@attr.s(frozen=True, slots=True)
class Format:
    """One FORMAT version: the record kinds its layers may hold, and whether a journal entry
    may be pending (a reader of that version finishes it or refuses the layer)."""

    kinds: FrozenSet[str] = attr.ib()
    journal: bool = attr.ib()


_BASE = frozenset({WHITEOUT, OPAQUE, CHILDREN})
_RENAMES = _BASE | {REDIRECT, METACOPY}
_LINKS = _BASE | {LINK}
#: Every FORMAT version this unionfs reads, the one table that versioning follows. A writer
#: keeps the lowest version whose kinds cover what the layer holds, so a layer that never used
#: a newer record kind stays readable by an older unionfs; a reader refuses any version not here.
VERSIONS: Dict[int, Format] = {
    1: Format(_BASE, journal=False),
    2: Format(_BASE, journal=True),
    3: Format(_RENAMES, journal=False),  # version 1 plus redirect and metacopy records
    4: Format(_RENAMES, journal=True),
    5: Format(_LINKS, journal=False),  # version 1 plus link records
    6: Format(_LINKS, journal=True),
    7: Format(_RENAMES | _LINKS, journal=False),  # both
    8: Format(_RENAMES | _LINKS, journal=True),
}
#: the version a new sidecar starts at
FORMAT_VERSION = 1
#: the version FORMAT reads while an operation is pending in a version 1 sidecar
JOURNAL_FORMAT_VERSION = 2
FORMAT_TEXT = "unionfs-sidecar %d\n" % FORMAT_VERSION
NEWEST_VERSION = max(VERSIONS)


def version_for(kinds: FrozenSet[str], journal: bool) -> int:
    """The lowest version that holds ``kinds``, with or without a pending journal."""
    return min(v for v, f in VERSIONS.items() if kinds <= f.kinds and f.journal == journal)


#: the record kinds a directory's records can be of
_KINDS = (WHITEOUT, OPAQUE, REDIRECT, METACOPY, LINK)
_KIND_SET = frozenset(_KINDS)


_CHILD_SEP = "/%s/" % CHILDREN


def _split(path: str) -> Tuple[str, str]:
    """``fs.path.split`` (dirname, basename) without its calls: it runs for every name a cold
    lookup asks the upper's records about."""
    cut = path.rfind("/")
    if cut < 0:
        return "", path
    return path[:cut] or "/", path[cut + 1:]


def record_dir(dir_path: str) -> str:
    """M(dir_path): where the records of the entries of ``dir_path`` live."""
    if dir_path == "/":
        return TREE_DIR
    if dir_path[:1] != "/" or "//" in dir_path or "/." in dir_path or dir_path[-1:] == "/":
        # perhaps not normalised (or only a component starting with "."): its components tell
        parts = dir_path.split("/")
        if parts[0] or "" in parts[1:] or "." in parts or ".." in parts:  # not normalised: the slow way
            return TREE_DIR + "".join("/%s/%s" % (CHILDREN, part) for part in iteratepath(dir_path))
    # normalised: one replace, not iteratepath's regex nor a split and join (this runs for every
    # name a cold lookup asks the upper's records about)
    return TREE_DIR + _CHILD_SEP + dir_path[1:].replace("/", _CHILD_SEP)


LINK_REASON = "a symbolic link in the sidecar (unionfs never follows one: remove it by hand)"


def _refuse_links(layer_fs: FS) -> None:
    """Refuse a sidecar whose fixed parts are links: records, staging and the journal would
    live wherever they point, and emptying the staging area would delete the files there."""
    if syspath(layer_fs, "/") is None:
        return
    for where in (SIDECAR_DIR, FORMAT_PATH, TREE_DIR, STAGING_DIR, JOURNAL_DIR, LOCK_PATH, METACOPY_DIR):
        if is_link(layer_fs, where):
            raise SidecarError(where, LINK_REASON)


def read_text(layer_fs: FS, path: str, what: str) -> str:
    """A sidecar file as UTF-8 text; bytes that are not UTF-8 are damage, not a crash."""
    data = layer_fs.readbytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SidecarError(path, "%s is not UTF-8 text (%s)" % (what, error)) from None


def _torn_format(layer_fs: FS) -> bool:
    """Whether FORMAT is empty, zeros, or a line cut short: what a power cut leaves of a
    FORMAT whose data never reached the disk."""
    try:
        data = layer_fs.readbytes(FORMAT_PATH)
    except errors.FSError:
        return False
    data = data.rstrip(b"\0")
    if data.endswith(b"\n"):
        return False
    return any(("unionfs-sidecar %d\n" % version).encode().startswith(data) for version in VERSIONS)


def _kinds_held(layer_fs: FS) -> FrozenSet[str]:
    """The record kinds some record directory of the layer holds, with the base kinds (read
    only when FORMAT must be restored, so the whole record tree is read)."""
    from .walk import fs_tree  # (walk reads layers, which hold sidecars: imported late)

    held = set(_BASE)
    if layer_fs.isdir(METACOPY_DIR) and not layer_fs.isempty(METACOPY_DIR):
        held.add(METACOPY)
    for entry in fs_tree(layer_fs, TREE_DIR):
        # TREE_DIR/(d/<name>/)*<kind>/<record>: a kind is an even step down, a name an odd one
        parts = entry.path[len(TREE_DIR) + 1 :].split("/")
        if entry.info.is_dir and len(parts) % 2 == 1 and parts[-1] in _KINDS:
            held.add(parts[-1])
    return frozenset(held)


def sys_root(layer_fs: FS) -> Optional[str]:
    """The OS path of an OSFS layer's root (no trailing slash), else ``None``: on a plain OS
    directory one record is one ``lstat``."""
    if type(layer_fs) is not OSFS:
        return None
    try:
        root = layer_fs.getsyspath("/")
    except errors.NoSysPath:
        return None
    return root[:-1] if root.endswith("/") else root


def metacopy_token(head: bytes) -> Optional[str]:
    """The token of a metadata-only upper file's content, or ``None`` for any other content."""
    if len(head) != METACOPY_FILE_SIZE or not head.startswith(METACOPY_MAGIC) or not head.endswith(b"\n"):
        return None
    token = head[len(METACOPY_MAGIC):-1]
    try:
        text = token.decode("ascii")
        int(text, 16)
    except ValueError:
        return None
    return text


def rename_dir(layer_fs: FS, src: str, dst: str) -> None:
    """Move a directory within one layer: one rename(2) where it has system paths; MemoryFS
    (also behind WrapFS/SubFS) moves the entry itself; others copy, then delete."""
    try:
        os.rename(layer_fs.getsyspath(src), layer_fs.getsyspath(dst))
        return
    except (errors.NoSysPath, OSError):
        pass
    layer_fs.movedir(src, dst, create=True)


def _fs_error(where: str, error: OSError) -> NoReturn:
    """Raise the FS error that listing the sidecar directory ``where`` failing with ``error``
    raises everywhere else (:meth:`Sidecar._list`'s ``convert_os_errors``)."""
    with convert_os_errors("scandir", where, directory=True):
        raise error


def is_reserved(path: str) -> bool:
    """Whether an absolute, normalised path names the sidecar or something inside it."""
    return path == SIDECAR_DIR or path.startswith(SIDECAR_DIR + "/")


class Sidecar:
    """Reads, and for the upper writes, the records of one layer."""

    def __init__(self, layer_fs: FS, version: int = FORMAT_VERSION, sync: Optional[Syncer] = None) -> None:
        self.fs = layer_fs
        #: only a layer with system paths can hold links; record directories checked not to be one
        link_root = syspath(layer_fs, "/")
        self._may_link = link_root is not None
        #: the OS path of the root wherever links can exist (no trailing slash)
        self._link_root = (link_root[:-1] if link_root.endswith("/") else link_root) if link_root else ""
        #: sidecar directories known to be real directories, not links (see :meth:`_no_link`)
        self._real = BoundedSet(REAL_DIR_LIMIT)
        self._sys_root = sys_root(layer_fs)
        #: record kinds present per directory (see :meth:`_kinds_at`)
        self._kinds: TreeCache[FrozenSet[str]] = TreeCache(RECORD_DIR_LIMIT)
        #: what FORMAT says (a key of VERSIONS)
        self.version = version
        #: makes records, FORMAT and journal entries durable before they count (upper only)
        self.sync = sync if sync is not None else Syncer(layer_fs, volatile=True)

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, layer_fs: FS, create: bool, volatile: bool = False) -> Optional["Sidecar"]:
        """The layer's sidecar; ``None`` for a plain layer, created first if ``create``. The
        upper's (``create``) syncs what it writes unless ``volatile``."""
        sync = Syncer(layer_fs, volatile=volatile or not create)
        _refuse_links(layer_fs)
        if layer_fs.exists(SIDECAR_DIR):
            if not layer_fs.isdir(SIDECAR_DIR):
                raise SidecarError(SIDECAR_DIR, "it is a file, not a directory")
            if cls._never_completed(layer_fs):
                # its creation was interrupted (a crash, a power cut before FORMAT was
                # durable): nothing was ever recorded in it
                return cls._create(layer_fs, sync) if create else None
            if create and _torn_format(layer_fs):
                version = cls._restore_format(layer_fs, sync)
            else:
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
            return cls(layer_fs, version, sync)
        if not create:
            return None
        return cls._create(layer_fs, sync)

    @classmethod
    def _create(cls, layer_fs: FS, sync: Syncer) -> "Sidecar":
        """Make (or finish making) the sidecar. FORMAT comes last, staged, synced and renamed
        into place, so a sidecar without a complete FORMAT was never completed and is made again."""
        for directory in (SIDECAR_DIR, TREE_DIR, STAGING_DIR):
            layer_fs.makedir(directory, recreate=True)
        sidecar = cls(layer_fs, sync=sync)
        sync.dirs("/", SIDECAR_DIR)
        sidecar._write_format(FORMAT_TEXT, overwrite=True)  # over one a power cut left torn
        return sidecar

    def _write_format(self, text: str, overwrite: bool) -> None:
        """Put ``text`` in FORMAT atomically and durably: staged, synced, renamed, directory synced."""
        staged = self.staging_path()
        self.fs.writetext(staged, text)
        self.sync.path(staged)
        self.fs.move(staged, FORMAT_PATH, overwrite=overwrite)
        self.sync.dir(SIDECAR_DIR)

    @staticmethod
    def _never_completed(layer_fs: FS) -> bool:
        """A sidecar whose creation was interrupted: no FORMAT (or one a power cut left empty
        or half-written) and no record or journal yet (a sidecar that has those but lost
        FORMAT is damaged, not unfinished)."""
        if layer_fs.exists(JOURNAL_DIR):
            return False
        if layer_fs.exists(FORMAT_PATH) and not _torn_format(layer_fs):
            return False
        return not layer_fs.exists(TREE_DIR) or (layer_fs.isdir(TREE_DIR) and layer_fs.isempty(TREE_DIR))

    @classmethod
    def _restore_format(cls, layer_fs: FS, sync: Syncer) -> int:
        """Rewrite a FORMAT that a power cut left empty or cut short (written without a sync:
        by a ``volatile`` overlay or an older unionfs): the lowest version that holds the record
        kinds the layer has, its journal version if the journal has entries."""
        journal = layer_fs.isdir(JOURNAL_DIR) and not layer_fs.isempty(JOURNAL_DIR)
        version = version_for(_kinds_held(layer_fs), journal)
        cls(layer_fs, sync=sync)._write_format("unionfs-sidecar %d\n" % version, overwrite=True)
        return version

    @staticmethod
    def _check_format(layer_fs: FS) -> int:
        try:
            text = read_text(layer_fs, FORMAT_PATH, "FORMAT")
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

    @property
    def journal_pending(self) -> bool:
        """Whether FORMAT says an operation may be pending in the journal."""
        return VERSIONS[self.version].journal

    def set_journal(self, pending: bool) -> None:
        """FORMAT says whether a journal entry may be pending, keeping the record kinds."""
        self.set_version(version_for(VERSIONS[self.version].kinds, pending))

    def require(self, kind: str) -> None:
        """Make FORMAT name a version that holds records of ``kind`` before the first is written,
        so that a reader too old for them refuses the layer instead of showing it wrongly."""
        current = VERSIONS[self.version]
        if kind not in current.kinds:
            self.set_version(version_for(current.kinds | {kind}, current.journal))

    def set_version(self, version: int) -> None:
        """Atomically rewrite FORMAT to say ``version`` (staged, then renamed over it)."""
        if version == self.version:
            return
        self._write_format("unionfs-sidecar %d\n" % version, overwrite=True)
        self.version = version

    # -- reading -----------------------------------------------------------------------------

    def _no_link(self, where: str) -> None:
        """Refuse a record directory reached through a link: its records would be read from, and
        written to, wherever the link points."""
        if not self._may_link:
            return
        real = self._real
        # only the components below the deepest one known to be real are asked, top-down (a
        # record directory's parent was checked when it was listed: usually one lstat or none)
        unknown = []
        current = where
        while current not in real and current != "/":
            unknown.append(current)
            current = current[: current.rfind("/")] or "/"
        root = self._link_root
        for current in reversed(unknown):
            try:
                mode = os.lstat(root + current).st_mode
            except (FileNotFoundError, NotADirectoryError):
                return  # nothing below a missing component exists either
            except OSError as error:
                raise SidecarError(current, "cannot read the record directory: %s" % error) from error
            if stat.S_ISLNK(mode):
                raise SidecarError(current, LINK_REASON)
            if stat.S_ISDIR(mode):
                real.add(current)

    def _names(self, dir_path: str, kind: str) -> FrozenSet[str]:
        where = record_dir(dir_path) + "/" + kind
        try:
            records = self._list(where)
        except errors.ResourceNotFound:
            return frozenset()
        except errors.DirectoryExpected:
            raise SidecarError(where, "a record directory is a file") from None
        self._no_link(where)  # only what exists can be a link: checked once it was found
        for name, is_dir in records.items():
            if is_dir:
                raise SidecarError(where + "/" + name, "a record is a directory")
        return frozenset(records)

    def _list(self, where: str) -> Dict[str, bool]:
        """Name -> is_dir of the sidecar directory ``where`` (one ``os.scandir`` on an OSFS)."""
        if self._sys_root is not None:
            with convert_os_errors("scandir", where, directory=True):
                with os.scandir(self._sys_root + where) as scan:
                    return {entry.name: entry.is_dir(follow_symlinks=False) for entry in scan}
        return {info.name: info.is_dir for info in self.fs.scandir(where)}

    def _list_real(self, where: str) -> Optional[Dict[str, bool]]:
        """:meth:`_list` of ``where``, an OS directory whose parent is known to be real, opened
        with ``O_NOFOLLOW | O_DIRECTORY``: what it lists is a real directory too, known without
        an ``lstat`` of its own (:meth:`_no_link`). ``None`` where ``where`` is not a directory
        or is a link (Linux says ENOTDIR for either): :meth:`_list` and :meth:`_no_link` tell
        which, as for any other record directory."""
        assert self._sys_root is not None
        # (OS errors converted where they happen, not in a convert_os_errors block around it
        # all: this runs once per directory of a cold lookup, and its context costs a listing)
        try:
            fd = os.open(self._sys_root + where, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as error:
            if error.errno in (errno.ENOTDIR, errno.ELOOP):
                return None
            _fs_error(where, error)
        try:
            with os.scandir(fd) as scan:
                listing = {entry.name: entry.is_dir(follow_symlinks=False) for entry in scan}
        except OSError as error:
            _fs_error(where, error)
        finally:
            os.close(fd)
        self._real.add(where)  # (the listing proved it real: _no_link need not ask again)
        return listing

    def whiteouts(self, dir_path: str) -> FrozenSet[str]:
        """Names whited out in ``dir_path`` of this layer."""
        return self._names(dir_path, WHITEOUT)

    def opaque_names(self, dir_path: str) -> FrozenSet[str]:
        """Names of the children of ``dir_path`` that are opaque directories in this layer."""
        return self._names(dir_path, OPAQUE)

    def records(self, dir_path: str) -> Tuple[Set[str], Set[str], Set[str]]:
        """The whiteout, opaque and link-record names of ``dir_path``: only the record kinds
        that M(dir_path) has are read (most directories have none: then this reads nothing more)."""
        kinds = self._kinds_at(dir_path)
        whiteouts = set(self._names(dir_path, WHITEOUT)) if WHITEOUT in kinds else set()
        opaque = set(self._names(dir_path, OPAQUE)) if OPAQUE in kinds else set()
        links = set(self._names(dir_path, LINK)) if LINK in kinds else set()
        return whiteouts, opaque, links

    def _kinds_at(self, dir_path: str) -> FrozenSet[str]:
        """Which record kinds (``w``, ``o``, and from version 3 ``l``) M(dir_path) holds: one
        listing of it, remembered (every record written or dropped goes through this object,
        which keeps it true)."""
        cached = self._kinds.get(dir_path, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        where = record_dir(dir_path)
        try:
            listing = None
            if self._sys_root is not None and self._may_link and where[: where.rfind("/")] in self._real:
                listing = self._list_real(where)  # only the last component is unknown
            if listing is None:
                listing = self._list(where)
                self._no_link(where)  # found: it must not have been reached through a link
        except (errors.ResourceNotFound, errors.DirectoryExpected):
            listing = {}  # (a record directory that is a file is junk: fsck reports it)
        kinds = _KIND_SET.intersection(listing)
        for kind in _KINDS if kinds else ():
            if kind in kinds and not listing[kind]:
                linked = self._may_link and is_link(self.fs, where + "/" + kind)
                raise SidecarError(where + "/" + kind, LINK_REASON if linked else "a record directory is a file")
        if self._sys_root is not None and listing:
            # os.scandir's is_dir does not follow links: what it calls a directory is a real one,
            # so its records (and M of its children, under d/) need no lstat of their own
            self._real.add_all(where + "/" + name for name, is_dir in listing.items() if is_dir)
        self._kinds.put(dir_path, kinds)
        return kinds

    #: which record kinds the directory ``dir_path`` has (remembered): :meth:`_kinds_at`
    kinds = _kinds_at

    def forget(self) -> None:
        """Forget what is remembered of the record directories (the layer changed behind us)."""
        self._kinds.clear()
        self._real.clear()

    def has_record(self, path: str, kind: str) -> bool:
        """Whether ``path`` has a record of ``kind``, asked of that one record (not its directory;
        nothing at all where the directory has no records of that kind)."""
        dir_path, name = _split(path)
        if kind not in self._kinds_at(dir_path):
            return False
        return self.record_exists(dir_path, name, kind)

    def record_exists(self, dir_path: str, name: str, kind: str) -> bool:
        """:meth:`has_record` of ``dir_path``/``name`` once the caller knows from :meth:`kinds`
        that ``dir_path`` has records of ``kind`` (one ``lstat`` of the record on disk)."""
        record = "%s/%s/%s" % (record_dir(dir_path), kind, name)
        if self._sys_root is not None:
            try:
                mode = os.lstat(self._sys_root + record).st_mode
            except FileNotFoundError:
                return False
            except NotADirectoryError:
                raise SidecarError(dirname(record), "a record directory is a file") from None
            except OSError as error:
                raise SidecarError(record, "cannot read the record: %s" % error) from error
            if stat.S_ISDIR(mode):
                raise SidecarError(record, "a record is a directory")
            return True
        try:
            if self.fs.getinfo(record).is_dir:
                raise SidecarError(record, "a record is a directory")
        except errors.ResourceNotFound:
            return False
        except errors.DirectoryExpected:
            raise SidecarError(dirname(record), "a record directory is a file") from None
        return True

    def link_names(self, dir_path: str) -> FrozenSet[str]:
        """Names of the children of ``dir_path`` that are symbolic links kept as records
        (version 3 on; a version 1 sidecar has none)."""
        if LINK not in self._kinds_at(dir_path):
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
        """Record ``path`` as a symbolic link to ``target`` (never seen half-written)."""
        self._write_record(path, LINK, target.encode("utf-8", "surrogateescape"))

    def _record_path(self, path: str, kind: str) -> str:
        return self._record_in(*_split(path), kind)

    @staticmethod
    def _record_in(dir_path: str, name: str, kind: str) -> str:
        return "%s/%s/%s" % (record_dir(dir_path), kind, name)

    def redirects(self, dir_path: str) -> Dict[str, str]:
        """Redirect records in ``dir_path``: child name -> the absolute path its lower contents
        are at (meaningful only for the child directories of this layer)."""
        if REDIRECT not in self._kinds_at(dir_path):
            return {}
        where = record_dir(dir_path) + "/" + REDIRECT
        result = {}
        for name in self._names(dir_path, REDIRECT):
            record = where + "/" + name
            try:
                target = self.fs.readbytes(record).decode("utf-8")
            except UnicodeDecodeError:
                raise SidecarError(record, "a redirect record that is not UTF-8") from None
            except errors.ResourceNotFound:
                continue  # removed while we listed
            if not target.startswith("/") or "\0" in target:
                raise SidecarError(record, "a redirect record without an absolute path")
            result[name] = target
        return result

    def metacopy_hints(self, dir_path: str) -> FrozenSet[str]:
        """Names in ``dir_path`` that may be metadata-only copy-ups (see :meth:`metacopy_origin`)."""
        if METACOPY not in self._kinds_at(dir_path):
            return frozenset()
        return self._names(dir_path, METACOPY)

    def metacopy_origin(self, path: str) -> Optional[str]:
        """The lower path the data of the upper file ``path`` is at, if that file is a live
        metadata-only copy-up: it holds a token whose entry is in the metacopy table. A file
        with any other content is an ordinary file (a record left by a crash hides nothing)."""
        try:
            with self.fs.openbin(path, "r") as handle:
                head = handle.read(METACOPY_FILE_SIZE + 1)
        except (errors.ResourceNotFound, errors.FileExpected):
            return None
        token = metacopy_token(head)
        if token is None:
            return None
        entry = METACOPY_DIR + "/" + token
        try:
            origin = self.fs.readbytes(entry).decode("utf-8")
        except (errors.ResourceNotFound, errors.FileExpected):
            return None
        except UnicodeDecodeError:
            raise SidecarError(entry, "a metacopy entry that is not UTF-8") from None
        if not origin.startswith("/"):
            raise SidecarError(entry, "a metacopy entry without an absolute path")
        return origin

    # -- writing (upper only) ------------------------------------------------------------------

    def set_redirect(self, path: str, target: str) -> None:
        """Record that the directory ``path`` of this layer has its lower contents at ``target``."""
        self._write_record(path, REDIRECT, target.encode("utf-8"))

    def _write_record(self, path: str, kind: str, content: bytes) -> None:
        """Write the ``kind`` record of ``path`` holding ``content``: whole and synced in the
        staging area, then renamed into place (never seen half-written), its directory synced
        before the step that relies on it. FORMAT names a version with ``kind`` records first
        (a reader too old for them refuses the layer instead of missing them)."""
        self.require(kind)
        record = self._record_path(path, kind)
        self._no_link(dirname(record))
        staged = self.staging_path()
        self.fs.writebytes(staged, content)
        self.sync.path(staged)  # whole on the disk before it is a record
        try:
            self.fs.move(staged, record, overwrite=True)
        except errors.ResourceNotFound:
            self.fs.makedirs(dirname(record), recreate=True)
            self.fs.move(staged, record, overwrite=True)
            self._sync_made_dirs(dirname(record))
        self.sync.dir(dirname(record))
        self._note_kind(dirname(path), kind)

    def new_metacopy(self, origin: str) -> bytes:
        """Enter a metadata-only copy-up of the lower data at ``origin`` in the table; returns
        the content its upper file must hold."""
        self.require(METACOPY)
        token = uuid.uuid4().hex
        staged = self.staging_path()
        self.fs.writebytes(staged, origin.encode("utf-8"))
        self.sync.path(staged)
        try:
            self.fs.move(staged, METACOPY_DIR + "/" + token)
        except errors.ResourceNotFound:
            self.fs.makedir(METACOPY_DIR, recreate=True)
            self.fs.move(staged, METACOPY_DIR + "/" + token)
            self.sync.dir(SIDECAR_DIR)
        self.sync.dir(METACOPY_DIR)  # the entry is durable before a file names it
        return METACOPY_MAGIC + token.encode("ascii") + b"\n"

    def drop_metacopy(self, content: bytes) -> None:
        """Forget the table entry of a metadata-only file whose upper file held ``content``."""
        token = metacopy_token(content)
        if token is not None:
            try:
                self.fs.remove(METACOPY_DIR + "/" + token)
            except errors.ResourceNotFound:
                return
            self.sync.dir(METACOPY_DIR)

    def copy_records_below(self, src: str, dst: str) -> None:
        """Copy every record inside directory ``src`` to directory ``dst`` (whose own records
        are gone): a rename of ``src`` to ``dst`` then carries them in one step."""
        source = record_dir(src)
        if not self.fs.isdir(source):
            return
        self._no_link(source)
        target = record_dir(dst)
        self.fs.makedirs(dirname(target), recreate=True)
        self._no_link(dirname(target))
        staged = self.staging_path()
        copy_dir(self.fs, source, self.fs, staged)
        self._sync_tree(staged)  # the copies whole on the disk before the rename shows them
        rename_dir(self.fs, staged, target)
        self._sync_made_dirs(target)
        self._kinds.discard(dst)
        self._kinds.forget_below(dst)

    def _sync_tree(self, path: str) -> None:
        """fsync every file and directory below ``path`` and ``path`` itself (a no-op where
        the upper has no system paths or is volatile)."""
        if not self.sync.enabled:
            return
        from .walk import fs_tree  # (walk reads layers, which hold sidecars: imported late)

        for entry in list(fs_tree(self.fs, path)):
            self.sync.path(entry.path)
        self.sync.path(path)

    def _note_kind(self, dir_path: str, kind: str) -> None:
        kinds = self._kinds.peek(dir_path)
        if kinds is not None and kind not in kinds:  # type: ignore[operator]
            self._kinds.put(dir_path, kinds | {kind})  # type: ignore[operator]

    def add_record(self, path: str, kind: str) -> None:
        """Record ``path`` as whited out (``WHITEOUT``) or as an opaque directory (``OPAQUE``)."""
        record = self._record_path(path, kind)
        self._no_link(dirname(record))
        try:  # one call when the record directory exists, as it does for all but the first
            self._create_empty(record)
        except errors.ResourceNotFound:
            self.fs.makedirs(dirname(record), recreate=True)
            self._create_empty(record)
            self._sync_made_dirs(dirname(record))
        self.sync.dir(dirname(record))  # durable before the step that relies on it
        self._note_kind(dirname(path), kind)

    def _sync_made_dirs(self, made: str) -> None:
        """Sync the parents of the record directories ``makedirs`` may have just made."""
        while made != TREE_DIR and made.startswith(TREE_DIR + "/"):
            made = dirname(made)
            self.sync.dir(made)

    def _create_empty(self, record: str) -> None:
        """Create the empty file ``record``: on a plain OS directory one ``open``/``close``,
        not a trip through the FS's buffered file objects."""
        if self._sys_root is None:
            self.fs.openbin(record, "w").close()
            return
        with convert_os_errors("openbin", record):  # the errors OSFS.openbin would raise
            os.close(os.open(self._sys_root + record, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666))

    def remove_record(self, path: str, kind: str) -> None:
        record = self._record_path(path, kind)
        try:
            self.fs.remove(record)
        except errors.ResourceNotFound:
            return
        self.sync.dir(dirname(record))

    def drop_kind(self, dir_path: str, kind: str) -> None:
        """Forget every record of ``kind`` of the entries of the directory ``dir_path``."""
        self.forget_checked()
        self._kinds.discard(dir_path)
        try:
            remove_entry(self.fs, record_dir(dir_path) + "/" + kind)
        except errors.ResourceNotFound:
            return
        self.sync.dir(record_dir(dir_path))
    def drop_markers_below(self, path: str) -> None:
        """Forget every whiteout and opaque record inside the directory ``path``, keeping the
        link records (those are entries, not markers)."""
        self._kinds.discard(path)
        self._kinds.forget_below(path)
        pending = [record_dir(path)]
        while pending:
            where = pending.pop()
            for kind in (WHITEOUT, OPAQUE):
                try:
                    self.fs.removetree(where + "/" + kind)
                except errors.ResourceNotFound:
                    continue
                self.sync.dir(where)
            try:
                pending.extend(where + "/" + CHILDREN + "/" + name for name in self.fs.listdir(where + "/" + CHILDREN))
            except errors.ResourceNotFound:
                pass

    def drop_records_below(self, path: str) -> None:
        """Forget every record of the entries inside the directory ``path``."""
        self.forget_checked()
        self._kinds.discard(path)
        self._kinds.forget_below(path)
        where = record_dir(path)
        try:
            remove_entry(self.fs, where)
        except errors.ResourceNotFound:
            return
        if path == "/":
            self.fs.makedir(TREE_DIR, recreate=True)
        self.sync.dir(dirname(where))

    def forget_checked(self) -> None:
        """Forget which record directories were checked (after they were removed or replaced)."""
        self._real.clear()

    def staging_path(self) -> str:
        """A fresh name in the staging area (made when the sidecar was opened for writing),
        for a copy-up in progress or a trashed tree."""
        return "%s/%s" % (STAGING_DIR, uuid.uuid4().hex)
