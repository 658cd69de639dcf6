"""Never follow a symbolic link out of a layer: link-safe checks and removal.

An on-disk upper or commit target can hold symbolic links (made by another tool, or by
someone hostile). PyFilesystem2's OSFS follows them: its ``removetree`` of a link to a
directory empties the link's target, its ``openbin`` of ``dir/f`` writes wherever ``dir``
points. The kernel never does that to its own layers (``rm -rf merged/link`` removes the
link). Everything here works on the entry itself (``lstat``, ``O_NOFOLLOW``, directory
file descriptors), so nothing outside the layer is ever read as part of it, written or
deleted. An FS without system paths (MemoryFS, cloud storage) has no links: the plain FS
calls are used.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any, Collection, Dict, List, Optional, Set, Tuple

import attr

from .. import _fsimport  # noqa: F401
from fs import errors
from fs.base import FS
from fs.enums import ResourceType
from fs.info import Info
from fs.path import basename, iteratepath

from ..errors import literal, os_failure

#: directory descriptors a removal keeps open at once; deeper levels are reopened through
#: ``..`` and checked to be the same directory (device and inode)
_OPEN_LEVELS = 64
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def syspath(layer_fs: FS, path: str) -> Optional[str]:
    """The system path of ``path`` in ``layer_fs``, or ``None`` if it has none."""
    try:
        return layer_fs.getsyspath(path)
    except errors.NoSysPath:
        return None


def is_link(layer_fs: FS, path: str) -> bool:
    """Whether ``path`` itself (not what it points to) is a symbolic link."""
    where = syspath(layer_fs, path)
    if where is None:
        return False
    try:
        return stat.S_ISLNK(os.lstat(where).st_mode)
    except OSError:
        return False


def link_on_path(layer_fs: FS, path: str, checked: Optional[Set[str]] = None) -> Optional[str]:
    """The first component of ``path`` (the path itself included) that is a symbolic link,
    or ``None``. ``checked``: directories already known to be real, skipped and extended."""
    if syspath(layer_fs, "/") is None:
        return None
    current = ""
    for part in iteratepath(path):
        current += "/" + part
        if checked is not None and current in checked:
            continue
        where = syspath(layer_fs, current)
        assert where is not None
        try:
            mode = os.lstat(where).st_mode
        except FileNotFoundError:
            return None  # nothing below a missing component exists either
        except NotADirectoryError:
            return None
        if stat.S_ISLNK(mode):
            return current
        if checked is not None and stat.S_ISDIR(mode):
            checked.add(current)
    return None


def lstat_info(layer_fs: FS, path: str, namespaces: Collection[str]) -> Optional[Info]:
    """The info of the entry ``path`` itself, read with ``lstat`` (a link that points nowhere
    is still an entry); ``None`` where ``layer_fs`` has no system path or nothing is there."""
    where = syspath(layer_fs, path)
    if where is None:
        return None
    try:
        st = os.lstat(where)
    except OSError:
        return None
    is_dir = stat.S_ISDIR(st.st_mode)
    raw: Dict[str, Dict[str, Any]] = {"basic": {"name": basename(path), "is_dir": is_dir}}
    if "details" in namespaces:
        kind = ResourceType.symlink if stat.S_ISLNK(st.st_mode) else ResourceType.directory if is_dir else ResourceType.file
        raw["details"] = {
            "type": int(kind),
            "size": st.st_size,
            "accessed": st.st_atime,
            "modified": st.st_mtime,
            "metadata_changed": st.st_ctime,
            "created": None,
        }
    if "link" in namespaces:
        raw["link"] = {"target": os.readlink(where) if stat.S_ISLNK(st.st_mode) else None}
    return Info(raw)


def remove_entry(layer_fs: FS, path: str) -> None:
    """Remove ``path`` and, if it is a real directory, everything in it, never following a
    link: a link is removed itself, and so is every link inside. Iterative, so any depth works."""
    where = syspath(layer_fs, path)
    if where is None:
        if layer_fs.isdir(path):
            layer_fs.removetree(path)
        else:
            layer_fs.remove(path)
        return
    try:
        st = os.lstat(where)
    except FileNotFoundError:
        raise errors.ResourceNotFound(path) from None
    if not stat.S_ISDIR(st.st_mode):
        _os_call(path, os.unlink, where)
        return
    parent = _os_call(path, os.open, os.path.dirname(where) or "/", _DIR_FLAGS)
    try:
        _remove_tree_at(parent, os.path.basename(where), path)
    finally:
        os.close(parent)


def _os_call(path: str, function: Any, *args: Any, **kwargs: Any) -> Any:
    """``function(*args)`` with its ``OSError`` as the ``fs.errors`` exception naming ``path``."""
    try:
        return function(*args, **kwargs)
    except FileNotFoundError:
        raise errors.ResourceNotFound(path) from None
    except PermissionError:
        raise errors.PermissionDenied(path) from None
    except OSError as error:
        raise os_failure(path, error, "cannot remove %r" % path) from None


@attr.s(slots=True)
class _Level:
    """One directory being emptied: its descriptor (``None`` while closed), identity, names left."""

    fd: Optional[int] = attr.ib()
    ident: Tuple[int, int] = attr.ib()
    name: str = attr.ib()  # its name in its parent
    names: List[str] = attr.ib()


def _open_dir(dir_fd: int, name: str, path: str) -> _Level:
    fd = _os_call(path, os.open, name, _DIR_FLAGS, dir_fd=dir_fd)
    st = os.fstat(fd)
    return _Level(fd, (st.st_dev, st.st_ino), name, os.listdir(fd))


def _remove_tree_at(top_parent: int, top_name: str, path: str) -> None:
    """Empty and remove the directory ``top_name`` of the open directory ``top_parent``."""
    stack = [_open_dir(top_parent, top_name, path)]
    try:
        while stack:
            level = stack[-1]
            assert level.fd is not None  # a closed level is reopened before its child goes
            if level.names:
                name = level.names.pop()
                try:
                    os.unlink(name, dir_fd=level.fd)
                    continue
                except FileNotFoundError:
                    continue
                except IsADirectoryError:
                    pass
                except PermissionError as error:
                    if error.errno != errno.EPERM:  # Linux answers EISDIR; some systems EPERM
                        raise errors.PermissionDenied(path) from None
                    try:
                        if not stat.S_ISDIR(os.lstat(name, dir_fd=level.fd).st_mode):
                            raise errors.PermissionDenied(path) from None
                    except FileNotFoundError:
                        continue
                if len(stack) >= _OPEN_LEVELS:
                    deep = stack[-_OPEN_LEVELS]
                    if deep.fd is not None:
                        os.close(deep.fd)
                        deep.fd = None
                stack.append(_open_dir(level.fd, name, path))
                continue
            stack.pop()
            parent_fd = stack[-1].fd if stack else top_parent
            if parent_fd is None:  # closed to spare descriptors: reopen it through ".." of the child
                stack[-1].fd = parent_fd = _reopen_parent(stack[-1], level, path)
            os.close(level.fd)
            level.fd = None
            _os_call(path, os.rmdir, level.name, dir_fd=parent_fd)
    finally:
        for level in stack:
            if level.fd is not None:
                os.close(level.fd)


def _reopen_parent(parent: _Level, child: _Level, path: str) -> int:
    """Reopen the closed directory ``parent`` through ``..`` of its open ``child``, and make
    sure it is the same directory (nobody swapped it for another meanwhile)."""
    assert child.fd is not None
    fd = _os_call(path, os.open, "..", _DIR_FLAGS, dir_fd=child.fd)
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != parent.ident:
        os.close(fd)
        raise errors.OperationFailed(path, msg=literal("cannot remove %r: a directory in it was moved meanwhile" % path))
    return fd
