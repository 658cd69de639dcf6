"""The intent journal (roll forward, version-1 readers refuse) and fsck's repairs."""

from __future__ import annotations

import pytest

from fs import errors
from fs.memoryfs import MemoryFS

from unionfs import OverlayFS, SidecarError
from unionfs.sidecar import FORMAT_PATH, JOURNAL_DIR, STAGING_DIR, TREE_DIR
from unionfs.testing.faults import FaultyFS, InjectedFault

from reliability_support import view


@pytest.fixture
def lowers(guard_lower):
    layer = MemoryFS()
    layer.makedirs("src/deep")
    for name in ("one", "two", "three"):
        layer.writetext("src/" + name, name)
    layer.writetext("src/deep/four", "four")
    layer.makedir("dst")
    return [guard_lower(layer)]


def _crash_inside_movedir(lowers):
    """An upper whose movedir src -> dst crashed after its journal entry and two moves."""
    upper = MemoryFS()
    counting = FaultyFS(MemoryFS())
    OverlayFS(lowers, counting).movedir("src", "dst")
    # the journal's first two renames: FORMAT to version 2, then the entry into place
    entry_written = [n for n, (op, _) in enumerate(counting.log, 1) if op == "move"][1]
    faulty = FaultyFS(upper, entry_written + 8, "crash")
    with pytest.raises(InjectedFault):
        OverlayFS(lowers, faulty).movedir("src", "dst")
    return upper


def test_pending_journal_makes_version_1_readers_refuse(lowers):
    upper = _crash_inside_movedir(lowers)
    assert upper.readtext(FORMAT_PATH) == "unionfs-sidecar 2\n"
    assert len(upper.listdir(JOURNAL_DIR)) == 1
    # as a read-only lower the half-done move cannot be finished: a clear error, no mixed view
    with pytest.raises(SidecarError, match="interrupted operation is pending"):
        OverlayFS([upper] + lowers)


def test_reopening_rolls_the_operation_forward(lowers):
    upper = _crash_inside_movedir(lowers)
    overlay = OverlayFS(lowers, upper)
    assert [(i.operation, i.src, i.dst) for i in overlay.recovered] == [("movedir", "/src", "/dst")]
    assert not overlay.exists("src")
    assert sorted(overlay.listdir("dst")) == ["deep", "one", "three", "two"]
    assert overlay.readtext("dst/deep/four") == "four"
    assert upper.readtext(FORMAT_PATH) == "unionfs-sidecar 1\n"
    assert upper.listdir(JOURNAL_DIR) == []
    report = overlay.fsck()
    assert [f.kind for f in report.findings if f.kind == "journal"] == ["journal"]
    assert "movedir /src -> /dst" in str(report)


def test_a_failed_step_is_retried_at_once(lowers):
    counting = FaultyFS(MemoryFS())
    OverlayFS(lowers, counting).movedir("src", "dst")
    upper = MemoryFS()
    overlay = OverlayFS(lowers, FaultyFS(upper, counting.calls // 2, "fail"))
    overlay.movedir("src", "dst")  # one I/O error in the middle is absorbed by the retry
    assert not overlay.exists("src") and overlay.readtext("dst/one") == "one"
    assert upper.readtext(FORMAT_PATH) == "unionfs-sidecar 1\n"


@pytest.mark.parametrize(
    "text, complaint",
    [("{not json", "unreadable journal entry"), ('{"operation": "format-disk", "src": "/"}', "unreadable"),
     ('{"operation": "movedir", "src": "/a"}', "destination")],
)
def test_corrupt_journal_entry_is_named_on_open(lowers, text, complaint):
    upper = MemoryFS()
    OverlayFS(lowers, upper)
    upper.makedir(JOURNAL_DIR)
    upper.writetext(JOURNAL_DIR + "/bad", text)
    upper.writetext(FORMAT_PATH, "unionfs-sidecar 2\n")
    with pytest.raises(SidecarError, match=complaint) as raised:
        OverlayFS(lowers, upper)
    assert raised.value.path == JOURNAL_DIR + "/bad"


def _leftovers(lowers):
    """An upper with one of every leftover fsck knows, made by hand."""
    upper = MemoryFS()
    overlay = OverlayFS(lowers, upper)
    overlay.remove("src/one")  # a real whiteout: must survive
    overlay.writetext("src/two", "upper two")
    overlay.make_opaque("opaque")
    upper.makedirs(STAGING_DIR + "/x/y")
    upper.writetext(STAGING_DIR + "/f", "half a copy-up")
    upper.makedirs(TREE_DIR + "/d/gone/w")
    upper.create(TREE_DIR + "/d/gone/w/name")  # records of a directory the upper lacks
    upper.create(TREE_DIR + "/d/src/w/two")  # whiteout beside the upper entry two
    upper.makedirs(TREE_DIR + "/o", recreate=True)
    upper.create(TREE_DIR + "/o/nodir")  # opaque record without a directory
    upper.makedirs(TREE_DIR + "/d/opaque/w")
    upper.create(TREE_DIR + "/d/opaque/w/inside")  # whiteout in an opaque directory
    upper.create(TREE_DIR + "/junk")
    return upper


def test_fsck_finds_and_repairs_every_leftover_without_changing_the_view(lowers):
    upper = _leftovers(lowers)
    overlay = OverlayFS(lowers, upper)
    before = view(overlay)
    dry = overlay.fsck(repair=False)
    kinds = sorted(finding.kind for finding in dry.findings)
    assert kinds == ["junk", "orphan-records", "overridden-whiteout", "staging", "staging", "stray-opaque",
                     "whiteout-in-opaque"]
    assert not dry.repaired and overlay.fsck(repair=False) == dry  # a dry run changes nothing
    report = overlay.fsck()
    assert report.repaired and sorted(f.kind for f in report.findings) == kinds
    assert view(overlay) == before == view(OverlayFS(lowers, upper))
    assert overlay.fsck().clean and str(overlay.fsck()) == "clean"
    assert upper.listdir(STAGING_DIR) == []
    assert upper.exists(TREE_DIR + "/d/src/w/one")  # the whiteout that hides something stays
    assert not overlay.exists("src/one")


def test_fsck_of_a_read_only_overlay_is_clean(lowers):
    assert OverlayFS(lowers + [MemoryFS()]).fsck().clean
