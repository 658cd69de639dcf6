"""Tar and zip archives as read-only lower layers.

``fs.tarfs.ReadTarFS`` and ``fs.zipfs.ReadZipFS`` (fs 2.4.16 and fs-next alike) are
fine for extracting a file or two, but not as overlay lowers:

- ReadTarFS declares itself ``case_insensitive`` (it is not), which would make the
  whole overlay claim case-insensitivity; its ``isdir``/``listdir`` scan every
  member on each call; hard links are typed as symlinks and cannot be opened; a
  file that other members use as a directory is a file whose children can be read
  but not listed; members with ``..`` are dropped without a word.
- ReadZipFS builds its directory tree in a MemoryFS on first use, and that first
  listing fails (``IllegalBackReference``, ``DirectoryExpected``) for a member named
  with ``..`` or a file/directory clash; absolute member names are listed, but
  reading them raises a bare ``KeyError``.

:class:`ArchiveFS` reads the member table once into a normalised index (implied
directories included), serves listings from it, and streams member data straight
from the archive under a lock, so large members are never held in memory. Hostile
names are dealt with by one documented policy (see :func:`normalise_member_name`
and :class:`ArchiveFS`).
"""

from __future__ import annotations

import functools
import io
import lzma
import os
import stat
import tarfile
import zipfile
import zlib
from datetime import datetime
from typing import IO, Any, BinaryIO, Callable, Collection, Dict, Iterator, List, Optional, Tuple, Union, cast

import attr

from .. import _fsimport  # noqa: F401
from fs import errors
from fs.base import FS
from fs.info import Info
from fs.opener.parse import parse_fs_url
from fs.path import basename
from fs.time import datetime_to_epoch

from ..core.treecache import parent_of
from ..errors import LOW_LEVEL_ERRORS, ArchiveTooLarge, LayerFormatError, UnsafeArchive, UnsupportedLayer, convert_errors, unsupported_layer
from ..io import LockedReader, WindowReader
from .archive_index import MAX_LINK_HOPS, TAR_KINDS, ArchiveIndexFS, buffered, member_info, normalise, permission_names, tar_access, text_name
from . import tarscan
from .oci.blobs import GZIP_MAGIC, GzipStream

#: what ``unsafe=`` accepts: raise :class:`UnsafeArchive`, or leave the member out
UNSAFE_POLICIES = ("error", "skip")


@attr.s(frozen=True, slots=True)
class Skipped:
    """A member left out of the view, and why."""

    member: str = attr.ib()
    reason: str = attr.ib()


@attr.s(frozen=True, slots=True)
class _Member:
    """One archive member as the layer exposes it."""

    path: str = attr.ib()  # absolute, normalised
    is_dir: bool = attr.ib()
    size: int = attr.ib(default=0)
    modified: Optional[float] = attr.ib(default=None)
    access: Optional[Dict[str, Any]] = attr.ib(default=None)
    link_target: Optional[str] = attr.ib(default=None)
    #: a symbolic link (``link_target`` is what it points to); else a hard link's target name
    is_symlink: bool = attr.ib(default=False)
    #: where the member's data starts in the (uncompressed) archive: reading members in this
    #: order reads the archive in one pass
    data_offset: int = attr.ib(default=0)
    #: opens the member's data; ``None`` for directories and symbolic links
    opener: Optional[Callable[[], IO[bytes]]] = attr.ib(default=None, eq=False, repr=False)


def normalise_member_name(name: str) -> Optional[str]:
    """The absolute view path of a member name, ``None`` for the root, or ``ValueError``: the
    archive lowers' policy of :func:`~unionfs.formats.archive_index.normalise`. A ``..``
    component anywhere is refused: inside the archive it is never needed, and pointing
    outside it is the classic path-traversal attack.
    """
    path = normalise(name, dotdot="refuse")
    return None if path == "/" else path


def _zip_name(info: zipfile.ZipInfo) -> str:
    """A zip member name as text: names without the UTF-8 flag are CP437 by the zip spec,
    but many tools write UTF-8 there anyway; take UTF-8 where the bytes are valid UTF-8."""
    name = info.filename
    if not info.flag_bits & 0x800:
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return name


