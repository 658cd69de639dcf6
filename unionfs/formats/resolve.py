"""The door to the formats: what the facade (:mod:`unionfs.overlay`) asks of them.

The core knows layers only as filesystems with a marker format; everything that turns a
caller's path, URL or FS into a layer, and every writer of a layer format, is reached
from here, so the core imports no format and the facade imports only this module.
"""

from __future__ import annotations

from typing import Any, List, Optional

from .. import _fsimport  # noqa: F401  (imports fs quietly, see the module)
from fs.base import FS

from ..core.stack import Layer, Stack, open_fs
from .archives import as_lower


def resolve_lower(source: Any, what: str) -> FS:
    """A lower as the caller gave it, as an FS: an archive (a path, a ``tar://``/``zip://``
    URL, an open tar or zip FS) becomes an :class:`~unionfs.formats.archives.ArchiveFS`, an
    FS URL is opened, an FS is kept."""
    return open_fs(as_lower(source), False, what)


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
