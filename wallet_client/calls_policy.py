"""The signing-policy calls (issue 15), described once for both clients as in
:mod:`wallet_client.calls`: ``get_signing_policy``, ``set_signing_policy``,
``explain_signing``, ``pause_signing`` and ``resume_signing``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import walletd_wire as wire

from .calls import Call, _call, _same


def get_signing_policy(user_id: str) -> Call[wire.SigningPolicyResult]:
    return _call(wire.GetSigningPolicy(id=0, user_id=user_id), wire.SigningPolicyResult, _same)


def set_signing_policy(
    user_id: str, layer: str, rules: Sequence[Any], expected_version: int
) -> Call[wire.SigningPolicyResult]:
    # The document goes as given: the daemon's policy compiler is the one judge of it.
    request = wire.SetSigningPolicy(
        id=0, user_id=user_id, layer=layer, rules=list(rules), expected_version=expected_version
    )
    return _call(request, wire.SigningPolicyResult, _same)


def explain_signing(
    user_id: str,
    message: bytes | None = None,
    typed_data: Mapping[str, Any] | None = None,
    op: str | None = None,
) -> Call[wire.ExplainResult]:
    request = wire.ExplainSigning(
        id=0,
        user_id=user_id,
        message=message,
        typed_data=None if typed_data is None else dict(typed_data),
        for_op=op,
    )
    return _call(request, wire.ExplainResult, _same)


def pause_signing(
    scope: str = "all", uid: int | None = None, user_id: str | None = None
) -> Call[list[wire.PauseInfo]]:
    request = wire.PauseSigning(id=0, scope=scope, uid=uid, user_id=user_id)
    return _call(request, wire.SigningPausesResult, lambda r: r.pauses)


def resume_signing(
    scope: str = "all", uid: int | None = None, user_id: str | None = None
) -> Call[list[wire.PauseInfo]]:
    request = wire.ResumeSigning(id=0, scope=scope, uid=uid, user_id=user_id)
    return _call(request, wire.SigningPausesResult, lambda r: r.pauses)
