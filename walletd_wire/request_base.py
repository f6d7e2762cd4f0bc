"""The base of every request: ``op`` (the tag) and ``id``; the id's bounds.

Kept apart from :mod:`walletd_wire.requests` so that families of ops defined in their own
modules (:mod:`walletd_wire.approval_requests`) can subclass it while ``requests`` builds the
one union of them all.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

__all__ = ["Int63", "Request", "RequestId"]

# msgspec bounds must fit an int64, so ids are 0 .. 2**63-1 (documented in PROTOCOL.md).
Int63 = Annotated[int, Meta(ge=0, le=2**63 - 1)]
RequestId = Int63


# gc=False: decoded requests and the hot path's responses hold only plain values, so they
# cannot be part of a reference cycle; not tracking them saves work on every request.
class Request(Struct, tag_field="op", kw_only=True, forbid_unknown_fields=True, gc=False):
    id: RequestId
