"""Layer-format costs: indexing a large image layer (plain and gzip), lazy member reads,
export as a layer; reading and exporting kernel-format directories.

Run: ``.venv/bin/python benchmarks/bench_oci.py [files]``. Prints seconds; asserts nothing.
"""

from __future__ import annotations

import io
import os
import random
import sys
import tarfile
import tempfile
import time

import unionfs  # noqa: F401
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS

from unionfs import OverlayFS


def make_layer(path: str, files: int, compression: str) -> None:
    with tarfile.open(path, "w:gz" if compression == "gzip" else "w") as archive:
        for directory in range(files // 100):
            info = tarfile.TarInfo("d%04d" % directory)
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
            for number in range(100):
                data = (b"%06d" % (directory * 100 + number)) * 170  # ~1 KiB
                info = tarfile.TarInfo("d%04d/f%03d" % (directory, number))
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))


def timed(label: str, action) -> float:
    start = time.perf_counter()
    result = action()
    elapsed = time.perf_counter() - start
    print("%-48s %8.3f s" % (label, elapsed))
    return result


def main(files: int) -> None:
    with tempfile.TemporaryDirectory() as work:
        for compression in ("", "gzip"):
            path = os.path.join(work, "layer.tar" + (".gz" if compression else ""))
            make_layer(path, files, compression)
            size = os.path.getsize(path) / 1e6
            overlay = timed("index %d files, %s (%.1f MB)" % (files, compression or "plain", size),
                            lambda: OverlayFS.from_oci([path], upper=MemoryFS()))
            names = ["d%04d/f%03d" % (n // 100, n % 100) for n in range(files)]
            timed("  read all %d in archive order" % files, lambda: [overlay.readbytes(n) for n in names])
            sample = random.Random(1).sample(names, 200)
            timed("  read 200 in random order", lambda: [overlay.readbytes(n) for n in sample])
            timed("  listdir + getinfo of every entry", lambda: [list(overlay.scandir(d, ["details"])) for d in overlay.listdir("/")])
            for name in names[: files // 10]:
                overlay.writetext(name, "changed")
            timed("  export_layer of %d changed files" % (files // 10), lambda: overlay.export_layer(io.BytesIO(), mtime=0))
            overlay.close()
        kernel_dir = os.path.join(work, "kernel-lower")
        with OverlayFS.from_oci([os.path.join(work, "layer.tar")], upper=OSFS(kernel_dir, create=True)) as flat:
            for name in flat.listdir("/"):
                flat.makedir(name, recreate=True)  # copy-up the directories; files follow
            for name in ["d%04d/f%03d" % (n // 100, n % 100) for n in range(files)]:
                flat.copy(name, name, overwrite=True)
        os.rename(os.path.join(kernel_dir, ".unionfs"), os.path.join(work, "sidecar-aside"))
        overlay = timed("from_kernel over %d files" % files, lambda: OverlayFS.from_kernel([kernel_dir], upper=MemoryFS()))
        timed("  walk every entry", lambda: sum(1 for _ in overlay.walk.files()))
        for name in list(overlay.walk.files())[: files // 10]:
            overlay.remove(name)
        timed("  export_kernel with %d whiteouts" % (files // 10), lambda: overlay.export_kernel(os.path.join(work, "kupper")))
        overlay.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
