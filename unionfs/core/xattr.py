"""Extended attributes of merged entries (the kernel's ``xattrs.c``).

An entry's attributes are its topmost layer's: on a layer that is a directory on disk the
real ones (``os.listxattr``/``os.getxattr``, never following a link); on a layer whose FS
offers ``xattrs(path) -> {name: value}`` (an archive index that kept PAX xattrs) those; on
an overlay used as a layer what its view shows (``listxattr``/``getxattr``); elsewhere
(memory, archives without them) none. Names under ``trusted.overlay.`` are the
overlay's own and never shown; one set through the overlay is stored escaped as
``trusted.overlay.overlay.<rest>`` and shown unescaped, exactly as the kernel (6.7+) does.
A kernel-format layer read with ``userxattr`` also hides its ``user.overlay.`` markers
(the layer says so with ``private_xattrs``). The sidecar keeps nothing in xattrs.
"""

from __future__ import annotations

import errno
import os
from typing import Dict, List, Optional

from .. import _fsimport  # noqa: F401
from fs import errors

from ..errors import AttributeExists, AttributeNameInvalid, AttributeTooLarge, NoSuchAttribute, literal, os_failure
from .stack import Layer, disk_root

#: the overlay's own namespace, and the escaped form a name of it set through the overlay takes
PRIVATE = "trusted.overlay."
ESCAPED = "trusted.overlay.overlay."
#: the kernel's XATTR_NAME_MAX and XATTR_SIZE_MAX
NAME_MAX = 255
SIZE_MAX = 65536
#: setxattr(2) flags
XATTR_CREATE = os.XATTR_CREATE
XATTR_REPLACE = os.XATTR_REPLACE
#: namespaces an attribute may be set in through the overlay (``system.`` is the kernel's
#: own: ENOTSUP, as the kernel overlay answers, but for the POSIX ACLs)
SETTABLE = ("user.", "trusted.", "security.")
KNOWN = SETTABLE + ("system.",)
#: the POSIX ACLs (``system.``), which the kernel overlay keeps in its upper (``ovl_set_acl``):
#: set on the upper entry, whose filesystem checks them and updates its mode (the rwx bits
#: only: sticky and set-group-ID stay), ENOTSUP where it has no ACLs
ACL_ACCESS = "system.posix_acl_access"
ACLS = (ACL_ACCESS, "system.posix_acl_default")


def check_size(name: str, display: str) -> None:
    """The VFS's first check of an attribute name, before the path is looked up: empty or
    longer than 255 bytes is ERANGE."""
    if not isinstance(name, str):
        raise TypeError("an attribute name must be str, not %s" % type(name).__name__)
    size = len(name.encode("utf-8", "surrogateescape"))
    if size == 0 or size > NAME_MAX:
        raise AttributeNameInvalid(display, name, errno.ERANGE)


def check_namespace(name: str, display: str, setting: bool = False) -> None:
    """The namespace of a name, checked after the lookup as the VFS does: ENOTSUP for no
    known namespace (or ``system.`` but the ACLs when setting), EINVAL for a bare prefix
    (``user.``)."""
    prefix = next((known for known in KNOWN if name.startswith(known)), None)
    if prefix is None or (setting and prefix not in SETTABLE and name not in ACLS):
        raise errors.Unsupported(display, msg=literal("extended attribute %r not supported on '%s'" % (name, display)))
    if name == prefix:
        raise AttributeNameInvalid(display, name, errno.EINVAL)


def check_value(name: str, value: bytes, display: str) -> None:
    if not isinstance(value, bytes):
        raise TypeError("an attribute value must be bytes, not %s" % type(value).__name__)
    if len(value) > SIZE_MAX:
        raise AttributeTooLarge(display, name)


def stored_name(name: str) -> str:
    """The name a layer holds for the overlay's ``name`` (the kernel's escape)."""
    return ESCAPED + name[len(PRIVATE):] if name.startswith(PRIVATE) else name


def shown_name(layer: Layer, stored: str) -> Optional[str]:
    """The name the overlay shows for a layer's ``stored`` one, or ``None`` (the overlay's own)."""
    if stored.startswith(ESCAPED):
        return PRIVATE + stored[len(ESCAPED):]
    if stored.startswith(PRIVATE):
        return None
    if any(stored.startswith(prefix) for prefix in getattr(layer, "private_xattrs", ())):
        return None
    return stored


