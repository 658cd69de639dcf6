"""Small writes through ``unionfs mount``: ``dd bs=4k`` onto a new file, against the kernel's
overlayfs and fuse-overlayfs, side by side in one run.

    python -m benchmarks.mount_writes [--mib 80] [--repeat 5] [--baseline CHECKOUT]

Before every write(2) to a file the kernel asks a FUSE filesystem that serves xattrs for the
file's ``security.capability`` (``file_remove_privs``; only ``FUSE_HANDLE_KILLPRIV_V2``, which
libfuse 3.14 cannot negotiate, spares that request). The mount answers it from a per-path
negative cache (``Operations.no_capability``), and ``--noxattrs`` serves no xattrs at all (the
kernel then stops asking). Systems: the kernel, fuse-overlayfs, ``unionfs``, ``unionfs
--noxattrs`` and, with ``--baseline CHECKOUT``, the mount of another source tree of this project
(``git archive OLD | tar x -C CHECKOUT``), so that a change is measured before and after at the
same load. Each run is a fresh mount over an empty lower; the systems take turns, ``--repeat``
rounds, and the best and median seconds are printed with the ratio to the kernel's best.
Needs root, fuse3 and fuse-overlayfs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

from .mount import BASELINE, mounted, timed

SYSTEMS: Tuple[Tuple[str, str, Tuple[str, ...]], ...] = (
    ("kernel", "kernel", ()),
    ("fuse-overlayfs", "fuse-overlayfs", ()),
    ("unionfs", "unionfs", ()),
    ("unionfs --noxattrs", "unionfs", ("--noxattrs",)),
)


def run(mib: int, repeat: int, python: str, baseline: Optional[str]) -> Dict[str, List[float]]:
    root = tempfile.mkdtemp(prefix="unionfs-bench-writes-")
    lower = os.path.join(root, "lower")
    os.mkdir(lower)
    systems = SYSTEMS + (((BASELINE, BASELINE, ()),) if baseline else ())
    times: Dict[str, List[float]] = {label: [] for label, _, _ in systems}
    blocks = mib * 256
    try:
        for _ in range(repeat):
            for label, system, options in systems:
                with mounted(system, [lower], root, python, baseline, options) as view:
                    target = os.path.join(view, "written")
                    times[label].append(timed(lambda: subprocess.run(
                        ["dd", "if=/dev/zero", "of=" + target, "bs=4k", "count=%d" % blocks, "status=none"],
                        check=True)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return times


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=80, help="MiB written (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", metavar="CHECKOUT", help="also mount this source tree of the project")
    args = parser.parse_args(argv)
    times = run(args.mib, args.repeat, sys.executable, args.baseline and os.path.abspath(args.baseline))
    kernel = min(times["kernel"])
    print("dd bs=4k of %d MiB onto a new file, %d rounds" % (args.mib, args.repeat))
    print("| system | best s | median s | best / kernel's |")
    print("|---|---|---|---|")
    for label, values in times.items():
        print("| %s | %.2f | %.2f | %.1f |" % (label, min(values), statistics.median(values), min(values) / kernel))
    return 0


if __name__ == "__main__":
    sys.exit(main())
