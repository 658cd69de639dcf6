"""repr() of the attrs records works (attrs' generated __repr__ looks up the name
``_compat`` in the class's module, which our old ``unionfs._compat`` module used to shadow)."""

from __future__ import annotations

from fs.memoryfs import MemoryFS

from unionfs import OverlayFS
from unionfs.core.journal import Intent
from unionfs.core.stack import DirIndex


def test_records_have_a_repr():
    overlay = OverlayFS(MemoryFS(), MemoryFS())
    assert repr(overlay._lookup.root).startswith("Node(path='/'")
    assert repr(DirIndex({"a": True})).startswith("DirIndex(entries={'a': True}")
    assert repr(Intent("movedir", "/a", "/b")) == "Intent(operation='movedir', src='/a', dst='/b')"
    assert repr(overlay.fsck()) == "FsckReport(findings=(), repaired=True)"


def test_change_sets_have_a_repr():
    from unionfs.changes import ChangeSet

    assert repr(ChangeSet(())) == "ChangeSet(changes=())"
