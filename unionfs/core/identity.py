"""Which storage a layer is: the one identity function every overlap check uses.

A layer can be spelled many ways: an FS object, a wrapper or ``SubFS`` of one, an OSFS of
its directory (or of a directory inside it), a plain path, an ``osfs://``/``tar://``/
``zip://`` URL, the path of an archive, an open archive FS (``fs.zipfs``, ``fs.tarfs``, the
package's own archive reader, which sets ``source_path``). :func:`identity` maps each of
them to where its bytes live: the real path of a directory or archive file on disk (plus
the directory inside the archive), or else the innermost FS object (plus the directory
inside it). :func:`overlaps` then says whether two layers are one, or one lies inside the
other: the stack refuses such an upper (as the kernel refuses overlapping layers), commit
refuses such a target (it would rewrite a lower or the upper), and overlays share an upper
by its identity.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Union

import attr

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs import errors
from fs.base import FS
from fs.opener.errors import ParseError
from fs.opener.parse import parse_fs_url
from fs.path import abspath, isbase, normpath
from fs.wrapfs import WrapFS

#: URL schemes whose resource is an archive file on disk
ARCHIVE_SCHEMES = ("tar", "zip")
#: URL schemes whose resource is a directory on disk
DIRECTORY_SCHEMES = ("osfs", "file")


@attr.s(frozen=True, slots=True)
class Identity:
    """Where a layer's bytes live: ``os_path`` (a real path on disk; ``archive`` if it is an
    archive file) or else ``fs_id`` (the innermost FS object), and ``inner``, the directory
    inside the archive or FS that the layer shows."""

    os_path: Optional[str] = attr.ib(default=None)
    fs_id: Optional[int] = attr.ib(default=None)
    inner: str = attr.ib(default="/")
    archive: bool = attr.ib(default=False)

    def key(self) -> Any:
        """A hashable key: equal for two spellings of one layer."""
        if self.os_path is None:
            return ("fs", self.fs_id, self.inner)
        if self.archive:
            return ("archive", self.os_path, self.inner)
        return ("dir", self.os_path)  # a directory on disk: the key the upper's OS lock uses

    def describe(self) -> str:
        """For error messages."""
        if self.os_path is not None:
            where = self.os_path
            if self.archive:
                where = "archive " + where + ("" if self.inner == "/" else "!" + self.inner)
            return where
        return "FS object 0x%x%s" % (self.fs_id or 0, "" if self.inner == "/" else " at " + self.inner)


def _archive_file(layer_fs: FS) -> Optional[str]:
    """The archive file behind an archive FS (ours, ``fs.zipfs``, ``fs.tarfs``), if any."""
    from fs.tarfs import ReadTarFS, WriteTarFS
    from fs.zipfs import ReadZipFS, WriteZipFS

    source = getattr(layer_fs, "source_path", None)
    if source is None and isinstance(layer_fs, (ReadZipFS, WriteZipFS, ReadTarFS, WriteTarFS)):
        source = layer_fs._file
    if source is not None and not isinstance(source, str):
        source = getattr(source, "name", None)  # an open file
    return source if isinstance(source, str) else None


def identity(source: Union[FS, str]) -> Optional[Identity]:
    """The identity of a layer given as an FS object, an FS URL or a path; ``None`` for a URL
    whose storage cannot be known without opening it (``mem://``, ``s3://``...): identify the
    opened FS instead."""
    if isinstance(source, str):
        return _identity_of_url(source)
    layer_fs, path = source, "/"
    while True:
        archive = _archive_file(layer_fs)
        if archive is not None:
            return Identity(os_path=os.path.realpath(archive), inner=path, archive=True)
        if not isinstance(layer_fs, WrapFS):
            break
        layer_fs, path = layer_fs.delegate_path(path)
    try:
        return Identity(os_path=os.path.realpath(layer_fs.getsyspath(path)))
    except errors.NoSysPath:
        return Identity(fs_id=id(layer_fs), inner=abspath(normpath(path)))


def _identity_of_url(url: str) -> Optional[Identity]:
    if "://" not in url:
        path = os.path.realpath(url)
        return Identity(os_path=path, archive=os.path.isfile(path))
    try:
        parsed = parse_fs_url(url)
    except ParseError:
        return None
    if parsed.protocol in ARCHIVE_SCHEMES:
        inner = abspath(normpath(parsed.path or "/"))
        return Identity(os_path=os.path.realpath(parsed.resource), inner=inner, archive=True)
    if parsed.protocol in DIRECTORY_SCHEMES:
        return Identity(os_path=os.path.realpath(os.path.join(parsed.resource, (parsed.path or "").lstrip("/"))))
    return None


def _inside(path: str, directory: str) -> bool:
    return path.startswith(directory.rstrip("/") + "/")


def overlaps(a: Identity, b: Identity) -> bool:
    """Whether ``a`` and ``b`` are one layer, or one lies inside the other (a directory
    inside a directory, an archive file inside a directory, a directory inside an archive)."""
    if a.os_path is not None and b.os_path is not None:
        if a.os_path == b.os_path:
            return isbase(a.inner, b.inner) or isbase(b.inner, a.inner)
        return _inside(a.os_path, b.os_path) or _inside(b.os_path, a.os_path)
    if a.fs_id is not None and a.fs_id == b.fs_id:
        return isbase(a.inner, b.inner) or isbase(b.inner, a.inner)
    return False


def same(a: Identity, b: Identity) -> bool:
    """Whether ``a`` and ``b`` are exactly one layer (two spellings of it)."""
    return a.key() == b.key()


def relation(a: Identity, b: Identity) -> str:
    """How ``a`` stands to ``b``, for error messages: "is", "lies inside" or "contains"."""
    if same(a, b):
        return "is"
    if a.os_path is not None and b.os_path is not None and a.os_path != b.os_path:
        return "lies inside" if _inside(a.os_path, b.os_path) else "contains"
    return "lies inside" if isbase(b.inner, a.inner) else "contains"
