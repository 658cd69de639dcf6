"""``python -m benchmarks.probe SYSTEM STACK_JSON``: one copy-up in a process of its own.

Prints ``{"seconds": ..., "peak_mib": ...}``: the time of the copy-up alone and how far
the process's peak resident set (VmHWM, reset just before) rose above its resident set
just before it.
"""

import gc
import json
import os
import shutil
import sys
import tempfile
import time

from .systems import Stack, all_systems
from .workloads import copy_up_once


def _status_kib(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status``: VmRSS (now) or VmHWM (peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError("no %s in /proc/self/status" % field)


def _reset_peak() -> None:
    """Make VmHWM start again from the current resident set (Linux 4.0+). ``ru_maxrss`` will
    not do: a child inherits its parent's peak across fork and exec."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def main() -> int:
    name, stack_json = sys.argv[1:3]
    fields = json.loads(stack_json)
    stack = Stack(tempfile.mkdtemp(prefix="probe-", dir=fields["scratch"]), os_lowers=fields["os_lowers"])
    (system,) = [system for system in all_systems(stack.scratch, probe=False) if system.name == name]
    size = os.path.getsize(os.path.join(stack.os_lowers[0], "big.bin"))
    try:
        with system.view(stack) as view:
            os.sync()  # no writeback of earlier runs competes with this one, nor (after a
            time.sleep(0.5)  # moment) the discards of their deleted copies
            os.sync()
            gc.collect()
            _reset_peak()
            before = _status_kib("VmRSS")
            start = time.perf_counter()
            copy_up_once(view, size)
            seconds = time.perf_counter() - start
            after = _status_kib("VmHWM")
    finally:
        shutil.rmtree(stack.scratch, ignore_errors=True)
    print(json.dumps({"seconds": seconds, "peak_mib": max(0, after - before) / 1024.0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
