"""The writable upper layer: every change to it goes through :class:`Upper`.

Each method makes one change to the upper filesystem or its sidecar and then tells
the layer cache and the lookup cache exactly what changed, so cached answers are
never stale after a write through the overlay.
"""

from __future__ import annotations

from typing import Any, BinaryIO, Mapping, Optional

from .. import _fsimport  # noqa: F401
from fs import errors
from fs.base import FS
from fs.path import basename, dirname
from fs.permissions import Permissions

from .inode import apply_metadata, set_access_on_disk
from .file import FollowingReaders
from .stack import FILE, DirIndex, Layer
from .lookup import Lookup
from .sidecar import METACOPY, OPAQUE, REDIRECT, VERSIONS, WHITEOUT, Sidecar, rename_dir


class Upper:
    """The upper layer with its sidecar; keeps :class:`Layer` and :class:`Lookup` caches true."""

    def __init__(self, layer: Layer, lookup: Lookup, redirect_dir: bool = True, metacopy: bool = True) -> None:
        assert layer.is_upper and layer.sidecar is not None
        #: rename a lower or merged directory by a redirect record (else by copying)
        self.redirect_dir = redirect_dir
        #: copy up a lower file's metadata only where its data is not about to change
        self.metacopy = metacopy
        self.layer = layer
        self.fs: FS = layer.fs
        self.sidecar: Sidecar = layer.sidecar
        self.lookup = lookup
        #: read handles opened on lower files, which move to the upper copy at copy-up
        self.readers = FollowingReaders()

    # -- entries ------------------------------------------------------------------------------

    def _clear_stale(self, path: str) -> None:
        """Before a directory is made at ``path``, where the upper has none: forget any record of
        a former directory there (a crash between a rename or removal and its clean-up can leave
        some), so a redirect of the past never applies to the new one. Plain uppers (no redirect
        records ever written) cannot have such records, and pay nothing."""
        if REDIRECT not in VERSIONS[self.sidecar.version].kinds:
            return
        self.remove_redirect(path, known=False)
        self.sidecar.drop_records_below(path)

    def makedir(self, path: str, permissions: Optional[Permissions] = None) -> None:
        self._clear_stale(path)
        self.fs.makedir(path, permissions=permissions)
        self.layer.note_entry(path, True, new_dir=True)
        self.lookup.forget(path)

    def install_dir(self, path: str, metadata: Mapping[str, Mapping[str, Any]]) -> None:
        """Make the directory ``path`` with ``metadata`` atomically: made and given its metadata
        in the staging area, then renamed into place (a copy-up never shows half-made)."""
        self._clear_stale(path)
        staged = self.sidecar.staging_path()
        self.fs.makedir(staged)
        apply_metadata(self.fs, staged, metadata)
        rename_dir(self.fs, staged, path)
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

    def install(self, staged: str, path: str) -> None:
        """Atomically put a staged file at ``path`` (a rename within the upper); a metadata-only
        file there becomes an ordinary one by it, then its records go."""
        token = self._metacopy_content(path)
        self.fs.move(staged, path, overwrite=True)
        self.layer.note_entry(path, False)
        self.lookup.forget(path)
        self.readers.copied_up(self.fs, path)
        if token is not None:
            self._forget_metacopy(path, token)

    def install_metacopy(self, path: str, origin: str, metadata: Mapping[str, Mapping[str, Any]]) -> None:
        """Make ``path`` a metadata-only copy of the lower file whose data is at ``origin``: the
        table entry and the hint first (both inert without the file), then the file holding
        the token, with ``metadata``, by one rename. Readers of the lower file stay on it."""
        content = self.sidecar.new_metacopy(origin)
        self.sidecar.add_record(path, METACOPY)
        staged = self.sidecar.staging_path()
        self.fs.writebytes(staged, content)
        apply_metadata(self.fs, staged, metadata)
        self.fs.move(staged, path, overwrite=True)
        self.layer.note_entry(path, False)
        self.layer.note_metacopy(path, origin)
        self.lookup.forget(path)

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
        token = self._metacopy_content(path)
        self.fs.remove(path)
        self.layer.note_entry(path, None)
        self.lookup.forget(path)
        if token is not None:
            self._forget_metacopy(path, token)

    def remove_dir(self, path: str) -> None:
        """Take a directory tree out of the upper in one rename, then delete it at leisure: if
        deleting fails the removal has still happened, and the next open empties the trash."""
        trash = self.sidecar.staging_path()
        rename_dir(self.fs, path, trash)
        self.layer.note_entry(path, None)
        self.lookup.forget(path, subtree=True)
        try:
            self.fs.removetree(trash)
        except errors.FSError:
            pass

    def move_file(self, src: str, dst: str) -> None:
        """rename(2) within the upper. A metadata-only file stays one: its token moves with it
        and the hint is at ``dst`` before (inert for any other file there)."""
        parent = self.layer.dir(dirname(src))
        origin = parent.metacopy.get(basename(src)) if parent is not None else None
        replaced = self._metacopy_content(dst)
        if origin is not None:
            self.sidecar.add_record(dst, METACOPY)
        self.fs.move(src, dst, overwrite=True)
        self.readers.moved(src, dst)
        self.layer.note_entry(src, None)
        self.layer.note_entry(dst, False)
        if origin is not None:
            self.layer.note_metacopy(dst, origin)
        self.lookup.forget(src)
        self.lookup.forget(dst)
        if origin is not None:
            self.sidecar.remove_record(src, METACOPY)
        if replaced is not None:
            self.sidecar.drop_metacopy(replaced)
            if origin is None:
                self.sidecar.remove_record(dst, METACOPY)

    def move_dir(self, src: str, dst: str) -> None:
        """Rename a directory of the upper; ``dst`` must not exist in the upper."""
        rename_dir(self.fs, src, dst)
        self.readers.moved(src, dst)
        self.layer.note_entry(src, None)
        self.layer.note_entry(dst, True)
        self.lookup.forget(src, subtree=True)
        self.lookup.forget(dst, subtree=True)

    def copy_records_below(self, src: str, dst: str) -> None:
        """Give the directory-to-be ``dst`` a copy of the records inside ``src`` (inert until
        the upper has ``dst``): a rename of ``src`` to ``dst`` then carries them at once."""
        self.sidecar.copy_records_below(src, dst)
        self.layer.forget_below(dst)

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
        self.layer.note_redirect(path, target)
        self.lookup.forget(path, subtree=True)

    def remove_redirect(self, path: str, known: bool = True) -> None:
        """Drop the redirect record of ``path``; ``known=False`` also when the cache knows none."""
        if known and self.redirect_of(path) is None:
            return
        self.sidecar.remove_record(path, REDIRECT)
        self.layer.note_redirect(path, None)
        self.lookup.forget(path, subtree=True)

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

    def drop_hidden_records(self, path: str) -> None:
        """After ``path`` became opaque: forget the records nothing below can show through any
        more. In a plain upper that is every record inside it; where redirects may exist only
        its own whiteouts, since a renamed or metadata-only entry deeper down still reaches the
        lowers by its absolute path (as the kernel's do past a hand-set opaque xattr)."""
        if REDIRECT not in VERSIONS[self.sidecar.version].kinds:
            self.drop_records_below(path)
            return
        self.sidecar.drop_kind(path, WHITEOUT)
        index = self.layer.dir(path)
        if index is not None:
            index.whiteouts.clear()
        self.lookup.forget(path, subtree=True)

    def drop_records_below(self, path: str) -> None:
        """Forget every whiteout and opaque record inside the directory ``path``."""
        self.sidecar.drop_records_below(path)
        self.layer.forget_records_below(path)
        self.lookup.forget(path, subtree=True)
