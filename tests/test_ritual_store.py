"""What a ritual is stored as, and the memory-hard check (walletd.ritual), without a socket.

Per step only scrypt(sha256_hex, salt) is kept, with a per-step random salt and the scrypt
parameters beside it; the check hashes every step whatever the others gave.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

import walletd_wire as wire
from wallet_client import AsyncWalletClient, RitualStep, hash_response
from walletd.config import Config
from walletd.errors import StartupError
from walletd.model.ritual import (
    MAX_SCRYPT_MEMORY,
    SALT_BYTES,
    check_responses,
    check_scrypt_params,
    decode_steps,
    encode_steps,
    hash_steps,
    scrypt_memory,
)
from walletd.ops.daemon import build_daemon
from walletd.storage.store import DB_NAME

from .support import MakeConfig, StartServer

ANSWERS = ["first pet: Rex", "street: Elm", "colour: teal"]
HASHES = [hash_response(a) for a in ANSWERS]
STEPS = [wire.RitualStep(f"question {i}", h) for i, h in enumerate(HASHES)]


@pytest.fixture
def fast() -> Config:
    return Config(scrypt_n=2**10)


class ScryptSpy:
    """Counts calls to the real hashlib.scrypt (and how many run at once); changes nothing."""

    def __init__(self) -> None:
        self.real = hashlib.scrypt
        self.calls = 0
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> bytes:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            return self.real(*args, **kwargs)
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def scrypt_spy(monkeypatch: pytest.MonkeyPatch) -> ScryptSpy:
    spy = ScryptSpy()
    monkeypatch.setattr(hashlib, "scrypt", spy)
    return spy


def test_stored_step_is_salted_scrypt_of_the_hash(fast: Config) -> None:
    stored = hash_steps(STEPS, fast)
    assert [s.prompt for s in stored] == [s.prompt for s in STEPS]
    salts = [s.salt for s in stored]
    assert all(len(salt) == SALT_BYTES for salt in salts)
    assert len(set(salts)) == len(salts)  # a fresh salt per step
    for step, answer_hash in zip(stored, HASHES, strict=True):
        assert (step.n, step.r, step.p) == (2**10, 8, 1)
        expected = hashlib.scrypt(
            answer_hash.encode(), salt=step.salt, n=step.n, r=step.r, p=step.p, dklen=32
        )
        assert step.digest == expected
    blob = encode_steps(stored)
    for answer, answer_hash in zip(ANSWERS, HASHES, strict=True):
        assert answer.encode() not in blob
        assert answer_hash.encode() not in blob
        assert answer_hash.upper().encode() not in blob
        assert bytes.fromhex(answer_hash) not in blob
    assert decode_steps(blob) == stored


def test_same_answer_twice_stores_different_digests(fast: Config) -> None:
    same = [wire.RitualStep("a", HASHES[0]), wire.RitualStep("b", HASHES[0])]
    first, second = hash_steps(same, fast)
    assert first.digest != second.digest
    assert first.salt != second.salt


def test_check_accepts_right_answers_only(fast: Config) -> None:
    stored = hash_steps(STEPS, fast)
    assert check_responses(stored, HASHES)
    # Hex case does not matter (the daemon stores the lower-case form).
    assert check_responses(stored, [h.upper() for h in HASHES])
    for wrong in range(len(HASHES)):
        responses = list(HASHES)
        responses[wrong] = hash_response("not it")
        assert not check_responses(stored, responses)
    # The plain answers are not the hashes: sending them fails.
    assert not check_responses(stored, ANSWERS)


@pytest.mark.parametrize(
    "responses",
    [
        [],
        HASHES[:2],
        [*HASHES, HASHES[0]],
        HASHES * 6,  # more responses than a ritual may have steps
    ],
    ids=["none", "too_few", "one_extra", "eighteen"],
)
def test_wrong_count_fails_and_hashes_every_step_once(
    fast: Config, scrypt_spy: ScryptSpy, responses: list[str]
) -> None:
    stored = hash_steps(STEPS, fast)
    scrypt_spy.calls = 0
    assert not check_responses(stored, responses)
    # The work depends on the stored steps alone, never on how many responses came.
    assert scrypt_spy.calls == len(STEPS)


@pytest.mark.parametrize("wrong", [0, 1, 2])
def test_no_early_exit_whichever_step_is_wrong(
    fast: Config, scrypt_spy: ScryptSpy, wrong: int
) -> None:
    stored = hash_steps(STEPS, fast)
    responses = list(HASHES)
    responses[wrong] = hash_response("wrong")
    scrypt_spy.calls = 0
    assert not check_responses(stored, responses)
    assert scrypt_spy.calls == len(STEPS)


def test_old_steps_keep_their_own_parameters() -> None:
    # Registered under one set of parameters, checked after the daemon's default changed:
    # the check uses what is stored beside each step, not the current configuration.
    old = hash_steps(STEPS[:1], Config(scrypt_n=2**10, scrypt_r=4))
    new = hash_steps(STEPS[1:2], Config(scrypt_n=2**11, scrypt_r=8))
    assert (old[0].n, old[0].r) == (2**10, 4)
    assert check_responses([*old, *new], HASHES[:2])


def test_memory_estimate_is_what_scrypt_needs() -> None:
    # scrypt_memory is used as maxmem: exact enough that one byte less is refused.
    n, r, p_ = 2**10, 8, 1
    need = scrypt_memory(n, r, p_)
    hashlib.scrypt(b"x", salt=b"s", n=n, r=r, p=p_, maxmem=need, dklen=32)
    with pytest.raises(ValueError, match="memory limit"):
        hashlib.scrypt(b"x", salt=b"s", n=n, r=r, p=p_, maxmem=need - 1, dklen=32)


def test_parameters_beyond_the_old_fixed_cap_are_accepted() -> None:
    # Regression: maxmem was fixed at 256 MiB, so n=2**17 with r=16 (the kind of setting an
    # operator raises for a slower check) failed every registration as an internal error.
    assert scrypt_memory(2**17, 16, 1) > 256 * 1024 * 1024
    check_scrypt_params(2**17, 16, 1)  # no error


def test_unusable_parameters_are_refused_at_startup(make_config: MakeConfig) -> None:
    assert scrypt_memory(2**20, 64, 1) > MAX_SCRYPT_MEMORY
    with pytest.raises(ValueError, match="needs"):
        check_scrypt_params(2**20, 64, 1)
    with pytest.raises(StartupError, match="scrypt"):
        build_daemon(make_config(ephemeral=True, scrypt_n=2**20, scrypt_r=64))


async def test_daemon_stores_default_parameters(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    """At the production defaults (n=2**14, r=8, p=1) the database holds salted scrypt only."""
    defaults = Config()
    assert (defaults.scrypt_n, defaults.scrypt_r, defaults.scrypt_p) == (2**14, 8, 1)
    config = make_config(scrypt_n=defaults.scrypt_n)
    server = await start_server(config)
    async with AsyncWalletClient(config.socket, timeout=30) as c:
        await c.create_wallet("alice")
        steps = [RitualStep(f"q{i}", h) for i, h in enumerate(HASHES)]
        assert await c.register_ritual("alice", steps) == len(steps)
        db = sqlite3.connect(Path(config.state_dir) / DB_NAME)
        try:
            rows = db.execute("SELECT user_id, steps, attempts, locked_at FROM rituals").fetchall()
        finally:
            db.close()
        assert len(rows) == 1
        user_id, blob, attempts, locked_at = rows[0]
        assert (user_id, attempts, locked_at) == ("alice", 0, None)
        stored = decode_steps(blob)
        assert [(s.n, s.r, s.p) for s in stored] == [(2**14, 8, 1)] * len(HASHES)
        assert len({s.salt for s in stored}) == len(stored)
        for answer_hash in HASHES:
            assert answer_hash.encode() not in blob
            assert bytes.fromhex(answer_hash) not in blob
        # And the daemon's in-memory copy is the same stored form, which still checks out.
        assert server.ctx.rituals["alice"].steps == stored
        assert await c.initiate_recovery("alice", ANSWERS)