#: what reading a damaged member raises inside the standard library
_DAMAGE = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)


class _MemberFile(LockedReader):
    """A read-only stream of one member; every read and seek holds the archive's lock,
    because all members share the archive's one file position. Damage found while reading
    (a bad CRC, a truncated stream) is a :class:`LayerFormatError` naming archive and member."""

    def __init__(self, inner: IO[bytes], lock: Any, name: str, archive: str = "") -> None:
        super().__init__(inner, name, lock)
        self._archive = archive

    def _damaged(self, error: BaseException) -> LayerFormatError:
        return LayerFormatError("damaged archive %s: member %r cannot be read (%s)" % (self._archive, self.name, error))

    def read(self, size: Optional[int] = -1) -> bytes:
        try:
            return super().read(size)
        except _DAMAGE as error:
            raise self._damaged(error) from None

    def readinto(self, buffer: Any) -> int:
        try:
            return super().readinto(buffer)
        except _DAMAGE as error:
            raise self._damaged(error) from None


@attr.s(frozen=True, slots=True)
class ArchiveLimits:
    """How much an archive may make unionfs do when it is opened; past a limit opening raises
    :class:`ArchiveTooLarge` (the defaults are :data:`DEFAULT_LIMITS`; pass ``limits=`` to
    :func:`open_archive`, or set :data:`DEFAULT_LIMITS`, ``--max-members``/``--max-ratio``
    on the command line). ``None`` turns a limit off.

    - ``max_members``: members indexed (each costs about 2 KiB of memory).
    - ``max_ratio``: expanded size over stored size of a compressed archive (a gzip "bomb"
      of 4 MB expanding to 4 GiB has 1,000; ordinary layers stay well under 20). Checked
      from each member header before its data is decompressed, so a bomb costs nothing.
    - ``max_spill`` (not an error): how many uncompressed bytes of a gzip tar are kept in an
      anonymous temporary file, taken while the member table is read (0: none). Reads within
      them decompress nothing, in any order (a second name of a member, a breadth-first walk,
      a comparison in name order); past them reads decompress from checkpoints, in one pass
      when made in :meth:`ArchiveFS.read_order` (see
      :class:`~unionfs.formats.oci.blobs.GzipStream`).
    """

    max_members: Optional[int] = attr.ib(default=500_000)
    max_ratio: Optional[float] = attr.ib(default=200.0)
    max_spill: Optional[int] = attr.ib(default=1024 * 1024 * 1024)


#: the limits :func:`open_archive` applies when given none
DEFAULT_LIMITS = ArchiveLimits()
#: expansion allowed whatever the ratio: small archives of zeros are no threat
_RATIO_SLACK = 16 * 1024 * 1024


def _check_limits(label: str, limits: ArchiveLimits, count: int, expanded: int, stored: Optional[int]) -> None:
    if limits.max_members is not None and count > limits.max_members:
        raise ArchiveTooLarge(
            msg="archive %s has more than %d members (limit max_members, --max-members on the command line: raise it to open the archive)"
            % (label, limits.max_members)
        )
    if limits.max_ratio is not None and stored is not None and expanded > limits.max_ratio * stored + _RATIO_SLACK:
        raise ArchiveTooLarge(
            msg="archive %s expands to more than %g times its stored size of %d bytes (limit max_ratio, --max-ratio on the command line: "
            "a compression bomb, or raise the limit to open it)" % (label, limits.max_ratio, stored)
        )


_Raw = Tuple[str, str, Dict[str, Any]]  # (raw name, kind, attributes)


