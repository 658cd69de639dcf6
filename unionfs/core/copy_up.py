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


def copy_up(lookup: Lookup, upper: Upper, node: Node, with_data: bool = True) -> None:
    """Copy ``node`` (and its parents) up, unless the upper already has it. ``with_data=False``
    copies a file's metadata only, for an open that truncates it anyway."""
    if node.in_upper:
        return
    copy_up_parents(lookup, upper, node.path)
    if node.is_dir:
        _copy_up_dir(upper, node)
    elif node.is_link:
        _copy_up_link(upper, node)
    else:
        _copy_up_file(upper, node, with_data)


def _copy_up_dir(upper: Upper, node: Node) -> None:
    info = node.top.fs.getinfo(node.path, COPIED_NAMESPACES)
    with upper.keeping_times(dirname(node.path)):  # the kernel restores the parent's times
        upper.install_dir(node.path, copyable_metadata(info), xattrs_from=(node.top, node.path))


def _copy_up_link(upper: Upper, node: Node) -> None:
    """A symbolic link is copied as a link (its target string, owner and times), never
    followed, as the kernel's copy-up does."""
    info = node.top.getinfo(node.path, COPIED_NAMESPACES)
    with upper.keeping_times(dirname(node.path)):  # the kernel restores the parent's times
        upper.install_link(node.path, node.top.readlink(node.path), copyable_metadata(info), xattrs_from=(node.top, node.path))


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
    status = node.top.lstat(node.path)
    mode = status.st_mode if status is not None else SPECIAL_TYPES[info.type] | 0o644
    device = status.st_rdev if status is not None else 0
    with upper.keeping_times(dirname(node.path)):
        upper.install_node(node.path, stat.S_IFMT(mode) | 0o600, device, copyable_metadata(info), xattrs_from=(node.top, node.path))


def _copy_up_file(upper: Upper, node: Node, with_data: bool) -> None:
    layer_fs = node.top.fs
    info = node.top.getinfo(node.path, COPIED_NAMESPACES)
    if info.type in SPECIAL_TYPES:
        _copy_up_node(upper, node, info)
        return
    if with_data:
        with layer_fs.openbin(node.path, "r") as source:
            staged = upper.stage(source)
    else:
        staged = upper.stage(None)
    metadata = copyable_metadata(info)
    if not with_data:  # copied up for an O_TRUNC open, which stamps the file: staged stamped
        metadata["details"] = {"accessed": upper.now(), "modified": upper.now()}
    apply_metadata(upper.fs, staged, metadata)
    upper.copy_xattrs(node.top, node.path, staged)  # after the owner: chown drops security.capability
    with upper.keeping_times(dirname(node.path)):
        upper.install(staged, node.path, copy_up=True)
