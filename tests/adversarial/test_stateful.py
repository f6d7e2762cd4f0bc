"""Model-based stateful test: a plain-Python model of what walletd must hold, checked against a
real daemon process driven by three uids after every step.

The model holds wallets by user id (owner uid, current address, policy override, signature
count, the signatures made and by which key), recovery rituals (answers, attempts, lockout),
backup records (and the key each was taken of), rotations per user id and the number of audit
records. Rules drive a real ``walletd`` through agents running as root (admin), nobody and
uid 65533 (see agent.py): create, delete, sign (single and batch), verify, rotate, set policy,
register/unregister a ritual, recover with the right or wrong answers, reset attempts,
create/verify/delete backups, restart (SIGTERM) and kill -9. After every step the daemon must
agree with the model: every acknowledged state is present, signatures by the current key
verify and older ones do not, non-owners are refused, counters and lockouts match.

Signature counters are flushed periodically, not per signature (see walletd.context), so after
a kill -9 the daemon may report fewer signatures than the model: that is the one place the
model accepts a lower value (never a higher one) and adopts it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from wallet_client import RitualStep, WalletError, hash_response

from ..support import DaemonProcess
from . import figures
from .harness import NOBODY_UID, OTHER_UID, Agent

pytestmark = [pytest.mark.fuzz, pytest.mark.slow, pytest.mark.root]

ROOT = 0
ACTORS = (ROOT, NOBODY_UID, OTHER_UID)
NAMES = ("alice", "bob", "carol")
ANSWERS = ("blue", "rex", "paris")
MAX_ATTEMPTS = 3  # harness.BASE_CONFIG
DEFAULT_POLICY = {"max_age_days": 90, "max_signatures": 10000, "auto_rotate": False}

if figures.LONG_FUZZ:
    EXAMPLES, STEPS, RESTARTS = 200, 50, 2
else:
    EXAMPLES, STEPS, RESTARTS = 15, 20, 1


@dataclass
class RitualModel:
    answers: tuple[str, ...]
    attempts: int = 0

    @property
    def locked(self) -> bool:
        return self.attempts >= MAX_ATTEMPTS


@dataclass
class WalletModel:
    owner: int
    address: str
    override: dict[str, Any] = field(
        default_factory=lambda: {"max_age_days": None, "max_signatures": None, "auto_rotate": None}
    )
    count: int = 0
    signatures: list[tuple[bytes, bytes, str]] = field(default_factory=list)  # msg, sig, key
    ritual: RitualModel | None = None

    def policy(self) -> dict[str, Any]:
        return {k: DEFAULT_POLICY[k] if v is None else v for k, v in self.override.items()}


@dataclass
class BackupModel:
    user: str
    address: str


@dataclass
class Env:
    daemon: DaemonProcess
    agents: dict[int, Agent]
    steps: int = 0
    examples: int = 0
    restarts: int = 0
    kills: int = 0
    lowered_counts: int = 0


class WalletdMachine(RuleBasedStateMachine):
    env: ClassVar[Env]
    serial: ClassVar[itertools.count[int]] = itertools.count(1)

    def __init__(self) -> None:
        super().__init__()
        n = next(self.serial)
        self.users = [f"{name}-{n}" for name in NAMES]
        self.wallets: dict[str, WalletModel] = {}
        self.backups: dict[str, BackupModel] = {}
        self.rotations = dict.fromkeys(self.users, 0)
        self.restarts = 0
        self.env.examples += 1
        self.audit_base = self.root("audit_verify")["records"]
        self.audit = 0

    # ------------------------------------------------------------------ helpers

    def agent(self, actor: int) -> Agent:
        return self.env.agents[actor]

    def root(self, method: str, *args: Any, **kwargs: Any) -> Any:
        out = self.agent(ROOT).call(method, *args, **kwargs)
        assert not isinstance(out, WalletError), f"root {method}{args}: {out!r}"
        return out

    def denial(self, actor: int, user: str) -> str | None:
        """The error code the daemon must give ``actor`` for ``user``'s wallet, or None."""
        wallet = self.wallets.get(user)
        if wallet is None:
            return "not_found"
        if actor != ROOT and wallet.owner != actor:
            return "forbidden"
        return None

    @staticmethod
    def refused(outcome: Any, code: str) -> None:
        assert isinstance(outcome, WalletError), f"expected {code}, got {outcome!r}"
        assert outcome.code == code, f"expected {code}, got {outcome.code}: {outcome.message}"

    @staticmethod
    def accepted(outcome: Any) -> Any:
        assert not isinstance(outcome, WalletError), f"unexpected error {outcome!r}"
        return outcome

    def rotated_by_daemon(self, user: str, new_address: str | None = None) -> None:
        """The daemon rotated ``user``'s key on its own (policy); learn the new address."""
        wallet = self.wallets[user]
        address = new_address or self.root("get_wallet_address", user)
        assert address != wallet.address, "auto-rotation kept the old address"
        wallet.address, wallet.count = address, 0
        self.rotations[user] += 1
        self.audit += 1

    def after_signing(self, user: str) -> None:
        wallet = self.wallets[user]
        policy = wallet.policy()
        if policy["auto_rotate"] and wallet.count >= policy["max_signatures"]:
            self.rotated_by_daemon(user)

    # ------------------------------------------------------------------ wallets

    @rule(actor=st.sampled_from(ACTORS), u=st.integers(0, 2))
    def create(self, actor: int, u: int) -> None:
        user = self.users[u]
        out = self.agent(actor).call("create_wallet", user)
        if user in self.wallets:
            self.refused(out, "already_exists")
            return
        assert isinstance(self.accepted(out), str) and out.startswith("0x")
        assert all(out != b.address for b in self.backups.values()), "an address was reused"
        self.wallets[user] = WalletModel(owner=actor, address=out)
        self.audit += 1

    @rule(actor=st.sampled_from(ACTORS), u=st.integers(0, 2))
    def delete(self, actor: int, u: int) -> None:
        user = self.users[u]
        out = self.agent(actor).call("delete_wallet", user)
        if (code := self.denial(actor, user)) is not None:
            self.refused(out, code)
            return
        assert self.accepted(out) is True
        del self.wallets[user]  # its ritual goes with it; its backups stay
        self.audit += 1

    @rule(actor=st.sampled_from(ACTORS), u=st.integers(0, 2), message=st.binary(max_size=48))
    def sign(self, actor: int, u: int, message: bytes) -> None:
        user = self.users[u]
        out = self.agent(actor).call("sign_message", user, message)
        if (code := self.denial(actor, user)) is not None:
            self.refused(out, code)
            return
        signature = self.accepted(out)
        assert isinstance(signature, bytes) and len(signature) == 32
        wallet = self.wallets[user]
        wallet.signatures.append((message, signature, wallet.address))
        wallet.count += 1
        self.after_signing(user)

    @rule(actor=st.sampled_from(ACTORS), u=st.integers(0, 2), n=st.integers(1, 4))
    def sign_batch(self, actor: int, u: int, n: int) -> None:
        user = self.users[u]
        messages = [f"batch {i}".encode() for i in range(n)]
        out = self.agent(actor).call("sign_batch", user, messages)
        if (code := self.denial(actor, user)) is not None:
            self.refused(out, code)
            return
        items = self.accepted(out)
        assert len(items) == n
        wallet = self.wallets[user]
        for message, item in zip(messages, items, strict=True):
            assert item["error"] is None, item
            policy = wallet.policy()
            if policy["auto_rotate"] and wallet.count >= policy["max_signatures"]:
                self.rotated_by_daemon(user, item["address"])  # rotated between items
            assert item["address"] == wallet.address
            wallet.signatures.append((message, item["signature"], wallet.address))
            wallet.count += 1
        self.after_signing(user)

    @rule(
        actor=st.sampled_from(ACTORS),
        u=st.integers(0, 2),
        pick=st.integers(0, 1000),
        tamper=st.booleans(),
    )
    def verify(self, actor: int, u: int, pick: int, tamper: bool) -> None:
        user = self.users[u]
        wallet = self.wallets.get(user)
        if wallet is None or not wallet.signatures:
            out = self.agent(actor).call("verify_signature", user, b"m", bytes(32))
            if (code := self.denial(actor, user)) is not None:
                self.refused(out, code)
            else:
                assert self.accepted(out) is False
            return
        message, signature, key = wallet.signatures[pick % len(wallet.signatures)]
        if tamper:
            signature = bytes([signature[0] ^ 1]) + signature[1:]
        out = self.agent(actor).call("verify_signature", user, message, signature)
        if (code := self.denial(actor, user)) is not None:
            self.refused(out, code)
            return
        assert self.accepted(out) is (key == wallet.address and not tamper)

    @rule(actor=st.sampled_from(ACTORS), u=st.integers(0, 2))
    def rotate(self, actor: int, u: int) -> None:
        user = self.users[u]
        out = self.agent(actor).call("rotate_keys", user, "model")
        if (code := self.denial(actor, user)) is not None:
            self.refused(out, code)
            return
        wallet = self.wallets[user]
        assert self.accepted(out) != wallet.address
        wallet.address, wallet.count = out, 0
        self.rotations[user] += 1
        self.audit += 1

    @rule(
        actor=st.sampled_from(ACTORS),
        u=st.integers(0, 2),
        max_signatures=st.sampled_from([None, 0, 1, 2, 3, 1000]),
        auto_rotate=st.sampled_from([None, True, False]),
        max_age_days=st.sampled_from([None, 30, 3650]),
    )
    def set_policy(
        self,
        actor: int,
        u: int,
        max_signatures: int | None,
        auto_rotate: bool | None,
        max_age_days: int | None,
    ) -> None:
        user = self.users[u]
        out = self.agent(actor).call(
            "set_policy",
            user,
            max_signatures=max_signatures,
            auto_rotate=auto_rotate,
            max_age_days=max_age_days,
        )
        if max_signatures == 0:
            self.refused(out, "invalid_argument")  # values are checked before the wallet
            return
        if (code := self.denial(actor, user)) is not None:
            self.refused(out, code)
            return
        wallet = self.wallets[user]
        change = {
            "max_signatures": max_signatures,
            "auto_rotate": auto_rotate,
            "max_age_days": max_age_days,
        }
        if any(v is not None for v in change.values()):
            wallet.override.update({k: v for k, v in change.items() if v is not None})
            self.audit += 1
            self.after_signing(user)  # a limit the key already reached rotates it now
        assert self.accepted(out) == wallet.policy()

    # ------------------------------------------------------------------ recovery

    @rule(actor=st.sampled_from(ACTORS), u=st.integers(0, 2), steps=st.integers(1, 3))
    def register_ritual(self, actor: int, u: int, steps: int) -> None:
        user = self.users[u]
        answers = ANSWERS[:steps]
        wire = [RitualStep(f"question {i}?", hash_response(a)) for i, a in enumerate(answers)]
        out = self.agent(actor).call("register_ritual", user, wire)
        if (code := self.denial(actor, user)) is not None:
            self.refused(out, code)
            return
        assert self.accepted(out) == steps
        self.wallets[user].ritual = RitualModel(answers)  # a new ritual starts at 0 attempts
        self.audit += 1

    @rule(actor=st.sampled_from(ACTORS), u=st.integers(0, 2))
    def unregister_ritual(self, actor: int, u: int) -> None:
        user = self.users[u]
        out = self.agent(actor).call("unregister_ritual", user)
        if (code := self.denial(actor, user)) is not None:
            self.refused(out, code)
            return
        wallet = self.wallets[user]
        assert self.accepted(out) is (wallet.ritual is not None)
        if wallet.ritual is not None:
            wallet.ritual = None
            self.audit += 1

    @rule(actor=st.sampled_from(ACTORS), u=st.integers(0, 2), right=st.booleans())
    def recover(self, actor: int, u: int, right: bool) -> None:
        user = self.users[u]
        wallet = self.wallets.get(user)
        ritual = wallet.ritual if wallet is not None else None
        answers = ritual.answers if ritual is not None and right else ("wrong",)
        out = self.agent(actor).call("initiate_recovery", user, list(answers))
        if wallet is None:
            assert self.accepted(out) is False  # unknown user: nothing counted
            return
        if ritual is None:
            self.refused(out, "no_ritual")
            return
        if ritual.locked:
            self.refused(out, "locked")
            return
        ritual.attempts += 1  # counted durably before the check
        self.audit += 2  # recovery_attempted, then the outcome
        if not right:
            assert self.accepted(out) is False
            return
        assert self.accepted(out) is True
        ritual.attempts = 0
        self.rotated_by_daemon(user)  # recovery rotates the key ...
        self.audit -= 1  # ... in the outcome's own audit record
        wallet.owner = actor  # ... and hands the wallet to whoever recovered it

    @rule(actor=st.sampled_from(ACTORS), u=st.integers(0, 2))
    def reset_attempts(self, actor: int, u: int) -> None:
        user = self.users[u]
        out = self.agent(actor).call("reset_attempts", user)
        if actor != ROOT:
            self.refused(out, "forbidden")
            return
        wallet = self.wallets.get(user)
        if wallet is None or wallet.ritual is None:
            self.refused(out, "no_ritual")
            return
        assert self.accepted(out) == MAX_ATTEMPTS
        wallet.ritual.attempts = 0
        self.audit += 1

    # ------------------------------------------------------------------ backups

    @rule(
        actor=st.sampled_from(ACTORS),
        u=st.integers(0, 2),
        metadata=st.none()
        | st.dictionaries(st.text(max_size=8), st.integers(-(2**63), 2**63 - 1), max_size=3),
    )
    def create_backup(self, actor: int, u: int, metadata: dict[str, int] | None) -> None:
        user = self.users[u]
        out = self.agent(actor).call("create_backup", user, metadata)
        if (code := self.denial(actor, user)) is not None:
            self.refused(out, code)
            return
        record = self.accepted(out)
        assert record["user_id"] == user
        assert record["wallet_id"] == self.wallets[user].address
        assert record["metadata"] == (metadata or {})
        self.backups[record["backup_id"]] = BackupModel(user, record["wallet_id"])
        self.audit += 1

    def pick_backup(self, pick: int) -> tuple[str, BackupModel] | None:
        if not self.backups:
            return None
        ids = sorted(self.backups)
        return ids[pick % len(ids)], self.backups[ids[pick % len(ids)]]

    @rule(actor=st.sampled_from(ACTORS), pick=st.integers(0, 1000))
    def verify_backup(self, actor: int, pick: int) -> None:
        chosen = self.pick_backup(pick)
        if chosen is None:
            return
        backup_id, backup = chosen
        out = self.agent(actor).call("verify_backup", backup.user, backup_id)
        if (code := self.denial(actor, backup.user)) is not None:
            self.refused(out, code)
            return
        assert self.accepted(out) is (backup.address == self.wallets[backup.user].address)

    @rule(actor=st.sampled_from(ACTORS), pick=st.integers(0, 1000))
    def delete_backup(self, actor: int, pick: int) -> None:
        chosen = self.pick_backup(pick)
        if chosen is None:
            return
        backup_id, backup = chosen
        out = self.agent(actor).call("delete_backup", backup.user, backup_id)
        if backup.user in self.wallets:
            if (code := self.denial(actor, backup.user)) is not None:
                self.refused(out, code)
                return
        elif actor != ROOT:
            # A deleted wallet's backups are an admin's to manage; to others they are not there.
            assert self.accepted(out) is False
            return
        assert self.accepted(out) is True
        del self.backups[backup_id]
        self.audit += 1

    # ------------------------------------------------------------------ the process

    def may_restart(self) -> bool:
        return self.restarts < RESTARTS

    @rule()
    def restart(self) -> None:
        if not self.may_restart():
            return
        self.restarts += 1
        self.env.restarts += 1
        assert self.env.daemon.stop() == 0, "walletd did not stop cleanly on SIGTERM"
        self.env.daemon.start()
        # A clean stop flushes every counter: nothing may be lower afterwards.

    @rule()
    def kill9(self) -> None:
        if not self.may_restart():
            return
        self.restarts += 1
        self.env.kills += 1
        self.env.daemon.kill()
        self.env.daemon.start()
        # Committed changes survive; signature counters only as of their last flush.
        for user, wallet in self.wallets.items():
            seen = self.root("rotation_status", user)["signature_count"]
            assert seen <= wallet.count, f"{user}: {seen} signatures after kill -9, model has fewer"
            if seen < wallet.count:
                self.env.lowered_counts += 1
            wallet.count = seen

    # ------------------------------------------------------------------ invariants

    @invariant()
    def daemon_agrees(self) -> None:
        self.env.steps += 1
        calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
            ("list_wallets", (), {}),
            ("audit_verify", (), {}),
        ]
        checks: list[Callable[[Any], None]] = [
            self.check_wallets,
            self.check_audit,
        ]
        for user, wallet in self.wallets.items():
            calls.append(("rotation_status", (user,), {}))
            checks.append(self.check_status(user, wallet))
            recent = wallet.signatures[-8:]
            if recent:
                calls.append(("verify_batch", (user, [(m, s) for m, s, _ in recent]), {}))
                checks.append(self.check_signatures(wallet, recent))
            calls.append(("has_ritual", (user,), {}))
            checks.append(self.expect(wallet.ritual is not None))
            if wallet.ritual is not None:
                calls.append(("get_remaining_attempts", (user,), {}))
                left = 0 if wallet.ritual.locked else MAX_ATTEMPTS - wallet.ritual.attempts
                checks.append(self.expect(left))
                calls.append(("is_locked", (user,), {}))
                checks.append(self.expect(wallet.ritual.locked))
        for user in self.users:
            calls.append(("list_backups", (user,), {}))
            ids = {i for i, b in self.backups.items() if b.user == user}
            checks.append(self.check_backups(ids, has_wallet=user in self.wallets))
            calls.append(("rotation_history", (user,), {}))
            checks.append(self.check_history(user))
        for backup_id, backup in sorted(self.backups.items())[:6]:
            if backup.user in self.wallets:
                calls.append(("verify_backup", (backup.user, backup_id), {}))
                checks.append(self.expect(backup.address == self.wallets[backup.user].address))
        outcomes = self.agent(ROOT).batch(calls)
        for (method, args, _), check, outcome in zip(calls, checks, outcomes, strict=True):
            try:
                check(outcome)
            except AssertionError as exc:
                figures.record("stateful", mismatches=1)
                raise AssertionError(f"root {method}{args[:1]}: {exc}") from None
        for actor in ACTORS[1:]:
            self.check_outsider(actor)

    def expect(self, value: Any) -> Callable[[Any], None]:
        def check(outcome: Any) -> None:
            assert outcome == value, f"daemon says {outcome!r}, model {value!r}"

        return check

    def check_wallets(self, outcome: Any) -> None:
        assert outcome == {u: w.address for u, w in self.wallets.items()}, (outcome, self.wallets)

    def check_audit(self, outcome: Any) -> None:
        assert outcome["ok"], f"audit chain broken: {outcome}"
        assert outcome["records"] == self.audit_base + self.audit, "audit records"

    def check_status(self, user: str, wallet: WalletModel) -> Callable[[Any], None]:
        def check(outcome: Any) -> None:
            assert outcome["address"] == wallet.address
            assert outcome["signature_count"] == wallet.count, "signature count"
            assert outcome["policy"] == wallet.policy(), "policy"

        return check

    def check_signatures(
        self, wallet: WalletModel, recent: list[tuple[bytes, bytes, str]]
    ) -> Callable[[Any], None]:
        def check(outcome: Any) -> None:
            # By the current key: valid. By any earlier key: not valid, ever again.
            assert outcome == [key == wallet.address for _, _, key in recent]

        return check

    def check_backups(self, ids: set[str], *, has_wallet: bool) -> Callable[[Any], None]:
        def check(outcome: Any) -> None:
            if not ids and not has_wallet:
                # Neither a wallet nor a record: not_found even for an admin (issue 12).
                assert getattr(outcome, "code", None) == "not_found", outcome
                return
            assert {b["backup_id"] for b in outcome} == ids

        return check

    def check_history(self, user: str) -> Callable[[Any], None]:
        def check(outcome: Any) -> None:
            if self.rotations[user] == 0 and user not in self.wallets:
                assert isinstance(outcome, WalletError) and outcome.code == "not_found"
            else:
                assert not isinstance(outcome, WalletError), outcome
                assert len(outcome) == self.rotations[user], "rotation records"

        return check

    def check_outsider(self, actor: int) -> None:
        """A non-admin uid sees exactly its own wallets and is refused everyone else's."""
        others = [u for u, w in self.wallets.items() if w.owner != actor]
        calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [("list_wallets", (), {})]
        for user in others:
            calls.append(("sign_message", (user, b"not mine"), {}))
            calls.append(("get_policy", (user,), {}))
        outcomes = self.agent(actor).batch(calls)
        owned = {u: w.address for u, w in self.wallets.items() if w.owner == actor}
        try:
            assert outcomes[0] == owned, f"uid {actor} lists {outcomes[0]}, owns {owned}"
            for outcome in outcomes[1:]:
                self.refused(outcome, "forbidden")
        except AssertionError:
            figures.record("stateful", mismatches=1)
            raise

    def teardown(self) -> None:
        # Leave the daemon empty for the next example: backups first (an admin may delete a
        # deleted wallet's backups), then wallets.
        root = self.agent(ROOT)
        for backup_id, backup in self.backups.items():
            root.call("delete_backup", backup.user, backup_id)
        for user in self.wallets:
            root.call("delete_wallet", user)


def test_walletd_agrees_with_its_model(make_daemon: Any, make_agent: Any, open_tmp: Path) -> None:
    daemon = make_daemon(log_level="warning").start()
    agents = {uid: make_agent(uid, uid, daemon.socket_path) for uid in ACTORS}
    WalletdMachine.env = env = Env(daemon, agents)
    try:
        run_state_machine_as_test(
            WalletdMachine,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    finally:
        figures.record(
            "stateful",
            cases=env.examples,
            crashes=0 if daemon.proc is None or daemon.proc.poll() in (None, 0) else 1,
            steps=env.steps,
        )
        figures.record(
            "stateful",
            restarts=env.restarts,
            kill9=env.kills,
            counts_lost_to_kill9=env.lowered_counts,
        )
    assert not [line for line in daemon.log_lines() if line.get("level") == "error"]
