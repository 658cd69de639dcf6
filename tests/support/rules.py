"""Helpers of the per-rule tests in ``tests/core/`` (their fixtures are in ``tests/core/conftest.py``)."""

from __future__ import annotations

from datetime import datetime, timezone

import unionfs  # noqa: F401
from fs.memoryfs import MemoryFS

T1000 = datetime.fromtimestamp(1000, tz=timezone.utc)


def records(upper: MemoryFS) -> dict:
    """The sidecar of ``upper`` as {'whiteouts': [...], 'opaque': [...]} of merged-view paths."""
    found = {"whiteouts": [], "opaque": []}
    pending = [("/.unionfs/tree", "/")]  # (record directory, the view directory it holds records of)
    while pending:
        record_dir, view_dir = pending.pop()
        for kind, key in (("w", "whiteouts"), ("o", "opaque")):
            if upper.isdir(record_dir + "/" + kind):
                for name in upper.listdir(record_dir + "/" + kind):
                    found[key].append(view_dir.rstrip("/") + "/" + name)
        if upper.isdir(record_dir + "/d"):
            for name in upper.listdir(record_dir + "/d"):
                pending.append((record_dir + "/d/" + name, view_dir.rstrip("/") + "/" + name))
    return {key: sorted(paths) for key, paths in found.items()}


def upper_files(upper: MemoryFS) -> list:
    return sorted(path for path in upper.walk.files() if not path.startswith("/.unionfs/"))
