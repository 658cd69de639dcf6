"""The writable upper layer: every change to it goes through :class:`Upper`.

Each method makes one change to the upper filesystem or its sidecar and then sends one
change notification (:meth:`Upper._entry_changed`, :meth:`Upper._records_changed`)
that updates every cache (the layer's directory index, the lookup's answers and
listings), so cached answers are never stale after a write through the overlay. The
read handles that follow a copy-up live in their own registry
(:class:`~unionfs.core.file.FollowingReaders`), which the overlay owns and hands in.
The sidecar's own housekeeping (journal entries, staging leftovers, emptying the upper)
goes through here too.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, BinaryIO, Dict, Iterator, List, Literal, Mapping, Optional, Tuple

from .. import _fsimport  # noqa: F401
from fs import errors
from fs.base import FS
from fs.error_tools import convert_os_errors
from fs.mode import Mode
from fs.path import basename, dirname, join
from fs.permissions import Permissions

from ..errors import literal
from ..io import CHUNK, copy_stream
from .inode import apply_link_metadata, apply_metadata, set_access_on_disk
from .file import FollowingReaders, UpperFile
from .stack import FILE, DirIndex, Layer, list_dir, disk_root
from . import journal, xattr
from .lookup import Lookup
from .nofollow import remove_entry, syspath
from .sidecar import LINK, METACOPY, METACOPY_DIR, OPAQUE, REDIRECT, RESERVED_NAME, STAGING_DIR, TREE_DIR, VERSIONS, WHITEOUT, Sidecar, rename_dir


class Upper:
    """The upper layer with its sidecar; keeps :class:`Layer` and :class:`Lookup` caches true."""

    def __init__(
        self,
        layer: Layer,
        lookup: Lookup,
        readers: Optional[FollowingReaders] = None,
        redirect_dir: bool = True,
        metacopy: bool = True,
    ) -> None:
        assert layer.is_upper and layer.sidecar is not None
        #: rename a lower or merged directory by a redirect record (else by copying)
        self.redirect_dir = redirect_dir
        #: copy up a lower file's metadata only where its data is not about to change
        self.metacopy = metacopy
        self.layer = layer
        self.fs: FS = layer.fs
        self.sidecar: Sidecar = layer.sidecar
        self.lookup = lookup
        #: fsync of the upper's files and directories (a no-op off disk or when volatile)
        self.sync = self.sidecar.sync
        #: read handles opened on lower files, which move to the upper copy at copy-up (the
        #: overlay's registry: told here when a file lands in the upper)
        self.readers = readers if readers is not None else FollowingReaders()

    # -- the change notification ------------------------------------------------------------------

    def _entry_changed(
        self,
        path: str,
        is_dir: Optional[bool],
        new_dir: bool = False,
        subtree: bool = False,
        copied_up: bool = False,
        link: Optional[str] = None,
        metacopy: Optional[str] = None,
    ) -> None:
        """The upper's entry at ``path`` is now a directory (``new_dir``: just made, so empty),
        a file, or gone (``None``): every cache hears of it here. ``subtree``: answers below
        ``path`` may have changed too (a directory came or went with its contents);
        ``copied_up``: a lower directory got its upper copy, which changes nothing below it
        but the layers of the answers the lookup keeps; ``link``: the entry is a symbolic link
        (``"fs"`` a real one, ``"record"`` a sidecar record); ``metacopy``: the file is
        metadata-only, its data at that lower path."""
        self.layer.note_entry(path, is_dir, new_dir=new_dir, link=link)
        if metacopy is not None:
            self.layer.note_metacopy(path, metacopy)  # after the entry note, which forgets it
        if copied_up:
            self.lookup.copied_up_dir(path, self.layer)
        else:
            self.lookup.forget(path, subtree=subtree)

    def _records_changed(
        self,
        path: str,
        kind: Optional[str] = None,
        present: bool = False,
        target: Optional[str] = None,
        below: Literal["all", "markers", "own whiteouts", "copied in", "unknown"] = "all",
    ) -> None:
        """Records of the upper changed; every cache hears of it here. With ``kind``: the
        ``kind`` record of ``path`` was added or removed (``present``), or for ``REDIRECT`` set
        to ``target`` (``None``: removed). Without: records inside the directory ``path`` went,
        ``below`` says which: ``"all"`` every one, ``"markers"`` the whiteout and opaque records
        at any depth (link records are entries: they stay), ``"own whiteouts"`` the whiteouts of
        its own names, ``"copied in"`` records came (inert until the upper has the directory
        ``path``: the listings cached inside it are read again); ``"unknown"`` (``path`` ``"/"``): anything about the upper may have
        changed (a failed write, another overlay), so every cache starts over, the sidecar's
        version included."""
        if kind == REDIRECT:
            self.layer.note_redirect(path, target)
        elif kind is not None:
            self.layer.note_record(path, kind, present)
        elif below == "all":
            self.layer.forget_records_below(path)
        elif below == "markers":
            self.layer.forget_markers_below(path)
        elif below == "copied in":
            self.layer.forget_below(path)
        elif below == "own whiteouts":
            index = self.layer.dir(path)
            if index is not None:
                index.whiteouts.clear()
        else:
            assert below == "unknown" and path == "/", (below, path)
            self.layer.reset()
        self.lookup.forget(path, subtree=True)
        if kind is None and below == "unknown":
            self.sidecar.reread_version()
            self.sidecar.forget_checked()

    # -- entries ------------------------------------------------------------------------------

    def _clear_stale(self, path: str) -> None:
        """Before a directory is made at ``path``, where the upper has none: forget any record of
        a former directory there (a crash between a rename or removal and its clean-up can leave
        some), so a redirect of the past never applies to the new one. Plain uppers (no redirect
        records ever written) cannot have such records, and pay nothing."""
        if REDIRECT not in VERSIONS[self.sidecar.version].kinds:
            return
        self.remove_redirect(path, known=False)
        self.drop_records_below(path)  # (the caches hear of it too, as of every record change)

    def makedir(self, path: str, permissions: Optional[Permissions] = None) -> None:
        self._clear_stale(path)
        self.fs.makedir(path, permissions=permissions)
        self.sync.dir(dirname(path))
        self._entry_changed(path, True, new_dir=True)

    def install_dir(
        self, path: str, metadata: Mapping[str, Mapping[str, Any]], xattrs_from: Optional[Tuple[Layer, str]] = None
    ) -> None:
        """Make the directory ``path`` with ``metadata`` (and the xattrs of ``xattrs_from``)
        atomically: made and given its metadata in the staging area, then renamed into place
        (a copy-up never shows half-made)."""
        self._clear_stale(path)
        staged = self.sidecar.staging_path()
        self.fs.makedir(staged)
        apply_metadata(self.fs, staged, metadata)
        if xattrs_from is not None:
            self.copy_xattrs(xattrs_from[0], xattrs_from[1], staged)
        self.sync.path(staged)
        rename_dir(self.fs, staged, path)
        self.sync.dir(dirname(path))
        self._entry_changed(path, True, new_dir=True, copied_up=True)

    def openbin(self, path: str, mode: str, buffering: int = -1, **options: Any) -> BinaryIO:
        """Open a file of the upper for writing, as an :class:`UpperFile` (the kernel's
        append and truncate semantics on any upper); a file it creates joins the view at
        once, and its name is durable when the open returns."""
        created = self.layer.lookup(dirname(path), basename(path)) < FILE
        handle = self.fs.openbin(path, mode, buffering=buffering, **options)
        if created:
            self.sync.dir(dirname(path))
            self._entry_changed(path, False)
        return UpperFile(handle, path, Mode(mode), self.sync)  # type: ignore[return-value]

    def stage(self, source: Optional[BinaryIO], chunk_size: int = CHUNK) -> str:
        """Write ``source`` (or nothing) to a fresh staging file, in chunks; return its path.
        The caller gives it its metadata and :meth:`install` syncs and renames it."""
        staged = self.sidecar.staging_path()
        try:
            with self.fs.openbin(staged, "w") as out:
                if source is not None:
                    copy_stream(source, out, chunk_size)
        except BaseException:
            # a source that fails mid-stream (a network read, a damaged archive member) leaves no partial copy behind
            try:
                self.fs.remove(staged)
            except errors.FSError:
                pass  # the next open empties the staging area anyway
            raise
        return staged

    def install(self, staged: str, path: str, copy_up: bool = False) -> None:
        """Atomically put a staged file at ``path`` (a rename within the upper): its data and
        metadata are synced before the rename, the directory after it (as the kernel's
        copy-up does), so neither a crash nor a power cut shows it empty or half-made.
        ``copy_up``: it is the upper copy of the lower file at ``path``, so that file's read
        handles move to it (a replacement leaves them on what they read). A file the upper
        holds under several names (a hard link) is rewritten in place instead, as an
        ``O_TRUNC`` open does on the kernel: every name then reads the new data. A
        metadata-only file there becomes an ordinary one by it, then its records go."""
        token = self._metacopy_content(path)
        had_record = self.is_link_record(path)
        try:
            if self._hard_linked(path):
                with self.fs.openbin(staged, "r") as source, self.fs.openbin(path, "r+") as out:
                    out.truncate(0)
                    copy_stream(source, out, CHUNK)
                self.sync.path(path)
                self._discard_staged(staged)
            else:
                self.sync.path(staged)
                self._rename_file(staged, path)
        except errors.FSError:
            self._discard_staged(staged)  # refused (a name too long, say): leave nothing behind
            raise
        self.sync.dir(dirname(path))
        self._entry_changed(path, False)
        if had_record:  # the new entry wins over the record already; now the record goes
            self.sidecar.remove_record(path, LINK)
        if copy_up:
            self.readers.copied_up(self.fs, path)
        if token is not None:
            self._forget_metacopy(path, token)

    def install_metacopy(
        self, path: str, origin: str, metadata: Mapping[str, Mapping[str, Any]],
        xattrs_from: Optional[Tuple[Layer, str]] = None,
    ) -> None:
        """Make ``path`` a metadata-only copy of the lower file whose data is at ``origin``: the
        table entry and the hint first (both inert without the file), then the file holding
        the token, with ``metadata`` (and the xattrs of ``xattrs_from``), by one rename.
        Readers of the lower file stay on it."""
        content = self.sidecar.new_metacopy(origin)
        self.sidecar.add_record(path, METACOPY)
        staged = self.sidecar.staging_path()
        self.fs.writebytes(staged, content)
        apply_metadata(self.fs, staged, metadata)
        if xattrs_from is not None:
            self.copy_xattrs(xattrs_from[0], xattrs_from[1], staged)
        self.sync.path(staged)
        self.fs.move(staged, path, overwrite=True)
        self.sync.dir(dirname(path))
        self._entry_changed(path, False, metacopy=origin)

    def is_metacopy(self, path: str) -> bool:
        index = self.layer.dir(dirname(path))
        return index is not None and basename(path) in index.metacopy

    def _metacopy_content(self, path: str) -> Optional[bytes]:
        """The token content of the metadata-only upper file ``path``; ``None`` for others."""
        if not self.is_metacopy(path):
            return None
        return self.fs.readbytes(path)

    def _forget_metacopy(self, path: str, content: bytes) -> None:
        """The clean-up after a metadata-only file at ``path`` was replaced or removed."""
        self.sidecar.remove_record(path, METACOPY)
        self.sidecar.drop_metacopy(content)

    def _discard_staged(self, staged: str) -> None:
        try:
            self.fs.remove(staged)
        except errors.FSError:
            pass  # the next open empties the staging area anyway

    def _hard_linked(self, path: str) -> bool:
        """Whether the upper's regular file ``path`` has other names (on disk only)."""
        index = self.layer.dir(dirname(path))
        if index is None or index.entries.get(basename(path)) is not False or basename(path) in index.links:
            return False
        sys_path = syspath(self.fs, path)
        if sys_path is None:
            return False
        try:
            return os.lstat(sys_path).st_nlink > 1
        except OSError:
            return False

    def same_file(self, one: str, other: str) -> bool:
        """Whether the upper's names ``one`` and ``other`` are one file, hard links of it
        (rename(2) from one to the other then does nothing). On disk only; False where
        either name is not in the upper."""
        first, second = syspath(self.fs, one), syspath(self.fs, other)
        if first is None or second is None:
            return False
        try:
            return os.path.samestat(os.lstat(first), os.lstat(second))
        except OSError:
            return False

    def _rename_file(self, src: str, dst: str) -> None:
        """rename(2) within the upper (a symbolic link moves as itself, never followed)."""
        try:
            src_sys, dst_sys = self.fs.getsyspath(src), self.fs.getsyspath(dst)
        except errors.NoSysPath:
            self.fs.move(src, dst, overwrite=True)
            return
        with convert_os_errors("move", dst):
            os.rename(src_sys, dst_sys)

    # -- symbolic and hard links ------------------------------------------------------------------

    def is_link_record(self, path: str) -> bool:
        """Whether ``path`` is a link the sidecar keeps as a record."""
        index = self.layer.dir(dirname(path))
        return index is not None and basename(path) in index.link_records

    def install_link(
        self, path: str, target: str, metadata: Optional[Mapping[str, Mapping[str, Any]]] = None,
        xattrs_from: Optional[Tuple[Layer, str]] = None,
    ) -> None:
        """Atomically make ``path`` a symbolic link to ``target`` (over a file or link of the
        upper, or nothing). On disk a real symlink, made in the staging area and renamed into
        place; on an upper without system paths a link record of the sidecar, written before
        the file it replaces (if any) goes, since an entry wins over a record. A
        metadata-only file it replaces loses its records after."""
        token = self._metacopy_content(path)
        staged = self.sidecar.staging_path()
        sys_staged = syspath(self.fs, staged)
        if sys_staged is not None:
            with convert_os_errors("symlink", path):
                os.symlink(target, sys_staged)
                if metadata:
                    apply_link_metadata(sys_staged, metadata)
                if xattrs_from is not None:
                    xattr.copy_all(xattrs_from[0], xattrs_from[1], sys_staged)
                os.rename(sys_staged, self.fs.getsyspath(path))
            self.sync.dir(dirname(path))
            self._entry_changed(path, False, link="fs")
        else:
            self.sidecar.write_link(path, target)
            if metadata and metadata.get("details"):
                try:
                    self.fs.setinfo(self.sidecar.link_record(path), {"details": dict(metadata["details"])})
                except errors.FSError:
                    pass  # the record's times are best effort, like cp -p of a link's
            index = self.layer.dir(dirname(path))
            if index is not None and basename(path) in index.entries and basename(path) not in index.link_records:
                self.fs.remove(path)  # a file of the upper the link replaces
                self.sync.dir(dirname(path))
            self._entry_changed(path, False, link="record")
        if token is not None:
            self._forget_metacopy(path, token)

    def hard_link(self, existing: str, new: str) -> None:
        """A second name ``new`` for the upper's non-directory ``existing`` (``link(2)``: a
        symbolic link is linked as itself). Only an upper on disk can hold one."""
        index = self.layer.dir(dirname(existing))
        is_link = index is not None and basename(existing) in index.links
        with convert_os_errors("link", new):
            os.link(self.fs.getsyspath(existing), self.fs.getsyspath(new), follow_symlinks=False)
        self.sync.dir(dirname(new))
        self._entry_changed(new, False, link="fs" if is_link else None)

    # -- extended attributes and special files ----------------------------------------------------

    def _disk_path(self, path: str, display: str, what: str) -> str:
        sys_path = syspath(self.fs, path)
        if sys_path is None:
            raise errors.Unsupported(display, msg=literal("the upper %r cannot hold %s (it has no system path): '%s'" % (self.fs, what, display)))
        return sys_path

    def set_xattr(self, path: str, name: str, value: bytes, flags: int, display: str) -> None:
        """setxattr(2) of the upper's entry ``path`` (copied up by the caller)."""
        xattr.set_on_disk(self._disk_path(path, display, "extended attributes"), name, value, flags, display)
        self.sync.path(path)

    def remove_xattr(self, path: str, name: str, display: str) -> None:
        xattr.remove_on_disk(self._disk_path(path, display, "extended attributes"), name, display)
        self.sync.path(path)

    def copy_xattrs(self, layer: Layer, path: str, staged: str) -> None:
        """Give the staged copy-up ``staged`` the attributes ``path`` has in ``layer`` (an
        upper without system paths holds none: they are lost, as its modes are)."""
        sys_staged = syspath(self.fs, staged)
        if sys_staged is not None:
            xattr.copy_all(layer, path, sys_staged)

    def install_node(
        self, path: str, mode: int, device: int, metadata: Optional[Mapping[str, Mapping[str, Any]]] = None,
        xattrs_from: Optional[Tuple[Layer, str]] = None,
    ) -> None:
        """Atomically make ``path`` a FIFO, socket or device node (mknod(2), never opened:
        opening a FIFO blocks), made in the staging area and renamed into place. Only an
        upper on disk can hold one."""
        staged = self.sidecar.staging_path()
        sys_staged = self._disk_path(staged, path, "special files")
        had_record = self.is_link_record(path)
        with convert_os_errors("mknod", path):
            os.mknod(sys_staged, mode, device)
        try:
            if metadata:
                apply_metadata(self.fs, staged, metadata)
            if xattrs_from is not None:
                xattr.copy_all(xattrs_from[0], xattrs_from[1], sys_staged)
            self.sync.dir(dirname(staged))
            self._rename_file(staged, path)
        except BaseException:
            self._discard_staged(staged)
            raise
        self.sync.dir(dirname(path))
        self._entry_changed(path, False)
        if had_record:
            self.sidecar.remove_record(path, LINK)

    def setinfo(self, path: str, info: Mapping[str, Mapping[str, Any]], display: str) -> None:
        """Set metadata of an entry the upper has (copied up by the caller). An upper that
        cannot set it (MemoryFS answers ResourceNotFound for its own root) is Unsupported.
        A symbolic link (reached only when the caller did not follow it) gets its owner and
        times set on the link itself."""
        if self.layer.is_link(path):
            self._set_link_info(path, info, display)
            return
        try:
            access = info.get("access")
            if access and set_access_on_disk(self.fs, path, access, display):
                info = {namespace: values for namespace, values in info.items() if namespace != "access"}
            if info:
                self.fs.setinfo(path, info)
        except errors.ResourceNotFound:
            raise errors.Unsupported(display, msg=literal("the upper %r cannot set the metadata of %r" % (self.fs, display))) from None
        self.sync.path(path)

    def set_stat(self, path: str, mode: Optional[int], uid: int, gid: int,
                 times_ns: Optional[Tuple[Optional[int], Optional[int]]], display: str) -> None:
        """chmod, chown and utimensat of an entry the upper has (copied up by the caller), in
        one step: ``mode`` the permission bits (``None``: kept), ``uid``/``gid`` -1 to keep,
        ``times_ns`` (atime, mtime) in nanoseconds, ``None`` for one kept. On disk straight
        with the OS's calls (exact nanoseconds); elsewhere, and for a symbolic link, as
        :meth:`setinfo` does it."""
        where = self.layer.metadata_path(path)
        if where is None or self.layer.is_link(path):
            access: Dict[str, Any] = {}
            if mode is not None:
                access["permissions"] = Permissions(mode=mode).dump()
            if uid != -1:
                access["uid"] = uid
            if gid != -1:
                access["gid"] = gid
            info: Dict[str, Dict[str, Any]] = {"access": access or {"uid": None}}
            if times_ns is not None:
                details: Dict[str, Any] = {}
                for key, value in zip(("accessed", "modified"), times_ns):
                    if value is not None:
                        details[key] = value / 1e9
                if len(details) == 1:  # setinfo needs both: keep the other one's value
                    current = self.fs.getinfo(path, ("details",)).raw.get("details", {})
                    for key in ("accessed", "modified"):
                        if key not in details and current.get(key) is not None:
                            details[key] = current[key]
                info["details"] = details
            self.setinfo(path, info, display)
            return
        with convert_os_errors("setinfo", display):
            if uid != -1 or gid != -1:
                os.chown(where, uid, gid)
            if mode is not None:  # after chown, which clears set-user-ID: the mode asked is kept
                os.chmod(where, mode)  # not a link (checked above): nothing to follow
            if times_ns is not None:
                atime, mtime = times_ns
                if atime is None or mtime is None:
                    kept = os.lstat(where)
                    atime = kept.st_atime_ns if atime is None else atime
                    mtime = kept.st_mtime_ns if mtime is None else mtime
                os.utime(where, ns=(atime, mtime))
        self.sync.path(path)

    def _set_link_info(self, path: str, info: Mapping[str, Mapping[str, Any]], display: str) -> None:
        """Owner and times of the upper's symbolic link ``path``: on disk with lchown and
        lutimes, for a link record on the record file (what its info is made of)."""
        access, details = dict(info.get("access") or {}), dict(info.get("details") or {})
        if self.is_link_record(path):
            record = self.sidecar.link_record(path)
            kept = {key: value for key, value in (("details", details), ("access", access)) if value}
            if kept:
                self.fs.setinfo(record, kept)
            self.sync.path(record)
            return
        sys_path = self.fs.getsyspath(path)
        with convert_os_errors("setinfo", display):
            uid, gid = access.get("uid"), access.get("gid")
            if uid is not None or gid is not None:
                os.chown(sys_path, -1 if uid is None else uid, -1 if gid is None else gid, follow_symlinks=False)
            if details.get("accessed") is not None or details.get("modified") is not None:
                current = os.lstat(sys_path)
                accessed = details.get("accessed")
                modified = details.get("modified")
                os.utime(
                    sys_path,
                    ns=(
                        current.st_atime_ns if accessed is None else int(accessed * 1e9),
                        current.st_mtime_ns if modified is None else int(modified * 1e9),
                    ),
                    follow_symlinks=False,
                )
        self.sync.dir(dirname(path))

    def remove_file(self, path: str) -> None:
        token = self._metacopy_content(path)
        if self.is_link_record(path):
            self.sidecar.remove_record(path, LINK)
        else:
            self.fs.remove(path)
            self.sync.dir(dirname(path))
        self._entry_changed(path, None)
        if token is not None:
            self._forget_metacopy(path, token)

    def remove_dir(self, path: str) -> None:
        """Take a directory tree out of the upper in one rename, then delete it at leisure: if
        deleting fails the removal has still happened, and the next open empties the trash."""
        trash = self.sidecar.staging_path()
        rename_dir(self.fs, path, trash)
        self.sync.dir(dirname(path))
        self._entry_changed(path, None, subtree=True)
        try:
            remove_entry(self.fs, trash)  # a link moved here is removed itself, never its target
        except errors.FSError:
            pass

    def move_file(self, src: str, dst: str) -> None:
        """rename(2) of a non-directory of the upper over whatever non-directory ``dst`` holds.
        A metadata-only file stays one: its token moves with it and the hint is at ``dst``
        before (inert for any other file there)."""
        if self.is_link_record(src):
            target = self.sidecar.read_link(src)
            self.lookup.forget(src)  # the view may show both names for a moment, never neither
            self.install_link(dst, target)
            self.sidecar.remove_record(src, LINK)
            self._entry_changed(src, None)
            return
        index = self.layer.dir(dirname(src))
        link = "fs" if index is not None and basename(src) in index.links else None
        origin = index.metacopy.get(basename(src)) if index is not None else None
        replaced = self._metacopy_content(dst)
        dst_record = self.is_link_record(dst)
        if origin is not None:
            self.sidecar.add_record(dst, METACOPY)
        self._rename_file(src, dst)
        self.sync.dirs(dirname(dst), dirname(src))
        self.readers.moved(src, dst)
        if dst_record:  # the moved entry wins over the record already; now the record goes
            self.sidecar.remove_record(dst, LINK)
        self._entry_changed(src, None)
        self._entry_changed(dst, False, link=link, metacopy=origin)
        if origin is not None:
            self.sidecar.remove_record(src, METACOPY)
        if replaced is not None:
            self.sidecar.drop_metacopy(replaced)
            if origin is None:
                self.sidecar.remove_record(dst, METACOPY)

    def move_dir(self, src: str, dst: str) -> None:
        """Rename a directory of the upper; ``dst`` must not exist in the upper (the caller
        copied the records inside ``src`` to ``dst`` first: link records are part of them)."""
        rename_dir(self.fs, src, dst)
        self.sync.dirs(dirname(dst), dirname(src))
        self.readers.moved(src, dst)
        self._entry_changed(src, None, subtree=True)
        self._entry_changed(dst, True, subtree=True)

    def copy_records_below(self, src: str, dst: str) -> None:
        """Give the directory-to-be ``dst`` a copy of the records inside ``src`` (inert until
        the upper has ``dst``): a rename of ``src`` to ``dst`` then carries them at once."""
        self.sidecar.copy_records_below(src, dst)
        self._records_changed(dst, below="copied in")

    # -- redirects --------------------------------------------------------------------------------

    def redirect_of(self, path: str) -> Optional[str]:
        index = self.layer.dir(dirname(path))
        return index.redirects.get(basename(path)) if index is not None else None

    def set_redirect(self, path: str, target: str) -> None:
        """The directory ``path`` (or the one about to be renamed there) holds the lower
        contents at the absolute ``target``."""
        if self.redirect_of(path) == target:
            return
        self.sidecar.set_redirect(path, target)
        self._records_changed(path, REDIRECT, target=target)

    def remove_redirect(self, path: str, known: bool = True) -> None:
        """Drop the redirect record of ``path``; ``known=False`` also when the cache knows none."""
        if known and self.redirect_of(path) is None:
            return
        self.sidecar.remove_record(path, REDIRECT)
        self._records_changed(path, REDIRECT, target=None)

    # -- directory times (the kernel's: a directory whose entries change gets the time of the
    # change; a copy-up into it keeps the times it had) --------------------------------------

    def _syspath(self, path: str) -> Optional[str]:
        try:
            return self.fs.getsyspath(path)
        except errors.NoSysPath:
            return None

    def times(self, path: str) -> Optional[Tuple[float, float]]:
        """``(accessed, modified)`` of the upper's entry at ``path``; None where it has none."""
        sys_path = self._syspath(path)
        try:
            if sys_path is not None:
                status = os.stat(sys_path)
                return status.st_atime, status.st_mtime
            raw: Dict[str, Any] = dict(self.fs.getinfo(path, ["details"]).raw.get("details") or {})
        except (OSError, errors.FSError):
            return None
        if raw.get("modified") is None:
            return None
        return float(raw.get("accessed") or raw["modified"]), float(raw["modified"])

    def set_times(self, path: str, times: Optional[Tuple[float, float]]) -> None:
        """Give ``path`` the ``(accessed, modified)`` times (now, if None), where the upper can:
        a ``MemoryFS`` cannot set its own root's, and that is all it loses."""
        sys_path = self._syspath(path)
        try:
            if sys_path is not None:
                os.utime(sys_path, times)
                return
            accessed, modified = times if times is not None else (self.now(),) * 2
            self.fs.setinfo(path, {"details": {"accessed": accessed, "modified": modified}})
        except (OSError, errors.FSError):
            pass  # best effort, as cp -p: times are never worth failing a change for

    @staticmethod
    def now() -> float:
        """The time a change is stamped with (one clock for every stamp the overlay makes)."""
        return time.time()

    def touch(self, path: str) -> None:
        """The directory ``path`` had an entry made, removed or renamed: its mtime is now."""
        self.set_times(path, None)

    @contextlib.contextmanager
    def keeping_times(self, path: str) -> Iterator[None]:
        """Put back the times of directory ``path`` after the block: a copy-up into it (a rename
        on disk) changes nothing the kernel shows."""
        before = self.times(path)
        yield
        if before is not None:
            self.restore_times(path, before)

    def restore_times(self, path: str, times: Tuple[float, float]) -> None:
        """Give ``path`` the ``(accessed, modified)`` times it had, where the upper has it and
        they changed since."""
        if self.times(path) not in (None, times):
            self.set_times(path, times)

    # -- records ------------------------------------------------------------------------------

    def _has(self, path: str, kind: str) -> bool:
        index = self.layer.cached_dir(dirname(path))
        if isinstance(index, DirIndex):
            return basename(path) in index.records(kind)
        if index is None:  # the upper has no such directory, so no record in it
            return False
        return self.sidecar.has_record(path, kind)  # one record asked, not the directory read

    def _set(self, path: str, kind: str, present: bool) -> None:
        """Add or remove one record; a record already in the wanted state costs nothing."""
        if self._has(path, kind) == present:
            return
        if present:
            self.sidecar.add_record(path, kind)
        else:
            self.sidecar.remove_record(path, kind)
        self._records_changed(path, kind, present)

    def has_whiteout(self, path: str) -> bool:
        return self._has(path, WHITEOUT)

    def add_whiteout(self, path: str) -> None:
        self._set(path, WHITEOUT, True)

    def remove_whiteout(self, path: str) -> None:
        self._set(path, WHITEOUT, False)

    def has_opaque(self, path: str) -> bool:
        return self._has(path, OPAQUE)

    def add_opaque(self, path: str) -> None:
        self._set(path, OPAQUE, True)

    def remove_opaque(self, path: str) -> None:
        self._set(path, OPAQUE, False)

    def forget_all(self) -> None:
        """Drop every cached answer about the upper, the sidecar's version included: after a
        failed write whose effect is unknown, or a change made by another overlay."""
        self._records_changed("/", below="unknown")

    def drop_hidden_records(self, path: str) -> None:
        """After ``path`` became opaque: forget the records nothing below can show through any
        more. In a plain upper that is every whiteout and opaque record inside it (link records
        are entries: they stay); where redirects may exist only its own whiteouts, since a
        renamed or metadata-only entry deeper down still reaches the lowers by its absolute
        path (as the kernel's do past a hand-set opaque xattr)."""
        if REDIRECT not in VERSIONS[self.sidecar.version].kinds:
            self.drop_markers_below(path)
            return
        self.sidecar.drop_kind(path, WHITEOUT)
        self._records_changed(path, below="own whiteouts")

    def drop_records_below(self, path: str) -> None:
        """Forget every record inside the directory ``path`` (it left the upper)."""
        self.sidecar.drop_records_below(path)
        self._records_changed(path)

    def drop_markers_below(self, path: str) -> None:
        """Forget every whiteout and opaque record inside the directory ``path``; its link
        records stay (they are entries of the tree)."""
        self.sidecar.drop_markers_below(path)
        self._records_changed(path, below="markers")

    # -- the sidecar's housekeeping ---------------------------------------------------------------

    def empty(self) -> None:
        """Remove every entry of the upper and every sidecar record, keeping an empty sidecar
        (``discard``); every cached answer about the upper goes with them."""
        for name, is_dir in self._entries("/").items():
            if name != RESERVED_NAME:
                self.delete("/" + name, is_dir)
        # durable before the journal entry goes: else a power cut brings the entries back
        # with nothing left to say the discard was under way
        self.sync.dir("/")
        for folder in (TREE_DIR, STAGING_DIR):
            # emptied, not removed and made again: a crash in between must not lose the folder
            self.fs.makedir(folder, recreate=True)
            for name, is_dir in self._entries(folder).items():
                self.delete(join(folder, name), is_dir)
            self.sync.dir(folder)
        if self.fs.isdir(METACOPY_DIR):  # the metadata-only files are gone: so is what they named
            for info in list(self.fs.scandir(METACOPY_DIR)):
                self.delete(join(METACOPY_DIR, info.name), info.is_dir)
            self.sync.dir(METACOPY_DIR)
        self.forget_all()

    def _entries(self, folder: str) -> Dict[str, bool]:
        """Name -> is_dir of the upper FS's directory ``folder`` (a link is no directory)."""
        listed = list_dir(self.fs, disk_root(self.fs), folder)
        return {} if listed is None else listed[0]

    def delete(self, path: str, is_dir: bool) -> None:
        """Delete ``path`` of the upper FS outright (sidecar leftovers, or what ``empty`` and
        fsck clear, which then forget every cached answer); a file or a whole tree."""
        remove_entry(self.fs, path)  # never through a link: a link goes itself, not its target

    def begin(self, intent: journal.Intent) -> str:
        """Record ``intent`` in the journal before its first step; returns the entry."""
        return journal.begin(self.sidecar, intent)

    def finish(self, entry: Optional[str] = None) -> None:
        """Forget a completed journal entry (and, with none left, the journal's version)."""
        if entry is not None:
            # deferred syncs (a mount's) first: the steps must be durable before their entry
            # goes, or a power cut could keep the removal and lose steps it would replay
            self.sync.flush()
        journal.finish(self.sidecar, entry)

    def drop_torn_journal(self) -> List[str]:
        """Remove the journal entries a power cut left torn (:func:`journal.torn`); returns them."""
        return journal.drop_torn(self.sidecar)
