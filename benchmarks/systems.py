"""The systems compared: one data set (a :class:`Stack`), many ways of seeing it merged.

Every system opens a *view* of a stack: a PyFilesystem2 FS showing the merged tree,
with a fresh empty upper unless the stack brings a prepared one. The raw systems are
the floor: the same data as one flat filesystem (``View.fs``) and as the separate
layers (``View.layers``), read with no overlay at all.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Callable, Iterator, List, Optional

import attr

import unionfs  # noqa: F401  (imports fs without the pkg_resources noise)
from fs.base import FS
from fs.memoryfs import MemoryFS
from fs.multifs import MultiFS
from fs.osfs import OSFS
from unionfs import OverlayFS

#: the kernel's OVL_MAX_STACK: a mount cannot have more lowers
KERNEL_MAX_LOWERS = 500


@attr.s(slots=True, eq=False)
class Stack:
    """One data set materialised for each family: lowers topmost first, plus a flat copy."""

    scratch: str = attr.ib()
    mem_lowers: List[FS] = attr.ib(factory=list)
    os_lowers: List[str] = attr.ib(factory=list)
    mem_flat: Optional[FS] = attr.ib(default=None)
    os_flat: Optional[str] = attr.ib(default=None)
    #: prepared uppers (reused by every view) for workloads that start from a populated upper;
    #: ``os_uppers`` maps a system name to its own copy (each system writes its own format)
    mem_upper: Optional[FS] = attr.ib(default=None)
    os_uppers: dict = attr.ib(factory=dict)
    #: what a workload of the data set needs besides the layers (sampled paths, archives)
    data: dict = attr.ib(factory=dict)

    def close(self) -> None:
        for layer in self.mem_lowers + [self.mem_flat, self.mem_upper]:
            if layer is not None:
                layer.close()
        shutil.rmtree(self.scratch, ignore_errors=True)  # (a real tree used as a lower is not in it)


@attr.s(slots=True, eq=False)
class View:
    """What a workload runs against."""

    fs: FS = attr.ib()
    system: "System" = attr.ib()
    #: the raw layers, topmost first (raw systems only; empty otherwise)
    layers: List[FS] = attr.ib(factory=list)
    #: a fresh empty directory on disk beside the stack (os family), e.g. a copy target
    scratch_dir: Optional[str] = attr.ib(default=None)


@attr.s(slots=True, eq=False)
class System:
    """A way of presenting a stack; ``open_view`` is a context manager factory."""

    name: str = attr.ib()
    family: str = attr.ib()  # "mem" or "os": which materialisation of the stack it reads
    kind: str = attr.ib()  # "raw", "multifs", "unionfs", "kernel", "fuse"
    open_view: Callable[["System", Stack], "contextlib.AbstractContextManager[View]"] = attr.ib(repr=False)
    #: why the system cannot run here ("" when it can)
    unavailable: str = attr.ib(default="")
    max_lowers: Optional[int] = attr.ib(default=None)
    #: the overlay class a unionfs system opens (a baseline system: an earlier commit's)
    overlay: Callable[..., FS] = attr.ib(default=OverlayFS, repr=False)
    #: whose prepared upper it shares (a baseline reads the same format as unionfs[os])
    upper_of: str = attr.ib(default="")

    def view(self, stack: Stack) -> "contextlib.AbstractContextManager[View]":
        return self.open_view(self, stack)


def _fresh_dir(stack: Stack, prefix: str) -> str:
    return tempfile.mkdtemp(prefix=prefix, dir=stack.scratch)


@contextlib.contextmanager
def _raw_view(system: System, stack: Stack) -> Iterator[View]:
    if system.family == "mem":
        yield View(stack.mem_flat, system, list(stack.mem_lowers))
        return
    scratch = _fresh_dir(stack, "raw-")
    layers = [OSFS(path) for path in stack.os_lowers]
    try:
        yield View(OSFS(stack.os_flat) if stack.os_flat else layers[0], system, layers, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def _upper_fs(system: System, stack: Stack) -> Iterator[FS]:
    """The upper a view writes to: the stack's prepared one or a fresh empty one."""
    if system.family == "mem":
        yield stack.mem_upper if stack.mem_upper is not None else MemoryFS()
        return
    prepared = stack.os_uppers.get(system.upper_of or system.name)
    if prepared is not None:
        yield OSFS(prepared)
        return
    upper = _fresh_dir(stack, "upper-")
    try:
        yield OSFS(upper)
    finally:
        shutil.rmtree(upper, ignore_errors=True)


def _lower_fss(system: System, stack: Stack) -> List[FS]:
    return list(stack.mem_lowers) if system.family == "mem" else [OSFS(path) for path in stack.os_lowers]


@contextlib.contextmanager
def _multifs_view(system: System, stack: Stack) -> Iterator[View]:
    with _upper_fs(system, stack) as upper:
        lowers = _lower_fss(system, stack)
        multi = MultiFS(auto_close=False)
        for position, lower in enumerate(lowers):
            multi.add_fs("lower%d" % position, lower, priority=len(lowers) - position)
        multi.add_fs("upper", upper, write=True, priority=len(lowers) + 1)
        yield View(multi, system)


