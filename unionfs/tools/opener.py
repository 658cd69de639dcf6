"""The ``overlay://`` FS URL, so ``fs.open_fs`` can build an overlay from nested layer URLs.

Form::

    overlay://LOWER[,LOWER...][?upper=UPPER][&volatile=1][&redirect_dir=off][&metacopy=off][!PATH]

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

from ..errors import literal

from ..overlay import OverlayFS

PROTOCOL = "overlay"
_SAFE = "/:"  # left readable in nested URLs; everything else that is not alphanumeric is encoded


def quote_layer(url: str) -> str:
    """A layer URL or path made safe to nest in an ``overlay://`` URL."""
    return quote(url, safe=_SAFE)


def overlay_url(lowers: Sequence[str], upper: Optional[str] = None, volatile: bool = False) -> str:
    """The ``overlay://`` URL of these layer URLs or paths (topmost lower first)."""
    if not lowers:
        raise ValueError("an overlay needs at least one lower layer")
    url = "%s://%s" % (PROTOCOL, ",".join(quote_layer(lower) for lower in lowers))
    query = []
    if upper is not None:
        query.append("upper=" + quote_layer(upper))
    if volatile:
        query.append("volatile=1")
    return url + ("?" + "&".join(query) if query else "")


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def parse_overlay_url(fs_url: str) -> Tuple[List[str], Optional[str]]:
    """The lower URLs and the upper URL (or ``None``) of an ``overlay://`` URL."""
    lowers, upper, _options = parse_overlay_options(fs_url)
    return lowers, upper


#: the overlay's boolean options a URL may set (:class:`unionfs.OverlayFS` keywords)
SWITCHES = ("volatile", "redirect_dir", "metacopy")


def parse_overlay_options(fs_url: str) -> Tuple[List[str], Optional[str], Dict[str, bool]]:
    """The lower URLs, the upper URL (or ``None``) and the :data:`SWITCHES` set (for example
    ``{"volatile": True, "redirect_dir": False}``) of an ``overlay://`` URL."""
    prefix = PROTOCOL + "://"
    if not fs_url.startswith(prefix):
        raise errors.CreateFailed(msg=literal("%r is not an %s URL" % (fs_url, prefix)))
    body = fs_url[len(prefix) :].partition("!")[0]  # fs itself opens the "!path" part
    layers, _, query = body.partition("?")
    lowers = [unquote(part) for part in layers.split(",") if part]
    if not lowers:
        raise errors.CreateFailed(msg=literal("%r names no lower layer (overlay://LOWER[,LOWER...][?upper=UPPER])" % fs_url))
    upper: Optional[str] = None
    options: Dict[str, bool] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "upper":
            upper = value
        elif key in SWITCHES and value.lower() in _TRUE + _FALSE:
            options[key] = value.lower() in _TRUE
        elif key in SWITCHES:
            raise errors.CreateFailed(msg=literal("%r: %s=%r is not on or off (nor 1/0, true/false, yes/no)" % (fs_url, key, value)))
        else:
            raise errors.CreateFailed(
                msg=literal("%r: unknown parameter %r (they are 'upper', %s)" % (fs_url, key, ", ".join(repr(k) for k in SWITCHES)))
            )
    return lowers, upper, options


class OverlayOpener(Opener):
    """Opens ``overlay://`` URLs; registered through the ``fs.opener`` entry point."""

    protocols = [PROTOCOL]

    def open_fs(self, fs_url: str, parse_result: ParseResult, writeable: bool, create: bool, cwd: str) -> FS:
        lowers, upper, options = parse_overlay_options(fs_url)
        overlay = OverlayFS(lowers, upper=upper, **options)
        if parse_result.path and parse_result.path.strip("/"):
            try:
                return overlay.opendir(parse_result.path, factory=ClosingSubFS)
            except errors.FSError:
                overlay.close()
                raise
        return overlay
