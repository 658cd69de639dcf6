"""Trees as dicts, both ways: :func:`make_tree` builds one in an FS, :func:`snapshot` records one.

The tests, the demo and the pytest plugin build lower trees and compare views with these
two, instead of a walk and a snapshot of their own each. A snapshot walks with the one
walker (:func:`unionfs.core.walk.fs_tree`: no recursion, names sorted, parents first)
and records each entry with a ``record`` function; the ones here cover what the tests
compare (content, a content hash), and a caller passes its own for anything else.
:func:`disk_snapshot` does the same for a real directory tree, with ``lstat``: a symbolic
link is recorded as itself and never entered (an FS's info may follow it), for what the
kernel merged or must leave alone byte for byte.
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs.base import FS
from fs.info import Info
from fs.path import dirname

from ..core.sidecar import RESERVED_NAME
from ..core.walk import fs_tree, preorder

#: path -> content: text or bytes for a file, ``None`` (or a key ending in ``/``) for a directory
Spec = Mapping[str, Union[str, bytes, None]]

#: what a snapshot keeps of one entry, given the FS, the entry's path and its info
Record = Callable[[FS, str, Info], Any]

#: what a disk snapshot keeps of one entry, given its full path on disk and its ``lstat``
DiskRecord = Callable[[str, os.stat_result], Any]


def make_tree(fs: FS, spec: Spec) -> FS:
    """Make every entry of ``spec`` in ``fs`` (parents as needed), in the order given; returns ``fs``."""
    for path, content in spec.items():
        if content is None or path.endswith("/"):
            fs.makedirs(path, recreate=True)
            continue
        fs.makedirs(dirname(path), recreate=True)
        if isinstance(content, bytes):
            fs.writebytes(path, content)
        else:
            fs.writetext(path, content)
    return fs


def entries(
    fs: FS, top: str = "/", namespaces: Optional[Sequence[str]] = None, sidecar: bool = False
) -> Iterator[Tuple[str, Info]]:
    """Every (path, info) of ``fs`` below ``top``, parents first, names sorted; the sidecar
    (``/.unionfs``) only with ``sidecar``."""
    hidden = "/" + RESERVED_NAME

    def skip(path: str) -> bool:
        return not sidecar and path == hidden

    for entry in fs_tree(fs, top, namespaces, skip=skip):
        yield entry.path, entry.info


def content(fs: FS, path: str, info: Info) -> Union[str, bytes]:
    """``"dir"``, or the file's bytes."""
    return "dir" if info.is_dir else fs.readbytes(path)


def digest(fs: FS, path: str, info: Info) -> str:
    """``"dir"``, ``"link:"`` and the target of a symbolic link (where the walk asked for the
    ``link`` namespace), or ``"file:"`` and the SHA-256 of the file's bytes."""
    if info.is_dir:
        return "dir"
    if info.has_namespace("link") and info.target is not None:
        return "link:" + info.target
    return "file:" + hashlib.sha256(fs.readbytes(path)).hexdigest()


def snapshot(
    fs: FS,
    record: Record = content,
    top: str = "/",
    namespaces: Optional[Sequence[str]] = None,
    sidecar: bool = False,
) -> Dict[str, Any]:
    """path -> ``record(fs, path, info)`` for every entry of ``fs`` below ``top`` (see :func:`entries`)."""
    return {path: record(fs, path, info) for path, info in entries(fs, top, namespaces, sidecar)}


# -- real directory trees ------------------------------------------------------------------------


def disk_entries(root: str, skip: Callable[[str], bool] = lambda path: False) -> Iterator[Tuple[str, str, os.stat_result]]:
    """Every (path, full path, ``lstat``) below the real directory ``root``, parents first, names
    sorted; ``path`` is ``/``-rooted like an FS path. Never follows a symbolic link (a link to
    a directory is an entry, not entered); entries for which ``skip(path)`` is true are left out
    with everything below them."""
    Item = Tuple[str, str, os.stat_result]

    def children(item: Optional[Item]) -> List[Item]:
        if item is not None and not stat.S_ISDIR(item[2].st_mode):
            return []
        path, full = ("", root) if item is None else (item[0], item[1])
        names = sorted(os.listdir(full))
        found = [(path + "/" + name, os.path.join(full, name)) for name in names]
        return [(child, where, os.lstat(where)) for child, where in found if not skip(child)]

    return preorder(None, children)  # type: ignore[arg-type]


def disk_digest(full: str, status: os.stat_result) -> str:
    """:func:`digest` of an entry on disk: ``"dir"``, ``"link:"`` and the link's target, ``"file:"``
    and the SHA-256 of a regular file's bytes; any other node (a device, such as a kernel
    whiteout, a FIFO) ``"node:"`` with its type and device number, never opened."""
    if stat.S_ISDIR(status.st_mode):
        return "dir"
    if stat.S_ISLNK(status.st_mode):
        return "link:" + os.readlink(full)
    if stat.S_ISREG(status.st_mode):
        with open(full, "rb") as handle:
            return "file:" + hashlib.sha256(handle.read()).hexdigest()
    return "node:%o:%d" % (stat.S_IFMT(status.st_mode), status.st_rdev)


def disk_snapshot(
    root: str, record: DiskRecord = disk_digest, skip: Callable[[str], bool] = lambda path: False
) -> Dict[str, Any]:
    """path -> ``record(full path, lstat)`` for every entry below ``root`` (see :func:`disk_entries`)."""
    return {path: record(full, status) for path, full, status in disk_entries(root, skip)}
