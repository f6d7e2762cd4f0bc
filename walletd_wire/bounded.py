"""Bounded free-form values: JSON-like types whose every map and list has a maximum length
and whose nesting has a maximum depth, enforced by the msgspec decoder itself.

``dict[str, Any]`` would make the decoder build whatever the frame holds (a 1 MiB frame is a
million empty maps, a quarter of a second of event-loop time) before any check could refuse
it. The types built here let msgspec refuse an over-long map or list on its header and an
over-deep value at the level where it goes too deep, before anything below is built.

msgspec has no recursive bounded type, so a depth-``n`` value is spelled out as ``n`` nested
unions, each level's containers holding values of the next level and the last level holding
scalars only. Typing code sees these as ``dict[str, Any]`` (see ``requests.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from msgspec import Meta

__all__ = ["bounded_map"]

#: What a leaf may be. bytes and timestamps are not here on purpose: they do not survive the
#: JSON both users of these types turn the value into.
_SCALARS: tuple[Any, ...] = (type(None), bool, int, float, str)


def _level(depth: int, max_map: int, max_list: int) -> Any:
    """A value nested at most ``depth`` containers deep (0: a scalar)."""
    if depth == 0:
        return Union[_SCALARS]  # noqa: UP007 (built at run time: the | form needs types)
    inner = _level(depth - 1, max_map, max_list)
    as_list = Annotated[list[inner], Meta(max_length=max_list)]  # type: ignore[valid-type]
    as_map = Annotated[dict[str, inner], Meta(max_length=max_map)]  # type: ignore[valid-type]
    return Union[(*_SCALARS, as_list, as_map)]


def bounded_map(*, depth: int, max_map: int, max_list: int, max_top: int | None = None) -> Any:
    """A string-keyed map (``max_top`` entries, default ``max_map``) whose values nest at most
    ``depth - 1`` more containers, every map at most ``max_map`` entries and every list at most
    ``max_list`` items."""
    if depth < 1:
        raise ValueError("a bounded map is at least one level deep")
    inner = _level(depth - 1, max_map, max_list)
    top = max_map if max_top is None else max_top
    return Annotated[dict[str, inner], Meta(max_length=top)]  # type: ignore[valid-type]
