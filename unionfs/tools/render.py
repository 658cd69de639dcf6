"""What the command line and the demo print: trees, change letters, a progress bar."""

from __future__ import annotations

import time
from typing import List, TextIO

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs.base import FS

from ..changes import ADDED, DELETED, METADATA, MODIFIED, OPAQUE, RENAMED
from ..commit import Progress
from ..core.sidecar import RESERVED_NAME
from ..core.walk import fs_tree

#: the letter ``diff`` and the demo print for each kind of change
CHANGE_LETTERS = {ADDED: "A", MODIFIED: "M", METADATA: "m", DELETED: "D", OPAQUE: "O", RENAMED: "R"}


def tree_lines(layer: FS, path: str = "/", show_reserved: bool = False) -> List[str]:
    """``layer`` below ``path`` drawn as a tree, one entry per line, names sorted, dirs with ``/``."""
    skip = (lambda entry_path: entry_path == "/" + RESERVED_NAME) if not show_reserved else (lambda entry_path: False)
    lines: List[str] = []
    for entry in fs_tree(layer, path, skip=skip):
        prefix = "".join("    " if last else "│   " for last in entry.ancestors_last)
        lines.append(prefix + ("└── " if entry.last else "├── ") + entry.info.name + ("/" if entry.info.is_dir else ""))
    return lines


class ProgressBar:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, stream: TextIO, label: str, width: int = 30) -> None:
        self.stream, self.label, self.width = stream, label, width
        self._last_draw = 0.0
        self._drawn = False

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        done = progress.bytes_done >= progress.bytes_total and progress.files_done >= progress.files_total
        if not done and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        fraction = progress.bytes_done / progress.bytes_total if progress.bytes_total else (1.0 if done else 0.0)
        fraction = min(fraction, 1.0)  # never past 100%, whatever a caller's totals say
        filled = int(self.width * fraction)
        self.stream.write(
            "\r%s [%s%s] %3d%% %s/%s  %d/%d files"
            % (self.label, "#" * filled, "-" * (self.width - filled), fraction * 100,
               _size(progress.bytes_done), _size(progress.bytes_total), progress.files_done, progress.files_total)
        )
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (count, unit)
        count /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")
