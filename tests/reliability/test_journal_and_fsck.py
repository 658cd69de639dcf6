"""The intent journal (roll forward, version-1 readers refuse) and fsck's repairs."""

from __future__ import annotations

import pytest

from fs.memoryfs import MemoryFS

import functools

import unionfs
from unionfs import SidecarError
from unionfs.core.sidecar import FORMAT_TEXT, JOURNAL_FORMAT_VERSION
from unionfs.core.sidecar import FORMAT_PATH, JOURNAL_DIR, STAGING_DIR, TREE_DIR
from unionfs.testing.faults import FaultyFS, InjectedFault
from unionfs.testing import trees

from tests.support.reliability_support import view

#: These tests exercise the journal of the copying movedir: a rename to a new name with
#: redirect_dir on is one atomic rename (tests/reliability/test_redirect_crash.py covers it).
OverlayFS = functools.partial(unionfs.OverlayFS, redirect_dir=False, metacopy=False)


@pytest.fixture
def lowers(guard_lower):
    spec = {"src/one": "one", "src/two": "two", "src/three": "three", "src/deep/four": "four", "dst/": None}
    return [guard_lower(trees.make_tree(MemoryFS(), spec))]


def _journal_entry_written(log):
    """The number of the write-side call that renames the journal entry into place: the
    first rename after the journal directory is made."""
    made = next(n for n, (op, path) in enumerate(log, 1) if op == "makedir" and path == JOURNAL_DIR)
    return next(n for n, (op, _) in enumerate(log, 1) if n > made and op == "move")


def _crash_inside_movedir(lowers):
    """An upper whose movedir src -> dst crashed after its journal entry and two moves."""
    upper = MemoryFS()
    counting = FaultyFS(MemoryFS())
    OverlayFS(lowers, counting).movedir("src", "dst")
    entry_written = _journal_entry_written(counting.log)
    faulty = FaultyFS(upper, entry_written + 8, "crash")
    with pytest.raises(InjectedFault):
        OverlayFS(lowers, faulty).movedir("src", "dst")
    return upper


def test_pending_journal_makes_version_1_readers_refuse(lowers):
    upper = _crash_inside_movedir(lowers)
    assert upper.readtext(FORMAT_PATH) == "unionfs-sidecar %d\n" % JOURNAL_FORMAT_VERSION
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
    assert upper.readtext(FORMAT_PATH) == FORMAT_TEXT
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
    assert upper.readtext(FORMAT_PATH) == FORMAT_TEXT


@pytest.mark.parametrize(
    "text, complaint",
    [("{not json", "unreadable journal entry"), ('{"operation": "format-disk", "src": "/"}', "unreadable"),
     ('{"operation": "movedir", "src": "/a"}', "destination"),
     ('{"dst": "/b", "operation": "movedir", "src": "/a", "times": {"": 1}}', "times is not a list"),
     ('{"dst": "/b", "operation": "movedir", "src": "/a", "times": [["", "x", 1]]}', "not \\[path, accessed"),
     ('{"dst": "/b", "kept": [["/", 1]], "operation": "movedir", "src": "/a"}', "not \\[path, accessed")],
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


def test_a_crash_during_the_roll_forward_is_rolled_forward_again(lowers):
    """Recovery runs the same idempotent steps: interrupting it anywhere changes nothing."""
    from tests.support.reliability_support import clone

    crashed = _crash_inside_movedir(lowers)
    def shape(overlay):  # directories made by the roll-forward get the time of making
        return {path: entry[:-1] for path, entry in view(overlay).items()}

    expected = shape(OverlayFS(lowers, clone(crashed)))
    counting = FaultyFS(clone(crashed))
    OverlayFS(lowers, counting)
    assert counting.calls > 5
    for fail_at in range(1, counting.calls + 1):
        upper = clone(crashed)
        with pytest.raises(InjectedFault):
            OverlayFS(lowers, FaultyFS(upper, fail_at, "crash"))
        overlay = OverlayFS(lowers, upper)
        assert shape(overlay) == expected, fail_at
        assert upper.readtext(FORMAT_PATH) == FORMAT_TEXT


def test_opening_empties_the_staging_area_and_fsck_reports_it_once(lowers):
    upper = MemoryFS()
    OverlayFS(lowers, upper).close()
    upper.makedirs(STAGING_DIR + "/half-copied-dir/x")
    upper.writetext(STAGING_DIR + "/half-copied-file", "partial")
    second = OverlayFS(lowers, upper)
    assert upper.listdir(STAGING_DIR) == []
    assert sorted(f.path for f in second.fsck().findings) == [
        STAGING_DIR + "/half-copied-dir", STAGING_DIR + "/half-copied-file"]
    assert second.fsck().clean


def test_a_failure_while_emptying_the_trash_does_not_fail_a_done_removal(guard_lower):
    """removetree takes the tree out of the upper by one rename; deleting the renamed tree
    afterwards is housekeeping: failing there must not report a removal that happened as failed."""
    lower = guard_lower(trees.make_tree(MemoryFS(), {"d/f": "lower"}))

    def prepared():
        upper = MemoryFS()
        overlay = OverlayFS([lower], upper)
        overlay.writetext("d/g", "upper")
        return upper

    counting = FaultyFS(prepared())
    OverlayFS([lower], counting).removetree("d")
    trash_steps = [n for n, (op, path) in enumerate(counting.log, 1) if op in ("remove", "removedir") and path.startswith(STAGING_DIR)]
    assert trash_steps
    for fail_at in trash_steps:
        upper = prepared()
        overlay = OverlayFS([lower], FaultyFS(upper, fail_at, "fail"))
        overlay.removetree("d")  # no error: the tree is gone
        assert not overlay.exists("d")
        assert not OverlayFS([lower], upper).exists("d") and upper.listdir(STAGING_DIR) == []


@pytest.mark.parametrize("name", ["new\nline", "caf\u00e9 \u2603", "quote\"and\\backslash", "{\"json\": 1}"])
def test_journal_entries_carry_any_name(guard_lower, name):
    """Intents are JSON: a crashed movedir of a directory with any name rolls forward."""
    lower = guard_lower(trees.make_tree(MemoryFS(), {name + "/sub/f": "f", name + "/g": "g"}))
    counting = FaultyFS(MemoryFS())
    OverlayFS([lower], counting).movedir(name, name + " moved", create=True)
    entry_written = _journal_entry_written(counting.log)
    upper = MemoryFS()
    with pytest.raises(InjectedFault):
        OverlayFS([lower], FaultyFS(upper, entry_written + 3, "crash")).movedir(name, name + " moved", create=True)
    overlay = OverlayFS([lower], upper)
    assert [(i.src, i.dst) for i in overlay.recovered] == [("/" + name, "/" + name + " moved")]
    assert not overlay.exists(name)
    assert overlay.readtext(name + " moved/sub/f") == "f" and overlay.readtext(name + " moved/g") == "g"
