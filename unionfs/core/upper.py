"""The writable upper layer: every change to it goes through :class:`Upper`.

Each method makes one change to the upper filesystem or its sidecar and then tells
the layer cache and the lookup cache exactly what changed, so cached answers are
never stale after a write through the overlay.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO, Mapping, Optional

from .. import _fsimport  # noqa: F401
from fs import errors
from fs.base import FS
from fs.path import basename, dirname
from fs.permissions import Permissions

from .inode import apply_link_metadata, apply_metadata, set_access_on_disk
from .file import FollowingReaders
from .stack import Layer, sys_path_of
from .lookup import Lookup
from .sidecar import LINK, OPAQUE, WHITEOUT, Sidecar


class Upper:
    """The upper layer with its sidecar; keeps :class:`Layer` and :class:`Lookup` caches true."""

    def __init__(self, layer: Layer, lookup: Lookup) -> None:
        assert layer.is_upper and layer.sidecar is not None
        self.layer = layer
        self.fs: FS = layer.fs
        self.sidecar: Sidecar = layer.sidecar
        self.lookup = lookup
        #: read handles opened on lower files, which move to the upper copy at copy-up
        self.readers = FollowingReaders()

    # -- entries ------------------------------------------------------------------------------

    def makedir(self, path: str, permissions: Optional[Permissions] = None) -> None:
        self.fs.makedir(path, permissions=permissions)
        self.layer.note_entry(path, True, new_dir=True)
        self.lookup.forget(path)

    def install_dir(self, path: str, metadata: Mapping[str, Mapping[str, Any]]) -> None:
        """Make the directory ``path`` with ``metadata`` atomically: made and given its metadata
        in the staging area, then renamed into place (a copy-up never shows half-made)."""
        staged = self.sidecar.staging_path()
        self.fs.makedir(staged)
        apply_metadata(self.fs, staged, metadata)
        self._rename_dir(staged, path)
        self.layer.note_entry(path, True, new_dir=True)
        self.lookup.forget(path)

    def openbin(self, path: str, mode: str, buffering: int = -1, **options: Any) -> BinaryIO:
        """Open a file of the upper; a file it creates joins the view at once."""
        index = self.layer.dir(dirname(path))
        created = index is None or basename(path) not in index.entries
        handle = self.fs.openbin(path, mode, buffering=buffering, **options)
        if created:
            self.layer.note_entry(path, False)
            self.lookup.forget(path)
        return handle

    def stage(self, source: Optional[BinaryIO], chunk_size: int = 1024 * 1024) -> str:
        """Write ``source`` (or nothing) to a fresh staging file, in chunks; return its path."""
        staged = self.sidecar.staging_path()
        with self.fs.openbin(staged, "w") as out:
            if source is not None:
                while True:
                    chunk = source.read(chunk_size)
                    if not chunk:
                        break
                    out.write(chunk)
        return staged

    def install(self, staged: str, path: str) -> None:
        """Atomically put a staged file at ``path`` (a rename within the upper). A file the upper
        holds under several names (a hard link) is rewritten in place instead, as an
        ``O_TRUNC`` open does on the kernel: every name then reads the new data."""
        if self._hard_linked(path):
            with self.fs.openbin(staged, "r") as source, self.fs.openbin(path, "r+") as out:
                out.truncate(0)
                while True:
                    chunk = source.read(1024 * 1024)
                    if not chunk:
                        break
                    out.write(chunk)
            self.fs.remove(staged)
        else:
            self._rename_file(staged, path)
        had_record = self.is_link_record(path)
        self.layer.note_entry(path, False)
        if had_record:  # the new entry wins over the record already; now the record goes
            self.sidecar.remove_record(path, LINK)
        self.lookup.forget(path)
        self.readers.copied_up(self.fs, path)

    def _hard_linked(self, path: str) -> bool:
        """Whether the upper's regular file ``path`` has other names (on disk only)."""
        index = self.layer.dir(dirname(path))
        if index is None or index.entries.get(basename(path)) is not False or basename(path) in index.links:
            return False
        sys_path = sys_path_of(self.fs, path)
        if sys_path is None:
            return False
        try:
            return os.lstat(sys_path).st_nlink > 1
        except OSError:
            return False

    def _rename_file(self, src: str, dst: str) -> None:
        """rename(2) within the upper (a symbolic link moves as itself, never followed)."""
        try:
            os.rename(self.fs.getsyspath(src), self.fs.getsyspath(dst))
            return
        except errors.NoSysPath:
            pass
        self.fs.move(src, dst, overwrite=True)

    # -- symbolic and hard links ------------------------------------------------------------------

    def is_link_record(self, path: str) -> bool:
        """Whether ``path`` is a link the sidecar keeps as a record."""
        index = self.layer.dir(dirname(path))
        return index is not None and basename(path) in index.link_records

    def install_link(self, path: str, target: str, metadata: Optional[Mapping[str, Mapping[str, Any]]] = None) -> None:
        """Atomically make ``path`` a symbolic link to ``target`` (over a file or link of the
        upper, or nothing). On disk a real symlink, made in the staging area and renamed into
        place; on an upper without system paths a link record of the sidecar, written before
        the file it replaces (if any) goes, since an entry wins over a record."""
        staged = self.sidecar.staging_path()
        sys_staged = sys_path_of(self.fs, staged)
        if sys_staged is not None:
            os.symlink(target, sys_staged)
            if metadata:
                apply_link_metadata(sys_staged, metadata)
            os.rename(sys_staged, self.fs.getsyspath(path))
            self.layer.note_entry(path, False, link="fs")
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
            self.layer.note_entry(path, False, link="record")
        self.lookup.forget(path)

    def hard_link(self, existing: str, new: str) -> None:
        """A second name ``new`` for the upper's non-directory ``existing`` (``link(2)``: a
        symbolic link is linked as itself). Only an upper on disk can hold one."""
        index = self.layer.dir(dirname(existing))
        is_link = index is not None and basename(existing) in index.links
        os.link(self.fs.getsyspath(existing), self.fs.getsyspath(new), follow_symlinks=False)
        self.layer.note_entry(new, False, link="fs" if is_link else None)
        self.lookup.forget(new)

    def setinfo(self, path: str, info: Mapping[str, Mapping[str, Any]], display: str) -> None:
        """Set metadata of an entry the upper has (copied up by the caller). An upper that
        cannot set it (MemoryFS answers ResourceNotFound for its own root) is Unsupported."""
        try:
            access = info.get("access")
            if access and set_access_on_disk(self.fs, path, access, display):
                info = {namespace: values for namespace, values in info.items() if namespace != "access"}
            if info:
                self.fs.setinfo(path, info)
        except errors.ResourceNotFound:
            raise errors.Unsupported(display, msg="the upper %r cannot set the metadata of %r" % (self.fs, display)) from None

    def remove_file(self, path: str) -> None:
        if self.is_link_record(path):
            self.sidecar.remove_record(path, LINK)
        else:
            self.fs.remove(path)
        self.layer.note_entry(path, None)
        self.lookup.forget(path)

    def remove_dir(self, path: str) -> None:
        """Take a directory tree out of the upper in one rename, then delete it at leisure: if
        deleting fails the removal has still happened, and the next open empties the trash."""
        trash = self.sidecar.staging_path()
        self._rename_dir(path, trash)
        self.layer.note_entry(path, None)
        self.lookup.forget(path, subtree=True)
        try:
            self.fs.removetree(trash)
        except errors.FSError:
            pass

    def move_file(self, src: str, dst: str) -> None:
        """rename(2) of a non-directory of the upper over whatever non-directory ``dst`` holds."""
        if self.is_link_record(src):
            target = self.sidecar.read_link(src)
            self.lookup.forget(src)  # the view may show both names for a moment, never neither
            self.install_link(dst, target)
            self.sidecar.remove_record(src, LINK)
            self.layer.note_entry(src, None)
            self.lookup.forget(src)
            return
        index = self.layer.dir(dirname(src))
        link = "fs" if index is not None and basename(src) in index.links else None
        dst_record = self.is_link_record(dst)
        self._rename_file(src, dst)
        if dst_record:  # the moved entry wins over the record already; now the record goes
            self.sidecar.remove_record(dst, LINK)
        self.layer.note_entry(src, None)
        self.layer.note_entry(dst, False, link=link)
        self.lookup.forget(src)
        self.lookup.forget(dst)

    def move_dir(self, src: str, dst: str) -> None:
        """Rename a directory of the upper; ``dst`` must not exist in the upper. The records of
        the entries inside move with it (the link records are part of the tree)."""
        self._rename_dir(src, dst)
        self.sidecar.move_records(src, dst)
        self.layer.note_entry(src, None)
        self.layer.note_entry(dst, True)
        self.lookup.forget(src, subtree=True)
        self.lookup.forget(dst, subtree=True)

    def _rename_dir(self, src: str, dst: str) -> None:
        try:
            os.rename(self.fs.getsyspath(src), self.fs.getsyspath(dst))
            return
        except (errors.NoSysPath, OSError):
            pass
        # MemoryFS (also behind WrapFS/SubFS) moves the entry itself; others copy then delete.
        self.fs.movedir(src, dst, create=True)

    # -- records ------------------------------------------------------------------------------

    def _has(self, path: str, kind: str) -> bool:
        index = self.layer.dir(dirname(path))
        return index is not None and basename(path) in index.records(kind)

    def _set(self, path: str, kind: str, present: bool) -> None:
        """Add or remove one record; a record already in the wanted state costs nothing."""
        if self._has(path, kind) == present:
            return
        if present:
            self.sidecar.add_record(path, kind)
        else:
            self.sidecar.remove_record(path, kind)
        self.layer.note_record(path, kind, present)
        self.lookup.forget(path, subtree=True)

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
        self.layer.reset()
        self.lookup.forget("/", subtree=True)
        self.sidecar.reread_version()

    def drop_records_below(self, path: str) -> None:
        """Forget every record inside the directory ``path`` (it left the upper)."""
        self.sidecar.drop_records_below(path)
        self.layer.forget_below(path)
        self.layer.forget_records_below(path)
        self.lookup.forget(path, subtree=True)

    def drop_markers_below(self, path: str) -> None:
        """Forget every whiteout and opaque record inside the directory ``path``; its link
        records stay (they are entries of the tree)."""
        self.sidecar.drop_markers_below(path)
        self.layer.forget_records_below(path)
        self.lookup.forget(path, subtree=True)