@contextlib.contextmanager
def _unionfs_view(system: System, stack: Stack) -> Iterator[View]:
    with _upper_fs(system, stack) as upper:
        overlay = system.overlay(_lower_fss(system, stack), upper=upper)
        try:
            yield View(overlay, system)
        finally:
            overlay.close()


def _run(command: List[str], cwd: Optional[str] = None) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(command[:3]), (done.stderr or done.stdout).strip()[:300]))


def _lowerdir(stack: Stack) -> "tuple[str, str]":
    """``lowerdir=`` relative to the lowers' common parent (mount options fit in one page)."""
    parent = os.path.commonpath(stack.os_lowers) if len(stack.os_lowers) > 1 else os.path.dirname(stack.os_lowers[0])
    return parent, ":".join(os.path.relpath(path, parent) for path in stack.os_lowers)


@contextlib.contextmanager
def _mounted_view(system: System, stack: Stack) -> Iterator[View]:
    """Kernel overlayfs, fuse-overlayfs or unionfs-fuse mounted over the stack, seen through OSFS."""
    prepared = stack.os_uppers.get(system.name)
    upper = prepared or _fresh_dir(stack, "upper-")
    work = _fresh_dir(stack, "work-")
    merged = _fresh_dir(stack, "merged-")
    parent, lowerdir = _lowerdir(stack)
    options = "lowerdir=%s,upperdir=%s,workdir=%s" % (lowerdir, upper, work)
    if system.name == "kernel":
        command, unmount = ["mount", "-t", "overlay", "overlay", "-o", options, merged], ["umount", merged]
    elif system.name == "fuse-overlayfs":
        command, unmount = ["fuse-overlayfs", "-o", options, merged], ["fusermount", "-u", merged]
    else:  # unionfs-fuse
        branches = ":".join([upper + "=RW"] + [path + "=RO" for path in stack.os_lowers])
        command, unmount = ["unionfs", "-o", "cow,hide_meta_files", branches, merged], ["fusermount", "-u", merged]
    _run(command, cwd=parent)
    try:
        yield View(OSFS(merged), system)
    finally:
        _run(unmount)
        if not prepared:
            shutil.rmtree(upper, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(merged, ignore_errors=True)


def _probe_mount(system: System, scratch: str) -> str:
    """Empty if ``system`` mounts here, else the reason it does not."""
    root = tempfile.mkdtemp(prefix="probe-", dir=scratch)
    stack = Stack(root, os_lowers=[os.path.join(root, "l0"), os.path.join(root, "l1")])
    for path in stack.os_lowers:
        os.mkdir(path)
    try:
        with system.view(stack) as view:
            view.fs.listdir("/")
        return ""
    except (RuntimeError, OSError) as error:
        return str(error)
    finally:
        shutil.rmtree(root, ignore_errors=True)


BASELINE = "unionfs@base[os]"


def baseline_system(revision: str, scratch: str) -> System:
    """``unionfs[os]`` as of the git ``revision`` (``--baseline``): that commit's package,
    imported under another name beside this one, so that before and after run side by side
    in one run (its modules import each other relatively, so a renamed copy is a copy)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    root = tempfile.mkdtemp(prefix="baseline-", dir=scratch)
    archive = subprocess.run(["git", "-C", here, "archive", revision, "unionfs"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", root], input=archive, check=True)
    os.rename(os.path.join(root, "unionfs"), os.path.join(root, "unionfs_baseline"))
    sys.path.insert(0, root)
    module = importlib.import_module("unionfs_baseline")
    return System(BASELINE, "os", "unionfs", _unionfs_view, overlay=module.OverlayFS, upper_of="unionfs[os]")


def all_systems(scratch: str, probe: bool = True) -> List[System]:
    """Every system, those that cannot run here marked ``unavailable`` with the reason
    (``probe=False`` skips the trial mounts)."""
    systems = [
        System("raw[mem]", "mem", "raw", _raw_view),
        System("raw[os]", "os", "raw", _raw_view),
        System("multifs[mem]", "mem", "multifs", _multifs_view),
        System("multifs[os]", "os", "multifs", _multifs_view),
        System("unionfs[mem]", "mem", "unionfs", _unionfs_view),
        System("unionfs[os]", "os", "unionfs", _unionfs_view),
        System("kernel", "os", "kernel", _mounted_view, max_lowers=KERNEL_MAX_LOWERS),
        System("fuse-overlayfs", "os", "fuse", _mounted_view, max_lowers=KERNEL_MAX_LOWERS),
        System("unionfs-fuse", "os", "fuse", _mounted_view),
    ]
    for system in systems:
        if system.kind == "kernel" and os.geteuid() != 0:
            system.unavailable = "mounting overlayfs needs root"
        elif system.kind == "fuse" and not os.path.exists("/dev/fuse"):
            system.unavailable = "no /dev/fuse"
        elif system.name == "fuse-overlayfs" and not shutil.which("fuse-overlayfs"):
            system.unavailable = "fuse-overlayfs is not installed"
        elif system.name == "unionfs-fuse" and not shutil.which("unionfs"):
            system.unavailable = "unionfs-fuse is not installed"
        if probe and system.kind in ("kernel", "fuse") and not system.unavailable:
            system.unavailable = _probe_mount(system, scratch)
    return systems
