"""The writable upper layer: every change to it goes through :class:`Upper`.

Each method makes one change to the upper filesystem or its sidecar and then tells
the layer cache and the lookup cache exactly what changed, so cached answers are
never stale after a write through the overlay.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, BinaryIO, Dict, Iterator, Mapping, Optional, Tuple

from .. import _fsimport  # noqa: F401
from fs import errors
from fs.base import FS
from fs.path import basename, dirname
from fs.permissions import Permissions

from .inode import apply_metadata, set_access_on_disk
from .file import FollowingReaders
from .stack import FILE, DirIndex, Layer
from .lookup import Lookup
from .sidecar import OPAQUE, WHITEOUT, Sidecar


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
        self.lookup.copied_up_dir(path, self.layer)

    def openbin(self, path: str, mode: str, buffering: int = -1, **options: Any) -> BinaryIO:
        """Open a file of the upper; a file it creates joins the view at once."""
        created = self.layer.lookup(dirname(path), basename(path)) < FILE
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

    def install(self, staged: str, path: str, copy_up: bool = False) -> None:
        """Atomically put a staged file at ``path`` (a rename within the upper). ``copy_up``: it
        is the upper copy of the lower file at ``path``, so that file's read handles move to it."""
        self.fs.move(staged, path, overwrite=True)
        self.layer.note_entry(path, False)
        self.lookup.forget(path)
        if copy_up:
            self.readers.copied_up(self.fs, path)

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
        self.fs.move(src, dst, overwrite=True)
        self.layer.note_entry(src, None)
        self.layer.note_entry(dst, False)
        self.lookup.forget(src)
        self.lookup.forget(dst)

    def move_dir(self, src: str, dst: str) -> None:
        """Rename a directory of the upper; ``dst`` must not exist in the upper."""
        self._rename_dir(src, dst)
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
        if before is not None and self.times(path) != before:
            self.set_times(path, before)

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
        """Forget every whiteout and opaque record inside the directory ``path``."""
        self.sidecar.drop_records_below(path)
        self.layer.forget_records_below(path)
        self.lookup.forget(path, subtree=True)
