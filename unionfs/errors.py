"""Every public exception of unionfs, and the one translator of low-level errors into them.

Each class is an ``fs.errors`` class, so callers can keep catching those. ``fs.errors``
formats a message with the instance's fields (``msg.format(**self.__dict__)``), so a
message built from a caller's path such as ``/a/{x}`` would raise ``KeyError`` from
``str()``; the classes here format only their own ``default_message`` and keep a
message given to them as it is (:class:`_LiteralMessage`), and :func:`literal` makes a
message safe for the ``fs.errors`` classes themselves.
"""

from __future__ import annotations

import errno as _errno
import lzma
import tarfile
import types
import zipfile
import zlib
import sys
from typing import Callable, Optional, Tuple, Type

if sys.version_info >= (3, 8):
    from typing import Literal

from . import _fsimport  # noqa: F401
from fs import errors
from fs.opener.errors import OpenerError


def literal(message: str) -> str:
    """``message`` escaped for an ``fs.errors`` class, which formats it with its fields."""
    return message.replace("{", "{{").replace("}", "}}")


def message_of(error: BaseException) -> str:
    """``str(error)``, also for an ``fs.errors`` instance whose message holds braces of a path
    (fs builds some of its own that way: ``CreateFailed("root path '/a{x}' does not exist")``)."""
    try:
        return str(error) or type(error).__name__
    except (KeyError, IndexError, ValueError, AttributeError):
        return str(getattr(error, "_msg", "")) or type(error).__name__


class _LiteralMessage(errors.FSError):
    """A message given at construction is shown as it is; only ``default_message`` is a
    template for the fields (``{path}``, ``{details}``...)."""

    def _message(self) -> str:
        template = self._msg
        if template == self.default_message:
            try:
                return template.format(**self.__dict__)
            except (KeyError, IndexError, ValueError, AttributeError):
                return template
        return template

    def __str__(self) -> str:
        return self._message()

    def __repr__(self) -> str:
        return "%s(%r)" % (type(self).__name__, self._message())


class ReservedPath(_LiteralMessage, errors.PermissionDenied):
    """The caller addressed the name reserved for the sidecar (``/.unionfs``)."""

    default_message = "path '{path}' is reserved for the unionfs sidecar"


#: fs-next (and PyFilesystem2 after 2.4.16) has its own IllegalDestination, which callers catch;
#: fs 2.4.16 has none, and ResourceInvalid is the closest
_ILLEGAL_DESTINATION_BASE: Type[errors.ResourceError] = getattr(errors, "IllegalDestination", errors.ResourceInvalid)


class IllegalDestination(_LiteralMessage, _ILLEGAL_DESTINATION_BASE):  # type: ignore[misc,valid-type]
    """A directory would be moved or copied into itself (the kernel answers EINVAL), or a file
    copied onto itself. An ``fs.errors.IllegalDestination`` where ``fs`` has that class, else
    an ``fs.errors.ResourceInvalid``."""

    default_message = "cannot move or copy into or onto itself: '{path}'"


class SidecarError(_LiteralMessage, errors.ResourceError):
    """A layer's sidecar is missing a piece, of an unknown version, or hand-edited into nonsense."""

    default_message = "corrupt unionfs sidecar at '{path}': {reason}"

    def __init__(self, path: str, reason: str) -> None:
        self.reason = reason
        super().__init__(path)


class UnsupportedLayer(_LiteralMessage, errors.CreateFailed):
    """A layer could not be opened or is not usable in the position asked for."""

    default_message = "cannot use layer: {details}"


class UpperInUse(UnsupportedLayer):
    """Another process has an overlay open over the same upper (its lock record says which)."""


class ArchiveTooLarge(UnsupportedLayer):
    """An archive goes past one of the limits it was opened with
    (:class:`unionfs.formats.archives.ArchiveLimits`: members, expansion ratio)."""


class UnsafeArchive(UnsupportedLayer):
    """A member of an archive would escape the archive's root or contradicts another member."""

    default_message = "unsafe archive {path!r}: member {member!r} {reason}"

    def __init__(self, path: str, member: str, reason: str) -> None:
        self.member = member
        self.reason = reason
        super().__init__(msg="unsafe archive %r: member %r %s" % (path, member, reason))


class LayerFormatError(_LiteralMessage, errors.CreateFailed):
    """An image, layout or layer is malformed; the message names the offending file or member."""

    default_message = "invalid image or layer: {details}"

    def __init__(self, msg: str) -> None:
        super().__init__(msg=msg)


class DigestMismatch(LayerFormatError):
    """A blob's content does not hash to the digest that names it."""


class LinkLoop(_LiteralMessage, errors.ResourceInvalid):
    """Resolving a path met more than 40 symbolic links (the kernel's ELOOP): a loop, or a
    chain too long to be meant."""

    default_message = "too many levels of symbolic links: '{path}'"


class NotALink(_LiteralMessage, errors.ResourceInvalid):
    """``readlink`` of something that is not a symbolic link (the kernel's EINVAL)."""

    default_message = "not a symbolic link: '{path}'"


class _XattrError(_LiteralMessage, errors.ResourceError):
    """An extended attribute call refused; ``name`` is the attribute's name."""

    def __init__(self, path: str = "", name: str = "", msg: Optional[str] = None) -> None:
        self.name = name
        super().__init__(path, msg=msg)


