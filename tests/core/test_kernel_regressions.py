"""Divergences from the kernel that the property suite found, one named test each.

Every test builds the minimal layers of its failing sequence, runs the sequence on the
library and on a kernel overlay mount of the same layers, and compares outcomes and merged
trees, exactly as the state machine does; the docstring gives the kernel's answer.
"""

from __future__ import annotations

import os
import stat
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import pytest

from tests.support.kernel_oracle import (
    DIR,
    FILE,
    HARDLINK,
    OPAQUE,
    SYMLINK,
    REDIRECT_OPTIONS,
    Entry,
    KernelOverlay,
    KernelView,
    LayerSpec,
    LibraryView,
    assert_same_file_times,
    assert_same_modes,
    assert_same_outcome,
    assert_same_tree,
    build_library_layer,
    outcome,
    realistic,
)
from tests.support.kernel_rules import Draws
from fs.base import FS
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS
from fs.permissions import Permissions
from unionfs import OverlayFS

#: the default kernel mount (redirect_dir and metacopy off) copies where those would rename
COPYING = {"redirect_dir": False, "metacopy": False}


class Pair:
    """The library and the kernel over the same lowers, compared after every step."""

    def __init__(
        self,
        layers: Sequence[LayerSpec],
        kernel: KernelOverlay,
        guard_lower: Callable,
        options: Dict[str, bool],
        on_disk: Optional[str] = None,
    ) -> None:
        """``options``: the library's (COPYING against a default mount); ``on_disk``: a
        directory for OSFS lowers and an OSFS upper, which hold modes (then compared too);
        else MemoryFS layers."""
        self.kernel = kernel
        self.options = options
        self.on_disk = on_disk
        directories = [os.path.join(on_disk, "lower%d" % n) for n in range(len(layers))] if on_disk else [None] * len(layers)
        for directory in directories:
            if directory is not None:
                os.makedirs(directory)
        self.lowers = [guard_lower(build_library_layer(layer, directory)) for layer, directory in zip(layers, directories)]
        self.upper = OSFS(os.path.join(on_disk, "upper"), create=True) if on_disk else MemoryFS()
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
        library_modes: Dict[str, int] = {}
        kernel_modes: Dict[str, int] = {}
        kernel_tree = KernelView(self.kernel.merged).tree(kernel_times, kernel_modes)
        assert_same_tree(LibraryView(self.overlay).tree(library_times, library_modes), kernel_tree)
        assert_same_file_times(library_times, kernel_times)
        if self.on_disk:
            assert_same_modes(library_modes, kernel_modes)

    def use_upper(self, upper: FS) -> None:
        """Start over (nothing done yet) with ``upper`` instead of the MemoryFS."""
        self.overlay.close()
        self.upper = upper
        self.overlay = OverlayFS(self.lowers, upper=self.upper, **self.options)

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

    def make(*layers: LayerSpec, on_disk: Optional[str] = None, renames: bool = False) -> Pair:
        kernel = KernelOverlay(layers, REDIRECT_OPTIONS if renames else "").__enter__()
        mounts.append(kernel)
        made = Pair(layers, kernel, guard_lower, {} if renames else COPYING, on_disk)
        made.check_tree()
        return made

    yield make
    for kernel in mounts:
        kernel.close()


@pytest.fixture
def machine(kernel_overlay: None) -> Iterator[Callable[..., Any]]:
    """``machine(name, layer, ...)``: the property suite's state machine ``name`` (of
    ``test_kernel_properties``) started over the given lowers, to replay a failing sequence
    step by step (``replay``); torn down, with its lower guard's check, at the end."""
    from tests.core import test_kernel_properties

    started: List[Any] = []

    def make(name: str, *layers: LayerSpec) -> Any:
        made = getattr(test_kernel_properties, name)()
        started.append(made)
        made.start(layers=realistic(layers))
        check(made)
        return made

    yield make
    for made in started:
        made.teardown()


def replay(machine: Any, rule: str, *draws: Any, **arguments: Any) -> None:
    """One rule of ``machine`` with its ``data()`` draws scripted, then its invariants, as
    the Hypothesis run does."""
    getattr(machine, rule)(Draws(*draws), **arguments)
    check(machine)


def check(machine: Any) -> None:
    """The machine's invariants (its ``@invariant`` methods)."""
    machine.same_view()
    machine.metadata_only_copies_hold_no_data()


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


