"""Recovery under other uids: who may read or manage a ritual, and who owns a wallet after.

Children for tests/test_recovery.py, tests/test_durability.py and tests/test_redaction.py,
run under another uid by :func:`tests.support.call_as`. As in tests/children.py: each
function takes the socket path and strings (lists as JSON), imports only the client (the
child imports this module as root, before it drops privileges) and returns JSON values.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from wallet_client import RitualStep, WalletClient, errors, hash_response


def _ok_or_code(call: Callable[[], object]) -> str:
    try:
        call()
    except errors.WalletError as exc:
        return exc.code
    return "ok"


def recover_wallet(socket_path: str, user_id: str, *answers: str) -> str:
    """Recover ``user_id`` with ``answers`` (as typed): the new address."""
    with WalletClient(socket_path) as c:
        return c.recover(user_id, list(answers))


def recover_and_sign(socket_path: str, user_id: str, message: str, *answers: str) -> list[str]:
    """Recover ``user_id`` with ``answers``, then sign ``message``: [address, signature hex]."""
    with WalletClient(socket_path) as c:
        address = c.recover(user_id, list(answers))
        return [address, c.sign_message(user_id, message.encode()).hex()]


def read_then_recover(
    socket_path: str, target: str, own: str, prompts_json: str, answers_json: str
) -> dict[str, Any]:
    """As a uid that does not own ``target``: read its ritual, try to sign with and manage it
    ("ok" or the code), recover it with the answers and sign a batch; then create ``own``
    with a ritual of the same prompts and answers and try to reset its attempts."""
    prompts: list[str] = json.loads(prompts_json)
    answers: list[str] = json.loads(answers_json)
    steps = [RitualStep(q, hash_response(a)) for q, a in zip(prompts, answers, strict=True)]
    with WalletClient(socket_path) as c:
        result: dict[str, Any] = {
            "prompts": c.get_prompts(target),
            "has": c.has_ritual(target),
            "remaining": c.get_remaining_attempts(target),
            "locked": c.is_locked(target),
            "sign_before": _ok_or_code(lambda: c.sign_message(target, b"x")),
            "register": _ok_or_code(lambda: c.register_ritual(target, steps)),
            "unregister": _ok_or_code(lambda: c.unregister_ritual(target)),
            "reset": _ok_or_code(lambda: c.reset_attempts(target)),
        }
        result["address"] = c.recover(target, answers)
        result["signed_with"] = c.sign_batch(target, [b"y"])[0].address
        c.create_wallet(own)
        result["own_steps"] = c.register_ritual(own, steps)
        result["reset_own"] = _ok_or_code(lambda: c.reset_attempts(own))
    return result


def take_over(socket_path: str, user_id: str, *answers: str) -> dict[str, Any]:
    """As a third uid: try to sign with ``user_id``, fail one recovery, recover it with
    ``answers``, then sign, verify and batch-sign as its new owner; attempts left and the
    wallets list_wallets shows."""
    with WalletClient(socket_path) as c:
        result: dict[str, Any] = {"sign_before": _ok_or_code(lambda: c.sign_message(user_id, b"x"))}
        result["failed"] = c.initiate_recovery(user_id, ["no"] * 3)
        result["address"] = c.recover(user_id, list(answers))
        signature = c.sign_message(user_id, b"mine now")
        result["valid"] = c.verify_signature(user_id, b"mine now", signature)
        result["signed_with"] = c.sign_batch(user_id, [b"y"])[0].address
        result["remaining"] = c.get_remaining_attempts(user_id)
        result["wallets"] = c.list_wallets()
    return result


def locked_out(socket_path: str, user_id: str) -> dict[str, Any]:
    """{user_id: "signed" or the PermissionDeniedError's code, "wallets": list_wallets}."""
    with WalletClient(socket_path) as c:
        result: dict[str, Any] = {}
        try:
            c.sign_message(user_id, b"x")
            result[user_id] = "signed"
        except errors.PermissionDeniedError as exc:
            result[user_id] = exc.code
        result["wallets"] = c.list_wallets()
    return result
