"""pytest plugin (entry point ``pytest11``): the ``overlay_factory`` fixture.

``overlay_factory(template)`` returns a fresh copy-on-write :class:`~unionfs.OverlayFS` over a
*pristine template*: a directory path, a tar or zip path, an FS URL, or an open FS. The
template is opened once per session and never copied: each test gets an empty memory
upper over it, so setup and teardown cost the same whatever the template's size. The test
may write anything; ``overlay.changes()`` tells what it changed.

The template is guarded three ways:

- every overlay reads it through a read-only guard that records any write attempt, and a
  test whose overlays tried to write into the template fails at teardown;
- after each test, a constant-cost check: the template's root (the archive file, or the
  directory) must have the same ``os.stat`` identity, size and mtime as at first use, and a
  directory template on Linux is watched with inotify from first use, so a change anywhere
  inside it (a file rewritten in place too) fails the very test that made it, naming the
  test and the file;
- at the end of the session (or after each test, with ``--unionfs-template-check=each``),
  a full check: every path and the SHA-256 of every file must match the first use.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import attr
import pytest

from .. import _fsimport  # noqa: F401
from ..io import CHUNK
from fs import errors
from fs.base import FS
from fs.memoryfs import MemoryFS
from fs.mode import Mode
from fs.osfs import OSFS
from fs.wrap import WrapReadOnly

from ..formats.archives import ArchiveFS, as_lower
from ..overlay import OverlayFS
from ..testing.trees import snapshot
from .opener import against

Template = Union[str, "os.PathLike[str]", FS]

#: the inotify events that mean "changed": written, attributes, created, deleted, moved
_IN_CHANGES = 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000


class TreeWatch:
    """Every directory of a tree watched with inotify (Linux): :meth:`changes` names what changed
    since the last call, at a cost that does not grow with the tree. ``available`` is False
    where inotify is missing or its watch limit is reached; the root ``os.stat`` check remains."""

    def __init__(self, root: str) -> None:
        self.available = False
        self._fd = -1
        self._paths: Dict[int, str] = {}
        try:
            import ctypes
            import ctypes.util

            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            self._fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
            if self._fd < 0:
                return
            for directory, _, _ in os.walk(root):
                wd = libc.inotify_add_watch(self._fd, os.fsencode(directory), _IN_CHANGES)
                if wd < 0:
                    self.close()
                    return
                self._paths[wd] = os.path.relpath(directory, root)
            self.available = True
        except (OSError, AttributeError):
            self.close()

    def changes(self) -> List[str]:
        """The paths (relative to the root) changed since the last call."""
        if not self.available:
            return []
        import struct

        found: List[str] = []
        while True:
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                break
            offset = 0
            while offset + 16 <= len(data):
                wd, _, _, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16 : offset + 16 + length].rstrip(b"\0").decode(errors="replace")
                offset += 16 + length
                path = os.path.normpath(os.path.join(self._paths.get(wd, "?"), name))
                if path not in found:
                    found.append(path)
        return found

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = -1
        self.available = False


def pytest_addoption(parser: Any) -> None:
    parser.getgroup("unionfs").addoption(
        "--unionfs-template-check",
        choices=("session", "each"),
        default="session",
        help="when to hash every file of overlay_factory templates: once at the end of the "
        "session (default) or after each test (cost grows with the template)",
    )


class TemplateGuard(WrapReadOnly):
    """A read-only view of a template that remembers every attempt to change it."""

    def __init__(self, wrapped: FS, attempts: List[Tuple[str, str]]) -> None:
        super().__init__(wrapped)
        self._attempts = attempts

    def openbin(self, path: str, mode: str = "r", buffering: int = -1, **options: Any) -> Any:
        if Mode(mode).writing:
            self._attempts.append(("openbin(%r)" % mode, path))
        return super().openbin(path, mode, buffering, **options)


def _refusal(name: str) -> Callable[..., Any]:
    parent = getattr(WrapReadOnly, name)

    def refuse(self: TemplateGuard, path: str, *args: Any, **kwargs: Any) -> Any:
        self._attempts.append((name, path))
        return parent(self, path, *args, **kwargs)

    refuse.__name__ = name
    return refuse


for _name in (
    "appendbytes", "appendtext", "copy", "create", "makedir", "makedirs", "move", "remove", "removedir",
    "removetree", "setinfo", "settimes", "touch", "upload", "writebytes", "writefile", "writetext",
):  # fmt: skip
    setattr(TemplateGuard, _name, _refusal(_name))


def content_fingerprint(layer: FS) -> Dict[str, str]:
    """Every path of ``layer`` with its type and, for files, the SHA-256 of the content."""
    def record(fs: FS, path: str, info: Any) -> str:
        if info.is_dir:
            return "dir"
        with fs.openbin(path) as handle:
            return _sha256(handle)

    return snapshot(layer, record, namespaces=["details"], sidecar=True)


def _sha256(handle: Any) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def _root_stat(path: Optional[str]) -> Optional[Tuple[int, int, int, int]]:
    if path is None:
        return None
    try:
        result = os.stat(path)
    except OSError:
        return (0, 0, 0, 0)
    return (result.st_dev, result.st_ino, result.st_size, result.st_mtime_ns)


@attr.s(eq=False)
class OpenTemplate:
    """A template opened for the session, with what it looked like at first use."""

    label: str = attr.ib()
    fs: FS = attr.ib()
    owned: bool = attr.ib()
    os_path: Optional[str] = attr.ib()
    root_stat: Optional[Tuple[int, int, int, int]] = attr.ib(default=None)
    fingerprint: Dict[str, str] = attr.ib(factory=dict)
    attempts: List[Tuple[str, str]] = attr.ib(factory=list)
    watch: Optional[TreeWatch] = attr.ib(default=None)

    def cheap_problems(self) -> List[str]:
        problems = ["%s(%r) reached the template" % attempt for attempt in self.attempts]
        self.attempts.clear()
        if self.watch is not None:
            problems.extend("%s changed" % path for path in self.watch.changes())
        stat_now = _root_stat(self.os_path)
        if stat_now != self.root_stat:
            problems.append("its root %s changed (os.stat differs)" % self.os_path)
            self.root_stat = stat_now  # reported once, by the test that did it
        return problems

    def content(self) -> Dict[str, str]:
        """The content fingerprint: of the archive file itself where there is one, else of the FS."""
        if self.os_path is not None and os.path.isfile(self.os_path):
            with open(self.os_path, "rb") as handle:
                return {self.os_path: _sha256(handle)}
        return content_fingerprint(self.fs)

    def full_problems(self) -> List[str]:
        now = self.content()
        changed = sorted(path for path in set(now) | set(self.fingerprint) if now.get(path) != self.fingerprint.get(path))
        return ["%s differs" % path for path in changed[:10]] + (["..."] if len(changed) > 10 else [])


class TemplateCache:
    """The templates of a session, each opened and fingerprinted once."""

    def __init__(self, rootdir: str = "") -> None:
        self._open: Dict[Any, OpenTemplate] = {}
        self.rootdir = rootdir

    def get(self, template: Template) -> OpenTemplate:
        label = None
        if not isinstance(template, FS):
            # relative paths (plain or in a tar://, zip://, osfs:// URL) mean pytest's rootdir,
            # as pytest's own paths do, not wherever pytest was started from
            label = os.fspath(template)
            template = against(label, self.rootdir)
        key = id(template) if isinstance(template, FS) else template
        if key not in self._open:
            self._open[key] = self._open_template(template)
            if label is not None:
                self._open[key].label = label  # messages name the template as the test did
        return self._open[key]

    @staticmethod
    def _open_template(template: Template) -> OpenTemplate:
        if isinstance(template, FS):
            os_path = None
            try:
                os_path = template.getsyspath("/")
            except errors.NoSysPath:
                pass
            opened = OpenTemplate(repr(template), template, owned=False, os_path=os_path)
        else:
            text = os.fspath(template)
            layer = as_lower(text)
            if isinstance(layer, ArchiveFS):
                opened = OpenTemplate(text, layer, owned=True, os_path=os.path.abspath(text))
            elif "://" in text:
                import fs as _fs

                opened = OpenTemplate(text, _fs.open_fs(text), owned=True, os_path=None)
            else:
                opened = OpenTemplate(text, OSFS(text), owned=True, os_path=os.path.abspath(text))
        opened.root_stat = _root_stat(opened.os_path)
        if opened.os_path is not None and os.path.isdir(opened.os_path):
            opened.watch = TreeWatch(opened.os_path)
        opened.fingerprint = opened.content()
        return opened

    def __iter__(self) -> Iterator[OpenTemplate]:
        return iter(list(self._open.values()))

    def close(self) -> None:
        for opened in self:
            if opened.watch is not None:
                opened.watch.close()
            if opened.owned:
                opened.fs.close()
        self._open.clear()


@pytest.fixture(scope="session")
def _unionfs_templates(pytestconfig: Any) -> Iterator[TemplateCache]:
    cache = TemplateCache(str(pytestconfig.rootpath))
    yield cache
    try:
        problems = ["template %s: %s" % (t.label, problem) for t in cache for problem in t.full_problems()]
    finally:
        cache.close()
    if problems:
        pytest.fail("overlay_factory templates changed during the session:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def overlay_factory(request: Any, _unionfs_templates: TemplateCache) -> Iterator[Callable[..., OverlayFS]]:
    """``overlay_factory(template, upper=None)``: a fresh copy-on-write OverlayFS over the pristine
    ``template`` (directory path, tar/zip path, FS URL or FS), with a memory upper unless
    ``upper`` (an FS or FS URL) is given. Closed at teardown; the template is checked then."""
    made: List[Tuple[OverlayFS, OpenTemplate]] = []

    def factory(template: Template, upper: Union[FS, str, None] = None) -> OverlayFS:
        opened = _unionfs_templates.get(template)
        overlay = OverlayFS(TemplateGuard(opened.fs, opened.attempts), upper=upper if upper is not None else MemoryFS())
        made.append((overlay, opened))
        return overlay

    yield factory
    for overlay, _ in made:
        overlay.close()
    full = request.config.getoption("unionfs_template_check") == "each"
    problems: List[str] = []
    for opened in {id(t): t for _, t in made}.values():
        found = opened.cheap_problems() + (opened.full_problems() if full else [])
        problems.extend("template %s: %s" % (opened.label, problem) for problem in found)
    if problems:
        pytest.fail("the pristine template changed during %s:\n" % request.node.nodeid + "\n".join(problems), pytrace=False)
