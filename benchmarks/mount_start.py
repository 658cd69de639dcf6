"""How long ``mount -t fuse.unionfs`` takes to start and to stop, as the unionmount-testsuite
uses it (one mount per remount: hundreds in ``./run --ov=10``).

    python -m benchmarks.mount_start [--mounts N] [--layers L] [--drop-caches]

Runs this checkout's ``python -m unionfs mount.fuse SOURCE MOUNTPOINT -o lowerdir=...,upperdir=...,
workdir=...`` (what ``/sbin/mount.fuse.unionfs`` execs, without mount(8) in between), ``N`` times
over ``L`` lowers, and prints the median and best seconds until the command returned (the mount
is ready: its daemon answered FUSE's INIT), of ``umount``, and the CPU seconds of the starting
process. ``--drop-caches`` drops the page cache before each mount, as the suite's remount does
(then every module is read from disk again). Needs root and /dev/fuse.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mounts", type=int, default=10)
    parser.add_argument("--layers", type=int, default=1, help="lowers (the suite's --ov=10 stacks up to 11)")
    parser.add_argument("--drop-caches", action="store_true")
    args = parser.parse_args(argv)
    base = tempfile.mkdtemp(prefix="unionfs-mount-start-")
    lowers = []
    for index in range(args.layers):
        lower = os.path.join(base, "l%d" % index)
        os.makedirs(os.path.join(lower, "a", "b"))
        with open(os.path.join(lower, "a", "f%d" % index), "w") as out:
            out.write("x")
        lowers.append(lower)
    upper, work, mnt = (os.path.join(base, name) for name in ("u", "w", "m"))
    for directory in (upper, work, mnt):
        os.mkdir(directory)
    command = [sys.executable, "-m", "unionfs", "mount.fuse", "unionfs", mnt, "-o",
               "lowerdir=%s,upperdir=%s,workdir=%s" % (":".join(lowers), upper, work)]
    starts: List[float] = []
    stops: List[float] = []
    cpus: List[float] = []
    try:
        for _ in range(args.mounts):
            if args.drop_caches:
                with open("/proc/sys/vm/drop_caches", "w") as drop:
                    drop.write("3\n")
            cpu, started = _cpu(), time.perf_counter()
            subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
            starts.append(time.perf_counter() - started)
            cpus.append(_cpu() - cpu)
            os.listdir(mnt)
            started = time.perf_counter()
            subprocess.run(["umount", mnt], check=True)
            stops.append(time.perf_counter() - started)
    finally:
        if os.path.ismount(mnt):
            subprocess.run(["umount", "-l", mnt])
    with open("/proc/loadavg") as load:
        loadavg = load.read().split()[0]
    print("mount start: median %.3f s, best %.3f s; umount: median %.3f s; starting process CPU: median %.3f s "
          "(%d mounts, %d lowers%s, load %s)" % (
              statistics.median(starts), min(starts), statistics.median(stops), statistics.median(cpus),
              args.mounts, args.layers, ", page cache dropped" if args.drop_caches else "", loadavg))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
