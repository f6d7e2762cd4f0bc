"""walletctl's recovery-ritual commands: ``ritual register|status|prompts|reset|remove`` and
``recover``.

These are the commands that talk to a person at a terminal. Answers are read with
:func:`getpass.getpass` (no echo) and only their :func:`hash_response` leaves this process;
an answer is never printed, logged or put in an error message. Questions that are not secret
(how many steps, the prompt texts) are asked on stderr so that ``--json`` keeps stdout clean.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import Any

import msgspec

import walletd_wire as wire

from .calls import hash_response
from .cli_io import Output, UsageError, fields, printable, read_input
from .client import WalletClient
from .errors import (
    PermissionDeniedError,
    RitualError,
    RitualLockedError,
    WalletError,
    WalletNotFoundError,
)
from .exitcodes import ExitCode

__all__ = ["Terminal", "add_commands"]

MAX_STEPS = 16  # the daemon's limit; asking for more would only be refused after typing
MAX_PROMPT_BYTES = 1024


class Terminal:
    """Asks a person things: plain questions echo, answers never do."""

    def say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def ask(self, question: str) -> str:
        sys.stderr.write(question)
        sys.stderr.flush()
        line = sys.stdin.readline()
        if not line:
            raise UsageError("no answer: the input ended")
        return line.rstrip("\r\n")

    def secret(self, question: str) -> str:
        try:
            return getpass.getpass(question)
        except EOFError:
            raise UsageError("no answer: the input ended") from None


# --------------------------------------------------------------------------- register


def cmd_register(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    if args.file is not None:
        steps = _steps_from_file(args.file)
    else:
        # Fail before the person types anything, not after.
        if not client.has_wallet(args.user):
            raise WalletNotFoundError(message=f"no wallet for user {args.user!r}")
        term = Terminal()
        if client.has_ritual(args.user):
            term.say(f"{printable(args.user)} has a ritual: this replaces it and its attempts.")
        steps = ask_steps(term)
    count = client.register_ritual(args.user, steps)
    out.result({"user_id": args.user, "steps": count}, f"registered a {count}-step ritual")
    return ExitCode.OK


def _steps_from_file(path: str) -> list[wire.RitualStep]:
    try:
        return msgspec.json.decode(read_input(path), type=list[wire.RitualStep])
    except msgspec.DecodeError as exc:
        # msgspec names the position and the problem, never a value: the file is not echoed.
        raise UsageError(
            f"{path} must be a JSON array of {{prompt, expected_response_hash}}: {exc}"
        ) from None


def ask_steps(term: Terminal) -> list[wire.RitualStep]:
    """The steps of a new ritual, each answer typed twice; only its hash is kept."""
    count = _ask_count(term)
    steps = []
    for number in range(1, count + 1):
        prompt = _ask_prompt(term, number, count)
        steps.append(wire.RitualStep(prompt, hash_response(_ask_answer(term, number))))
    return steps


def _ask_count(term: Terminal) -> int:
    while True:
        text = term.ask(f"Number of steps (1-{MAX_STEPS}): ").strip()
        if text.isdigit() and 1 <= int(text) <= MAX_STEPS:
            return int(text)
        term.say(f"Please enter a number from 1 to {MAX_STEPS}.")


def _ask_prompt(term: Terminal, number: int, count: int) -> str:
    while True:
        prompt = term.ask(f"Prompt for step {number}/{count}: ")
        if prompt.strip() and len(prompt.encode("utf-8", "surrogatepass")) <= MAX_PROMPT_BYTES:
            return prompt
        term.say(f"A prompt is 1 to {MAX_PROMPT_BYTES} bytes of text.")


def _ask_answer(term: Terminal, number: int) -> str:
    while True:
        answer = term.secret(f"Answer to step {number} (not shown): ")
        if not answer:
            term.say("An empty answer is not allowed.")
            continue
        if term.secret("Repeat the answer: ") == answer:
            return answer
        term.say("The two answers differ; please type them again.")


# --------------------------------------------------------------------------- inspect / manage


def plural(count: int, noun: str) -> str:
    """``1 attempt``, ``2 attempts``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def cmd_status(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    data: dict[str, Any] = {"user_id": args.user, "has_ritual": client.has_ritual(args.user)}
    if data["has_ritual"]:
        data["remaining_attempts"] = client.get_remaining_attempts(args.user)
        data["locked"] = client.is_locked(args.user)
    else:
        _require_wallet(client, args.user)
        data["remaining_attempts"] = data["locked"] = None
    out.result(data, fields({k: v for k, v in data.items() if k != "user_id"}))
    return ExitCode.OK


def _require_wallet(client: WalletClient, user: str) -> None:
    """WalletNotFoundError for a user id with no wallet: a typo must not read as "no ritual"."""
    try:
        address = client.get_wallet_address(user)
    except PermissionDeniedError:
        return  # another uid's wallet: it exists, and has no ritual
    if address is None:
        raise WalletNotFoundError(message=f"no wallet for user {user!r}", code="not_found")


def cmd_prompts(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    prompts = client.get_prompts(args.user)
    out.result(prompts, (f"{n}. {printable(text)}" for n, text in enumerate(prompts, 1)))
    return ExitCode.OK


def cmd_reset(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    remaining = client.reset_attempts(args.user)
    out.result(
        {"user_id": args.user, "remaining_attempts": remaining},
        f"attempts reset: {remaining} remaining",
    )
    return ExitCode.OK


def cmd_remove(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    if not client.unregister_ritual(args.user):
        raise RitualError(f"user {args.user!r} has no recovery ritual")
    out.result({"user_id": args.user, "removed": True}, "removed")
    return ExitCode.OK


# --------------------------------------------------------------------------- recover


def cmd_recover(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    user = args.user
    prompts = client.get_prompts(user)
    if client.is_locked(user):
        # Say so now rather than after the person has typed every answer.
        raise RitualLockedError(
            f"recovery for user {user!r} is locked: too many attempts "
            f"(an admin can run 'walletctl ritual reset')"
        )
    term = Terminal()
    term.say(f"Recovering the wallet of {printable(user)}: {len(prompts)} question(s).")
    # The client hashes each answer before it leaves this process.
    answers = [
        term.secret(f"[{n}/{len(prompts)}] {printable(prompt)} ")
        for n, prompt in enumerate(prompts, 1)
    ]
    try:
        address = client.recover(user, answers)
    except RitualLockedError:
        raise
    except RitualError as exc:
        if exc.code != "recovery_failed":
            raise
        remaining = _remaining(client, user)
        if remaining == 0:
            out.note("recovery failed: the answers were not accepted; recovery is now locked")
        else:
            left = "" if remaining is None else f" ({plural(remaining, 'attempt')} left)"
            out.note(f"recovery failed: the answers were not accepted{left}")
        out.result({"user_id": user, "recovered": False, "remaining_attempts": remaining}, None)
        return ExitCode.NO
    out.result({"user_id": user, "recovered": True, "address": address}, address)
    return ExitCode.OK


def _remaining(client: WalletClient, user: str) -> int | None:
    try:
        return client.get_remaining_attempts(user)
    except WalletError:
        return None  # the ritual went away meanwhile; the failure is still the answer


# --------------------------------------------------------------------------- parser


def add_commands(
    command: Callable[..., argparse.ArgumentParser],
    user: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
) -> None:
    """Add ``ritual ...`` and ``recover`` with walletctl's ``command``/``user`` helpers."""
    ritual = command("ritual", None, "manage USER's recovery ritual (questions and answers)")
    sub = ritual.add_subparsers(dest="ritual_command", required=True, metavar="COMMAND")
    register = user(
        command(
            "register",
            cmd_register,
            "register a recovery ritual for USER (asks for prompts and answers)",
            sub,
            description="Register (or replace) USER's recovery ritual. Asks for the number "
            "of steps, each prompt, and each answer twice without echo; only the SHA-256 of "
            "each answer is sent. With --file, reads the steps from a JSON array of "
            '{"prompt": ..., "expected_response_hash": ...} instead (hashes, never answers).',
        )
    )
    register.add_argument("--file", metavar="STEPS.json", help="read the steps from a file")
    user(command("status", cmd_status, "show whether USER has a ritual, attempts left", sub))
    user(command("prompts", cmd_prompts, "show the prompts of USER's ritual", sub))
    user(command("reset", cmd_reset, "reset USER's failed attempts (admins only)", sub))
    user(command("remove", cmd_remove, "remove USER's ritual", sub))
    user(
        command(
            "recover",
            cmd_recover,
            "answer USER's ritual to take over the wallet under a new key",
            description="Recover USER's wallet: asks each prompt of the ritual and reads the "
            "answer without echo. On success the wallet passes to you with a new key, whose "
            "address is printed (exit 0); wrong answers exit 1; a locked ritual exits 4.",
        )
    )
