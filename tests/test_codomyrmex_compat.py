"""Codomyrmex's own wallet tests, re-expressed against a real walletd through
``wallet_client.codomyrmex`` (the yardstick of issue 13).

Each test names the upstream test it mirrors (``docxology/codomyrmex``,
``tests/unit/wallet/``: ``test_wallet.py`` = W, ``test_wallet_comprehensive.py`` = C), or the
docs/MIGRATING.md row it demonstrates. Upstream, every test had a fresh in-memory manager;
here one daemon serves the module, so each test names its users uniquely (``users``), and
the few that need an empty daemon start their own (``fresh``).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

import wallet_client.codomyrmex as cw
from wallet_client.codomyrmex import (
    BackupManager,
    KeyRotation,
    NaturalRitualRecovery,
    RitualError,
    RitualStep,
    RotationPolicy,
    RotationRecord,
    Wallet,
    WalletError,
    WalletManager,
    WalletNotFoundError,
    _connect,
    hash_response,
)
from wallet_client.codomyrmex.security import key_rotation
from wallet_client.codomyrmex.security.recovery import MaxAttemptsError
from wallet_client.errors import (
    DaemonUnavailableError,
    InvalidArgumentError,
    RitualLockedError,
    WalletExistsError,
)

from .support import DaemonProcess, daemon_process

pytestmark = pytest.mark.slow

Users = Callable[[str], str]
_serial = itertools.count()


def _start(tmp: Path) -> DaemonProcess:
    config = tmp / "walletd.toml"
    config.write_text("scrypt_n = 1024\n")  # quick scrypt; max_attempts keeps its default 5
    return daemon_process(tmp, "--config", str(config), ephemeral=True).start()


@pytest.fixture(scope="module")
def shared_daemon() -> Iterator[DaemonProcess]:
    tmp = Path(tempfile.mkdtemp(prefix="walletd-codo-"))
    proc = _start(tmp)
    yield proc
    proc.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(autouse=True)
def socket_env(shared_daemon: DaemonProcess, monkeypatch: pytest.MonkeyPatch) -> str:
    """Shim objects find the daemon through $WALLETD_SOCKET, as a migrated program would."""
    monkeypatch.setenv("WALLETD_SOCKET", str(shared_daemon.socket_path))
    monkeypatch.setattr(_connect, "_warned", False)
    monkeypatch.setattr(key_rotation, "_warned_counting", False)
    return str(shared_daemon.socket_path)


@pytest.fixture
def users() -> Users:
    """``users("u1")``: a name unique to this test, standing for upstream's fixed "u1"."""
    serial = next(_serial)
    return lambda name: f"{name}-{serial}"


