"""The one tree walker: depth-first, parents before children, without recursion.

Every walk of a tree (the change set, the raw upper for exports, commit, archive indexes)
goes through :func:`preorder`, so a tree as deep as the filesystem allows (thousands of
levels, which ``makedirs`` and lookups handle) never raises ``RecursionError``: the pending
work is an explicit stack of iterators, one per open directory, not Python frames.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, List, Optional, TypeVar

T = TypeVar("T")


def preorder(top: Iterable[T], expand: Callable[[T], Optional[Iterable[T]]]) -> Iterator[T]:
    """Yield every item of ``top`` and, right after each, everything below it.

    ``expand(item)`` gives the children of ``item`` (``None`` or empty for a leaf); it is
    called only once the caller has taken ``item``, so a caller may act on an item before its
    children are read, exactly as a recursive generator would. The order is the order of a
    recursive pre-order walk; the depth costs one iterator on a list, not one stack frame.
    """
    stack: List[Iterator[T]] = [iter(top)]
    while stack:
        try:
            item = next(stack[-1])
        except StopIteration:
            stack.pop()
            continue
        yield item
        children = expand(item)
        if children is not None:
            stack.append(iter(children))
