"""Helpers of the per-rule tests in ``tests/core/`` (their fixtures are in ``tests/core/conftest.py``)."""

from __future__ import annotations

from datetime import datetime, timezone

import unionfs  # noqa: F401
from fs.memoryfs import MemoryFS

T1000 = datetime.fromtimestamp(1000, tz=timezone.utc)


def records(upper: MemoryFS) -> dict:
    """The sidecar of ``upper`` as {'whiteouts': [...], 'opaque': [...]} of merged-view paths."""
    found = {"whiteouts": [], "opaque": []}
    tree = "/.unionfs/tree"

    def visit(record_dir: str, view_dir: str) -> None:
        for kind, key in (("w", "whiteouts"), ("o", "opaque")):
            if upper.isdir(record_dir + "/" + kind):
                for name in upper.listdir(record_dir + "/" + kind):
                    found[key].append(view_dir.rstrip("/") + "/" + name)
        if upper.isdir(record_dir + "/d"):
            for name in upper.listdir(record_dir + "/d"):
                visit(record_dir + "/d/" + name, view_dir.rstrip("/") + "/" + name)

    visit(tree, "/")
    return {key: sorted(paths) for key, paths in found.items()}


def upper_files(upper: MemoryFS) -> list:
    return sorted(path for path in upper.walk.files() if not path.startswith("/.unionfs/"))
