"""Helpers for the image and kernel-format tests: hand-made layer tars, umoci, tree snapshots."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from typing import Dict, Iterable, Optional, Tuple

import pytest

import unionfs  # noqa: F401  (imports fs quietly first)
from unionfs.testing import trees
from fs.base import FS
from fs.enums import ResourceType
from fs.info import Info

#: what a snapshot records of an entry
Entry = Tuple[str, ...]


def tar_entry(name: str, data: Optional[bytes] = None, *, kind: str = "file", target: str = "",
              mode: Optional[int] = None, uid: int = 0, gid: int = 0, mtime: int = 1_600_000_000) -> Tuple[tarfile.TarInfo, Optional[bytes]]:
    """One member for :func:`write_tar`: ``kind`` is file, dir or symlink."""
    info = tarfile.TarInfo(name)
    info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}[kind]
    info.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    info.uid, info.gid, info.mtime = uid, gid, mtime
    info.linkname = target
    if kind == "file":
        data = data or b""
        info.size = len(data)
    return info, data


def write_tar(path: str, members: Iterable[Tuple[tarfile.TarInfo, Optional[bytes]]], compression: str = "") -> str:
    """A layer tar with exactly these members, in this order."""
    mode = "w:gz" if compression == "gzip" else "w"
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def snapshot_fs(view: FS, with_times: bool = True) -> Dict[str, Entry]:
    """Every path of ``view`` (root excluded): type, mode, owner, content hash or link target, mtime."""
    def record(fs: FS, child: str, info: Info) -> Entry:
        kind = ResourceType(info.get("details", "type", 0))
        if info.is_dir:
            what = "dir"
        elif kind == ResourceType.symlink:
            what = "symlink:" + str(info.get("link", "target"))
        else:
            what = "file:" + hashlib.sha256(fs.readbytes(child)).hexdigest()
        mode = "%o" % info.permissions.mode if info.has_namespace("access") and info.permissions else "?"
        owner = "%s:%s" % (info.get("access", "uid"), info.get("access", "gid"))
        mtime = str(int(info.get("details", "modified") or 0)) if with_times and not kind == ResourceType.symlink else ""
        return (what, mode if kind != ResourceType.symlink else "", owner, mtime)

    return trees.snapshot(view, record, namespaces=["details", "access", "link"], sidecar=True)


def snapshot_dir(root: str, with_times: bool = True) -> Dict[str, Entry]:
    """The same record as :func:`snapshot_fs`, of a real directory tree (lstat, no following)."""
    def record(full: str, st: os.stat_result) -> Entry:
        if stat.S_ISDIR(st.st_mode):
            what = "dir"
        elif stat.S_ISLNK(st.st_mode):
            what = "symlink:" + os.readlink(full)
        else:
            with open(full, "rb") as data:
                what = "file:" + hashlib.sha256(data.read()).hexdigest()
        is_link = stat.S_ISLNK(st.st_mode)
        mode = "" if is_link else "%o" % stat.S_IMODE(st.st_mode)
        mtime = str(int(st.st_mtime)) if with_times and not is_link else ""
        return (what, mode, "%d:%d" % (st.st_uid, st.st_gid), mtime)

    return trees.disk_snapshot(root, record)


# -- umoci -------------------------------------------------------------------------------------------


def require_umoci() -> str:
    """umoci's path; skips the test where it is missing (fails in CI, which installs it)."""
    found = shutil.which("umoci")
    if found is None:
        if os.environ.get("UNIONFS_REQUIRE_UMOCI") == "1":
            pytest.fail("umoci required (UNIONFS_REQUIRE_UMOCI=1) but not installed")
        pytest.skip("umoci is not installed")
    if os.geteuid() != 0:
        pytest.skip("umoci unpack needs root to restore owners")
    return found


def require_skopeo() -> None:
    """skopeo writes the archive formats (``docker save``'s, a tarred layout); skips where it is
    missing (fails in CI, which installs it)."""
    if shutil.which("skopeo") is None:
        if os.environ.get("UNIONFS_REQUIRE_UMOCI") == "1":
            pytest.fail("skopeo required (UNIONFS_REQUIRE_UMOCI=1) but not installed")
        pytest.skip("skopeo is not installed")


def skopeo_copy(source: str, destination: str) -> None:
    done = subprocess.run(["skopeo", "copy", "--quiet", source, destination], capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError("skopeo copy %s %s failed: %s" % (source, destination, done.stderr.strip()))


def umoci(*args: str) -> str:
    done = subprocess.run(["umoci", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError("umoci %s failed: %s" % (" ".join(args), done.stderr.strip()))
    return done.stdout


def new_layout(layout: str, ref: str = "base") -> str:
    umoci("init", "--layout", layout)
    umoci("new", "--image", "%s:%s" % (layout, ref))
    return layout


def add_layer(layout: str, ref: str, tar_path: str, new_ref: Optional[str] = None) -> None:
    """``umoci raw add-layer``: the layer as it is, appended to image ``ref`` (or as ``new_ref``)."""
    args = ["raw", "add-layer", "--image", "%s:%s" % (layout, ref)]
    if new_ref is not None:
        args += ["--tag", new_ref]
    umoci(*args, tar_path)


def unpack(layout: str, ref: str, bundle: str) -> str:
    """umoci's root filesystem of image ``ref``."""
    umoci("unpack", "--image", "%s:%s" % (layout, ref), bundle)
    return os.path.join(bundle, "rootfs")
