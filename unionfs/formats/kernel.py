"""Layers in the Linux kernel's on-disk overlayfs format, both ways.

Reading (:class:`KernelLayer`): a directory as the kernel keeps an upperdir or a
container engine keeps a layer. A whiteout is a character device 0/0, or (the "xattr
whiteout" of Linux 6.7+) an empty regular file with ``overlay.whiteout`` inside a
directory whose ``overlay.opaque`` is ``x``; a directory is opaque when its
``overlay.opaque`` xattr is ``y``. Both the ``trusted.`` and the ``user.`` (``-o
userxattr``) namespaces are understood. Redirects and metacopy are not (the kernel
only creates them with ``redirect_dir=on`` or ``metacopy=on``).

Writing (:func:`export_upper`): the upper and its sidecar as such a directory, so that
``mount -t overlay`` over the same lowers shows the same merged view.
"""

from __future__ import annotations

import os
import stat
import warnings
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs import errors
from fs.osfs import OSFS

from ..errors import ModesLost, UnsupportedLayer, literal
from ..io import copy_stream
from ..changes import UpperEntry, link_target, upper_entries
from ..core.stack import DirIndex, Layer, Stack

WHITEOUT_STYLES = ("device", "xattr")


def _namespaces(userxattr: Optional[bool]) -> Tuple[str, ...]:
    """Where to look for overlay xattrs: ``True`` ``user.`` (``-o userxattr``); ``False`` and
    ``None`` ``trusted.`` only, as the kernel's default mount, which ignores ``user.overlay.*``."""
    return ("user",) if userxattr else ("trusted",)


def _overlay_xattr(path: str, name: str, namespaces: Sequence[str]) -> Optional[bytes]:
    for namespace in namespaces:
        try:
            return os.getxattr(path, "%s.overlay.%s" % (namespace, name), follow_symlinks=False)
        except OSError:
            continue
    return None


class KernelLayer(Layer):
    """A lower layer that is a directory in the kernel's overlayfs format."""

    #: whiteouts are devices and opacity an xattr of the entries: read per directory
    PROBES = False

    def __init__(self, directory: str, label: str, userxattr: Optional[bool] = None) -> None:
        if not os.path.isdir(directory):
            raise errors.CreateFailed(msg=literal("kernel-format layer %r is not a directory" % directory))
        super().__init__(OSFS(directory), label, is_upper=False, sidecar=None)
        self.root = os.path.abspath(directory)
        self.namespaces = _namespaces(userxattr)
        #: xattr prefixes of this layer's markers, never shown through the overlay
        #: (``trusted.overlay.`` never is: unionfs.core.xattr)
        self.private_xattrs: Tuple[str, ...] = tuple("%s.overlay." % namespace for namespace in self.namespaces)

    def _read_dir(self, path: str) -> Optional[DirIndex]:
        directory = os.path.join(self.root, path.lstrip("/"))
        try:
            listing = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return None
        xattr_whiteouts = _overlay_xattr(directory, "opaque", self.namespaces) == b"x"
        index = DirIndex({})
        for entry in listing:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                index.whiteouts.add(entry.name)
            elif stat.S_ISDIR(st.st_mode):
                index.entries[entry.name] = True
                if _overlay_xattr(entry.path, "opaque", self.namespaces) == b"y":
                    index.opaque.add(entry.name)
                self._refuse(entry.path, "redirect", "a renamed directory (redirect_dir=on)")
            elif (
                xattr_whiteouts
                and stat.S_ISREG(st.st_mode)
                and st.st_size == 0
                and _overlay_xattr(entry.path, "whiteout", self.namespaces) is not None
            ):
                index.whiteouts.add(entry.name)
                index.sticky = True
            else:
                if stat.S_ISREG(st.st_mode) and st.st_size > 0:
                    self._refuse(entry.path, "metacopy", "a metadata-only copy-up (metacopy=on)")
                index.entries[entry.name] = False
                if stat.S_ISLNK(st.st_mode):
                    index.links.add(entry.name)  # never followed: the overlay resolves it in its view
        return index

    def _refuse(self, path: str, xattr: str, what: str) -> None:
        """Redirects and metacopy need the lower layers' file handles to follow: a layer using
        them is refused rather than shown wrongly."""
        if _overlay_xattr(path, xattr, self.namespaces) is not None:
            raise UnsupportedLayer(
                msg="%s: %s is %s, which unionfs cannot follow" % (self.label, os.path.relpath(path, self.root), what)
            )


