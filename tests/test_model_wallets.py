"""The rotation-policy arithmetic of walletd.model.wallets, without a daemon.

The end-to-end tests (test_rotation.py, test_policy.py) show that keys rotate at their limit;
these tables pin the numbers the sign path decides with: the effective policy an override
gives, ``hard_limit``, ``quiet_end`` (the count below which a signature needs no policy work),
the counts taken as used after a crash, and which limits a key has breached.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from walletd.model.wallets import NO_LIMIT, PolicyOverride, Wallet, WalletBook
from walletd_wire import RotationPolicy

DAY = 86400.0
T0 = 1_800_000_000.0
DEFAULT = RotationPolicy(max_age_days=90, max_signatures=10_000, auto_rotate=False)


def policy(
    max_signatures: int = 100, *, auto_rotate: bool, max_age_days: int = 90
) -> RotationPolicy:
    return RotationPolicy(max_age_days, max_signatures, auto_rotate)


def wallet(
    *,
    signature_count: int = 0,
    reserved: int = 0,
    override: PolicyOverride | None = None,
    key_created_at: float = T0,
) -> Wallet:
    return Wallet(
        "alice",
        "0x" + "ab" * 16,
        1000,
        bytearray(b"k" * 32),
        created_at=T0,
        key_created_at=key_created_at,
        signature_count=signature_count,
        override=override,
        reserved=reserved,
    )


def with_policy(
    effective: RotationPolicy, *, signature_count: int = 0, reserved: int = 0
) -> Wallet:
    w = wallet(signature_count=signature_count, reserved=reserved)
    w.apply_policy(effective)
    return w


# --------------------------------------------------------------------------- PolicyOverride


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        pytest.param(PolicyOverride(), DEFAULT, id="none-set-is-the-default"),
        pytest.param(
            PolicyOverride(max_age_days=7), RotationPolicy(7, 10_000, False), id="max-age-only"
        ),
        pytest.param(
            PolicyOverride(max_signatures=5), RotationPolicy(90, 5, False), id="max-signatures"
        ),
        pytest.param(
            PolicyOverride(auto_rotate=True), RotationPolicy(90, 10_000, True), id="auto-rotate"
        ),
        pytest.param(PolicyOverride(1, 2, True), RotationPolicy(1, 2, True), id="every-field-set"),
    ],
)
def test_override_replaces_only_the_fields_it_sets(
    override: PolicyOverride, expected: RotationPolicy
) -> None:
    assert override.apply(DEFAULT) == expected


def test_an_override_of_false_is_not_the_default() -> None:
    # None means "the default"; False is a value of its own (a falsy check would lose it).
    assert PolicyOverride(auto_rotate=False).apply(policy(auto_rotate=True)).auto_rotate is False


# --------------------------------------------------------------------------- hard_limit


@pytest.mark.parametrize(
    ("effective", "hard_limit"),
    [
        (policy(100, auto_rotate=True), 100),
        (policy(1, auto_rotate=True), 1),
        (policy(100, auto_rotate=False), NO_LIMIT),  # only warned about, never stopped
    ],
)
def test_hard_limit(effective: RotationPolicy, hard_limit: int) -> None:
    assert with_policy(effective).hard_limit == hard_limit


def test_a_new_wallet_is_placeholder_until_its_policy_is_applied() -> None:
    w = wallet()
    assert (w.hard_limit, w.quiet_end) == (NO_LIMIT, 0)  # quiet_end 0: the guarded path
    w.apply_policy(policy(100, auto_rotate=True))
    assert w.hard_limit == 100


# --------------------------------------------------------------------------- quiet_end


@dataclass(frozen=True)
class Quiet:
    auto_rotate: bool
    max_signatures: int
    reserved: int
    warned: bool
    quiet_end: int


@pytest.mark.parametrize(
    "case",
    [
        # auto-rotate: up to the reservation, and never the signature that reaches the limit.
        Quiet(True, 100, reserved=0, warned=False, quiet_end=0),
        Quiet(True, 100, reserved=25, warned=False, quiet_end=25),
        Quiet(True, 100, reserved=99, warned=False, quiet_end=99),
        Quiet(True, 100, reserved=100, warned=False, quiet_end=99),
        Quiet(True, 100, reserved=500, warned=False, quiet_end=99),
        Quiet(True, 1, reserved=1, warned=False, quiet_end=0),
        Quiet(True, 100, reserved=25, warned=True, quiet_end=25),  # warning is manual-only
        # auto-rotate off: quiet up to the signature that reaches the limit (it warns once) ...
        Quiet(False, 100, reserved=0, warned=False, quiet_end=99),
        Quiet(False, 100, reserved=40, warned=False, quiet_end=99),
        # ... and, once warned, quiet for good: nothing more is ever due.
        Quiet(False, 100, reserved=0, warned=True, quiet_end=NO_LIMIT),
    ],
    ids=repr,
)
def test_quiet_end(case: Quiet) -> None:
    w = with_policy(policy(case.max_signatures, auto_rotate=case.auto_rotate))
    w.reserved = case.reserved
    w.warned = case.warned
    w.requiet()
    assert w.quiet_end == case.quiet_end


def policy_work_due(w: Wallet) -> bool:
    """What the guarded sign path (walletd.ops.rotation.sign_guarded) checks, one signature
    at a time: a rotation first, a reservation first, or work right after this signature."""
    if w.signature_count >= w.hard_limit:
        return True
    if w.policy.auto_rotate and w.signature_count >= w.reserved:
        return True
    return w.signature_count + 1 >= w.policy.max_signatures and not (
        w.warned and not w.policy.auto_rotate
    )


@pytest.mark.parametrize("auto_rotate", [True, False])
@pytest.mark.parametrize("max_signatures", [1, 2, 7, 100])
@pytest.mark.parametrize("reserved", [0, 1, 3, 50, 200])
@pytest.mark.parametrize("warned", [False, True])
def test_quiet_end_is_exactly_where_policy_work_begins(
    auto_rotate: bool, max_signatures: int, reserved: int, warned: bool
) -> None:
    """Below quiet_end no work is due; at quiet_end it is (unless nothing is ever due)."""
    w = with_policy(policy(max_signatures, auto_rotate=auto_rotate))
    w.reserved = reserved
    w.warned = warned
    w.requiet()
    for count in range(min(w.quiet_end, max_signatures + reserved + 2)):
        w.signature_count = count
        assert not policy_work_due(w), count
    if w.quiet_end != NO_LIMIT:
        w.signature_count = w.quiet_end
        assert policy_work_due(w)
    else:
        for count in range(max_signatures + 2):
            w.signature_count = count
            assert not policy_work_due(w)


def test_warning_once_makes_the_rest_quiet() -> None:
    w = with_policy(policy(10, auto_rotate=False), signature_count=10)
    assert w.quiet_end == 9
    w.mark_warned()
    assert (w.warned, w.quiet_end) == (True, NO_LIMIT)


# --------------------------------------------------------------------------- reservations


@pytest.mark.parametrize(
    ("stored_count", "stored_reservation", "count"),
    [
        (0, 0, 0),
        (10, 0, 10),  # a clean stop: exact count, no reservation
        (10, 25, 25),  # a crash: the whole reservation counts as used
        (30, 25, 30),  # the count was flushed past the reservation: the count stands
    ],
)
def test_a_loaded_reservation_counts_as_used(
    stored_count: int, stored_reservation: int, count: int
) -> None:
    w = with_policy(
        policy(100, auto_rotate=True), signature_count=stored_count, reserved=stored_reservation
    )
    assert w.signature_count == count
    assert w.reserved == count  # nothing further may be signed before a new reservation
    assert w.quiet_end == min(count, 99)


def test_signing_counts_and_the_reservation_runs_out() -> None:
    w = with_policy(policy(100, auto_rotate=True))
    w.reserved = 2
    w.requiet()
    first, second = w.sign(b"a"), w.sign(b"b")
    assert first != second and w.signature_count == 2
    assert w.signature_count >= w.quiet_end  # the third signature takes the guarded path
    assert w.verify(b"a", first) and not w.verify(b"a", second)


def test_replacing_the_key_starts_counting_again() -> None:
    w = with_policy(policy(100, auto_rotate=False), signature_count=100)
    w.mark_warned()
    old_key = w.key
    w.replace_key(bytearray(b"n" * 32), "0x" + "cd" * 16, T0 + DAY)
    assert old_key == bytearray(32)  # zeroed in place
    assert (w.signature_count, w.reserved, w.warned) == (0, 0, False)
    assert (w.address, w.key_created_at, w.quiet_end) == ("0x" + "cd" * 16, T0 + DAY, 99)


# --------------------------------------------------------------------------- breaches


@pytest.mark.parametrize(
    ("age_days", "count", "reasons"),
    [
        (0.0, 0, []),
        (29.99, 99, []),
        (30.0, 0, ["max_age"]),  # the limit itself is reached, not only passed
        (0.0, 100, ["max_signatures"]),
        (45.0, 150, ["max_age", "max_signatures"]),
        (-5.0, 0, []),  # a key "from the future" (the clock went back) is not old
    ],
)
def test_breaches(age_days: float, count: int, reasons: list[str]) -> None:
    w = with_policy(policy(100, auto_rotate=False, max_age_days=30), signature_count=count)
    now = T0 + age_days * DAY
    assert w.breaches(now) == reasons
    assert w.key_age_days(now) == pytest.approx(max(0.0, age_days))


# --------------------------------------------------------------------------- WalletBook


def test_a_new_default_reaches_every_wallet_but_not_its_overrides() -> None:
    book = WalletBook(DEFAULT)
    plain = wallet()
    custom = Wallet("bob", "0x" + "01" * 16, 1001, bytearray(32), T0, T0)
    custom.override = PolicyOverride(max_signatures=5)
    book.add(plain)
    book.add(custom)
    assert (plain.policy, custom.policy) == (DEFAULT, RotationPolicy(90, 5, False))
    book.set_default_policy(policy(50, auto_rotate=True, max_age_days=7))
    assert plain.policy == RotationPolicy(7, 50, True) and plain.hard_limit == 50
    assert custom.policy == RotationPolicy(7, 5, True) and custom.hard_limit == 5
    assert [w.user_id for w in book.owned_by(1001)] == ["bob"]


def test_a_removed_wallet_can_no_longer_sign() -> None:
    book = WalletBook(DEFAULT)
    w = wallet()
    book.add(w)
    book.unflushed.add(w)
    assert book.remove("alice") is w
    assert (len(book), book.unflushed, w.key) == (0, set(), bytearray(32))
    with pytest.raises(RuntimeError, match="discarded"):
        w.sign(b"m")
    assert book.remove("alice") is None
