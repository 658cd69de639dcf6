"""Attributes of merged entries (the kernel's ``inode.c``).

Metadata of an entry, a merged directory included, comes from its topmost layer.
Copy-up carries over whatever metadata the upper can hold: times, permissions and
ownership where the upper supports them.
"""

from __future__ import annotations

import os
from typing import Any, Collection, Dict, Mapping, Optional, Tuple

from .. import _fsimport  # noqa: F401
from fs import errors
from fs.base import FS
from fs.info import Info
from fs.permissions import Permissions

#: the namespaces copy-up reads from the lower entry
COPIED_NAMESPACES = ("details", "access")


def first_name(names: Dict[Tuple[int, int], str], status: Optional[os.stat_result], path: str) -> Optional[str]:
    """For a walk that keeps hard links (export, ``cp -a``): the name already met of the file
    ``status`` describes (``names``: by ``(st_dev, st_ino)``), or ``None`` with ``path`` noted
    as its first name. A file of one name, or with no ``status``, is never noted."""
    if status is None or status.st_nlink < 2:
        return None
    key = (status.st_dev, status.st_ino)
    first = names.get(key)
    if first is None:
        names[key] = path
    return first


def copyable_metadata(info: Info) -> Dict[str, Dict[str, Any]]:
    """The parts of ``info`` worth giving to the copy-up, in ``setinfo`` form."""
    raw = info.raw
    details = raw.get("details") or {}
    access = raw.get("access") or {}
    result: Dict[str, Dict[str, Any]] = {}
    times = {key: details[key] for key in ("modified", "accessed") if details.get(key) is not None}
    if times:
        result["details"] = times
    kept = {key: access[key] for key in ("permissions", "uid", "gid") if access.get(key) is not None}
    if kept:
        result["access"] = kept
    return result


def apply_metadata(target: FS, path: str, metadata: Mapping[str, Mapping[str, Any]]) -> None:
    """Give ``path`` the metadata, namespace by namespace, skipping what the target cannot
    hold. Any other failure (an I/O error) propagates: a copy-up must not silently lose
    the metadata it exists to preserve."""
    for namespace, values in metadata.items():
        if namespace == "access" and _apply_access_on_disk(target, path, values):
            continue
        try:
            target.setinfo(path, {namespace: dict(values)})
        except (errors.Unsupported, errors.PermissionDenied, ValueError, TypeError):
            continue


def _apply_access_on_disk(target: FS, path: str, access: Mapping[str, Any]) -> bool:
    """Mode and owner through the OS where the target has system paths: ``OSFS.setinfo``
    ignores the ``access`` namespace. Whether the target was such a filesystem."""
    try:
        sys_path = target.getsyspath(path)
    except errors.NoSysPath:
        return False
    # the owner first: chown(2) clears a file's set-user-ID and set-group-ID bits (root's too),
    # which the copy keeps, as the kernel's copy-up does (its owner change is not a chown)
    uid, gid = access.get("uid"), access.get("gid")
    if uid is not None or gid is not None:
        try:
            os.chown(sys_path, -1 if uid is None else uid, -1 if gid is None else gid)
        except (OSError, ValueError, TypeError):
            pass  # not ours to give (not root, or no such id here): best effort, like cp -p
    if access.get("permissions") is not None:
        try:
            os.chmod(sys_path, Permissions(names=list(access["permissions"])).mode)
        except (OSError, ValueError, TypeError):
            pass
    return True


def node_info(node: Any, namespaces: Optional[Collection[str]] = None) -> Info:
    """The info of a merged entry: its top layer's; a metadata-only file's size (and the
    stat namespace's size and blocks) are its data's, as the kernel's getattr reports."""
    info = node.top.getinfo(node.top_path, namespaces)  # (the layer reuses its lookup's stat)
    if not node.metacopy:
        return info
    layer, path = node.data
    data = layer.fs.getinfo(path, ["details", "stat"] if namespaces and "stat" in namespaces else ["details"]).raw
    raw = {namespace: dict(values) for namespace, values in info.raw.items()}
    if "details" in raw:
        raw["details"]["size"] = (data.get("details") or {}).get("size", raw["details"].get("size"))
    if "stat" in raw and "stat" in data:
        for key in ("st_size", "st_blocks"):
            if key in data["stat"]:
                raw["stat"][key] = data["stat"][key]
    return Info(raw)
def apply_link_metadata(sys_path: str, metadata: Mapping[str, Mapping[str, Any]]) -> None:
    """Owner and times of a symbolic link on disk, set on the link itself (a link has no
    permissions of its own on Linux). Best effort, like ``cp -P --preserve``."""
    access, details = metadata.get("access") or {}, metadata.get("details") or {}
    try:
        uid, gid = access.get("uid"), access.get("gid")
        if uid is not None or gid is not None:
            os.chown(sys_path, -1 if uid is None else uid, -1 if gid is None else gid, follow_symlinks=False)
    except (OSError, ValueError, TypeError):
        pass
    modified = details.get("modified")
    if modified is not None:
        accessed = details.get("accessed")
        try:
            os.utime(sys_path, (modified if accessed is None else accessed, modified), follow_symlinks=False)
        except (OSError, ValueError, TypeError):
            pass


def set_access_on_disk(target: FS, path: str, access: Mapping[str, Any], display: str) -> bool:
    """chmod/chown of ``path`` through the OS where ``target`` has system paths (``OSFS.setinfo``
    ignores the ``access`` namespace), raising what the OS says; whether it could."""
    try:
        sys_path = target.getsyspath(path)
    except errors.NoSysPath:
        return False
    from fs.error_tools import convert_os_errors

    with convert_os_errors("setinfo", display):
        if access.get("permissions") is not None:
            os.chmod(sys_path, Permissions(names=list(access["permissions"])).mode, follow_symlinks=False)
        uid, gid = access.get("uid"), access.get("gid")
        if uid is not None or gid is not None:
            os.chown(sys_path, -1 if uid is None else uid, -1 if gid is None else gid, follow_symlinks=False)
    return True


def root_info(info: Info) -> Info:
    """The root's info names it ``""`` whatever the layer says."""
    if info.name == "":
        return info
    raw = {namespace: dict(values) for namespace, values in info.raw.items()}
    raw.setdefault("basic", {})["name"] = ""
    return Info(raw)
