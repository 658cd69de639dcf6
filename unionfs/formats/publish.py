"""Publishing an upper as a layer: its entries and sidecar records, copied into an empty FS.

The sidecar is the overlay's marker format on every filesystem, an object store included,
so a published upper is a complete layer: an overlay that stacks it as a lower (over the same
lowers) shows exactly the view of the overlay it came from. The working parts of the sidecar
(staging, journal, lock) stay behind; they belong to a live upper, not to a layer.
"""

from __future__ import annotations

from collections import deque
from typing import Deque

from .. import _fsimport  # noqa: F401
from fs import errors
from fs.base import FS
from fs.copy import copy_file_internal
from fs.path import join

from ..core.stack import Layer
from ..core.sidecar import FORMAT_PATH, JOURNAL_DIR, LOCK_PATH, SIDECAR_DIR, STAGING_DIR

#: what a live upper's sidecar holds that a published layer does not
_WORKING_PARTS = frozenset((STAGING_DIR, JOURNAL_DIR, LOCK_PATH))


def export_upper(upper: Layer, target: FS, label: str) -> int:
    """Copy every entry and record of ``upper`` into the empty ``target`` (named ``label`` in
    errors); return how many entries were written. Parents before children, breadth first."""
    if not target.isempty("/"):
        raise errors.DirectoryNotEmpty(
            "/", msg="cannot publish into %s: it is not empty (a layer is published whole, once)" % label
        )
    # the sidecar's directory first and its FORMAT last: a publication cut short has a
    # sidecar without FORMAT, which every reader refuses (SidecarError) instead of showing
    # a view without the whiteouts that were not written yet
    target.makedir(SIDECAR_DIR)
    written = 1
    pending: Deque[str] = deque(["/"])
    while pending:  # iterative: a 10,000-deep tree is as fine as a flat one
        directory = pending.popleft()
        for info in upper.fs.scandir(directory, namespaces=["details"]):
            path = join(directory, info.name)
            if path in _WORKING_PARTS or path == FORMAT_PATH:
                continue
            if path == SIDECAR_DIR:
                pending.append(path)
                continue
            if info.is_dir:
                target.makedir(path)
                pending.append(path)
            else:
                copy_file_internal(upper.fs, path, target, path, preserve_time=True)
            written += 1
    copy_file_internal(upper.fs, FORMAT_PATH, target, FORMAT_PATH)
    return written + 1
