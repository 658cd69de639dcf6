"""The upper's changes as an ordered list: what both exports (OCI layer, kernel upperdir) write.

The upper of an overlay *is* a changeset: its entries, plus its whiteout and opaque
records. :func:`upper_changes` walks it depth first in a fixed order (in each
directory: the whiteouts by name, then the entries by name, each directory's own
entry before its contents), so exports are reproducible.
"""

from __future__ import annotations

from typing import Iterator, List, Optional

import attr

from . import _compat as _quiet_fs_import  # noqa: F401  (not "_compat": attrs-generated methods use that global name)
from fs import errors
from fs.enums import ResourceType
from fs.info import Info
from fs.path import join

from .layers import Layer
from .lookup import Lookup
from .readdir import visible_children

#: the namespaces exports need of an upper entry
EXPORT_NAMESPACES = ("details", "access", "link")


@attr.s(frozen=True, slots=True)
class Change:
    """One entry of the changeset: a directory, a non-directory, or a whiteout."""

    path: str = attr.ib()
    kind: str = attr.ib()  # "dir", "file" (any non-directory) or "whiteout"
    info: Optional[Info] = attr.ib(default=None, eq=False)
    opaque: bool = attr.ib(default=False)  # a directory that hides its lower counterparts


def link_target(change: Change) -> Optional[str]:
    """The target if the non-directory ``change`` is a symlink, ``None`` for a regular file;
    other kinds (FIFOs, devices an other tool left in an upper directory) cannot be exported."""
    info = change.info
    assert info is not None
    kind = info.get("details", "type", int(ResourceType.file))
    target = info.get("link", "target")
    if kind == int(ResourceType.symlink) or target:
        return str(target or "")
    if kind not in (int(ResourceType.file), int(ResourceType.unknown)):
        raise errors.Unsupported(change.path, msg="cannot export %s: a %s, not a file" % (change.path, ResourceType(kind).name))
    return None


def upper_changes(upper: Layer) -> Iterator[Change]:
    """Every entry and marker of ``upper`` (the sidecar excluded), in export order."""
    yield from _walk(upper, "/")


def _walk(upper: Layer, path: str) -> Iterator[Change]:
    index = upper.dir(path)
    if index is None:
        return
    for name in sorted(index.whiteouts - set(index.entries)):
        yield Change(join(path, name), "whiteout")
    for name in sorted(index.entries):
        child = join(path, name)
        info = upper.fs.getinfo(child, EXPORT_NAMESPACES)
        if index.entries[name]:
            yield Change(child, "dir", info, opaque=name in index.opaque)
            yield from _walk(upper, child)
        else:
            yield Change(child, "file", info)


def lower_names(lowers: Lookup, path: str) -> List[str]:
    """The names a view of the lowers alone shows in the directory ``path`` (none if it is not one)."""
    lookup = lowers
    node = lookup.node(path)
    if node is None or not node.is_dir:
        return []
    return sorted(child.path.rsplit("/", 1)[1] for child in visible_children(lookup, node))
