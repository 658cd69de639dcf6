"""PyFilesystem2's own conformance suite, ``fs.test.FSTestCases``, against OverlayFS.

Each configuration starts the suite on an empty-looking view built a different way,
so the same ~150 checks run over whiteouts, over lower-only directories, over
archives and over a stack of lowers. Every configuration checks at teardown that
its lowers did not change by one byte.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
import unittest
import zipfile
from typing import List

import unionfs  # noqa: F401
from fs.base import FS
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS
from fs.tarfs import TarFS
from fs.test import FSTestCases
from fs.wrapfs import WrapFS
from fs.zipfs import ZipFS

from unionfs import OverlayFS
from unionfs.testing import trees

from tests.conftest import snapshot


def populated_lower() -> MemoryFS:
    return trees.make_tree(MemoryFS(), {
        "foo/bar/lower.txt": "from the lower", "foo.txt": "a lower file the tests will create again",
        "suite/": None, "top.bin": "x" * 1000,
    })


class GuardedCases(FSTestCases):
    """FSTestCases plus the lower guard: the lowers of each test are byte-identical after it."""

    lowers: List[FS]

    def make_lowers(self) -> List[FS]:
        raise NotImplementedError

    def make_overlay(self, lowers: List[FS]) -> FS:
        return OverlayFS(lowers, MemoryFS())

    def make_fs(self) -> FS:
        self.lowers = self.make_lowers()
        self._before = [snapshot(layer) for layer in self.lowers]
        return self.make_overlay(self.lowers)

    def destroy_fs(self, fs: FS) -> None:
        fs.close()
        after = [snapshot(layer) for layer in self.lowers]
        assert after == self._before, "a lower layer was modified"
        for layer in self.lowers:
            layer.close()


class TestEmptyLower(GuardedCases, unittest.TestCase):
    def make_lowers(self) -> List[FS]:
        return [MemoryFS()]


class TestOverWhiteouts(GuardedCases, unittest.TestCase):
    """Everything of a populated lower hidden by ``removetree('/')`` first."""

    def make_lowers(self) -> List[FS]:
        return [populated_lower()]

    def make_overlay(self, lowers: List[FS]) -> FS:
        overlay = OverlayFS(lowers, MemoryFS())
        overlay.removetree("/")
        assert overlay.listdir("/") == []
        return overlay


class TestInLowerOnlyDirectory(GuardedCases, unittest.TestCase):
    """The suite runs in ``/suite``, which exists only in the lower."""

    def make_lowers(self) -> List[FS]:
        return [populated_lower()]

    def make_overlay(self, lowers: List[FS]) -> FS:
        return OverlayFS(lowers, MemoryFS()).opendir("/suite")


def _archive_bytes(kind: str) -> bytes:
    """A small archive holding an empty ``suite/`` directory and some neighbours."""
    members = {"readme.txt": b"archived", "suite/": b"", "deep/er/file.txt": b"deep"}
    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
    else:
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for name, data in members.items():
                info = tarfile.TarInfo(name.rstrip("/"))
                if name.endswith("/"):
                    info.type = tarfile.DIRTYPE
                else:
                    info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class ArchiveCases(GuardedCases):
    kind = "tar"

    def make_lowers(self) -> List[FS]:
        self._tmp = tempfile.mkdtemp()
        path = "%s/layer.%s" % (self._tmp, self.kind)
        with open(path, "wb") as handle:
            handle.write(_archive_bytes(self.kind))
        opener = ZipFS if self.kind == "zip" else TarFS
        return [opener(path)]

    def make_overlay(self, lowers: List[FS]) -> FS:
        return OverlayFS(lowers, MemoryFS()).opendir("/suite")

    def destroy_fs(self, fs: FS) -> None:
        super().destroy_fs(fs)
        shutil.rmtree(self._tmp)


class TestTarLower(ArchiveCases, unittest.TestCase):
    kind = "tar"


class TestZipLower(ArchiveCases, unittest.TestCase):
    kind = "zip"


class TestLowerStack(GuardedCases, unittest.TestCase):
    """Three lowers that all have ``/suite`` with clashing entries, every entry whited out."""

    def make_lowers(self) -> List[FS]:
        layers = []
        for depth in range(3):
            clash = {"suite/clash": "file in layer %d" % depth}
            if depth == 1:
                layers.append(trees.make_tree(MemoryFS(), {"suite/foo": "a file hiding the directory below", **clash}))
            else:
                layers.append(trees.make_tree(MemoryFS(), {"suite/foo/layer%d.txt" % depth: "layer %d" % depth, **clash}))
        return layers

    def make_overlay(self, lowers: List[FS]) -> FS:
        overlay = OverlayFS(lowers, MemoryFS())
        for name in overlay.listdir("/suite"):
            overlay.hide("/suite/" + name)
        return overlay.opendir("/suite")


class ReopeningFS(WrapFS):
    """Every call goes to a brand-new OverlayFS over the same upper: nothing may live only in
    an instance, everything must be in the upper and its sidecar."""

    def __init__(self, lowers: List[FS], upper: FS) -> None:
        self._lowers, self._upper = lowers, upper
        super().__init__(OverlayFS(lowers, upper))

    def delegate_fs(self) -> FS:
        return OverlayFS(self._lowers, self._upper)


class TestReopened(GuardedCases, unittest.TestCase):
    def make_lowers(self) -> List[FS]:
        return [populated_lower()]

    def make_overlay(self, lowers: List[FS]) -> FS:
        upper = MemoryFS()
        OverlayFS(lowers, upper).removetree("/")
        return ReopeningFS(lowers, upper)


class TestOSFSLayers(GuardedCases, unittest.TestCase):
    """Disk lower and disk upper."""

    def make_lowers(self) -> List[FS]:
        self._tmp = tempfile.mkdtemp()
        lower = OSFS(self._tmp, create=True)
        lower.makedir("lower")
        source = populated_lower()
        from fs.copy import copy_fs

        copy_fs(source, lower.makedir("layer"))
        return [lower.opendir("layer")]

    def make_overlay(self, lowers: List[FS]) -> FS:
        upper = OSFS(self._tmp).makedir("upper")
        return OverlayFS(lowers, upper).opendir("/suite")

    def destroy_fs(self, fs: FS) -> None:
        super().destroy_fs(fs)
        shutil.rmtree(self._tmp)