class ArchiveFS(ArchiveIndexFS):
    """A tar (plain, gzip, bzip2, xz) or zip archive as a read-only filesystem.

    Build it with :func:`open_archive`. Policy for what an archive may contain:

    - absolute names and ``./`` prefixes are made relative; non-UTF-8 names are kept
      with ``\\xNN`` escapes; duplicate names: the last member wins (as on extraction);
    - directories that are only implied by deeper members exist, without metadata;
    - a symbolic link is an entry of its own, whatever its target (absolute, leaving the
      archive, dangling, to a directory): its ``getinfo`` is the link's, with the target in
      the ``link`` namespace, and an overlay resolves it inside the merged view, never on
      the host (:meth:`symlinks_in` tells the overlay which entries are links);
    - a hard link reads as the member it names (a file, or a symbolic link with the same
      target); a hard link to a directory or to no member, devices and FIFOs are left out
      and listed in :attr:`skipped`;
    - *unsafe* members (a ``..`` component in a member's name or a hard link's, a member
      written through a symbolic link of the archive, a file that another member uses as a
      directory) raise :class:`UnsafeArchive` with ``unsafe="error"`` (the default), or are
      left out (and listed in :attr:`skipped`) with ``unsafe="skip"``.
    """

    def __init__(
        self,
        label: str,
        raw_members: List[_Raw],
        unsafe: str,
        closer: Optional[Callable[[], None]],
        stream: Optional[GzipStream] = None,
        source_path: Optional[str] = None,
        keep: Any = None,
    ) -> None:
        super().__init__()
        self._stream = stream
        #: the archive file on disk, if known: how :func:`unionfs.core.identity.identity` knows it
        self.source_path = source_path
        #: an object whose open archive this one reads (a caller's ZipFS closes it when collected)
        self._keep = keep
        if unsafe not in UNSAFE_POLICIES:
            raise ValueError("unsafe must be one of %r, not %r" % (UNSAFE_POLICIES, unsafe))
        self.label = label
        self._unsafe = unsafe
        self._closer = closer
        self._skipped: List[Skipped] = []
        self._members: Dict[str, _Member] = {"/": _Member("/", True)}
        self._children: Dict[str, Dict[str, None]] = {"/": {}}
        self._index(raw_members)

    def __repr__(self) -> str:
        return "ArchiveFS(%r)" % (self.label,)

    @property
    def skipped(self) -> Tuple[Skipped, ...]:
        """Members left out of the view, each with the reason."""
        return tuple(self._skipped)

    # -- building the index -----------------------------------------------------------------------

    def _reject(self, member: str, reason: str, unsafe: bool) -> None:
        if unsafe and self._unsafe == "error":
            raise UnsafeArchive(self.label, member, reason)
        self._skipped.append(Skipped(member, reason))

    def _index(self, raw_members: List[_Raw]) -> None:
        final: Dict[str, Tuple[str, str, Dict[str, Any]]] = {}
        for raw_name, kind, fields in raw_members:
            try:
                path = normalise_member_name(raw_name)
            except ValueError as error:
                self._reject(raw_name, str(error), unsafe=True)
                continue
            if path is None:
                continue  # the archive's own root ("./"): the view's root stands for it
            final.pop(path, None)  # the last member of a name wins, in its own position
            final[path] = (raw_name, kind, fields)
        self._drop_clashes(final)
        links: Dict[str, Tuple[str, str, Dict[str, Any]]] = {}
        for path, (raw_name, kind, fields) in final.items():
            if kind in ("symlink", "hardlink"):
                links[path] = (raw_name, kind, fields)
            elif kind in ("file", "directory"):
                self._add(_Member(path, kind == "directory", **fields))
            else:
                article = "an" if kind[0] in "aeiou" else "a"
                self._reject(raw_name, "is %s %s, which a layer cannot hold" % (article, kind), unsafe=False)
                self._ensure_dir(parent_of(path))  # the member still implies its directory
        for path, (raw_name, kind, fields) in links.items():
            if not self._add_link(path, raw_name, kind, fields, final):
                self._ensure_dir(parent_of(path))

    def _drop_clashes(self, final: Dict[str, Tuple[str, str, Dict[str, Any]]]) -> None:
        """A member below a symbolic link of the archive would be written through the link
        on extraction (the classic way out of the target directory): it is refused. Any other
        non-directory member used as the parent of another member is a contradiction."""
        parents = set()
        for path in final:
            parent = parent_of(path)
            while parent != "/" and parent not in parents:
                parents.add(parent)
                parent = parent_of(parent)
        symlinks = {p for p in parents if final.get(p, ("", ""))[1] == "symlink"}
        if symlinks:
            for path in sorted(final):
                through = next((link for link in _strict_ancestors(path) if link in symlinks), None)
                if through is not None:
                    raw_name = final.pop(path)[0]
                    self._reject(raw_name, "is written through the symbolic link %r of the archive" % through.lstrip("/"), unsafe=True)
        for parent in sorted(parents - symlinks):
            entry = final.get(parent)
            if entry is not None and entry[1] != "directory":
                del final[parent]
                self._reject(entry[0], "is a %s but other members are inside it" % entry[1], unsafe=True)

    def _ensure_dir(self, path: str) -> None:
        """Make the implied directory ``path`` (and its parents) exist: a loop up to the first
        ancestor that exists, so a member thousands of levels deep costs no recursion."""
        missing = []
        while path not in self._members:
            missing.append(path)
            path = parent_of(path)
        for directory in reversed(missing):
            self._link(_Member(directory, True))

    def _add(self, member: _Member) -> None:
        self._ensure_dir(parent_of(member.path))
        self._link(member)

    def _link(self, member: _Member) -> None:
        """Enter ``member`` into the index; its parent directory exists."""
        cut = member.path.rfind("/")
        self._members[member.path] = member
        self._children[member.path[:cut] or "/"][member.path[cut + 1 :]] = None
        if member.is_dir:
            self._children.setdefault(member.path, {})

    def _add_link(self, path: str, raw_name: str, kind: str, fields: Dict[str, Any], final: Dict[str, Any]) -> bool:
        """Add a symbolic link as itself (its target is never looked at here), a hard link as
        the member it names; ``False`` if it was left out."""
        target_name = fields["link_target"]
        if kind == "symlink":
            size = len(text_name(target_name).encode("utf-8"))
            self._add(_Member(path, False, size=size, is_symlink=True, **dict(fields, link_target=text_name(target_name))))
            return True
        current_path, current_kind, current_target = path, kind, target_name
        for _ in range(MAX_LINK_HOPS + 1):
            if current_kind != "hardlink":
                break
            try:  # a hard link names a member, from the archive's root, as tar extracts it
                resolved = normalise_member_name(current_target)
            except ValueError:
                self._reject(raw_name, "links outside the archive (to %r)" % target_name, unsafe=True)
                return False
            entry: Optional[Tuple[str, str, Dict[str, Any]]] = final.get(resolved) if resolved is not None else ("", "directory", {})
            if entry is None and resolved in self._members:  # an implied directory
                entry = ("", "directory", {})
            if entry is None:
                self._reject(raw_name, "is a dangling hard link (to %r)" % target_name, unsafe=False)
                return False
            current_path, current_kind = resolved or "/", entry[1]
            current_target = entry[2].get("link_target", "")
        else:
            self._reject(raw_name, "has a hard link loop", unsafe=False)
            return False
        if current_kind == "symlink":  # a second name of a symbolic link is that link
            self._add_link(path, raw_name, "symlink", dict(final[current_path][2]), final)
            return True
        if current_kind != "file":
            self._reject(raw_name, "links to a %s (%r), which a layer cannot alias" % (current_kind, target_name), unsafe=False)
            return False
        self._add(_Member(path, False, **dict(final[current_path][2], link_target=None)))
        return True

    def symlinks_in(self, path: str) -> List[str]:
        """The names of the symbolic links in the directory ``path`` (for an overlay's lookup,
        which shows a link as an entry of its own and resolves it inside the merged view)."""
        member = self._members.get(self.validatepath(path))
        if member is None or not member.is_dir:
            return []
        prefix = member.path if member.path == "/" else member.path + "/"
        return [name for name in self._children[member.path] if self._members[prefix + name].is_symlink]

    # -- the index, for ArchiveIndexFS --------------------------------------------------------------

    def _entry(self, path: str) -> Optional[_Member]:
        return self._members.get(path)

    def _names(self, path: str, entry: _Member) -> List[str]:
        return list(self._children[path])

    def _info(self, path: str, entry: _Member, namespaces: Collection[str]) -> Info:
        # a symbolic link is itself; a hard link reads as the member it names
        kind = "directory" if entry.is_dir else "symlink" if entry.is_symlink else "file"
        target = entry.link_target if entry.is_symlink else None
        return member_info(basename(path), kind, namespaces, entry.size, entry.modified, entry.access, target)

    def _open(self, path: str, entry: _Member, shown: str, buffering: int) -> BinaryIO:
        if entry.is_symlink:
            raise errors.FileExpected(
                shown, msg="'%s' is a symbolic link (to %r): an overlay over this archive reads through it" % (shown, entry.link_target)
            )
        assert entry.opener is not None
        with self._lock:
            inner = entry.opener()
        # members share the archive's one file position: every read and seek holds its lock
        return buffered(_MemberFile(inner, self._lock, path, self.label), buffering)

    def read_order(self, path: str) -> int:
        """Where ``path``'s data lies in the archive: read in this order, the archive is read
        once from start to end (a compressed one is never decompressed twice)."""
        member = self._members.get(path)
        return member.data_offset if member is not None else 0

    @property
    def restarts(self) -> int:
        """How many times decompression went back over the archive since it was indexed (always
        0 for plain tar and zip); reading members in :meth:`read_order` keeps it 0."""
        return self._stream.restarts if self._stream is not None else 0

    def close(self) -> None:
        if not self.isclosed():
            with self._lock:
                if self._stream is not None:
                    self._stream.drop_spill()
                if self._closer is not None:
                    self._closer()
        super().close()


