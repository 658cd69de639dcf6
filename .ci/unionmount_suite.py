"""Run the kernel community's unionmount-testsuite, unchanged, against ``unionfs mount``.

    python .ci/unionmount_suite.py [MODE ...]      # modes: ov ov10 samefs (default: all three)

The suite (``../shared/unionmount-testsuite`` beside the checkout, or the directory named by
``UNIONFS_UNIONMOUNT_SUITE``) mounts with ``mount -t fuse.unionfs ... -olowerdir=...,upperdir=...,
workdir=...``, so ``unionfs install-mount-helper`` must have run. It is copied to a temporary
directory first (it writes ``__pycache__`` into its own tree, and CI's copy has no write
bits), run once per mode with ``UNIONMOUNT_BASEDIR`` an empty temporary directory, and the
mount it leaves behind is unmounted. Prints one count line per mode; exits non-zero if any
mode failed, or if the suite cannot run and ``UNIONFS_REQUIRE_MOUNT=1`` (CI) says it must.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = {
    "ov": ["--ov", "--fuse=unionfs"],
    "ov10": ["--ov=10", "--fuse=unionfs"],
    "samefs": ["--ov", "--fuse=unionfs", "--samefs"],
}
HEADER = re.compile(r"^\*\*\* (\./run|\S*run) (.*) (\S+)$")


def suite_dir() -> str:
    return os.path.abspath(os.environ.get("UNIONFS_UNIONMOUNT_SUITE")
                           or os.path.join(ROOT, "..", "shared", "unionmount-testsuite"))


def why_not() -> Optional[str]:
    """Why the suite cannot run here, or None."""
    if not os.path.isfile(os.path.join(suite_dir(), "run")):
        return "no unionmount-testsuite at %s (set UNIONFS_UNIONMOUNT_SUITE)" % suite_dir()
    if os.geteuid() != 0:
        return "the suite mounts tmpfs and changes users: it needs root"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if not os.path.exists("/sbin/mount.fuse.unionfs"):
        return "no /sbin/mount.fuse.unionfs (run: unionfs install-mount-helper)"
    return None


def expected_tests(copy: str) -> int:
    """How many tests the suite's ``run`` runs for a FUSE overlay: its ``tests = [...]`` and the
    directory renames it adds where redirect_dir is on (as --fuse has it). A mode that passes
    but ran fewer has skipped some, which counts as a failure."""
    with open(os.path.join(copy, "run")) as script:
        text = script.read()
    listings = [re.search(r"^tests = \[(.*?)\]", text, re.S | re.M),
                re.search(r"^else:\s*tests \+= \[(.*?)\]", text, re.S | re.M)]
    return sum(len(re.findall(r'"([^"]+)"', listing.group(1))) for listing in listings if listing)


def _unmount_below(base: str) -> None:
    with open("/proc/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(base + "/")]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def run_mode(copy: str, mode: str, log_dir: str) -> Tuple[bool, int, int, str]:
    """(passed, tests passed, tests run, log path) of one mode."""
    base = tempfile.mkdtemp(prefix="unionmount-base-")
    os.chmod(base, 0o755)  # the suite's tests as the bin user must reach the mount (mkdtemp: 0700)
    log_path = os.path.join(log_dir, "unionmount-%s.log" % mode)
    env = dict(os.environ, UNIONMOUNT_BASEDIR=base)
    try:
        with open(log_path, "w") as log:
            done = subprocess.run([sys.executable, "./run"] + MODES[mode], cwd=copy, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=1800)
        ok = done.returncode == 0
    except subprocess.TimeoutExpired:
        ok = False
    finally:
        _unmount_below(base)
        shutil.rmtree(base, ignore_errors=True)
    with open(log_path) as log:
        names: List[str] = []
        for line in log:
            match = HEADER.match(line.rstrip("\n"))
            if match:
                names.append(match.group(3))
    run = len(dict.fromkeys(names))
    passed = run if ok else max(run - 1, 0)  # the suite stops at the first failing test
    return ok, passed, run, log_path


def main(argv: List[str]) -> int:
    modes = argv or list(MODES)
    reason = why_not()
    if reason is not None:
        print("unionmount-testsuite: not run: %s" % reason)
        return 1 if os.environ.get("UNIONFS_REQUIRE_MOUNT") == "1" else 0
    log_dir = tempfile.mkdtemp(prefix="unionmount-logs-")
    copy = os.path.join(tempfile.mkdtemp(prefix="unionmount-suite-"), "unionmount-testsuite")
    shutil.copytree(suite_dir(), copy)
    for path, dirs, files in os.walk(copy):  # CI's shared/ has no write bits; the copy needs them
        os.chmod(path, 0o755)
    failed = False
    expected = expected_tests(copy)
    for mode in modes:
        started = time.monotonic()
        ok, passed, run, log_path = run_mode(copy, mode, log_dir)
        skipped = ok and run < expected
        print("unionmount-testsuite ./run %s: %d of %d tests passed%s (%.0f s)" % (
            " ".join(MODES[mode]), passed, run,
            " (stopped at a failure)" if not ok else " (the suite lists %d: some did not run)" % expected if skipped else "",
            time.monotonic() - started), flush=True)
        ok = ok and not skipped
        if not ok:
            failed = True
            with open(log_path) as log:
                print("".join(log.readlines()[-25:]), end="")
    shutil.rmtree(os.path.dirname(copy), ignore_errors=True)
    if failed:
        print("unionmount-testsuite: the whole logs are in %s" % log_dir)
        return 1
    shutil.rmtree(log_dir, ignore_errors=True)  # (kept only to read a failure)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
