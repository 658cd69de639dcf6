"""Workloads, their data sets and their sizes.

A :class:`Workload` runs against a :class:`~benchmarks.systems.View` and returns
one value per metric: seconds per operation (``s/op``), bytes per second (``B/s``)
or mebibytes (``MiB``). Warm workloads run once untimed on the same view first
(caches filled), cold ones are timed on a freshly opened view.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable, Collection, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import attr

import unionfs  # noqa: F401
from fs import errors
from fs.base import FS
from fs.copy import copy_file
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS
from fs.walk import Walker
from unionfs.core.sidecar import WHITEOUT, Sidecar

from .systems import Stack, System, View

CHUNK = 1024 * 1024
#: a warm sample is the best of this many back-to-back passes: bursts of load from other
#: processes hit single passes, and the median over repeats absorbs the rest
WARM_PASSES = 3
#: the scaling curves' passes are short (a few ms), so they take more of them
SCALING_PASSES = 7
Data = Union[bytes, int]  # content, or a size to fill with a fixed pattern
LayerFiles = List[Tuple[str, Data]]


@attr.s(frozen=True, slots=True)
class Sizes:
    """Sizes of every data set; the presets below are what ``--quick``/``--toy`` select."""

    depth: int = attr.ib()  # directory depth of the lookup files
    deep_files: int = attr.ib()  # files looked up at that depth
    small_files: int = attr.ib()  # small files read, and new files written
    small_size: int = attr.ib()
    large_bytes: int = attr.ib()  # the one large file read
    wide_entries: int = attr.ib()  # entries of the merged directory listed
    tree_files: int = attr.ib()  # files of the merged tree walked
    removed: int = attr.ib()  # lower files removed (whiteouts), then listed
    copyup_bytes: int = attr.ib()
    lowers_points: Tuple[int, ...] = attr.ib()
    whiteout_points: Tuple[int, ...] = attr.ib()
    repeats: int = attr.ib()
    scaling_ops: int = attr.ib(default=100)  # lookups/removals timed per scaling point
    #: the real-data workloads (issue 11): a tree used as the one lower ("" = a small
    #: synthetic one), paths sampled from it, whiteouts made over it, and the tree archived
    usr_root: str = attr.ib(default="/usr")
    usr_samples: int = attr.ib(default=10_000)
    usr_whiteouts: int = attr.ib(default=100_000)
    many_lowers: int = attr.ib(default=500)
    archive_root: str = attr.ib(default="/usr/share/doc")


PRESETS = {
    "full": Sizes(8, 2000, 2000, 4096, 256 * CHUNK, 10_000, 20_000, 10_000, 1024 * CHUNK,
                  (1, 10, 100, 1000), (100, 1000, 10_000, 100_000), 5),
    "quick": Sizes(8, 500, 500, 4096, 32 * CHUNK, 10_000, 5_000, 2_000, 64 * CHUNK,
                   (1, 10, 100), (100, 1000, 10_000), 3, usr_samples=2000, usr_whiteouts=20_000, many_lowers=100,
                   archive_root="/usr/share/doc/python3"),
    "toy": Sizes(3, 12, 12, 512, 2 * CHUNK, 30, 40, 10, 3 * CHUNK, (1, 3), (10, 30), 1, scaling_ops=5,
                 usr_root="", usr_samples=50, usr_whiteouts=80, many_lowers=4, archive_root=""),
}


@attr.s(slots=True)
class Context:
    sizes: Sizes = attr.ib()
    stack: Stack = attr.ib()
    round: int = attr.ib(default=0)  # unique per call: mutating workloads pick fresh names


@attr.s(frozen=True, slots=True)
class Workload:
    name: str = attr.ib()
    title: str = attr.ib()  # says what and how big
    metrics: Tuple[Tuple[str, str], ...] = attr.ib()  # (metric, unit)
    stack: str = attr.ib()  # key of the data set in STACKS
    run: Callable[[Optional[View], Context], Dict[str, float]] = attr.ib()
    kinds: Tuple[str, ...] = attr.ib()  # system kinds that take part
    warm: bool = attr.ib(default=True)
    families: Tuple[str, ...] = attr.ib(default=("mem", "os"))
    x: Optional[int] = attr.ib(default=None)  # the scaling parameter, for curves
    series: Optional[str] = attr.ib(default=None)
    in_subprocess: bool = attr.ib(default=False)  # runs its own view in a probe process
    #: opens what it measures itself (``run(None, ctx, system=...)``), like the probe workloads
    own_view: bool = attr.ib(default=False)
    passes: int = attr.ib(default=WARM_PASSES)  # timed passes per warm sample (the best counts)
    #: at most this many repeats (the real-data walks take seconds per sample)
    max_repeats: Optional[int] = attr.ib(default=None)


# -- materialising data sets ------------------------------------------------------------------------

_PATTERN = bytes(range(256)) * (CHUNK // 256)


def _chunks(data: Data) -> Iterator[bytes]:
    if isinstance(data, bytes):
        yield data
        return
    left = data
    while left > 0:
        yield _PATTERN[: min(left, CHUNK)]
        left -= CHUNK


def _write_mem(layer: FS, files: LayerFiles, dirs: Sequence[str]) -> None:
    for path in dirs:
        layer.makedirs(path, recreate=True)
    for path, data in files:
        layer.makedirs(os.path.dirname(path), recreate=True)
        with layer.openbin(path, "w") as out:
            for chunk in _chunks(data):
                out.write(chunk)


def _write_os(root: str, files: LayerFiles, dirs: Sequence[str]) -> None:
    os.makedirs(root, exist_ok=True)
    made = set()
    for path in list(dirs) + [os.path.dirname(p) for p, _ in files]:
        if path not in made:
            os.makedirs(root + path, exist_ok=True)
            made.add(path)
    for path, data in files:
        with open(root + path, "wb") as out:
            for chunk in _chunks(data):
                out.write(chunk)


def materialise(
    scratch: str,
    layers: List[LayerFiles],
    dirs: Sequence[Sequence[str]] = (),
    families: Sequence[str] = ("mem", "os"),
    flat: bool = True,
) -> Stack:
    """Write the lowers (topmost first) for each family, and a flat copy (topmost wins)."""
    stack = Stack(scratch)
    dirs = list(dirs) or [[] for _ in layers]
    merged: Dict[str, Data] = {}
    for files in reversed(layers):
        merged.update(files)
    flat_files = sorted(merged.items())
    all_dirs = sorted({d for layer_dirs in dirs for d in layer_dirs})
    if "mem" in families:
        for files, layer_dirs in zip(layers, dirs):
            layer = MemoryFS()
            _write_mem(layer, files, layer_dirs)
            stack.mem_lowers.append(layer)
        if flat:
            stack.mem_flat = MemoryFS()
            _write_mem(stack.mem_flat, flat_files, all_dirs)
    if "os" in families:
        width = len(str(len(layers)))
        for position, (files, layer_dirs) in enumerate(zip(layers, dirs)):
            root = os.path.join(scratch, "L", str(position).zfill(width))
            _write_os(root, files, layer_dirs)
            stack.os_lowers.append(root)
        if flat:
            stack.os_flat = os.path.join(scratch, "flat")
            _write_os(stack.os_flat, flat_files, all_dirs)
    return stack


def _deep_dir(sizes: Sizes) -> str:
    return "/deep" + "".join("/d%d" % level for level in range(sizes.depth - 1))


def build_three(sizes: Sizes, scratch: str) -> Stack:
    """The 3-layer stack: deep files, small files, a large file, a wide dir and a tree, each
    spread over the three lowers with their directories merged."""
    layers: List[LayerFiles] = [[], [], []]
    dirs: List[List[str]] = [[], [], []]
    deep = _deep_dir(sizes)
    for position in range(3):
        dirs[position] += [deep, "/small", "/wide", "/tree"]
    for index in range(sizes.deep_files):
        layers[index % 3].append(("%s/f%d" % (deep, index), b"deep %d" % index))
    for index in range(sizes.small_files):
        layers[index % 3].append(("/small/s%d" % index, bytes([index % 256]) * sizes.small_size))
    layers[2].append(("/large.bin", sizes.large_bytes))
    for index in range(sizes.wide_entries):
        layers[index % 3].append(("/wide/e%d" % index, b"w"))
        if index % 10 == 0:  # one name in ten exists in a lower layer too, and is hidden by the upper one
            layers[(index + 1) % 3].append(("/wide/e%d" % index, b"shadowed"))
    per_dir = 20
    for index in range(sizes.tree_files):
        directory = "/tree/t%d/u%d" % (index // (per_dir * 10), (index // per_dir) % 10)
        layers[(index // per_dir) % 3].append(("%s/f%d" % (directory, index), b"t"))
        dirs[(index // per_dir + 1) % 3].append(directory)  # the same directory in a second layer
    return materialise(scratch, layers, dirs)


def build_whiteouts(sizes: Sizes, scratch: str) -> Stack:
    """``/gone`` with ``removed`` + 10% lower files spread over three lowers."""
    layers: List[LayerFiles] = [[], [], []]
    total = sizes.removed + max(1, sizes.removed // 10)
    for index in range(total):
        layers[index % 3].append(("/gone/g%d" % index, b"g"))
    return materialise(scratch, layers, flat=False)


def build_lowers(count: int, sizes: Sizes, scratch: str) -> Stack:
    """``count`` lowers, each with its own file in ``/d``; the targets sit in the bottom one."""
    layers: List[LayerFiles] = [[("/d/own%d" % position, b"o")] for position in range(count)]
    layers[-1] += [("/d/t%d" % index, b"t") for index in range(sizes.scaling_ops)]
    return materialise(scratch, layers)


def _victim(ctx: Context, index: int) -> str:
    return "/d/v%d_%d" % (ctx.round, index)


def _max_rounds(sizes: Sizes) -> int:
    """Rounds a system runs a warm workload in: a warm-up and the passes, per repeat."""
    return (SCALING_PASSES + 1) * sizes.repeats + 2


def build_whited(count: int, sizes: Sizes, scratch: str, os_systems: Sequence[str]) -> Stack:
    """One lower with ``count`` whited-out files in ``/d`` plus live ones and victims to remove;
    uppers already holding the ``count`` whiteouts, in each system's own format."""
    whited = ["/d/w%d" % index for index in range(count)]
    live = ["/d/k%d" % index for index in range(sizes.scaling_ops)]
    ctx = Context(sizes, Stack(scratch))
    victims = []
    for ctx.round in range(_max_rounds(sizes)):
        victims += [_victim(ctx, index) for index in range(sizes.scaling_ops)]
    # the flat copy is the raw systems' plain directory of as many names
    stack = materialise(scratch, [[(path, b"x") for path in whited + live + victims]])
    stack.mem_upper = MemoryFS()
    stack.mem_upper.makedir("d")
    _add_records(stack.mem_upper, whited)
    for name in os_systems:
        upper = os.path.join(scratch, "upper-" + name)
        os.makedirs(upper + "/d")
        if name.startswith("unionfs"):
            _add_records(OSFS(upper), whited)
        else:  # the kernel's format: a 0/0 character device per whiteout
            device = os.makedev(0, 0)
            for path in whited:
                os.mknod(upper + path, 0o600 | 0o020000, device)
        stack.os_uppers[name] = upper
    return stack


