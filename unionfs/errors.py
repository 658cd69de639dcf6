"""Exceptions of unionfs; each is an ``fs.errors`` class so callers can keep catching those."""

from __future__ import annotations

from . import _fsimport  # noqa: F401
from fs import errors


class ReservedPath(errors.PermissionDenied):
    """The caller addressed the name reserved for the sidecar (``/.unionfs``)."""

    default_message = "path '{path}' is reserved for the unionfs sidecar"


#: fs-next (and PyFilesystem2 after 2.4.16) has its own IllegalDestination, which callers catch;
#: fs 2.4.16 has none, and ResourceInvalid is the closest
_ILLEGAL_DESTINATION_BASE = getattr(errors, "IllegalDestination", errors.ResourceInvalid)


class IllegalDestination(_ILLEGAL_DESTINATION_BASE):  # type: ignore[misc,valid-type]
    """A directory would be moved or copied into itself (the kernel answers EINVAL), or a file
    copied onto itself. An ``fs.errors.IllegalDestination`` where ``fs`` has that class, else
    an ``fs.errors.ResourceInvalid``."""

    default_message = "cannot move or copy into or onto itself: '{path}'"


class SidecarError(errors.ResourceError):
    """A layer's sidecar is missing a piece, of an unknown version, or hand-edited into nonsense."""

    default_message = "corrupt unionfs sidecar at '{path}': {reason}"

    def __init__(self, path: str, reason: str) -> None:
        self.reason = reason
        super().__init__(path)


class UnsupportedLayer(errors.CreateFailed):
    """A layer could not be opened or is not usable in the position asked for."""

    default_message = "cannot use layer: {details}"


class UpperInUse(UnsupportedLayer):
    """Another process has an overlay open over the same upper (its lock record says which)."""


class MountUnavailable(errors.Unsupported):
    """``unionfs mount`` cannot run here: the ``mount`` extra (mfusepy), libfuse 3 or
    ``/dev/fuse`` is missing."""

    default_message = "cannot mount: {details}"


class MountError(errors.OperationFailed):
    """A mount could not be made (a bad mount point, bad options, FUSE refused it)."""

    default_message = "cannot mount: {details}"
