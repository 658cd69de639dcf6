"""The ``overlay://`` FS URL, so ``fs.open_fs`` can build an overlay from nested layer URLs.

Form::

    overlay://LOWER[,LOWER...][?upper=UPPER][&unsafe=skip][!PATH]

- Each ``LOWER`` is an FS URL (``tar://``, ``zip://``, ``osfs://``, ``mem://``, even another
  ``overlay://``) or a plain path to a directory or an archive, topmost first as in the
  kernel's ``lowerdir=``. ``UPPER`` is a writable FS URL or directory path; without it the
  overlay is read-only.
- Nested URLs are percent-encoded wherever they contain one of ``, ? & = ! @ # % +`` or a
  space, so the outer URL can be split unambiguously; ``/`` and ``:`` may stay as they are.
  :func:`overlay_url` does exactly that.
- ``!PATH`` at the end opens that directory of the overlay (closing it closes the overlay).

Example: ``overlay://tar:///srv/base.tar.gz,/srv/site?upper=mem://``.
"""

from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence, Tuple
from urllib.parse import parse_qsl, quote, unquote

from .. import _fsimport  # noqa: F401
from fs import errors
from fs.base import FS
from fs.opener import Opener
from fs.opener.parse import ParseResult
from fs.subfs import ClosingSubFS

from ..overlay import OverlayFS

PROTOCOL = "overlay"
_SAFE = "/:"  # left readable in nested URLs; everything else that is not alphanumeric is encoded


def quote_layer(url: str) -> str:
    """A layer URL or path made safe to nest in an ``overlay://`` URL."""
    return quote(url, safe=_SAFE)


def overlay_url(lowers: Sequence[str], upper: Optional[str] = None) -> str:
    """The ``overlay://`` URL of these layer URLs or paths (topmost lower first)."""
    if not lowers:
        raise ValueError("an overlay needs at least one lower layer")
    url = "%s://%s" % (PROTOCOL, ",".join(quote_layer(lower) for lower in lowers))
    if upper is not None:
        url += "?upper=" + quote_layer(upper)
    return url


def parse_overlay_url(fs_url: str, with_options: bool = False) -> Any:
    """The lower URLs and the upper URL (or ``None``) of an ``overlay://`` URL; with
    ``with_options`` also its ``unsafe`` ("error" unless ``?unsafe=skip``)."""
    prefix = PROTOCOL + "://"
    if not fs_url.startswith(prefix):
        raise errors.CreateFailed(msg="%r is not an %s URL" % (fs_url, prefix))
    body = fs_url[len(prefix) :].partition("!")[0]  # fs itself opens the "!path" part
    layers, _, query = body.partition("?")
    lowers = [unquote(part) for part in layers.split(",") if part]
    if not lowers:
        raise errors.CreateFailed(msg="%r names no lower layer (overlay://LOWER[,LOWER...][?upper=UPPER])" % fs_url)
    upper: Optional[str] = None
    unsafe = "error"
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "upper":
            upper = value
        elif key == "unsafe" and value in ("error", "skip"):
            unsafe = value
        elif key == "unsafe":
            raise errors.CreateFailed(msg="%r: unsafe=%r (it is 'error' or 'skip')" % (fs_url, value))
        else:
            raise errors.CreateFailed(msg="%r: unknown parameter %r (they are 'upper' and 'unsafe')" % (fs_url, key))
    return (lowers, upper, unsafe) if with_options else (lowers, upper)


#: URL schemes whose resource is a path on this machine, resolved against ``cwd`` as fs's own openers do
_PATH_SCHEMES = ("osfs", "file", "tar", "zip", "overlay")


def against(layer: str, cwd: str) -> str:
    """``layer`` (a plain path or an FS URL) with a relative path resolved against ``cwd``, the
    directory ``fs.open_fs(..., cwd=...)`` resolves relative paths against."""
    if not cwd:
        return layer
    scheme, separator, rest = layer.partition("://")
    if not separator:
        return layer if os.path.isabs(layer) else os.path.join(cwd, layer)
    if scheme == "overlay":
        lowers, upper = parse_overlay_url(layer.partition("!")[0])
        inner = overlay_url([against(lower, cwd) for lower in lowers], against(upper, cwd) if upper else None)
        return inner + ("!" + layer.partition("!")[2] if "!" in layer else "")
    if scheme in _PATH_SCHEMES and rest and not rest.startswith("/"):
        return "%s://%s" % (scheme, os.path.join(cwd, rest))
    return layer


class OverlayOpener(Opener):
    """Opens ``overlay://`` URLs; registered through the ``fs.opener`` entry point."""

    protocols = [PROTOCOL]

    def open_fs(self, fs_url: str, parse_result: ParseResult, writeable: bool, create: bool, cwd: str) -> FS:
        lowers, upper, unsafe = parse_overlay_url(fs_url, with_options=True)
        overlay = OverlayFS([against(lower, cwd) for lower in lowers], upper=against(upper, cwd) if upper else None, unsafe=unsafe)
        if parse_result.path and parse_result.path.strip("/"):
            try:
                return overlay.opendir(parse_result.path, factory=ClosingSubFS)
            except errors.FSError:
                overlay.close()
                raise
        return overlay
