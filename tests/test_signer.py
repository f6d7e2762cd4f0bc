"""The precomputed-state HMAC is exactly standard HMAC-SHA256."""

from __future__ import annotations

import hmac

from hypothesis import given
from hypothesis import strategies as st

from walletd.model.signer import hmac_sha256_signer


@given(key=st.binary(min_size=0, max_size=100), message=st.binary(max_size=300))
def test_matches_stdlib_hmac(key: bytes, message: bytes) -> None:
    sign = hmac_sha256_signer(bytearray(key))
    assert sign(message) == hmac.digest(key, message, "sha256")


def test_rfc4231_case_2() -> None:
    sign = hmac_sha256_signer(bytearray(b"Jefe"))
    assert sign(b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
