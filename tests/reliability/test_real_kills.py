"""The real-kill campaign (issue 10, "Done when"): SIGKILL a child process at random points
of each multi-step operation over an on-disk upper, reopen the upper in a new process,
fsck, and require the state before or after the operation.

For each operation (``tests.support.kill_child.OPERATIONS``: copy-up of a 4 MiB file,
writebytes and writetext of a whole file, movedir of a merged tree, removetree, remove with
a whiteout, discard, commit into the lower) the templates (an on-disk lower and an upper
with changes) are copied for every trial. One calibration run, not killed, measures how
long the operation takes in the child; each further trial starts a child, lets it run the
operation and kills it with SIGKILL after a random delay within that time (so kills land
all over the operation, some after it finished). One verifying process then reopens every
killed upper: the view (type, bytes, kept times of every entry) must be the view before or
the view after the operation (after, if the child said it was done), ``fsck`` may only
report what opening cleaned (staging, journal), a second ``fsck`` must be clean, and the
raw upper must agree with the view. The counts are printed.

``UNIONFS_KILLS_PER_OPERATION`` (default 8) sets the number of kills per operation; CI's
default costs about a minute.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from typing import Dict, List, Tuple

import pytest

import unionfs  # noqa: F401
from fs.osfs import OSFS

from unionfs import OverlayFS

from tests.support import kill_child
from tests.support.reliability_support import COUNTS

KILLS = int(os.environ.get("UNIONFS_KILLS_PER_OPERATION", "8"))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: operation -> (kills, ended before, ended after, finished before the kill)
KILL_COUNTS: Dict[str, Tuple[int, int, int, int]] = {}


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill-templates")
    lower, upper = str(root / "lower"), str(root / "upper")
    kill_child.build(lower, upper)
    return lower, upper


def _copy(templates: Tuple[str, str], where: str) -> Tuple[str, str]:
    lower, upper = os.path.join(where, "lower"), os.path.join(where, "upper")
    shutil.copytree(templates[0], lower, symlinks=True)
    shutil.copytree(templates[1], upper, symlinks=True)
    for source, copy in ((templates[0], lower), (templates[1], upper)):  # copytree keeps mtimes of files only
        for directory, dirs, _files in os.walk(source):
            for name in dirs:
                stat = os.stat(os.path.join(directory, name))
                os.utime(os.path.join(copy, os.path.relpath(directory, source), name), ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return lower, upper


def _expected(templates: Tuple[str, str], where: str, operation: str):
    """The views before and after the operation, run in this process on a copy."""
    lower_dir, upper_dir = _copy(templates, where)
    lower = OSFS(lower_dir)
    overlay = OverlayFS(lower, OSFS(upper_dir))
    before = kill_child.comparable(overlay)
    kill_child.OPERATIONS[operation](overlay, lower)
    after = kill_child.comparable(overlay)
    overlay.close()
    assert before != after or operation == "commit into the lower", operation
    return before, after


def _child(operation: str, lower: str, upper: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.kill_child", "run", operation, lower, upper],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )


def _ready(child: subprocess.Popen) -> None:
    assert child.stdout is not None and child.stdout.readline() == "ready\n"


@pytest.mark.parametrize("operation", sorted(kill_child.OPERATIONS))
def test_sigkill_anywhere_leaves_the_state_before_or_after(templates, tmp_path, operation):
    before, after = _expected(templates, str(tmp_path / "expected"), operation)
    chance = random.Random("%s %d" % (operation, KILLS))  # reproducible, different per operation
    # every child starts (imports, opens its overlay) at once; each then runs on its own copy
    children = []
    for trial in range(KILLS + 1):
        lower, upper = _copy(templates, str(tmp_path / ("trial%d" % trial)))
        children.append((lower, upper, _child(operation, lower, upper)))
    for _lower, _upper, child in children:
        _ready(child)
    # trial 0 calibrates: how long the operation itself takes, to aim the kills
    lower, upper, child = children[0]
    out, _ = child.communicate("go\n", timeout=300)
    assert child.returncode == 0 and out.startswith("done "), out
    duration = float(out.split()[1])
    trials: List[Tuple[str, str, bool]] = [(lower, upper, True)]
    for lower, upper, child in children[1:]:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
        time.sleep(chance.uniform(0, duration * 1.2))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=60)
        trials.append((lower, upper, out.startswith("done ")))
    verifier = subprocess.run(
        [sys.executable, "-m", "tests.support.kill_child", "verify"] + [d for lower, upper, _ in trials for d in (lower, upper)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert verifier.returncode == 0, verifier.stderr
    results = [json.loads(line) for line in verifier.stdout.splitlines()]
    assert len(results) == len(trials)
    ended_before = ended_after = finished = 0
    for number, ((_lower, _upper, done), result) in enumerate(zip(trials, results)):
        assert not result["problems"], "trial %d of %s: %s" % (number, operation, result["problems"])
        shown = result["view"]
        assert shown in (before, after), "trial %d of %s shows neither before nor after" % (number, operation)
        if done:
            assert shown == after, "trial %d of %s: the operation returned, its change is lost" % (number, operation)
        if number:
            finished += done
            ended_before += shown == before and shown != after
            ended_after += shown == after
    KILL_COUNTS[operation] = (KILLS, ended_before, ended_after, finished)
    COUNTS["real kills: " + operation] = "%d kills (%.3f s op): before %d, after %d (%d had returned)" % (
        KILLS, duration, ended_before, ended_after, finished)
    print("\nreal kills: %s: %d kills in %.3f s, view before %d, after %d (%d after it returned)"
          % (operation, KILLS, duration, ended_before, ended_after, finished))
