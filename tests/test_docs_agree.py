"""Docs and behaviour agree (issue 12, item 18).

Before this change, on main: an admin's ``list_backups``, ``audit_log`` for a user id and
``walletctl ritual status`` on a user id that never had a wallet answered an empty success;
``walletctl verify USER 0xzz`` printed "invalid" (exit 1), since "0xzz" also reads as base64;
recovery printed "(1 attempts left)"; ``walletctl delete`` deleted without asking on a
terminal. Each test below failed then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest
import trio

from wallet_client import AsyncWalletClient, WalletNotFoundError
from wallet_client.cli_ritual import plural
from wallet_client.exitcodes import ExitCode
from wallet_client.walletctl import main
from walletd.server.serve import Server

from .support import MakeConfig, StartServer
from .test_walletctl_ritual import Terminal


@pytest.fixture
async def server(start_server: StartServer, make_config: MakeConfig) -> Server:
    started: Server = await start_server(make_config(ephemeral=True))
    return started


async def ctl(
    capsys: pytest.CaptureFixture[str], server: Server, *argv: str
) -> tuple[int, str, str]:
    args: Sequence[str] = ["--socket", str(server.config.socket), *argv]
    code = await trio.to_thread.run_sync(main, args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_admin_audit_of_a_user_that_never_was_is_not_found(server: Server) -> None:
    async with AsyncWalletClient(server.config.socket, timeout=10) as c:
        with pytest.raises(WalletNotFoundError, match="no wallet and no audit records"):
            await c.audit_log("ghost")
        await c.create_wallet("gone")
        assert await c.delete_wallet("gone")
        assert [r.event for r in await c.audit_log("gone")] == ["wallet_created", "wallet_deleted"]
        assert await c.audit_log("gone", since=1e12) == []  # it exists; nothing that new


async def test_ritual_status_of_a_user_without_a_wallet_is_not_found(
    capsys: pytest.CaptureFixture[str], server: Server
) -> None:
    code, out, err = await ctl(capsys, server, "ritual", "status", "ghost")
    assert code == ExitCode.REFUSED and out == ""
    assert "not_found" in err
    await ctl(capsys, server, "create", "alice")
    code, out, _ = await ctl(capsys, server, "ritual", "status", "alice")
    assert code == ExitCode.OK and "has_ritual" in out


async def test_verify_with_a_malformed_hex_signature_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], server: Server
) -> None:
    await ctl(capsys, server, "create", "alice")
    for bad in ("0xzz", "0xabc", "0X"):
        code, out, err = await ctl(capsys, server, "verify", "alice", bad, "--message", "hi")
        assert code == ExitCode.USAGE, (bad, out, err)
        assert out == ""


def test_attempts_left_is_singular_for_one() -> None:
    assert plural(1, "attempt") == "1 attempt"
    assert plural(2, "attempt") == "2 attempts"
    assert plural(0, "attempt") == "0 attempts"


async def test_delete_off_a_terminal_proceeds(
    capsys: pytest.CaptureFixture[str], server: Server
) -> None:
    await ctl(capsys, server, "create", "alice")
    code, out, _ = await ctl(capsys, server, "delete", "alice")
    assert (code, out) == (ExitCode.OK, "deleted\n")


@pytest.fixture
def terminal() -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def start(*argv: str) -> Terminal:
        opened.append(Terminal(*argv))
        return opened[-1]

    yield start
    for term in opened:
        term.close()


async def test_delete_on_a_terminal_asks(server: Server, terminal: Callable[..., Terminal]) -> None:
    sock = str(server.config.socket)
    async with AsyncWalletClient(sock, timeout=10) as c:
        await c.create_wallet("alice")

        def session(answer: str | None, *extra: str) -> tuple[int, str, str]:
            term = terminal("--socket", sock, "delete", "alice", *extra)
            if answer is not None:
                term.expect("This cannot be undone. [y/N] ")
                term.type(answer)
            code, out = term.finish()
            return code, out, term.screen.decode()

        code, out, screen = await trio.to_thread.run_sync(session, "n")
        assert (code, out) == (ExitCode.NO, "") and "not deleted" in screen
        assert await c.has_wallet("alice")
        code, out, _ = await trio.to_thread.run_sync(session, "y")
        assert (code, out) == (ExitCode.OK, "deleted\n")
        assert not await c.has_wallet("alice")
        await c.create_wallet("alice")
        code, out, screen = await trio.to_thread.run_sync(session, None, "--yes")
        assert (code, out) == (ExitCode.OK, "deleted\n") and "[y/N]" not in screen
