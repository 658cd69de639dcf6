"""OverlayFS against the Linux kernel's overlayfs, by Hypothesis stateful testing.

One machine, two systems: the library (``OverlayFS`` over MemoryFS lowers in sidecar form,
with a MemoryFS upper in one test class and an OSFS upper in the other) and a kernel
overlay mount of the same lowers in kernel form. Every rule runs one operation on both and
compares the outcome (value, or the error class the kernel's errno maps to, see
``kernel_oracle.ERRNO_TO_FS_ERROR``); after every step the whole merged trees (names,
types, file contents) must be equal, and so must the files' modification times where the
kernel kept an old one (copy-up and rename keep the lower's, utimes sets one). A failure
prints the minimal sequence of steps.

Deliberate deviations, checked against the library's documented behaviour instead of
the kernel's answer:

* ``movedir`` is PyFilesystem2's "move the contents" operation, not rename(2): it works for
  lower and merged directories (the kernel's rename answers EXDEV) and merges into an
  existing destination (rename answers ENOTEMPTY). The kernel side therefore runs
  ``cp -a src/. dst`` then ``rm -rf src`` (``KernelView.movedir``) and the trees must match.
  Refused up front on both sides: file/directory clashes, and an ancestor destination where
  part of the source would be copied onto the source itself (cp's result depends on order).
* ``hide`` and ``make_opaque`` have no system call: the kernel side unmounts, makes the same
  edit by hand in the upper dir (whiteout device, opaque xattr) and mounts again.
* ``move`` of a directory is refused with ``FileExpected`` by PyFilesystem2's contract
  (``FS.move`` moves files); the kernel side applies the same check before rename(2).
* ``copy`` has no system call: the kernel side reads the source and writes the destination;
  ``copy(x, x)`` raises ``IllegalDestination`` and ``movedir(d, d)`` changes nothing, as the
  conformance suite of fs-next (the maintained PyFilesystem2) demands.
* ``makedirs``' refusal of a file on the way (``DirectoryExpected``, even for the last
  component) and ``removetree('/')`` emptying the root are PyFilesystem2's contract,
  reproduced with lstat on the kernel side.

The run length follows the Hypothesis profile (``HYPOTHESIS_PROFILE``), with twice its
number of sequences per upper kind: ``dev`` is quick, ``ci`` explores 2 x 400 sequences of
40 steps; ``UNIONFS_KERNEL_EXAMPLES`` and
``UNIONFS_KERNEL_STEPS`` override the number and length of sequences per upper kind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import BinaryIO, Dict, List, Optional, Sequence, Set, Tuple

import attr
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.conftest import LowerGuard, kernel_overlay_available
from tests.support.kernel_oracle import (
    KernelOverlay,
    KernelView,
    LayerSpec,
    LibraryView,
    Outcome,
    REDIRECT_OPTIONS,
    assert_same_file_times,
    assert_same_modes,
    assert_same_outcome,
    assert_same_tree,
    build_library_layer,
    kernel_metacopy_files,
    library_metacopy_files,
    outcome,
)
from tests.support.kernel_rules import SharedRules, layer_stacks, small, some_bytes
from unionfs.core.sidecar import METACOPY_FILE_SIZE
from fs.base import FS
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS
from unionfs import OverlayFS
from unionfs.formats.kernel import kernel_layers

# The kernel gate, at module level because a state machine cannot take fixtures: skip
# where overlayfs cannot be mounted, fail instead under UNIONFS_REQUIRE_KERNEL=1 (CI).
_UNAVAILABLE = kernel_overlay_available()
if _UNAVAILABLE:
    if os.environ.get("UNIONFS_REQUIRE_KERNEL") == "1":
        raise RuntimeError("kernel overlayfs required (UNIONFS_REQUIRE_KERNEL=1) but unavailable: " + _UNAVAILABLE)
    pytest.skip("kernel overlayfs unavailable: " + _UNAVAILABLE, allow_module_level=True)

MAX_LOWERS = 6
MAX_HANDLES = 3


@attr.s(slots=True)
class Held:
    """A handle held open across steps: the library's (unbuffered) and the kernel's descriptor."""

    path: str = attr.ib()
    handle: BinaryIO = attr.ib()
    descriptor: int = attr.ib()
    writable: bool = attr.ib()

    def close(self) -> None:
        self.handle.close()
        os.close(self.descriptor)

    def contents(self) -> bytes:
        """The whole file as the library's handle reads it now, its position left alone."""
        position = self.handle.tell()
        self.handle.seek(0)
        data = self.handle.read()
        self.handle.seek(position)
        return data


