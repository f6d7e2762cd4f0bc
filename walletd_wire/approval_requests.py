"""Requests of human approval (issue 16): the ops that list, decide and wait for signatures
a signing-policy rule sent to ``review``, and manage leases. They join the request union at
its end (:mod:`walletd_wire.requests`); their results and ``LeaseSpec`` are in
:mod:`walletd_wire.approvals`.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from .approvals import LeaseSpec
from .request_base import Request

__all__ = [
    "ApprovalId",
    "Approve",
    "AwaitApproval",
    "CancelApproval",
    "Deny",
    "LeaseId",
    "ListLeases",
    "ListPending",
    "RevokeLease",
]


ApprovalId = Annotated[str, Meta(min_length=1, max_length=64)]
LeaseId = Annotated[str, Meta(min_length=1, max_length=64)]


class ListPending(Request, tag="list_pending"):
    pass


class Approve(Request, tag="approve"):
    approval_id: ApprovalId
    lease: LeaseSpec | None = None


class Deny(Request, tag="deny"):
    approval_id: ApprovalId
    reason: Annotated[str, Meta(max_length=500)] | None = None


class AwaitApproval(Request, tag="await_approval"):
    approval_id: ApprovalId
    timeout_s: Annotated[float, Meta(ge=0, le=86_400)] = 30.0


class CancelApproval(Request, tag="cancel_approval"):
    approval_id: ApprovalId


class ListLeases(Request, tag="list_leases"):
    pass


class RevokeLease(Request, tag="revoke_lease"):
    lease_id: LeaseId
