"""Build real tar and zip archives for tests, including hostile ones."""

from __future__ import annotations

import io
import tarfile
import zipfile
from typing import Dict, Iterable, Optional, Tuple, Union

#: name -> content (bytes: a file; None: an explicit directory entry)
Members = Dict[str, Optional[bytes]]

TAR_MODES = {"tar": "w", "tar.gz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}
FORMATS = tuple(TAR_MODES) + ("zip",)


def build(path: str, members: Members, fmt: str) -> str:
    """Write ``members`` to an archive of format ``fmt`` at ``path``; no directory entry
    is written unless listed (with ``None``), as many archivers do."""
    if fmt == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in members.items():
                if content is None:
                    archive.writestr(zipfile.ZipInfo(name.rstrip("/") + "/"), b"")
                else:
                    archive.writestr(name, content)
        return path
    with tarfile.open(path, TAR_MODES[fmt], format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape") as archive:
        for name, content in members.items():
            add_tar_member(archive, name, content)
    return path


def add_tar_member(
    archive: tarfile.TarFile,
    name: str,
    content: Union[bytes, None, io.RawIOBase] = b"",
    kind: bytes = tarfile.REGTYPE,
    linkname: str = "",
    size: Optional[int] = None,
) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 1_600_000_000
    info.mode = 0o644
    if content is None and kind == tarfile.REGTYPE:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        archive.addfile(info)
        return
    info.type = kind
    info.linkname = linkname
    if kind == tarfile.REGTYPE:
        if isinstance(content, bytes):
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        else:
            info.size = size or 0
            archive.addfile(info, content)
        return
    archive.addfile(info)


def build_tar(path: str, entries: Iterable[Tuple], fmt: str = "tar") -> str:
    """A tar from raw ``(name, content, kind, linkname)`` tuples, in order (duplicates allowed)."""
    with tarfile.open(path, TAR_MODES[fmt], format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape") as archive:
        for entry in entries:
            add_tar_member(archive, *entry)
    return path


class PatternStream(io.RawIOBase):
    """``size`` bytes of a repeating pattern, produced on the fly (never held in memory)."""

    def __init__(self, size: int) -> None:
        self.remaining = size
        self.block = bytes(range(256)) * 256

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        count = min(len(buffer), self.remaining, len(self.block))
        buffer[:count] = self.block[:count]
        self.remaining -= count
        return count