class KernelMachine(SharedRules, RuleBasedStateMachine):
    """Random operations on OverlayFS and on a kernel overlay mount, compared step by step
    (the rules the mount's differential test runs too are in ``tests/support/kernel_rules.py``)."""

    upper_kind = "memory"
    #: the kernel's mount options beyond the layers, and the library's matching ones: the
    #: default mount copies (EXDEV for directories, whole-file copy-up), so does the library
    kernel_options = ""
    library_options: Dict[str, bool] = {"redirect_dir": False, "metacopy": False}
    #: "memory": lowers are MemoryFS in sidecar form (links as records, hard links as copies);
    #: "kernel": the kernel mount's own lower directories, read as kernel-format layers
    #: (real symbolic and hard links on disk, never followed by the library's lookup)
    lower_kind = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.kernel: Optional[KernelOverlay] = None
        self.overlay: Optional[OverlayFS] = None
        self.lowers: List[FS] = []
        self.upper: Optional[FS] = None
        self.guard = LowerGuard()
        self.scratch: List[str] = []
        self.visible: List[str] = []  # the merged tree's paths after the last step
        self.visible_dirs: List[str] = ["/"]
        self.visible_files: List[str] = []
        #: handles held open across steps
        self.handles: List[Held] = []

    # -- set-up and tear-down ---------------------------------------------------------------------

    @initialize(layers=layer_stacks())
    def start(self, layers: List[LayerSpec]) -> None:
        self.kernel = KernelOverlay(layers, self.kernel_options).__enter__()
        if self.lower_kind == "kernel":
            self.lowers = kernel_layers(self.kernel.lowers)  # type: ignore[assignment]
        else:
            # on-disk lowers for an OSFS upper: they hold the modes a MemoryFS cannot
            self.lowers = [self.guard(build_library_layer(layer, self._lower_dir())) for layer in layers]
        self.upper = self._fresh_upper()
        self.overlay = OverlayFS(self.lowers, upper=self.upper, **self.library_options)
        #: the kernel upper's inodes of files hard-linked through the overlay (see note_linked)
        self.linked_inodes: Set[Tuple[int, int]] = set()

    def _lower_dir(self) -> Optional[str]:
        if self.upper_kind == "memory":
            return None
        directory = tempfile.mkdtemp(prefix="unionfs-lower-")
        self.scratch.append(directory)
        return directory

    def _fresh_upper(self) -> FS:
        if self.upper_kind == "memory":
            return MemoryFS()
        directory = tempfile.mkdtemp(prefix="unionfs-upper-")
        self.scratch.append(directory)
        return OSFS(directory)

    def teardown(self) -> None:
        try:
            self.close_handles()
            if self.overlay is not None:
                self.overlay.close()
            self.guard.check()
        finally:
            if self.kernel is not None:
                self.kernel.close()
            for directory in self.scratch:
                shutil.rmtree(directory, ignore_errors=True)

    # -- comparing ---------------------------------------------------------------------------------

    def both(self, operation: str, *args: object, paths: Sequence[str]) -> Outcome:
        """Run ``operation`` on both sides and compare what came back (the kernel's, returned:
        the library's is the same)."""
        assert self.overlay is not None and self.kernel is not None
        library = outcome(lambda: getattr(LibraryView(self.overlay), operation)(*args))
        kernel = outcome(lambda: getattr(KernelView(self.kernel.merged, self.kernel), operation)(*args))
        assert_same_outcome("%s%r" % (operation, args), library, kernel, paths)
        return kernel

    def offline(self, operation: str, path: str) -> None:
        """``hide`` / ``make_opaque``: the library's operation; the kernel side edits its
        unmounted upper by hand (``KernelView``)."""
        self.both(operation, path, paths=[path])

    @property
    def times_of_root(self) -> bool:  # type: ignore[override]
        """MemoryFS cannot set its own root's times at all (see docs/semantics.rst), nor through a link to it."""
        return self.upper_kind != "memory"

    @invariant()
    def same_view(self) -> None:
        """The whole merged trees agree, so do the files' modification times, and so does
        what every held read handle reads."""
        if self.overlay is None or self.kernel is None:
            return
        kernel_times: Dict[str, int] = {}
        library_times: Dict[str, int] = {}
        kernel_modes: Dict[str, int] = {}
        library_modes: Dict[str, int] = {}
        kernel_tree = KernelView(self.kernel.merged).tree(kernel_times, kernel_modes)
        assert_same_tree(LibraryView(self.overlay).tree(library_times, library_modes), kernel_tree)
        for path in self.linked_metadata_only(kernel_times):
            # the kernel's linked metadata-only inode gets its data, and the time "now", at its
            # first open for writing; the library's had its data from the link on, and keeps
            # the lower's time (docs/semantics.rst)
            kernel_times.pop(path)
            library_times.pop(path, None)
        assert_same_file_times(library_times, kernel_times)
        if self.upper_kind != "memory":  # a MemoryFS upper holds no modes (docs/semantics.rst)
            assert_same_modes(library_modes, kernel_modes)
        for held in self.handles:
            # since Linux 4.19 a descriptor opened on a lower file follows its copy-up, and a
            # removed (or replaced by a new file) file's descriptor keeps its data
            assert held.contents() == os.pread(held.descriptor, 1 << 16, 0), "the handle held on %s" % held.path
        self.note_visible(kernel_tree)

    # -- files ---------------------------------------------------------------------------------------

    @precondition(lambda self: self.upper_kind == "os")  # MemoryFS keeps no permissions
    @rule(data=st.data(), mode=st.sampled_from([0o600, 0o640, 0o700, 0o755]))
    def chmod(self, data: st.DataObject, mode: int) -> None:
        path = self.path(data)
        self.both("chmod", path, mode, paths=[path])

    @invariant()
    def metadata_only_copies_hold_no_data(self) -> None:
        """Where the kernel copied a file up for its metadata only, so did the library, and
        neither upper holds the file's data (the kernel's is sparse, the library's a token)."""
        if self.overlay is None or self.kernel is None or self.upper is None or "metacopy=on" not in self.kernel_options:
            return
        kernel = kernel_metacopy_files(self.kernel.upper, skip=self.linked_inodes)
        library = library_metacopy_files(self.upper)
        assert sorted(library) == sorted(kernel), "metadata-only files: library %s, kernel %s" % (sorted(library), sorted(kernel))
        assert all(size == 0 for size in kernel.values()), kernel
        assert all(size <= METACOPY_FILE_SIZE for size in library.values()), library

    # -- directories ---------------------------------------------------------------------------------

    @rule(data=st.data(), create=st.booleans())
    def movedir(self, data: st.DataObject, create: bool) -> None:
        src, dst = self.path(data, "src", kind="dir"), self.path(data, "dst")
        assert self.kernel is not None
        # the library moves the files, so their handles follow them as after rename(2); after the
        # kernel side's cp -a + rm -rf they would stay on the old files (docs/semantics.rst)
        self.close_handles(src, below=True)
        # a destination file the move replaces: cp -a rewrites it in place, so a kernel descriptor
        # reads the new data; the library renames over it and its handle keeps the old file
        # (docs/semantics.rst): check that, then close them
        replaced = [
            held
            for held in self.handles
            if _below(held.path, dst) and os.path.isfile(self.kernel.merged + src.rstrip("/") + held.path[len(dst.rstrip("/")):])
        ]
        before = [held.contents() for held in replaced]
        self.both("movedir", src, dst, create, paths=[src, dst])
        for held, old in zip(replaced, before):
            assert held.contents() == old, "the handle held on replaced %s" % held.path
            held.close()
            self.handles.remove(held)

    # -- handles held across steps ----------------------------------------------------------------

    @precondition(lambda self: len(self.handles) < MAX_HANDLES)
    @rule(data=st.data(), writable=st.booleans())
    def open_handle(self, data: st.DataObject, writable: bool) -> None:
        """A handle kept open: read-only (``openbin(p, "r", buffering=0)``; ``open(O_RDONLY)``)
        or a second writer (``"r+"``; ``O_RDWR``, which copies up), for files: the kernel opens
        directories read-only too, PyFilesystem2 has no such handle."""
        assert self.overlay is not None and self.kernel is not None
        path = self.path(data, kind="file")
        if KernelView(self.kernel.merged).isdir(path):
            return
        library = outcome(lambda: LibraryView(self.overlay).open_handle(path, writable))
        kernel = outcome(lambda: KernelView(self.kernel.merged).open_handle(path, writable))
        if (library.error is None) != (kernel.error is None):  # close what did open, then report
            for opened in (library.value, kernel.value):
                if opened is not None:
                    opened.close() if hasattr(opened, "close") else os.close(opened)
        assert_same_outcome("open_handle(%r, %r)" % (path, writable), attr.evolve(library, value=None), attr.evolve(kernel, value=None), [path])
        if kernel.error is None:
            self.handles.append(Held(path, library.value, kernel.value, writable))

    @precondition(lambda self: self.handles)
    @rule(data=st.data(), size=small)
    def read_held(self, data: st.DataObject, size: int) -> None:
        """Read on from a held handle's position (a partial read: what is read next must be
        what the kernel's descriptor reads next, also after other handles wrote)."""
        held = data.draw(st.sampled_from(self.handles), label="handle")
        assert held.handle.read(size) == os.read(held.descriptor, size), "reading on from %s" % held.path

    @precondition(lambda self: any(held.writable for held in self.handles))
    @rule(data=st.data(), offset=small, payload=some_bytes)
    def write_held(self, data: st.DataObject, offset: int, payload: bytes) -> None:
        """pwrite(2) through a held writer; the library's handle seeks, writes and seeks back."""
        held = data.draw(st.sampled_from([held for held in self.handles if held.writable]), label="writer")
        position = held.handle.tell()
        held.handle.seek(offset)
        held.handle.write(payload)
        held.handle.seek(position)
        os.pwrite(held.descriptor, payload, offset)

    def close_replaced(self, path: str) -> None:
        """Close the handles on the file ``path`` leads to (the links followed) if it is a file
        of the upper, which ``writebytes`` and ``copy`` replace atomically: a handle keeps the
        old file, where the kernel truncates and rewrites it in place (docs/semantics.rst).
        Every handle on that file, by whatever path it was opened (``/c/c/a`` through links
        is ``/b``): the kernel's descriptor on the same inode. A lower file (the kernel copies
        it up, and the handles follow) or a removed one (a new file: handles stay on the old
        one) keeps its handles, and they are checked."""
        assert self.kernel is not None
        try:
            followed = KernelView(self.kernel.merged)._followed(path)
        except OSError:
            return  # nothing there yet (or a link loop): a new file, which no handle is on
        real = self.kernel.upper + followed[len(self.kernel.merged):]
        if not (os.path.isfile(real) and not os.path.islink(real)):
            return
        status = os.stat(followed)
        kept = []
        for held in self.handles:
            on = os.fstat(held.descriptor)
            if (on.st_dev, on.st_ino) == (status.st_dev, status.st_ino):
                held.close()
            else:
                kept.append(held)
        self.handles = kept

    def close_handles(self, path: Optional[str] = None, below: bool = False) -> None:
        """Close the held handles (those on ``path`` only, if given; or ``below`` it too)."""
        kept = []
        for held in self.handles:
            if path is None or held.path == path or (below and _below(held.path, path)):
                held.close()
            else:
                kept.append(held)
        self.handles = kept

    # -- queries -------------------------------------------------------------------------------------

    # -- symbolic and hard links ---------------------------------------------------------------------

    @rule(data=st.data())
    def link(self, data: st.DataObject) -> None:
        """link(2); an upper without system paths cannot hold one (``Unsupported``, checked
        against the library's documented refusal instead of the kernel)."""
        existing, new = self.path(data, "existing", kind="file"), self.path(data, "new")
        if self.upper_kind == "memory":
            assert self.overlay is not None
            result = outcome(lambda: self.overlay.link(existing, new))
            assert result.error is not None, "link into a MemoryFS upper must be refused"
            return
        if self.both("link", existing, new, paths=[existing, new]).error is None:
            self.note_linked(new)  # (a refused link links nothing: what is at ``new`` was there before)

    @rule(data=st.data())
    def nlink(self, data: st.DataObject) -> None:
        """``st_nlink`` of a non-directory, where the library's layer shows one (on disk)."""
        assert self.overlay is not None and self.kernel is not None
        path = self.path(data, kind="file")
        library = outcome(lambda: LibraryView(self.overlay).nlink(path))
        kernel = outcome(lambda: KernelView(self.kernel.merged, self.kernel).nlink(path))
        if kernel.error is None and library.error is None and library.value is None:
            return  # a MemoryFS layer has no st_nlink to compare
        if kernel.error is None and KernelView(self.kernel.merged).isdir(path, follow=False):
            return  # a merged directory's count is the kernel's own invention (1)
        assert_same_outcome("nlink(%r)" % path, library, kernel, [path])

    # -- structure -----------------------------------------------------------------------------------

    @rule()
    def reopen(self) -> None:
        """A new OverlayFS over the same upper; the kernel unmounts and mounts again."""
        assert self.overlay is not None and self.kernel is not None
        self.close_handles()  # handles belong to one overlay instance and one mount
        self.overlay.close()
        self.overlay = OverlayFS(self.lowers, upper=self.upper, **self.library_options)
        self.kernel.reopen()

    @precondition(lambda self: len(self.lowers) < MAX_LOWERS)
    @rule()
    def stack(self) -> None:
        """The upper becomes the topmost lower under a fresh, empty upper (on the kernel side
        with its whiteout devices and opaque xattrs, the kernel's own form)."""
        assert self.overlay is not None and self.kernel is not None and self.upper is not None
        self.close_handles()  # handles belong to one overlay instance and one mount
        self.overlay.close()
        self.lowers.insert(0, self.guard(self.upper))
        self.upper = self._fresh_upper()
        self.overlay = OverlayFS(self.lowers, upper=self.upper, **self.library_options)
        self.kernel.stack()


