"""Layers in the Linux kernel's on-disk overlayfs format, both ways.

Reading (:class:`KernelLayer`): a directory as the kernel keeps an upperdir or a
container engine keeps a layer. A whiteout is a character device 0/0, or (the "xattr
whiteout" of Linux 6.7+) an empty regular file with ``overlay.whiteout`` inside a
directory whose ``overlay.opaque`` is ``x``; a directory is opaque when its
``overlay.opaque`` xattr is ``y``. Both the ``trusted.`` and the ``user.`` (``-o
userxattr``) namespaces are understood, and so are the renames of ``redirect_dir=on`` and
``metacopy=on``: a directory's ``overlay.redirect`` (where the lowers hold its contents) and
a metadata-only file's ``overlay.metacopy`` (its data below, at its ``overlay.redirect`` or
the same name), followed as the kernel's ``namei.c`` does.

Writing (:func:`export_upper`): the upper and its sidecar as such a directory, so that
``mount -t overlay`` over the same lowers shows the same merged view.
"""

from __future__ import annotations

import os
import stat
import threading
import time
import warnings
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs import errors
from fs.osfs import OSFS

from ..errors import ModesLost, UnsupportedLayer, literal
from ..io import copy_stream
from ..changes import UpperEntry, link_target, upper_entries
from ..core.inode import node_info
from ..core.lookup import Lookup
from ..core.stack import DirIndex, Layer, Stack
from ..core.walk import layer_tree

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


#: how long the ``lstat`` results of a directory read stay the answer to :meth:`KernelLayer.lstat`
#: (a lower never changes under an overlay but its atimes do: as long as the kernel's own
#: attribute cache on a mount, ``unionfs.tools.mount.CACHE_TIMEOUT``)
STATS_FRESH = 1.0
#: directories whose stats are kept at once (lookups of several directories interleave:
#: git's parallel index refresh)
STATS_KEPT = 64


class KernelLayer(Layer):
    """A lower layer that is a directory in the kernel's overlayfs format."""

    #: whiteouts are devices and opacity an xattr of the entries: read per directory
    PROBES = False

    @property
    def may_redirect(self) -> bool:
        """A kernel layer may carry ``overlay.redirect`` and ``overlay.metacopy`` anywhere."""
        return True

    def __init__(self, directory: str, label: str, userxattr: Optional[bool] = None) -> None:
        if not os.path.isdir(directory):
            raise errors.CreateFailed(msg=literal("kernel-format layer %r is not a directory" % directory))
        super().__init__(OSFS(directory), label, is_upper=False, sidecar=None)
        self.root = os.path.abspath(directory)
        self.namespaces = _namespaces(userxattr)
        self._prefixes = tuple("%s.overlay." % namespace for namespace in self.namespaces)
        #: xattr prefixes of this layer's markers, never shown through the overlay
        #: (``trusted.overlay.`` never is: unionfs.core.xattr)
        self.private_xattrs: Tuple[str, ...] = self._prefixes
        #: dir path -> (when read, name -> lstat of its entries): the stats reading the
        #: directory took, the answer to the lstat of an entry that usually follows its lookup
        self._stats: "OrderedDict[str, Tuple[float, Dict[str, os.stat_result]]]" = OrderedDict()
        self._stats_lock = threading.Lock()

    def _read_dir(self, path: str) -> Optional[DirIndex]:
        directory = os.path.join(self.root, path.lstrip("/"))
        try:
            listing = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return None
        xattr_whiteouts = _overlay_xattr(directory, "opaque", self.namespaces) == b"x"
        index = DirIndex({})
        stats: Dict[str, os.stat_result] = {}
        for entry in listing:
            st = entry.stat(follow_symlinks=False)
            stats[entry.name] = st
            # one listxattr tells whether the entry has any overlay xattr at all (most have none)
            marked = (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)) and self._has_overlay_xattrs(entry.path)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                index.whiteouts.add(entry.name)
            elif stat.S_ISDIR(st.st_mode):
                index.entries[entry.name] = True
                if marked and _overlay_xattr(entry.path, "opaque", self.namespaces) == b"y":
                    index.opaque.add(entry.name)
                if marked:
                    redirect = self._redirect(entry.path)
                    if redirect is not None:
                        index.redirects[entry.name] = redirect
            elif (
                xattr_whiteouts
                and marked
                and stat.S_ISREG(st.st_mode)
                and st.st_size == 0
                and _overlay_xattr(entry.path, "whiteout", self.namespaces) is not None
            ):
                index.whiteouts.add(entry.name)
                index.sticky = True
            else:
                index.entries[entry.name] = False
                if stat.S_ISLNK(st.st_mode):
                    index.links.add(entry.name)  # never followed: the overlay resolves it in its view
                elif marked and stat.S_ISREG(st.st_mode) and _overlay_xattr(entry.path, "metacopy", self.namespaces) is not None:
                    # metadata only: the data is below, at the redirect or the same name
                    index.metacopy[entry.name] = self._redirect(entry.path)
        with self._stats_lock:
            self._stats[path] = (time.monotonic(), stats)
            self._stats.move_to_end(path)
            while len(self._stats) > STATS_KEPT:
                self._stats.popitem(last=False)
        return index

    def _has_overlay_xattrs(self, path: str) -> bool:
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError:
            return True  # cannot tell: ask for each xattr, as without this shortcut
        return any(name.startswith(self._prefixes) for name in names)

    def lstat(self, path: str) -> Optional[os.stat_result]:
        """The entry's stat from the read of its directory just made (one system call less
        per entry looked up), else the layer's own ``lstat``."""
        parent, _, name = path.rpartition("/")
        with self._stats_lock:
            kept = self._stats.get(parent or "/")
        if kept is not None and time.monotonic() - kept[0] < STATS_FRESH:
            found = kept[1].get(name)
            if found is not None:
                return found
        return super().lstat(path)

    def _redirect(self, path: str) -> Optional[str]:
        """The entry's ``overlay.redirect``: an absolute path from the layers' root, or a name
        relative to the parent (the kernel writes those for a rename within one directory)."""
        value = _overlay_xattr(path, "redirect", self.namespaces)
        if value is None:
            return None
        try:
            redirect = value.decode("utf-8")
        except UnicodeDecodeError:
            raise UnsupportedLayer(msg="%s: the redirect of %s is not UTF-8" % (self.label, os.path.relpath(path, self.root))) from None
        if not redirect or "\0" in redirect or redirect in (".", "..") or (not redirect.startswith("/") and "/" in redirect):
            # (a relative one is one name: the kernel's lookup_one_len refuses '.' and '..')
            raise UnsupportedLayer(
                msg="%s: %s has a malformed redirect %r" % (self.label, os.path.relpath(path, self.root), redirect)
            )
        return redirect


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


