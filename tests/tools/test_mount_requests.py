"""The mount's request path, where it was made fast: listings read a page at a time with
each entry's attributes (READDIRPLUS in libfuse's offset mode), attributes packed straight
into the kernel's ``struct stat``, inode numbers that are the layers' own. Each compared with
the kernel overlay over the same layers, or with the layer itself."""

from __future__ import annotations

import ctypes
import os
import stat
import subprocess

import pytest

from tests.support.mount import ThreadMount, kernel_mount, require_fuse
from unionfs.tools.mount import OWN_INODES, Inodes

#: the fields READDIRPLUS hands the kernel and ``stat`` then answers from its cache
FIELDS = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_mtime_ns", "st_ctime_ns", "st_blocks")


def test_a_freed_inode_number_given_to_a_new_file_is_not_a_hard_link():
    """The metadata-only copy of a renamed file numbers its name (the copy's inode, 100: the
    lower file had several names, so the kernel shows the copy's); its data copy-up gives it
    another inode (200) and the name keeps 100. The upper may then give the freed inode 100
    to another name's copy-up: a file with one name, not a hard link of the first (the mount
    showed the two names as one file, where the kernel overlay shows two)."""
    inodes = Inodes()
    assert inodes.get("/c", (0, 5, 100)) == 100
    assert inodes.get("/c", (0, 5, 200)) == 100
    assert inodes.get("/a/a/a", (0, 5, 100)) not in (100, 200)
    assert inodes.get("/linked", (0, 5, 300), nlink=2) == inodes.get("/other-name", (0, 5, 300), nlink=2) == 300


def test_inode_numbers_are_the_layers_own_unless_taken():
    inodes = Inodes()
    assert inodes.get("/") == 1
    assert inodes.get("/a", (0, 5, 100)) == 100
    assert inodes.get("/a", (0, 5, 999)) == 100  # a name keeps its number (copy-up changes the real one)
    assert inodes.get("/hard", (0, 5, 100), nlink=2) == 100  # another name of the same file
    other_device = inodes.get("/b", (0, 6, 100))  # same number on another filesystem: taken
    assert other_device >= OWN_INODES
    assert inodes.get("/dir", (0, 5, 200), is_dir=True) == 200
    assert inodes.get("/dir2", (0, 5, 200), is_dir=True) >= OWN_INODES  # a directory never shares
    own = {inodes.get("/mem%d" % n) for n in range(3)}  # entries without a real inode
    assert len(own) == 3 and min(own) >= OWN_INODES and other_device not in own
    assert inodes.get("/one", (0, 5, 1)) >= OWN_INODES  # 1 is the root's


@pytest.fixture
def big_layers(tmp_path):
    """A lower directory with more entries than one READDIRPLUS reply holds (a page), of
    several types, owners, sizes and times, plus upper entries over it."""
    require_fuse()
    lower, upper, work = tmp_path / "lower", tmp_path / "upper", tmp_path / "work"
    for directory in (lower, upper, work, tmp_path / "mnt", tmp_path / "kmnt"):
        directory.mkdir()
    big = lower / "big"
    big.mkdir()
    for number in range(700):
        name = "entry-with-a-longish-name-%04d" % number
        if number % 7 == 0:
            (big / name).mkdir(mode=0o750)
        else:
            (big / name).write_bytes(b"x" * number)
            os.chmod(big / name, 0o600 + number % 64)
        os.chown(big / name, number % 5, number % 3)
        os.utime(big / name, ns=(number * 1_000_000_007, number * 2_000_000_011))
    os.link(big / "entry-with-a-longish-name-0001", big / "second-name")
    return lower, upper, work, tmp_path / "mnt", tmp_path / "kmnt"


def _entries(directory) -> dict:
    """Every entry of ``directory`` as ``os.scandir`` and then ``lstat`` see it (on the mount,
    ``lstat`` answers from what the listing gave the kernel)."""
    found = {}
    with os.scandir(directory) as scan:
        for entry in scan:
            st = entry.stat(follow_symlinks=False)
            found[entry.name] = (entry.is_dir(follow_symlinks=False),) + tuple(getattr(st, f) for f in FIELDS)
    return found


