"""OverlayFS against the Linux kernel's overlayfs, by Hypothesis stateful testing.

One machine, two systems: the library (``OverlayFS`` over MemoryFS lowers in sidecar form,
with a MemoryFS upper in one test class and an OSFS upper in the other) and a kernel
overlay mount of the same lowers in kernel form. Every rule runs one operation on both and
compares the outcome (value, or the error class the kernel's errno maps to, see
``kernel_oracle.ERRNO_TO_FS_ERROR``); after every step the whole merged trees (names,
types, file contents) must be equal. A failure prints the minimal sequence of steps.

Deliberate deviations, checked against the library's documented behaviour instead of
the kernel's answer:

* ``movedir`` is PyFilesystem2's "move the contents" operation, not rename(2): it works for
  lower and merged directories (the kernel's rename answers EXDEV) and merges into an
  existing destination (rename answers ENOTEMPTY). The kernel side therefore runs
  ``cp -a src/. dst`` then ``rm -rf src`` (``KernelView.movedir``) and the trees must match.
* ``move`` of a directory is refused with ``FileExpected`` by PyFilesystem2's contract
  (``FS.move`` moves files); the kernel side applies the same check before rename(2).
* ``copy`` has no system call: the kernel side reads the source and writes the destination.
* ``makedirs``' refusal of a file on the way (``DirectoryExpected``, even for the last
  component) and ``removetree('/')`` emptying the root are PyFilesystem2's contract,
  reproduced with lstat on the kernel side.

The run length follows the Hypothesis profile (``HYPOTHESIS_PROFILE``): ``dev`` is quick,
``ci`` explores hundreds of sequences; ``UNIONFS_KERNEL_EXAMPLES`` overrides the number
of sequences per upper kind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import List, Optional, Sequence

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from .conftest import LowerGuard, kernel_overlay_available
from .kernel_oracle import (
    DIR,
    FILE,
    OPAQUE,
    WHITEOUT,
    Entry,
    KernelOverlay,
    KernelView,
    LayerSpec,
    LibraryView,
    add_entry,
    assert_same_outcome,
    assert_same_tree,
    build_library_layer,
    outcome,
    realistic,
)
from fs.base import FS
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS
from unionfs import OverlayFS

# The kernel gate, at module level because a state machine cannot take fixtures: skip
# where overlayfs cannot be mounted, fail instead under UNIONFS_REQUIRE_KERNEL=1 (CI).
_UNAVAILABLE = kernel_overlay_available()
if _UNAVAILABLE:
    if os.environ.get("UNIONFS_REQUIRE_KERNEL") == "1":
        raise RuntimeError("kernel overlayfs required (UNIONFS_REQUIRE_KERNEL=1) but unavailable: " + _UNAVAILABLE)
    pytest.skip("kernel overlayfs unavailable: " + _UNAVAILABLE, allow_module_level=True)

#: A three-letter alphabet and at most three levels: the same names keep colliding.
NAMES = "abc"
paths = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
dir_paths = st.one_of(st.just("/"), paths)
contents = st.binary(max_size=6)
small = st.integers(min_value=0, max_value=8)
times = st.integers(min_value=0, max_value=2_000_000_000)

entries = st.one_of(
    st.just(Entry(DIR)),
    st.just(Entry(OPAQUE)),
    st.builds(Entry, st.just(FILE), contents),
    st.just(Entry(WHITEOUT)),
)


@st.composite
def layer_stacks(draw: st.DrawFn) -> List[LayerSpec]:
    """One to four lower layers, topmost first, colliding on a tiny name space: files over
    directories and back, nested and empty directories, whiteouts and opaque directories."""
    layers = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        layer: LayerSpec = {}
        for path, entry in draw(st.lists(st.tuples(paths, entries), max_size=8)):
            add_entry(layer, path, entry)
        layers.append(layer)
    return realistic(layers)


MAX_LOWERS = 6


class KernelMachine(RuleBasedStateMachine):
    """Random operations on OverlayFS and on a kernel overlay mount, compared step by step."""

    upper_kind = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.kernel: Optional[KernelOverlay] = None
        self.overlay: Optional[OverlayFS] = None
        self.lowers: List[FS] = []
        self.upper: Optional[FS] = None
        self.guard = LowerGuard()
        self.scratch: List[str] = []

    # -- set-up and tear-down ---------------------------------------------------------------------

    @initialize(layers=layer_stacks())
    def start(self, layers: List[LayerSpec]) -> None:
        self.kernel = KernelOverlay(layers).__enter__()
        self.lowers = [self.guard(build_library_layer(layer)) for layer in layers]
        self.upper = self._fresh_upper()
        self.overlay = OverlayFS(self.lowers, upper=self.upper)

    def _fresh_upper(self) -> FS:
        if self.upper_kind == "memory":
            return MemoryFS()
        directory = tempfile.mkdtemp(prefix="unionfs-upper-")
        self.scratch.append(directory)
        return OSFS(directory)

    def teardown(self) -> None:
        try:
            if self.overlay is not None:
                self.overlay.close()
            self.guard.check()
        finally:
            if self.kernel is not None:
                self.kernel.close()
            for directory in self.scratch:
                shutil.rmtree(directory, ignore_errors=True)

    # -- comparing ---------------------------------------------------------------------------------

    def both(self, operation: str, *args: object, paths: Sequence[str]) -> None:
        """Run ``operation`` on both sides and compare what came back."""
        assert self.overlay is not None and self.kernel is not None
        library = outcome(lambda: getattr(LibraryView(self.overlay), operation)(*args))
        kernel = outcome(lambda: getattr(KernelView(self.kernel.merged), operation)(*args))
        assert_same_outcome("%s%r" % (operation, args), library, kernel, paths)

    @invariant()
    def same_tree(self) -> None:
        if self.overlay is None or self.kernel is None:
            return
        assert_same_tree(LibraryView(self.overlay).tree(), KernelView(self.kernel.merged).tree())

    # -- files ---------------------------------------------------------------------------------------

    @rule(path=paths, data=contents)
    def write(self, path: str, data: bytes) -> None:
        self.both("writebytes", path, data, paths=[path])

    @rule(path=paths, data=contents)
    def append(self, path: str, data: bytes) -> None:
        self.both("appendbytes", path, data, paths=[path])

    @rule(path=paths, offset=small, data=contents)
    def write_at(self, path: str, offset: int, data: bytes) -> None:
        self.both("write_at", path, offset, data, paths=[path])

    @rule(path=paths, data=contents)
    def create_exclusive(self, path: str, data: bytes) -> None:
        self.both("create_exclusive", path, data, paths=[path])

    @rule(path=paths, size=small)
    def truncate(self, path: str, size: int) -> None:
        self.both("truncate", path, size, paths=[path])

    @rule(path=paths)
    def read(self, path: str) -> None:
        self.both("readbytes", path, paths=[path])

    @rule(path=paths)
    def remove(self, path: str) -> None:
        self.both("remove", path, paths=[path])

    @rule(src=paths, dst=paths, overwrite=st.booleans())
    def move(self, src: str, dst: str, overwrite: bool) -> None:
        self.both("move", src, dst, overwrite, paths=[src, dst])

    @rule(src=paths, dst=paths, overwrite=st.booleans())
    def copy(self, src: str, dst: str, overwrite: bool) -> None:
        self.both("copy", src, dst, overwrite, paths=[src, dst])

    @rule(path=dir_paths, accessed=times, modified=times)
    def settimes(self, path: str, accessed: int, modified: int) -> None:
        if path == "/" and self.upper_kind == "memory":
            return  # MemoryFS cannot set its own root's times at all (see docs/semantics.rst)
        self.both("settimes", path, accessed, modified, paths=[path])

    # -- directories ---------------------------------------------------------------------------------

    @rule(path=dir_paths)
    def removedir(self, path: str) -> None:
        self.both("removedir", path, paths=[path])

    @rule(path=paths)
    def makedir(self, path: str) -> None:
        self.both("makedir", path, paths=[path])

    @rule(path=paths, recreate=st.booleans())
    def makedirs(self, path: str, recreate: bool) -> None:
        self.both("makedirs", path, recreate, paths=[path])

    @rule(path=dir_paths)
    def removetree(self, path: str) -> None:
        self.both("removetree", path, paths=[path])

    @rule(src=paths, dst=paths, create=st.booleans())
    def movedir(self, src: str, dst: str, create: bool) -> None:
        self.both("movedir", src, dst, create, paths=[src, dst])

    # -- queries -------------------------------------------------------------------------------------

    @rule(path=dir_paths)
    def listdir(self, path: str) -> None:
        self.both("listdir", path, paths=[path])

    @rule(path=dir_paths)
    def scandir(self, path: str) -> None:
        self.both("scandir", path, paths=[path])

    @rule(path=dir_paths)
    def getinfo(self, path: str) -> None:
        self.both("getinfo", path, paths=[path])

    @rule(path=dir_paths)
    def exists(self, path: str) -> None:
        self.both("exists", path, paths=[path])

    # -- structure -----------------------------------------------------------------------------------

    @rule()
    def reopen(self) -> None:
        """A new OverlayFS over the same upper; the kernel unmounts and mounts again."""
        assert self.overlay is not None and self.kernel is not None
        self.overlay.close()
        self.overlay = OverlayFS(self.lowers, upper=self.upper)
        self.kernel.reopen()

    @precondition(lambda self: len(self.lowers) < MAX_LOWERS)
    @rule()
    def stack(self) -> None:
        """The upper becomes the topmost lower under a fresh, empty upper (on the kernel side
        with its whiteout devices and opaque xattrs, the kernel's own form)."""
        assert self.overlay is not None and self.kernel is not None and self.upper is not None
        self.overlay.close()
        self.lowers.insert(0, self.guard(self.upper))
        self.upper = self._fresh_upper()
        self.overlay = OverlayFS(self.lowers, upper=self.upper)
        self.kernel.stack()


def _examples(default: Optional[int]) -> dict:
    """Per-class settings: the profile's, unless UNIONFS_KERNEL_EXAMPLES says otherwise."""
    override = os.environ.get("UNIONFS_KERNEL_EXAMPLES")
    return {"max_examples": int(override)} if override else {}


class OSFSUpperMachine(KernelMachine):
    upper_kind = "os"


TestKernelMemoryUpper = KernelMachine.TestCase
TestKernelMemoryUpper.settings = settings(settings.default, **_examples(None))
TestKernelOSFSUpper = OSFSUpperMachine.TestCase
TestKernelOSFSUpper.settings = settings(settings.default, **_examples(None))
