"""The sidecar: whiteout and opaque records kept inside a layer's own filesystem.

The kernel keeps whiteouts as 0/0 character devices and opacity as an xattr. Neither
exists on a MemoryFS, a zip or a cloud bucket, so unionfs keeps them as empty files
under one reserved directory at the root of the layer, ``/.unionfs``. Format version 1::

    /.unionfs/FORMAT            "unionfs-sidecar 1\\n"
    /.unionfs/tree/             M(/), the record directory of the root
    M(D)/w/<name>               empty file: D/<name> is whited out in this layer
    M(D)/o/<name>               empty file: the directory D/<name> of this layer is opaque
    M(D)/d/<name>/              M(D/<name>), the record directory of the child directory
    /.unionfs/tmp/              staging for copy-up and trash; never part of the view

Records, containers and child names live in separate sub-directories, so any user
name maps to a record without escaping. Every record is one file: creating or
removing one costs the same however many exist, and each write is atomic on any
filesystem that creates files atomically. Records of a layer apply only where that
layer has the parent directory, exactly as a kernel whiteout lives in its directory.
"""

from __future__ import annotations

import uuid
from typing import FrozenSet, Optional

from . import _compat  # noqa: F401
from fs import errors
from fs.base import FS
from fs.path import basename, dirname, iteratepath

from .errors import SidecarError

RESERVED_NAME = ".unionfs"
SIDECAR_DIR = "/" + RESERVED_NAME
FORMAT_PATH = SIDECAR_DIR + "/FORMAT"
FORMAT_VERSION = 1
FORMAT_TEXT = "unionfs-sidecar %d\n" % FORMAT_VERSION
TREE_DIR = SIDECAR_DIR + "/tree"
STAGING_DIR = SIDECAR_DIR + "/tmp"

WHITEOUT = "w"  # record kinds, also the names of their sub-directories
OPAQUE = "o"
CHILDREN = "d"


def record_dir(dir_path: str) -> str:
    """M(dir_path): where the records of the entries of ``dir_path`` live."""
    return TREE_DIR + "".join("/%s/%s" % (CHILDREN, part) for part in iteratepath(dir_path))


def is_reserved(path: str) -> bool:
    """Whether an absolute, normalised path names the sidecar or something inside it."""
    return path == SIDECAR_DIR or path.startswith(SIDECAR_DIR + "/")


class Sidecar:
    """Reads, and for the upper writes, the records of one layer."""

    def __init__(self, layer_fs: FS) -> None:
        self.fs = layer_fs

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, layer_fs: FS, create: bool) -> Optional["Sidecar"]:
        """The layer's sidecar; ``None`` for a plain layer, created first if ``create``."""
        if layer_fs.exists(SIDECAR_DIR):
            if not layer_fs.isdir(SIDECAR_DIR):
                raise SidecarError(SIDECAR_DIR, "it is a file, not a directory")
            cls._check_format(layer_fs)
            if not layer_fs.isdir(TREE_DIR):
                raise SidecarError(TREE_DIR, "the record tree is missing")
            return cls(layer_fs)
        if not create:
            return None
        layer_fs.makedir(SIDECAR_DIR)
        layer_fs.makedir(TREE_DIR)
        layer_fs.makedir(STAGING_DIR)
        # FORMAT last: a sidecar without it was never completed and is re-created.
        layer_fs.writetext(FORMAT_PATH, FORMAT_TEXT)
        return cls(layer_fs)

    @staticmethod
    def _check_format(layer_fs: FS) -> None:
        try:
            text = layer_fs.readtext(FORMAT_PATH)
        except errors.ResourceNotFound:
            raise SidecarError(FORMAT_PATH, "the FORMAT file is missing") from None
        except errors.FileExpected:
            raise SidecarError(FORMAT_PATH, "FORMAT is a directory") from None
        words = text.split()
        if len(words) != 2 or words[0] != "unionfs-sidecar" or not words[1].isdigit():
            raise SidecarError(FORMAT_PATH, "unrecognised FORMAT line %r" % text[:80])
        if int(words[1]) > FORMAT_VERSION:
            raise SidecarError(
                FORMAT_PATH,
                "format version %s is newer than this unionfs (%d)" % (words[1], FORMAT_VERSION),
            )

    # -- reading -----------------------------------------------------------------------------

    def _names(self, dir_path: str, kind: str) -> FrozenSet[str]:
        where = record_dir(dir_path) + "/" + kind
        try:
            infos = list(self.fs.scandir(where))
        except errors.ResourceNotFound:
            return frozenset()
        except errors.DirectoryExpected:
            raise SidecarError(where, "a record directory is a file") from None
        for info in infos:
            if info.is_dir:
                raise SidecarError(where + "/" + info.name, "a record is a directory")
        return frozenset(info.name for info in infos)

    def whiteouts(self, dir_path: str) -> FrozenSet[str]:
        """Names whited out in ``dir_path`` of this layer."""
        return self._names(dir_path, WHITEOUT)

    def opaque_names(self, dir_path: str) -> FrozenSet[str]:
        """Names of the children of ``dir_path`` that are opaque directories in this layer."""
        return self._names(dir_path, OPAQUE)

    # -- writing (upper only) ------------------------------------------------------------------

    def _record_path(self, path: str, kind: str) -> str:
        return "%s/%s/%s" % (record_dir(dirname(path)), kind, basename(path))

    def add_record(self, path: str, kind: str) -> None:
        """Record ``path`` as whited out (``WHITEOUT``) or as an opaque directory (``OPAQUE``)."""
        record = self._record_path(path, kind)
        self.fs.makedirs(dirname(record), recreate=True)
        self.fs.create(record, wipe=False)

    def remove_record(self, path: str, kind: str) -> None:
        try:
            self.fs.remove(self._record_path(path, kind))
        except errors.ResourceNotFound:
            pass

    def add_whiteout(self, path: str) -> None:
        self.add_record(path, WHITEOUT)

    def add_opaque(self, path: str) -> None:
        self.add_record(path, OPAQUE)

    def drop_records_below(self, path: str) -> None:
        """Forget every record of the entries inside the directory ``path``."""
        try:
            self.fs.removetree(record_dir(path))
        except errors.ResourceNotFound:
            pass
        if path == "/":
            self.fs.makedir(TREE_DIR, recreate=True)

    def staging_path(self) -> str:
        """A fresh name in the staging area, for a copy-up in progress or a trashed tree."""
        if not self.fs.isdir(STAGING_DIR):
            self.fs.makedir(STAGING_DIR, recreate=True)
        return "%s/%s" % (STAGING_DIR, uuid.uuid4().hex)
