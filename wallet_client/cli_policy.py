"""walletctl's signing-policy commands and the kill switch.

``policy signing show USER``, ``policy signing set USER --layer owner|admin --file RULES``
(TOML or JSON), ``policy signing explain USER (--message TEXT | --file PATH | --typed-data
FILE)``, and ``pause`` / ``resume`` (everything, ``--uid N`` or ``--wallet USER``).

A rules file is TOML with ``[[rules]]`` tables (docs/signing-policy.example.toml) or JSON:
a list of rules, or a map with ``rules``. walletctl sends the rules as they are: the daemon's
policy compiler is the one judge of them and says what is wrong. ``set`` without
``--expected-version`` reads the layer's version first; the daemon's compare-and-set still
refuses if someone else changed the layer in between.

``explain`` exits 0 when the signature would be allowed and 1 (``NO``) when not.
"""

from __future__ import annotations

import argparse
import tomllib
from typing import Any

import msgspec

import walletd_wire as wire

from .cli_io import Output, UsageError, read_input, read_message
from .cli_keys import _typed_data
from .client import WalletClient
from .exitcodes import ExitCode

__all__ = ["add_commands", "load_rules"]

LAYERS = ("owner", "admin")
SIGN_OPS = ("sign_message", "sign_batch", "sign_typed_data")


def load_rules(path: str) -> list[Any]:
    """The rules of a TOML or JSON file (by content: JSON starts with ``[`` or ``{``)."""
    raw = read_input(path)
    text = raw.lstrip()
    if text.startswith((b"[", b"{")) and not text.startswith(b"[["):
        try:
            doc: Any = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise UsageError(f"{path} is not JSON: {exc}") from None
    else:
        try:
            doc = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"{path} is neither JSON nor TOML: {exc}") from None
    if isinstance(doc, dict):
        if set(doc) != {"rules"}:
            raise UsageError(f"{path}: a map of rules holds only 'rules'")
        doc = doc["rules"]
    if not isinstance(doc, list):
        raise UsageError(f"{path}: rules must be a list")
    return doc


def _layer_lines(name: str, layer: wire.PolicyLayerInfo) -> list[str]:
    head = f"{name}: version {layer.version}, {len(layer.rules)} rules"
    lines = [head]
    for rule in layer.rules:
        reason = f" ({rule['reason']})" if "reason" in rule else ""
        extras = [k for k in ("match", "limit", "when") if k in rule]
        lines.append(f"  {rule['action']:6} {rule['id']}{reason}  {' '.join(extras)}".rstrip())
    return lines


def _policy_out(policy: wire.SigningPolicyResult, out: Output) -> None:
    lines = [
        f"user_id: {policy.user_id}",
        f"default: {policy.default}",
        f"paused: {'yes' if policy.paused else 'no'}",
        *_layer_lines("admin", policy.admin),
        *_layer_lines("owner", policy.owner),
    ]
    out.result(msgspec.to_builtins(policy), lines)


def cmd_show(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    _policy_out(client.get_signing_policy(args.user), out)
    return ExitCode.OK


def cmd_set(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    rules = load_rules(args.rules_file)
    expected = args.expected_version
    if expected is None:
        current = client.get_signing_policy(args.user)
        expected = (current.admin if args.layer == "admin" else current.owner).version
    _policy_out(client.set_signing_policy(args.user, args.layer, rules, expected), out)
    return ExitCode.OK


def cmd_explain(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    if args.typed_data is not None:
        if args.message is not None or args.file is not None:
            raise UsageError("--typed-data is explained alone: drop --message/--file")
        result = client.explain_signing(
            args.user, typed_data=_typed_data(args.typed_data), op=args.op
        )
    else:
        result = client.explain_signing(args.user, read_message(args), op=args.op)
    rule = result.rule_id or "(default)"
    lines = [
        f"decision: {result.action} by {rule} of the {result.layer} layer"
        + (f" ({result.reason})" if result.reason else ""),
        f"admin layer: {result.admin_rule_id or '(default)'}",
        f"owner layer: {result.owner_rule_id or '(default)'}",
        *(
            f"limit {x.layer}:{x.rule_id}: {x.remaining} of {x.count} left per {x.window_s}s"
            for x in result.limits
        ),
    ]
    if result.paused:
        lines.append("paused: signing is refused whatever the rules say")
    out.result(msgspec.to_builtins(result), lines)
    allowed = result.action == "allow" and not result.paused
    return ExitCode.OK if allowed else ExitCode.NO


def _scope(args: argparse.Namespace) -> tuple[str, int | None, str | None]:
    if args.uid is not None:
        return "uid", args.uid, None
    if args.wallet is not None:
        return "wallet", None, args.wallet
    return "all", None, None


def _pauses_out(pauses: list[wire.PauseInfo], out: Output) -> None:
    lines = [
        {"all": "everything", "uid": f"uid {p.uid}", "wallet": f"wallet {p.user_id}"}[p.scope]
        + f" (paused by uid {p.actor_uid})"
        for p in pauses
    ]
    out.result([msgspec.to_builtins(p) for p in pauses], lines or ["nothing is paused"])


def cmd_pause(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    _pauses_out(client.pause_signing(*_scope(args)), out)
    return ExitCode.OK


def cmd_resume(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    _pauses_out(client.resume_signing(*_scope(args)), out)
    return ExitCode.OK


# --------------------------------------------------------------------------- parser


def _subcommands(parser: argparse.ArgumentParser) -> Any:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("walletctl's policy command has no subcommands")


def add_commands(command: Any, user: Any, sub: Any) -> None:
    """Add ``policy signing ...`` under walletctl's ``policy``, and ``pause`` / ``resume``."""
    policy_sub = _subcommands(sub.choices["policy"])
    signing = command("signing", None, "show, set or explain USER's signing policy", policy_sub)
    signing_sub = signing.add_subparsers(dest="signing_command", required=True, metavar="COMMAND")
    user(command("show", cmd_show, "show both layers of USER's signing policy", signing_sub))
    set_parser = user(
        command("set", cmd_set, "replace one layer of USER's signing policy", signing_sub)
    )
    set_parser.add_argument("--layer", choices=LAYERS, default="owner", help="default: owner")
    set_parser.add_argument(
        "--file", dest="rules_file", required=True, metavar="RULES", help="TOML or JSON rules"
    )
    set_parser.add_argument(
        "--expected-version", type=int, metavar="N", help="refuse unless the layer is at N"
    )
    explain = user(
        command(
            "explain",
            cmd_explain,
            "say what the policy would decide for a signature (consumes nothing)",
            signing_sub,
        )
    )
    explain.add_argument("--message", metavar="TEXT", help="the message (else --file or stdin)")
    explain.add_argument("--file", metavar="PATH", help="read the message from PATH")
    explain.add_argument("--typed-data", metavar="FILE", help="an EIP-712 document (JSON)")
    explain.add_argument("--op", choices=SIGN_OPS, help="the signing op (default from input)")
    for name, func, verb in (("pause", cmd_pause, "stop"), ("resume", cmd_resume, "restart")):
        parser = command(
            name, func, f"admins: {verb} signing for everything, one uid or one wallet"
        )
        scope = parser.add_mutually_exclusive_group()
        scope.add_argument("--uid", type=int, metavar="N", help="only the wallets of uid N")
        scope.add_argument("--wallet", metavar="USER", help="only USER's wallet")