def _strict_ancestors(path: str) -> Iterator[str]:
    parent = parent_of(path)
    while parent != "/":
        yield parent
        parent = parent_of(parent)


# -- reading the member tables -------------------------------------------------------------------

def _read_tar_headers(
    archive: tarfile.TarFile, label: str, limits: ArchiveLimits, stored: Optional[int]
) -> List[tarfile.TarInfo]:
    """Every member header, refusing what ``tarfile`` would pass over in silence: it stops at
    the first damaged header after the first member as if the archive ended there. Limits are
    checked from each header, before the member's data is skipped (decompressed)."""
    infos: List[tarfile.TarInfo] = []
    loaded = getattr(archive, "_loaded", False)  # an fs.tarfs reader may have read them all
    for info in iter(lambda: _next_header(archive, label, infos), None) if not loaded else archive.getmembers():
        infos.append(info)
        _check_limits(label, limits, len(infos), info.offset_data + info.size, stored)
        if info.issparse():
            raise LayerFormatError(
                "archive %s: member %r is a sparse file, which unionfs does not support" % (label, info.name)
            )
    _check_tar_end(archive, label, infos)
    return infos


def _next_header(archive: tarfile.TarFile, label: str, infos: List[tarfile.TarInfo]) -> Optional[tarfile.TarInfo]:
    try:
        return archive.next()
    except (tarfile.ReadError, EOFError, OSError, zlib.error, lzma.LZMAError) as error:
        after = " after member %r" % infos[-1].name if infos else ""
        raise LayerFormatError("archive %s is damaged or truncated%s: %s" % (label, after, error)) from None