def test_move_file_onto_its_own_ancestor_through_a_link_is_directory_not_empty(pair: Callable[..., Pair]) -> None:
    """The CI profile's draw: rename(/b/a, /c/b) where '/c -> ../../..' ends at the root, so
    the target is '/b', the source's parent: ENOTEMPTY, decided on the paths the links
    lead to (the spelled '/c/b' is no ancestor of '/b/a'; FileExpected was the library's)."""
    both = pair({"/b": Entry(DIR), "/b/a": Entry(FILE, b""), "/c": Entry(SYMLINK, target="../../..")})
    both.run("move", "/b/a", "/c/b", True)
    both.run("move", "/b/a", "/c/b/a", True)  # onto itself through the link: nothing changes


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


@pytest.mark.parametrize("renames", [False, True], ids=["copying", "renames"])
def test_movedir_into_an_ancestor_gives_it_the_times_the_kernel_does(pair: Callable[..., Pair], renames: bool) -> None:
    """movedir('/a/a/a', '/a') after a setinfo of '/a': ``cp -a /a/a/a/. /a`` gives '/a' the
    source's times (copying), renames into it give nothing (with renames). Found by the
    property suite: the journal's kept times (the ancestors of the source's parent, '/a'
    among them) put '/a' back to its own time after the copy had given it the source's."""
    both = pair({"/a": Entry(DIR), "/a/a": Entry(DIR), "/a/a/a": Entry(DIR)}, renames=renames)
    both.run("settimes", "/a", 0, 0)
    both.run("movedir", "/a/a/a", "/a", False)


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


@pytest.mark.parametrize("recreate", ["writebytes", "write_streamed"])
def test_read_handle_stays_on_a_removed_file_after_the_name_is_made_again(pair: Callable[..., Pair], recreate: str) -> None:
    """Issue 11 item 1: a descriptor opened on a lower file keeps reading it after ``unlink``
    and a new file of the same name: only a copy-up moves it, never a replacement."""
    both = pair({"/a": Entry(FILE, b"lower")})
    descriptor = os.open(both.kernel.merged + "/a", os.O_RDONLY)
    handle = both.overlay.openbin("/a", "r")
    try:
        both.run("remove", "/a")
        both.run(recreate, "/a", b"new")
        assert os.pread(descriptor, 16, 0) == b"lower"  # the kernel's answer
        handle.seek(0)
        assert handle.read() == b"lower"
    finally:
        handle.close()
        os.close(descriptor)


@pytest.mark.parametrize("upper_kind", ["memory", "os"])
def test_unbuffered_reader_follows_a_copy_up_and_sees_a_second_writer(pair: Callable[..., Pair], tmp_path, upper_kind: str) -> None:
    """Issue 11 item 2: a reader opened before the copy-up reads, after it, what another
    handle writes (the kernel continues ``234XYZ89``); ``buffering=0`` stays unbuffered."""
    both = pair({"/a": Entry(FILE, b"0123456789")})
    if upper_kind == "os":
        both.use_upper(OSFS(str(tmp_path)))
    descriptor = os.open(both.kernel.merged + "/a", os.O_RDONLY)
    handle = both.overlay.openbin("/a", "r", buffering=0)
    kernel_writer = library_writer = None
    try:
        assert handle.read(2) == os.read(descriptor, 2) == b"01"
        kernel_writer = os.open(both.kernel.merged + "/a", os.O_RDWR)  # the copy-up
        library_writer = both.overlay.openbin("/a", "r+", buffering=0)
        assert handle.read(1) == os.read(descriptor, 1) == b"2"
        os.pwrite(kernel_writer, b"XYZ", 5)
        library_writer.seek(5)
        library_writer.write(b"XYZ")
        assert os.read(descriptor, 16) == b"34XYZ89"  # the kernel's answer
        assert handle.read() == b"34XYZ89"
    finally:
        for opened in (handle, library_writer):
            if opened is not None:
                opened.close()
        for fd in (descriptor, kernel_writer):
            if fd is not None:
                os.close(fd)