def _sys_path(layer: Layer, path: str) -> Optional[str]:
    root = disk_root(layer.fs)
    if root is None:
        return None
    return root + path if path != "/" else root or "/"


def read_all(layer: Layer, path: str) -> Dict[str, bytes]:
    """Every attribute ``path`` has in ``layer``, by its stored name."""
    sys_path = _sys_path(layer, path)
    if sys_path is None:
        provider = getattr(layer.fs, "xattrs", None)
        if callable(provider):
            return dict(provider(path))
        names, value_of = getattr(layer.fs, "listxattr", None), getattr(layer.fs, "getxattr", None)
        if callable(names) and callable(value_of):  # an overlay as a layer: what its view shows
            return {name: value_of(path, name, follow_symlinks=False) for name in names(path, follow_symlinks=False)}
        return {}
    result: Dict[str, bytes] = {}
    try:
        for name in os.listxattr(sys_path, follow_symlinks=False):
            try:
                result[name] = os.getxattr(sys_path, name, follow_symlinks=False)
            except OSError as error:
                if error.errno != errno.ENODATA:  # removed meanwhile: not there
                    raise
    except OSError as error:
        if error.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise os_failure(path, error, "cannot read the xattrs of %r in %s" % (path, layer.label)) from error
    return result


def names(layer: Layer, path: str) -> List[str]:
    """listxattr(2) of ``path`` of ``layer`` through the overlay."""
    return [shown for shown in (shown_name(layer, stored) for stored in read_all(layer, path)) if shown is not None]


def get(layer: Layer, path: str, name: str, display: str) -> bytes:
    """getxattr(2) of ``path`` of ``layer`` through the overlay."""
    stored = stored_name(name)
    if shown_name(layer, stored) is not None:
        sys_path = _sys_path(layer, path)
        if sys_path is not None:
            try:
                return os.getxattr(sys_path, stored, follow_symlinks=False)
            except OSError as error:
                if error.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise os_failure(display, error, "cannot read the xattr %r of '%s'" % (name, display)) from error
        else:
            value = read_all(layer, path).get(stored)
            if value is not None:
                return value
    raise NoSuchAttribute(display, name)


def has(layer: Layer, path: str, name: str) -> bool:
    try:
        get(layer, path, name, path)
    except NoSuchAttribute:
        return False
    return True


def copy_all(layer: Layer, path: str, dst_sys_path: str) -> None:
    """Copy-up: give ``dst_sys_path`` (the staged upper copy) every attribute of ``path`` in
    ``layer`` but the overlay's own private ones (escaped ones are copied, as the kernel
    does). Best effort per name where the upper refuses one (ENOTSUP, EPERM), as the
    kernel skips what the upper filesystem does not support."""
    for stored, value in read_all(layer, path).items():
        if shown_name(layer, stored) is None:
            continue
        try:
            os.setxattr(dst_sys_path, stored, value, follow_symlinks=False)
        except OSError as error:
            if error.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES):
                raise os_failure(path, error, "cannot copy the xattr %r of %r up" % (stored, path)) from error


def set_on_disk(sys_path: str, name: str, value: bytes, flags: int, display: str) -> None:
    """setxattr(2) of an upper entry, the overlay's name stored escaped."""
    try:
        os.setxattr(sys_path, stored_name(name), value, flags, follow_symlinks=False)
    except OSError as error:
        raise _error(error, name, display) from None


def remove_on_disk(sys_path: str, name: str, display: str) -> None:
    try:
        os.removexattr(sys_path, stored_name(name), follow_symlinks=False)
    except OSError as error:
        raise _error(error, name, display) from None


def _error(error: OSError, name: str, display: str) -> errors.FSError:
    if error.errno == errno.ENODATA:
        return NoSuchAttribute(display, name)
    if error.errno == errno.EEXIST:
        return AttributeExists(display, name)
    if error.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
        return errors.Unsupported(display, exc=error, msg=literal("the upper cannot hold the xattr %r of '%s'" % (name, display)))
    if error.errno == errno.ENOSPC:
        return errors.InsufficientStorage(display, exc=error, msg=literal("no room for the xattr %r of '%s'" % (name, display)))
    return os_failure(display, error, "cannot set the xattr %r of '%s'" % (name, display))