class NoSuchAttribute(_XattrError):
    """``getxattr``/``removexattr`` of a name the entry does not have, or ``setxattr`` with
    ``XATTR_REPLACE`` of one (the kernel's ENODATA)."""

    default_message = "no extended attribute {name!r} on '{path}'"


class AttributeExists(_XattrError):
    """``setxattr`` with ``XATTR_CREATE`` of a name the entry has (the kernel's EEXIST)."""

    default_message = "the extended attribute {name!r} exists on '{path}'"


class AttributeNameInvalid(_XattrError):
    """An attribute name that is empty or longer than 255 bytes (the kernel's ERANGE), or a
    namespace prefix with nothing after it, ``user.`` (EINVAL: ``errno`` says which)."""

    default_message = "invalid extended attribute name {name!r} for '{path}'"

    def __init__(self, path: str = "", name: str = "", errno: int = _errno.ERANGE) -> None:
        self.errno = errno
        super().__init__(path, name)
        self.exc = OSError(errno, "invalid extended attribute name")  # the errno a mount answers


class AttributeTooLarge(_XattrError):
    """An attribute value larger than 64 KiB (the kernel's E2BIG)."""

    default_message = "the value of the extended attribute {name!r} of '{path}' is larger than 64 KiB"


class MountUnavailable(_LiteralMessage, errors.Unsupported):
    """``unionfs mount`` cannot run here: the ``mount`` extra (mfusepy), libfuse 3 or
    ``/dev/fuse`` is missing."""

    default_message = "cannot mount: {details}"


class MountError(_LiteralMessage, errors.OperationFailed):
    """A mount could not be made (a bad mount point, bad options, FUSE refused it)."""

    default_message = "cannot mount: {details}"


class ModesLost(UserWarning):
    """An export from an upper that holds no modes or owners (a ``MemoryFS``): the entries are
    written with default modes (0644 files, 0755 directories) and root, whatever the lower
    files they were copied up from had."""


#: what reading a layer or opening an FS can raise below the ``fs.errors`` level: the OS,
#: a truncated stream, a damaged tar, zip or compressed stream, an FS URL no opener takes
LOW_LEVEL_ERRORS: Tuple[Type[BaseException], ...] = (
    OSError,
    EOFError,
    tarfile.TarError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    OpenerError,
)


class convert_errors:
    """Context manager: the one translator of low-level errors into unionfs exceptions.

    Modelled on ``fs.error_tools.convert_os_errors``: inside the block, an error of
    ``catch`` (by default :data:`LOW_LEVEL_ERRORS`) becomes ``into(prefix + ": " + error)``,
    chained to the original. ``fs.errors`` errors pass through unless ``fs_errors`` is
    set; a unionfs error (already precise) always passes through. ``cleanup`` runs before
    the translated error is raised (closing what the block opened).
    """

    def __init__(
        self,
        into: Callable[[str], BaseException],
        prefix: str,
        catch: Tuple[Type[BaseException], ...] = LOW_LEVEL_ERRORS,
        fs_errors: bool = False,
        cleanup: Optional[Callable[[], None]] = None,
    ) -> None:
        self.into = into
        self.prefix = prefix
        self.catch = catch + ((errors.FSError,) if fs_errors else ())
        self.cleanup = cleanup

    def __enter__(self) -> "convert_errors":
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[types.TracebackType]
    ) -> "Literal[False]":
        if exc is None:
            return False
        if self.cleanup is not None:
            self.cleanup()
        if isinstance(exc, _LiteralMessage) or not isinstance(exc, self.catch):
            return False  # re-raised as it is
        raise self.into("%s: %s" % (self.prefix, message_of(exc))) from exc


def os_failure(path: str, error: OSError, doing: str) -> errors.OperationFailed:
    """The one form of an ``OSError`` no ``fs.errors`` class stands for (the caller has dealt
    with the errnos that mean something): ``OperationFailed`` naming ``path``, its message
    ``doing: error`` kept literal (a path or label with braces prints as it is), chained to
    ``error`` by the caller's ``raise ... from error``."""
    return errors.OperationFailed(path, exc=error, msg=literal("%s: %s" % (doing, error)))


def unsupported_layer(message: str) -> UnsupportedLayer:
    """``into`` for :class:`convert_errors`: an :class:`UnsupportedLayer` with ``message``."""
    return UnsupportedLayer(msg=message)


def create_failed(message: str) -> errors.CreateFailed:
    """``into`` for :class:`convert_errors`: an ``fs.errors.CreateFailed`` with ``message``."""
    return errors.CreateFailed(msg=literal(message))


#: every public warning class (warnings, not errors: the operation went through)
WARNINGS: Tuple[Type[Warning], ...] = (ModesLost,)

#: every public exception class, for the tests that check each one
PUBLIC: Tuple[Type[errors.FSError], ...] = (
    ReservedPath,
    IllegalDestination,
    SidecarError,
    UnsupportedLayer,
    UpperInUse,
    UnsafeArchive,
    ArchiveTooLarge,
    LayerFormatError,
    DigestMismatch,
    LinkLoop,
    NotALink,
    NoSuchAttribute,
    AttributeExists,
    AttributeNameInvalid,
    AttributeTooLarge,
    MountUnavailable,
    MountError,
)

__all__ = (
    [cls.__name__ for cls in PUBLIC]
    + [cls.__name__ for cls in WARNINGS]
    + ["convert_errors", "literal", "message_of", "LOW_LEVEL_ERRORS"]
)