def _check_tar_end(archive: tarfile.TarFile, label: str, infos: List[tarfile.TarInfo]) -> None:
    """Where ``tarfile`` stopped must be the archive's end: nothing, or the zero end blocks."""
    stream = archive.fileobj
    assert stream is not None
    stream.seek(archive.offset)
    reached = stream.tell()
    block = stream.read(tarfile.BLOCKSIZE)
    last = infos[-1].name if infos else None
    if reached < archive.offset or (not block and infos and infos[-1].offset_data + infos[-1].size > reached):
        raise LayerFormatError("archive %s is truncated: member %r ends past the end of the archive" % (label, last))
    if block and block != tarfile.NUL * len(block):
        raise LayerFormatError(
            "archive %s is damaged: the header at offset %d (after member %r) is not a valid tar header"
            % (label, archive.offset, last)
        )
    if block and len(block) < tarfile.BLOCKSIZE:
        raise LayerFormatError("archive %s is truncated at offset %d (after member %r)" % (label, archive.offset, last))


def _tar_members(
    archive: tarfile.TarFile, label: str = "", limits: Optional[ArchiveLimits] = None, stored: Optional[int] = None
) -> List[_Raw]:
    headers = _read_tar_headers(archive, label, limits or DEFAULT_LIMITS, stored)
    read_at = _reader(archive)
    return [_tar_raw(read_at, info) for info in headers]


