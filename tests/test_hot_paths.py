"""Hot paths make few calls to the layers, and their shortcuts change no result."""

from __future__ import annotations

from typing import List

import unionfs  # noqa: F401
from fs.base import FS
from fs.memoryfs import MemoryFS
from fs.wrapfs import WrapFS

from unionfs import OverlayFS


class CallLog(WrapFS):
    """An upper that logs the names of the FS methods called on it."""

    def __init__(self, wrapped: FS) -> None:
        super().__init__(wrapped)
        self.calls: List[str] = []

    def makedirs(self, path, permissions=None, recreate=False):
        self.calls.append("makedirs")
        return super().makedirs(path, permissions, recreate)

    def getinfo(self, path, namespaces=None):
        self.calls.append("getinfo")
        return super().getinfo(path, namespaces)

    def openbin(self, path, mode="r", buffering=-1, **options):
        self.calls.append("openbin")
        return super().openbin(path, mode, buffering, **options)


def test_a_whiteout_beside_others_is_one_upper_call(guard_lower):
    lower = MemoryFS()
    lower.makedirs("d/sub")
    for index in range(3):
        lower.writetext("d/sub/f%d" % index, "f")
    guard_lower(lower)
    upper = CallLog(MemoryFS())
    overlay = OverlayFS(lower, upper=upper)
    overlay.remove("d/sub/f0")  # the first record in d/sub makes its record directories
    assert "makedirs" in upper.calls
    upper.calls.clear()
    overlay.remove("d/sub/f1")
    assert upper.calls == ["openbin"]  # no makedirs, no existence check: the record file only
    assert sorted(overlay.listdir("d/sub")) == ["f2"]
    assert sorted(OverlayFS(lower, upper=upper).listdir("d/sub")) == ["f2"]  # recorded, not just cached