def kernel_layers(lowerdirs: Sequence[str], userxattr: Optional[bool] = None) -> List[Layer]:
    """Layers for directories given in ``lowerdir=`` order (topmost first)."""
    if isinstance(lowerdirs, (str, os.PathLike)):
        lowerdirs = [lowerdirs]
    return [KernelLayer(os.fspath(d), "kernel lower %d (%s)" % (i, os.fspath(d)), userxattr) for i, d in enumerate(lowerdirs)]


# -- export ----------------------------------------------------------------------------------------


def _apply_metadata(path: str, change: UpperEntry, is_link: bool = False) -> None:
    info = change.info
    raw: Mapping[str, Any] = info.raw if info is not None else {}
    access: Mapping[str, Any] = raw.get("access") or {}
    if access.get("uid") is not None or access.get("gid") is not None:
        os.chown(path, int(access.get("uid") or 0), int(access.get("gid") or 0), follow_symlinks=False)
    if not is_link and access.get("permissions") is not None:
        os.chmod(path, info.permissions.mode)  # type: ignore[union-attr]
    modified = (raw.get("details") or {}).get("modified")
    if modified is not None:
        os.utime(path, (modified, modified), follow_symlinks=False)


def _whiteout(path: str, style: str, namespace: str, marked_dirs: set) -> None:
    if style == "device":
        os.mknod(path, 0o000 | stat.S_IFCHR, os.makedev(0, 0))
        return
    parent = os.path.dirname(path)
    if parent not in marked_dirs:
        os.setxattr(parent, namespace + ".overlay.opaque", b"x")
        marked_dirs.add(parent)
    with open(path, "wb"):
        pass
    os.setxattr(path, namespace + ".overlay.whiteout", b"")


def export_upper(stack: Stack, dest_dir: str, userxattr: bool = False, whiteout: str = "device") -> None:
    """Write the entries and markers of the upper of ``stack`` to ``dest_dir`` in the kernel's format."""
    upper = stack.upper
    if upper is None:
        raise errors.ResourceReadOnly("/", msg="a read-only overlay has no upper to export")
    if whiteout not in WHITEOUT_STYLES:
        raise ValueError("whiteout must be one of %s, not %r" % (", ".join(WHITEOUT_STYLES), whiteout))
    if os.path.exists(dest_dir):
        if not os.path.isdir(dest_dir):
            raise errors.DirectoryExpected(dest_dir)
        if os.listdir(dest_dir):
            raise errors.DirectoryNotEmpty(dest_dir)
    else:
        os.makedirs(dest_dir)
    namespace = "user" if userxattr else "trusted"
    marked_dirs: set = set()
    directories: List[Tuple[str, UpperEntry]] = []
    without_modes = 0
    for change in upper_entries(upper):
        target = os.path.join(dest_dir, change.path.lstrip("/"))
        if change.kind != "whiteout" and (change.info is None or not (change.info.raw.get("access") or {}).get("permissions")):
            without_modes += 1
        if change.kind == "whiteout":
            _whiteout(target, whiteout, namespace, marked_dirs)
        elif change.kind == "dir":
            os.mkdir(target)
            if change.opaque:
                os.setxattr(target, namespace + ".overlay.opaque", b"y")
            directories.append((target, change))
        elif change.hardlink_of is not None:  # a second name of a file already written
            os.link(os.path.join(dest_dir, change.hardlink_of.lstrip("/")), target, follow_symlinks=False)
        else:
            link = link_target(change)
            if link is not None:
                os.symlink(link, target)
                _apply_metadata(target, change, is_link=True)
                continue
            with upper.fs.openbin(change.path, "r") as source, open(target, "wb") as out:
                copy_stream(source, out)
            _apply_metadata(target, change)
    for target, change in reversed(directories):  # children first: writing them changed the times
        _apply_metadata(target, change)
    if without_modes:
        # said, not guessed: a lower's mode would be wrong for a file removed and made again
        warnings.warn(
            ModesLost(
                "export_kernel to %r: the upper %r holds no modes or owners, so %d entries were written "
                "with 0644/0755 and root" % (dest_dir, upper.fs, without_modes)
            ),
            stacklevel=3,
        )
