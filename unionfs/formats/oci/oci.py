"""OCI image layers (tar changesets) as read-only layers of an overlay.

A layer tar is indexed once, in one sequential pass (which also yields its digest and
diff_id), and never extracted: members are read in place on demand. The OCI image-spec
marker rules (``layer.md``, "Representing Changes") map onto the overlay's per-directory
index like this:

- ``D/.wh.NAME`` whites out ``D/NAME`` in the layers below; it never hides an entry of its
  own layer. A same-layer entry that is also whited out therefore stays, and, if it is a
  directory, hides everything below it (it becomes opaque).
- ``D/.wh..wh..opq`` makes ``D`` opaque: its own-layer children stay, lower layers'
  children of ``D`` are hidden, wherever the marker sits in the tar. At the root it cuts
  off every layer below (see :attr:`TarLayerFS.root_opaque`).
- Other ``.wh..wh.*`` names (aufs metadata such as ``.wh..wh.plnk``) are ignored; a bare
  ``.wh.`` is rejected. No marker is ever visible.
"""

from __future__ import annotations

import os
import stat
import tarfile
from typing import Any, BinaryIO, Callable, Collection, Dict, List, Optional, Sequence, Set, Tuple, Union, cast

import attr

from ... import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs import errors
from fs.enums import ResourceType
from fs.info import Info
from fs.memoryfs import MemoryFS
from fs.path import basename, dirname, iteratepath, join

from .blobs import (
    Blob,
    SharedStream,
    algorithm_of,
    check_digest,
    check_size,
    compression_of,
    peek,
    random_access,
    seek_reader,
)
from ...core.copy_up import SPECIAL_TYPES
from ...core.stack import DirIndex, Layer
from ...errors import LayerFormatError, convert_errors, literal
from ...io import HashingReader, WindowReader
from .. import archive_index, tarscan
from ..archive_index import ArchiveIndexFS, buffered, link_target_path, member_info, normalise, permission_names
from ...core.lookup import Lookup
from .image import PathLike, image_layers

_DIRECTORY = ResourceType.directory

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
META_PREFIX = ".wh..wh."