def _scanned_tar_members(
    archive: tarfile.TarFile, begin: int, compressed: bool, label: str, limits: ArchiveLimits, stored: Optional[int]
) -> Optional[List[_Raw]]:
    """The member table as :func:`~unionfs.formats.tarscan.scan` reads it, in a quarter of the
    CPU time ``tarfile`` takes for the headers; ``None`` where the scanner leaves the archive
    to tarfile (damage, sparse members, a name encoding other than UTF-8: see there), which
    then reads it again and whose answer or error counts. Limits are checked from each header
    as it is read, before the member's data is skipped (decompressed)."""
    if tarscan.ENCODING.lower().replace("-", "") != "utf8":
        return None  # the scanner decodes names as tarfile's default does; an archive's are UTF-8
    stream = archive.fileobj
    assert stream is not None
    stream.seek(begin)
    read_at = _reader(archive, begin)  # (the scanner's offsets count from where it began)
    found: List[_Raw] = []
    try:
        for member in tarscan.scan(stream.read, None if compressed else _skipper(cast(IO[bytes], stream))):
            found.append(_tar_raw(read_at, member))
            _check_limits(label, limits, len(found), member.offset_data + member.size, stored)
    except ArchiveTooLarge:
        raise
    except Exception:  # whatever it is, tarfile's reading says it
        return None
    return found


def _tar_raw(read_at: Callable[[int, int], bytes], info: Union[tarfile.TarInfo, tarscan.Member]) -> _Raw:
    """One member header as the index takes it; a file's data opens in place, ``info.size``
    bytes at ``info.offset_data`` of the (decompressed) archive."""
    kind = TAR_KINDS.get(info.type, "member of unknown type")
    fields: Dict[str, Any] = {"modified": float(info.mtime), "access": tar_access(info)}
    if kind == "file":
        fields["size"] = info.size
        fields["data_offset"] = info.offset_data
        fields["opener"] = functools.partial(WindowReader, read_at, info.offset_data, info.size)
    elif kind in ("symlink", "hardlink"):
        fields["link_target"] = info.linkname
    return (info.name, kind, fields)


def _skipper(stream: IO[bytes]) -> Callable[[int], int]:
    """``skip_ahead`` of :func:`~unionfs.formats.tarscan.scan` for a file on disk: a seek, as
    tarfile steps over member data, rather than reading it (gigabytes, in a tar of images)."""
    here = stream.tell()
    end = stream.seek(0, io.SEEK_END)
    stream.seek(here)

    def skip_ahead(count: int) -> int:
        here = stream.tell()
        return stream.seek(min(here + count, end)) - here

    return skip_ahead


def _reader(archive: tarfile.TarFile, base: int = 0) -> Callable[[int, int], bytes]:
    """``read_at(offset, size)`` of the (decompressed) archive from ``base`` on, whose one file
    position every member shares (the caller holds the archive's lock)."""
    stream = archive.fileobj
    assert stream is not None

    def read_at(offset: int, size: int) -> bytes:
        stream.seek(base + offset)
        return stream.read(size)

    return read_at


def _zip_members(
    archive: zipfile.ZipFile, label: str = "", limits: Optional[ArchiveLimits] = None, stored: Optional[int] = None
) -> List[_Raw]:
    found: List[_Raw] = []
    infos = archive.infolist()
    _check_limits(label, limits or DEFAULT_LIMITS, len(infos), sum(info.file_size for info in infos), stored)
    for info in infos:
        mode = info.external_attr >> 16 if info.create_system == 3 else 0
        is_dir = info.is_dir() or stat.S_ISDIR(mode)
        if info.flag_bits & 0x1:
            kind = "encrypted member"
        elif stat.S_ISLNK(mode):
            kind = "symlink"
        else:
            kind = "directory" if is_dir else "file"
        fields: Dict[str, Any] = {"modified": _zip_time(info)}
        if mode:
            fields["access"] = {"permissions": list(permission_names(mode))}
        if kind == "file":
            fields["size"] = info.file_size
            fields["data_offset"] = info.header_offset
            fields["opener"] = _zip_opener(archive, info)
        elif kind == "symlink":
            fields["link_target"] = archive.read(info).decode("utf-8", "backslashreplace")
        found.append((_zip_name(info), kind, fields))
    return found


