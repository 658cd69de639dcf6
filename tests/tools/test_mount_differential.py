"""A unionfs mount against a kernel overlay mount, by Hypothesis stateful testing: the
kernel property suite's layer stacks and operations, done with the same system calls
(``KernelView``: ``os.*`` on the merged directory) on both mounts, open read handles
included; after every step the merged trees, file times and what each held descriptor
reads must agree. The unionfs mount reads the very same kernel-format lower directories
(whiteout devices, opaque xattrs); ``stack`` rotates each side's upper into its lowers
(the kernel's upper in kernel form, ours in sidecar form)."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.support.kernel_oracle import (
    KernelOverlay,
    KernelView,
    assert_same_file_times,
    assert_same_outcome,
    assert_same_tree,
    build_kernel_layer,
    outcome,
)
from tests.support.mount import ThreadMount, why_no_fuse

_UNAVAILABLE = why_no_fuse()
if _UNAVAILABLE:
    if os.environ.get("UNIONFS_REQUIRE_MOUNT") == "1":
        raise RuntimeError("FUSE mounts required (UNIONFS_REQUIRE_MOUNT=1) but unavailable: " + _UNAVAILABLE)
    pytest.skip(_UNAVAILABLE, allow_module_level=True)

from tests.core.test_kernel_properties import NAMES, contents, layer_stacks, paths, small, some_bytes, times  # noqa: E402


def _raise(error: BaseException) -> None:
    raise error


class MountMachine(RuleBasedStateMachine):
    """Random system calls on a kernel overlay and on a unionfs mount, compared step by step."""

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
        self.readers: List[Tuple[str, int, int]] = []  # path, our descriptor, the kernel's

    def _fresh(self, kind: str) -> str:
        self.serial += 1
        path = os.path.join(self.root, "%s%d" % (kind, self.serial))
        os.mkdir(path)
        return path

    @initialize(layers=layer_stacks())
    def start(self, layers) -> None:
        self.kernel = KernelOverlay(layers).__enter__()
        for layer in layers:  # the same kernel-format layers, built once more for our mount
            directory = self._fresh("lower")
            build_kernel_layer(layer, directory)
            self.lowers.append(directory)
        self.upper = self._fresh("upper")
        self._mount()

    def _mount(self) -> None:
        self.mount = ThreadMount(self.lowers, self.upper, self._fresh("mnt"))

    def teardown(self) -> None:
        try:
            self.close_readers()
            if self.mount is not None:
                self.mount.close()
        finally:
            if self.kernel is not None:
                self.kernel.close()
            shutil.rmtree(self.root, ignore_errors=True)

    def views(self) -> Tuple[KernelView, KernelView]:
        assert self.mount is not None and self.kernel is not None
        return KernelView(self.mount.mountpoint), KernelView(self.kernel.merged)

    def both(self, operation: str, *args: object, paths: Tuple[str, ...]) -> None:
        ours, kernels = self.views()
        mine = outcome(lambda: getattr(ours, operation)(*args))
        theirs = outcome(lambda: getattr(kernels, operation)(*args))
        assert_same_outcome("%s%r" % (operation, args), mine, theirs, paths)

    @invariant()
    def same_view(self) -> None:
        if self.mount is None or self.kernel is None:
            return
        ours, kernels = self.views()
        our_times: dict = {}
        kernel_times: dict = {}
        kernel_tree = kernels.tree(kernel_times)
        assert_same_tree(ours.tree(our_times), kernel_tree)
        assert_same_file_times(our_times, kernel_times)
        for path, mine, theirs in self.readers:
            assert os.pread(mine, 1 << 16, 0) == os.pread(theirs, 1 << 16, 0), "the reader held on %s" % path
        self.visible = sorted(kernel_tree)
        self.visible_dirs = ["/"] + sorted(p for p, entry in kernel_tree.items() if entry == ("dir",))

    def path(self, data: st.DataObject, label: str = "path") -> str:
        choices = [paths, st.builds(lambda d, n: d.rstrip("/") + "/" + n, st.sampled_from(self.visible_dirs),
                                    st.sampled_from(NAMES))]
        if self.visible:
            choices.append(st.sampled_from(self.visible))
        return data.draw(st.one_of(choices), label=label)

    @rule(data=st.data(), payload=contents)
    def write(self, data, payload) -> None:
        path = self.path(data)
        self.both("writebytes", path, payload, paths=(path,))

    @rule(data=st.data(), payload=some_bytes)
    def append(self, data, payload) -> None:
        path = self.path(data)
        self.both("appendbytes", path, payload, paths=(path,))

    @rule(data=st.data(), offset=small, payload=some_bytes)
    def write_at(self, data, offset, payload) -> None:
        path = self.path(data)
        self.both("write_at", path, offset, payload, paths=(path,))

    @rule(data=st.data(), payload=contents)
    def create_exclusive(self, data, payload) -> None:
        path = self.path(data)
        self.both("create_exclusive", path, payload, paths=(path,))

    @rule(data=st.data(), size=small)
    def truncate(self, data, size) -> None:
        path = self.path(data)
        self.both("truncate", path, size, paths=(path,))

    @rule(data=st.data(), accessed=times, modified=times)
    def settimes(self, data, accessed, modified) -> None:
        path = self.path(data)
        self.both("settimes", path, accessed, modified, paths=(path,))

    @rule(data=st.data())
    def remove(self, data) -> None:
        path = self.path(data)
        self.close_readers(path)
        self.both("remove", path, paths=(path,))

    @rule(data=st.data())
    def removedir(self, data) -> None:
        path = self.path(data)
        self.both("removedir", path, paths=(path,))

    @rule(data=st.data())
    def makedir(self, data) -> None:
        path = self.path(data)
        self.both("makedir", path, paths=(path,))

    @rule(data=st.data())
    def rename_file(self, data) -> None:
        src, dst = self.path(data, "src"), self.path(data, "dst")
        self.both("move", src, dst, True, paths=(src, dst))

    @rule(data=st.data())
    def removetree(self, data) -> None:
        path = self.path(data)
        self.close_readers(path, below=True)
        self.both("removetree", path, paths=(path,))

    @precondition(lambda self: len(self.readers) < 3)
    @rule(data=st.data())
    def open_reader(self, data) -> None:
        path = self.path(data)
        ours, kernels = self.views()
        if os.path.isdir(kernels.merged + path):
            return
        mine = outcome(lambda: ours.open_reader(path))
        theirs = outcome(lambda: kernels.open_reader(path))
        if (mine.error is None) != (theirs.error is None):
            for opened in (mine.value, theirs.value):
                if opened is not None:
                    os.close(opened)
        # descriptors differ by number: compare success and error only
        assert_same_outcome("open_reader(%r)" % path, outcome(lambda: mine.error and _raise(mine.error)),
                            outcome(lambda: theirs.error and _raise(theirs.error)), (path,))
        if theirs.error is None:
            self.readers.append((path, mine.value, theirs.value))

    @rule()
    def close_readers(self, path: Optional[str] = None, below: bool = False) -> None:
        kept = []
        for reader in self.readers:
            if path is None or reader[0] == path or (below and reader[0].startswith(path.rstrip("/") + "/")):
                os.close(reader[1])
                os.close(reader[2])
            else:
                kept.append(reader)
        self.readers = kept

    @rule()
    def remount(self) -> None:
        assert self.mount is not None and self.kernel is not None
        self.close_readers()
        self.mount.close()
        self._mount()
        self.kernel.reopen()

    @precondition(lambda self: len(self.lowers) < 5)
    @rule()
    def stack(self) -> None:
        assert self.mount is not None and self.kernel is not None
        self.close_readers()
        self.mount.close()
        self.lowers.insert(0, self.upper)
        self.upper = self._fresh("upper")
        self._mount()
        self.kernel.stack()


_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")
MountMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("UNIONFS_MOUNT_EXAMPLES", 40 if _PROFILE == "ci" else 10)),
    stateful_step_count=int(os.environ.get("UNIONFS_MOUNT_STEPS", 25)),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=_PROFILE == "ci",
    # shrinking costs a mount per try: UNIONFS_MOUNT_SHRINK=0 reports the first failure as found
    phases=tuple(Phase) if os.environ.get("UNIONFS_MOUNT_SHRINK", "1") == "1" else (Phase.explicit, Phase.reuse, Phase.generate),
)
TestMountAgainstKernel = MountMachine.TestCase
