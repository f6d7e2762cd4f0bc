from __future__ import annotations

import pytest

from wallet_client import AsyncWalletClient, PermissionDeniedError, WalletClient

from . import children
from .support import DaemonFactory, call_as_nobody

pytestmark = pytest.mark.slow


async def test_create_sign_verify_in_process(client: AsyncWalletClient) -> None:
    address = await client.create_wallet("alice")
    assert address.startswith("0x") and len(address) == 34
    signature = await client.sign_message("alice", b"hello")
    assert await client.verify_signature("alice", b"hello", signature)


@pytest.mark.root
def test_other_uid_is_refused(daemon: DaemonFactory) -> None:
    proc = daemon().start()
    with WalletClient(proc.socket_path) as c:
        c.create_wallet("alice")
    result = call_as_nobody(children.sign_or_permission_code, str(proc.socket_path), "alice")
    assert result == "forbidden"
    assert proc.stop() == 0
    assert PermissionDeniedError.code == "forbidden"
