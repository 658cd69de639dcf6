"""``unionfs fsck``: the command-line form of OverlayFS.fsck."""

from __future__ import annotations

import json

from fs.osfs import OSFS

from unionfs import OverlayFS
from unionfs.tools.cli import main


def _damaged(tmp_path, guard_lower):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "d").mkdir(parents=True)
    (lower / "d" / "f").write_text("lower")
    upper.mkdir()
    overlay = OverlayFS(guard_lower(OSFS(str(lower))), OSFS(str(upper)))
    overlay.remove("d/f")
    overlay.close()
    (upper / ".unionfs" / "tmp" / "half-a-copy-up").write_text("x")
    (upper / ".unionfs" / "tree" / "o").mkdir()
    (upper / ".unionfs" / "tree" / "o" / "nothing").write_text("")
    return str(lower), str(upper)


def test_fsck_dry_run_reports_and_repairs_nothing_opening_did_not(tmp_path, capsys, guard_lower):
    """A dry run changes nothing (issue 11 item 10: it used to empty the staging area, as
    opening an overlay does): it reports the staging leftover and the stray record and leaves
    both; a repairing run then removes them."""
    lower, upper = _damaged(tmp_path, guard_lower)
    assert main(["fsck", "-l", lower, "-u", upper, "--dry-run", "--json"]) == 4
    findings = json.loads(capsys.readouterr().out)
    assert sorted(f["kind"] for f in findings) == ["staging", "stray-opaque"]
    assert "interrupted operation" in [f for f in findings if f["kind"] == "staging"][0]["detail"]
    assert (tmp_path / "upper" / ".unionfs" / "tmp" / "half-a-copy-up").exists()
    assert (tmp_path / "upper" / ".unionfs" / "tree" / "o" / "nothing").exists()
    assert main(["fsck", "-l", lower, "-u", upper]) == 0
    assert not (tmp_path / "upper" / ".unionfs" / "tmp" / "half-a-copy-up").exists()


def test_fsck_repairs_then_finds_nothing(tmp_path, capsys, guard_lower):
    lower, upper = _damaged(tmp_path, guard_lower)
    assert main(["fsck", "-l", lower, "-u", upper]) == 0
    out = capsys.readouterr().out
    assert out.startswith("repaired 2 problem(s):") and "half-a-copy-up" in out
    assert not (tmp_path / "upper" / ".unionfs" / "tmp" / "half-a-copy-up").exists()
    assert main(["fsck", "-l", lower, "-u", upper, "--dry-run"]) == 0
    assert capsys.readouterr().out.strip() == "clean"
    overlay = OverlayFS(OSFS(lower), OSFS(upper))
    assert overlay.listdir("d") == []  # the whiteout that hides something stayed


def test_fsck_of_a_corrupt_sidecar_is_one_error_line(tmp_path, capsys, guard_lower):
    lower, upper = _damaged(tmp_path, guard_lower)
    (tmp_path / "upper" / ".unionfs" / "FORMAT").write_text("garbage")
    assert main(["fsck", "-l", lower, "-u", upper]) == 1
    err = capsys.readouterr().err
    assert err.startswith("unionfs: error: corrupt unionfs sidecar at '/.unionfs/FORMAT'")
