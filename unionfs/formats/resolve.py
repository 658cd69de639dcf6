"""The door to the formats: what the facade (:mod:`unionfs.overlay`) asks of them.

The core knows layers only as filesystems with a marker format; everything that turns a
caller's path, URL or FS into a layer, and every writer of a layer format, is reached
from here, so the core imports no format and the facade imports only this module.
"""

from __future__ import annotations

import os
from typing import Any, Callable, List, Optional, Tuple, Union

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
import fs
from fs.base import FS

from ..errors import convert_errors, create_failed

from ..core.stack import Layer, Stack, open_fs

# The archive and object-store modules (tarfile, zipfile, lzma, the OCI blob readers, ...) are
# imported by the first source that needs them: a mount of directories never does, and each
# `mount -t fuse.unionfs` is a fresh interpreter (the unionmount-testsuite starts hundreds).


def _object_store_url(source: Any) -> bool:
    if not isinstance(source, str) or "://" not in source:
        return False
    from .fsspec_layer import is_object_store_url

    return is_object_store_url(source)


def resolve_lower(source: Any, what: str, unsafe: str = "error") -> FS:
    """A lower as the caller gave it, as an FS: an archive (a path, a ``tar://``/``zip://``
    URL, an open tar or zip FS) becomes an :class:`~unionfs.formats.archives.ArchiveFS`
    (``unsafe``: what it does with hostile members, "error" or "skip"), an
    object-store URL (``s3://bucket/prefix``) an :class:`~unionfs.formats.fsspec_layer.FsspecFS`,
    an FS URL is opened, an FS is kept."""
    if _object_store_url(source):
        from .fsspec_layer import open_fsspec_url

        return open_fsspec_url(source)
    if unsafe in ("error", "skip") and isinstance(source, str) and "://" not in source and os.path.isdir(source):
        # a directory is no archive: as_lower would return it as it is (and check ``unsafe``,
        # which is one of archives.UNSAFE_POLICIES here)
        return open_fs(source, False, what)
    from .archives import as_lower

    return open_fs(as_lower(source, unsafe), False, what)


def resolve_upper(source: Any, what: str) -> FS:
    """The upper as the caller gave it, as an FS (an object-store URL opens through fsspec, and
    the stack then refuses it: it cannot rename)."""
    if _object_store_url(source):
        from .fsspec_layer import open_fsspec_url

        return open_fsspec_url(source, writable=True)
    return open_fs(source, True, what)


def oci_layers(source: Any, ref: Optional[str], index: Optional[int], verify: bool) -> List[Layer]:
    """The lowers of a container image, topmost first (see :meth:`unionfs.OverlayFS.from_oci`)."""
    from .oci.oci import image_stack

    return image_stack(source, ref=ref, index=index, verify=verify)


def kernel_lowers(lowerdirs: Any, userxattr: Optional[bool]) -> List[Layer]:
    """Layers for kernel-format directories, topmost first (see :meth:`unionfs.OverlayFS.from_kernel`)."""
    from .kernel import kernel_layers

    return kernel_layers(lowerdirs, userxattr)


def export_oci(stack: Stack, dest: Any, **options: Any) -> Any:
    """The upper of ``stack`` as an OCI layer (see :meth:`unionfs.OverlayFS.export_layer`)."""
    from .oci.export import export

    return export(stack, dest, **options)


def export_kernel(stack: Stack, dest_dir: str, **options: Any) -> None:
    """The upper of ``stack`` as a kernel upperdir (see :meth:`unionfs.OverlayFS.export_kernel`)."""
    from .kernel import export_upper

    export_upper(stack, dest_dir, **options)


def open_target(target: Union[FS, str]) -> Tuple[FS, bool]:
    """A commit or publishing target as a writable FS, and whether it was opened here (and so
    must be closed by the caller): an FS as it is, ``s3://bucket/prefix`` through fsspec, any
    other FS URL through ``fs.open_fs`` (created if missing)."""
    if isinstance(target, FS):
        return target, False
    with convert_errors(create_failed, "cannot open commit target %r" % (target,), fs_errors=True):
        if _object_store_url(target):
            from .fsspec_layer import open_fsspec_url

            return open_fsspec_url(target, writable=True), True
        return fs.open_fs(target, writeable=True, create=True), True


def export_upper(stack: Stack, target: FS, label: str) -> int:
    """The upper of ``stack`` published as a layer into ``target`` (see
    :meth:`unionfs.OverlayFS.export_upper`)."""
    from .publish import export_upper as publish

    assert stack.upper is not None
    return publish(stack.upper, target, label)
