"""The precomputed-state HMAC is exactly standard HMAC-SHA256."""

from __future__ import annotations

import hmac

from hypothesis import given
from hypothesis import strategies as st

from walletd.signer import HmacSha256


@given(key=st.binary(min_size=0, max_size=100), message=st.binary(max_size=300))
def test_matches_stdlib_hmac(key: bytes, message: bytes) -> None:
    signer = HmacSha256(bytearray(key))
    expected = hmac.digest(key, message, "sha256")
    assert signer.sign(message) == expected
    assert signer.verify(message, expected)
    assert not signer.verify(message, expected[:-1] + bytes([expected[-1] ^ 1]))
    assert not signer.verify(message, expected[:31])


def test_rfc4231_case_2() -> None:
    signer = HmacSha256(bytearray(b"Jefe"))
    assert signer.sign(b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
