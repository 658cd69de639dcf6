"""A bounded cache keyed by absolute path, that forgets whole subtrees cheaply.

The overlay caches per path (lookup answers, merged listings, layer directory indexes)
and must drop everything below a path when the upper changes there (a directory
removed, moved, or given a whiteout). :class:`TreeCache` keeps, next to the values, a
link from each cached path to its parent, so forgetting a subtree costs the size of
what is cached in it, never a scan of the whole cache; and it holds at most ``limit``
units (entries, or the weight each value says it has), evicting the least recently
used values first. An evicted value's links stay while something below it is still
cached, so a later subtree forget still reaches every cached descendant.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Dict, Generic, Iterable, Iterator, Optional, Set, Tuple, TypeVar

V = TypeVar("V")
_MISSING = object()


class BoundedSet(Dict[str, None]):
    """A set of at most ``limit`` strings (a dict's keys: ``in`` is a dict lookup); past the
    limit the oldest added goes first (adding one again makes it the newest)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        if limit < 1:
            raise ValueError("a set holds at least one member, not %r" % (limit,))
        self.limit = limit

    def add(self, key: str) -> None:
        if key in self:
            del self[key]
        self[key] = None
        if len(self) > self.limit:
            del self[next(iter(self))]

    def add_all(self, keys: Iterable[str]) -> None:
        # add's steps written out (a sidecar adds each listed record directory): the oldest go
        # once all are in, which leaves what adding them one by one would
        for key in keys:
            if key in self:
                del self[key]
            self[key] = None
        while len(self) > self.limit:
            del self[next(iter(self))]


def parent_of(path: str) -> str:
    """The parent of an absolute, normalised path (``fs.path.dirname`` without its generality:
    this runs for every component of every cold lookup)."""
    cut = path.rfind("/")
    return path[:cut] if cut > 0 else "/"


def child_of(directory: str, name: str) -> str:
    """The path of ``name`` in the absolute, normalised ``directory``, ``name`` one plain
    component (``fs.path.join`` without its normalising, which a cold lookup pays per layer)."""
    return "/" + name if directory == "/" else directory + "/" + name


class TreeCache(Generic[V]):
    """Values by path, at most ``limit`` units of ``weigh`` (1 per value by default), LRU."""

    def __init__(self, limit: int, weigh: Optional[Callable[[V], int]] = None) -> None:
        if limit < 1:
            raise ValueError("a cache holds at least one unit, not %r" % (limit,))
        self.limit = limit
        self._weigh = weigh
        self._values: "OrderedDict[str, V]" = OrderedDict()
        self._weights: Dict[str, int] = {}
        self._links: Dict[str, Set[str]] = {}  # path -> cached (or linking) children
        self.weight = 0

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, path: str) -> bool:
        return path in self._values

    def get(self, path: str, default: Any = None) -> Any:
        """The value at ``path`` (marked as used), or ``default`` (a sentinel tells a cached
        ``None`` from nothing cached)."""
        value = self._values.get(path, _MISSING)
        if value is _MISSING:
            return default
        self._values.move_to_end(path)
        return value

    def peek(self, path: str, default: Any = None) -> Any:
        """The value at ``path`` without marking it used."""
        return self._values.get(path, default)

    def items(self) -> Iterator[Tuple[str, V]]:
        return iter(list(self._values.items()))

    def put(self, path: str, value: V) -> None:
        """Cache ``value`` at ``path``, evicting the least recently used values beyond the limit."""
        values = self._values
        if path in values:
            self._drop_value(path)
        weight = 1 if self._weigh is None else max(1, self._weigh(value))
        values[path] = value
        if weight != 1:
            self._weights[path] = weight
        self.weight += weight
        links = self._links
        child = path
        while child != "/":  # link up to the first ancestor already linked (parent_of written out)
            cut = child.rfind("/")
            parent = child[:cut] if cut > 0 else "/"
            siblings = links.get(parent)
            if siblings is not None:
                siblings.add(child)
                break
            links[parent] = {child}
            child = parent
        while self.weight > self.limit and len(self._values) > 1:
            oldest = next(iter(self._values))
            if oldest == path:  # never evict what was just put
                self._values.move_to_end(oldest)
                continue
            self.discard(oldest)

    def reweigh(self, path: str) -> None:
        """``path``'s value changed size in place (an index that gained entries)."""
        if self._weigh is None or path not in self._values:
            return
        weight = max(1, self._weigh(self._values[path]))
        self.weight += weight - self._weights.get(path, 1)
        if weight != 1:
            self._weights[path] = weight
        else:
            self._weights.pop(path, None)

    def _drop_value(self, path: str) -> None:
        del self._values[path]
        self.weight -= self._weights.pop(path, 1)

    def discard(self, path: str) -> None:
        """Forget the value at ``path`` (what is cached below it stays)."""
        if path not in self._values:
            return
        self._drop_value(path)
        self._prune(path)

    def _prune(self, path: str) -> None:
        """Unlink ``path`` and its ancestors while they hold nothing and link to nothing."""
        while path != "/" and path not in self._values and not self._links.get(path):
            self._links.pop(path, None)
            parent = parent_of(path)
            siblings = self._links.get(parent)
            if siblings is None:
                return
            siblings.discard(path)
            path = parent

    def forget_below(self, path: str) -> None:
        """Forget every value strictly below ``path``."""
        pending = list(self._links.pop(path, ()))
        while pending:
            current = pending.pop()
            if current in self._values:
                self._drop_value(current)
            pending.extend(self._links.pop(current, ()))
        self._prune(path)

    def below(self, path: str) -> Iterator[Tuple[str, V]]:
        """The cached values at and strictly below ``path``."""
        pending = [path]
        while pending:
            current = pending.pop()
            value = self._values.get(current, _MISSING)
            if value is not _MISSING:
                yield current, value  # type: ignore[misc]
            pending.extend(self._links.get(current, ()))

    def clear(self) -> None:
        self._values.clear()
        self._weights.clear()
        self._links.clear()
        self.weight = 0
