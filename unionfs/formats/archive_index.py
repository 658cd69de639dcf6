"""The one archive member index: name policy, link resolution, the type table, member info,
and the read-only FS every archive layer is built on.

Three readers index archives: :mod:`~unionfs.formats.archives` (tar and zip archives as
lowers), :mod:`~unionfs.formats.oci.oci` (OCI layer tars, with whiteout markers) and
:mod:`~unionfs.formats.oci.image` (the member table of an image archive). What a member
name means, where a link leads, what a tar type is and what ``getinfo`` says of a member
is decided here, once, for all of them; :class:`ArchiveIndexFS` (in the spirit of fsspec's
``AbstractArchiveFileSystem``) is the read-only FS over an index that both archive layers
subclass, each supplying only how to find, describe and open a member.
"""

from __future__ import annotations

import functools
import io
import re
import tarfile
from typing import IO, Any, BinaryIO, Collection, Dict, Iterator, List, Optional, Tuple, Union

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs import errors
from fs.base import FS
from fs.enums import ResourceType
from fs.info import Info
from fs.mode import Mode
from fs.path import dirname, join
from fs.permissions import Permissions
from fs.subfs import SubFS

from ..io import READ_ONLY_ARCHIVE_META
from . import tarscan

#: how many links a chain may pass through before it counts as a loop (Linux's MAXSYMLINKS)
MAX_LINK_HOPS = 40

#: what ``normalise`` does with a ``..`` component: refuse it (the archive lowers: never
#: needed inside an archive, the classic traversal attack), resolve it within the archive
#: (OCI layers, as unpackers do; one that climbs out is refused), or clamp it at the root
#: (a symlink target inside a root filesystem, as the kernel resolves it)
DOTDOT_POLICIES = ("refuse", "resolve", "clamp")

#: tar member types by the name the indexes use for them
TAR_KINDS: Dict[bytes, str] = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "directory",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "FIFO",
}

#: the ``details.type`` each kind shows (a hard link reads as the file it names)
RESOURCE_TYPES: Dict[str, ResourceType] = {
    "file": ResourceType.file,
    "directory": ResourceType.directory,
    "symlink": ResourceType.symlink,
    "hardlink": ResourceType.file,
    "character device": ResourceType.character,
    "block device": ResourceType.block_special_file,
    "FIFO": ResourceType.fifo,
}


