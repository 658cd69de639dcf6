"""A unionfs mount against a kernel overlay mount, by Hypothesis stateful testing: the
kernel property suite's layer stacks and all its operations that are system calls, done
with the same calls (``KernelView``: ``os.*`` on the merged directory) on both mounts:
writes (O_TRUNC, O_APPEND, pwrite, O_EXCL, truncate), reads, utimes, unlink, rename, copies,
mkdir/rmdir/``rm -rf``/``cp -a``, listings and lstat, symlink/readlink/link and link
counts, descriptors held open read-only or read-write across steps (read on, pwrite,
ftruncate through them), remounts, ``hide``/``make_opaque`` on the unmounted uppers, and
stacking (each side's upper rotated into its lowers: the kernel's in kernel form, ours in
sidecar form). After every step the merged trees, file times, permission bits and what
each held descriptor reads must agree. The unionfs mount reads the very same
kernel-format lower directories (whiteout devices, opaque xattrs)."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from typing import List, Optional, Sequence, Tuple

import attr
import pytest
from fs.errors import FSError
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.support.kernel_oracle import (
    DIR,
    FILE,
    SYMLINK,
    Entry,
    KernelOverlay,
    KernelView,
    LibraryView,
    Outcome,
    assert_same_file_times,
    assert_same_modes,
    assert_same_outcome,
    assert_same_tree,
    build_kernel_layer,
    outcome,
    realistic,
)
from tests.support.mount import ThreadMount, why_no_fuse

_UNAVAILABLE = why_no_fuse()
if _UNAVAILABLE:
    if os.environ.get("UNIONFS_REQUIRE_MOUNT") == "1":
        raise RuntimeError("FUSE mounts required (UNIONFS_REQUIRE_MOUNT=1) but unavailable: " + _UNAVAILABLE)
    pytest.skip(_UNAVAILABLE, allow_module_level=True)

from tests.support.kernel_rules import Draws, SharedRules, layer_stacks, small, some_bytes  # noqa: E402
from unionfs.tools.mount import open_overlay  # noqa: E402


@attr.s(slots=True)
class Held:
    """A descriptor held open across steps on each mount: ours and the kernel's."""

    path: str = attr.ib()
    mine: int = attr.ib()
    theirs: int = attr.ib()
    writable: bool = attr.ib()

    def close(self) -> None:
        os.close(self.mine)
        os.close(self.theirs)