def test_setinfo_permissions_on_an_osfs_upper(pair: Callable[..., Pair], tmp_path) -> None:
    """Issue 11 item 3: chmod on the merged view copies up and sets the mode; OSFS 2.4.16's
    setinfo drops the ``access`` namespace, so the upper must chmod itself."""
    both = pair({"/a": Entry(FILE, b"x")})
    both.use_upper(OSFS(str(tmp_path)))
    os.chmod(both.kernel.merged + "/a", 0o600)
    both.overlay.setinfo("/a", {"access": {"permissions": Permissions(mode=0o600).dump()}})
    assert stat.S_IMODE(os.stat(both.kernel.merged + "/a").st_mode) == 0o600
    assert both.overlay.getinfo("/a", ["access"]).permissions.mode == 0o600


def test_copy_over_an_existing_file_keeps_its_mode(pair: Callable[..., Pair], tmp_path) -> None:
    """Issue 11 item 3: ``copy`` onto an existing file opens it ``O_TRUNC`` on the kernel, so
    the destination keeps its inode and its mode (0o600), not the source's or a default."""
    both = pair({"/src": Entry(FILE, b"source"), "/dst": Entry(FILE, b"old")})
    both.use_upper(OSFS(str(tmp_path)))
    os.chmod(both.kernel.merged + "/dst", 0o600)
    both.overlay.setinfo("/dst", {"access": {"permissions": Permissions(mode=0o600).dump()}})
    both.run("copy", "/src", "/dst", True)
    assert stat.S_IMODE(os.stat(both.kernel.merged + "/dst").st_mode) == 0o600
    assert both.overlay.getinfo("/dst", ["access"]).permissions.mode == 0o600


@pytest.mark.parametrize("on_disk", [False, True])
def test_truncating_open_stamps_the_file(pair: Callable[..., Pair], tmp_path, on_disk: bool) -> None:
    """Issue 11 item 4: open(O_TRUNC) sets the file's mtime even if nothing is written; a
    MemoryFS upper would keep the copied-up lower time."""
    both = pair({"/a": Entry(FILE, b"lower")}, on_disk=str(tmp_path) if on_disk else None)
    both.run("open_truncating", "/a")


@pytest.mark.parametrize("on_disk", [False, True])
def test_directory_times_follow_the_kernel(pair: Callable[..., Pair], tmp_path, on_disk: bool) -> None:
    """Issue 11 item 4: the directory an entry is made in, removed from (a whiteout too) or
    renamed in or out of gets the time of the change; ancestors copied up on the way keep
    their lower times, as the kernel puts a parent's times back after a copy-up."""
    both = pair(
        {"/d": Entry(DIR), "/d/e": Entry(DIR), "/d/e/f": Entry(FILE, b"f"), "/g": Entry(DIR), "/g/h": Entry(DIR),
         "/g/h/i": Entry(FILE, b"i"), "/k": Entry(DIR), "/k/l": Entry(DIR), "/k/l/m": Entry(DIR)},
        on_disk=str(tmp_path) if on_disk else None,
    )
    both.run("writebytes", "/d/e/new", b"x")  # /d keeps its time, /d/e gets now
    both.run("remove", "/g/h/i")  # a whiteout: /g/h gets now
    both.run("makedir", "/k/l/m/n")  # /k and /k/l keep theirs
    both.run("copy", "/d/e/f", "/k/l/m/n/c", False)
    both.run("move", "/k/l/m/n/c", "/k/l/moved", False)
    both.run("write_at", "/d/e/f", 0, b"F")  # data only: no directory changes
    both.run("removedir", "/k/l/m/n")
    both.run("make_opaque", "/k/l/m")
    both.run("make_opaque", "/k/l/new")


def test_movedir_keeps_directory_modes_and_times(pair: Callable[..., Pair], tmp_path) -> None:
    """Issue 11 item 3: ``cp -a`` gives the directories it makes (and those it merges into) the
    source directories' modes and times; so must movedir, also for a pure-upper directory
    moved into a merged parent (the kernel: 0o700/0o750 kept, not 0o755)."""
    both = pair(
        {"/s": Entry(DIR, mode=0o700), "/s/sub": Entry(DIR, mode=0o750), "/s/sub/f": Entry(FILE, b"f", mode=0o600),
         "/t": Entry(DIR), "/t/sub": Entry(DIR), "/m": Entry(DIR)},
        on_disk=str(tmp_path),
    )
    both.run("movedir", "/s", "/new", True)
    both.run("movedir", "/new/sub", "/t/sub", False)
    both.run("makedir", "/u")
    os.chmod(both.kernel.merged + "/u", 0o700)
    both.overlay.setinfo("/u", {"access": {"permissions": Permissions(mode=0o700).dump()}})
    both.run("settimes", "/u", 1000, 1000)
    both.run("movedir", "/u", "/m/u", True)


