"""walletctl against real walletd processes: in-process ``main()`` with capsys, and the
installed console script as a subprocess (plain, as another uid, and under a pseudo-terminal
in test_walletctl_ritual.py)."""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wallet_client import WalletClient
from wallet_client.exitcodes import ExitCode
from wallet_client.walletctl import build_parser, main

from .support import NOBODY, ROOT, Ctl, DaemonFactory

pytestmark = pytest.mark.slow

WALLETCTL = Path(sys.executable).parent / "walletctl"


@pytest.fixture
def sock(daemon: DaemonFactory) -> str:
    return str(daemon(ephemeral=True).start().socket_path)


@pytest.fixture
def ctl(capsys: pytest.CaptureFixture[str], sock: str) -> Ctl:
    """``ctl(*argv)`` -> (exit code, stdout, stderr) of walletctl main() on the daemon."""

    def run(*argv: str, socket_path: str | None = None) -> tuple[int, str, str]:
        code = main(["--socket", socket_path or sock, *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def run_script(
    *argv: str, input: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """The installed console script, as a shell would run it."""
    return subprocess.run(
        [str(WALLETCTL), *argv],
        input=input,
        capture_output=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        timeout=60,
    )


def only_json(out: str) -> Any:
    """stdout holds exactly one JSON document and nothing else."""
    assert out.endswith("\n"), out
    assert out.count("\n") == 1, out
    return json.loads(out)


# --------------------------------------------------------------------------- wallets


def test_status_and_hello(ctl: Ctl) -> None:
    code, out, err = ctl("status")
    assert code == 0
    assert err == ""
    assert "wallets: 0" in out
    assert "ephemeral: yes" in out
    code, out, _ = ctl("hello")
    assert code == 0
    assert "protocol: 1" in out
    assert "sign_message" in out
    hello = only_json(ctl("hello", "--json")[1])
    assert hello["protocol"] == 1
    assert "initiate_recovery" in hello["ops"]
    assert hello["limits"]["lists"]["initiate_recovery.responses"] == 16


def test_create_address_list_delete(ctl: Ctl) -> None:
    code, out, err = ctl("create", "alice")
    address = out.strip()
    assert code == 0
    assert err == ""
    assert address.startswith("0x")
    assert ctl("address", "alice")[:2] == (0, address + "\n")
    assert ctl("list") == (0, f"alice {address}\n", "")
    assert only_json(ctl("--json", "list")[1]) == {"alice": address}
    code, out, err = ctl("create", "alice")
    assert code == ExitCode.REFUSED
    assert out == ""
    assert err.startswith("walletctl: already_exists: ")
    assert ctl("delete", "alice")[:2] == (0, "deleted\n")
    assert ctl("list") == (0, "", "")


def test_unknown_user_is_refused_with_not_found(ctl: Ctl) -> None:
    assert ctl("address", "ghost") == (4, "", "walletctl: not_found: no wallet for user 'ghost'\n")
    code, out, err = ctl("sign", "ghost", "--message", "x")
    assert (code, out) == (4, "")
    assert err.startswith("walletctl: not_found: ")


def test_json_output_is_only_json(ctl: Ctl, tmp_path: Path) -> None:
    address = only_json(ctl("--json", "create", "bob")[1])["address"]
    signature = only_json(ctl("sign", "bob", "--message", "m", "--json")[1])["signature"]
    backup_id = only_json(ctl("--json", "backup", "create", "bob")[1])["backup_id"]
    steps = tmp_path / "steps.json"
    steps.write_text(json.dumps([{"prompt": "p?", "expected_response_hash": "a" * 64}]))
    for argv in (
        ["status"],
        ["address", "bob"],
        ["verify", "bob", signature, "--message", "m"],
        ["policy", "show", "bob"],
        ["policy", "set", "bob", "--max-signatures", "50"],
        ["rotation-status", "bob"],
        ["backup", "list", "bob"],
        ["backup", "verify", "bob", backup_id],
        ["backup", "info", "bob"],
        ["history", "bob"],
        ["audit"],
        ["audit", "verify"],
        ["ritual", "register", "bob", "--file", str(steps)],
        ["ritual", "status", "bob"],
        ["ritual", "prompts", "bob"],
        ["ritual", "reset", "bob"],
        ["ritual", "remove", "bob"],
        ["rotate", "bob"],
        ["delete", "bob"],
    ):
        code, out, err = ctl("--json", *argv)
        assert (code, err) == (0, ""), argv
        only_json(out)
    assert only_json(ctl("--json", "list")[1]) == {}
    assert address


# --------------------------------------------------------------------------- signing


def test_sign_and_verify_hex_and_base64(ctl: Ctl) -> None:
    ctl("create", "alice")
    code, out, _ = ctl("sign", "alice", "--message", "hello")
    hex_sig = out.strip()
    assert code == 0
    assert len(hex_sig) == 64
    assert bytes.fromhex(hex_sig)
    code, out, _ = ctl("sign", "alice", "--message", "hello", "--base64")
    b64_sig = out.strip()
    assert code == 0
    assert base64.b64decode(b64_sig) == bytes.fromhex(hex_sig)
    for given in (hex_sig, hex_sig.upper(), "0x" + hex_sig, b64_sig):
        assert ctl("verify", "alice", given, "--message", "hello")[:2] == (0, "valid\n")
    assert ctl("verify", "alice", hex_sig, "--message", "hellO")[:2] == (ExitCode.NO, "invalid\n")
    result = only_json(ctl("--json", "verify", "alice", b64_sig, "--message", "x")[1])
    assert result == {"user_id": "alice", "valid": False}
    code, out, err = ctl("verify", "alice", "not a signature!", "--message", "hello")
    assert (code, out) == (ExitCode.USAGE, "")
    assert "hex or base64" in err


def test_message_from_file_and_stdin_is_raw_bytes(
    ctl: Ctl, sock: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctl("create", "alice")
    data = b"\xff\x00not utf-8\r\n"
    with WalletClient(sock) as client:
        expected = client.sign_message("alice", data).hex()
    path = tmp_path / "message.bin"
    path.write_bytes(data)
    assert ctl("sign", "alice", "--file", str(path))[:2] == (0, expected + "\n")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert ctl("sign", "alice")[:2] == (0, expected + "\n")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert ctl("verify", "alice", expected)[:2] == (0, "valid\n")
    code, _, err = ctl("sign", "alice", "--file", str(tmp_path / "missing"))
    assert code == ExitCode.USAGE
    assert "cannot read" in err
    code, _, err = ctl("sign", "alice", "--message", "a", "--file", str(path))
    assert code == ExitCode.USAGE
    assert "not allowed with" in err


def test_sign_batch_lines_and_json(ctl: Ctl, sock: str, tmp_path: Path) -> None:
    address = ctl("create", "alice")[1].strip()
    messages = [b"one", b"", b"\xfe three"]
    lines = tmp_path / "batch.txt"
    lines.write_bytes(b"\n".join(messages) + b"\n")
    with WalletClient(sock) as client:
        expected = [client.sign_message("alice", m).hex() for m in messages]
    code, out, err = ctl("sign", "alice", "--batch", str(lines))
    assert code == 0
    assert err == ""
    assert out.splitlines() == [f"{i} {address} {sig}" for i, sig in enumerate(expected)]

    array = tmp_path / "batch.json"
    array.write_text(json.dumps(["one", "zwei"]))
    with WalletClient(sock) as client:
        zwei = base64.b64encode(client.sign_message("alice", b"zwei")).decode()
    rows = only_json(ctl("--json", "sign", "alice", "--batch", str(array), "--base64")[1])
    assert [r["index"] for r in rows] == [0, 1]
    assert rows[0]["signature"] == base64.b64encode(bytes.fromhex(expected[0])).decode()
    assert rows[1] == {"index": 1, "address": address, "signature": zwei}

    array.write_text('["one", 2]')
    code, out, err = ctl("sign", "alice", "--batch", str(array))
    assert (code, out) == (ExitCode.USAGE, "")
    assert "JSON array of strings" in err


# --------------------------------------------------------------------------- rotation


def test_rotation_commands(ctl: Ctl) -> None:
    old = ctl("create", "alice")[1].strip()
    code, out, _ = ctl("rotate", "alice", "--reason", "routine")
    new = out.strip()
    assert code == 0
    assert new.startswith("0x")
    assert new != old
    code, out, _ = ctl("history", "alice")
    assert code == 0
    assert f"routine {old} -> {new} uid=0" in out
    history = only_json(ctl("--json", "history", "alice")[1])
    assert [(r["old_wallet_id"], r["new_wallet_id"]) for r in history] == [(old, new)]

    status = only_json(ctl("--json", "rotation-status", "alice")[1])
    assert status["needs_rotation"] is False
    assert status["address"] == new
    assert set(status["policy"]) == {"max_age_days", "max_signatures", "auto_rotate"}
    code, out, _ = ctl("rotation-status", "alice")
    assert code == 0
    assert "needs_rotation: no" in out

    code, out, _ = ctl("policy", "set", "alice", "--max-signatures", "7", "--auto-rotate", "on")
    assert code == 0
    assert "max_signatures: 7" in out
    assert "auto_rotate: on" in out
    policy = only_json(ctl("--json", "policy", "show", "alice")[1])
    assert policy == {**policy, "max_signatures": 7, "auto_rotate": True}
    code, _, err = ctl("policy", "set", "alice")
    assert code == ExitCode.USAGE
    assert "needs --max-age-days" in err
    code, _, err = ctl("policy", "set", "alice", "--max-age-days", "0")
    assert code == ExitCode.REFUSED
    assert err.startswith("walletctl: invalid_argument: ")
    code, _, err = ctl("policy", "set", "alice", "--auto-rotate", "maybe")
    assert code == ExitCode.USAGE
    assert "invalid choice" in err


# --------------------------------------------------------------------------- backups


def test_backup_commands(ctl: Ctl) -> None:
    ctl("create", "alice")
    code, out, _ = ctl("backup", "create", "alice", "--metadata", '{"where": "vault"}')
    backup_id = out.strip()
    assert code == 0
    assert len(backup_id) == 32
    code, out, err = ctl("backup", "list", "alice")
    assert code == 0
    assert err == ""
    assert out.startswith(backup_id)
    assert '{"where":"vault"}' in out
    listed = only_json(ctl("--json", "backup", "list", "alice")[1])
    assert [b["backup_id"] for b in listed["backups"]] == [backup_id]
    assert listed["problems"] == []
    assert ctl("backup", "verify", "alice", backup_id)[:2] == (0, "valid\n")
    info = only_json(ctl("--json", "backup", "info", "alice")[1])
    assert info["user_id"] == "alice"
    assert len(info["key_hash"]) == 64
    assert "key_hash: " + info["key_hash"] in ctl("backup", "info", "alice")[1]

    ctl("rotate", "alice")
    assert ctl("backup", "verify", "alice", backup_id)[:2] == (ExitCode.NO, "stale\n")
    assert ctl("backup", "delete", "alice", backup_id)[:2] == (0, "deleted\n")
    code, out, err = ctl("backup", "delete", "alice", backup_id)
    assert (code, out) == (ExitCode.REFUSED, "")
    assert err.startswith("walletctl: not_found: ")
    code, _, err = ctl("backup", "create", "alice", "--metadata", "[1, 2]")
    assert code == ExitCode.USAGE
    assert "JSON object" in err


def test_tampered_backup_and_broken_audit_chain(
    daemon: DaemonFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """On disk state (not ephemeral), so a backup file and an audit row can be edited."""
    proc = daemon().start()
    sock = str(proc.socket_path)

    def ctl(*argv: str) -> tuple[int, str, str]:
        code = main(["--socket", sock, *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    ctl("create", "alice")
    backup_id = ctl("backup", "create", "alice")[1].strip()
    path = proc.state_dir / "backups" / f"{backup_id}.json"
    document = json.loads(path.read_text())
    document["record"]["metadata"] = {"forged": True}
    path.write_text(json.dumps(document))

    code, out, err = ctl("backup", "verify", "alice", backup_id)
    assert (code, out) == (ExitCode.NO, "tampered\n")
    assert err.startswith("walletctl: integrity_error: ")
    assert only_json(ctl("--json", "backup", "verify", "alice", backup_id)[1])["status"] == (
        "tampered"
    )
    code, out, err = ctl("backup", "list", "alice")
    assert (code, out) == (0, "")
    assert f"walletctl: backup {backup_id}: " in err
    listed = only_json(ctl("--json", "backup", "list", "alice")[1])
    assert [x["backup_id"] for x in listed["problems"]] == [backup_id]

    code, out, _ = ctl("audit", "verify")
    assert code == 0
    assert out.startswith("intact: ")
    with sqlite3.connect(proc.state_dir / "walletd.db") as db:
        db.execute("UPDATE audit SET event = 'forged' WHERE seq = 1")
    db.close()
    code, out, _ = ctl("audit", "verify")
    assert code == ExitCode.NO
    assert out.startswith("broken at record 1: ")
    result = only_json(ctl("--json", "audit", "verify")[1])
    assert result["ok"] is False
    assert result["first_broken_seq"] == 1
    assert result["problem"]


# --------------------------------------------------------------------------- audit


def test_audit_listing(ctl: Ctl) -> None:
    ctl("create", "alice")
    ctl("create", "bob")
    code, out, _ = ctl("audit")
    assert code == 0
    assert "wallet_created user=alice" in out
    assert "wallet_created user=bob" in out
    records = only_json(ctl("--json", "audit", "alice")[1])
    assert {r["user_id"] for r in records} == {"alice"}
    assert only_json(ctl("--json", "audit", "--user", "bob")[1])[0]["user_id"] == "bob"
    first = records[0]["timestamp"]
    assert only_json(ctl("--json", "audit", "--since", str(first + 3600))[1]) == []
    assert len(only_json(ctl("--json", "audit", "--since", "2001-09-09T01:46:40+00:00")[1])) == 2
    assert len(only_json(ctl("--json", "audit", "bob", "--since", "2001-09-09")[1])) == 1
    code, _, err = ctl("audit", "--since", "last tuesday")
    assert code == ExitCode.USAGE
    assert "ISO-8601" in err
    code, _, err = ctl("audit", "alice", "--user", "bob")
    assert code == ExitCode.USAGE
    assert "not both" in err


# --------------------------------------------------------------------------- exit codes


def test_usage_errors_exit_2(ctl: Ctl, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == ExitCode.USAGE
    assert "usage: walletctl" in capsys.readouterr().err
    for argv in (
        ["bogus"],
        ["sign"],
        ["policy"],
        ["--timeout", "-1", "status"],
        ["--timeout", "inf", "status"],
    ):
        code, out, err = ctl(*argv)
        assert (code, out) == (ExitCode.USAGE, ""), argv
        assert "error:" in err, argv


def test_unreachable_daemon_exits_3(ctl: Ctl, tmp_path: Path) -> None:
    missing = str(tmp_path / "nothing.sock")
    code, out, err = ctl("status", socket_path=missing)
    assert (code, out) == (ExitCode.UNREACHABLE, "")
    assert err.startswith(f"walletctl: unavailable: cannot connect to walletd at {missing}")
    # A socket file that is bound but not listening refuses the connection.
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound.bind(str(tmp_path / "bound.sock"))
    try:
        assert ctl("status", socket_path=str(tmp_path / "bound.sock"))[0] == 3
        # Listening but never answering: --timeout bounds the wait.
        bound.listen()
        code, _, err = ctl("--timeout", "0.2", "status", socket_path=str(tmp_path / "bound.sock"))
        assert code == ExitCode.UNREACHABLE
        assert "did not answer within 0.2s" in err
    finally:
        bound.close()


# A child that imports walletctl as root (the interpreter is under /root, which nobody cannot
# read), then drops to nobody for good and runs main(): the daemon sees nobody's uid.
AS_NOBODY = """
import os, sys
from wallet_client.walletctl import main
uid, gid = int(sys.argv[1]), int(sys.argv[2])
os.setgroups([]); os.setgid(gid); os.setuid(uid)
sys.exit(main(sys.argv[3:]))
"""


def test_another_uids_wallet_is_refused_exit_4(ctl: Ctl, sock: str) -> None:
    ctl("create", "alice")
    nobody = [str(NOBODY.pw_uid), str(NOBODY.pw_gid)]
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            AS_NOBODY,
            *nobody,
            "--socket",
            sock,
            "sign",
            "alice",
            "--message",
            "x",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert child.returncode == ExitCode.REFUSED, child.stderr
    assert child.stdout == ""
    assert child.stderr == (
        "walletctl: forbidden: the wallet of user 'alice' belongs to another uid\n"
    )


# --------------------------------------------------------------------------- help


def _command_paths(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _command_paths(sub, (*prefix, name))


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    paths = list(_command_paths(build_parser()))
    assert ("backup", "verify") in paths
    assert ("ritual", "register") in paths
    assert ("recover",) in paths
    assert ("policy", "set") in paths
    for path in paths:
        assert main([*path, "--help"]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: walletctl {' '.join(path)}"), path
        assert "--json" in out, path
        assert "--socket" in out, path


# --------------------------------------------------------------------------- console script


def test_console_script(sock: str) -> None:
    created = run_script("--socket", sock, "--json", "create", "carol")
    assert created.returncode == 0
    assert created.stderr == b""
    address = json.loads(created.stdout)["address"]
    # The socket from $WALLETD_SOCKET; the message from stdin, bytes as piped.
    env = {"WALLETD_SOCKET": sock}
    signed = run_script("sign", "carol", input=b"piped\n", env=env)
    assert signed.returncode == 0
    signature = signed.stdout.decode().strip()
    with WalletClient(sock) as client:
        assert client.sign_message("carol", b"piped\n").hex() == signature
        assert client.get_wallet_address("carol") == address
    verified = run_script("verify", "carol", signature, "--message", "piped\n", env=env)
    assert (verified.returncode, verified.stdout) == (0, b"valid\n")
    wrong = run_script("verify", "carol", signature, input=b"piped", env=env)
    assert (wrong.returncode, wrong.stdout) == (ExitCode.NO, b"invalid\n")
    refused = run_script("address", "nobody-here", env=env)
    assert refused.returncode == ExitCode.REFUSED
    assert b"not_found" in refused.stderr
    usage = run_script("sign", env=env)
    assert usage.returncode == ExitCode.USAGE
    assert b"usage: walletctl sign" in usage.stderr
    gone = run_script("status", env={"WALLETD_SOCKET": sock + ".missing"})
    assert gone.returncode == ExitCode.UNREACHABLE
    assert gone.stdout == b""


def test_console_script_survives_a_closed_pipe(sock: str, tmp_path: Path) -> None:
    with WalletClient(sock) as client:
        client.create_wallet("dave")
    batch = tmp_path / "many.txt"
    batch.write_bytes(b"m\n" * 3000)  # ~300 KB of output: more than a pipe holds
    # `walletctl ... | head -c 10`: the reader leaves early; no traceback, exit 128+SIGPIPE.
    pipeline = subprocess.run(
        f"{WALLETCTL} --socket {sock} sign dave --batch {batch} | head -c 10;"
        ' echo " ${PIPESTATUS[0]}"',
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert pipeline.stderr == ""
    assert pipeline.stdout == "0 0x" + pipeline.stdout[4:10] + f" {ExitCode.BROKEN_PIPE:d}\n"
