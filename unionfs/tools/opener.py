"""The ``overlay://`` FS URL, so ``fs.open_fs`` can build an overlay from nested layer URLs.

Form::

    overlay://LOWER[,LOWER...][?upper=UPPER][!PATH]

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

from typing import Dict, List, Optional, Sequence, Tuple
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


def parse_overlay_url(fs_url: str) -> Tuple[List[str], Optional[str]]:
    """The lower URLs and the upper URL (or ``None``) of an ``overlay://`` URL."""
    prefix = PROTOCOL + "://"
    if not fs_url.startswith(prefix):
        raise errors.CreateFailed(msg="%r is not an %s URL" % (fs_url, prefix))
    body = fs_url[len(prefix) :].partition("!")[0]  # fs itself opens the "!path" part
    layers, _, query = body.partition("?")
    lowers = [unquote(part) for part in layers.split(",") if part]
    if not lowers:
        raise errors.CreateFailed(msg="%r names no lower layer (overlay://LOWER[,LOWER...][?upper=UPPER])" % fs_url)
    upper: Optional[str] = None
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "upper":
            upper = value
        elif key not in OPTIONS:
            raise errors.CreateFailed(
                msg="%r: unknown parameter %r (known: upper, %s)" % (fs_url, key, ", ".join(OPTIONS))
            )
    return lowers, upper


#: the overlay's boolean options a URL may set: ``?redirect_dir=off&metacopy=off``
OPTIONS = ("redirect_dir", "metacopy")
_SWITCH = {"on": True, "1": True, "true": True, "yes": True, "off": False, "0": False, "false": False, "no": False}


def parse_overlay_options(fs_url: str) -> Dict[str, bool]:
    """The options (:data:`OPTIONS`) an ``overlay://`` URL sets, e.g. ``{"redirect_dir": False}``."""
    query = fs_url.partition("!")[0].partition("?")[2]
    options: Dict[str, bool] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in OPTIONS:
            if value.lower() not in _SWITCH:
                raise errors.CreateFailed(msg="%r: %s must be on or off, not %r" % (fs_url, key, value))
            options[key] = _SWITCH[value.lower()]
    return options


class OverlayOpener(Opener):
    """Opens ``overlay://`` URLs; registered through the ``fs.opener`` entry point."""

    protocols = [PROTOCOL]

    def open_fs(self, fs_url: str, parse_result: ParseResult, writeable: bool, create: bool, cwd: str) -> FS:
        lowers, upper = parse_overlay_url(fs_url)
        overlay = OverlayFS(lowers, upper=upper, **parse_overlay_options(fs_url))
        if parse_result.path and parse_result.path.strip("/"):
            try:
                return overlay.opendir(parse_result.path, factory=ClosingSubFS)
            except errors.FSError:
                overlay.close()
                raise
        return overlay
