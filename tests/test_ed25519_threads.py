"""Ed25519 through libsodium (walletd.model.ed25519_key) and public-key batches signed on worker
threads (walletd.ops.batch_threads): same signatures as the reference implementation, the key
buffer zeroed when freed, batch order kept, and a batch whose wallet is deleted or recovered
while its threads sign gives no signatures."""

from __future__ import annotations

import gc
import os
import pickle
import threading
from typing import Any

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import VerifyKey

import walletd_wire as wire
from wallet_client import AsyncWalletClient
from walletd.model.ed25519_key import Ed25519Key
from walletd.model.peer import Peer
from walletd.ops.batch_threads import OFF_LOOP_MIN_ITEMS, BatchThreads
from walletd.server.serve import Server
from walletd_wire.schemes import KeyType

from .support import wallet_in

ROOT = Peer(uid=0, gid=0, pid=1, is_admin=True)


@settings(max_examples=50, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=300))
def test_libsodium_signs_what_openssl_signs(seed: bytes, message: bytes) -> None:
    key = Ed25519Key(bytearray(seed))
    reference = Ed25519PrivateKey.from_private_bytes(seed)
    assert key.sign(message) == reference.sign(message)  # Ed25519 is deterministic
    assert key.public_key == reference.public_key().public_bytes_raw()


def test_the_secret_buffer_is_zeroed_when_the_key_is_freed() -> None:
    key = Ed25519Key(bytearray(os.urandom(32)))
    secret = key._secret  # the cffi buffer; kept alive here to look at it afterwards
    assert bytes(secret) != bytes(64)
    del key
    gc.collect()
    assert bytes(secret) == bytes(64)


def test_the_key_cannot_be_shown_or_copied() -> None:
    seed = os.urandom(32)
    key = Ed25519Key(seed)
    assert seed.hex() not in repr(key) and "secret" in repr(key)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)
    with pytest.raises(ValueError, match="32 bytes"):
        Ed25519Key(b"short")


def test_any_bytes_like_message_signs_as_its_bytes() -> None:
    key = Ed25519Key(os.urandom(32))
    message = os.urandom(40)
    assert key.sign(bytearray(message)) == key.sign(memoryview(message)) == key.sign(message)


async def test_threads_keep_the_batch_order() -> None:
    key = Ed25519Key(os.urandom(32))
    messages = [i.to_bytes(2, "big") * i for i in range(101)]
    threads = BatchThreads(threads=3)
    assert await threads.sign(key.sign, messages) == [key.sign(m) for m in messages]


def test_only_large_public_key_batches_leave_the_loop() -> None:
    threads = BatchThreads(threads=2)
    assert threads.worth_it(KeyType.ED25519, OFF_LOOP_MIN_ITEMS)
    assert threads.worth_it(KeyType.SECP256K1, 256)
    assert not threads.worth_it(KeyType.ED25519, OFF_LOOP_MIN_ITEMS - 1)
    assert not threads.worth_it(KeyType.HMAC_SHA256, 256)
    assert not BatchThreads(threads=1).worth_it(KeyType.ED25519, 256)


@pytest.mark.parametrize("key_type", ["ed25519", "secp256k1"])
async def test_a_large_batch_is_counted_and_verifies(
    client: AsyncWalletClient, server: Server, key_type: str
) -> None:
    address = await client.create_wallet("agent", key_type)
    messages = [os.urandom(40) for _ in range(OFF_LOOP_MIN_ITEMS * 2 + 3)]
    items = await client.sign_batch("agent", messages)
    assert [i.address for i in items] == [address] * len(messages)
    pairs = [(m, i.signature) for m, i in zip(messages, items, strict=True)]
    assert await client.verify_batch("agent", pairs) == [True] * len(messages)  # type: ignore[arg-type]
    assert wallet_in(server, "agent").signature_count == len(messages)
    if key_type == "ed25519":
        public = (await client.get_public_key("agent")).public_key
        for message, item in pairs:
            assert item is not None
            VerifyKey(public).verify(message, item)


class _Gate:
    """A signer that blocks in its worker thread until released, so a test can act meanwhile."""

    def __init__(self, sign: Any) -> None:
        self.sign = sign
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, message: bytes) -> bytes:
        self.entered.set()
        assert self.release.wait(10)
        return bytes(self.sign(message))


async def test_a_wallet_deleted_while_its_batch_signs_gets_no_signatures(server: Server) -> None:
    dispatcher = server.daemon.dispatcher
    created = dispatcher.run(ROOT, wire.CreateWallet(id=1, user_id="agent", key_type="ed25519"))
    if not isinstance(created, wire.OkResponse):
        created = await created  # type: ignore[misc]
    wallet = wallet_in(server, "agent")
    gate = _Gate(wallet.signer)
    wallet._sign = gate  # the signer the batch will take to its threads
    batch = wire.SignBatch(id=2, user_id="agent", messages=[b"m"] * OFF_LOOP_MIN_ITEMS)
    answers: list[Any] = []

    async def sign() -> None:
        pending = dispatcher.run(ROOT, batch)
        assert not isinstance(pending, wire.OkResponse | wire.ErrorResponse)  # off the loop
        answers.append(await pending)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sign)
        await trio.to_thread.run_sync(gate.entered.wait)
        deleted = dispatcher.run(ROOT, wire.DeleteWallet(id=3, user_id="agent"))
        if not isinstance(deleted, wire.OkResponse):
            deleted = await deleted  # type: ignore[misc]
        assert isinstance(deleted, wire.OkResponse)
        gate.release.set()
    (answer,) = answers
    assert isinstance(answer, wire.ErrorResponse)
    assert answer.error.code == "not_found"
    assert "deleted meanwhile" in answer.error.message
