"""Caches never serve stale answers: after every operation through a long-lived overlay
(warm caches), its whole view equals that of a brand-new overlay over the same upper (cold
caches). Random operations on a small name space, so they collide often."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from typing import Dict, Tuple

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import unionfs  # noqa: F401
from fs import errors
from fs.copy import copy_fs
from fs.memoryfs import MemoryFS
from fs.info import Info
from fs.base import FS
from fs.osfs import OSFS

from unionfs import OverlayFS
from unionfs.testing import trees

from tests.conftest import snapshot

NAMES = st.sampled_from(["a", "b", "c"])
PATHS = st.lists(NAMES, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
EVERY_PATH = ["/" + "/".join(p) for p in itertools.chain.from_iterable(
    itertools.product("abc", repeat=depth) for depth in (1, 2, 3))]


def view(overlay: OverlayFS) -> Dict[str, Tuple[str, bytes]]:
    """Every path of the merged view with its type and content, by walking listdir."""
    def record(fs: FS, path: str, info: Info) -> Tuple[str, bytes]:
        if info.is_dir:
            return ("dir", b"")
        data = fs.readbytes(path)
        assert info.size == len(data), path
        return ("file", data)

    return trees.snapshot(overlay, record, namespaces=["details"], sidecar=True)


def probes(overlay: OverlayFS) -> Dict[str, Tuple[bool, bool]]:
    """exists/isdir of every path the operations can name: lookups, not listings."""
    return {path: (overlay.exists(path), overlay.isdir(path)) for path in EVERY_PATH}


def build_lowers():
    bottom = trees.make_tree(MemoryFS(), {"a/b/c": "bottom c", "b": "bottom b", "c/a/": None})
    top = trees.make_tree(MemoryFS(), {"a/c/": None, "a/a": "top a", "b/a": "top b/a"})
    return [top, bottom]


EXPECTED = (errors.ResourceError, errors.ResourceInvalid, errors.RemoveRootError, unionfs.IllegalDestination)


class WarmVersusCold(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.lowers = [self._on_disk(layer, "lower%d" % index) for index, layer in enumerate(build_lowers())]
        self.before = [snapshot(layer) for layer in self.lowers]
        self.upper = self._on_disk(MemoryFS(), "upper")
        self.overlay = OverlayFS(self.lowers, self.upper)
        view(self.overlay)  # warm every cache
        probes(self.overlay)

    def _on_disk(self, memory: MemoryFS, name: str):  # the layers as they are (MemoryFS)
        return memory

    def attempt(self, operation, *args) -> None:
        try:
            operation(*args)
        except EXPECTED:
            pass

    @rule(path=PATHS, data=st.binary(max_size=8))
    def write(self, path, data):
        self.attempt(self.overlay.writebytes, path, data)

    @rule(path=PATHS, data=st.binary(min_size=1, max_size=4))
    def append(self, path, data):
        self.attempt(self.overlay.appendbytes, path, data)

    @rule(path=PATHS)
    def remove(self, path):
        self.attempt(self.overlay.remove, path)

    @rule(path=PATHS)
    def removedir(self, path):
        self.attempt(self.overlay.removedir, path)

    @rule(path=PATHS)
    def removetree(self, path):
        self.attempt(self.overlay.removetree, path)

    @rule(path=PATHS)
    def makedir(self, path):
        self.attempt(self.overlay.makedir, path)

    @rule(path=PATHS)
    def hide(self, path):
        self.attempt(self.overlay.hide, path)

    @rule(path=PATHS)
    def make_opaque(self, path):
        self.attempt(self.overlay.make_opaque, path)

    @rule(src=PATHS, dst=PATHS)
    def move(self, src, dst):
        self.attempt(self.overlay.move, src, dst, True)

    @rule(src=PATHS, dst=PATHS)
    def movedir(self, src, dst):
        self.attempt(self.overlay.movedir, src, dst, True)

    @rule(src=PATHS, dst=PATHS)
    def copy(self, src, dst):
        self.attempt(self.overlay.copy, src, dst, True)

    @rule(path=PATHS)
    def touch_times(self, path):
        self.attempt(self.overlay.setinfo, path, {"details": {"modified": 1000}})

    @invariant()
    def warm_equals_cold(self):
        cold = OverlayFS(self.lowers, self.upper)
        assert probes(self.overlay) == probes(cold)
        assert view(self.overlay) == view(cold)

    @invariant()
    def lowers_untouched(self):
        assert [snapshot(layer) for layer in self.lowers] == self.before


TestWarmVersusCold = WarmVersusCold.TestCase


class WarmVersusColdOnDiskTinyCaches(WarmVersusCold):
    """The same on OSFS layers (lookups by ``os.stat``, listings by ``os.scandir``, records by
    ``lstat``) with every cache bounded to a few entries, so that evictions happen all the
    time: an evicted answer is asked again, never left stale."""

    def __init__(self) -> None:
        self.scratch = tempfile.mkdtemp(prefix="coherence-")
        self._limits = _set_limits(node=3, listing=4, index=4, records=2, real=2)
        super().__init__()

    def _on_disk(self, memory: MemoryFS, name: str) -> OSFS:
        os.makedirs(os.path.join(self.scratch, name))
        layer = OSFS(os.path.join(self.scratch, name))
        copy_fs(memory, layer)
        return layer

    def teardown(self) -> None:
        _set_limits(**self._limits)
        shutil.rmtree(self.scratch, ignore_errors=True)


def _set_limits(node: int, listing: int, index: int, records: int, real: int) -> Dict[str, int]:
    """Set the cache bounds new overlays get; return the ones they replace."""
    from unionfs.core import lookup, sidecar, stack

    old = dict(node=lookup.NODE_LIMIT, listing=lookup.LISTING_LIMIT, index=stack.INDEX_LIMIT,
               records=sidecar.RECORD_DIR_LIMIT, real=sidecar.REAL_DIR_LIMIT)
    lookup.NODE_LIMIT, lookup.LISTING_LIMIT, stack.INDEX_LIMIT = node, listing, index
    sidecar.RECORD_DIR_LIMIT, sidecar.REAL_DIR_LIMIT = records, real
    return old


TestWarmVersusColdOnDiskTinyCaches = WarmVersusColdOnDiskTinyCaches.TestCase
TestWarmVersusColdOnDiskTinyCaches.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)


def test_cache_movedir_forgets_answers_below_copied_up_directories(guard_lower):
    """Regression (found by the kernel suite): copy-up of ``/c/a`` during a movedir used to
    detach the cached answers below it, so ``/c/a/c`` still existed after ``/c`` was gone."""
    bottom = trees.make_tree(MemoryFS(), {"c/a/c/": None, "c/a/a": ""})
    overlay = OverlayFS([guard_lower(bottom)], MemoryFS())
    overlay.makedir("/a")
    assert overlay.exists("/c/a/c")
    overlay.movedir("/c", "/a")
    assert not overlay.exists("/c/a/c") and not overlay.exists("/c")
    assert sorted(overlay.walk.dirs("/")) == ["/a", "/a/a", "/a/a/c"]
