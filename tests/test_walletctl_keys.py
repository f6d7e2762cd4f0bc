"""walletctl's public-key commands: create --type, pubkey, sign --typed-data, verify --offline."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from wallet_client.exitcodes import ExitCode
from wallet_client.walletctl import main

from .support import DaemonProcess
from .test_eip712 import mail

# Starts walletd and walletctl processes.
pytestmark = pytest.mark.slow

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def sock(daemon: Callable[..., DaemonProcess]) -> str:
    return str(daemon(ephemeral=True).start().socket_path)


@pytest.fixture
def ctl(capsys: pytest.CaptureFixture[str], sock: str) -> Run:
    def run(*argv: str, socket_path: str | None = None) -> tuple[int, str, str]:
        code = main(["--socket", socket_path or sock, *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.mark.parametrize("key_type", ["ed25519", "secp256k1"])
def test_create_pubkey_sign_and_verify_offline(ctl: Run, key_type: str) -> None:
    code, out, _ = ctl("create", "agent", "--type", key_type)
    assert code == ExitCode.OK
    address = out.strip()
    code, out, _ = ctl("pubkey", "agent")
    assert code == ExitCode.OK
    shown_address, public_hex = out.split()
    assert shown_address == address
    code, out, _ = ctl("sign", "agent", "--message", "hello world")
    signature = out.strip()
    for key in (["--address", address], ["--public-key", public_hex]):
        code, out, _ = ctl("verify", "--offline", *key, signature, "--message", "hello world")
        assert (code, out.strip()) == (ExitCode.OK, "valid")
        code, out, _ = ctl("verify", "--offline", *key, signature, "--message", "hello World")
        assert (code, out.strip()) == (ExitCode.NO, "invalid")
    # The daemon-side verify still works as before.
    code, out, _ = ctl("verify", "agent", signature, "--message", "hello world")
    assert (code, out.strip()) == (ExitCode.OK, "valid")


def test_verify_offline_never_connects(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # A socket path where nothing listens: a connection attempt would exit 3 (unreachable).
    nowhere = str(tmp_path / "no.sock")
    from walletd.model.keys import Ed25519Signer

    signer = Ed25519Signer(bytes(range(32)))
    signature = signer.sign_message(b"offline").hex()
    argv = ["--socket", nowhere, "verify", "--offline", "--address", signer.address, signature]
    assert main([*argv, "--message", "offline"]) == ExitCode.OK
    assert main([*argv, "--message", "other"]) == ExitCode.NO
    capsys.readouterr()


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "--offline", "ab" * 64],  # no key
        ["verify", "--offline", "--address", "x", "--public-key", "00", "ab" * 64],
        ["verify", "--offline", "--address", "x", "USER", "ab" * 64],  # USER is not taken
        ["verify", "--offline", "--public-key", "zz", "ab" * 64],
        ["verify", "--address", "x", "USER", "ab" * 64],  # --address without --offline
    ],
)
def test_verify_offline_usage_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str]
) -> None:
    assert main(["--socket", str(tmp_path / "no.sock"), *argv, "--message", "m"]) == 2
    capsys.readouterr()


def test_sign_typed_data_verifies_with_eth_account(ctl: Run, tmp_path: Path) -> None:
    code, out, _ = ctl("create", "eth", "--type", "secp256k1")
    address = out.strip()
    doc_path = tmp_path / "mail.json"
    doc_path.write_text(json.dumps(mail()))
    code, out, _ = ctl("--json", "sign", "eth", "--typed-data", str(doc_path))
    assert code == ExitCode.OK
    signature = bytes.fromhex(json.loads(out)["signature"].removeprefix("0x"))
    typed: Any = encode_typed_data(full_message=mail())
    assert Account.recover_message(typed, signature=signature) == address
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"types": {}}))
    code, _, err = ctl("sign", "eth", "--typed-data", str(bad))
    assert code == ExitCode.REFUSED and "invalid_argument" in err


def test_pubkey_versions_and_json(ctl: Run) -> None:
    ctl("create", "ed", "--type", "ed25519")
    _, first, _ = ctl("address", "ed")
    ctl("rotate", "ed")
    code, out, _ = ctl("--json", "pubkey", "ed", "--version", "1")
    data = json.loads(out)
    assert code == ExitCode.OK
    assert (data["version"], data["address"], data["key_type"]) == (1, first.strip(), "ed25519")
    code, _, err = ctl("pubkey", "ed", "--version", "9")
    assert code == ExitCode.REFUSED and "not_found" in err
    ctl("create", "mac")
    code, _, err = ctl("pubkey", "mac")
    assert code == ExitCode.REFUSED and "no public key" in err
