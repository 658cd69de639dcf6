"""Divergences from the kernel that the property suite found, one named test each.

Every test builds the minimal layers of its failing sequence, runs the sequence on the
library and on a kernel overlay mount of the same layers, and compares outcomes and merged
trees, exactly as the state machine does; the docstring gives the kernel's answer.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, Iterator, List, Sequence

import pytest

from tests.support.kernel_oracle import (
    DIR,
    FILE,
    REDIRECT_OPTIONS,
    Entry,
    KernelOverlay,
    KernelView,
    LayerSpec,
    LibraryView,
    assert_same_file_times,
    assert_same_outcome,
    assert_same_tree,
    build_library_layer,
    outcome,
)
from fs.memoryfs import MemoryFS
from unionfs import OverlayFS

#: the default kernel mount (redirect_dir and metacopy off) copies where those would rename
COPYING = {"redirect_dir": False, "metacopy": False}


class Pair:
    """The library and the kernel over the same lowers, compared after every step."""

    def __init__(self, layers: Sequence[LayerSpec], kernel: KernelOverlay, guard_lower: Callable, options: Dict[str, bool]) -> None:
        self.kernel = kernel
        self.options = options
        self.lowers = [guard_lower(build_library_layer(layer)) for layer in layers]
        self.upper = MemoryFS()
        self.overlay = OverlayFS(self.lowers, upper=self.upper, **self.options)

    def run(self, operation: str, *args: object) -> None:
        paths = [arg for arg in args if isinstance(arg, str)]
        library = outcome(lambda: getattr(LibraryView(self.overlay), operation)(*args))
        kernel = outcome(lambda: getattr(KernelView(self.kernel.merged, self.kernel), operation)(*args))
        assert_same_outcome("%s%r" % (operation, args), library, kernel, paths)
        self.check_tree()

    def check_tree(self) -> None:
        library_times: Dict[str, int] = {}
        kernel_times: Dict[str, int] = {}
        kernel_tree = KernelView(self.kernel.merged).tree(kernel_times)
        assert_same_tree(LibraryView(self.overlay).tree(library_times), kernel_tree)
        assert_same_file_times(library_times, kernel_times)

    def reopen(self) -> None:
        self.overlay.close()
        self.overlay = OverlayFS(self.lowers, upper=self.upper, **self.options)
        self.kernel.reopen()
        self.check_tree()

    def stack(self, guard_lower: Callable) -> None:
        self.overlay.close()
        self.lowers.insert(0, guard_lower(self.upper))
        self.upper = MemoryFS()
        self.overlay = OverlayFS(self.lowers, upper=self.upper, **self.options)
        self.kernel.stack()
        self.check_tree()


@pytest.fixture
def pair(kernel_overlay: None, guard_lower: Callable) -> Iterator[Callable[..., Pair]]:
    """``pair(layer, ...)``: library and kernel over the given lowers (topmost first), by
    default copying on both sides; ``renames=True``: the library's defaults against a
    ``redirect_dir=on,metacopy=on`` mount."""
    mounts: List[KernelOverlay] = []

    def make(*layers: LayerSpec, renames: bool = False) -> Pair:
        kernel = KernelOverlay(layers, REDIRECT_OPTIONS if renames else "").__enter__()
        mounts.append(kernel)
        made = Pair(layers, kernel, guard_lower, {} if renames else COPYING)
        made.check_tree()
        return made

    yield make
    for kernel in mounts:
        kernel.close()


def test_exclusive_create_over_directory_is_file_exists(pair: Callable[..., Pair]) -> None:
    """open(O_CREAT|O_EXCL) of an existing directory: the kernel says EEXIST (FileExists),
    whatever the type of what exists; FileExpected would claim the mode was wrong."""
    both = pair({"/a": Entry(DIR)})
    both.run("create_exclusive", "/a", b"")


def test_move_file_onto_its_own_ancestor_is_directory_not_empty(pair: Callable[..., Pair]) -> None:
    """rename(/a/a, /a): the VFS finds the target is an ancestor of the source and answers
    ENOTEMPTY before it ever looks at the types (which would give EISDIR)."""
    both = pair({"/a": Entry(DIR), "/a/a": Entry(FILE, b"")})
    both.run("move", "/a/a", "/a", True)


def test_move_file_onto_itself_changes_nothing(pair: Callable[..., Pair]) -> None:
    """rename(x, x) is a no-op, even though x is (trivially) "below" itself."""
    both = pair({"/a": Entry(DIR), "/a/a": Entry(FILE, b"x")})
    both.run("move", "/a/a", "/a/a", True)


def test_read_handle_opened_before_copy_up_sees_the_new_data(pair: Callable[..., Pair]) -> None:
    """Since Linux 4.19 (stacked file operations) an fd opened read-only on a lower file
    reads the upper copy once the file is copied up and written through another fd."""
    both = pair({"/a": Entry(FILE, b"old")})
    descriptor = os.open(both.kernel.merged + "/a", os.O_RDONLY)
    handle = both.overlay.openbin("/a", "r")
    try:
        both.run("write_at", "/a", 0, b"new")
        assert os.pread(descriptor, 16, 0) == b"new"  # the kernel's answer
        handle.seek(0)
        assert handle.read() == os.pread(descriptor, 16, 0)
    finally:
        handle.close()
        os.close(descriptor)


def test_movedir_into_an_ancestor_that_would_overwrite_the_source_is_refused(pair: Callable[..., Pair]) -> None:
    """movedir('/b/b', '/b') when '/b/b/b' exists: ``cp -a /b/b/. /b`` would copy '/b/b/b'
    onto '/b/b', the source itself, so its result depends on readdir order (the property
    suite saw the kernel keep the data of '/b/b/b/a' where the library kept '/b/b/a'). The
    kernel's rename answers ENOTEMPTY. The library refuses with IllegalDestination before
    changing anything, and so does the oracle's documented movedir."""
    both = pair({"/b": Entry(DIR), "/b/b": Entry(DIR), "/b/b/a": Entry(FILE, b"outer"), "/b/b/b": Entry(DIR), "/b/b/b/a": Entry(FILE, b"inner")})
    both.run("movedir", "/b/b", "/b", False)
    both.run("movedir", "/b", "/", False)
    assert both.overlay.readbytes("/b/b/a") == b"outer"


