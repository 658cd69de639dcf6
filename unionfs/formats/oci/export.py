"""Writing the upper as an OCI layer tar, and adding it to an OCI image layout.

The tar is reproducible byte for byte: entries in a fixed order (see
:mod:`unionfs.changes`), numeric owners only (no user or group names), PAX format,
gzip without a name or timestamp, and, on request, one fixed timestamp for every
entry. Markers come before the entries they sit beside (as the image-spec asks), and
every directory of the upper is written, so each entry has its parents.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from typing import Any, BinaryIO, Dict, List, Mapping, Optional, Tuple, Union

import attr

from ... import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs import errors
from fs.info import Info

from ...errors import LayerFormatError, literal
from ...io import HashingWriter
from ...changes import EXPORT_NAMESPACES, UpperEntry, link_target, lower_names, upper_entries
from ...core.inode import node_info
from ...core.readdir import visible_children
from ...core.stack import Layer, Stack
from ...core.walk import preorder
from ...core.lookup import Lookup, Node
from .oci import OPAQUE_MARKER, WHITEOUT_PREFIX
from .image import MEDIA_MANIFEST, REF_ANNOTATION, BlobStore, PathLike, choose, expect, host_architecture, ref_names

MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = MEDIA_LAYER + "+gzip"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
OPAQUE_STYLES = ("marker", "whiteouts")


@attr.s(frozen=True, slots=True)
class ExportedLayer:
    """What :meth:`unionfs.OverlayFS.export_layer` wrote."""

    diff_id: str = attr.ib()  # sha256 of the uncompressed tar
    digest: str = attr.ib()  # sha256 of the bytes written (equal to diff_id without gzip)
    size: int = attr.ib()
    media_type: str = attr.ib()
    #: the manifest digest of the new image, when the layer was added to a layout
    manifest_digest: Optional[str] = attr.ib(default=None)


def _tarinfo(name: str, kind: bytes, info: Optional[Info], mtime: Optional[int]) -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.type = kind
    raw: Mapping[str, Any] = info.raw if info is not None else {}
    access: Mapping[str, Any] = raw.get("access") or {}
    details: Mapping[str, Any] = raw.get("details") or {}
    if access.get("permissions") is not None:
        entry.mode = info.permissions.mode  # type: ignore[union-attr]
    else:
        entry.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    entry.uid = int(access.get("uid") or 0)
    entry.gid = int(access.get("gid") or 0)
    entry.uname = entry.gname = ""
    modified = details.get("modified")
    entry.mtime = mtime if mtime is not None else int(modified or 0)
    return entry


def _archive_name(path: str, is_dir: bool) -> str:
    return path.lstrip("/") + ("/" if is_dir else "")


def _representable(path: str) -> None:
    """A layer tar cannot hold a name that reads as a marker."""
    if path.rpartition("/")[2].startswith(WHITEOUT_PREFIX):
        raise errors.Unsupported(path, msg=literal("cannot export %s: an OCI layer reads names starting with '.wh.' as whiteouts" % path))


def _write_entries(
    archive: tarfile.TarFile, upper: Layer, lowers: Lookup, opaque: str, mtime: Optional[int]
) -> None:
    marker_time = mtime if mtime is not None else 0
    merged = Lookup([upper] + list(lowers.layers))
    inside: Optional[str] = None  # a redirected directory written whole: skip its upper entries
    for change in upper_entries(upper):
        if inside is not None and change.path.startswith(inside):
            continue
        inside = None
        parent, _, name = change.path.rpartition("/")
        _representable(change.path)
        if change.kind == "whiteout":
            archive.addfile(_tarinfo(_archive_name(parent + "/" + WHITEOUT_PREFIX + name, False), tarfile.REGTYPE, None, marker_time))
            continue
        info = change.info
        if change.kind == "dir":
            archive.addfile(_tarinfo(_archive_name(change.path, True), tarfile.DIRTYPE, info, mtime))
            if change.opaque or change.redirect is not None:
                if opaque == "marker":
                    names = [OPAQUE_MARKER]
                else:
                    hidden = lower_names(lowers, change.path)
                    for hidden_name in hidden:
                        _representable(change.path + "/" + hidden_name)
                    names = [WHITEOUT_PREFIX + hidden_name for hidden_name in hidden]
                for marker in names:
                    archive.addfile(_tarinfo(_archive_name(change.path + "/" + marker, False), tarfile.REGTYPE, None, marker_time))
            if change.redirect is not None:
                # OCI has no redirects: the renamed directory is opaque and carries its whole merged tree
                _write_merged_tree(archive, merged, change.path, mtime)
                inside = change.path.rstrip("/") + "/"
            continue
        if change.metacopy is not None:
            node = merged.node(change.path)
            assert node is not None
            _write_file(archive, upper, attr.evolve(change, info=node_info(node, EXPORT_NAMESPACES)), mtime, node.data)
            continue
        _write_file(archive, upper, change, mtime)


def _write_merged_tree(archive: tarfile.TarFile, merged: Lookup, top: str, mtime: Optional[int]) -> None:
    """Every entry below ``top`` in the merged view, parents first, names sorted (reproducible)."""
    directory = merged.node(top)
    assert directory is not None and directory.is_dir

    def children(node: Node) -> List[Node]:
        return sorted(visible_children(merged, node), key=lambda child: child.path) if node.is_dir else []

    for child in preorder(directory, children):
        _representable(child.path)
        info = node_info(child, EXPORT_NAMESPACES)
        if child.is_dir:
            archive.addfile(_tarinfo(_archive_name(child.path, True), tarfile.DIRTYPE, info, mtime))
        else:
            _write_file(archive, None, UpperEntry(child.path, "file", info), mtime, child.data)


def _write_file(
    archive: tarfile.TarFile, upper: Optional[Layer], change: UpperEntry, mtime: Optional[int], data: Any = None
) -> None:
    """A non-directory; its content from ``data`` (a layer and path) if given, else the upper."""
    if change.hardlink_of is not None:  # a second name of a file already in the layer
        entry = _tarinfo(_archive_name(change.path, False), tarfile.LNKTYPE, change.info, mtime)
        entry.linkname = change.hardlink_of.lstrip("/")
        archive.addfile(entry)
        return
    target = link_target(change)
    if target is not None:
        entry = _tarinfo(_archive_name(change.path, False), tarfile.SYMTYPE, change.info, mtime)
        entry.linkname = target
        archive.addfile(entry)
        return
    entry = _tarinfo(_archive_name(change.path, False), tarfile.REGTYPE, change.info, mtime)
    source_fs, source_path = (data[0].fs, data[1]) if data is not None else (upper.fs, change.path)  # type: ignore[union-attr]
    with source_fs.openbin(source_path, "r") as data:
        data.seek(0, io.SEEK_END)
        entry.size = data.tell()
        data.seek(0)
        archive.addfile(entry, data)


def write_layer(
    out: BinaryIO, upper: Layer, lower_layers: List[Layer], compress: bool, opaque: str, mtime: Optional[int]
) -> ExportedLayer:
    """Write the changeset of ``upper`` to ``out`` as a layer tar; return its digests."""
    if opaque not in OPAQUE_STYLES:
        raise ValueError("opaque must be one of %s, not %r" % (", ".join(OPAQUE_STYLES), opaque))
    stored = HashingWriter(out)
    compressor = gzip.GzipFile(filename="", mode="wb", fileobj=stored, mtime=0) if compress else None  # type: ignore[arg-type]
    plain = HashingWriter(compressor if compressor is not None else stored)  # type: ignore[arg-type]
    with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as archive:  # type: ignore[call-overload]
        _write_entries(archive, upper, Lookup(lower_layers), opaque, mtime)
    if compressor is not None:
        compressor.close()
    return ExportedLayer(plain.digest, stored.digest, stored.size, MEDIA_LAYER_GZIP if compress else MEDIA_LAYER)


# -- adding the layer to an image layout ----------------------------------------------------------


def _dump(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _blob_path(layout: str, digest: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    return os.path.join(layout, "blobs", algorithm, hex_part)


def _put_blob(layout: str, data: bytes) -> Dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _install(_blob_path(layout, digest), data)
    return {"digest": digest, "size": len(data)}


def _install(path: str, data: bytes) -> None:
    """Write a file atomically: a temporary file in the same directory, then a rename."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".unionfs-")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def _base_image(store: BlobStore, base_ref: Optional[str]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The manifest and config of the image the new one builds on (empty ones if none)."""
    if base_ref is None:
        arch = host_architecture()
        manifest = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "layers": []}
        return manifest, {"architecture": arch, "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": []}}
    manifests = _index_manifests(store)
    descriptor = choose(manifests, [ref_names(m) for m in manifests], base_ref, None, store.root)
    manifest_blob, manifest = store.descriptor_json(descriptor, store.root)
    manifest = expect(manifest, dict, manifest_blob.label, "the manifest")
    config_blob, config = store.descriptor_json(manifest.get("config") or {}, manifest_blob.label)
    return manifest, expect(config, dict, config_blob.label, "the config")