def _add_records(upper: FS, whited: Sequence[str]) -> None:
    sidecar = Sidecar.open(upper, create=True)
    assert sidecar is not None
    for path in whited:
        sidecar.add_record(path, WHITEOUT)


def build_copyup(sizes: Sizes, scratch: str) -> Stack:
    """One lower with the big file, written back to disk and read once, so that no copy pays
    for the writeback of its creation."""
    stack = materialise(scratch, [[("/big.bin", sizes.copyup_bytes)]], families=("os",), flat=False)
    os.sync()
    with open(os.path.join(stack.os_lowers[0], "big.bin"), "rb") as source:
        while source.read(CHUNK):
            pass
    return stack


# -- the workloads -------------------------------------------------------------------------------------


def _timed(action: Callable[[], int]) -> float:
    """Seconds per operation of ``action`` (which returns how many operations it did), with the
    garbage collector off as ``timeit`` does: a collection's cost depends on everything the
    process holds (the in-memory data sets too), not on the operation timed."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        count = action()
        return (time.perf_counter() - start) / max(count, 1)
    finally:
        if collecting:
            gc.enable()


def _deep_paths(sizes: Sizes) -> List[str]:
    return ["%s/f%d" % (_deep_dir(sizes), index) for index in range(sizes.deep_files)]


def lookup_getinfo(view: View, ctx: Context) -> Dict[str, float]:
    paths = _deep_paths(ctx.sizes)
    getinfo = view.fs.getinfo
    return {"getinfo": _timed(lambda: len([getinfo(path) for path in paths]))}


def lookup_exists(view: View, ctx: Context) -> Dict[str, float]:
    paths = _deep_paths(ctx.sizes)
    exists = view.fs.exists
    return {"exists": _timed(lambda: sum(1 for path in paths if exists(path)))}


def read_small(view: View, ctx: Context) -> Dict[str, float]:
    paths = ["/small/s%d" % index for index in range(ctx.sizes.small_files)]
    readbytes = view.fs.readbytes
    return {"readbytes": _timed(lambda: len([readbytes(path) for path in paths]))}


def read_large(view: View, ctx: Context) -> Dict[str, float]:
    def read() -> int:
        total = 0
        with view.fs.openbin("/large.bin") as source:
            for chunk in iter(lambda: source.read(CHUNK), b""):
                total += len(chunk)
        assert total == ctx.sizes.large_bytes
        return 1

    return {"throughput": ctx.sizes.large_bytes / _timed(read)}


def _listing(method: str, repeat: int) -> Callable[[View, Context], Dict[str, float]]:
    def run(view: View, ctx: Context) -> Dict[str, float]:
        def listing() -> int:
            for _ in range(repeat):
                if method == "listdir":
                    names = view.fs.listdir("/wide")
                else:
                    names = [info.name for info in view.fs.scandir("/wide")]
                assert len(names) == ctx.sizes.wide_entries, len(names)
            return repeat

        return {method: _timed(listing)}

    return run


def walk_tree(view: View, ctx: Context) -> Dict[str, float]:
    """Every file of the merged tree by ``fs.walk``; the raw system walks each layer."""

    def walk() -> int:
        if view.layers:
            count = sum(len(list(layer.walk.files("/tree"))) for layer in view.layers)
            assert count >= ctx.sizes.tree_files
        else:
            count = len(list(view.fs.walk.files("/tree")))
            assert count == ctx.sizes.tree_files, count
        return 1

    return {"walk": _timed(walk)}


def write_new(view: View, ctx: Context) -> Dict[str, float]:
    """New small files in a merged directory (a plain fresh directory for the raw systems)."""
    target = view.fs
    if view.layers:
        target = OSFS(view.scratch_dir) if view.scratch_dir else MemoryFS()
        target.makedir("small")
    data = b"n" * ctx.sizes.small_size
    paths = ["/small/new%d_%d" % (ctx.round, index) for index in range(ctx.sizes.small_files)]
    return {"writebytes": _timed(lambda: len([target.writebytes(path, data) for path in paths]))}


def remove_then_list(view: View, ctx: Context) -> Dict[str, float]:
    """Remove ``removed`` lower files (whiteouts), then list what is left."""
    total = ctx.sizes.removed + max(1, ctx.sizes.removed // 10)
    target = view.fs
    if view.layers:  # the floor: the same removals in a plain directory
        target = OSFS(view.scratch_dir) if view.scratch_dir else MemoryFS()
        _write_mem(target, [("/gone/g%d" % index, b"g") for index in range(total)], [])
    paths = ["/gone/g%d" % index for index in range(ctx.sizes.removed)]
    remove = target.remove
    per_remove = _timed(lambda: len([remove(path) for path in paths]))
    per_list = _timed(lambda: len(target.listdir("/gone")) and 1)
    assert len(target.listdir("/gone")) == total - ctx.sizes.removed
    return {"remove": per_remove, "listdir": per_list}


def lowers_lookup(view: View, ctx: Context) -> Dict[str, float]:
    paths = ["/d/t%d" % index for index in range(ctx.sizes.scaling_ops)]
    fs_ = view.fs
    return {"lookup": _timed(lambda: len([fs_.getinfo(path) for path in paths if fs_.exists(path)]) * 2)}


def whiteouts_ops(view: View, ctx: Context) -> Dict[str, float]:
    """Lookups (live and whited-out names) and removals, with ``x`` whiteouts in the directory.
    The raw systems do the same in a plain directory of as many names: an absent name stands
    for a whited-out one, and creating an empty file for a removal (what a whiteout costs)."""
    fs_ = view.fs
    names = range(ctx.sizes.scaling_ops)
    hidden = "/d/absent%d" if view.layers else "/d/w%d"

    def lookups() -> int:
        for index in names:
            fs_.getinfo("/d/k%d" % index)
            assert fs_.exists("/d/k%d" % index) and not fs_.exists(hidden % index)
        return 3 * len(names)

    per_lookup = _timed(lookups)
    if view.layers:
        per_remove = _timed(lambda: len([fs_.create(_victim(ctx, index) + "-whiteout") for index in names]))
    else:
        per_remove = _timed(lambda: len([fs_.remove(_victim(ctx, index)) for index in names]))
    return {"lookup": per_lookup, "remove": per_remove}


def copyup_probe(view: Optional[View], ctx: Context, system: Optional[System] = None) -> Dict[str, float]:
    """Copy-up of the big file, in a child process that reports its peak memory."""
    assert system is not None
    stack = {"scratch": ctx.stack.scratch, "os_lowers": ctx.stack.os_lowers}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.probe", system.name, json.dumps(stack)],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    if done.returncode != 0:
        raise RuntimeError("copy-up probe failed: " + done.stderr.strip()[-500:])
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return {"throughput": ctx.sizes.copyup_bytes / report["seconds"], "peak_memory": report["peak_mib"]}


def copy_up_once(view: View, size: int) -> None:
    """What the probe times: copy ``/big.bin`` up (``fs.copy.copy_file`` for the raw system)."""
    if view.layers:
        copy_file(view.layers[0], "/big.bin", OSFS(view.scratch_dir), "/big.bin")
        return
    with view.fs.openbin("/big.bin", "r+b") as handle:  # opening for writing copies up
        handle.seek(0, 2)
        assert handle.tell() == size


def _mib(size: int) -> str:
    if size >= CHUNK:
        return "%d MiB" % (size // CHUNK)
    return "%d KiB" % (size // 1024) if size >= 1024 else "%d B" % size


# -- real data (issue 11): this machine's /usr as the lower, many lowers, a tar.gz lower ---------------


def _regular_files(root: str) -> List[str]:
    """Every regular file under ``root`` as a path of the tree rooted there, in walk order."""
    found: List[str] = []
    for directory, _dirs, files in os.walk(root):
        relative = directory[len(root):] or "/"
        for name in files:
            if os.path.isfile(os.path.join(directory, name)) and not os.path.islink(os.path.join(directory, name)):
                found.append(relative.rstrip("/") + "/" + name)
    return found


def _synthetic_tree(root: str) -> None:
    """A small stand-in for /usr (toy preset): nested directories and one wide one."""
    files: LayerFiles = [("/wide/w%d" % index, b"w") for index in range(120)]
    files += [("/lib/p%d/q%d/f%d" % (index % 4, index % 3, index), b"f" * (index % 50)) for index in range(80)]
    _write_os(root, files, [])


def _sample(paths: Sequence[str], count: int) -> List[str]:
    import random

    return random.Random(11).sample(list(paths), min(count, len(paths)))


def build_usr(sizes: Sizes, scratch: str) -> Stack:
    """The real tree as the one lower (raw: the tree itself), and paths sampled from it."""
    root = sizes.usr_root
    if not root:
        root = os.path.join(scratch, "usr")
        _synthetic_tree(root)
    stack = Stack(scratch, os_lowers=[root], os_flat=root)
    files = _regular_files(root)
    stack.data["samples"] = _sample(files, sizes.usr_samples)
    stack.data["files"] = len(files)
    stack.data["symlinked"] = _symlinked_dirs(root)
    return stack


def build_usr_whited(sizes: Sizes, scratch: str) -> Stack:
    """The real tree with ``usr_whiteouts`` of its files whited out in a prepared upper (in each
    system's own format, the directories holding them in the upper as a copy-up leaves them)."""
    stack = build_usr(sizes, scratch)
    whited = _sample(_regular_files(stack.os_lowers[0]), sizes.usr_whiteouts)
    stack.data["samples"] = whited[: sizes.usr_samples]
    for name in ("unionfs[os]", "kernel"):
        upper = os.path.join(scratch, "upper-" + name)
        for directory in sorted({os.path.dirname(path) for path in whited}):
            os.makedirs(upper + directory, exist_ok=True)
        if name == "kernel":
            device = os.makedev(0, 0)
            for path in whited:
                os.mknod(upper + path, 0o600 | 0o020000, device)
        else:
            _add_records(OSFS(upper), whited)
        stack.os_uppers[name] = upper
    return stack


def build_many_lowers(sizes: Sizes, scratch: str) -> Stack:
    """``many_lowers`` lowers sharing ``/d``: each has 20 names of its own there, the top one also
    the ``scaling_ops`` files looked up (raw: the top lower, and a flat copy for the listing)."""
    count = sizes.many_lowers
    layers: List[LayerFiles] = [[("/d/l%d_%d" % (position, k), b"l") for k in range(20)] for position in range(count)]
    layers[0] += [("/d/top%d" % index, b"t") for index in range(sizes.scaling_ops)]
    return materialise(scratch, layers, families=("os",))


def usr_getinfo(view: View, ctx: Context) -> Dict[str, float]:
    """getinfo of the sampled existing paths (raw: of the tree itself)."""
    paths = ctx.stack.data["samples"]
    getinfo = view.fs.getinfo
    return {"getinfo": _timed(lambda: len([getinfo(path) for path in paths]))}


class _TreeWalker(Walker):
    """``fs.walk``'s walker, not entering the directories that are symlinks in the real tree:
    every walker follows them (``is_dir`` is the target's), and trees like /usr have symlink
    loops (``bin/X11 -> .``, llvm's ``build/Release -> ..``) that make a walk endless."""

    def __init__(self, skip: Collection[str], **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self._skip = skip

    def check_scan_dir(self, fs: FS, path: str, info: object) -> bool:
        return path not in self._skip


def _symlinked_dirs(root: str) -> List[str]:
    found = []
    for directory, dirs, _files in os.walk(root):
        for name in dirs:
            if os.path.islink(os.path.join(directory, name)):
                found.append((directory[len(root):] or "/").rstrip("/") + "/" + name)
    return found


def _walker(namespaces: Sequence[str]) -> Callable[[View, Context], Dict[str, float]]:
    def run(view: View, ctx: Context) -> Dict[str, float]:
        """A walk of the whole tree with ``namespaces`` (files only for basic), per entry."""
        count = [0]
        # a details scan of a directory holding a dangling symlink fails (OSFS stats every
        # entry): such directories are skipped, by every system alike
        walker = _TreeWalker(frozenset(ctx.stack.data["symlinked"]), ignore_errors=bool(namespaces))

        def walk() -> int:
            if namespaces:
                count[0] = sum(1 for _ in walker.info(view.fs, namespaces=list(namespaces)))
            else:
                count[0] = sum(1 for _ in walker.files(view.fs))
            return max(count[0], 1)

        per_entry = _timed(walk)
        assert count[0] >= ctx.stack.data["files"] * (0.5 if namespaces else 0.99), (count[0], ctx.stack.data["files"])
        return {"walk": per_entry}

    return run


def usr_memory(view: View, ctx: Context) -> Dict[str, float]:
    """What a cold walk.files() of the tree leaves cached: traced bytes still held after it (the
    overlay's caches: nodes, listings, layer indexes, record kinds), per entry walked and in all."""
    import tracemalloc

    walker = _TreeWalker(frozenset(ctx.stack.data["symlinked"]))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        walked = files = 0
        for _path, dirs, found in walker.walk(view.fs):
            walked += len(dirs) + len(found)
            files += len(found)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    nodes = len(view.fs._lookup._nodes)  # type: ignore[attr-defined]
    assert files >= ctx.stack.data["files"] * 0.99, (files, ctx.stack.data["files"])
    return {"per_entry": held / max(walked, 1), "held": held / 2 ** 20, "nodes": float(nodes)}


def usr_whited_getinfo(view: View, ctx: Context) -> Dict[str, float]:
    """getinfo of whited-out paths (raw: of the same paths, which exist there)."""
    paths = ctx.stack.data["samples"]
    getinfo = view.fs.getinfo
    hidden = view.system.kind != "raw"

    def lookups() -> int:
        for path in paths:
            try:
                getinfo(path)
                assert not hidden, path
            except errors.ResourceNotFound:
                assert hidden, path
        return len(paths)

    return {"getinfo": _timed(lookups)}


def many_top_getinfo(view: View, ctx: Context) -> Dict[str, float]:
    """getinfo of files of the topmost of many lowers (raw: in that lower)."""
    paths = ["/d/top%d" % index for index in range(ctx.sizes.scaling_ops)]
    target = view.layers[0] if view.layers else view.fs
    getinfo = target.getinfo
    return {"getinfo": _timed(lambda: len([getinfo(path) for path in paths]))}


def many_listdir(view: View, ctx: Context) -> Dict[str, float]:
    """listdir of the directory all the lowers share (raw: a flat copy of it), per name."""
    expected = 20 * ctx.sizes.many_lowers + ctx.sizes.scaling_ops
    names = [0]

    def listing() -> int:
        names[0] = len(view.fs.listdir("/d"))
        return 1

    per_call = _timed(listing)
    assert names[0] == expected, (names[0], expected)
    return {"listdir": per_call}


def _archive_source(sizes: Sizes, scratch: str) -> str:
    root = sizes.archive_root
    if not root or not os.path.isdir(root):
        root = os.path.join(scratch, "tree")
        _synthetic_tree(root)
    return root


def build_archives(sizes: Sizes, scratch: str) -> Stack:
    """The tree as a plain tar and as a tar.gz (``tar``'s own order: a directory, then what is in it)."""
    import tarfile

    source = _archive_source(sizes, scratch)
    stack = Stack(scratch)
    for name, mode in (("tree.tar", "w"), ("tree.tar.gz", "w:gz")):
        path = os.path.join(scratch, name)
        with tarfile.open(path, mode) as archive:  # type: ignore[call-overload]
            archive.add(source, arcname=".")
        stack.data[name] = path
    stack.data["source"] = source
    stack.data["files"] = len(_regular_files(source)) + sum(
        1 for d, _, fs_ in os.walk(source) for f in fs_ if os.path.islink(os.path.join(d, f)))
    return stack


def archive_commit(view: Optional[View], ctx: Context, system: Optional[System] = None) -> Dict[str, float]:
    """The whole tree out of each archive as a lower: ``commit`` into a fresh directory (raw: one
    streaming ``tarfile`` extraction, what ``tar xf`` does), and the decompression restarts."""
    import tarfile

    from unionfs import OverlayFS
    from unionfs.formats.archives import open_archive

    assert system is not None
    values: Dict[str, float] = {}
    restarts = 0
    for name, metric in (("tree.tar", "tar"), ("tree.tar.gz", "targz")):
        target = tempfile.mkdtemp(prefix="commit-", dir=ctx.stack.scratch)
        try:
            started = time.perf_counter()
            if system.kind == "raw":
                options = {"filter": "fully_trusted"} if hasattr(tarfile, "data_filter") else {}
                with tarfile.open(ctx.stack.data[name], "r|*") as archive:
                    archive.extractall(target, **options)  # type: ignore[arg-type]
            else:
                # /usr/share/doc has symlinks out of the tree (to /usr/share/common-licenses):
                # left out, as on any archive with unsafe="skip"
                lower = open_archive(ctx.stack.data[name], unsafe="skip")
                try:
                    with OverlayFS(lower, upper=MemoryFS()) as overlay:
                        overlay.commit(target)
                        restarts += _restarts(overlay)
                finally:
                    lower.close()  # (and its spill)
            values[metric] = time.perf_counter() - started
        finally:
            shutil.rmtree(target, ignore_errors=True)
    values["restarts"] = float(restarts)
    return values


def archive_walkread(view: Optional[View], ctx: Context, system: Optional[System] = None) -> Dict[str, float]:
    """Every file read out of each archive as a lower, in the order ``walk`` gives
    (breadth-first, fs's default: not the archive's depth-first order), opening included; the
    tar.gz also without the spill (``max_spill=0``: checkpoints only). Raw: one streaming
    ``tarfile`` pass reading every member (the archive's own order)."""
    import tarfile

    from unionfs import OverlayFS
    from unionfs.formats.archives import ArchiveLimits, open_archive

    assert system is not None
    values: Dict[str, float] = {}
    runs = (("tree.tar", "tar", None), ("tree.tar.gz", "targz", None), ("tree.tar.gz", "targz-nospill", ArchiveLimits(max_spill=0)))
    values["restarts"] = values["restarts-nospill"] = 0.0  # (raw: a stream never goes back)
    for name, metric, limits in runs:  # (raw: the same streaming pass for both tar.gz rows)
        started = time.perf_counter()
        read = 0
        if system.kind == "raw":
            with tarfile.open(ctx.stack.data[name], "r|*") as archive:
                for member in archive:
                    if member.isfile():
                        handle = archive.extractfile(member)
                        assert handle is not None
                        read += len(handle.read())
        else:
            lower = open_archive(ctx.stack.data[name], unsafe="skip", limits=limits)
            try:
                with OverlayFS(lower, upper=MemoryFS()) as overlay:
                    for path, info in overlay.walk.info(namespaces=["link"]):
                        if not info.is_dir and not info.is_link:  # (a link's target is read as itself)
                            read += len(overlay.readbytes(path))
                    values["restarts" if limits is None else "restarts-nospill"] = float(_restarts(overlay))
            finally:
                lower.close()
        values[metric] = time.perf_counter() - started
        assert read > 0
    return values


def _restarts(overlay: FS) -> int:
    """Decompression restarts of the overlay's archive lowers (0 for a system without them)."""
    from unionfs.formats.archives import ArchiveFS

    layers = getattr(overlay, "_lookup").layers
    return sum(layer.fs.restarts for layer in layers if isinstance(layer.fs, ArchiveFS))


ALL_KINDS = ("raw", "multifs", "unionfs", "kernel", "fuse")
OVERLAYS = ("raw", "unionfs", "kernel", "fuse")


def workloads(sizes: Sizes) -> List[Workload]:
    """Every workload at ``sizes``, grouped by data set."""
    three = "3 lowers + empty upper"
    result = [
        Workload("lookup.getinfo", "getinfo of %d files at depth %d, %s" % (sizes.deep_files, sizes.depth, three),
                 (("getinfo", "s/op"),), "three", lookup_getinfo, ALL_KINDS),
        Workload("lookup.exists", "exists of %d files at depth %d, %s" % (sizes.deep_files, sizes.depth, three),
                 (("exists", "s/op"),), "three", lookup_exists, ALL_KINDS),
        Workload("read.small", "readbytes of %d files of %s, %s" % (sizes.small_files, _mib(sizes.small_size), three),
                 (("readbytes", "s/op"),), "three", read_small, ALL_KINDS),
        Workload("read.large", "read one %s file in 1 MiB chunks, bottom lower" % _mib(sizes.large_bytes),
                 (("throughput", "B/s"),), "three", read_large, ALL_KINDS),
        Workload("listdir.warm", "listdir of a merged dir of %d entries over 3 lowers, warm" % sizes.wide_entries,
                 (("listdir", "s/op"),), "three", _listing("listdir", 3), ALL_KINDS),
        Workload("listdir.cold", "listdir of the same dir, first call on a fresh view",
                 (("listdir", "s/op"),), "three", _listing("listdir", 1), ALL_KINDS, warm=False),
        Workload("scandir.warm", "scandir of a merged dir of %d entries over 3 lowers, warm" % sizes.wide_entries,
                 (("scandir", "s/op"),), "three", _listing("scandir", 3), ALL_KINDS),
        Workload("walk.warm", "fs.walk of a merged tree of %d files (raw: each layer walked)" % sizes.tree_files,
                 (("walk", "s/op"),), "three", walk_tree, ALL_KINDS),
        Workload("walk.cold", "the same walk on a fresh view", (("walk", "s/op"),), "three", walk_tree,
                 ALL_KINDS, warm=False),
        Workload("write.new", "writebytes of %d new %s files into a merged dir" % (sizes.small_files, _mib(sizes.small_size)),
                 (("writebytes", "s/op"),), "three", write_new, OVERLAYS, warm=False),
        Workload("whiteouts", "remove %d lower files (whiteouts), then listdir" % sizes.removed,
                 (("remove", "s/op"), ("listdir", "s/op")), "whiteouts", remove_then_list, OVERLAYS, warm=False),
        Workload("copyup", "copy-up of a %s lower file (raw: fs.copy.copy_file)" % _mib(sizes.copyup_bytes),
                 (("throughput", "B/s"), ("peak_memory", "MiB")), "copyup", copyup_probe, OVERLAYS,
                 families=("os",), in_subprocess=True),
    ]
    for count in sizes.lowers_points:
        for warm in (True, False):
            label = "warm" if warm else "cold"
            result.append(Workload(
                "lowers.%s@%d" % (label, count), "getinfo+exists of %d files in the bottom of %d lowers, %s"
                % (sizes.scaling_ops, count, label), (("lookup", "s/op"),), "lowers@%d" % count, lowers_lookup,
                ("raw", "multifs", "unionfs", "kernel"), warm=warm, x=count, series="lowers.%s" % label,
                passes=SCALING_PASSES))
    for count in sizes.whiteout_points:
        result.append(Workload(
            "whiteouts@%d" % count, "%d lookups and %d removals in a dir with %d whiteouts (raw: %d names)"
            % (3 * sizes.scaling_ops, sizes.scaling_ops, count, count), (("lookup", "s/op"), ("remove", "s/op")),
            "whited@%d" % count, whiteouts_ops, ("raw", "unionfs", "kernel", "fuse"), x=count, series="whiteouts",
            passes=SCALING_PASSES))
    real = ("raw", "multifs", "unionfs", "kernel")
    tree = "this machine's %s" % sizes.usr_root if sizes.usr_root else "a small synthetic tree"
    for warm in (False, True):
        label = "warm" if warm else "cold"
        result += [
            Workload("usr.getinfo.%s" % label, "getinfo of %d sampled files, %s as the lower, %s"
                     % (sizes.usr_samples, tree, label), (("getinfo", "s/op"),), "usr", usr_getinfo, real,
                     warm=warm, families=("os",)),
            Workload("usr.walk.%s" % label, "walk.files() of %s as the lower, %s, per file" % (tree, label),
                     (("walk", "s/op"),), "usr", _walker(()), real, warm=warm, families=("os",), passes=1,
                     max_repeats=3),
            Workload("usr.walkinfo.%s" % label, "walk.info(namespaces=['details']) of the same, %s, per entry"
                     % label, (("walk", "s/op"),), "usr", _walker(("details",)), real, warm=warm, families=("os",),
                     passes=1, max_repeats=3),
        ]
    result += [
        Workload("usr.memory", "memory the caches hold after a cold walk of %s (tracemalloc): per entry "
                 "walked, in all, and the nodes cached" % tree, (("per_entry", "B"), ("held", "MiB"), ("nodes", "count")),
                 "usr", usr_memory, ("unionfs",), warm=False, families=("os",), max_repeats=1),
        Workload("usr.whited.cold", "getinfo of %d whited-out files (of %d whiteouts in the upper), %s, cold "
                 "(raw: the same files)" % (sizes.usr_samples, sizes.usr_whiteouts, tree),
                 (("getinfo", "s/op"),), "usr-whited", usr_whited_getinfo, ("raw", "unionfs", "kernel"),
                 warm=False, families=("os",)),
        Workload("many.getinfo.cold", "getinfo of %d files of the topmost of %d lowers, cold (raw: that lower)"
                 % (sizes.scaling_ops, sizes.many_lowers), (("getinfo", "s/op"),), "many", many_top_getinfo,
                 real, warm=False, families=("os",)),
        Workload("many.listdir.cold", "listdir of a dir of %d names merged from %d lowers, cold (raw: flat copy)"
                 % (20 * sizes.many_lowers + sizes.scaling_ops, sizes.many_lowers), (("listdir", "s/op"),), "many",
                 many_listdir, real, warm=False, families=("os",)),
        Workload("archive.commit", "commit of %s from a .tar and a .tar.gz lower (raw: tarfile streaming "
                 "extraction), and decompression restarts" % (sizes.archive_root or "a small synthetic tree"),
                 (("tar", "s/op"), ("targz", "s/op"), ("restarts", "count")), "archives", archive_commit,
                 ("raw", "unionfs"), warm=False, families=("os",), own_view=True, max_repeats=3),
        Workload("archive.walkread", "walk + readbytes of every file of %s from a .tar and a .tar.gz "
                 "lower (also with no spill; raw: one streaming tarfile pass), and decompression restarts"
                 % (sizes.archive_root or "a small synthetic tree"),
                 (("tar", "s/op"), ("targz", "s/op"), ("targz-nospill", "s/op"), ("restarts", "count"),
                  ("restarts-nospill", "count")), "archives", archive_walkread,
                 ("raw", "unionfs"), warm=False, families=("os",), own_view=True, max_repeats=3),
    ]
    return result


WHITED_SYSTEMS = ("unionfs[os]", "kernel", "fuse-overlayfs")


def build_stack(key: str, sizes: Sizes, scratch: str) -> Stack:
    if key == "three":
        return build_three(sizes, scratch)
    if key == "whiteouts":
        return build_whiteouts(sizes, scratch)
    if key == "copyup":
        return build_copyup(sizes, scratch)
    real = {"usr": build_usr, "usr-whited": build_usr_whited, "many": build_many_lowers, "archives": build_archives}
    if key in real:
        return real[key](sizes, scratch)
    kind, count = key.split("@")
    if kind == "lowers":
        return build_lowers(int(count), sizes, scratch)
    return build_whited(int(count), sizes, scratch, WHITED_SYSTEMS)


def takes_part(workload: Workload, system: System) -> bool:
    if system.kind not in workload.kinds or system.family not in workload.families:
        return False
    if workload.series == "whiteouts":
        return system.kind == "raw" or system.family == "mem" or system.name in WHITED_SYSTEMS
    return True


def not_applicable(workload: Workload, system: System) -> str:
    """Why ``system`` sits this workload out although it takes part ("" if it runs)."""
    if system.max_lowers is not None and workload.series and workload.series.startswith("lowers"):
        if workload.x is not None and workload.x > system.max_lowers:
            return "at most %d lowers" % system.max_lowers
    return ""


def expected_errors() -> Tuple[type, ...]:
    """Errors that mean "this system cannot do that" rather than a harness bug."""
    return (errors.FSError,)
