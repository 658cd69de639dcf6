"""The child process of the real-kill campaign (``tests/reliability/test_real_kills.py``).

``python -m tests.support.kill_child run OPERATION LOWER UPPER`` opens an overlay, prints
``ready``, waits for a line on stdin, runs the operation and prints ``done`` (the parent
SIGKILLs it somewhere in between). ``verify LOWER UPPER [LOWER UPPER ...]`` reopens each
killed upper in a fresh overlay (which rolls the journal forward and empties staging),
runs fsck twice and prints one JSON line per upper: its view and every problem found.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List

import unionfs  # noqa: F401
from fs.osfs import OSFS

from unionfs import OverlayFS
from unionfs.testing import trees

from tests.support.reliability_support import sidecar_problems, upper_rule_problems, view

#: every entry the templates make gets this mtime, so the views can tell kept times from new ones
OLD_MTIME = 500_000_000
BIG = 4 << 20  # bytes: enough that copying it takes several write calls


def _data(seed: str, size: int) -> bytes:
    block = hashlib.sha256(seed.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def build(lower_dir: str, upper_dir: str) -> None:
    """The templates: an on-disk lower with a big file and a tree; an upper that already
    changed the tree (an upper-only file in a merged directory, a whiteout, an opaque directory)."""
    spec = {"big": _data("big", BIG), "f": b"a lower file"}
    for top in ("a", "b", "c"):
        for sub in ("x", "y"):
            for number in range(4):
                spec["t/%s/%s/%d" % (top, sub, number)] = _data("%s%s%d" % (top, sub, number), 3000)
    lower = trees.make_tree(OSFS(lower_dir, create=True), spec)
    upper = OverlayFS(lower, OSFS(upper_dir, create=True))
    upper.writebytes("t/a/x/upper-only", b"upper")
    upper.remove("t/b/y/0")
    upper.make_opaque("t/c/y")
    upper.writebytes("t/c/y/new", b"in the opaque dir")
    upper.writebytes("u", b"an upper file")
    for path in list(upper.walk.files()) + list(upper.walk.dirs()):
        upper.setinfo(path, {"details": {"modified": OLD_MTIME}})
    upper.close()
    for directory, dirs, files in os.walk(lower_dir):
        for name in dirs + files:
            os.utime(os.path.join(directory, name), (OLD_MTIME, OLD_MTIME))


OPERATIONS: Dict[str, Callable[[OverlayFS, Any], Any]] = {
    "copy-up": lambda o, lower: o.setinfo("big", {"details": {"modified": 1000}}),
    "writebytes": lambda o, lower: o.writebytes("big", _data("new", BIG)),
    "writetext": lambda o, lower: o.writetext("t/a/new.txt", "a new text file\n" * 100_000),
    "movedir of a merged tree": lambda o, lower: o.movedir("t/a", "t/b", create=True),
    "removetree": lambda o, lower: o.removetree("t"),
    "remove": lambda o, lower: o.remove("t/a/x/1"),
    "discard": lambda o, lower: o.discard(),
    "commit into the lower": lambda o, lower: o.commit(lower, into_lower=True),
}


def comparable(overlay: OverlayFS) -> Dict[str, List[Any]]:
    """The view with times made by the run itself written ``"new"`` (they differ per run)."""
    state = {}
    for path, shown in view(overlay).items():
        entry = list(shown)
        if entry[-1] > 1_000_000_000:
            entry[-1] = "new"
        state[path] = entry
    return state


def verify(lower_dir: str, upper_dir: str) -> Dict[str, Any]:
    problems: List[str] = []
    upper = OSFS(upper_dir)
    overlay = OverlayFS(OSFS(lower_dir), upper)
    state = comparable(overlay)
    first = overlay.fsck()  # what an interruption leaves hides nothing: repairing keeps the view
    fresh = OverlayFS(OSFS(lower_dir), upper)
    if comparable(overlay) != state or comparable(fresh) != state:
        problems.append("fsck changed the view: %s" % first)
    fresh.close()
    second = overlay.fsck()
    if not second.clean:
        problems.append("a second fsck still finds: %s" % second)
    problems += sidecar_problems(upper)
    problems += upper_rule_problems(upper, view(overlay))
    overlay.close()
    return {"view": state, "problems": problems, "recovered": [finding.kind for finding in first.findings]}


def main(argv: List[str]) -> int:
    if argv[0] == "run":
        operation, lower_dir, upper_dir = argv[1:4]
        lower = OSFS(lower_dir)
        overlay = OverlayFS(lower, OSFS(upper_dir))
        print("ready", flush=True)
        sys.stdin.readline()
        started = time.monotonic()
        OPERATIONS[operation](overlay, lower)
        print("done %.6f" % (time.monotonic() - started), flush=True)
        overlay.close()
        return 0
    pairs = argv[1:]
    for lower_dir, upper_dir in zip(pairs[0::2], pairs[1::2]):
        print(json.dumps(verify(lower_dir, upper_dir)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