class MountMachine(SharedRules, RuleBasedStateMachine):
    """Random system calls on a kernel overlay and on a unionfs mount, compared step by step.

    Every rule of the kernel property suite (``tests/core/test_kernel_properties.py``) that is
    a system call runs here as the very same ``KernelView`` call on both merged directories
    (the rules the two share are written once, in ``tests/support/kernel_rules.py``):
    so, unlike the library there, the mount has one deviation only to excuse, the library's
    link of a metadata-only file (its time, :meth:`SharedRules.linked_metadata_only`; ``writebytes`` is
    open(O_TRUNC) on both sides, handles on a rewritten file see the new data; ``movedir``
    is ``cp -a`` + ``rm -rf`` on both). ``hide`` and ``make_opaque``, which have no system
    call, are the kernel's hand edit of its unmounted upper against ``OverlayFS.hide`` /
    ``make_opaque`` on our unmounted upper."""

    def __init__(self) -> None:
        super().__init__()
        self.kernel: Optional[KernelOverlay] = None
        self.mount: Optional[ThreadMount] = None
        self.root = tempfile.mkdtemp(prefix="unionfs-mount-diff-")
        self.lowers: List[str] = []
        self.upper = ""
        self.serial = 0
        self.visible: List[str] = []
        self.visible_dirs: List[str] = ["/"]
        self.visible_files: List[str] = []
        self.handles: List[Held] = []
        self.last_numbers: Optional[dict] = None  # each side's st_ino per name at the last step
        self.linked_inodes = set()  # (SharedRules.note_linked)

    def _fresh(self, kind: str) -> str:
        self.serial += 1
        path = os.path.join(self.root, "%s%d" % (kind, self.serial))
        os.mkdir(path)
        return path

    @initialize(layers=layer_stacks())
    def start(self, layers) -> None:
        self.kernel = RedirectingKernelOverlay(layers).__enter__()
        for layer in layers:  # the same kernel-format layers, built once more for our mount
            directory = self._fresh("lower")
            build_kernel_layer(layer, directory)
            self.lowers.append(directory)
        self.upper = self._fresh("upper")
        self._mount()

    def _mount(self) -> None:
        self.mount = ThreadMount(self.lowers, self.upper, self._fresh("mnt"))
        self.last_numbers = None

    def teardown(self) -> None:
        try:
            self.close_handles()
            if self.mount is not None:
                self.mount.close()
        finally:
            if self.kernel is not None:
                self.kernel.close()
            shutil.rmtree(self.root, ignore_errors=True)

    def views(self) -> Tuple[KernelView, KernelView]:
        assert self.mount is not None and self.kernel is not None
        return KernelView(self.mount.mountpoint), KernelView(self.kernel.merged, self.kernel)

    def both(self, operation: str, *args: object, paths: Sequence[str]) -> Outcome:
        ours, kernels = self.views()
        mine = outcome(lambda: getattr(ours, operation)(*args))
        theirs = outcome(lambda: getattr(kernels, operation)(*args))
        assert_same_outcome("%s%r" % (operation, args), mine, theirs, paths)
        return theirs

    @invariant()
    def same_view(self) -> None:
        """Trees, file times, permission bits and what every held descriptor reads agree."""
        if self.mount is None or self.kernel is None:
            return
        ours, kernels = self.views()
        our_times: dict = {}
        kernel_times: dict = {}
        our_modes: dict = {}
        kernel_modes: dict = {}
        kernel_tree = kernels.tree(kernel_times, kernel_modes)
        assert_same_tree(ours.tree(our_times, our_modes), kernel_tree)
        for path in self.linked_metadata_only(kernel_times):  # the library's deviation (docs/semantics.rst)
            kernel_times.pop(path)
            our_times.pop(path, None)
        assert_same_file_times(our_times, kernel_times)
        assert_same_modes(our_modes, kernel_modes)
        for held in self.handles:
            assert os.pread(held.mine, 1 << 16, 0) == os.pread(held.theirs, 1 << 16, 0), "the descriptor held on %s" % held.path
        self.same_inodes(kernel_tree)
        self.note_visible(kernel_tree)

    def same_inodes(self, tree: dict) -> None:
        """``st_ino`` of the non-directories: the names that share a number (hard links) are
        the same on both, and a name keeps its number from step to step on ours exactly where
        it does on the kernel's (copy-up, rename and writes keep it; a new file at the name,
        after unlink or rename over it, gets a new one). Not compared across remounts: the
        kernel's numbers are the layers' own, ours are the mount's."""
        assert self.mount is not None and self.kernel is not None
        numbers = {}
        for side, root in (("mine", self.mount.mountpoint), ("theirs", self.kernel.merged)):
            found = {}
            for path, entry in tree.items():
                if entry != ("dir",):
                    found[path] = os.lstat(root + path).st_ino
            numbers[side] = found
        groups = {}
        for side, found in numbers.items():
            by_number: dict = {}
            for path, number in found.items():
                by_number.setdefault(number, set()).add(path)
            groups[side] = sorted(sorted(group) for group in by_number.values() if len(group) > 1)
        assert groups["mine"] == groups["theirs"], "names sharing an inode number (ours, the kernel's): %r" % (groups,)
        if self.last_numbers is not None:
            kept = {}
            for side, found in numbers.items():
                kept[side] = sorted(path for path, number in found.items()
                                    if path in self.last_numbers[side] and self.last_numbers[side][path] == number)
            assert kept["mine"] == kept["theirs"], "names that kept their inode number (ours, the kernel's): %r" % (kept,)
        self.last_numbers = numbers

    # -- files ---------------------------------------------------------------------------------------

    @rule(data=st.data())
    def rename(self, data) -> None:
        """rename(2) of anything (a directory too: lower, merged or upper) onto anything,
        the errno compared exactly."""
        src, dst = self.path(data, "src", kind="dir"), self.path(data, "dst")
        kept = self.kernel_parent_times(src)
        theirs = self.syscall("rename(%r, %r)" % (src, dst), lambda view: os.rename(view._real(src), view._real(dst)))
        if kept is not None and isinstance(theirs.error, _Errno) and theirs.error.number == errno.ENOTEMPTY:
            # ext4's rename(RENAME_WHITEOUT) stamps the source's directory before it finds the
            # target not empty (a tmpfs upper does not); the library's failed call changes
            # nothing, as the kernel over tmpfs (docs/semantics.rst): the kernel side's
            # stamp is undone
            os.utime(kept[0], ns=kept[1], follow_symlinks=False)

    def kernel_parent_times(self, path: str) -> Optional[Tuple[str, Tuple[int, int]]]:
        """The kernel side's directory of ``path`` (its links followed) and its times."""
        assert self.kernel is not None
        try:
            parent = KernelView(self.kernel.merged, self.kernel)._real(path).rsplit("/", 1)[0] or "/"
            status = os.lstat(parent)
        except OSError:
            return None
        return parent, (status.st_atime_ns, status.st_mtime_ns)

    @rule(data=st.data(), mode=st.sampled_from([0o600, 0o640, 0o644, 0o700, 0o711, 0o755, 0o777, 0o2755, 0o1777]))
    def chmod(self, data, mode) -> None:
        """chmod(2), links followed (a copy-up of the metadata). With the special bits: ``cp -a``
        (``movedir``) sets a destination directory's bits with a POSIX ACL (setxattr of
        ``system.posix_acl_access``), which keeps its sticky and set-group-ID bits on both."""
        path = self.path(data, root=True)
        self.syscall("chmod(%r, %o)" % (path, mode), lambda view: os.chmod(view._followed(path), mode))

    def syscall(self, what: str, call) -> Outcome:
        """``call(view)`` on both mounts: the same success, or the same errno."""
        ours, kernels = self.views()
        mine = outcome(lambda: _errno_of(call, ours))
        theirs = outcome(lambda: _errno_of(call, kernels))
        assert mine == theirs, "%s: ours %s, the kernel's %s" % (what, mine.describe(), theirs.describe())
        return theirs

    # -- directories ---------------------------------------------------------------------------------

    @rule(data=st.data(), create=st.booleans())
    def movedir(self, data, create) -> None:
        """``cp -a src/. dst`` + ``rm -rf src`` on both mounts (the same system calls)."""
        src, dst = self.path(data, "src", kind="dir"), self.path(data, "dst")
        self.both("movedir", src, dst, create, paths=(src, dst))

    def offline(self, operation: str, path: str) -> None:
        assert self.mount is not None and self.kernel is not None
        self.mount.close()
        overlay = open_overlay(self.lowers, self.upper)
        try:
            mine = outcome(lambda: getattr(LibraryView(overlay), operation)(path))
        finally:
            overlay.close()
        # before our mount serves again: it sets this process's umask to 0 while it serves
        # (modes come from the kernel with the caller's umask applied), and the kernel side's
        # hand edit makes directories with this process's umask
        theirs = outcome(lambda: getattr(KernelView(self.kernel.merged, self.kernel), operation)(path))
        self._mount()
        assert_same_outcome("%s(%r)" % (operation, path), mine, theirs, (path,))

    # -- descriptors held across steps ---------------------------------------------------------------

    @precondition(lambda self: len(self.handles) < 3)
    @rule(data=st.data(), writable=st.booleans())
    def open_handle(self, data, writable) -> None:
        """open(O_RDONLY) or open(O_RDWR) (a copy-up), held: what each reads after later
        copy-ups, writes through other names, truncations, unlinks and renames must agree."""
        path = self.path(data, kind="file")
        ours, kernels = self.views()
        if kernels.isdir(path):
            return
        mine = outcome(lambda: ours.open_handle(path, writable))
        theirs = outcome(lambda: kernels.open_handle(path, writable))
        if (mine.error is None) != (theirs.error is None):
            for opened in (mine.value, theirs.value):
                if opened is not None:
                    os.close(opened)
        # descriptors differ by number: compare success and error only
        assert_same_outcome("open_handle(%r, %r)" % (path, writable), attr.evolve(mine, value=None),
                            attr.evolve(theirs, value=None), (path,))
        if theirs.error is None:
            self.handles.append(Held(path, mine.value, theirs.value, writable))

    @precondition(lambda self: self.handles)
    @rule(data=st.data(), size=small)
    def read_held(self, data, size) -> None:
        """read(2) on from each descriptor's own position."""
        held = data.draw(st.sampled_from(self.handles), label="handle")
        assert os.read(held.mine, size) == os.read(held.theirs, size), "reading on from %s" % held.path

    @precondition(lambda self: any(held.writable for held in self.handles))
    @rule(data=st.data(), offset=small, payload=some_bytes)
    def write_held(self, data, offset, payload) -> None:
        """pwrite(2) through a held writer."""
        held = data.draw(st.sampled_from([held for held in self.handles if held.writable]), label="writer")
        assert os.pwrite(held.mine, payload, offset) == os.pwrite(held.theirs, payload, offset)

    @precondition(lambda self: self.handles)
    @rule(data=st.data(), size=small)
    def ftruncate_held(self, data, size) -> None:
        """ftruncate(2) through a held descriptor (EINVAL for a read-only one, on both)."""
        held = data.draw(st.sampled_from(self.handles), label="handle")
        mine = outcome(lambda: _errno_of(os.ftruncate, held.mine, size))
        theirs = outcome(lambda: _errno_of(os.ftruncate, held.theirs, size))
        assert mine == theirs, "ftruncate of %s: ours %s, the kernel's %s" % (held.path, mine.describe(), theirs.describe())

    @rule()
    def close_handles(self) -> None:
        for held in self.handles:
            held.close()
        self.handles = []

    # -- queries -------------------------------------------------------------------------------------

    # -- symbolic and hard links ---------------------------------------------------------------------

    @rule(data=st.data())
    def link(self, data) -> None:
        existing, new = self.path(data, "existing", kind="file"), self.path(data, "new")
        if self.both("link", existing, new, paths=(existing, new)).error is None:
            self.note_linked(new)  # (a refused link links nothing: what is at ``new`` was there before)

    @rule(data=st.data())
    def nlink(self, data) -> None:
        """``st_nlink`` of a non-directory (a merged directory's count is the kernel's own, 1)."""
        path = self.path(data, kind="file")
        if self.views()[1].isdir(path, follow=False):
            return
        self.both("nlink", path, paths=(path,))

    # -- structure -----------------------------------------------------------------------------------

    @rule()
    def remount(self) -> None:
        assert self.mount is not None and self.kernel is not None
        self.close_handles()
        self.mount.close()
        self._mount()
        self.kernel.reopen()

    @precondition(lambda self: len(self.lowers) < 5)
    @rule()
    def stack(self) -> None:
        assert self.mount is not None and self.kernel is not None
        self.close_handles()
        self.mount.close()
        self.lowers.insert(0, self.upper)
        self.upper = self._fresh("upper")
        self._mount()
        self.kernel.stack()


