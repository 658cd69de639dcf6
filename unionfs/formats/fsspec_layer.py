"""Any fsspec filesystem as a layer: S3 (the ``s3`` extra) and every other object store.

Object stores have no directories, only keys; a LIST with a delimiter answers what one
"directory" holds, with every entry's size and time, in one paginated request. So this FS
keeps one listing per directory, the same shape as the overlay's per-layer directory index:
a lookup costs one LIST of each directory on its path the first time and nothing after,
a walk one LIST (page) per directory, and a read is ranged GETs of ``block_size`` bytes
(a seek costs nothing until the next read). Nothing here imports fsspec: the caller hands in
an fsspec filesystem, or :func:`open_fsspec_url` makes one from a URL.

A read-only :class:`FsspecFS` sends only LIST, HEAD and GET requests, so a base bucket can be
opened with credentials that may not write to it. A writable one (a publishing target for
:meth:`unionfs.OverlayFS.export_upper` or ``commit``) writes every object with one PUT (or
one multipart upload) that appears whole when it completes, and keeps empty directories as
zero-byte ``name/`` marker objects.
"""

from __future__ import annotations

import contextlib
import io
import threading
from datetime import datetime
from typing import Any, BinaryIO, Collection, Dict, Iterator, List, Mapping, Optional, Text, Tuple

from .. import _fsimport  # noqa: F401  (imports fs quietly)
from fs import errors
from fs.base import FS
from fs.enums import ResourceType
from fs.info import Info
from fs.mode import Mode
from fs.path import basename, dirname, join, normpath, relpath
from fs.subfs import SubFS


from ..errors import LayerFormatError, UnsupportedLayer

#: bytes one ranged GET asks for: big enough that streaming a file costs few requests,
#: small enough that reading a header does not fetch the object
DEFAULT_BLOCK_SIZE = 8 * 1024 * 1024

_Entry = Dict[str, Any]  # an fsspec info dict: name, type, size, LastModified/mtime, ...


