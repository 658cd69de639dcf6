"""Copy-up (the kernel's ``copy_up.c``): give the upper its own copy of a lower entry.

A file is streamed into a staging file inside the upper's sidecar, given the lower
entry's metadata, and renamed into place, so a half-made copy is never visible, not
even after a crash. A directory is copied alone (not its contents): made and given
its metadata in the staging area too, then renamed into place. Missing parents are
copied up first, top-down. A copy-up changes no directory's times: the kernel puts back the
parent's after its rename, and so does :meth:`Upper.keeping_times`.
"""

from __future__ import annotations

import stat
from typing import List

from .. import _fsimport  # noqa: F401
from fs.enums import ResourceType
from fs.info import Info
from fs.path import dirname

from .inode import COPIED_NAMESPACES, apply_metadata, copyable_metadata
from .lookup import Lookup, Node
from .upper import Upper


def copy_up_parents(lookup: Lookup, upper: Upper, path: str) -> None:
    """Make sure every ancestor directory of ``path`` exists in the upper."""
    missing: List[Node] = []
    parent_path = dirname(path)
    while parent_path != "/":
        parent = lookup.node(parent_path)
        assert parent is not None and parent.is_dir, parent_path
        if parent.in_upper:
            break
        missing.append(parent)
        parent_path = dirname(parent_path)
    for parent in reversed(missing):
        _copy_up_dir(upper, parent)


#: what a copy-up of a file brings: its data, nothing (an open that truncates anyway), its
#: data for an open for writing (:data:`WRITE`: see :func:`copy_up`), or its metadata only
#: where the overlay does metacopy (the data stays in the lower until the file is opened
#: for writing), else its data
DATA, EMPTY, WRITE, METADATA = "data", "empty", "write", "metadata"


def copy_up(lookup: Lookup, upper: Upper, node: Node, what: str = DATA) -> None:
    """Copy ``node`` (and its parents) up, unless the upper already has it, as ``what`` says
    (:data:`DATA`, :data:`EMPTY`, :data:`WRITE` or :data:`METADATA`). A metadata-only copy in
    the upper gets its data (or is emptied) when ``what`` asks for more. :data:`WRITE` is
    :data:`DATA` for an open for writing: the kernel (``ovl_copy_up_meta_inode_data``) writes
    the data into the metadata-only upper file then, which stamps its mtime (a file without
    data has nothing written, and keeps it); a whole copy-up, and a ``link`` (where the
    kernel keeps the metadata-only file as it is), keep the time."""
    if node.in_upper and not (node.metacopy and what != METADATA):
        return
    copy_up_parents(lookup, upper, node.path)
    if node.is_dir:
        _copy_up_dir(upper, node)
    elif node.is_link:
        _copy_up_link(upper, node)
    elif what == METADATA and upper.metacopy and not node.in_upper:
        # the kernel's metacopy: the metadata now, the data (found at the origin) on first
        # write; only for regular files (a FIFO or device is made as itself)
        info = node.top.getinfo(node.top_path, COPIED_NAMESPACES)
        if info.type in SPECIAL_TYPES:
            _copy_up_node(upper, node, info)
            return
        with upper.keeping_times(dirname(node.path)):
            upper.install_metacopy(node.path, node.origin, copyable_metadata(info), xattrs_from=(node.top, node.top_path))
    else:
        _copy_up_file(upper, node, what != EMPTY, stamp=what == WRITE and node.in_upper)


def _copy_up_dir(upper: Upper, node: Node) -> None:
    info = node.top.fs.getinfo(node.top_path, COPIED_NAMESPACES)
    with upper.keeping_times(dirname(node.path)):  # the kernel restores the parent's times
        upper.install_dir(node.path, copyable_metadata(info), xattrs_from=(node.top, node.top_path))


def _copy_up_link(upper: Upper, node: Node) -> None:
    """A symbolic link is copied as a link (its target string, owner and times), never
    followed, as the kernel's copy-up does."""
    info = node.top.getinfo(node.top_path, COPIED_NAMESPACES)
    with upper.keeping_times(dirname(node.path)):  # the kernel restores the parent's times
        upper.install_link(node.path, node.top.readlink(node.top_path), copyable_metadata(info), xattrs_from=(node.top, node.top_path))


#: file types that are made, never read, by a copy-up (opening a FIFO blocks), and their S_IFMT
SPECIAL_TYPES = {
    ResourceType.fifo: stat.S_IFIFO,
    ResourceType.character: stat.S_IFCHR,
    ResourceType.block_special_file: stat.S_IFBLK,
    ResourceType.socket: stat.S_IFSOCK,
}


def _copy_up_node(upper: Upper, node: Node, info: Info) -> None:
    """A FIFO, socket or device node is copied as a new node of the same type, device
    number, metadata and xattrs; never opened."""
    status = node.top.lstat(node.top_path)
    mode = status.st_mode if status is not None else SPECIAL_TYPES[info.type] | 0o644
    device = status.st_rdev if status is not None else 0
    with upper.keeping_times(dirname(node.path)):
        upper.install_node(node.path, stat.S_IFMT(mode) | 0o600, device, copyable_metadata(info), xattrs_from=(node.top, node.top_path))


def _copy_up_file(upper: Upper, node: Node, with_data: bool, stamp: bool = False) -> None:
    """The data (or nothing) with the metadata (and xattrs) of the top layer, staged and
    renamed into place; a FIFO or device is made, never read. ``stamp``: data written gives
    the copy the time of the copy-up as its mtime (see :data:`WRITE`)."""
    info = node.top.getinfo(node.top_path, COPIED_NAMESPACES)
    if info.type in SPECIAL_TYPES:
        _copy_up_node(upper, node, info)
        return
    if with_data:
        layer, path = node.data
        with layer.fs.openbin(path, "r") as source:
            staged = upper.stage(source)
    else:
        staged = upper.stage(None)
    metadata = copyable_metadata(info)
    if not with_data:  # copied up for an O_TRUNC open, which stamps the file: staged stamped
        metadata["details"] = {"accessed": upper.now(), "modified": upper.now()}
    elif stamp and upper.fs.getsize(staged):  # written into: modified now, accessed kept
        metadata["details"] = dict(metadata.get("details", {}), modified=upper.now())
    apply_metadata(upper.fs, staged, metadata)
    upper.copy_xattrs(node.top, node.top_path, staged)  # after the owner: chown drops security.capability
    with upper.keeping_times(dirname(node.path)):
        upper.install(staged, node.path, copy_up=True)