def test_large_listings_with_attributes_match_the_kernel_overlay(big_layers):
    lower, upper, work, mnt, kmnt = big_layers
    mount = ThreadMount([str(lower)], str(upper), str(mnt))
    try:
        _change(mnt)
        on_mount = _entries(mnt / "big")
        # a second listing of the same open directory from its start (rewinddir) sees a change
        fd = os.open(mnt / "big", os.O_RDONLY | os.O_DIRECTORY)
        try:
            first = set(os.listdir(fd))
            (mnt / "big" / "made-later").write_bytes(b"")
            assert set(os.listdir(fd)) == first | {"made-later"}
        finally:
            os.close(fd)
        numbers = {name: os.lstat(mnt / "big" / name).st_ino for name in ("entry-with-a-longish-name-0001", "second-name")}
    finally:
        mount.close()
    assert len(on_mount) == 701  # 700, a second name, one made, one removed
    kernel_upper = lower.parent / "kernel-upper"
    kernel_upper.mkdir()
    with kernel_mount([str(lower)], str(kernel_upper), str(work), str(kmnt)):
        _change(kmnt)
        on_kernel = _entries(kmnt / "big")
    for name in CHANGED:  # made or copied up at different moments on the two mounts: times differ
        on_mount[name], on_kernel[name] = on_mount[name][:6], on_kernel[name][:6]
    # a directory's link count: the mount says 1 for every directory (docs/mount.rst)
    assert on_mount == {name: value[:2] + ((1,) if value[0] else value[2:3]) + value[3:]
                        for name, value in on_kernel.items()}
    real = os.lstat(lower / "big" / "second-name").st_ino
    assert numbers == {"entry-with-a-longish-name-0001": real, "second-name": real}


CHANGED = ("made-on-the-mount", "entry-with-a-longish-name-0003")


def _change(view) -> None:
    # a mode no umask changes (an in-process mount serves with the process's umask at 0)
    fd = os.open(view / "big" / CHANGED[0], os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o640)
    os.write(fd, b"new")
    os.close(fd)
    os.unlink(view / "big" / "entry-with-a-longish-name-0002")
    os.chmod(view / "big" / CHANGED[1], 0o640)


def test_git_finds_its_index_unchanged_through_the_mount(tmp_path):
    """git's index keeps each file's inode number: with the layer's own numbers, ``git status``
    on the mount needs to read no file (the index stays as the lower wrote it)."""
    require_fuse()
    lower, upper, mnt = tmp_path / "lower", tmp_path / "upper", tmp_path / "mnt"
    for directory in (lower, upper, mnt):
        directory.mkdir()
    repo = lower / "repo"
    repo.mkdir()
    for number in range(20):
        (repo / ("f%02d" % number)).write_text("line %d\n" % number)
        # older than the index will be: no entry is "racily clean" (git would look again)
        os.utime(repo / ("f%02d" % number), (10**9, 10**9))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q", "."], cwd=repo, check=True)
    subprocess.run(git + ["add", "-A"], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-qm", "base"], cwd=repo, check=True)
    index_before = (repo / ".git" / "index").read_bytes()
    mount = ThreadMount([str(lower)], str(upper), str(mnt))
    try:
        done = subprocess.run(git + ["status", "--porcelain"], cwd=mnt / "repo", capture_output=True, text=True)
        assert done.returncode == 0 and done.stdout == ""
        numbers = {name: os.lstat(mnt / "repo" / name).st_ino for name in ("f00", "f01")}
    finally:
        mount.close()
    assert numbers == {name: os.lstat(repo / name).st_ino for name in ("f00", "f01")}
    # nothing stale was found, so nothing was rewritten: the index was not copied up
    assert not (upper / "repo" / ".git" / "index").exists()
    assert (repo / ".git" / "index").read_bytes() == index_before
    assert stat.S_ISDIR(os.lstat(lower / "repo").st_mode)


class _Dirent(ctypes.Structure):
    """glibc's struct dirent on 64-bit Linux."""

    _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64), ("d_reclen", ctypes.c_ushort),
                ("d_type", ctypes.c_ubyte), ("d_name", ctypes.c_char * 256)]