def _below(path: str, directory: str) -> bool:
    return path.startswith(directory.rstrip("/") + "/")


def _settings() -> settings:
    """The profile's settings (``HYPOTHESIS_PROFILE``) with twice its sequences, health checks
    off as for any state machine; ``UNIONFS_KERNEL_EXAMPLES`` and ``UNIONFS_KERNEL_STEPS``
    override the number and length of sequences (for long soak runs)."""
    # Measured on 2 idle cores: the ci profile's 200 x 40 per upper kind took 25 s for both
    # kinds, so doubling the sequences stays well inside the suite's few-minute budget.
    extra = {"max_examples": 2 * settings.default.max_examples}
    for variable, name in (("UNIONFS_KERNEL_EXAMPLES", "max_examples"), ("UNIONFS_KERNEL_STEPS", "stateful_step_count")):
        if os.environ.get(variable):
            extra[name] = int(os.environ[variable])
    return settings(settings.default, suppress_health_check=list(HealthCheck), **extra)


class OSFSUpperMachine(KernelMachine):
    upper_kind = "os"


class RedirectMachine(KernelMachine):
    """The kernel with ``redirect_dir=on,metacopy=on`` against the library's defaults: directory
    renames are the kernel's real rename(2)s, chmod/utime/rename of lower files copy metadata only."""

    kernel_options = REDIRECT_OPTIONS
    library_options: Dict[str, bool] = {}


class RedirectOSFSMachine(RedirectMachine):
    upper_kind = "os"
class KernelLowersMachine(KernelMachine):
    """OSFS upper over the kernel mount's own lower directories (kernel-format layers)."""

    upper_kind = "os"
    lower_kind = "kernel"


TestKernelMemoryUpper = KernelMachine.TestCase
TestKernelMemoryUpper.settings = _settings()
TestKernelOSFSUpper = OSFSUpperMachine.TestCase
TestKernelOSFSUpper.settings = _settings()
TestKernelRedirectMemoryUpper = RedirectMachine.TestCase
TestKernelRedirectMemoryUpper.settings = _settings()
TestKernelRedirectOSFSUpper = RedirectOSFSMachine.TestCase
TestKernelRedirectOSFSUpper.settings = _settings()
TestKernelKernelLowers = KernelLowersMachine.TestCase
TestKernelKernelLowers.settings = _settings()
