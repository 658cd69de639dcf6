"""unionfs: Linux overlayfs semantics for PyFilesystem2.

``OverlayFS(lowers, upper)`` layers one writable upper filesystem over read-only
lower filesystems: reads see the topmost entry, writes copy up into the upper, and
deletions of lower entries become whiteouts recorded in the upper's sidecar.
"""

from . import _fsimport  # noqa: F401  (first: imports fs without pkg_resources warnings)
from .errors import (
    ArchiveTooLarge,
    AttributeExists,
    AttributeNameInvalid,
    AttributeTooLarge,
    DigestMismatch,
    IllegalDestination,
    LayerFormatError,
    LinkLoop,
    ModesLost,
    MountError,
    MountUnavailable,
    NoSuchAttribute,
    NotALink,
    ReservedPath,
    SidecarError,
    UnsafeArchive,
    UnsupportedLayer,
    UpperInUse,
)
from .overlay import OverlayFS

__version__ = "0.1.0"

__all__ = [
    "OverlayFS",
    "ArchiveTooLarge",
    "AttributeExists",
    "AttributeNameInvalid",
    "AttributeTooLarge",
    "DigestMismatch",
    "IllegalDestination",
    "LayerFormatError",
    "LinkLoop",
    "ModesLost",
    "MountError",
    "MountUnavailable",
    "NoSuchAttribute",
    "NotALink",
    "ReservedPath",
    "SidecarError",
    "UnsafeArchive",
    "UnsupportedLayer",
    "UpperInUse",
    "__version__",
]
