"""The ``overlay://`` FS URL, so ``fs.open_fs`` can build an overlay from nested layer URLs.

Form::

    overlay://LOWER[,LOWER...][?upper=UPPER][&unsafe=skip][&volatile=1][&redirect_dir=off][&metacopy=off][!PATH]

- Each ``LOWER`` is an FS URL (``tar://``, ``zip://``, ``osfs://``, ``mem://``, even another
  ``overlay://``) or a plain path to a directory or an archive, topmost first as in the
  kernel's ``lowerdir=``. ``UPPER`` is a writable FS URL or directory path; without it the
  overlay is read-only.
- Nested URLs are percent-encoded wherever they contain one of ``, ? & = ! @ # % +`` or a
  space, so the outer URL can be split unambiguously; ``/`` and ``:`` may stay as they are.
  :func:`overlay_url` does exactly that.
- ``volatile=1`` (or ``true``/``yes``) opens the overlay with ``volatile=True``: nothing is
  fsynced, as with the kernel's ``-o volatile`` (see docs/reliability.rst).
- ``redirect_dir=off`` and ``metacopy=off`` (or ``0``/``false``/``no``) open it with
  ``redirect_dir=False`` / ``metacopy=False``: ``movedir`` of a lower directory copies it,
  and ``setinfo``/``move`` of a lower file copy its data (an upper readable without unionfs).
- ``unsafe=skip`` leaves hostile archive members out of archive lowers (``unsafe="skip"`` of
  :class:`~unionfs.OverlayFS`); the default ``error`` refuses such an archive.
- Relative paths (plain, or in ``osfs://``, ``tar://``, ``zip://`` URLs) resolve against the
  ``cwd`` given to ``fs.open_fs``, as fs's own openers do.
- ``!PATH`` at the end opens that directory of the overlay (closing it closes the overlay).

Example: ``overlay://tar:///srv/base.tar.gz,/srv/site?upper=mem://``.
"""

from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple
from urllib.parse import parse_qsl, quote, unquote

import attr

from .. import _fsimport  # noqa: F401
from fs import errors
from fs.base import FS
from fs.opener import Opener
from fs.opener.parse import ParseResult
from fs.subfs import ClosingSubFS

from ..errors import literal

from ..overlay import OverlayFS

PROTOCOL = "overlay"
_SAFE = "/:"  # left readable in nested URLs; everything else that is not alphanumeric is encoded


def quote_layer(url: str) -> str:
    """A layer URL or path made safe to nest in an ``overlay://`` URL."""
    return quote(url, safe=_SAFE)


def overlay_url(
    lowers: Sequence[str],
    upper: Optional[str] = None,
    volatile: bool = False,
    unsafe: str = "error",
    redirect_dir: bool = True,
    metacopy: bool = True,
) -> str:
    """The ``overlay://`` URL of these layer URLs or paths (topmost lower first)."""
    if not lowers:
        raise ValueError("an overlay needs at least one lower layer")
    url = "%s://%s" % (PROTOCOL, ",".join(quote_layer(lower) for lower in lowers))
    query = []
    if upper is not None:
        query.append("upper=" + quote_layer(upper))
    if volatile:
        query.append("volatile=1")
    if unsafe != "error":
        query.append("unsafe=" + quote_layer(unsafe))
    if not redirect_dir:
        query.append("redirect_dir=off")
    if not metacopy:
        query.append("metacopy=off")
    return url + ("?" + "&".join(query) if query else "")


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def parse_overlay_url(fs_url: str) -> Tuple[List[str], Optional[str]]:
    """The lower URLs and the upper URL (or ``None``) of an ``overlay://`` URL."""
    options = parse_overlay_options(fs_url)
    return options.lowers, options.upper


@attr.s(auto_attribs=True, frozen=True)
class OverlayOptions:
    """What an ``overlay://`` URL says: its layers and its parameters."""

    lowers: List[str]
    upper: Optional[str]
    #: ``?volatile=1``: nothing is fsynced (the kernel's ``-o volatile``)
    volatile: bool = False
    #: ``?unsafe=skip``: hostile archive members are left out ("error": refused)
    unsafe: str = "error"
    #: ``?redirect_dir=off``: movedir of a lower directory copies it (no redirect record)
    redirect_dir: bool = True
    #: ``?metacopy=off``: setinfo and move of a lower file copy its data up
    metacopy: bool = True


def parse_overlay_options(fs_url: str) -> OverlayOptions:
    """The lower URLs, the upper URL (or ``None``) and the parameters of an ``overlay://`` URL."""
    prefix = PROTOCOL + "://"
    if not fs_url.startswith(prefix):
        raise errors.CreateFailed(msg=literal("%r is not an %s URL" % (fs_url, prefix)))
    body = fs_url[len(prefix) :].partition("!")[0]  # fs itself opens the "!path" part
    layers, _, query = body.partition("?")
    lowers = [unquote(part) for part in layers.split(",") if part]
    if not lowers:
        raise errors.CreateFailed(msg=literal("%r names no lower layer (overlay://LOWER[,LOWER...][?upper=UPPER])" % fs_url))
    upper: Optional[str] = None
    switches = {"volatile": False, "redirect_dir": True, "metacopy": True}
    unsafe = "error"
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "upper":
            upper = value
        elif key in switches and value.lower() in _TRUE + _FALSE:
            switches[key] = value.lower() in _TRUE
        elif key in switches:
            raise errors.CreateFailed(msg=literal("%r: %s=%r is not on or off (nor 1/0, true/false, yes/no)" % (fs_url, key, value)))
        elif key == "unsafe" and value in ("error", "skip"):
            unsafe = value
        elif key == "unsafe":
            raise errors.CreateFailed(msg=literal("%r: unsafe=%r (it is 'error' or 'skip')" % (fs_url, value)))
        else:
            raise errors.CreateFailed(
                msg=literal(
                    "%r: unknown parameter %r (they are 'upper', 'volatile', 'unsafe', 'redirect_dir' and 'metacopy')"
                    % (fs_url, key)
                )
            )
    return OverlayOptions(lowers, upper, switches["volatile"], unsafe, switches["redirect_dir"], switches["metacopy"])


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
        options = parse_overlay_options(layer.partition("!")[0])
        inner = overlay_url(
            [against(lower, cwd) for lower in options.lowers],
            against(options.upper, cwd) if options.upper else None,
            volatile=options.volatile,
            unsafe=options.unsafe,
            redirect_dir=options.redirect_dir,
            metacopy=options.metacopy,
        )
        return inner + ("!" + layer.partition("!")[2] if "!" in layer else "")
    if scheme in _PATH_SCHEMES and rest and not rest.startswith("/"):
        return "%s://%s" % (scheme, os.path.join(cwd, rest))
    return layer


class OverlayOpener(Opener):
    """Opens ``overlay://`` URLs; registered through the ``fs.opener`` entry point."""

    protocols = [PROTOCOL]

    def open_fs(self, fs_url: str, parse_result: ParseResult, writeable: bool, create: bool, cwd: str) -> FS:
        options = parse_overlay_options(fs_url)
        overlay = OverlayFS(
            [against(lower, cwd) for lower in options.lowers],
            upper=against(options.upper, cwd) if options.upper else None,
            volatile=options.volatile,
            unsafe=options.unsafe,
            redirect_dir=options.redirect_dir,
            metacopy=options.metacopy,
        )
        if parse_result.path and parse_result.path.strip("/"):
            try:
                return overlay.opendir(parse_result.path, factory=ClosingSubFS)
            except errors.FSError:
                overlay.close()
                raise
        return overlay