def test_a_refused_link_leaves_metadata_only_copies_compared(machine: Callable[..., Any]) -> None:
    """RedirectOSFSMachine, seed 51690368821253056782971338709134510399, shrunk: utimes of a
    lower file copies it up for its metadata only on both sides; link('/c', '/c/a') is
    refused (EEXIST; a directory source is EPERM anyway). The machine noted the kernel
    upper's inode at the new name as hard-linked all the same, and so left the kernel's
    metadata-only '/c/a' out of the comparison: "library ['/c/a'], kernel []"."""
    both = machine("RedirectOSFSMachine", {}, {"/c": Entry(DIR), "/c/a": Entry(FILE, b"data")})
    replay(both, "settimes", "/c/a", accessed=0, modified=0)
    replay(both, "link", "/c", "/c/a")
    assert not both.linked_inodes


def test_a_handle_reached_through_links_is_closed_before_its_file_is_replaced(machine: Callable[..., Any]) -> None:
    """RedirectMachine: '/a -> c/b' and '/c -> ../../..' (which ends at the root) make
    '/c/c/a' and '/a' two spellings of '/b'. A handle held on '/c/c/a' is on the upper file
    '/b' that ``writebytes('/a')`` then replaces atomically: the documented deviation (it
    keeps the old file, b'', where the kernel's descriptor reads the new bytes), so the
    machine must close it, as it closes a handle held on '/b' itself."""
    both = machine(
        "RedirectMachine",
        {"/a": Entry(SYMLINK, target="c/b"), "/c": Entry(SYMLINK, target="../../..")},
        {"/a": Entry(DIR), "/a/a": Entry(FILE, b"below")},
    )
    replay(both, "write", "/a", payload=b"")
    replay(both, "open_handle", "/c/c/a", writable=False)
    replay(both, "write_streamed", "/a", payload=b"in place")  # read through the handle
    replay(both, "write", "/a", payload=b"new")
    assert both.handles == []


def test_a_handle_reached_through_links_follows_the_copy_up_of_its_file(machine: Callable[..., Any]) -> None:
    """The same links over a lower file '/b': ``writebytes('/a')`` copies it up, and the
    handle held on '/c/c/a' follows to the new bytes on both sides; it stays open."""
    both = machine(
        "RedirectMachine",
        {"/a": Entry(SYMLINK, target="c/b"), "/c": Entry(SYMLINK, target="../../.."), "/b": Entry(FILE, b"lower")},
    )
    replay(both, "open_handle", "/c/c/a", writable=False)
    replay(both, "write", "/a", payload=b"new")
    assert [held.contents() for held in both.handles] == [b"new"]


@pytest.mark.parametrize("data", [b"data", b""])
@pytest.mark.parametrize("flags, mode", [(os.O_RDWR, "r+"), (os.O_WRONLY | os.O_APPEND, "a")])
def test_opening_a_metadata_only_file_for_writing_stamps_it_when_its_data_is_copied(
    pair: Callable[..., Pair], data: bytes, flags: int, mode: str
) -> None:
    """utimes of a lower file copies up its metadata only (the time set: old); open(O_RDWR)
    then copies its data, and closes with nothing written. The kernel writes the data into
    the metadata-only upper file (``ovl_copy_up_meta_inode_data``), which stamps its mtime
    with the time of the copy; with no data there is nothing to write, and the set time
    stays. The property suite drew it over an opaque directory of the lower below; a plain
    lower file does the same."""
    both = pair({"/c": Entry(FILE, data)}, {"/c": Entry(OPAQUE), "/c/x": Entry(FILE, b"x")}, renames=True)
    both.run("settimes", "/c", 5, 5)
    descriptor = os.open(both.kernel.merged + "/c", flags)
    handle = both.overlay.openbin("/c", mode)
    os.close(descriptor)
    handle.close()
    both.check_tree()
    assert (os.stat(both.kernel.merged + "/c").st_mtime == 5) == (data == b"")  # the kernel's answer