@attr.s(slots=True)
class TarEntry:
    """One visible member of a layer: its metadata and where its data lies. Never changed
    once made (``attr.evolve`` makes another); not a frozen class, whose ``__init__`` sets each
    field through ``object.__setattr__`` (1.1 us an entry against 0.2, once per member)."""

    name: str = attr.ib()
    kind: ResourceType = attr.ib()
    mode: int = attr.ib()
    uid: int = attr.ib()
    gid: int = attr.ib()
    user: str = attr.ib()
    group: str = attr.ib()
    mtime: float = attr.ib()
    size: int = attr.ib()
    data_offset: int = attr.ib()
    link_target: Optional[str] = attr.ib(default=None)  # symlink target
    hardlink_to: Optional[str] = attr.ib(default=None)  # normalised path of a hard link's target
    #: a directory the tar only implies (members lie inside it); it has no metadata of its own
    implicit: bool = attr.ib(default=False)
    #: implied by markers only: unpacking creates nothing there, so it exists only where the
    #: layers below have a directory (see :meth:`TarLayer.settle`)
    ghost: bool = attr.ib(default=False)

    @property
    def is_dir(self) -> bool:
        return self.kind is _DIRECTORY

    def info(self) -> Info:
        access = {
            "permissions": list(permission_names(self.mode)),
            "uid": self.uid,
            "gid": self.gid,
            "user": self.user or None,
            "group": self.group or None,
        }
        return member_info(self.name, self.kind, None, self.size, self.mtime, access, self.link_target)

    def stat(self) -> os.stat_result:
        """lstat(2) as the mount answers it from :meth:`info` (the same fields, no ``Info``
        built): device and inode 0 (a tar member has no identity; the mount numbers it),
        one link, a symlink's mode 0777, the time as all three times, no device number."""
        mode = stat.S_IFLNK | 0o777 if self.kind == ResourceType.symlink else self.mode | (stat.S_IFDIR if self.kind == ResourceType.directory else SPECIAL_TYPES.get(self.kind, stat.S_IFREG))
        size = 0 if self.kind == ResourceType.directory else self.size
        return _make_stat(mode, self.uid, self.gid, size, self.mtime, (self.size + 511) // 512)


def _stat_by_names(mode: int, uid: int, gid: int, size: int, mtime: float, blocks: int) -> os.stat_result:
    """An ``os.stat_result`` of these fields (device, inode and rdev 0, one link, the one
    time as all three), its fields past the sequence given by name (any platform)."""
    seconds, time_ns = int(mtime), int(mtime * 1e9)
    return os.stat_result(
        (mode, 0, 0, 1, uid, gid, size, seconds, seconds, seconds),
        {"st_atime": mtime, "st_mtime": mtime, "st_ctime": mtime, "st_atime_ns": time_ns,
         "st_mtime_ns": time_ns, "st_ctime_ns": time_ns, "st_blksize": 4096, "st_blocks": blocks, "st_rdev": 0},
    )


def _stat_in_order(mode: int, uid: int, gid: int, size: int, mtime: float, blocks: int) -> os.stat_result:
    """:func:`_stat_by_names`, all 19 fields as one tuple in Linux's order (a quarter of the
    cost: the dict of the others costs more than the rest; once per entry a walk lists)."""
    seconds, time_ns = int(mtime), int(mtime * 1e9)
    return os.stat_result((mode, 0, 0, 1, uid, gid, size, seconds, seconds, seconds, mtime, mtime, mtime,
                           time_ns, time_ns, time_ns, 4096, blocks, 0))


def _stat_maker() -> Callable[[int, int, int, int, float, int], os.stat_result]:
    """:func:`_stat_in_order` where this platform's ``os.stat_result`` has that layout (checked
    on a sample, field by field), else :func:`_stat_by_names`."""
    sample = (0o100640, 7, 8, 9, 1234.5, 10)
    try:
        fast, named = _stat_in_order(*sample), _stat_by_names(*sample)
    except TypeError:  # another number of fields
        return _stat_by_names
    fields = [name for name in dir(named) if name.startswith("st_")]
    same = tuple(fast) == tuple(named) and all(getattr(fast, name) == getattr(named, name) for name in fields)
    return _stat_in_order if same else _stat_by_names


_make_stat = _stat_maker()




def _implicit_dir(name: str, ghost: bool = False) -> TarEntry:
    """A directory the tar implies (a member lies inside it) but has no header for."""
    return TarEntry(name, ResourceType.directory, 0o755, 0, 0, "", "", 0.0, 0, 0, implicit=True, ghost=ghost)


def member_path(raw_name: str, label: str, clamp: bool = False) -> str:
    """The absolute, normalised path of a tar member name (OCI's policy of
    :func:`~unionfs.formats.archive_index.normalise`: ``..`` resolves inside the layer and
    one that escapes is refused, or with ``clamp`` stays at the root, as a symlink target
    inside a root filesystem does)."""
    try:
        return normalise(raw_name, dotdot="clamp" if clamp else "resolve", backslashes=True)
    except ValueError:
        raise LayerFormatError("%s: member %r escapes the layer root" % (label, raw_name)) from None


@attr.s(slots=True)
class LayerIndex:
    """Everything known about a layer after its one indexing pass."""

    entries: Dict[str, TarEntry] = attr.ib(factory=dict)  # path -> entry ("/" excluded)
    dirs: Dict[str, DirIndex] = attr.ib(factory=dict)
    root: Optional[TarEntry] = attr.ib(default=None)
    root_opaque: bool = attr.ib(default=False)
    digest: str = attr.ib(default="")  # of the blob as stored (compressed or not)
    diff_id: str = attr.ib(default="")  # of the uncompressed tar
    compression: str = attr.ib(default="")
    #: offset reads into the uncompressed tar (compressed layers only; gzip keeps the
    #: checkpoints the indexing pass left)
    stream: Optional[SharedStream] = attr.ib(default=None)


def _self_and_ancestors(path: str) -> List[str]:
    paths = []
    while path != "/":
        paths.append(path)
        path = dirname(path)
    return paths


class _IndexBuilder:
    """Collects the members of one layer tar, then resolves the marker rules."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.entries: Dict[str, TarEntry] = {}
        self.root: Optional[TarEntry] = None
        self.whiteouts: Dict[str, Set[str]] = {}
        self.opaque_dirs: Set[str] = set()
        self.count = 0

    def _ensure_dir(self, path: str, ghost: bool) -> bool:
        """Make ``path`` and its ancestors directories of this layer (implicitly if needed);
        ``ghost``: only markers lie inside. False if a non-directory of this layer is in the
        way of a marker (umoci writes such markers; the non-directory hides all below anyway)."""
        known = self.entries.get(path)
        if path == "/" or (known is not None and known.is_dir and (ghost or not known.ghost)):
            # (the usual case, a member of a directory already seen: every ancestor of an
            # entry is a directory entry, as adding a non-directory drops what lay inside)
            return True
        blocker = next((p for p in _self_and_ancestors(path) if p in self.entries and not self.entries[p].is_dir), None)
        if blocker is not None:
            if ghost:
                return False
            raise LayerFormatError("%s: %r is a %s but members lie inside it" % (self.label, blocker, self.entries[blocker].kind.name))
        while path != "/":
            entry = self.entries.get(path)
            if entry is not None:
                if ghost or not entry.ghost:
                    return True
                self.entries[path] = attr.evolve(entry, ghost=False)
            else:
                self.entries[path] = _implicit_dir(basename(path), ghost)
            path = dirname(path)
        return True

    def add(self, member: Union[tarfile.TarInfo, tarscan.Member]) -> None:
        self.count += 1
        path = member_path(member.name, self.label)
        head, _, name = path.rpartition("/")  # (fs.path's basename and dirname, inline)
        parent = head or "/"
        if META_PREFIX in parent and any(part.startswith(META_PREFIX) for part in iteratepath(parent)):
            return  # inside aufs metadata (.wh..wh.plnk/...): not part of the view
        if name.startswith(WHITEOUT_PREFIX):
            if not self._ensure_dir(parent, ghost=True):
                return
            if name == OPAQUE_MARKER:
                self.opaque_dirs.add(parent)
            elif name.startswith(META_PREFIX):
                pass  # aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not part of the view
            elif name == WHITEOUT_PREFIX:
                raise LayerFormatError("%s: invalid whiteout %r (no name after '.wh.')" % (self.label, member.name))
            else:
                self.whiteouts.setdefault(parent, set()).add(name[len(WHITEOUT_PREFIX):])
            return
        if member.type == tarfile.GNUTYPE_SPARSE or member.issparse():
            # PAX sparse members are regular files to ``member.type``: refuse them by their map,
            # or a 10 KiB tar would declare (and a copy-up write) a member of any size
            raise LayerFormatError("%s: sparse member %r is not supported" % (self.label, member.name))
        kind_name = archive_index.TAR_KINDS.get(member.type)
        kind = archive_index.RESOURCE_TYPES[kind_name] if kind_name is not None else None
        if kind is None:
            kind = ResourceType.file  # unknown types read as regular files, as tar does
        entry = TarEntry(
            name=name,
            kind=kind,
            mode=member.mode & 0o7777,
            uid=member.uid,
            gid=member.gid,
            user=member.uname,
            group=member.gname,
            mtime=float(member.mtime),
            size=member.size if kind == ResourceType.file and member.type != tarfile.LNKTYPE else len(member.linkname.encode("utf-8", "surrogateescape")) if member.type == tarfile.SYMTYPE else 0,
            data_offset=member.offset_data,
            link_target=member.linkname if member.type == tarfile.SYMTYPE else None,
            hardlink_to=member_path(member.linkname, self.label) if member.type == tarfile.LNKTYPE else None,
        )
        if path == "/":
            if not entry.is_dir:
                raise LayerFormatError("%s: the root member %r is not a directory" % (self.label, member.name))
            self.root = entry
            return
        self._ensure_dir(parent, ghost=False)
        previous = self.entries.get(path)
        if previous is not None and previous.is_dir and not entry.is_dir:
            prefix = path + "/"
            for inner in [p for p in self.entries if p.startswith(prefix)]:
                del self.entries[inner]
        self.entries[path] = entry

    def finish(self) -> LayerIndex:
        index = LayerIndex(root=self.root)
        index.dirs["/"] = DirIndex({})
        for path, entry in self.entries.items():
            if entry.hardlink_to is not None:
                target = self.entries.get(entry.hardlink_to)
                if target is not None and target.kind == ResourceType.symlink:  # a second name of a link
                    entry = attr.evolve(entry, kind=ResourceType.symlink, link_target=target.link_target, hardlink_to=None)
                elif target is None or target.kind != ResourceType.file:
                    raise LayerFormatError("%s: hard link %r points to %r, which is not a file of this layer" % (self.label, path, entry.hardlink_to))
                else:
                    entry = attr.evolve(entry, size=target.size, data_offset=target.data_offset, hardlink_to=None)
                self.entries[path] = entry
            index.entries[path] = entry
            if entry.is_dir:
                index.dirs.setdefault(path, DirIndex({}))
        dirs = index.dirs
        for path, entry in index.entries.items():
            parent_index = dirs[path[: path.rfind("/")] or "/"]  # (dirname of a normalised path)
            parent_index.entries[entry.name] = entry.is_dir
            if entry.kind is ResourceType.symlink:
                parent_index.links.add(entry.name)  # an entry of its own: the overlay resolves it
        for parent, names in self.whiteouts.items():
            directory = index.dirs.get(parent)
            for name in names:
                if directory is None:
                    continue  # the directory was replaced by a file later in the tar
                child = index.entries.get(join(parent, name))
                if child is not None and child.ghost:
                    _drop_dir(index, join(parent, name))  # whited out: unpacking leaves nothing there
                    child = None
                if child is None:
                    directory.whiteouts.add(name)
                elif child.is_dir:
                    directory.opaque.add(name)  # kept, but nothing below shows through it
        for path in self.opaque_dirs:
            if path == "/":
                index.root_opaque = True
            elif index.dirs.get(path) is not None:
                index.dirs[dirname(path)].opaque.add(basename(path))
        return index


def _drop_dir(index: LayerIndex, path: str) -> None:
    """Remove a (ghost) directory and everything recorded inside it from a layer's index."""
    prefix = path + "/"
    for inner in [p for p in index.entries if p.startswith(prefix)]:
        del index.entries[inner]
    for inner in [p for p in index.dirs if p.startswith(prefix)]:
        del index.dirs[inner]
    index.entries.pop(path, None)
    index.dirs.pop(path, None)
    parent = index.dirs.get(dirname(path))
    if parent is not None:
        parent.entries.pop(basename(path), None)
        parent.opaque.discard(basename(path))


class _DamagedHeader(Exception):
    pass


class _StrictTarInfo(tarfile.TarInfo):
    """Python's tarfile ends an archive quietly at a damaged or truncated header after the
    first; a layer that does so is corrupt, not shorter."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:  # type: ignore[override]
        try:
            return super().fromtarfile(tarfile_)
        except (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError) as error:  # type: ignore[attr-defined]
            raise _DamagedHeader(str(error)) from None


def index_layer(blob: Blob, diff_id: Optional[str] = None) -> LayerIndex:
    """Read a layer tar once: its members, markers, digest and diff_id (checked if known).

    The headers are read by :func:`~unionfs.formats.tarscan.scan`; a layer it leaves to
    :mod:`tarfile` (see there), or one whose reading fails, is read again with tarfile, whose
    answer or error counts (so both are tarfile's, whatever the scanner would have said)."""
    try:
        return _index_layer(blob, diff_id, scanner=True)
    except _ScanFailed:
        return _index_layer(blob, diff_id, scanner=False)


class _ScanFailed(Exception):
    """Reading a layer with the scanner failed (or it left the layer to tarfile)."""


def _index_layer(blob: Blob, diff_id: Optional[str], scanner: bool) -> LayerIndex:
    algorithm = algorithm_of(blob.digest, blob.label) if blob.digest else "sha256"
    builder = _IndexBuilder(blob.label)
    stream: Optional[SharedStream] = None
    try:
        with convert_errors(LayerFormatError, "%s is not a readable layer tar" % blob.label):
            compression = compression_of(peek(blob.opener))
            with blob.opener() as raw_handle:
                raw = HashingReader(raw_handle, algorithm)
                stream = random_access(blob.opener, compression, blob.label, first_raw=raw) if compression else None  # type: ignore[arg-type]
                if stream is not None:
                    plain = HashingReader(WindowReader(stream.read_at))  # type: ignore[arg-type]
                elif algorithm == "sha256":
                    plain = raw  # an uncompressed layer is its tar: one hash is its digest and its diff_id
                else:
                    plain = HashingReader(raw)  # type: ignore[arg-type]  # (diff_ids are SHA-256)
                if scanner:
                    for scanned in tarscan.scan(plain.read):
                        builder.add(scanned)
                else:
                    with tarfile.open(fileobj=plain, mode="r|", tarinfo=_StrictTarInfo) as archive:  # type: ignore[call-overload]
                        for member in archive:
                            builder.add(member)
                plain.drain()
                raw.drain()
                if stream is not None:
                    stream.close()  # its handle closes with this block; later reads reopen the blob
    except _DamagedHeader as error:
        raise LayerFormatError("%s: damaged tar header after %d members (%s)" % (blob.label, builder.count, error)) from error
    except Exception as error:
        if not scanner:
            raise
        if stream is not None:
            stream.close()
        raise _ScanFailed() from error
    check_size(blob, raw.size)
    check_digest(blob.label, blob.digest, raw.digest)
    check_digest(blob.label, diff_id, plain.digest, "diff_id")
    index = builder.finish()
    index.digest, index.diff_id, index.compression, index.stream = raw.digest, plain.digest, compression, stream
    return index


class TarLayerFS(ArchiveIndexFS):
    """A read-only FS over one indexed layer tar. Markers are not part of it."""

    def __init__(self, blob: Blob, diff_id: Optional[str] = None) -> None:
        super().__init__()
        self.blob = blob
        self._shared: Optional[SharedStream] = None
        self.index = index_layer(blob, diff_id)
        #: the view of the image's layers below this one: where an implied directory's
        #: metadata comes from (unpacking such a layer leaves the directory as it was)
        self.below: Optional[Lookup] = None
        #: the image as of this layer (this one over those below): where symlinks resolve
        self.view: Optional[Lookup] = None
        self._shared = self.index.stream

    def __repr__(self) -> str:
        return "TarLayerFS(%r)" % (self.blob.label,)

    # -- the index, for ArchiveIndexFS --------------------------------------------------------------

    def _entry(self, path: str) -> Optional[TarEntry]:
        if path == "/":
            return self.index.root or _implicit_dir("")
        return self.index.entries.get(path)

    def _names(self, path: str, entry: TarEntry) -> List[str]:
        return list(self.index.dirs[path].entries)

    def _info(self, path: str, entry: TarEntry, namespaces: Collection[str]) -> Info:
        """The entry's info (every namespace); an implied directory shows the one below it, if any."""
        if entry.implicit and self.below is not None:
            node = self.below.node(path)
            if node is not None and node.is_dir and node.layers:  # (the root of no layers has none)
                info = node.top.fs.getinfo(node.top_path, ("details", "access", "link"))
                cast(Dict[str, Any], info.raw["basic"])["name"] = entry.name
                return info
        return entry.info()

    def read_order(self, path: str) -> int:
        """Where ``path``'s data lies in the layer tar: reading in this order is one pass."""
        entry = self.index.entries.get(path)
        return entry.data_offset if entry is not None else 0

    def _open(self, path: str, entry: TarEntry, shown: str, buffering: int) -> BinaryIO:
        if entry.kind == ResourceType.symlink:
            return self._open_link(path, entry, shown)
        if self._shared is not None:
            reader = WindowReader(self._shared.read_at, entry.data_offset, entry.size)
        else:
            read_at, close = seek_reader(self.blob.opener)
            reader = WindowReader(read_at, entry.data_offset, entry.size, close)
        return buffered(reader, buffering)

    def _open_link(self, path: str, entry: TarEntry, shown: str, depth: int = 0) -> BinaryIO:
        """Read through a symlink, resolved in the image as of this layer (this layer over
        the ones below it); a link through a symlinked directory is not followed."""
        target = entry.link_target or ""
        resolved = link_target_path(path, target, dotdot="clamp")
        node = self.view.node(resolved) if self.view is not None and depth < archive_index.MAX_LINK_HOPS else None
        if node is None or node.is_dir:
            raise errors.ResourceNotFound(shown, msg=literal("%s: symlink %s -> %s does not lead to a file" % (self.blob.label, path, target)))
        data_layer, data_path = node.data  # (a renamed directory's file is below at its origin)
        top = data_layer.fs
        if isinstance(top, TarLayerFS):
            link = top._entry(data_path)
            if link is not None and link.kind == ResourceType.symlink:
                return top._open_link(data_path, link, shown, depth + 1)
        return top.openbin(data_path, "r")

    def close(self) -> None:
        if self._shared is not None:
            self._shared.close()
        super().close()


class TarLayer(Layer):
    """A lower layer read from an OCI layer tar: markers come from the tar's index."""

    #: the whole tar is indexed in memory already: answer every name from that index
    PROBES = False

    def __init__(self, layer_fs: TarLayerFS, label: str) -> None:
        super().__init__(layer_fs, label, is_upper=False, sidecar=None)
        self.tar_fs = layer_fs

    def _read_dir(self, path: str) -> Optional[DirIndex]:
        return self.tar_fs.index.dirs.get(path)

    def lstat(self, path: str) -> Optional[os.stat_result]:
        """The entry's lstat from the layer's index (:meth:`TarEntry.stat`): what the mount
        answers getattr with, no ``Info`` built. ``None`` (ask getinfo) for a directory the
        tar only implies that the layers below describe."""
        layer_fs = self.tar_fs
        entry = layer_fs.index.entries.get(path) if path != "/" else layer_fs._entry(path)
        if entry is None:
            raise errors.ResourceNotFound(path)
        if entry.implicit and layer_fs.below is not None and layer_fs.below.layers:
            node = layer_fs.below.node(path)
            if node is not None and node.is_dir and node.layers:
                return None
        return entry.stat()

    def settle(self, below: Lookup) -> None:
        """Place the layer on the view of the layers below it: marker-only directories stay
        only where that view has a directory (unpacking creates none), and implied
        directories take their metadata from it."""
        self.tar_fs.below = below
        self.tar_fs.view = Lookup([self] + list(below.layers))
        index = self.tar_fs.index
        for path in sorted(p for p, e in index.entries.items() if e.ghost):
            if path in index.entries:  # not dropped with a ghost parent
                node = below.node(path)
                if node is None or not node.is_dir or self._inside_own_opaque(path):
                    _drop_dir(index, path)
        self._dirs.clear()

    def _inside_own_opaque(self, path: str) -> bool:
        """Whether an ancestor of ``path`` is opaque in this layer: then the layers below show
        nothing at ``path`` for a marker-only directory to stand on."""
        index = self.tar_fs.index
        for ancestor in _self_and_ancestors(dirname(path)):
            parent = index.dirs.get(dirname(ancestor))
            if parent is not None and basename(ancestor) in parent.opaque:
                return True
        return False

    @property
    def root_opaque(self) -> bool:
        """The layer's root carries the opaque marker: no layer below it is visible."""
        return self.tar_fs.index.root_opaque


def image_stack(
    source: Union[PathLike, Sequence[PathLike]],
    ref: Optional[str] = None,
    index: Optional[int] = None,
    verify: bool = True,
) -> List[Layer]:
    """The lowers of an image, topmost first: each layer indexed (and, with ``verify``,
    checked against its digest and diff_id). A layer whose root carries the opaque marker
    hides every layer below it, so those are left out."""
    image = image_layers(source, ref, index)
    opened: List[TarLayer] = []
    try:
        for position, (blob, diff_id) in enumerate(zip(image.layers, image.diff_ids)):
            if not verify:
                blob, diff_id = attr.evolve(blob, digest=None, size=None), None
            opened.append(TarLayer(TarLayerFS(blob, diff_id), "layer %d (%s)" % (position, blob.label)))
    except BaseException:
        for layer in opened:
            layer.fs.close()
        raise
    settled: List[TarLayer] = []  # base first
    for layer in opened:
        if layer.root_opaque:
            for hidden in settled:
                hidden.fs.close()
            settled = []
        layer.settle(Lookup(list(reversed(settled))))
        settled.append(layer)
    stack: List[Layer] = list(reversed(settled))
    if not stack:
        stack.append(Layer(MemoryFS(), "empty image", False, None))
    return stack