@pytest.fixture
def fresh(open_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A daemon of this test's own, for upstream tests that count every wallet."""
    proc = _start(open_tmp)
    monkeypatch.setenv("WALLETD_SOCKET", str(proc.socket_path))
    yield str(proc.socket_path)
    proc.stop()


@pytest.fixture
def mgr() -> Iterator[WalletManager]:
    with WalletManager() as manager:
        yield manager


@pytest.fixture
def recovery() -> Iterator[NaturalRitualRecovery]:
    with NaturalRitualRecovery() as r:
        yield r


STEPS = [
    RitualStep("Color?", hashlib.sha256(b"Red").hexdigest()),
    RitualStep("Animal?", hashlib.sha256(b"Cat").hexdigest()),
]


@pytest.fixture
def ritual_user(mgr: WalletManager, recovery: NaturalRitualRecovery, users: Users) -> str:
    """A wallet with C's two-step ritual ("Red", "Cat"): walletd keeps rituals per wallet."""
    user = users("u1")
    mgr.create_wallet(user)
    recovery.register_ritual(user, STEPS)
    return user


# --------------------------------------------------------------------------- WalletManager


def test_create_wallet(mgr: WalletManager, users: Users) -> None:
    """C TestWalletManager::test_create_wallet"""
    address = mgr.create_wallet(users("u1"))
    assert address.startswith("0x") and len(address) > 10


def test_get_wallet_address(mgr: WalletManager, users: Users) -> None:
    """C TestWalletManager::test_get_wallet_address"""
    address = mgr.create_wallet(users("u1"))
    assert mgr.get_wallet_address(users("u1")) == address
    assert mgr.get_wallet_address(users("nonexistent")) is None


def test_has_wallet(mgr: WalletManager, users: Users) -> None:
    """C TestWalletManager::test_has_wallet"""
    assert not mgr.has_wallet(users("u1"))
    mgr.create_wallet(users("u1"))
    assert mgr.has_wallet(users("u1"))


def test_create_wallet_duplicate_raises(mgr: WalletManager, users: Users) -> None:
    """C TestWalletManager::test_create_wallet_duplicate_raises; MIGRATING: no overwrite."""
    mgr.create_wallet(users("u1"))
    with pytest.raises(WalletError, match="already has a wallet") as info:
        mgr.create_wallet(users("u1"))
    assert isinstance(info.value, WalletExistsError) and info.value.code == "already_exists"
    # Upstream a second manager started empty; the daemon refuses there too.
    with WalletManager() as other, pytest.raises(WalletExistsError):
        other.create_wallet(users("u1"))


def test_sign_message(mgr: WalletManager, users: Users) -> None:
    """C TestWalletManager::test_sign_message"""
    mgr.create_wallet(users("u1"))
    signature = mgr.sign_message(users("u1"), b"message")
    assert isinstance(signature, bytes) and len(signature) == 32


def test_sign_message_no_wallet_raises(mgr: WalletManager, users: Users) -> None:
    """C TestWalletManager::test_sign_message_no_wallet_raises"""
    with pytest.raises(WalletNotFoundError):
        mgr.sign_message(users("u2"), b"message")


def test_sign_message_deterministic_and_message_bound(mgr: WalletManager, users: Users) -> None:
    """C TestWalletManager::test_sign_message_deterministic,
    ::test_sign_message_different_messages"""
    mgr.create_wallet(users("u1"))
    first = mgr.sign_message(users("u1"), b"same message")
    assert mgr.sign_message(users("u1"), b"same message") == first
    assert mgr.sign_message(users("u1"), b"message B") != first


def test_verify_signature(mgr: WalletManager, users: Users) -> None:
    """C TestWalletManager::test_verify_signature, ::test_verify_signature_invalid"""
    mgr.create_wallet(users("u1"))
    signature = mgr.sign_message(users("u1"), b"test message")
    assert mgr.verify_signature(users("u1"), b"test message", signature) is True
    assert mgr.verify_signature(users("u1"), b"different message", signature) is False


def test_verify_signature_wrong_bytes(mgr: WalletManager, users: Users) -> None:
    """C TestWalletManager::test_verify_signature_wrong_bytes (W ::test_verify_wrong_signature)"""
    mgr.create_wallet(users("u1"))
    assert mgr.verify_signature(users("u1"), b"msg", b"invalid_sig") is False


def test_rotate_keys(mgr: WalletManager, users: Users) -> None:
    """C TestWalletManager::test_rotate_keys, ::test_rotate_keys_changes_signatures"""
    old = mgr.create_wallet(users("u1"))
    before = mgr.sign_message(users("u1"), b"test")
    new = mgr.rotate_keys(users("u1"))
    assert new.startswith("0x") and new != old
    assert mgr.get_wallet_address(users("u1")) == new
    assert mgr.sign_message(users("u1"), b"test") != before


def test_rotate_keys_no_wallet_raises(mgr: WalletManager, users: Users) -> None:
    """C TestWalletManager::test_rotate_keys_no_wallet_raises"""
    with pytest.raises(WalletNotFoundError):
        mgr.rotate_keys(users("u2"))


def test_backup_wallet(mgr: WalletManager, users: Users) -> None:
    """C TestWalletManager::test_backup_wallet; timestamps are ISO 8601 as upstream."""
    mgr.create_wallet(users("u1"))
    backup = mgr.backup_wallet(users("u1"))
    assert backup["user_id"] == users("u1")
    assert backup["wallet_id"].startswith("0x")
    assert len(backup["key_hash"]) == 64
    created, taken = (datetime.fromisoformat(backup[k]) for k in ("created_at", "backup_ts"))
    assert created.tzinfo is not None and taken >= created


def test_backup_wallet_no_wallet_raises(mgr: WalletManager, users: Users) -> None:
    """C TestWalletManager::test_backup_wallet_no_wallet_raises"""
    with pytest.raises(WalletNotFoundError):
        mgr.backup_wallet(users("u2"))


def test_delete_wallet(mgr: WalletManager, users: Users) -> None:
    """C TestWalletManager::test_delete_wallet"""
    mgr.create_wallet(users("u1"))
    assert mgr.delete_wallet(users("u1")) is True
    assert not mgr.has_wallet(users("u1"))
    assert mgr.get_wallet_address(users("u1")) is None


def test_delete_wallet_no_wallet_raises(mgr: WalletManager, users: Users) -> None:
    """C TestWalletManager::test_delete_wallet_no_wallet_raises"""
    with pytest.raises(WalletNotFoundError):
        mgr.delete_wallet(users("u2"))


def test_list_wallets(fresh: str) -> None:
    """C TestWalletManager::test_list_wallets, ::test_list_wallets_is_copy"""
    with WalletManager() as manager:
        assert manager.list_wallets() == {}
        first, second = manager.create_wallet("u1"), manager.create_wallet("u2")
        wallets = manager.list_wallets()
        assert wallets == {"u1": first, "u2": second}
        wallets["u1"] = "tampered"
        assert manager.get_wallet_address("u1") == first


def test_custom_storage_path_warns_once(users: Users, tmp_path: Path) -> None:
    """C TestWalletManager::test_custom_storage_path; MIGRATING: storage is the daemon's."""
    with pytest.warns(cw.StorageIgnoredWarning, match="storage_path is ignored"):
        manager = WalletManager(storage_path=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second path-taking constructor says nothing
        again = Wallet(users("w"), storage_path=tmp_path)
    assert manager.create_wallet(users("u1")).startswith("0x")
    assert len(manager.sign_message(users("u1"), b"test")) == 32
    assert list(tmp_path.iterdir()) == []  # nothing was written there
    manager.close()
    again.close()


def test_managers_share_the_daemon(users: Users) -> None:
    """MIGRATING: one daemon, not one registry per instance (upstream managers were disjoint)."""
    with WalletManager() as one, WalletManager() as two:
        address = one.create_wallet(users("u1"))
        assert two.get_wallet_address(users("u1")) == address
        signature = two.sign_message(users("u1"), b"m")
        assert one.verify_signature(users("u1"), b"m", signature)


def test_register_wallet_checks_the_daemon(mgr: WalletManager, users: Users) -> None:
    """MIGRATING: register_wallet is a check (what Codomyrmex's wallet_generate_zk_proof
    relies on when a fresh manager is given wallet_address=)."""
    address = mgr.create_wallet(users("u1"))
    with WalletManager() as fresh_manager:
        assert fresh_manager.register_wallet(users("u1"), address) is True
        assert fresh_manager.register_wallet(users("u1"), "0x" + "0" * 32) is False
        assert fresh_manager.register_wallet(users("nobody"), address) is False


def test_invalid_user_id_refused(mgr: WalletManager) -> None:
    """MIGRATING: user ids are 1-256 bytes without control characters."""
    for bad in ("", "a\nb", "x" * 257):
        with pytest.raises(InvalidArgumentError):
            mgr.create_wallet(bad)


def test_nothing_connects_before_the_first_call(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """MIGRATING: the socket is found at construction; the connection is made on first use."""
    missing = str(tmp_path / "nothing-here.sock")
    monkeypatch.setenv("WALLETD_SOCKET", missing)
    objects = [
        WalletManager(),
        NaturalRitualRecovery(),
        KeyRotation(),
        BackupManager(),
        Wallet("x"),
    ]
    monkeypatch.setenv("WALLETD_SOCKET", "/elsewhere.sock")  # too late: already resolved
    for obj in objects:
        assert obj.client.socket_path == missing
    with pytest.raises(DaemonUnavailableError):
        objects[0].has_wallet("x")  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- recovery


def test_register_ritual(ritual_user: str, recovery: NaturalRitualRecovery) -> None:
    """W TestNaturalRitualRecovery::test_register_ritual; C ::test_has_ritual"""
    assert recovery.has_ritual(ritual_user)


def test_ritual_needs_a_wallet(recovery: NaturalRitualRecovery, users: Users) -> None:
    """MIGRATING: rituals belong to a wallet (upstream registered any name)."""
    with pytest.raises(WalletNotFoundError):
        recovery.register_ritual(users("no-wallet"), STEPS)
    assert not recovery.has_ritual(users("no-wallet"))


def test_register_empty_steps_raises(ritual_user: str, recovery: NaturalRitualRecovery) -> None:
    """C TestNaturalRitualRecovery::test_register_empty_steps_raises"""
    with pytest.raises(RitualError, match="at least one step"):
        recovery.register_ritual(ritual_user, [])


def test_get_prompts(ritual_user: str, recovery: NaturalRitualRecovery, users: Users) -> None:
    """C TestNaturalRitualRecovery::test_get_prompts, ::test_get_prompts_no_ritual_raises"""
    assert recovery.get_prompts(ritual_user) == ["Color?", "Animal?"]
    with pytest.raises(RitualError, match="No ritual defined"):
        recovery.get_prompts(users("unknown"))


def test_register_and_recover_success(
    ritual_user: str, recovery: NaturalRitualRecovery, mgr: WalletManager
) -> None:
    """C TestNaturalRitualRecovery::test_register_and_recover_success; MIGRATING: a
    successful recovery rotates the key."""
    before = mgr.get_wallet_address(ritual_user)
    assert recovery.initiate_recovery(ritual_user, ["Red", "Cat"]) is True
    assert mgr.get_wallet_address(ritual_user) != before


def test_recovery_failure_wrong_answer(ritual_user: str, recovery: NaturalRitualRecovery) -> None:
    """C TestNaturalRitualRecovery::test_recovery_failure_wrong_answer"""
    assert recovery.initiate_recovery(ritual_user, ["Blue", "Cat"]) is False
    assert recovery.initiate_recovery(ritual_user, ["Red", "Dog"]) is False


def test_recovery_failure_wrong_count(ritual_user: str, recovery: NaturalRitualRecovery) -> None:
    """C TestNaturalRitualRecovery::test_recovery_failure_wrong_count"""
    assert recovery.initiate_recovery(ritual_user, ["Red"]) is False
    assert recovery.initiate_recovery(ritual_user, ["Red", "Cat", "Extra"]) is False
    assert recovery.get_remaining_attempts(ritual_user) == 3


def test_recovery_invalid_user(
    ritual_user: str, recovery: NaturalRitualRecovery, users: Users
) -> None:
    """C TestNaturalRitualRecovery::test_recovery_invalid_user"""
    assert recovery.initiate_recovery(users("u2"), ["Red", "Cat"]) is False


def test_recovery_without_ritual_is_false(
    mgr: WalletManager, recovery: NaturalRitualRecovery, users: Users
) -> None:
    """W/C: no ritual answers False (walletd's no_ritual), and counts nothing."""
    mgr.create_wallet(users("u1"))
    assert recovery.initiate_recovery(users("u1"), ["Red"]) is False
    assert recovery.get_remaining_attempts(users("u1")) == 5
    assert recovery.is_locked(users("u1")) is False


def test_attempt_tracking_and_success_resets(
    ritual_user: str, recovery: NaturalRitualRecovery
) -> None:
    """C TestNaturalRitualRecovery::test_attempt_tracking, ::test_success_resets_attempts"""
    assert recovery.get_remaining_attempts(ritual_user) == 5
    recovery.initiate_recovery(ritual_user, ["Wrong", "Wrong"])
    assert recovery.get_remaining_attempts(ritual_user) == 4
    recovery.initiate_recovery(ritual_user, ["Red", "Cat"])
    assert recovery.get_remaining_attempts(ritual_user) == 5


def test_lockout_after_max_attempts(ritual_user: str, recovery: NaturalRitualRecovery) -> None:
    """W TestNaturalRitualRecovery::test_lockout_after_max_attempts"""
    for _ in range(5):
        assert recovery.initiate_recovery(ritual_user, ["wrong", "wrong"]) is False
    assert recovery.is_locked(ritual_user) is True
    with pytest.raises(RitualError, match="locked out") as info:
        recovery.initiate_recovery(ritual_user, ["Red", "Cat"])
    assert isinstance(info.value, RitualLockedError) and info.value.code == "locked"


def test_reset_attempts(ritual_user: str, recovery: NaturalRitualRecovery) -> None:
    """W TestNaturalRitualRecovery::test_reset_attempts (root is a walletd admin here)."""
    for _ in range(5):
        recovery.initiate_recovery(ritual_user, ["wrong", "wrong"])
    assert recovery.is_locked(ritual_user)
    recovery.reset_attempts(ritual_user)
    assert not recovery.is_locked(ritual_user)
    assert recovery.get_remaining_attempts(ritual_user) == 5


def test_unregister_ritual(ritual_user: str, recovery: NaturalRitualRecovery, users: Users) -> None:
    """C TestNaturalRitualRecovery::test_unregister_ritual, ::test_unregister_ritual_nonexistent"""
    assert recovery.unregister_ritual(ritual_user) is True
    assert not recovery.has_ritual(ritual_user)
    assert recovery.unregister_ritual(ritual_user) is False
    assert recovery.unregister_ritual(users("fake")) is False


def test_max_attempts_is_read_from_the_daemon(recovery: NaturalRitualRecovery) -> None:
    """W TestNaturalRitualRecovery::test_init (the max_attempts half),
    C ::test_max_attempts_invalid_raises"""
    assert recovery.max_attempts == 5
    recovery.max_attempts = 5  # the daemon's value: nothing to change
    with pytest.raises(ValueError):
        recovery.max_attempts = 0


def test_max_attempts_cannot_be_set_per_instance(recovery: NaturalRitualRecovery) -> None:
    """C TestNaturalRitualRecovery::test_max_attempts_property; MIGRATING: daemon config."""
    with pytest.raises(MaxAttemptsError, match="walletd's configuration") as info:
        recovery.max_attempts = 10
    assert isinstance(info.value, ValueError) and info.value.code == "invalid_argument"
    assert recovery.max_attempts == 5


def test_non_string_answer_refused(ritual_user: str, recovery: NaturalRitualRecovery) -> None:
    """Issue 13: a non-string answer is InvalidArgumentError, and burns no attempt."""
    with pytest.raises(InvalidArgumentError):
        recovery.initiate_recovery(ritual_user, ["Red", 7])  # type: ignore[list-item]
    assert recovery.get_remaining_attempts(ritual_user) == 5


def test_hash_response() -> None:
    """C TestHashResponse::test_returns_sha256, ::test_case_sensitive"""
    assert hash_response("test") == hashlib.sha256(b"test").hexdigest()
    assert hash_response("Red") != hash_response("red")


# --------------------------------------------------------------------------- key rotation


def test_rotation_policy_defaults() -> None:
    """C TestKeyRotation::test_rotation_policy_defaults; W TestKeyRotation::test_init_defaults"""
    policy = RotationPolicy()
    assert (policy.max_age_days, policy.max_signatures, policy.auto_rotate) == (90, 10000, False)
    with KeyRotation() as rotation:
        assert rotation.policy == policy
    custom = RotationPolicy(max_age_days=7, max_signatures=100, auto_rotate=True)
    assert KeyRotation(policy=custom).policy.max_age_days == 7


def test_rotation_record_creation() -> None:
    """W TestRotationRecord::test_creation, ::test_custom_reason"""
    record = RotationRecord("u1", "0xaaa", "0xbbb", "2024-01-01T00:00:00Z")
    assert (record.user_id, record.reason) == ("u1", "scheduled")
    assert RotationRecord("u1", "0xa", "0xb", "t", reason="compromised").reason == "compromised"


def test_register_and_needs_rotation_false(mgr: WalletManager, users: Users) -> None:
    """C TestKeyRotation::test_register_and_needs_rotation_false"""
    address = mgr.create_wallet(users("u1"))
    with KeyRotation() as rotation:
        rotation.register_wallet(users("u1"), address)
        assert rotation.needs_rotation(users("u1")) is False


def test_register_wallet_needs_the_real_address(mgr: WalletManager, users: Users) -> None:
    """MIGRATING: KeyRotation tracks wallets the daemon holds (upstream took any id)."""
    mgr.create_wallet(users("u1"))
    with KeyRotation() as rotation, pytest.raises(WalletNotFoundError):
        rotation.register_wallet(users("u1"), "0xabc")


def test_needs_rotation_by_signatures(mgr: WalletManager, users: Users) -> None:
    """C/W TestKeyRotation::test_needs_rotation_by_signatures: the daemon counts."""
    address = mgr.create_wallet(users("u1"))
    with KeyRotation(policy=RotationPolicy(max_signatures=3)) as rotation:
        rotation.register_wallet(users("u1"), address)  # applies the policy in the daemon
        assert rotation.needs_rotation(users("u1")) is False
        for n in range(3):
            mgr.sign_message(users("u1"), b"m%d" % n)
        assert rotation.signature_count(users("u1")) == 3
        assert rotation.needs_rotation(users("u1")) is True


def test_needs_rotation_no_wallet(users: Users) -> None:
    """W TestKeyRotation::test_needs_rotation_no_wallet"""
    assert KeyRotation().needs_rotation(users("unknown")) is False


def test_record_signature_adds_nothing(mgr: WalletManager, users: Users) -> None:
    """W TestKeyRotation::test_record_signature; MIGRATING: the daemon counts signatures."""
    address = mgr.create_wallet(users("u1"))
    rotation = KeyRotation()
    rotation.register_wallet(users("u1"), address)
    mgr.sign_message(users("u1"), b"m")
    with pytest.warns(UserWarning, match="walletd counts each signature"):
        rotation.record_signature(users("u1"))
    assert rotation.signature_count(users("u1")) == 1  # the daemon's count, not doubled
    with pytest.raises(WalletNotFoundError):
        rotation.record_signature(users("none"))


def test_record_rotation_reads_the_daemon(mgr: WalletManager, users: Users) -> None:
    """C TestKeyRotation::test_record_rotation, ::test_rotation_resets_counters"""
    old = mgr.create_wallet(users("u1"))
    rotation = KeyRotation(policy=RotationPolicy(max_signatures=3))
    rotation.register_wallet(users("u1"), old)
    for n in range(3):
        mgr.sign_message(users("u1"), b"m%d" % n)
    assert rotation.needs_rotation(users("u1"))
    new = mgr.rotate_keys(users("u1"), reason="test")
    record = rotation.record_rotation(users("u1"), old, new, "test")
    assert isinstance(record, RotationRecord)
    assert (record.user_id, record.old_wallet_id, record.new_wallet_id) == (users("u1"), old, new)
    assert record.reason == "test" and record.actor_uid == os.getuid()
    assert datetime.fromisoformat(record.timestamp).tzinfo is not None
    assert not rotation.needs_rotation(users("u1"))


def test_record_rotation_that_never_happened(mgr: WalletManager, users: Users) -> None:
    """MIGRATING: rotations are recorded by the daemon; record_rotation cannot invent one."""
    mgr.create_wallet(users("u1"))
    with pytest.raises(WalletNotFoundError, match="recorded no rotation"):
        KeyRotation().record_rotation(users("u1"), "0xold", "0xnew")


def test_get_rotation_history(mgr: WalletManager, users: Users) -> None:
    """C TestKeyRotation::test_get_rotation_history, ::test_get_rotation_history_no_user_raises"""
    mgr.create_wallet(users("u1"))
    mgr.rotate_keys(users("u1"))
    mgr.rotate_keys(users("u1"))
    with KeyRotation() as rotation:
        history = rotation.get_rotation_history(users("u1"))
        assert len(history) == 2 and history[0].new_wallet_id == history[1].old_wallet_id
        with pytest.raises(WalletNotFoundError):
            rotation.get_rotation_history(users("nonexistent"))


def test_rotate_hooks_run_around_rotation(mgr: WalletManager, users: Users) -> None:
    """C TestKeyRotation::test_post_rotate_hook, plus the pre hook upstream never called."""
    old = mgr.create_wallet(users("u1"))
    rotation = KeyRotation()
    calls: list[object] = []
    rotation.add_pre_rotate_hook(lambda user, address: calls.append((user, address)))
    rotation.add_post_rotate_hook(calls.append)
    record = rotation.rotate_keys(users("u1"), reason="hooked")
    assert calls == [(users("u1"), old), record]
    assert record.new_wallet_id == mgr.get_wallet_address(users("u1")) != old


def test_pre_rotate_hook_can_stop_rotation(mgr: WalletManager, users: Users) -> None:
    """A pre hook that raises stops the rotation before the daemon is asked."""
    old = mgr.create_wallet(users("u1"))
    rotation = KeyRotation()

    def refuse(user: str, address: str) -> None:
        raise RuntimeError("not now")

    rotation.add_pre_rotate_hook(refuse)
    with pytest.raises(RuntimeError):
        rotation.rotate_keys(users("u1"))
    assert mgr.get_wallet_address(users("u1")) == old


def test_post_rotate_hook_error_caught(mgr: WalletManager, users: Users) -> None:
    """W TestKeyRotation::test_post_rotate_hook_error_caught"""
    old = mgr.create_wallet(users("u1"))
    rotation = KeyRotation()
    rotation.add_post_rotate_hook(lambda record: 1 / 0)
    new = mgr.rotate_keys(users("u1"))
    assert rotation.record_rotation(users("u1"), old, new).new_wallet_id == new


# --------------------------------------------------------------------------- backups


@pytest.fixture
def backups(mgr: WalletManager) -> BackupManager:
    return BackupManager(key_manager=mgr.key_manager)


def test_create_and_list_backup(mgr: WalletManager, backups: BackupManager, users: Users) -> None:
    """C TestBackupManager::test_create_and_list_backup"""
    address = mgr.create_wallet(users("u1"))
    record = backups.create_backup(users("u1"), address)
    assert (record["user_id"], record["wallet_id"]) == (users("u1"), address)
    assert {"backup_id", "key_hash", "timestamp"} <= set(record)
    listed = backups.list_backups(users("u1"))
    assert [b["backup_id"] for b in listed] == [record["backup_id"]]


def test_create_backup_no_key_raises(tmp_path: Path, users: Users) -> None:
    """C TestBackupManager::test_create_backup_no_key_raises"""
    with pytest.warns(cw.StorageIgnoredWarning):
        isolated = BackupManager(backup_dir=tmp_path / "backups", key_manager=object())
    with pytest.raises(WalletNotFoundError):
        isolated.create_backup(users("nonexistent_user"), "0xfake")


def test_create_backup_of_another_address(
    mgr: WalletManager, backups: BackupManager, users: Users
) -> None:
    """MIGRATING: a record names the key the daemon holds, so wallet_id must be current."""
    mgr.create_wallet(users("u1"))
    with pytest.raises(InvalidArgumentError):
        backups.create_backup(users("u1"), "0x" + "1" * 32)


def test_verify_backup_valid_then_stale(
    mgr: WalletManager, backups: BackupManager, users: Users
) -> None:
    """C TestBackupManager::test_verify_backup_valid, ::test_verify_backup_stale_after_rotation"""
    address = mgr.create_wallet(users("u1"))
    record = backups.create_backup(users("u1"), address)
    assert backups.verify_backup(users("u1"), record["backup_id"]) is True
    mgr.rotate_keys(users("u1"))
    assert backups.verify_backup(users("u1"), record["backup_id"]) is False


def test_verify_backup_not_found_raises(
    mgr: WalletManager, backups: BackupManager, users: Users
) -> None:
    """C TestBackupManager::test_verify_backup_not_found_raises"""
    mgr.create_wallet(users("u1"))
    with pytest.raises(WalletNotFoundError):
        backups.verify_backup(users("u1"), "0" * 32)
    with pytest.raises(WalletNotFoundError):
        backups.verify_backup(users("u1"), "nonexistent")


def test_delete_backup(mgr: WalletManager, backups: BackupManager, users: Users) -> None:
    """C TestBackupManager::test_delete_backup, ::test_delete_backup_nonexistent"""
    address = mgr.create_wallet(users("u1"))
    record = backups.create_backup(users("u1"), address)
    assert backups.delete_backup(users("u1"), record["backup_id"]) is True
    assert backups.list_backups(users("u1")) == []
    assert backups.delete_backup(users("u1"), record["backup_id"]) is False
    assert backups.delete_backup(users("nobody"), "nonexistent") is False


def test_list_backups_empty(backups: BackupManager, users: Users) -> None:
    """C TestBackupManager::test_list_backups_empty"""
    assert backups.list_backups(users("u1")) == []


def test_multiple_backups_sorted_with_metadata(
    mgr: WalletManager, backups: BackupManager, users: Users
) -> None:
    """C TestBackupManager::test_multiple_backups_sorted, ::test_backup_with_metadata"""
    address = mgr.create_wallet(users("u1"))
    backups.create_backup(users("u1"), address)
    second = backups.create_backup(users("u1"), address, metadata={"reason": "pre-rotation"})
    assert second["metadata"]["reason"] == "pre-rotation"
    listed = backups.list_backups(users("u1"))
    assert len(listed) == 2 and listed[0]["timestamp"] >= listed[1]["timestamp"]


# --------------------------------------------------------------------------- Wallet facade


def test_facade_create_and_properties(users: Users) -> None:
    """C TestWalletFacade::test_create_and_properties"""
    with Wallet(users("u1")) as w:
        assert not w.is_active and w.address is None
        address = w.create()
        assert w.is_active and w.address == address and address.startswith("0x")


def test_facade_sign_verify_rotate(users: Users) -> None:
    """C TestWalletFacade::test_sign_and_verify, ::test_rotate"""
    with Wallet(users("u1")) as w:
        old = w.create()
        signature = w.sign(b"hello")
        assert w.verify(b"hello", signature) and not w.verify(b"world", signature)
        new = w.rotate(reason="test")
        assert new != old and w.address == new


def test_facade_setup_recovery_and_recover(users: Users) -> None:
    """C TestWalletFacade::test_setup_recovery_and_recover"""
    with Wallet(users("u1")) as w:
        w.create()
        w.setup_recovery([RitualStep("Q?", hash_response("A"))])
        assert w.recover(["A"]) is True
        assert w.recover(["B"]) is False


def test_facade_backup_and_delete(users: Users) -> None:
    """C TestWalletFacade::test_backup, ::test_delete"""
    with Wallet(users("u1")) as w:
        w.create()
        backup = w.backup()
        assert backup["user_id"] == users("u1") and "key_hash" in backup
        assert w.delete() is True
        assert not w.is_active and w.address is None


def test_address_is_read_from_the_daemon(users: Users) -> None:
    """MIGRATING: Wallet.address follows the daemon, also after another process rotated."""
    with Wallet(users("u1")) as w, WalletManager() as other:
        w.create()
        new = other.rotate_keys(users("u1"))
        assert w.address == new


# --------------------------------------------------------------------------- module


def test_convenience_functions(users: Users, tmp_path: Path) -> None:
    """C TestConvenienceFunctions (all three)"""
    assert cw.create_wallet(users("conv_user")).startswith("0x")
    assert isinstance(cw.get_wallet_manager(), WalletManager)
    with pytest.warns(cw.StorageIgnoredWarning):
        assert isinstance(cw.get_wallet_manager(storage_path=tmp_path), WalletManager)


def test_module_metadata_and_paths() -> None:
    """C TestModuleMetadata::test_version, ::test_all_exports; upstream's submodule paths."""
    assert cw.__version__ == "0.1.0"
    names = ["WalletManager", "NaturalRitualRecovery", "BackupManager", "KeyRotation"]
    names += ["WalletError", "hash_response", "create_wallet", "get_wallet_manager"]
    for name in names:
        assert name in cw.__all__ and hasattr(cw, name)
    from wallet_client.codomyrmex.core import WalletManager as CoreManager
    from wallet_client.codomyrmex.exceptions import GasEstimationError
    from wallet_client.codomyrmex.security.backup import BackupManager as B
    from wallet_client.codomyrmex.security.key_rotation import KeyRotation as K
    from wallet_client.codomyrmex.security.recovery import NaturalRitualRecovery as N
    from wallet_client.codomyrmex.wallet import Wallet as W

    assert (CoreManager, B, K, N, W) == (
        WalletManager,
        BackupManager,
        KeyRotation,
        NaturalRitualRecovery,
        Wallet,
    )
    assert issubclass(GasEstimationError, WalletError)