def test_a_hard_link_to_a_metadata_only_file_keeps_its_time(pair: Callable[..., Pair], tmp_path) -> None:
    """link(2) of a metadata-only file: the kernel links it as it is (its data stays below,
    its time the one set); the library copies the data first (docs/semantics.rst) and must
    keep that time all the same."""
    both = pair({"/c": Entry(FILE, b"data")}, on_disk=str(tmp_path), renames=True)
    both.run("settimes", "/c", 5, 5)
    both.run("link", "/c", "/d")
    assert os.stat(both.kernel.merged + "/d").st_mtime == 5


def test_movedir_of_a_source_reached_through_a_link_it_moves(machine: Callable[..., Any]) -> None:
    """OSFSUpperMachine: with '/c -> a/c' and '/a/c/a -> ..', '/c/a/c' is '/a/c'; moving it
    into '/a' moves its link 'a' out, after which the spelled source no longer resolves.
    Both sides resolve the two paths once, as the library does, and empty the real source
    (the oracle used to remove '/c/a/c' as spelled: ResourceNotFound where the library
    succeeded)."""
    both = machine("OSFSUpperMachine", {"/a": Entry(DIR), "/a/c": Entry(DIR), "/c": Entry(SYMLINK, target="a/c")})
    replay(both, "symlink", "/a/c/a", link_target="..")
    replay(both, "movedir", "/c/a/c", "/a", create=False)
    assert both.overlay.readlink("/a/a") == ".."
    assert not both.overlay.exists("/a/c")


@pytest.mark.parametrize("entry", [Entry(FILE, b"data"), Entry(SYMLINK, target="a")], ids=["file", "symlink"])
def test_a_move_between_two_hard_links_of_one_file_changes_nothing(machine: Callable[..., Any], entry: Entry) -> None:
    """OSFSUpperMachine: link('/c', '/a/l') copies '/c' up and gives it a second name; then
    rename('/a/l', '/c') is between two names of one inode, which rename(2) leaves as they
    are. The library removed '/a/l' (the kernel showed it still: "only in kernel
    [('/a/c/a/c', ('link', 'a/c'))]")."""
    both = machine("OSFSUpperMachine", {"/a": Entry(DIR), "/c": entry})
    replay(both, "link", "/c", "/a/l")
    replay(both, "move", "/a/l", "/c", overwrite=True)
    assert both.overlay.exists("/a/l") and both.overlay.exists("/c")


def test_a_linked_file_opened_for_writing_keeps_its_time_by_the_documented_deviation(machine: Callable[..., Any]) -> None:
    """RedirectOSFSMachine: link('/b', '/a/a') of a lower file; the kernel links a metadata-only
    copy, whose first open for writing copies the data and stamps the time "now"; the
    library copied the data at the link and keeps the lower's time (docs/semantics.rst). The
    machine leaves those inodes' times out of its comparison, and still compares the data."""
    both = machine("RedirectOSFSMachine", {"/a": Entry(DIR), "/b": Entry(FILE, b"\x00")})
    replay(both, "link", "/b", "/a/a")
    replay(both, "open_handle", "/a/a", writable=True)
    assert [held.contents() for held in both.handles] == [b"\x00"]



def test_make_opaque_through_a_link_keeps_the_times_of_the_real_ancestors(machine: Callable[..., Any]) -> None:
    """KernelMachine: '/c/b -> /c/c', so make_opaque('/c/b/a') makes '/c/c/a'. The oracle's
    by-hand edit copied up the ancestors of the spelled path ('/c', then the link '/c/b'), not
    '/c/c', and then made '/c/c' in the upper by hand, which stamped '/c' "now": "file
    modification times differ (library, kernel): {'/c': (500000000, ...)}"; the library
    keeps '/c''s time, as the kernel's own copy-up of '/c/c' would."""
    both = machine(
        "KernelMachine", {},
        {"/a": Entry(DIR), "/c": Entry(DIR), "/c/b": Entry(SYMLINK, target="/c/c"), "/c/c": Entry(DIR)},
    )
    replay(both, "make_opaque", "/c/b/a")
    assert both.overlay.isdir("/c/c/a")



