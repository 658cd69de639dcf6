"""A fault-injecting filesystem wrapper, for testing what an interrupted write leaves behind.

:class:`FaultyFS` wraps a writable FS and counts its *write-side calls*: every call that
changes the filesystem (``makedir``, ``remove``, ``removedir``, ``move``, ``movedir``,
``setinfo``, ``openbin`` in a writing mode, and ``write``/``truncate`` on a file it
opened). Compound calls (``makedirs``, ``removetree``, ``create``, ``writebytes``,
``upload``, ``copy``, ``settimes`` ...) are broken down into those primitives, so each
step of them is an injection point of its own. At the ``fail_at``-th call it raises
:class:`InjectedFault` instead of doing the call:

- ``mode="fail"``: that one call fails, later calls work again (an I/O error);
- ``mode="crash"``: that call and every later write-side call fail, as if the process
  had died there (reads still work, so the caller can unwind).

``move`` and ``movedir`` are single calls, so the wrapped FS must rename atomically
(MemoryFS does; for a filesystem with system paths, such as OSFS, ``movedir`` uses
``os.rename`` as unionfs itself does there). ``getsyspath`` is refused so no caller can
bypass the count with ``os`` calls. Several wrappers given one :class:`FaultPlan` count
(and crash) together. Typical use: run an operation once with ``fail_at=None`` to learn
its number of calls ``K``, then once per ``fail_at`` in ``1..K`` and mode.
"""

from __future__ import annotations

import os
import threading
from typing import Any, BinaryIO, Iterable, List, Optional, Tuple

from .. import _fsimport  # noqa: F401
from fs import errors
from fs.base import FS
from fs.mode import Mode
from fs.wrapfs import WrapFS

from ..errors import literal

MODES = ("fail", "crash")


class InjectedFault(errors.OperationFailed):
    """The write-side call a :class:`FaultyFS` was told to fail (an I/O error, as OSFS
    reports EIO)."""

    default_message = "injected fault at write-side call"


class FaultPlan:
    """Where to inject: counts write-side calls (of one or several :class:`FaultyFS`, which
    then fail as one system) and raises at the ``fail_at``-th. ``log`` names every call."""

    def __init__(self, fail_at: Optional[int] = None, mode: str = "fail") -> None:
        if mode not in MODES:
            raise ValueError("mode must be one of %s, not %r" % (MODES, mode))
        self.fail_at = fail_at
        self.mode = mode
        self.calls = 0
        self.crashed = False
        self.log: List[Tuple[str, str]] = []
        self._lock = threading.Lock()

    @property
    def fired(self) -> bool:
        """Whether the injected fault has happened."""
        return self.fail_at is not None and self.calls >= self.fail_at

    def tick(self, operation: str, path: str) -> None:
        """Count one write-side call; raise :class:`InjectedFault` where one is due."""
        with self._lock:
            if self.crashed:
                raise InjectedFault(path, msg=literal("injected crash: %s %s refused" % (operation, path)))
            self.calls += 1
            self.log.append((operation, path))
            if self.calls == self.fail_at:
                self.crashed = self.mode == "crash"
                raise InjectedFault(path, msg=literal("injected fault at write-side call %d: %s %s" % (self.calls, operation, path)))


class FaultyFS(WrapFS):
    """Wraps ``wrap_fs``; fails (``mode="fail"``) or crashes (``mode="crash"``) at the
    ``fail_at``-th write-side call. Give several wrappers one ``plan`` to count their calls
    together (a crash then stops all of them)."""

    def __init__(self, wrap_fs: FS, fail_at: Optional[int] = None, mode: str = "fail", plan: Optional[FaultPlan] = None) -> None:
        super().__init__(wrap_fs)
        self.plan = plan if plan is not None else FaultPlan(fail_at, mode)

    def __repr__(self) -> str:
        return "FaultyFS(%r, fail_at=%r, mode=%r)" % (self._wrap_fs, self.plan.fail_at, self.plan.mode)

    @property
    def calls(self) -> int:
        return self.plan.calls

    @property
    def log(self) -> List[Tuple[str, str]]:
        return self.plan.log

    @property
    def crashed(self) -> bool:
        return self.plan.crashed

    @property
    def fired(self) -> bool:
        return self.plan.fired

    def tick(self, operation: str, path: str) -> None:
        self.plan.tick(operation, path)

    # -- primitives: one call each --------------------------------------------------------------

    def makedir(self, path: str, permissions: Any = None, recreate: bool = False) -> Any:
        self.tick("makedir", path)
        return super().makedir(path, permissions=permissions, recreate=recreate)

    def remove(self, path: str) -> None:
        self.tick("remove", path)
        super().remove(path)

    def removedir(self, path: str) -> None:
        self.tick("removedir", path)
        super().removedir(path)

    def move(self, src_path: str, dst_path: str, overwrite: bool = False, preserve_time: bool = False) -> None:
        self.tick("move", src_path)
        super().move(src_path, dst_path, overwrite=overwrite, preserve_time=preserve_time)

    def movedir(self, src_path: str, dst_path: str, create: bool = False, preserve_time: bool = False) -> None:
        self.tick("movedir", src_path)
        try:  # a directory on disk moves by rename(2), as unionfs moves it without the wrapper
            os.rename(self._wrap_fs.getsyspath(src_path), self._wrap_fs.getsyspath(dst_path))
            return
        except (errors.NoSysPath, OSError):
            pass
        super().movedir(src_path, dst_path, create=create, preserve_time=preserve_time)

    def setinfo(self, path: str, info: Any) -> None:
        self.tick("setinfo", path)
        super().setinfo(path, info)

    def openbin(self, path: str, mode: str = "r", buffering: int = -1, **options: Any) -> BinaryIO:
        _mode = Mode(mode)
        writing = _mode.writing or _mode.truncate or _mode.create
        if writing:
            self.tick("openbin(%s)" % mode, path)
        handle = super().openbin(path, mode, buffering=buffering, **options)
        return _FaultyFile(handle, self, path) if writing else handle  # type: ignore[return-value]

    def getsyspath(self, path: str) -> str:
        raise errors.NoSysPath(path=path)

    def hassyspath(self, path: str) -> bool:
        return False

    # -- compound calls: broken into primitives by the base implementations ----------------------

    makedirs = FS.makedirs
    removetree = FS.removetree
    create = FS.create
    writebytes = FS.writebytes
    writetext = FS.writetext
    upload = FS.upload
    writefile = FS.writefile
    appendbytes = FS.appendbytes
    appendtext = FS.appendtext
    settimes = FS.settimes
    touch = FS.touch
    copy = FS.copy
    copydir = FS.copydir
    open = FS.open  # type: ignore[assignment]  # FS's text wrapper over our openbin, not WrapFS's delegation


class _FaultyFile:
    """A file of a :class:`FaultyFS`: ``write``, ``writelines`` and ``truncate`` are
    write-side calls; everything else is the wrapped file's."""

    def __init__(self, handle: BinaryIO, owner: FaultyFS, path: str) -> None:
        self._handle = handle
        self._owner = owner
        self._path = path

    def write(self, data: bytes) -> int:
        self._owner.tick("write", self._path)
        return self._handle.write(data)

    def writelines(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            self.write(line)

    def truncate(self, size: Optional[int] = None) -> int:
        self._owner.tick("truncate", self._path)
        return self._handle.truncate(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __iter__(self) -> Any:
        return iter(self._handle)

    def __enter__(self) -> "_FaultyFile":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._handle.close()
