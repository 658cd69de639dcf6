"""The floor of a Python FUSE daemon on mfusepy and libfuse 3's high-level API: a trivial
passthrough of one directory, each operation the one system call it names, no overlay, no
locks, no inode table.

    python -m benchmarks.mount_trivial ROOT MOUNTPOINT

It daemonizes once mounted (as fuse-overlayfs does) and serves with the FUSE options
``unionfs mount`` uses (multi-threaded, ``default_permissions``, ``use_ino``, 1 s caches).
Each libfuse worker keeps its Python thread state, as in ``unionfs mount`` (mfusepy would
make and free one per callback). ``python -m benchmarks.mount --trivial`` runs it as the system "trivial" for the writing
workload ``tar x`` (it serves an empty directory of its own): what is left between
``unionfs mount`` and that is the overlay's and the mount's own work; what is left
between that and fuse-overlayfs is the binding's and the interpreter's.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import threading
from typing import Any, Dict, List, Optional, Tuple


def _attributes(st: os.stat_result) -> Dict[str, Any]:
    return {
        "st_mode": st.st_mode, "st_ino": st.st_ino, "st_nlink": st.st_nlink, "st_uid": st.st_uid,
        "st_gid": st.st_gid, "st_size": st.st_size, "st_atime": st.st_atime_ns, "st_mtime": st.st_mtime_ns,
        "st_ctime": st.st_ctime_ns, "st_blocks": st.st_blocks, "st_blksize": st.st_blksize, "st_rdev": st.st_rdev,
    }


class Passthrough:
    """mfusepy operations over the directory ``root``."""

    use_ns = True

    def __init__(self, root: str) -> None:
        self.root = root

    def _path(self, path: str) -> str:
        return self.root + path

    def getattr(self, path: Optional[str], fh: Optional[int] = None) -> Dict[str, Any]:
        if path is None:
            return _attributes(os.fstat(fh or 0))
        return _attributes(os.lstat(self._path(path)))

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        try:
            return os.getxattr(self._path(path), name, follow_symlinks=False)
        except OSError as error:
            raise OSError(error.errno or errno.ENODATA, "") from None

    def readdir(self, path: str, fh: int) -> List[str]:
        return [".", ".."] + os.listdir(self._path(path))

    def mkdir(self, path: str, mode: int) -> None:
        os.mkdir(self._path(path), mode)

    def rmdir(self, path: str) -> None:
        os.rmdir(self._path(path))

    def unlink(self, path: str) -> None:
        os.unlink(self._path(path))

    def rename(self, old: str, new: str) -> None:
        os.rename(self._path(old), self._path(new))

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(self._path(path), mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        os.chown(self._path(path), uid, gid, follow_symlinks=False)

    def utimens(self, path: str, times: Optional[Tuple[int, int]] = None) -> None:
        os.utime(self._path(path), ns=times, follow_symlinks=False)

    def truncate(self, path: Optional[str], length: int, fh: Optional[int] = None) -> None:
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self._path(path or ""), length)

    def open(self, path: str, flags: int) -> int:
        return os.open(self._path(path), flags)

    def create(self, path: str, mode: int, flags: int) -> int:
        return os.open(self._path(path), flags | os.O_CREAT, mode)

    def read(self, path: Optional[str], size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    def write(self, path: Optional[str], data: bytes, offset: int, fh: int) -> int:
        return os.pwrite(fh, data, offset)

    def release(self, path: Optional[str], fh: int) -> None:
        os.close(fh)

    def fsync(self, path: Optional[str], datasync: int, fh: int) -> None:
        os.fsync(fh)


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m benchmarks.mount_trivial ROOT MOUNTPOINT", file=sys.stderr)
        return 2
    from unionfs.tools.mount import load_binding  # libfuse 3, as unionfs mount finds it

    mfusepy = load_binding()
    keep_thread_state = ctypes.pythonapi.PyGILState_Ensure
    kept = set()

    class FUSE(mfusepy.FUSE):  # type: ignore[misc,name-defined]
        def _wrapper(self, func: Any, *args: Any, **kwargs: Any) -> Any:
            # as unionfs mount does: each libfuse worker keeps one Python thread state (else
            # ctypes makes and frees one per callback, which doubles a small request's cost)
            ident = threading.get_ident()
            if ident not in kept:
                kept.add(ident)
                keep_thread_state()
            return super()._wrapper(func, *args, **kwargs)

    os.umask(0)
    FUSE(Passthrough(os.path.abspath(args[0])), args[1], foreground=False, default_permissions=True,
                 allow_other=True, use_ino=True, entry_timeout=1.0, attr_timeout=1.0, negative_timeout=1.0,
                 max_threads=16, max_idle_threads=16, fsname="trivial")
    return 0


if __name__ == "__main__":
    sys.exit(main())
