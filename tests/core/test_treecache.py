"""The bounded path cache: its bound holds, it evicts least recently used first, and
forgetting a subtree reaches every cached descendant even after evictions in between."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from unionfs.core.treecache import TreeCache, parent_of


def test_parent_of_matches_the_obvious_answer():
    assert [parent_of(p) for p in ("/", "/a", "/a/b", "/a/b/c")] == ["/", "/", "/a", "/a/b"]


def test_the_bound_holds_and_the_least_recently_used_goes_first():
    cache: TreeCache[int] = TreeCache(3)
    for index, path in enumerate(["/a", "/b", "/c"]):
        cache.put(path, index)
    assert cache.get("/a") == 0  # used: /b is now the oldest
    cache.put("/d", 3)
    assert len(cache) == 3 and "/b" not in cache and {"/a", "/c", "/d"} <= {p for p, _ in cache.items()}


def test_weights_bound_the_total():
    cache: TreeCache[list] = TreeCache(10, len)
    cache.put("/a", [0] * 6)
    cache.put("/b", [0] * 6)
    assert "/a" not in cache and cache.weight == 6
    cache.peek("/b").extend([0, 0])  # type: ignore[union-attr]
    cache.reweigh("/b")
    assert cache.weight == 8


def test_a_value_alone_over_the_limit_is_still_kept():
    cache: TreeCache[list] = TreeCache(2, len)
    cache.put("/big", [0] * 5)
    assert cache.get("/big") == [0] * 5


def test_forget_below_reaches_descendants_of_an_evicted_directory():
    cache: TreeCache[str] = TreeCache(3)
    cache.put("/a", "a")
    cache.put("/a/b", "b")
    cache.put("/a/b/c", "c")
    cache.put("/x", "x")  # evicts /a (the oldest), whose descendants stay cached
    assert "/a" not in cache and "/a/b/c" in cache
    cache.forget_below("/a")
    assert "/a/b" not in cache and "/a/b/c" not in cache and "/x" in cache
    assert sorted(path for path, _ in cache.below("/")) == ["/x"]


def test_limit_must_be_positive():
    with pytest.raises(ValueError):
        TreeCache(0)


PATHS = st.lists(st.sampled_from("abc"), min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))


@given(st.lists(st.tuples(st.sampled_from(["put", "get", "discard", "forget_below"]), PATHS), max_size=60),
       st.integers(1, 6))
def test_it_answers_like_an_unbounded_dict_for_what_it_still_holds(operations, limit):
    """Against a plain dict: everything the cache holds is what the dict holds, the bound
    holds, and a subtree forget leaves nothing below the path."""
    cache: TreeCache[int] = TreeCache(limit)
    model = {}
    for number, (operation, path) in enumerate(operations):
        if operation == "put":
            cache.put(path, number)
            model[path] = number
        elif operation == "get":
            assert cache.get(path, None) in (None, model.get(path))
        elif operation == "discard":
            cache.discard(path)
            model.pop(path, None)
        else:
            cache.forget_below(path)
            model = {p: v for p, v in model.items() if not p.startswith(path + "/")}
            assert not [p for p, _ in cache.items() if p.startswith(path + "/")]
        assert len(cache) <= limit
        assert all(model.get(p) == v for p, v in cache.items())
        assert sorted(p for p, _ in cache.below("/")) == sorted(p for p, _ in cache.items())


def test_a_bounded_set_keeps_its_limit_and_forgets_the_oldest_added_first():
    from unionfs.core.treecache import BoundedSet

    members = BoundedSet(3)
    members.add_all(["/a", "/b", "/c"])
    members.add("/a")  # added again: the newest
    members.add("/d")
    assert len(members) == 3 and "/b" not in members
    assert all(path in members for path in ("/a", "/c", "/d"))
    members.clear()
    assert "/a" not in members and len(members) == 0
    with pytest.raises(ValueError):
        BoundedSet(0)


@given(st.lists(st.lists(PATHS, max_size=5), max_size=8), st.integers(1, 4))
def test_adding_all_at_once_leaves_what_adding_one_by_one_does(batches, limit):
    from unionfs.core.treecache import BoundedSet

    at_once, one_by_one = BoundedSet(limit), BoundedSet(limit)
    for batch in batches:
        at_once.add_all(batch)
        for path in batch:
            one_by_one.add(path)
        assert list(at_once) == list(one_by_one)
