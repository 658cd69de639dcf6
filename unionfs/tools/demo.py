"""``unionfs demo``: the classic overlayfs walkthrough, on an embedded sample template.

It lays the template out as a real ``lower/`` directory next to an empty ``upper/``,
mounts an :class:`~unionfs.OverlayFS` over them, and shows lower, upper and merged side
by side while it creates, modifies and deletes, discards, and makes a directory opaque.
Every claim it prints (the lower is untouched, discard restores it, the opaque
directory is empty) is checked, and a failed check makes the demo exit with code 1.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

from .. import _fsimport  # noqa: F401
from fs.base import FS
from fs.osfs import OSFS

from .render import CHANGE_LETTERS, tree_lines
from ..overlay import OverlayFS
from ..testing.trees import make_tree, snapshot

#: the sample template: path -> content
SAMPLE_TEMPLATE: Dict[str, str] = {
    "etc/hostname": "lowerbox\n",
    "etc/motd": "Welcome! This line comes from the lower layer.\n",
    "etc/app/config.ini": "[app]\ndebug = false\nworkers = 4\n",
    "etc/app/plugins.ini": "[plugins]\nenabled = core\n",
    "usr/share/doc/README": "The sample template: the read-only lower layer of the demo.\n",
    "var/log/old.log": "an old log line that the demo deletes\n",
}


class DemoCheckFailed(Exception):
    """Something the demo claims did not hold."""


def run_demo(out: TextIO, keep: Optional[str] = None, width: int = 120) -> int:
    """Run the walkthrough, printing to ``out``; work in ``keep`` (and keep it) or a temp dir."""
    workdir = os.path.abspath(keep) if keep else tempfile.mkdtemp(prefix="unionfs-demo-")
    try:
        _Walkthrough(out, workdir, width).run()
    except DemoCheckFailed as error:
        out.write("\nCHECK FAILED: %s\n" % error)
        return 1
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if keep:
        out.write("\nThe layers are kept in %s (lower/ and upper/).\n" % workdir)
    return 0


class _Walkthrough:
    def __init__(self, out: TextIO, workdir: str, width: int) -> None:
        self.out, self.workdir, self.width = out, workdir, width
        self.lower_dir, self.upper_dir = os.path.join(workdir, "lower"), os.path.join(workdir, "upper")

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def step(self, title: str) -> None:
        self.say()
        self.say("== " + title + " " + "=" * max(0, self.width - len(title) - 4))

    def action(self, code: str, effect: str) -> None:
        self.say("  >>> %-52s # %s" % (code, effect))

    def check(self, condition: bool, claim: str) -> None:
        if not condition:
            raise DemoCheckFailed(claim)
        self.say("  ok: " + claim)

    def show(self, *columns: Tuple[str, FS, bool]) -> None:
        self.say()
        drawn = [(title, ["/"] + tree_lines(layer, show_reserved=raw)) for title, layer, raw in columns]
        self.say(side_by_side(drawn, self.width))

    def run(self) -> None:
        self._lay_out_template()
        lower, upper = OSFS(self.lower_dir), OSFS(self.upper_dir)
        pristine = fingerprint(lower)
        self.say("unionfs demo: Linux overlayfs semantics on PyFilesystem2 (work dir %s)" % self.workdir)

        self.step("1. The lower layer (the embedded sample template) and an empty upper")
        self.show(("lower/", lower, True), ("upper/", upper, True))

        self.step("2. Mount the overlay: the merged view shows the lower")
        self.action("overlay = OverlayFS(lower, upper=upper)", "lowers first; writes go to the upper")
        overlay = OverlayFS(lower, upper=upper)
        self.show(("lower/", lower, True), ("upper/", upper, True), ("merged view", overlay, False))

        self.step("3. Change things through the merged view")
        self.action('overlay.makedir("/srv")', "a new directory: upper only")
        overlay.makedir("/srv")
        self.action('overlay.writetext("/srv/hello.txt", "hello")', "a new file: upper only")
        overlay.writetext("/srv/hello.txt", "hello from the upper layer\n")
        self.action('overlay.appendtext("/etc/motd", "...")', "copy-up: the lower file is copied, then changed")
        overlay.appendtext("/etc/motd", "This line was added through the overlay.\n")
        self.action('overlay.remove("/var/log/old.log")', "a whiteout record in the upper's /.unionfs")
        overlay.remove("/var/log/old.log")
        self.show(("lower/", lower, True), ("upper/ (with its sidecar)", upper, True), ("merged view", overlay, False))
        self.say()
        self.say("  lower/etc/motd:       %r" % lower.readtext("etc/motd"))
        self.say("  merged /etc/motd:     %r" % overlay.readtext("etc/motd"))
        self.say()
        self.say("  The change set (overlay.changes(); `unionfs diff` prints the same):")
        changes = overlay.changes()
        for change in changes:
            self.say("    %s %s%s" % (CHANGE_LETTERS[change.kind], change.path, "/" if change.is_dir else ""))
        self.check(changes.deleted == ("/var/log/old.log",) and changes.modified == ("/etc/motd",),
                   "the change set names the deleted and the modified file")
        self.check(not overlay.exists("/var/log/old.log") and lower.exists("var/log/old.log"),
                   "old.log is gone from the merged view but still in the lower")
        self.check(fingerprint(lower) == pristine, "the lower is untouched (every path and SHA-256 as before)")

        self.step("4. Discard: empty the upper, back to the pristine lower")
        self.action("overlay.discard()", "removes the upper's entries and records")
        overlay.discard()
        self.show(("lower/", lower, True), ("upper/", upper, True), ("merged view", overlay, False))
        self.check(fingerprint(overlay) == pristine, "the merged view equals the lower again")

        self.step("5. Make a directory opaque: nothing of the lower shows through it")
        self.action('overlay.make_opaque("/etc/app")', "an opaque record for /etc/app in the upper")
        overlay.make_opaque("/etc/app")
        self.show(("lower/", lower, True), ("upper/ (with its sidecar)", upper, True), ("merged view", overlay, False))
        self.check(overlay.listdir("/etc/app") == [], "/etc/app is empty in the merged view")
        self.check(sorted(lower.listdir("etc/app")) == ["config.ini", "plugins.ini"], "the lower still has its files")
        self.check(fingerprint(lower) == pristine, "the lower is untouched")
        overlay.close()
        self.say()
        self.say("Done. Try the same on your own layers: unionfs tree -l LOWER -u UPPER; unionfs diff ...; unionfs --help")

    def _lay_out_template(self) -> None:
        os.makedirs(self.upper_dir, exist_ok=True)
        if os.listdir(self.upper_dir) or (os.path.isdir(self.lower_dir) and os.listdir(self.lower_dir)):
            raise DemoCheckFailed("%s must be empty or new" % self.workdir)
        os.makedirs(self.lower_dir, exist_ok=True)
        with OSFS(self.lower_dir) as lower:
            make_tree(lower, SAMPLE_TEMPLATE)


def side_by_side(columns: Sequence[Tuple[str, List[str]]], width: int) -> str:
    """Columns of lines under their titles, each cut to fit ``width`` characters in all."""
    gap = "   "
    column_width = (width - len(gap) * (len(columns) - 1)) // len(columns)
    height = max(len(lines) for _, lines in columns)
    rows = [[title for title, _ in columns], ["-" * min(column_width, max(len(title), 12)) for title, _ in columns]]
    for index in range(height):
        rows.append([lines[index] if index < len(lines) else "" for _, lines in columns])
    return "\n".join(gap.join(_fit(cell, column_width) for cell in row).rstrip() for row in rows)


def _fit(text: str, width: int) -> str:
    return text.ljust(width) if len(text) <= width else text[: width - 1] + "…"


def fingerprint(layer: FS) -> Dict[str, str]:
    """Every visible path with its type or the SHA-256 of its content (the sidecar left out)."""
    return snapshot(layer, lambda fs, path, info: "dir" if info.is_dir else hashlib.sha256(fs.readbytes(path)).hexdigest())