def _d_types(directory) -> dict:
    """Each entry's d_type as getdents gives it (readdir(3) through ctypes: os.scandir keeps it private)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.opendir.restype = ctypes.c_void_p
    libc.readdir.restype = ctypes.POINTER(_Dirent)
    libc.readdir.argtypes = libc.closedir.argtypes = (ctypes.c_void_p,)
    handle = libc.opendir(os.fsencode(directory))
    assert handle, os.strerror(ctypes.get_errno())
    found = {}
    try:
        while True:
            entry = libc.readdir(handle)
            if not entry:
                break
            name = entry.contents.d_name.decode()
            if name not in (".", ".."):
                found[name] = entry.contents.d_type
    finally:
        libc.closedir(handle)
    return found


def _every_kind(root) -> None:
    """One entry of each type: file, directory, link, FIFO, socket, character and block device."""
    import socket

    (root / "file").write_bytes(b"f")
    (root / "dir").mkdir()
    os.symlink("file", root / "link")
    os.mkfifo(root / "fifo")
    os.mknod(root / "chr", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    os.mknod(root / "blk", stat.S_IFBLK | 0o600, os.makedev(7, 0))
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "sock"))
    server.close()


@pytest.mark.parametrize("readdirplus", [True, False], ids=["READDIRPLUS", "READDIR"])
def test_listings_give_every_kind_its_d_type_as_the_kernel_overlay(tmp_path, readdirplus):
    """d_type of each kind of entry, in a lower and made through the mount, in both listing
    requests (plain READDIR is what the kernel sends when readdirplus is off); a plain READDIR
    gave FIFOs, devices and sockets DT_REG."""
    require_fuse()
    from unionfs.tools.mount import MountOptions

    lower, upper, work, mnt, kmnt = (tmp_path / name for name in ("lower", "upper", "work", "mnt", "kmnt"))
    for directory in (lower, upper, work, mnt, kmnt, tmp_path / "kupper"):
        directory.mkdir()
    (lower / "old").mkdir()
    _every_kind(lower / "old")
    mount = ThreadMount([str(lower)], str(upper), str(mnt), MountOptions(readdirplus=readdirplus))
    try:
        (mnt / "new").mkdir()
        _every_kind(mnt / "new")
        on_mount = {name: _d_types(mnt / name) for name in ("old", "new")}
    finally:
        mount.close()
    with kernel_mount([str(lower)], str(tmp_path / "kupper"), str(work), str(kmnt)):
        (kmnt / "new").mkdir()
        _every_kind(kmnt / "new")
        on_kernel = {name: _d_types(kmnt / name) for name in ("old", "new")}
    assert on_kernel["old"]["fifo"] == 1 and on_kernel["old"]["sock"] == 12  # DT_FIFO, DT_SOCK
    assert on_mount == on_kernel


def _setattr_steps(view) -> list:
    """chmod, chown, utimensat (one time omitted too), truncate and a new file, through one
    name of a lower hard link, each followed by stat of every name: the answers libfuse's
    high-level API gets from the getattr after each SETATTR and CREATE (the mount's, kept
    from the change), then what a later lookup says. Inode numbers as classes of names."""
    seen = []

    def look(step):
        names = sorted(os.listdir(view))
        st = {name: os.lstat(view / name) for name in names}
        classes = sorted(sorted(n for n in names if st[n].st_ino == st[m].st_ino) for m in names)
        seen.append((step, {name: (st[name].st_mode, st[name].st_nlink, st[name].st_uid, st[name].st_gid,
                                   st[name].st_size, st[name].st_mtime_ns, st[name].st_atime_ns)
                            for name in names}, classes))

    os.chmod(view / "a", 0o600)
    look("chmod")
    os.chown(view / "b", 1234, 5678)
    look("chown")
    os.utime(view / "b", ns=(7_000_000_007, 8_000_000_008))
    look("utime")
    fd = os.open(view / "b", os.O_RDONLY)
    try:
        os.utime(fd, ns=(9_000_000_009, 8_000_000_008))  # futimens
    finally:
        os.close(fd)
    look("futimens")
    os.truncate(view / "a", 3)
    look("truncate")
    fd = os.open(view / "new", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o640)
    try:
        os.fchown(fd, 42, 43)
        os.write(fd, b"data")
        os.fchmod(fd, 0o4750)
    finally:
        os.close(fd)
    os.utime(view / "new", ns=(1_000_000_001, 2_000_000_002))
    look("create")
    return seen


def test_the_attributes_after_each_setattr_and_create_are_the_kernel_overlays(tmp_path):
    """The getattr that libfuse calls after each SETATTR part and CREATE is answered from the
    change itself (no second lookup): what every name then shows, the link count and the
    inode numbers of a lower hard link that the change breaks included, is the kernel
    overlay's."""
    require_fuse()
    lower, upper, work, mnt, kmnt = (tmp_path / name for name in ("lower", "upper", "work", "mnt", "kmnt"))
    for directory in (lower, upper, work, mnt, kmnt):
        directory.mkdir()
    (lower / "a").write_bytes(b"linked data")
    os.link(lower / "a", lower / "b")
    os.utime(lower / "a", ns=(3_000_000_003, 4_000_000_004))
    mount = ThreadMount([str(lower)], str(upper), str(mnt))
    try:
        on_mount = _setattr_steps(mnt)
    finally:
        mount.close()
    kernel_upper = tmp_path / "kernel-upper"
    kernel_upper.mkdir()
    with kernel_mount([str(lower)], str(kernel_upper), str(work), str(kmnt)):
        on_kernel = _setattr_steps(kmnt)

    def untimed(steps):  # the truncate's time is its moment's on each mount
        return [(step, {name: value[:5] for name, value in names.items()}, classes) for step, names, classes in steps]

    assert untimed(on_mount) == untimed(on_kernel)
    for (step, names, _), (_, kernel_names, _) in zip(on_mount, on_kernel):
        if step in ("chmod", "chown", "utime", "futimens"):
            # (mtime: atimes differ where the kernel's copy-up read the lower file, relatime)
            assert names["b"][5] == kernel_names["b"][5], step
    assert on_mount[-1][1]["new"][5:] == on_kernel[-1][1]["new"][5:] == (2_000_000_002, 1_000_000_001)
