"""Finding an image's layers: OCI image layouts, ``docker save`` archives, lists of tars.

Everything here reads metadata (index, manifests, configs) and describes each layer as
a :class:`~unionfs.formats.oci.blobs.Blob` with the digest and diff_id the image promises for it;
:mod:`unionfs.formats.oci.oci` then indexes the layers and checks those promises. Archives (a
``docker save`` tar, or a tarred layout) are read in place: each blob is a window into
the outer tar.
"""

from __future__ import annotations

import json
import os
import platform
import tarfile
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import attr

from ... import _fsimport  # noqa: F401  (imports fs quietly, see the module)

from ...errors import LayerFormatError, convert_errors
from ..archive_index import plain_tar_files
from .blobs import Blob, algorithm_of, compression_of, file_opener, peek, read_verified, window_opener

PathLike = Union[str, "os.PathLike[str]"]

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = (MEDIA_INDEX, DOCKER_MANIFEST_LIST)
REF_ANNOTATION = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


@attr.s(frozen=True, slots=True)
class ImageLayers:
    """The layers of one image, base first, each with the diff_id its config promises."""

    layers: Tuple[Blob, ...] = attr.ib()
    diff_ids: Tuple[Optional[str], ...] = attr.ib()


class BlobStore:
    """Blobs by relative path, from a directory or from inside a plain tar archive."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._members: Optional[Dict[str, Tuple[int, int]]] = None
        if os.path.isfile(root):
            self._members = _tar_members(root)

    def exists(self, name: str) -> bool:
        if self._members is None:
            return os.path.isfile(os.path.join(self.root, name))
        return name in self._members

    def blob(self, name: str, digest: Optional[str] = None, size: Optional[int] = None) -> Blob:
        _check_name(name, self.root)
        label = "%s/%s" % (self.root.rstrip("/"), name) if self._members is None else "%s!%s" % (self.root, name)
        if self._members is None:
            path = os.path.join(self.root, name)
            if not os.path.isfile(path):
                raise LayerFormatError("%s is missing" % label)
            return Blob(label, file_opener(path), digest, size)
        if name not in self._members:
            raise LayerFormatError("%s is missing" % label)
        offset, stored = self._members[name]
        return Blob(label, window_opener(file_opener(self.root), offset, stored), digest, size)

    def json(self, name: str, digest: Optional[str] = None) -> Any:
        return parse_json(self.blob(name, digest))

    def descriptor_json(self, descriptor: Dict[str, Any], context: str) -> Tuple[Blob, Any]:
        """The blob a descriptor points to, and its (verified) JSON content."""
        blob = self.by_digest(descriptor, context)
        return blob, parse_json(blob)


    def by_digest(self, descriptor: Dict[str, Any], context: str) -> Blob:
        digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
        if not isinstance(digest, str) or ":" not in digest:
            raise LayerFormatError("%s: descriptor without a valid digest: %r" % (context, descriptor))
        algorithm_of(digest, context)  # always, verified or not: the digest becomes a path
        algorithm, _, hex_part = digest.partition(":")
        size = descriptor.get("size")
        return self.blob("blobs/%s/%s" % (algorithm, hex_part), digest, size if isinstance(size, int) else None)


def _check_name(name: Any, root: str) -> None:
    """A blob name from an image's own metadata must stay inside the image: relative, without
    ``..`` (a ``docker save`` manifest naming ``../outside/evil.tar`` reads nothing outside)."""
    if not isinstance(name, str) or not name:
        raise LayerFormatError("%s: a blob name must be a non-empty string, not %r" % (root, name))
    parts = name.split("/")
    if name.startswith("/") or ".." in parts or "\0" in name:
        raise LayerFormatError("%s: blob name %r points outside the image" % (root, name))


def expect(value: Any, kind: type, where: str, what: str) -> Any:
    """``value`` if it is a ``kind``, else a :class:`LayerFormatError` saying what was wrong."""
    if not isinstance(value, kind):
        raise LayerFormatError(
            "%s: %s must be a JSON %s, not %s" % (where, what, _JSON_NAMES.get(kind, kind.__name__), type(value).__name__)
        )
    return value


_JSON_NAMES: Dict[type, str] = {dict: "object", list: "array", str: "string"}


def parse_json(blob: Blob) -> Any:
    try:
        return json.loads(read_verified(blob).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise LayerFormatError("%s is not valid JSON: %s" % (blob.label, error)) from error


def _tar_members(path: str) -> Dict[str, Tuple[int, int]]:
    """Member name -> (data offset, size) of the regular files of a plain tar archive; a
    symlink member (skopeo's ``<id>/layer.tar``) names its target's data."""
    with convert_errors(LayerFormatError, "%s is not a plain (uncompressed) tar archive" % path, (tarfile.TarError, OSError)):
        with open(path, "rb") as handle:
            return plain_tar_files(handle)


def ref_names(descriptor: Dict[str, Any]) -> List[str]:
    annotations = descriptor.get("annotations") or {}
    names = [annotations.get(REF_ANNOTATION), annotations.get(CONTAINERD_NAME)]
    return [name for name in names if isinstance(name, str)]


def _matches(ref: str, names: Sequence[str]) -> bool:
    """``ref`` names the image: exactly, or as the tail of a fully qualified name."""
    return any(name == ref or name.endswith("/" + ref) for name in names)


def choose(candidates: List[Any], names: List[List[str]], ref: Optional[str], index: Optional[int], where: str) -> Any:
    if ref is not None:
        chosen = [c for c, n in zip(candidates, names) if _matches(ref, n)]
        if len(chosen) != 1:
            known = sorted({name for n in names for name in n})
            raise LayerFormatError(
                "%s: %s image matches ref %r (known refs: %s)" % (where, "no" if not chosen else "more than one", ref, ", ".join(known) or "none")
            )
        return chosen[0]
    if index is not None:
        if not 0 <= index < len(candidates):
            raise LayerFormatError("%s: image index %d out of range (%d images)" % (where, index, len(candidates)))
        return candidates[index]
    if len(candidates) != 1:
        raise LayerFormatError("%s holds %d images; choose one with ref= or index=" % (where, len(candidates)))
    return candidates[0]


_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def host_architecture() -> str:
    """This machine's architecture in OCI (GOARCH) spelling."""
    machine = platform.machine().lower()
    return _ARCHES.get(machine, machine)


def _platform_manifest(store: BlobStore, descriptor: Dict[str, Any], where: str) -> Dict[str, Any]:
    """Follow nested indexes down to one manifest, picking this machine's platform."""
    for _ in range(8):
        if descriptor.get("mediaType") not in INDEX_TYPES:
            return descriptor
        nested_blob, nested = store.descriptor_json(descriptor, where)
        nested = expect(nested, dict, nested_blob.label, "a nested index")
        manifests = [m for m in expect(nested.get("manifests") or [], list, nested_blob.label, "manifests") if isinstance(m, dict)]
        arch = host_architecture()
        fitting = [m for m in manifests if (m.get("platform") or {}).get("os", "linux") == "linux" and (m.get("platform") or {}).get("architecture", arch) == arch]
        if not fitting:
            raise LayerFormatError("%s: no manifest for linux/%s in nested index %s" % (where, arch, descriptor["digest"]))
        descriptor = fitting[0]
    raise LayerFormatError("%s: image indexes nested too deeply" % where)


def layout_layers(store: BlobStore, ref: Optional[str], index: Optional[int]) -> ImageLayers:
    """The chosen image of an OCI image layout (a directory or a tarred one)."""
    where = store.root
    index_label = "%s index.json" % where
    top = expect(store.json("index.json"), dict, index_label, "the index")
    manifests = [m for m in expect(top.get("manifests") or [], list, index_label, "manifests") if isinstance(m, dict)]
    descriptor = _platform_manifest(store, choose(manifests, [ref_names(m) for m in manifests], ref, index, where), where)
    manifest_blob, manifest = store.descriptor_json(descriptor, where)
    manifest = expect(manifest, dict, manifest_blob.label, "the manifest")
    config_blob, config = store.descriptor_json(manifest.get("config") or {}, manifest_blob.label)
    expect(config, dict, config_blob.label, "the config")
    layers = tuple(
        store.by_digest(layer, manifest_blob.label)
        for layer in expect(manifest.get("layers") or [], list, manifest_blob.label, "layers")
    )
    diff_ids = _diff_ids(config, len(layers), manifest_blob.label)
    return ImageLayers(layers, diff_ids)


def _diff_ids(config: Dict[str, Any], count: int, label: str) -> Tuple[Optional[str], ...]:
    rootfs = expect(expect(config, dict, label, "the config").get("rootfs") or {}, dict, label, "rootfs")
    diff_ids = expect(rootfs.get("diff_ids") or [], list, label, "rootfs.diff_ids")
    if len(diff_ids) != count:
        raise LayerFormatError("%s: the config lists %d diff_ids for %d layers" % (label, len(diff_ids), count))
    return tuple(diff_ids)


def docker_layers(store: BlobStore, ref: Optional[str], index: Optional[int]) -> ImageLayers:
    """The chosen image of a (pre-OCI) ``docker save`` archive, from its ``manifest.json``."""
    where = store.root
    label = "%s manifest.json" % where
    entries = [e for e in expect(store.json("manifest.json"), list, label, "manifest.json") if isinstance(e, dict)]
    entry = choose(entries, [list(e.get("RepoTags") or []) for e in entries], ref, index, where)
    config = store.json(expect(entry.get("Config"), str, label, "Config"))
    layers = tuple(store.blob(name) for name in expect(entry.get("Layers") or [], list, label, "Layers"))
    return ImageLayers(layers, _diff_ids(config, len(layers), store.blob(entry["Config"]).label))


def image_layers(source: Union[PathLike, Sequence[PathLike]], ref: Optional[str] = None, index: Optional[int] = None) -> ImageLayers:
    """Resolve ``source`` to its layers, base first.

    ``source``: an OCI image layout directory, a tar archive of one (``docker save`` of
    Docker 25+), a legacy ``docker save`` archive, or a sequence of layer tar files in image
    order (base first, as a manifest lists them)."""
    if isinstance(source, (str, os.PathLike)):
        root = os.fspath(source)
        if not os.path.exists(root):
            raise LayerFormatError("%s does not exist" % root)
        if os.path.isfile(root) and compression_of(peek(file_opener(root))):
            raise LayerFormatError(
                "%s is compressed: an image archive must be a plain tar (layer tars are given as a "
                "list, base first: from_oci([%r]))" % (root, root)
            )
        store = BlobStore(root)
        if store.exists("index.json"):
            return layout_layers(store, ref, index)
        if store.exists("manifest.json"):
            return docker_layers(store, ref, index)
        raise LayerFormatError(
            "%s is neither an OCI image layout nor a docker save archive (no index.json or "
            "manifest.json); layer tars are given as a list, base first: from_oci([%r])" % (root, root)
        )
    if ref is not None or index is not None:
        raise LayerFormatError("ref= and index= choose an image of a layout or archive, not of a list of layer tars")
    paths = [os.fspath(path) for path in source]
    for path in paths:
        if not os.path.isfile(path):
            raise LayerFormatError("layer tar %s does not exist" % path)
    return ImageLayers(tuple(Blob(path, file_opener(path)) for path in paths), (None,) * len(paths))
