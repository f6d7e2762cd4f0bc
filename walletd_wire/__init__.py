"""walletd's wire contract, shared by the daemon and its clients; it does no I/O.

Importing it loads neither trio nor any client: it is to walletd and wallet_client what h11 is
to httpcore. docs/PROTOCOL.md is the prose version; keep the two in agreement.

# General layout:
#
# framing.py      4-byte big-endian length prefix + payload, sans-IO (FrameDecoder,
#                 encode_frame, encode_frame_into)
# requests.py     every operation's request: one msgspec tagged union on "op"
# results.py      the result shapes
# envelope.py     {"id", "ok", "result" | "error"} and the lenient view of a bad request
# error_codes.py  the closed set of error codes
# schemes.py      key types and what "a valid signature" means for each; offline verification
# ethereum.py     keccak-256, EIP-191 digests, EIP-55 addresses
# eip712.py       EIP-712 typed data: validation, bounds, hashing (types in eip712_types.py)
# approvals.py    human approval: the pending result, approval and lease results
#                 (their requests in approval_requests.py; every request subclasses
#                 request_base.Request)
#
# The last four are imported on their own (``from walletd_wire import schemes``): they need
# the crypto libraries, which the framing and message types do not.

Most code uses the package namespace: ``import walletd_wire as wire`` then ``wire.SignMessage``,
``wire.ErrorCode.NOT_FOUND``, ``wire.encode_frame(...)``.
"""

from __future__ import annotations

from .approvals import *  # noqa: F403
from .approvals import __all__ as _approvals_all
from .envelope import *  # noqa: F403
from .envelope import __all__ as _envelope_all
from .error_codes import ErrorCode
from .framing import (
    DEFAULT_MAX_FRAME_BYTES,
    PREFIX_BYTES,
    FrameDecoder,
    FrameTooLargeError,
    encode_frame,
    encode_frame_into,
)
from .requests import *  # noqa: F403
from .requests import __all__ as _requests_all
from .results import *  # noqa: F403
from .results import __all__ as _results_all

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "PREFIX_BYTES",
    "ErrorCode",
    "FrameDecoder",
    "FrameTooLargeError",
    "encode_frame",
    "encode_frame_into",
    *_envelope_all,
    *_requests_all,
    *_results_all,
    *_approvals_all,
]