def test_movedir_into_an_ancestor_without_overlap_flattens_like_cp(pair: Callable[..., Pair]) -> None:
    """movedir('/b/b', '/b') when nothing in the source maps onto the source itself: the
    same tree as ``cp -a /b/b/. /b && rm -rf /b/b`` on the kernel."""
    both = pair({"/b": Entry(DIR), "/b/a": Entry(FILE, b"old"), "/b/b": Entry(DIR), "/b/b/a": Entry(FILE, b"new"), "/b/b/c": Entry(DIR)})
    both.run("movedir", "/b/b", "/b", False)


def test_movedir_copies_up_the_directories_it_merges_into(pair: Callable[..., Pair]) -> None:
    """``cp -a /b/. /a`` gives every existing destination directory the source's attributes,
    which copies it up on the kernel. The view looks the same either way, but what the upper
    holds decides what an opaque marker keeps: after make_opaque('/a') the kernel still
    shows '/a/a' (in the upper now), so the library must have copied it up as well."""
    both = pair({"/a": Entry(DIR), "/a/a": Entry(DIR), "/a/a/a": Entry(DIR), "/b": Entry(DIR), "/b/a": Entry(DIR)})
    both.run("movedir", "/b", "/a", False)
    both.run("make_opaque", "/a")


def test_make_opaque_keeps_a_metadata_only_file_below_readable(pair: Callable[..., Pair]) -> None:
    """utimes of a lower file copies up its metadata only; then make_opaque of an ancestor.
    The library's record names the data's absolute path, so the file stays readable. A
    kernel metacopy file of the same name has no ``overlay.redirect`` and, with no lower
    below an opaque directory, answers EIO (and leaves the listing); with the absolute
    redirect that ``export_kernel`` writes (and the oracle's hand edit sets) the kernel
    follows it past the opaque directory and shows the file as the library does."""
    both = pair({"/a": Entry(DIR), "/b": Entry(DIR), "/b/a": Entry(DIR), "/b/a/a": Entry(FILE, b"\0")}, renames=True)
    both.run("settimes", "/b/a/a", 0, 0)
    both.run("make_opaque", "/b")
    assert both.overlay.readbytes("/b/a/a") == b"\0"


def test_a_metadata_only_copy_of_a_metadata_only_file_below_an_opaque_directory(pair: Callable[..., Pair], guard_lower: Callable) -> None:
    """A lower's metadata-only file below a directory that lower made opaque, copied up for
    its metadata again: walking its absolute path, the kernel's ``ovl_lookup_single`` sets
    ``d->stop`` at the opaque directory but resets it to ``!metacopy`` at the file, whose own
    redirect then leads on to the data. Stopping there left the copy with no data
    (OperationFailed where the kernel's utimes succeeded)."""
    both = pair({"/b": Entry(DIR), "/b/a": Entry(DIR)}, renames=True)
    both.run("appendbytes", "/b/a/a", b"xyz")
    both.stack(guard_lower)
    both.run("settimes", "/b/a/a", 1, 999999998)
    both.run("make_opaque", "/b")
    both.stack(guard_lower)
    both.run("settimes", "/b/a/a", 193, 1485854)
    assert both.overlay.readbytes("/b/a/a") == b"xyz"