def text_name(name: str) -> str:
    """``name`` with undecodable bytes (kept by tarfile as surrogate escapes) as ``\\xNN``."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


#: a name :func:`normalise` leaves as it is (but for the leading ``/`` and a trailing one):
#: components without NUL or backslash, none empty (a component ``.`` or ``..``, or one that
#: begins with a dot, goes the long way)
_PLAIN_NAME = re.compile(r"[^/\\\0]+(?:/[^/\\\0]+)*/?\Z")


def normalise(name: str, dotdot: str = "refuse", backslashes: bool = False) -> str:
    """The absolute view path of the member name (or link target) ``name``: ``"/"`` for the
    root, or ``ValueError`` saying why there is none.

    Leading ``/`` and ``./`` are dropped (as tar does on extraction), empty and ``.``
    components vanish, NUL bytes go, bytes that are not UTF-8 become ``\\xNN`` text;
    ``..`` follows ``dotdot`` (:data:`DOTDOT_POLICIES`). ``backslashes``: ``\\`` separates
    components too (layers written on Windows)."""
    if dotdot not in DOTDOT_POLICIES:
        raise ValueError("dotdot must be one of %r, not %r" % (DOTDOT_POLICIES, dotdot))
    if name.isascii() and _PLAIN_NAME.match(name) is not None and "/." not in name and name[0] != ".":
        return "/" + name.rstrip("/")  # the usual name, once per member: nothing else would change
    if backslashes:
        name = name.replace("\\", "/")
    parts: List[str] = []
    for part in text_name(name).replace("\0", "").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if dotdot == "refuse":
                raise ValueError("has a '..' component")
            if parts:
                parts.pop()
            elif dotdot == "resolve":
                raise ValueError("escapes the archive root")
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def link_target_path(link: str, target: str, symbolic: bool = True, dotdot: str = "resolve") -> str:
    """Where the link at the view path ``link`` points: a symbolic link's relative target
    from the link's directory, an absolute one (and a hard link's, which tar stores relative
    to the archive root) from the root. ``ValueError`` if it climbs out (``dotdot``)."""
    if symbolic and not target.startswith("/"):
        target = dirname(link) + "/" + target
    return normalise(target, dotdot=dotdot)


def member_info(
    name: str,
    kind: Union[str, ResourceType],
    namespaces: Optional[Collection[str]] = None,
    size: int = 0,
    modified: Optional[float] = None,
    access: Optional[Dict[str, Any]] = None,
    link_target: Optional[str] = None,
) -> Info:
    """The info of a member called ``name`` of the given ``kind`` (a name of
    :data:`RESOURCE_TYPES`, or the type itself), with the ``details``, ``access`` and ``link``
    namespaces asked for (all when ``None``)."""
    resource = kind if isinstance(kind, ResourceType) else RESOURCE_TYPES.get(kind, ResourceType.file)
    is_dir = resource == ResourceType.directory
    wanted = ("details", "access", "link") if namespaces is None else namespaces
    raw: Dict[str, Dict[str, Any]] = {"basic": {"name": name, "is_dir": is_dir}}
    if "details" in wanted:
        raw["details"] = {
            "type": int(resource),
            "size": size,
            "modified": modified,
            "accessed": None,
            "created": None,
            "metadata_changed": None,
        }
    if "access" in wanted and access:
        raw["access"] = dict(access)
    if "link" in wanted:
        raw["link"] = {"target": link_target}
    return Info(raw)


@functools.lru_cache(maxsize=None)  # (bounded: a mode has 4,096 values)
def permission_names(mode: int) -> Tuple[str, ...]:
    """``Permissions(mode=...).dump()``, once per mode: indexing an archive and a warm getinfo
    build a list, not a Permissions object per member (archives use a handful of modes)."""
    return tuple(Permissions(mode=mode & 0o7777).dump())


def tar_access(member: Union[tarfile.TarInfo, tarscan.Member]) -> Dict[str, Any]:
    """The ``access`` namespace of a tar member."""
    return {
        "permissions": list(permission_names(member.mode)),
        "uid": member.uid,
        "gid": member.gid,
        "user": member.uname or None,
        "group": member.gname or None,
    }


def plain_tar_files(handle: IO[bytes]) -> Dict[str, Tuple[int, int]]:
    """The regular files of a plain (uncompressed) tar as relative path -> (data offset, size);
    a symbolic link to one of them (skopeo's ``<id>/layer.tar``) names its target's data.
    Names that climb out of the archive are left out."""
    with tarfile.open(fileobj=handle, mode="r:") as archive:
        members = list(archive)
    found: Dict[str, Tuple[int, int]] = {}
    links: List[Tuple[str, tarfile.TarInfo]] = []
    for member in members:
        try:
            path = normalise(member.name, dotdot="resolve")
        except ValueError:
            continue
        if member.isfile():
            found[path[1:]] = (member.offset_data, member.size)
        elif member.issym():
            links.append((path, member))
    for path, member in links:
        try:
            target = link_target_path(path, member.linkname)[1:]
        except ValueError:
            continue
        if target in found:
            found[path[1:]] = found[target]
    return found


class ArchiveIndexFS(FS):
    """A read-only FS over an in-memory member index; subclasses say how to find a member
    (:meth:`_entry`), list a directory (:meth:`_names`), describe a member (:meth:`_info`)
    and open one (:meth:`_open`). Every writing method is refused with ``ResourceReadOnly``."""

    _meta = READ_ONLY_ARCHIVE_META

    # -- what a subclass supplies ----------------------------------------------------------------

    def _entry(self, path: str) -> Any:
        """The member at the normalised ``path`` (whatever the subclass keeps), or ``None``."""
        raise NotImplementedError

    def _is_dir(self, entry: Any) -> bool:
        return bool(entry.is_dir)

    def _names(self, path: str, entry: Any) -> List[str]:
        """The names in the directory ``path`` (whose entry is ``entry``), in listing order."""
        raise NotImplementedError

    def _info(self, path: str, entry: Any, namespaces: Collection[str]) -> Info:
        raise NotImplementedError

    def _open(self, path: str, entry: Any, shown: str, buffering: int) -> BinaryIO:
        """A binary read handle on the file member ``entry`` (``shown``: the caller's path)."""
        raise NotImplementedError

    # -- the FS API --------------------------------------------------------------------------------

    def _member(self, path: str) -> Tuple[str, Any]:
        _path = self.validatepath(path)
        entry = self._entry(_path)
        if entry is None:
            raise errors.ResourceNotFound(path)
        return _path, entry

    def _directory(self, path: str) -> Tuple[str, Any]:
        _path, entry = self._member(path)
        if not self._is_dir(entry):
            raise errors.DirectoryExpected(path)
        return _path, entry

    def getinfo(self, path: str, namespaces: Optional[Collection[str]] = None) -> Info:
        _path, entry = self._member(path)
        info = self._info(_path, entry, namespaces or ())
        if _path == "/" and info.name != "":
            info = Info(dict(info.raw, basic=dict(info.raw["basic"], name="")))
        return info

    def listdir(self, path: str) -> List[str]:
        _path, entry = self._directory(path)
        return list(self._names(_path, entry))

    def scandir(
        self, path: str, namespaces: Optional[Collection[str]] = None, page: Optional[Tuple[int, int]] = None
    ) -> Iterator[Info]:
        _path, entry = self._directory(path)
        names = list(self._names(_path, entry))
        if page is not None:
            names = names[page[0] : page[1]]
        wanted = namespaces or ()
        infos = []
        for name in names:
            child = join(_path, name)
            infos.append(self._info(child, self._entry(child), wanted))
        return iter(infos)

    def exists(self, path: str) -> bool:
        return self._entry(self.validatepath(path)) is not None

    def isdir(self, path: str) -> bool:
        entry = self._entry(self.validatepath(path))
        return entry is not None and self._is_dir(entry)

    def isfile(self, path: str) -> bool:
        entry = self._entry(self.validatepath(path))
        return entry is not None and not self._is_dir(entry)

    def openbin(self, path: str, mode: str = "r", buffering: int = -1, **options: Any) -> BinaryIO:
        _mode = Mode(mode)
        _mode.validate_bin()
        if _mode.writing:
            raise errors.ResourceReadOnly(path)
        _path, entry = self._member(path)
        if self._is_dir(entry):
            raise errors.FileExpected(path)
        return self._open(_path, entry, path, buffering)

    def makedir(self, path: str, permissions: Optional[Permissions] = None, recreate: bool = False) -> SubFS[FS]:
        self.check()
        raise errors.ResourceReadOnly(path)

    def remove(self, path: str) -> None:
        self.check()
        raise errors.ResourceReadOnly(path)

    def removedir(self, path: str) -> None:
        self.check()
        raise errors.ResourceReadOnly(path)

    def setinfo(self, path: str, info: Any) -> None:
        self.check()
        raise errors.ResourceReadOnly(path)


def buffered(raw: io.RawIOBase, buffering: int) -> BinaryIO:
    """``raw`` behind a read buffer of ``buffering`` bytes (the default size for 0, 1 or -1)."""
    return io.BufferedReader(raw, buffer_size=buffering if buffering > 1 else io.DEFAULT_BUFFER_SIZE)  # type: ignore[return-value]


__all__ = [
    "MAX_LINK_HOPS",
    "TAR_KINDS",
    "RESOURCE_TYPES",
    "ArchiveIndexFS",
    "buffered",
    "link_target_path",
    "member_info",
    "normalise",
    "plain_tar_files",
    "permission_names",
    "tar_access",
    "text_name",
]
