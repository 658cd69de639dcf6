"""Lowers given as ready-made ``Layer`` objects keep their own marker format."""

from __future__ import annotations

from typing import Optional

import pytest
from fs.memoryfs import MemoryFS

from unionfs import OverlayFS, UnsupportedLayer
from unionfs.core.stack import DirIndex, Layer
from unionfs.testing import trees


class PrefixMarkers(Layer):
    """A toy marker format: a file named ``WH-x`` whites out ``x`` below."""

    def _read_dir(self, path: str) -> Optional[DirIndex]:
        index = super()._read_dir(path)
        if index is not None:
            for name in [n for n in index.entries if n.startswith("WH-")]:
                del index.entries[name]
                index.whiteouts.add(name[3:])
        return index


def test_a_ready_made_layer_brings_its_own_markers(guard_lower) -> None:
    top = trees.make_tree(MemoryFS(), {"WH-gone.txt": "", "new.txt": "top"})
    base = trees.make_tree(MemoryFS(), {"gone.txt": "base", "kept.txt": "base"})
    guard_lower(top)
    guard_lower(base)
    overlay = OverlayFS([PrefixMarkers(top, "toy", False, None), base], upper=MemoryFS())
    assert sorted(overlay.listdir("/")) == ["kept.txt", "new.txt"]
    assert not overlay.exists("gone.txt")
    overlay.writetext("gone.txt", "again")
    assert overlay.readtext("gone.txt") == "again"


def test_an_upper_layer_is_refused_as_a_lower() -> None:
    with pytest.raises(UnsupportedLayer):
        OverlayFS([Layer(MemoryFS(), "x", True, None)])
