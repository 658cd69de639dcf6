"""Trees as dicts, both ways: :func:`make_tree` builds one in an FS, :func:`snapshot` records one.

The tests, the demo and the pytest plugin build lower trees and compare views with these
two, instead of a walk and a snapshot of their own each. A snapshot walks with the one
walker (:func:`unionfs.core.walk.fs_tree`: no recursion, names sorted, parents first)
and records each entry with a ``record`` function; the ones here cover what the tests
compare (content, a content hash), and a caller passes its own for anything else.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Sequence, Tuple, Union

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs.base import FS
from fs.info import Info
from fs.path import dirname

from ..core.sidecar import RESERVED_NAME
from ..core.walk import fs_tree

#: path -> content: text or bytes for a file, ``None`` (or a key ending in ``/``) for a directory
Spec = Mapping[str, Union[str, bytes, None]]

#: what a snapshot keeps of one entry, given the FS, the entry's path and its info
Record = Callable[[FS, str, Info], Any]


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
