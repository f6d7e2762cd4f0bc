"""walletctl's public-key commands: key types, public keys, EIP-712, offline verification.

``create --type``, ``pubkey USER [--version N]``, ``sign USER --typed-data FILE.json`` and
``verify --offline (--address A | --public-key HEX) SIGNATURE [--message TEXT | --file PATH]``.
The last never talks to walletd (the client connects only at its first call, and this one
makes none): anyone holding the address or public key can check a signature with it.
``create``, ``sign`` and ``verify`` are walletctl's own commands, extended here so that these
options live in one place; :func:`add_commands` is called once :mod:`wallet_client.walletctl`
has built them.
"""

from __future__ import annotations

import argparse
from typing import Any

import msgspec

from walletd_wire.schemes import KeyType

from .cli_io import Output, UsageError, decode_signature, encode_signature, read_input, read_message
from .client import WalletClient
from .exitcodes import ExitCode
from .verify import verify

__all__ = ["add_commands"]

KEY_TYPES = [t.value for t in KeyType]


# --------------------------------------------------------------------------- commands


def cmd_pubkey(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    key = client.get_public_key(args.user, args.version)
    data = {
        "user_id": args.user,
        "key_type": key.key_type,
        "version": key.version,
        "address": key.address,
        "public_key": key.public_key.hex(),
        "created_at": key.created_at,
    }
    out.result(data, [key.address, key.public_key.hex()])
    return ExitCode.OK


def _create(original: Any) -> Any:
    def cmd_create(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
        if args.type == KeyType.HMAC_SHA256:
            return int(original(client, args, out))
        address = client.create_wallet(args.user, args.type)
        out.result({"user_id": args.user, "address": address, "key_type": args.type}, address)
        return ExitCode.OK

    return cmd_create


def _sign(original: Any) -> Any:
    def cmd_sign(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
        if args.typed_data is None:
            return int(original(client, args, out))
        if args.message is not None or args.file is not None or args.batch is not None:
            raise UsageError("--typed-data signs the document alone: drop --message/--file/--batch")
        signature = client.sign_typed_data(args.user, _typed_data(args.typed_data))
        text = encode_signature(signature, args.base64)
        encoding = "base64" if args.base64 else "hex"
        out.result({"user_id": args.user, "signature": text, "encoding": encoding}, text)
        return ExitCode.OK

    return cmd_sign


def _typed_data(path: str) -> dict[str, Any]:
    try:
        doc = msgspec.json.decode(read_input(path))
    except msgspec.DecodeError as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path} must hold one JSON object (an eth_signTypedData_v4 document)")
    return doc


def _signature(text: str) -> bytes:
    try:
        return decode_signature(text)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(str(exc)) from None


def _verify(original: Any) -> Any:
    def cmd_verify(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
        if not args.offline:
            if args.address is not None or args.public_key is not None:
                raise UsageError("--address and --public-key go with --offline")
            if args.user is None or args.signature is None:
                raise UsageError("verify needs USER and SIGNATURE (or --offline)")
            args.signature = _signature(args.signature)
            return int(original(client, args, out))
        return _verify_offline(args, out)

    return cmd_verify


def _verify_offline(args: argparse.Namespace, out: Output) -> int:
    # With --offline there is no USER: the one positional given is the signature.
    given = [value for value in (args.user, args.signature) if value is not None]
    if len(given) != 1:
        raise UsageError("verify --offline takes SIGNATURE only (no USER)")
    signature = _signature(given[0])
    if (args.address is None) == (args.public_key is None):
        raise UsageError("verify --offline needs exactly one of --address or --public-key")
    key: bytes | str
    if args.address is not None:
        address: str = args.address
        key = address
        key_type = KeyType.SECP256K1 if address.startswith("0x") else KeyType.ED25519
    else:
        try:
            key = bytes.fromhex(args.public_key.removeprefix("0x"))
        except ValueError:
            raise UsageError("--public-key must be hex") from None
        key_type = KeyType.ED25519 if len(key) == 32 else KeyType.SECP256K1
    try:
        valid = verify(key, read_message(args), signature, key_type=key_type)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    result = {"key_type": key_type.value, "valid": valid}
    out.result(result, "valid" if valid else "invalid")
    return ExitCode.OK if valid else ExitCode.NO


# --------------------------------------------------------------------------- parser


def add_commands(command: Any, user: Any, sub: Any) -> None:
    """Add ``pubkey`` and extend ``create``, ``sign`` and ``verify`` (see the docstring)."""
    pubkey = user(
        command(
            "pubkey",
            cmd_pubkey,
            "print USER's address and hex public key (ed25519 and secp256k1 wallets)",
        )
    )
    pubkey.add_argument("--version", type=int, metavar="N", help="an earlier key version")

    create: argparse.ArgumentParser = sub.choices["create"]
    create.add_argument(
        "--type",
        choices=KEY_TYPES,
        default=KeyType.HMAC_SHA256.value,
        help="the key type (default hmac-sha256; ed25519 and secp256k1 anyone can verify)",
    )
    create.set_defaults(func=_create(create.get_default("func")))

    sign: argparse.ArgumentParser = sub.choices["sign"]
    sign.add_argument(
        "--typed-data",
        metavar="FILE",
        help="sign an EIP-712 document (eth_signTypedData_v4 JSON) with a secp256k1 wallet",
    )
    sign.set_defaults(func=_sign(sign.get_default("func")))

    verify_parser: argparse.ArgumentParser = sub.choices["verify"]
    for action in verify_parser._actions:
        if action.dest in ("user", "signature"):
            # Optional to argparse so that --offline can do without USER; _verify checks.
            action.nargs, action.type, action.default = "?", None, None
    verify_parser.add_argument(
        "--offline",
        action="store_true",
        help="check with only an address or public key; never contacts walletd",
    )
    verify_parser.add_argument("--address", metavar="A", help="the signer's address (--offline)")
    verify_parser.add_argument(
        "--public-key", metavar="HEX", help="the signer's public key (--offline)"
    )
    verify_parser.set_defaults(func=_verify(verify_parser.get_default("func")))