class FsspecFS(FS):
    """``root`` of an fsspec filesystem as a PyFilesystem2 FS (read-only unless ``writable``).

    ``label`` names the layer in every error (``s3://bucket/base``). Listings are cached for
    the life of the FS: lowers do not change under a live overlay, and this FS's own writes
    keep the cache true.
    """

    def __init__(
        self,
        fsspec_fs: Any,
        root: str = "",
        *,
        writable: bool = False,
        label: Optional[str] = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        super().__init__()
        self._fs = fsspec_fs
        self._root = root.strip("/")
        self._writable = writable
        self._block_size = block_size
        protocol = fsspec_fs.protocol if isinstance(fsspec_fs.protocol, str) else fsspec_fs.protocol[0]
        self._protocol = protocol
        self.label = label or "%s://%s" % (protocol, self._root)
        #: object stores have no directories: an empty one is a ``name/`` marker object
        self._markers = protocol in ("s3", "s3a", "gs", "gcs", "az", "abfs", "adl", "oss")
        self._listings: Dict[str, Optional[Dict[str, _Entry]]] = {}
        self._listing_lock = threading.RLock()
        self._meta = {
            "case_insensitive": False,
            "invalid_path_chars": "\0",
            "max_path_length": None,
            "max_sys_path_length": None,
            "network": True,
            "read_only": not writable,
            "supports_rename": False,
            "thread_safe": True,
            "unicode_paths": True,
            "virtual": False,
        }
        if not writable and self._listing("/") is None:
            raise UnsupportedLayer(msg="%s: no such bucket or prefix (nothing is stored under it)" % self.label)

    def __repr__(self) -> str:
        return "FsspecFS(%r)" % (self.label,)

    def __str__(self) -> str:
        return "<%s>" % self.label

    # -- identity -----------------------------------------------------------------------------

    @property
    def location(self) -> Tuple[str, str]:
        """(protocol, key prefix): two FsspecFS with equal locations show the same objects."""
        return (self._protocol, self._root)

    # -- keys and errors ----------------------------------------------------------------------

    def _key(self, path: str) -> str:
        rel = relpath(normpath(path))
        if not self._root:
            return rel
        return self._root + "/" + rel if rel else self._root

    @contextlib.contextmanager
    def _translate(self, path: str) -> Iterator[None]:
        """The one place a client's exception becomes an ``fs.errors`` one naming this layer."""
        try:
            yield
        except errors.FSError:
            raise
        except FileNotFoundError as error:
            raise errors.ResourceNotFound(path, exc=error) from error
        except PermissionError as error:
            raise errors.PermissionDenied(path, msg="%s: permission denied at %s: %s" % (self.label, path, error)) from error
        except (OSError, ConnectionError, TimeoutError) as error:
            raise errors.RemoteConnectionError(path, msg="%s: %s failed: %s" % (self.label, path, error)) from error
        except Exception as error:  # botocore/aiohttp errors that fsspec passes through unconverted
            if type(error).__module__.split(".")[0] in ("botocore", "aiobotocore", "aiohttp", "urllib3", "requests"):
                raise errors.RemoteConnectionError(path, msg="%s: %s failed: %s" % (self.label, path, error)) from error
            raise

    # -- the listing cache --------------------------------------------------------------------

    def _listing(self, path: str) -> Optional[Dict[str, _Entry]]:
        """``{name: entry}`` of directory ``path`` (one LIST the first time), ``None`` if it is
        not a directory."""
        path = normpath(path) or "/"
        with self._listing_lock:
            # the directories from the deepest one listed before down to ``path``: a loop, so a
            # key thousands of levels deep costs no recursion
            unlisted, current = [], path
            while current not in self._listings:
                unlisted.append(current)
                if current == "/":
                    break
                current = dirname(current) or "/"
            for directory in reversed(unlisted):
                if directory != "/":
                    parent = self._listings[dirname(directory) or "/"]
                    entry = None if parent is None else parent.get(basename(directory))
                    if entry is None or entry["type"] != "directory":
                        return None  # nothing to LIST: the parent's listing already answers
                self._listings[directory] = self._list(directory)
            return self._listings[path]

    def _list(self, path: str) -> Optional[Dict[str, _Entry]]:
        key = self._key(path)
        with self._translate(path):
            try:
                raw: List[_Entry] = self._fs.ls(key, detail=True)
            except FileNotFoundError:
                # an existing directory is never empty on a store without directories, except
                # the root (an empty prefix) and marker-only directories; both list as empty
                if path != "/" or self._writable:
                    return {}
                return None
        listing: Dict[str, _Entry] = {}
        own = key.rstrip("/")
        for entry in raw:
            name = entry["name"].rstrip("/")
            if name == own or not name:
                continue  # the directory's own marker object
            child = name.rsplit("/", 1)[-1]
            if child in listing and listing[child]["type"] != entry["type"]:
                raise LayerFormatError(
                    msg="%s: %r is both an object and a prefix; a layer cannot show both"
                    % (self.label, join(path, child))
                )
            if entry["type"] not in ("file", "directory"):
                continue
            listing[child] = entry
        return listing

    def _entry(self, path: str) -> Optional[_Entry]:
        """The listing entry of ``path`` (``None`` for the root, or if there is none)."""
        parent = self._listing(dirname(path))
        return None if parent is None else parent.get(basename(path))

    def _changed(self, path: str) -> None:
        """Forget the cached listings a write at ``path`` can make stale."""
        with self._listing_lock:
            for cached in [p for p in self._listings if p == path or p.startswith(path.rstrip("/") + "/")]:
                del self._listings[cached]
            parent = dirname(path)
            while True:
                self._listings.pop(parent, None)
                if parent == "/":
                    break
                parent = dirname(parent)

    # -- reading ------------------------------------------------------------------------------

    def getmeta(self, namespace: Text = "standard") -> Dict[Text, Any]:
        return dict(self._meta) if namespace == "standard" else {}

    def _info(self, name: str, entry: Optional[_Entry], namespaces: Collection[str]) -> Info:
        is_dir = entry is None or entry["type"] == "directory"
        raw: Dict[str, Dict[str, Any]] = {"basic": {"name": name, "is_dir": is_dir}}
        if "details" in namespaces:
            modified = None
            if entry is not None:
                stamp = entry.get("LastModified", entry.get("mtime", entry.get("last_modified")))
                if isinstance(stamp, datetime):
                    modified = stamp.timestamp()
                elif isinstance(stamp, (int, float)):
                    modified = float(stamp)
            raw["details"] = {
                "type": int(ResourceType.directory if is_dir else ResourceType.file),
                "size": 0 if is_dir else int(entry.get("size") or 0),  # type: ignore[union-attr]
                "modified": modified,
                "accessed": None,
                "created": None,
                "metadata_changed": None,
            }
        if "s3" in namespaces and entry is not None and "ETag" in entry:
            raw["s3"] = {"etag": entry["ETag"]}
        return Info(raw)

    def getinfo(self, path: Text, namespaces: Optional[Collection[Text]] = None) -> Info:
        _path = self.validatepath(path)
        if _path == "/":
            if self._listing("/") is None:
                raise errors.ResourceNotFound(path)
            return self._info("", None, namespaces or ())
        entry = self._entry(_path)
        if entry is None:
            raise errors.ResourceNotFound(path)
        return self._info(basename(_path), entry, namespaces or ())

    def listdir(self, path: Text) -> List[Text]:
        return [info.name for info in self.scandir(path)]

    def scandir(
        self, path: Text, namespaces: Optional[Collection[Text]] = None, page: Optional[Tuple[int, int]] = None
    ) -> Iterator[Info]:
        _path = self.validatepath(path)
        listing = self._listing(_path)
        if listing is None:
            if self._entry(_path) is not None:
                raise errors.DirectoryExpected(path)
            raise errors.ResourceNotFound(path)
        items = sorted(listing.items())
        if page is not None:
            items = items[page[0] : page[1]]
        return iter([self._info(name, entry, namespaces or ()) for name, entry in items])

    def openbin(self, path: Text, mode: Text = "r", buffering: int = -1, **options: Any) -> BinaryIO:
        _path = self.validatepath(path)
        _mode = Mode(mode)
        _mode.validate_bin()
        if _mode.writing:
            return self._open_for_writing(path, _path, _mode)
        entry = self._entry(_path)
        if entry is None:
            raise errors.ResourceNotFound(path)
        if entry["type"] == "directory":
            raise errors.FileExpected(path)
        with self._translate(path):
            handle = self._fs.open(
                self._key(_path), "rb", block_size=self._block_size, **self._open_options(entry)
            )
        if isinstance(getattr(type(handle), "details", None), property):
            # fsspec's buffered files fetch their details (one HEAD) on the first read: the
            # listing entry already is those details
            handle.details = entry
        return _Reader(handle, self, path)  # type: ignore[return-value]

    def _open_options(self, entry: _Entry) -> Dict[str, Any]:
        # s3fs takes the size we already know, so opening costs no HEAD request
        return {"size": entry.get("size")} if self._protocol in ("s3", "s3a") else {}

    # -- writing (publishing targets only) ----------------------------------------------------

    def _check_writable(self, path: str) -> None:
        if not self._writable:
            raise errors.ResourceReadOnly(path, msg="%s is a read-only layer" % self.label)

    def _open_for_writing(self, path: str, _path: str, mode: Mode) -> BinaryIO:
        self._check_writable(path)
        if mode.appending or mode.reading:
            raise errors.Unsupported(path, msg="%s: objects are written whole, not updated in place" % self.label)
        if self._listing(dirname(_path)) is None:
            raise errors.ResourceNotFound(path)
        entry = self._entry(_path)
        if entry is not None and entry["type"] == "directory":
            raise errors.FileExpected(path)
        if entry is not None and mode.exclusive:
            raise errors.FileExists(path)
        self._changed(_path)
        with self._translate(path):
            handle = self._fs.open(self._key(_path), "wb")
        return _Writer(handle, self, path)  # type: ignore[return-value]

    def makedir(self, path: Text, permissions: Any = None, recreate: bool = False) -> SubFS[FS]:
        _path = self.validatepath(path)
        self._check_writable(path)
        if _path == "/" or self._entry(_path) is not None:
            if not recreate or not self.isdir(_path):
                raise errors.DirectoryExists(path)
            return SubFS(self, _path)
        if self._listing(dirname(_path)) is None:
            raise errors.ResourceNotFound(path)
        with self._translate(path):
            if self._markers:
                self._fs.pipe_file(self._key(_path) + "/", b"")
            else:
                self._fs.makedirs(self._key(_path), exist_ok=True)
        self._changed(_path)
        return SubFS(self, _path)

    def remove(self, path: Text) -> None:
        _path = self.validatepath(path)
        self._check_writable(path)
        entry = self._entry(_path)
        if entry is None:
            raise errors.ResourceNotFound(path)
        if entry["type"] == "directory":
            raise errors.FileExpected(path)
        with self._translate(path):
            self._fs.rm_file(self._key(_path))
        self._changed(_path)
        self._keep_parent(dirname(_path))

    def removedir(self, path: Text) -> None:
        _path = self.validatepath(path)
        self._check_writable(path)
        if _path == "/":
            raise errors.RemoveRootError(path)
        listing = self._listing(_path)
        if listing is None:
            raise errors.ResourceNotFound(path) if self._entry(_path) is None else errors.DirectoryExpected(path)
        if listing:
            raise errors.DirectoryNotEmpty(path)
        with self._translate(path):
            if self._markers:
                with contextlib.suppress(FileNotFoundError):
                    self._fs.rm_file(self._key(_path) + "/")
            else:
                self._fs.rmdir(self._key(_path))
        self._changed(_path)
        self._keep_parent(dirname(_path))

    def _keep_parent(self, parent: str) -> None:
        """On a store without directories, the last object gone takes its directory with it:
        keep the directory as a marker, as a filesystem would."""
        if self._markers and parent != "/" and self._list(parent) == {}:
            with self._translate(parent):
                self._fs.pipe_file(self._key(parent) + "/", b"")

    def setinfo(self, path: Text, info: Mapping[Text, Mapping[Text, object]]) -> None:
        """Object stores keep their own times and no modes: accepted, and nothing changes."""
        self._check_writable(path)
        self.getinfo(path)


class _ObjectHandle(io.RawIOBase):
    """One open object of an :class:`FsspecFS`: the client's file, and the layer its errors name."""

    mode = "rb"

    def __init__(self, handle: Any, owner: FsspecFS, path: str) -> None:
        self._handle = handle
        self._owner = owner
        self._path = path
        self.name = path

    def tell(self) -> int:
        return int(self._handle.tell())


class _Reader(_ObjectHandle):
    """A ranged-GET reader whose errors name the layer (the client's own buffering stays)."""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with self._owner._translate(self._path):
            data = self._handle.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        with self._owner._translate(self._path):
            return bytes(self._handle.read(size if size is not None and size >= 0 else -1))

    def readall(self) -> bytes:
        return self.read(-1)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(self._handle.seek(offset, whence))

    def close(self) -> None:
        if not self.closed:
            self._handle.close()
        super().close()


class _Writer(_ObjectHandle):
    """Writes one object: it appears whole when the handle closes (one PUT or multipart)."""

    mode = "wb"

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        with self._owner._translate(self._path):
            return int(self._handle.write(bytes(data)))

    def close(self) -> None:
        if not self.closed:
            try:
                with self._owner._translate(self._path):
                    self._handle.close()
            finally:
                self._owner._changed(normpath(self._path))
        super().close()


def open_fsspec_url(url: str, writable: bool = False) -> FsspecFS:
    """An FS URL such as ``s3://bucket/prefix`` as an :class:`FsspecFS`, configured the
    client's standard way (for S3: the AWS environment variables and config files, and
    ``AWS_ENDPOINT_URL`` for a non-AWS endpoint)."""
    try:
        import fsspec
    except ImportError as error:  # pragma: no cover - exercised without the extra
        raise UnsupportedLayer(msg="%s: object-store layers need the s3 extra: pip install 'unionfs[s3]'" % url) from error
    protocol, _, rest = url.partition("://")
    try:
        # a fresh client with no listing cache of its own: this FS keeps the listings (one per
        # directory, for its life), and another FS over the same bucket must see it anew
        fsspec_fs = fsspec.filesystem(protocol, skip_instance_cache=True, use_listings_cache=False)
    except (ImportError, ValueError) as error:
        raise UnsupportedLayer(
            msg="%s: no client for %s:// (for S3: pip install 'unionfs[s3]'): %s" % (url, protocol, error)
        ) from error
    label = "%s://%s" % (protocol, rest.strip("/"))
    try:
        return FsspecFS(fsspec_fs, rest, writable=writable, label=label)
    except errors.CreateFailed:
        raise
    except errors.FSError as error:
        raise UnsupportedLayer(msg="cannot open %s: %s" % (label, error)) from error


#: URL schemes that name an object store: their layers open through fsspec, never fs.open_fs
OBJECT_STORE_PROTOCOLS = ("s3", "s3a", "gs", "gcs", "az", "abfs")


def is_object_store_url(url: str) -> bool:
    """Whether ``url`` (``s3://bucket/prefix`` and the like) names an object-store prefix."""
    return url.partition("://")[0].lower() in OBJECT_STORE_PROTOCOLS and "://" in url