def test_make_opaque_keeps_the_whiteouts_of_a_renamed_directory_below(pair: Callable[..., Pair]) -> None:
    """RedirectMachine (seed 3 of the soak run): movedir('/a/c', '/b/a') renames the lower
    directory (redirect '/a/c'), removedir('/b/a/a') whites out its lower child, then
    make_opaque('/b'). '/b/a' still merges with '/a/c' through its absolute redirect, so the
    whiteout still hides '/a/c/a', and setfattr leaves it where it is. The oracle's hand edit
    dropped every whiteout below the opaque directory, and the kernel showed '/b/a/a' again
    ("only in kernel [('/b/a/a', ('dir',))]")."""
    both = pair({"/a": Entry(DIR), "/a/c": Entry(DIR), "/a/c/a": Entry(DIR)}, {"/b": Entry(DIR), "/a": Entry(OPAQUE)}, renames=True)
    both.run("movedir", "/a/c", "/b/a", True)
    both.run("removedir", "/b/a/a")
    both.run("make_opaque", "/b")
    assert not both.overlay.exists("/b/a/a")


def test_make_opaque_above_renamed_directories_leaves_a_tree_the_kernel_can_walk(pair: Callable[..., Pair]) -> None:
    """The second failure of the same soak run: movedir('/a', '/b/b/c') renames '/a' (redirect
    '/a'), movedir('/b/b/c/c', '/b') moves the contents of its '/c' out and whites out
    '/b/b/c/c' inside the renamed directory, then make_opaque('/b/b'). With that whiteout
    dropped by the hand edit, the kernel's own walk of the merged tree failed with ESTALE on
    '/b/b/c/c/a', below the lower directory that showed again; kept, as setfattr keeps it,
    the trees agree."""
    both = pair(
        {"/a": Entry(DIR), "/a/c": Entry(DIR), "/a/c/a": Entry(DIR), "/c": Entry(DIR), "/c/a": Entry(DIR)},
        {"/b": Entry(DIR), "/b/b": Entry(DIR), "/a": Entry(OPAQUE)},
        renames=True,
    )
    both.run("movedir", "/a", "/b/b/c", True)
    both.run("movedir", "/b/b/c/c", "/b", True)
    both.run("make_opaque", "/b/b")


def test_a_handle_on_a_hard_link_is_closed_before_the_other_name_is_replaced(machine: Callable[..., Any]) -> None:
    """RedirectOSFSMachine: link('/c', '/a/a'), a writer held on '/a/a', writebytes('/c'):
    the library rewrites a hard-linked upper file in place (both names read the new data),
    but once remove('/a/a') leaves '/c' one name, the next writebytes('/c') replaces it
    atomically, the documented deviation: the handle keeps the old file, the kernel's
    descriptor reads the new bytes. The machine used to close only the handles opened by
    the spelled path, so the one on '/a/a' stayed open ("the handle held on /a/a"); it closes
    every handle on the file's inode, here at the first write already."""
    both = machine("RedirectOSFSMachine", {"/a": Entry(DIR), "/c": Entry(FILE, b"")})
    replay(both, "link", "/c", "/a/a")
    replay(both, "open_handle", "/a/a", writable=True)
    replay(both, "write", "/c", payload=b"?t\x00\xb1J")
    assert both.handles == []
    replay(both, "remove", "/a/a")
    replay(both, "write", "/c", payload=b"L\xee\xf5\x06\x9e\x98")


def test_hide_through_a_link_inside_what_it_hides(machine: Callable[..., Any]) -> None:
    """RedirectOSFSMachine (soak run, seed 5): '/b/a -> ../../..' ends at the root, so
    hide('/b/a/b') hides '/b', the link's own directory. The oracle's hand edit removed the
    upper's '/b', then resolved the spelled path again to put the whiteout there: through the
    lower's '/b/a', which still showed, its copy-up made '/b' again, and mknod answered
    EEXIST (FileExists where the library hid '/b'). It resolves the path once, as the
    library does."""
    both = machine("RedirectOSFSMachine", {"/b": Entry(DIR), "/b/a": Entry(SYMLINK, target="../../..")})
    replay(both, "hide", "/b/a/b")
    assert not both.overlay.exists("/b")