def _errno_of(call, *args) -> None:
    """Run a system call; its OSError becomes an outcome that compares by errno."""
    try:
        call(*args)
    except OSError as error:
        raise _Errno(error.errno)


class RedirectingKernelOverlay(KernelOverlay):
    """The kernel overlay with ``redirect_dir=on,metacopy=on``, as the unionfs mount behaves
    (docs/mount.rst): rename(2) of a lower or merged directory then works instead of EXDEV,
    and a chmod or rename of a lower file copies up its metadata only (its data copy-up at
    the first open for writing stamps the time "now" on both)."""

    @property
    def options(self) -> str:
        return super().options + ",redirect_dir=on,metacopy=on"


class _Errno(FSError):
    def __init__(self, number: int) -> None:
        super().__init__(msg=errno.errorcode.get(number, str(number)))
        self.number = number

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Errno) and other.number == self.number

    def __hash__(self) -> int:
        return self.number


_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")
MountMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("UNIONFS_MOUNT_EXAMPLES", 40 if _PROFILE == "ci" else 10)),
    stateful_step_count=int(os.environ.get("UNIONFS_MOUNT_STEPS", 25)),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=_PROFILE in ("ci", "ci-quick"),  # CI's two runs draw the same sequences every time
    # shrinking costs a mount per try: UNIONFS_MOUNT_SHRINK=0 reports the first failure as found
    phases=tuple(Phase) if os.environ.get("UNIONFS_MOUNT_SHRINK", "1") == "1" else (Phase.explicit, Phase.reuse, Phase.generate),
)
TestMountAgainstKernel = MountMachine.TestCase