def _index_manifests(store: BlobStore) -> List[Dict[str, Any]]:
    """The manifest descriptors of the layout's index.json, refusing ill-typed JSON."""
    where = "%s index.json" % store.root
    top = expect(store.json("index.json"), dict, where, "the index")
    return [m for m in expect(top.get("manifests") or [], list, where, "manifests") if isinstance(m, dict)]


def _check_layout(root: str) -> None:
    if not os.path.isfile(os.path.join(root, "oci-layout")) or not os.path.isfile(os.path.join(root, "index.json")):
        raise LayerFormatError("%s is not an OCI image layout (no oci-layout or index.json file)" % root)


def add_to_layout(
    layout: PathLike, staged_layer: str, exported: ExportedLayer, ref: str, base_ref: Optional[str], created: Optional[str]
) -> str:
    """Store the layer blob and a new image (config, manifest, index entry named ``ref``)."""
    root = os.fspath(layout)
    _check_layout(root)
    store = BlobStore(root)
    manifest, config = _base_image(store, base_ref)
    blob_path = _blob_path(root, exported.digest)
    os.makedirs(os.path.dirname(blob_path), exist_ok=True)
    os.chmod(staged_layer, 0o644)
    os.replace(staged_layer, blob_path)
    config = dict(config)
    rootfs = dict(config.get("rootfs") or {"type": "layers"})
    rootfs["diff_ids"] = list(rootfs.get("diff_ids") or []) + [exported.diff_id]
    config["rootfs"] = rootfs
    # what image tools read (``umoci stat`` fails on an entry without ``created``): when and by
    # what; ``empty_layer`` stays false, as this entry always adds a layer to rootfs.diff_ids
    created = created if created is not None else _rfc3339(int(time.time()))
    history: Dict[str, Any] = {"created": created, "created_by": "unionfs export_layer", "empty_layer": False}
    config["history"] = list(config.get("history") or []) + [history]
    config["created"] = created
    config_descriptor = dict(_put_blob(root, _dump(config)), mediaType=MEDIA_CONFIG)
    layer_descriptor = {"mediaType": exported.media_type, "digest": exported.digest, "size": exported.size}
    manifest = dict(manifest, config=config_descriptor, layers=list(manifest.get("layers") or []) + [layer_descriptor])
    manifest.setdefault("schemaVersion", 2)
    manifest.setdefault("mediaType", MEDIA_MANIFEST)
    manifest_descriptor = dict(_put_blob(root, _dump(manifest)), mediaType=MEDIA_MANIFEST, annotations={REF_ANNOTATION: ref})
    index = store.json("index.json")
    others = [m for m in _index_manifests(store) if (m.get("annotations") or {}).get(REF_ANNOTATION) != ref]
    index = dict(index, manifests=others + [manifest_descriptor])
    index.setdefault("schemaVersion", 2)
    _install(os.path.join(root, "index.json"), _dump(index))
    return str(manifest_descriptor["digest"])