def _refuse_renames_for_userxattr(upper: Layer) -> None:
    """The kernel refuses ``-o userxattr`` together with ``redirect_dir`` and ``metacopy``
    ("conflicting options"), so ``user.overlay.redirect``/``metacopy`` would never be followed:
    a renamed directory or a metadata-only file cannot be exported for such a mount."""
    for entry in layer_tree(upper, order="export"):
        if (entry.is_dir and entry.name in entry.parent.redirects) or (entry.is_dir is False and entry.name in entry.parent.metacopy):
            raise errors.Unsupported(
                entry.path,
                msg=literal(
                    "cannot export %s for a userxattr mount: the kernel does not follow redirects or "
                    "metadata-only copies there (export with userxattr=False, or make the upper with "
                    "redirect_dir=False, metacopy=False)" % entry.path
                ),
            )


def export_upper(stack: Stack, dest_dir: str, userxattr: bool = False, whiteout: str = "device") -> None:
    """Write the entries and markers of the upper of ``stack`` to ``dest_dir`` in the kernel's
    format: redirect records as ``overlay.redirect``, metadata-only files as sparse files of
    their data's size with ``overlay.metacopy`` and their data's path as ``overlay.redirect``."""
    upper = stack.upper
    if upper is None:
        raise errors.ResourceReadOnly("/", msg="a read-only overlay has no upper to export")
    lookup = Lookup(list(stack.layers))

    def data_size(path: str) -> int:
        """The size a metadata-only file shows: its data's."""
        node = lookup.node(path)
        assert node is not None
        return int(node_info(node, ["details"]).size)

    if whiteout not in WHITEOUT_STYLES:
        raise ValueError("whiteout must be one of %s, not %r" % (", ".join(WHITEOUT_STYLES), whiteout))
    if userxattr:
        _refuse_renames_for_userxattr(upper)
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
            if change.redirect is not None:
                os.setxattr(target, namespace + ".overlay.redirect", change.redirect.encode("utf-8"))
            directories.append((target, change))
        elif change.hardlink_of is not None:  # a second name of a file already written
            os.link(os.path.join(dest_dir, change.hardlink_of.lstrip("/")), target, follow_symlinks=False)
        elif change.metacopy is not None:
            with open(target, "wb") as out:
                out.truncate(data_size(change.path))  # sparse: no data
            os.setxattr(target, namespace + ".overlay.metacopy", b"")
            os.setxattr(target, namespace + ".overlay.redirect", change.metacopy.encode("utf-8"))
            _apply_metadata(target, change)
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