def _zip_time(info: zipfile.ZipInfo) -> Optional[float]:
    try:
        return datetime_to_epoch(datetime(*info.date_time))
    except ValueError:
        return None


def _zip_opener(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], IO[bytes]]:
    return lambda: archive.open(info)


# -- opening -----------------------------------------------------------------------------------


def open_archive(
    source: Union[str, BinaryIO],
    within: Optional[FS] = None,
    unsafe: str = "error",
    limits: Optional[ArchiveLimits] = None,
) -> ArchiveFS:
    """Open a tar (plain, gz, bz2, xz) or zip archive as a read-only :class:`ArchiveFS`.

    ``source`` is an OS path, a path inside the FS ``within``, or an open seekable binary
    file (which the caller keeps owning). Compression is detected from the content.
    Raises :class:`UnsupportedLayer` if it is not a readable archive, :class:`LayerFormatError`
    if it is damaged (a bad header, truncated, sparse members), :class:`ArchiveTooLarge` past
    ``limits`` (:data:`DEFAULT_LIMITS` if not given) and :class:`UnsafeArchive` for hostile
    members (unless ``unsafe="skip"``).
    """
    label = source if isinstance(source, str) else getattr(source, "name", repr(source))
    label = str(label) if within is None else "%s in %r" % (label, within)
    owned: Optional[IO[bytes]] = None

    def close_owned() -> None:
        if owned is not None:
            owned.close()

    with convert_errors(unsupported_layer, "cannot open archive %s" % label, LOW_LEVEL_ERRORS + (ValueError,), fs_errors=True, cleanup=close_owned):
        if isinstance(source, str):
            if within is not None:
                owned = within.openbin(source, "r")
            else:
                owned = open(source, "rb")
            handle: IO[bytes] = owned
        else:
            handle = source
        if not handle.seekable():
            raise UnsupportedLayer(msg="cannot use archive %s: it is not seekable" % label)
        return _open_handle(handle, label, unsafe, owned, _source_path(source, within), limits or DEFAULT_LIMITS)


def _source_path(source: Union[str, BinaryIO], within: Optional[FS]) -> Optional[str]:
    """The archive's path on disk, if it has one."""
    if not isinstance(source, str):
        name = getattr(source, "name", None)
        return name if isinstance(name, str) and os.path.isfile(name) else None
    if within is None:
        return source
    try:
        return within.getsyspath(source)
    except errors.NoSysPath:
        return None


