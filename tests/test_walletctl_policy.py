"""walletctl policy signing show|set|explain, pause and resume, against an in-process daemon
(walletctl's blocking client runs in a worker thread)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

from wallet_client.exitcodes import ExitCode
from wallet_client.walletctl import main
from walletd.server.serve import Server

from .support import ROOT

Run = Callable[..., Awaitable[tuple[int, str, str]]]
EXAMPLE = ROOT / "docs" / "signing-policy.example.toml"


@pytest.fixture
def ctl(capsys: pytest.CaptureFixture[str], server: Server) -> Run:
    async def run(*argv: str) -> tuple[int, str, str]:
        code = await trio.to_thread.run_sync(main, ["--socket", server.config.socket, *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


async def test_set_show_and_explain_from_toml_and_json(ctl: Run, tmp_path: Path) -> None:
    assert (await ctl("create", "agent"))[0] == ExitCode.OK
    code, out, err = await ctl(
        "policy", "signing", "set", "agent", "--layer", "admin", "--file", str(EXAMPLE)
    )
    assert code == ExitCode.OK, err
    assert "admin: version 1, 3 rules" in out
    code, out, _ = await ctl("--json", "policy", "signing", "show", "agent")
    shown = json.loads(out)
    assert [r["id"] for r in shown["admin"]["rules"]] == ["orders", "eip712-permits", "rest"]
    rules = tmp_path / "owner.json"
    rules.write_text(
        json.dumps([{"id": "no-test", "action": "deny", "match": {"prefix": "order:test"}}])
    )
    code, out, err = await ctl("policy", "signing", "set", "agent", "--file", str(rules))
    assert code == ExitCode.OK, err
    code, out, _ = await ctl("policy", "signing", "explain", "agent", "--message", "order:test")
    assert code == ExitCode.NO
    assert "decision: deny by no-test of the owner layer" in out
    code, out, _ = await ctl("policy", "signing", "explain", "agent", "--message", "hello")
    assert code == ExitCode.NO and "rest" in out
    # A stale --expected-version is refused by the daemon's compare-and-set.
    code, _, err = await ctl(
        "policy", "signing", "set", "agent", "--file", str(rules), "--expected-version", "0"
    )
    assert code == ExitCode.REFUSED and "version 1" in err


async def test_a_bad_rules_file_is_refused_by_the_daemon(ctl: Run, tmp_path: Path) -> None:
    await ctl("create", "agent")
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rules]]\nid = "a"\naction = "allow"\nlimit = { count = -1, window_s = 60 }\n')
    code, _, err = await ctl("policy", "signing", "set", "agent", "--file", str(bad))
    assert code == ExitCode.REFUSED and "limit.count" in err
    (tmp_path / "garbage").write_text("{nope")
    code, _, err = await ctl(
        "policy", "signing", "set", "agent", "--file", str(tmp_path / "garbage")
    )
    assert code == ExitCode.USAGE


async def test_pause_and_resume(ctl: Run) -> None:
    await ctl("create", "agent")
    code, out, _ = await ctl("pause", "--wallet", "agent")
    assert code == ExitCode.OK and "wallet agent" in out
    code, _, err = await ctl("sign", "agent", "--message", "x")
    assert code == ExitCode.REFUSED and "paused" in err
    code, out, _ = await ctl("resume", "--wallet", "agent")
    assert code == ExitCode.OK and "nothing is paused" in out
    assert (await ctl("sign", "agent", "--message", "x"))[0] == ExitCode.OK