def test_a_movedir_type_clash_is_named_as_the_caller_spelled_the_destination(machine: Callable[..., Any]) -> None:
    """OSFSUpperMachine: movedir('/a', '/c/c') with '/c -> b' lands in '/b/c', where the
    file '/b/c/c' clashes with the directory '/a/c'. The kernel side's error names the
    caller's '/c/c/c'; the library named the resolved '/b/c/c'."""
    both = machine(
        "OSFSUpperMachine",
        {
            "/a": Entry(DIR),
            "/a/c": Entry(DIR),
            "/c": Entry(SYMLINK, target="b"),
            "/b": Entry(DIR),
            "/b/c": Entry(DIR),
            "/b/c/c": Entry(FILE, b""),
        },
    )
    replay(both, "movedir", "/a", "/c/c", create=True)


@pytest.mark.parametrize("through", ["write", "truncate"])
def test_a_copying_movedir_keeps_the_hard_links_of_a_lower_file(machine: Callable[..., Any], through: str) -> None:
    """OSFSUpperMachine (soak run): '/a/b' and '/a/a' are one lower file; movedir('/a', '/b')
    without redirect_dir is ``cp -a a/. b && rm -rf a`` on the kernel side, and cp -a keeps
    the two names one file (nlink 2; a change through one name shows through the other).
    The library renamed each name on its own: two files of nlink 1."""
    both = machine(
        "OSFSUpperMachine",
        {"/a": Entry(DIR), "/b": Entry(DIR), "/a/b": Entry(FILE, b"\x00"), "/a/a": Entry(HARDLINK, target="/a/b")},
    )
    replay(both, "movedir", "/a", "/b", create=False)
    replay(both, "nlink", "/b/b")
    replay(both, "nlink", "/b/a")
    if through == "write":
        replay(both, "write", "/b/a", payload=b"new")
    else:
        replay(both, "truncate", "/b/a", size=0)
    replay(both, "read", "/b/b")


def test_link_of_a_missing_file_is_not_found_even_into_a_link_loop(machine: Callable[..., Any]) -> None:
    """KernelLowersMachine (a helper's random run): link('/b', '/a/a') with no '/b' and
    '/a -> a'. link(2) looks the old name up first (do_linkat), so the kernel says ENOENT,
    as the library does; the oracle resolved the new path first and said ELOOP."""
    both = machine("KernelLowersMachine", {"/a": Entry(SYMLINK, target="a")})
    with pytest.raises(FileNotFoundError):
        os.link(both.kernel.merged + "/b", both.kernel.merged + "/a/a")
    replay(both, "link", "/b", "/a/a")


def test_removetree_through_a_link_it_removes_empties_the_directory_then_fails(pair: Callable[..., Pair]) -> None:
    """The property suite's draw: '/a/a -> ../../..' ends at the root, so '/a/a/a' is '/a'.
    rm -rf empties the directory the path led to (the link '/a/a' with it), then its
    rmdir of '/a/a/a' finds no '/a/a': ENOENT, '/a' left empty (the library removed '/a'
    whole, without an error)."""
    both = pair({"/a": Entry(DIR), "/a/a": Entry(SYMLINK, target="../../.."), "/a/b": Entry(FILE, b"b")})
    both.run("removetree", "/a/a/a")
    assert both.overlay.listdir("/a") == []


def test_removetree_through_a_link_it_keeps_removes_the_directory(pair: Callable[..., Pair]) -> None:
    """'/l -> d': rm -rf l/e empties '/d/e', then rmdir('l/e') removes it."""
    both = pair({"/d": Entry(DIR), "/d/e": Entry(DIR), "/d/e/f": Entry(FILE, b"f"), "/l": Entry(SYMLINK, target="d")})
    both.run("removetree", "/l/e")
    assert both.overlay.listdir("/d") == []


def test_a_create_through_a_link_to_name_slash_is_eisdir_before_the_name_is_looked_up(pair: Callable[..., Pair]) -> None:
    """The property suite's draw: '/b -> a/./b/' and '/a/b -> b/a' (a loop). open(O_CREAT)
    of '/b' ends the link's walk at 'b/', a last component with a trailing slash, which
    open_last_lookups answers with EISDIR before looking 'b' up; the library followed it
    into the loop (LinkLoop). Without O_CREAT the kernel follows it: ELOOP."""
    both = pair({"/a": Entry(DIR), "/b": Entry(SYMLINK, target="a/./b/"), "/a/a": Entry(DIR),
                 "/a/b": Entry(SYMLINK, target="b/a")})
    both.run("writebytes", "/b", b"")
    both.run("readbytes", "/b")
