"""Real root filesystems as lowers (issue 13): an OCI image with a realistic root (merged-usr
links, absolute ``/etc/alternatives`` links, dangling links, a hard-linked pair) built with
umoci, a tar of this machine's ``/etc`` (hundreds of absolute links), and ``/usr`` itself
against a kernel overlay mount of it. Each opens, lists, reads through its links and (the
first two) commits with nothing lost, compared with ``umoci unpack`` and ``tar x``.

Reading through a link is compared with ``openat2(RESOLVE_IN_ROOT)`` on the unpacked tree
(or the kernel's merged directory): what a process chrooted into it reads.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import stat
import subprocess
import tempfile
from typing import Dict, List, Optional, Tuple

import pytest
from fs import errors
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS

from unionfs import LinkLoop, OverlayFS

from tests.conftest import kernel_overlay_available
from tests.support.imagetools import new_layout, require_umoci, snapshot_dir, snapshot_fs, umoci, unpack
from tests.support.kernel_oracle import _mount_overlay, _unmount, open_in_root
from unionfs.testing import trees

Outcome = Tuple[str, Optional[bytes]]  # ("ok", first bytes) or ("error", errno name)


def _chrooted_read(root: str, path: str) -> Outcome:
    """What a process chrooted into ``root`` reads at ``path`` (first 64 KiB)."""
    base = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = open_in_root(base, path, os.O_RDONLY)
    except OSError as error:
        return ("error", errno.errorcode.get(error.errno, "?").encode())
    finally:
        os.close(base)
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            return ("dir", None)
        return ("ok", os.read(fd, 1 << 16))
    except OSError as error:
        return ("error", errno.errorcode.get(error.errno, "?").encode())
    finally:
        os.close(fd)


_ERRNO_OF = {errors.ResourceNotFound: b"ENOENT", LinkLoop: b"ELOOP", errors.FileExpected: b"EISDIR"}


def _library_read(overlay: OverlayFS, path: str) -> Outcome:
    if overlay.isdir(path):
        return ("dir", None)
    try:
        with overlay.openbin(path) as handle:
            return ("ok", handle.read(1 << 16))
    except errors.FSError as error:
        for kind, name in _ERRNO_OF.items():
            if isinstance(error, kind):
                return ("error", b"ENOENT" if name == b"ENOENT" else name)
        return ("error", type(error).__name__.encode())


def _compare_reads(overlay: OverlayFS, root: str, paths: List[str]) -> Dict[str, Tuple[Outcome, Outcome]]:
    """The paths whose read through the overlay differs from the chrooted read of ``root``.
    ENOTDIR and ENOENT count as one (both are ResourceNotFound for a file operation)."""
    differ = {}
    for path in paths:
        kernel = _chrooted_read(root, path)
        if kernel == ("error", b"ENOTDIR"):
            kernel = ("error", b"ENOENT")
        library = _library_read(overlay, path)
        if kernel != library:
            differ[path] = (library, kernel)
    return differ


def _all_paths(root: str) -> List[str]:
    return sorted(path for path, _full, _status in trees.disk_entries(root))


def _links_in(root: str) -> List[str]:
    return [path for path in _all_paths(root) if os.path.islink(root + path)]


# -- an OCI image with a realistic root ------------------------------------------------------------


def _realistic_root(rootfs: str) -> None:
    for directory in ("usr/bin", "usr/sbin", "usr/lib/x86_64-linux-gnu", "usr/share/doc/pkg", "etc/alternatives", "var/lib"):
        os.makedirs(os.path.join(rootfs, directory), exist_ok=True)
    files = {"usr/bin/busybox": "BUSYBOX" * 100, "usr/bin/vim.basic": "vim", "usr/lib/os-release": "ID=test\n",
             "usr/lib/x86_64-linux-gnu/libc.so.6": "ELF libc", "usr/share/doc/pkg/copyright": "GPL", "etc/hostname": "box\n"}
    for path, data in files.items():
        with open(os.path.join(rootfs, path), "w") as out:
            out.write(data)
    links = {  # merged-usr, alternatives (absolute), relative, dangling, to a directory, a chain
        "bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64",
        "etc/alternatives/editor": "/usr/bin/vim.basic", "usr/bin/editor": "/etc/alternatives/editor",
        "etc/os-release": "../usr/lib/os-release", "etc/mtab": "/proc/self/mounts",
        "usr/lib/libc.so.6": "x86_64-linux-gnu/libc.so.6", "usr/share/doc/pkg2": "pkg",
        "var/run": "/run", "usr/bin/sh": "busybox",
    }
    for path, target in links.items():
        os.symlink(target, os.path.join(rootfs, path))
    os.link(os.path.join(rootfs, "usr/bin/busybox"), os.path.join(rootfs, "usr/bin/ls"))  # a hard-linked pair


def _second_layer(rootfs: str) -> None:
    os.remove(os.path.join(rootfs, "etc/mtab"))
    os.remove(os.path.join(rootfs, "etc/alternatives/editor"))
    os.symlink("/usr/bin/busybox", os.path.join(rootfs, "etc/alternatives/editor"))  # retargeted
    os.remove(os.path.join(rootfs, "usr/share/doc/pkg2"))
    os.mkdir(os.path.join(rootfs, "usr/share/doc/pkg2"))  # a link replaced by a directory
    os.symlink("../bin/busybox", os.path.join(rootfs, "usr/share/doc/pkg2/tool"))


def test_an_oci_image_with_a_realistic_root_matches_umoci_unpack(tmp_path):
    require_umoci()
    layout = new_layout(str(tmp_path / "image"))
    for change in (_realistic_root, _second_layer):
        bundle = str(tmp_path / ("bundle-" + change.__name__))
        change(unpack(layout, "base", bundle))
        umoci("repack", "--image", layout + ":base", bundle)
        shutil.rmtree(bundle)
    rootfs = unpack(layout, "base", str(tmp_path / "reference"))
    upper = tmp_path / "upper"
    upper.mkdir()
    with OverlayFS.from_oci(layout, ref="base", upper=OSFS(str(upper))) as overlay:
        assert snapshot_fs(overlay) == snapshot_dir(rootfs)  # listed: types, targets, data, modes, owners, times
        assert sorted(overlay.listdir("bin")) == sorted(os.listdir(os.path.join(rootfs, "usr/bin")))
        assert overlay.readtext("usr/bin/editor") == "BUSYBOX" * 100  # a chain of absolute links
        assert overlay.readtext("bin/sh") == overlay.readtext("usr/bin/ls")  # the hard-linked pair
        differ = _compare_reads(overlay, rootfs, _all_paths(rootfs))
        assert not differ, differ
        assert len(_links_in(rootfs)) == 11  # 12 made, the second layer removed two and added one
        out = str(tmp_path / "committed")
        overlay.commit(out)
    assert snapshot_dir(out) == snapshot_dir(rootfs)  # nothing lost (a hard link becomes two equal files)
    with OverlayFS(OSFS(out)) as committed:
        assert not _compare_reads(committed, rootfs, _all_paths(rootfs))


# -- a tar of a real system directory ----------------------------------------------------------------


def test_a_tar_of_this_machines_etc_reads_and_commits_like_tar_x(tmp_path):
    """``/etc`` has hundreds of absolute links (``/etc/alternatives/*``, ``/etc/localtime``):
    such a tar used to be refused whole ("links outside the archive")."""
    if os.geteuid() != 0 or not os.path.isdir("/etc"):
        pytest.skip("needs root to read all of /etc")
    archive = str(tmp_path / "etc.tar")
    made = subprocess.run(["tar", "-C", "/", "--one-file-system", "-cf", archive, "etc"], capture_output=True, text=True)
    if made.returncode not in (0, 1):  # 1: a file changed while being read; the tar is still whole
        pytest.fail("tar -c /etc failed: %s" % made.stderr)
    extracted = tmp_path / "x"
    extracted.mkdir()
    subprocess.run(["tar", "-C", str(extracted), "-xpf", archive], check=True)
    root = str(extracted)
    links = _links_in(root)
    absolute = [path for path in links if os.readlink(root + path).startswith("/")]
    assert len(absolute) > 50, "this /etc has too few absolute links to be a test: %d" % len(absolute)
    upper = tmp_path / "upper"
    upper.mkdir()
    with OverlayFS(archive, upper=OSFS(str(upper))) as overlay:
        assert snapshot_fs(overlay, with_times=False) == snapshot_dir(root, with_times=False)
        for path in links:
            assert overlay.readlink(path) == os.readlink(root + path)
        differ = _compare_reads(overlay, root, _all_paths(root))
        assert not differ, dict(list(differ.items())[:5])
        out = str(tmp_path / "committed")
        overlay.commit(out)
    assert snapshot_dir(out, with_times=False) == snapshot_dir(root, with_times=False)


# -- /usr against the kernel ---------------------------------------------------------------------------


def test_usr_of_this_machine_reads_like_a_kernel_overlay_of_it(tmp_path):
    """A kernel overlay mount of ``/usr`` and ``OverlayFS(OSFS('/usr'))``: type, link target and
    what a read through the path gives, for every link and a seeded sample of other paths."""
    unavailable = kernel_overlay_available()
    if unavailable:
        if os.environ.get("UNIONFS_REQUIRE_KERNEL") == "1":
            pytest.fail("kernel overlayfs required: " + unavailable)
        pytest.skip(unavailable)
    merged, empty = tempfile.mkdtemp(prefix="unionfs-usr-"), tempfile.mkdtemp(prefix="unionfs-empty-")
    try:
        _mount_overlay("lowerdir=/usr:%s" % empty, merged)  # read-only: two lowers, no upper
        try:
            everything = _all_paths(merged)
            links = [path for path in everything if os.path.islink(merged + path)]
            sample = sorted(set(links) | set(random.Random(13).sample(everything, min(4000, len(everything)))))
            with OverlayFS(OSFS("/usr")) as overlay:
                for path in links:
                    assert overlay.islink(path) and overlay.readlink(path) == os.readlink(merged + path)
                for path in sample[:2000]:
                    status = os.lstat(merged + path)
                    info = overlay.getinfo(path, ["details", "link"])
                    assert (info.is_dir, info.is_link) == (stat.S_ISDIR(status.st_mode), stat.S_ISLNK(status.st_mode)), path
                differ = _compare_reads(overlay, merged, sample)
            print("/usr: %d paths, %d links, %d compared through reads, %d differ" % (len(everything), len(links), len(sample), len(differ)))
            assert not differ, dict(list(differ.items())[:5])
        finally:
            _unmount(merged)
    finally:
        os.rmdir(merged)
        os.rmdir(empty)