# -- failures found by random runs, replayed step by step ------------------------------------------


def _replay(layers, *steps) -> None:
    """The machine over ``layers``, each step ``(rule, draws, arguments)`` followed by the
    invariant, as the Hypothesis run does; torn down whatever happens."""
    made = MountMachine()
    try:
        made.start(layers=realistic(layers))
        made.same_view()
        for rule, draws, arguments in steps:
            getattr(made, rule)(Draws(*draws), **arguments)
            made.same_view()
    finally:
        made.teardown()


def test_rename_between_two_hard_links_of_one_file_changes_nothing(kernel_overlay):
    """A soak run: link('/a', '/b'); rename('/a', '/b'). rename(2) between two names of one
    file leaves both (the kernel overlay's VFS sees one inode); the mount removed '/a'
    (``OverlayFS.rename`` lacked ``move``'s same-file check), and then gave the name a new
    inode number."""
    _replay([{"/a": Entry(FILE, b"")}], ("link", ["/a", "/b"], {}), ("rename", ["/a", "/b"], {}))


def test_a_linked_file_opened_for_writing_is_the_documented_deviation(kernel_overlay):
    """A soak run: link('/a', '/b'); open('/a', O_RDWR). The kernel linked a metadata-only
    copy and stamps "now" at its data copy-up; the library (so the mount) copied the data at
    the link and keeps the lower's time (docs/semantics.rst). The machine excuses that
    deviation as the property machine does, and still compares the data."""
    _replay([{"/a": Entry(FILE, b"\x00")}], ("link", ["/a", "/b"], {}), ("open_handle", ["/a"], {"writable": True}))


def test_a_failed_rename_leaves_the_source_directory_as_it_was(kernel_overlay):
    """A soak run: settimes('/c', 0, 0); movedir('/b', '/a'); rename('/c/a', '/a'), which
    fails with ENOTEMPTY on both. The kernel's upper is ext4 here, whose rename with
    RENAME_WHITEOUT stamped '/c' "now" before it found '/a' not empty (over a tmpfs upper
    '/c' keeps its 0); the library's failed call changes nothing (docs/semantics.rst), and
    the machine undoes the kernel side's stamp."""
    _replay(
        [{"/b": Entry(DIR), "/b/a": Entry(DIR), "/b/b": Entry(SYMLINK, target="a"), "/c": Entry(DIR), "/c/a": Entry(DIR)}],
        ("settimes", ["/c"], {"accessed": 0, "modified": 0}),
        ("movedir", ["/b", "/a"], {"create": True}),
        ("rename", ["/c/a", "/a"], {}),
    )