def export(
    stack: Stack,
    dest: Union[PathLike, BinaryIO, None],
    compress: bool = False,
    opaque: str = "marker",
    mtime: Optional[int] = None,
    layout: Optional[PathLike] = None,
    ref: Optional[str] = None,
    base_ref: Optional[str] = None,
) -> ExportedLayer:
    """The upper of ``stack`` as an OCI layer: the body of :meth:`unionfs.OverlayFS.export_layer`."""
    upper, lower_layers = stack.upper, list(stack.lowers)
    if upper is None:
        raise errors.ResourceReadOnly("/", msg="a read-only overlay has no upper to export")
    if (layout is None) != (ref is None):
        raise ValueError("layout= and ref= go together: the layout to add the image to, and its name")
    if dest is None and layout is None:
        raise ValueError("export_layer needs dest=, layout= (with ref=), or both")
    if layout is not None:
        _check_layout(os.fspath(layout))
        os.makedirs(os.path.join(os.fspath(layout), "blobs", "sha256"), exist_ok=True)
        handle, staged = tempfile.mkstemp(dir=os.path.join(os.fspath(layout), "blobs", "sha256"), prefix=".unionfs-")
        try:
            with os.fdopen(handle, "wb") as out:
                exported = write_layer(out, upper, lower_layers, compress, opaque, mtime)  # type: ignore[arg-type]
            if dest is not None:
                _copy_file(staged, dest)
            created = None if mtime is None else _rfc3339(mtime)  # None: now
            digest = add_to_layout(layout, staged, exported, ref, base_ref, created)  # type: ignore[arg-type]
        finally:
            if os.path.exists(staged):
                os.unlink(staged)
        return attr.evolve(exported, manifest_digest=digest)
    if isinstance(dest, (str, os.PathLike)):
        with open(dest, "wb") as out:
            return write_layer(out, upper, lower_layers, compress, opaque, mtime)  # type: ignore[arg-type]
    return write_layer(dest, upper, lower_layers, compress, opaque, mtime)  # type: ignore[arg-type]


def _copy_file(source: str, dest: Union[PathLike, BinaryIO]) -> None:
    with open(source, "rb") as data:
        if isinstance(dest, (str, os.PathLike)):
            with open(dest, "wb") as out:
                shutil.copyfileobj(data, out)
        else:
            shutil.copyfileobj(data, dest)


def _rfc3339(timestamp: int) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