def _open_handle(
    handle: IO[bytes],
    label: str,
    unsafe: str,
    owned: Optional[IO[bytes]],
    source_path: Optional[str],
    limits: ArchiveLimits,
) -> ArchiveFS:
    start = handle.tell()
    stored = handle.seek(0, io.SEEK_END) - start
    handle.seek(start)
    if zipfile.is_zipfile(handle):
        handle.seek(start)
        zip_archive = zipfile.ZipFile(handle, "r")
        members = _zip_members(zip_archive, label, limits, stored)
        return ArchiveFS(label, members, unsafe, _closer(zip_archive, owned), source_path=source_path)
    handle.seek(start)
    stream: Optional[GzipStream] = None
    fileobj: IO[bytes] = handle
    if start == 0 and handle.read(2) == GZIP_MAGIC:
        # gzip through checkpoints (not tarfile's GzipFile, which decompresses from the start
        # again for every read behind its position), spilled while the index is read: reads
        # within the spill decompress nothing, in any order; past it members read in archive
        # order cost one decompression in all, and any other read at most a checkpoint's spacing
        raw = cast(BinaryIO, handle)
        stream = GzipStream(lambda: raw, label, first_raw=raw, spill=limits.max_spill)
        fileobj = io.BufferedReader(WindowReader(stream.read_at), buffer_size=64 * 1024)  # type: ignore[assignment]
    handle.seek(start)
    try:
        if stream is not None:  # already decompressed: a plain tar to tarfile
            tar_archive = tarfile.open(fileobj=fileobj, mode="r:", encoding="utf-8", errors="surrogateescape")
        else:
            tar_archive = tarfile.open(fileobj=fileobj, mode="r:*", encoding="utf-8", errors="surrogateescape")
    except tarfile.ReadError:
        raise UnsupportedLayer(msg="cannot open archive %s: not a tar or zip archive" % label) from None
    except LayerFormatError as error:
        raise UnsupportedLayer(msg="cannot open archive %s: %s" % (label, error)) from None
    compressed = tar_archive.fileobj is not handle  # a gzip/bz2/xz reader over it
    stored_if_compressed = stored if compressed else None
    scanned = _scanned_tar_members(tar_archive, 0 if compressed else start, compressed, label, limits, stored_if_compressed)
    members = scanned if scanned is not None else _tar_members(tar_archive, label, limits, stored_if_compressed)
    if stream is not None:
        stream.rewind()  # the index pass read to the end; reads in archive order go on from here
    return ArchiveFS(label, members, unsafe, _closer(tar_archive, owned), stream, source_path=source_path)


def _closer(archive: Union[tarfile.TarFile, zipfile.ZipFile, None], owned: Optional[IO[bytes]]) -> Callable[[], None]:
    def close() -> None:
        if archive is not None:
            archive.close()
        if owned is not None:
            owned.close()

    return close


def archive_from_fs(layer_fs: FS, unsafe: str = "error") -> Optional[ArchiveFS]:
    """An :class:`ArchiveFS` over the archive that an open ``fs.tarfs``/``fs.zipfs`` reader
    holds (sharing its open archive, which stays the caller's), else ``None``."""
    from fs.tarfs import ReadTarFS
    from fs.zipfs import ReadZipFS

    inner = getattr(layer_fs, "_wrap_fs", layer_fs)
    label = str(getattr(inner, "_file", repr(inner)))
    source = getattr(inner, "_file", None)
    source_path = source if isinstance(source, str) else _source_path(source, None) if source is not None else None
    # ``keep``: the reader closes its archive when collected, and the overlay reads that archive
    if isinstance(inner, ReadTarFS):
        return ArchiveFS(label, _tar_members(inner._tar, label), unsafe, None, source_path=source_path, keep=layer_fs)
    if isinstance(inner, ReadZipFS):
        return ArchiveFS(label, _zip_members(inner._zip, label), unsafe, None, source_path=source_path, keep=layer_fs)
    return None


def as_lower(source: Any, unsafe: str = "error") -> Any:
    """A lower given as an archive (a path, a ``tar://``/``zip://`` URL, or an open tar or
    zip FS) becomes an :class:`ArchiveFS`; anything else is returned unchanged. ``unsafe``
    (``"error"`` or ``"skip"``) is the policy for hostile members; a URL may carry its own,
    ``tar:///srv/root.tar?unsafe=skip``."""
    if unsafe not in UNSAFE_POLICIES:
        raise ValueError("unsafe must be one of %r, not %r" % (UNSAFE_POLICIES, unsafe))
    if isinstance(source, FS):
        return archive_from_fs(source, unsafe) or source
    if isinstance(source, str):
        if "://" in source:
            parsed = parse_fs_url(source)
            params = dict(parsed.params)
            policy = params.pop("unsafe", unsafe)
            if parsed.protocol in ("tar", "zip") and not parsed.path and not params:
                if policy not in UNSAFE_POLICIES:
                    raise UnsupportedLayer(msg="%r: unsafe must be one of %s" % (source, ", ".join(UNSAFE_POLICIES)))
                return open_archive(parsed.resource, unsafe=policy)
            return source
        if os.path.isfile(source):
            return open_archive(source, unsafe=unsafe)
    return source

