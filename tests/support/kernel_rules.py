"""The kernel oracle's stateful rules, written once for both machines that use them.

``tests/core/test_kernel_properties.py`` (``OverlayFS`` against a kernel overlay) and
``tests/tools/test_mount_differential.py`` (a unionfs mount against a kernel overlay) draw
the same layer stacks and paths and run the same operations; the strategies and every rule
whose body is the same on both live here, in :class:`SharedRules`. A machine mixes it in
and supplies what differs:

* ``both(operation, *args, paths=...)``: run one ``LibraryView``/``KernelView`` operation
  on its two sides, compare the outcomes and return the kernel's;
* ``offline(operation, path)``: ``hide`` / ``make_opaque``, which have no system call;
* ``close_handles()`` and, where a whole-file replacement must close the handles on the
  file first, ``close_replaced(path)``;
* ``times_of_root``: whether ``settimes`` may pick the root (and a link that leads to it);
* ``kernel`` (the ``KernelOverlay``) and the view lists the invariant keeps up to date
  with :meth:`SharedRules.note_visible`.

Rules that differ between the two (handles, links, ``chmod``, ``movedir``, remounting,
stacking) stay in their machines.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from fs.path import join
from hypothesis import strategies as st
from hypothesis.stateful import rule

from tests.support.kernel_oracle import (
    DIR,
    FILE,
    HARDLINK,
    OPAQUE,
    RECENT,
    SYMLINK,
    WHITEOUT,
    Entry,
    KernelOverlay,
    KernelView,
    LayerSpec,
    Outcome,
    Tree,
    add_entry,
    realistic,
)

#: A three-letter alphabet and at most three levels: the same names keep colliding.
NAMES = "abc"
paths = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
contents = st.binary(max_size=6)
#: Writes into an open file carry at least one byte: a write(2) of nothing leaves the mtime
#: alone, while MemoryFS's file objects stamp it anyway (a backend quirk, not overlay semantics).
some_bytes = st.binary(min_size=1, max_size=6)
small = st.integers(min_value=0, max_value=8)
times = st.integers(min_value=0, max_value=RECENT - 1)  # old: tell set times from fresh ones

#: Link targets: relative (sideways, up, down, chains through other links of the alphabet),
#: absolute (from the overlay's root: the kernel side resolves them in the mount with
#: openat2's RESOLVE_IN_ROOT, as a chrooted process would), up past the root, dangling, to
#: directories, to themselves (loops), and ``.``/``..``.
link_targets = st.one_of(
    st.sampled_from(NAMES),
    st.builds(lambda a, b: a + "/" + b, st.sampled_from(NAMES + "."), st.sampled_from(NAMES)),
    st.builds(lambda a: "../" + a, st.sampled_from(NAMES)),
    paths,
    st.sampled_from(["../../..", "../../../a", "/a/../b", ".", "..", "nowhere", "/nowhere/a", "a/./b/"]),
)

dir_modes = st.sampled_from([None, 0o700, 0o750])
file_modes = st.sampled_from([None, 0o600])
entries = st.one_of(
    st.builds(Entry, st.just(DIR), st.just(b""), dir_modes),
    st.builds(Entry, st.just(OPAQUE), st.just(b""), dir_modes),
    st.builds(Entry, st.just(FILE), contents, file_modes),
    st.just(Entry(WHITEOUT)),
    st.builds(Entry, st.just(SYMLINK), target=link_targets),
    st.just(Entry(HARDLINK)),  # to a file of its layer, chosen below (dropped if there is none)
)


@st.composite
def layer_stacks(draw: st.DrawFn) -> List[LayerSpec]:
    """One to four lower layers, topmost first, colliding on a tiny name space: files over
    directories and back, nested and empty directories, whiteouts and opaque directories,
    symbolic links of every kind and hard links to files of the same layer."""
    layers = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        layer: LayerSpec = {}
        hard_links = []
        for path, entry in draw(st.lists(st.tuples(paths, entries), max_size=8)):
            if entry.kind == HARDLINK:
                hard_links.append(path)
            else:
                add_entry(layer, path, entry)
        files = sorted(path for path, entry in layer.items() if entry.kind == FILE)
        for path in hard_links:
            if files:
                add_entry(layer, path, Entry(HARDLINK, target=draw(st.sampled_from(files))))
        layers.append(layer)
    return realistic(layers)


class Draws:
    """Hypothesis's ``data()`` for a rule of a kernel machine called by hand (a replayed
    failure): every ``draw`` returns the next of the scripted values, whatever the strategy."""

    def __init__(self, *values: Any) -> None:
        self.values = list(values)

    def draw(self, strategy: Any, label: Optional[str] = None) -> Any:
        return self.values.pop(0)


class SharedRules:
    """The rules both kernel machines run the same way (mixed into a ``RuleBasedStateMachine``:
    Hypothesis collects rules from the whole class hierarchy)."""

    kernel: Optional[KernelOverlay]
    visible: List[str]  # the merged tree's paths after the last step
    visible_dirs: List[str]
    visible_files: List[str]

    #: the kernel upper's inodes of files hard-linked through the overlay (:meth:`note_linked`)
    linked_inodes: Set[Tuple[int, int]]

    #: whether ``settimes`` may pick the root, or a link that leads to it
    times_of_root = True

    # -- what a machine supplies ---------------------------------------------------------------------

    def both(self, operation: str, *args: object, paths: Sequence[str]) -> Outcome:
        """Returns the kernel's outcome (the other side's is the same)."""
        raise NotImplementedError

    def offline(self, operation: str, path: str) -> None:
        """``hide`` or ``make_opaque`` of ``path`` on both sides (the kernel's by hand)."""
        raise NotImplementedError

    def close_handles(self) -> None:
        raise NotImplementedError

    def close_replaced(self, path: str) -> None:
        """Called before ``writebytes`` and ``copy`` replace the file at ``path``."""

    # -- the deviation both excuse: link of a metadata-only file ------------------------------------

    def note_linked(self, path: str) -> None:
        """Remember the kernel upper's inode of a file just hard-linked at ``path``: the kernel
        links a metadata-only copy-up, the library (and so the mount) copies the data first
        (docs/semantics.rst), so the comparisons of times and of metadata-only copies leave
        that inode out, whatever its names."""
        assert self.kernel is not None
        view = KernelView(self.kernel.merged)
        status = os.lstat(self.kernel.upper + view._real(path)[len(self.kernel.merged):])  # the links on the way followed
        self.linked_inodes.add((status.st_dev, status.st_ino))

    def linked_metadata_only(self, kernel_times: Dict[str, int]) -> List[str]:
        """The files of ``kernel_times`` whose kernel upper inode was hard-linked while it
        could be metadata-only (a ``metacopy=on`` mount): the kernel's gets its data, and the
        time "now", at its first open for writing; ours had its data from the link on, and
        keeps the lower's time."""
        if not self.linked_inodes or self.kernel is None or "metacopy=on" not in self.kernel.options:
            return []
        linked = []
        for path in kernel_times:
            try:
                status = os.lstat(self.kernel.upper + path)
            except OSError:
                continue
            if (status.st_dev, status.st_ino) in self.linked_inodes:
                linked.append(path)
        return linked

    # -- choosing --------------------------------------------------------------------------------------

    def note_visible(self, tree: Tree) -> None:
        """Remember the kernel's merged tree after a step: what :meth:`path` picks from."""
        self.visible = sorted(tree)
        self.visible_dirs = ["/"] + sorted(path for path, entry in tree.items() if entry == ("dir",))
        # links count as files here: reads, writes and removals through them are the point
        self.visible_files = sorted(path for path, entry in tree.items() if entry[0] in ("file", "link"))

    def path(self, data: st.DataObject, label: str = "path", root: bool = False, kind: str = "") -> str:
        """Mostly a path of the view (of ``kind`` "file" or "dir" if given) or a new name in one
        of its directories, so operations tend to do something; else any path of the
        alphabet. The root only if ``root``."""
        existing = self.visible + ["/"] if root else self.visible
        preferred = {"file": self.visible_files, "dir": self.visible_dirs if root else self.visible_dirs[1:]}.get(kind)
        choices = [paths, st.builds(join, st.sampled_from(self.visible_dirs), st.sampled_from(NAMES))]
        choices += [st.sampled_from(found) for found in (existing, preferred) if found]
        return data.draw(st.one_of(choices), label=label)

    # -- files ---------------------------------------------------------------------------------------

    @rule(data=st.data(), payload=contents)
    def write(self, data: st.DataObject, payload: bytes) -> None:
        path = self.path(data)
        self.close_replaced(path)
        self.both("writebytes", path, payload, paths=[path])

    @rule(data=st.data(), payload=contents)
    def write_streamed(self, data: st.DataObject, payload: bytes) -> None:
        path = self.path(data)
        self.both("write_streamed", path, payload, paths=[path])

    @rule(data=st.data())
    def open_truncating(self, data: st.DataObject) -> None:
        """open(O_TRUNC) with nothing written: the file's mtime changes all the same."""
        path = self.path(data)
        self.both("open_truncating", path, paths=[path])

    @rule(data=st.data(), payload=some_bytes)
    def append(self, data: st.DataObject, payload: bytes) -> None:
        path = self.path(data, kind="file")
        self.both("appendbytes", path, payload, paths=[path])

    @rule(data=st.data(), offset=small, payload=some_bytes)
    def write_at(self, data: st.DataObject, offset: int, payload: bytes) -> None:
        path = self.path(data, kind="file")
        self.both("write_at", path, offset, payload, paths=[path])

    @rule(data=st.data(), payload=contents)
    def create_exclusive(self, data: st.DataObject, payload: bytes) -> None:
        path = self.path(data)
        self.both("create_exclusive", path, payload, paths=[path])

    @rule(data=st.data(), size=small)
    def truncate(self, data: st.DataObject, size: int) -> None:
        path = self.path(data, kind="file")
        self.both("truncate", path, size, paths=[path])

    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        path = self.path(data, kind="file")
        self.both("readbytes", path, paths=[path])

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        path = self.path(data, kind="file")
        self.both("remove", path, paths=[path])

    @rule(data=st.data(), overwrite=st.booleans())
    def move(self, data: st.DataObject, overwrite: bool) -> None:
        src, dst = self.path(data, "src", kind="file"), self.path(data, "dst")
        self.both("move", src, dst, overwrite, paths=[src, dst])

    @rule(data=st.data(), overwrite=st.booleans())
    def copy(self, data: st.DataObject, overwrite: bool) -> None:
        src, dst = self.path(data, "src", kind="file"), self.path(data, "dst")
        self.close_replaced(dst)
        self.both("copy", src, dst, overwrite, paths=[src, dst])

    @rule(data=st.data(), accessed=times, modified=times)
    def settimes(self, data: st.DataObject, accessed: int, modified: int) -> None:
        path = self.path(data, root=self.times_of_root)
        assert self.kernel is not None
        if not self.times_of_root and KernelView(self.kernel.merged).leads_to_root(path):
            return
        self.both("settimes", path, accessed, modified, paths=[path])

    # -- directories ---------------------------------------------------------------------------------

    @rule(data=st.data())
    def removedir(self, data: st.DataObject) -> None:
        path = self.path(data, root=True, kind="dir")
        self.both("removedir", path, paths=[path])

    @rule(data=st.data())
    def makedir(self, data: st.DataObject) -> None:
        path = self.path(data)
        self.both("makedir", path, paths=[path])

    @rule(data=st.data(), recreate=st.booleans())
    def makedirs(self, data: st.DataObject, recreate: bool) -> None:
        path = self.path(data)
        self.both("makedirs", path, recreate, paths=[path])

    @rule(data=st.data())
    def removetree(self, data: st.DataObject) -> None:
        path = self.path(data, root=True, kind="dir")
        self.both("removetree", path, paths=[path])

    @rule(data=st.data())
    def hide(self, data: st.DataObject) -> None:
        """``OverlayFS.hide``; on the kernel, the same edit by hand in the unmounted upper."""
        path = self.path(data, root=True)
        self.close_handles()  # the kernel side remounts; held descriptors stay on the old mount
        self.offline("hide", path)

    @rule(data=st.data())
    def make_opaque(self, data: st.DataObject) -> None:
        """``OverlayFS.make_opaque`` (the talk's ``setfattr -n trusted.overlay.opaque -v y``
        step); on the kernel, mkdir + the opaque xattr by hand in the unmounted upper."""
        path = self.path(data, root=True, kind="dir")
        self.close_handles()  # the kernel side remounts; held descriptors stay on the old mount
        self.offline("make_opaque", path)

    # -- queries -------------------------------------------------------------------------------------

    @rule(data=st.data())
    def listdir(self, data: st.DataObject) -> None:
        path = self.path(data, root=True, kind="dir")
        self.both("listdir", path, paths=[path])

    @rule(data=st.data())
    def scandir(self, data: st.DataObject) -> None:
        path = self.path(data, root=True, kind="dir")
        self.both("scandir", path, paths=[path])

    @rule(data=st.data())
    def getinfo(self, data: st.DataObject) -> None:
        path = self.path(data, root=True)
        self.both("getinfo", path, paths=[path])

    @rule(data=st.data())
    def exists(self, data: st.DataObject) -> None:
        path = self.path(data, root=True)
        self.both("exists", path, paths=[path])

    # -- symbolic links ------------------------------------------------------------------------------

    @rule(data=st.data(), link_target=link_targets)
    def symlink(self, data: st.DataObject, link_target: str) -> None:
        path = self.path(data)
        self.both("symlink", link_target, path, paths=[path])

    @rule(data=st.data())
    def readlink(self, data: st.DataObject) -> None:
        path = self.path(data, root=True)
        self.both("readlink", path, paths=[path])

    @rule(data=st.data())
    def islink(self, data: st.DataObject) -> None:
        path = self.path(data, root=True)
        self.both("islink", path, paths=[path])
