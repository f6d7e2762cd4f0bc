"""The audit chain's outside anchor (issue 12, item 4): ``audit_head`` and ``--expect-head``.

A whole state put back from an older copy passes every check walletd can make alone; a
checkpoint kept elsewhere catches it. Bad checkpoint files are clear errors, not rollbacks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from wallet_client import AsyncWalletClient
from walletd.config import Config
from walletd.model.audit_anchor import parse_checkpoint
from walletd.storage.maintenance import inspect_state, read_checkpoint

from .support import Clock, MakeConfig, running


async def _head(config: Config, clock: Clock, *users: str) -> dict[str, object]:
    async with running(config, clock) as server:
        async with AsyncWalletClient(server.config.socket) as c:
            for user in users:
                await c.create_wallet(user)
            head = await c.audit_head()
    return {f: getattr(head, f) for f in head.__struct_fields__}


async def test_the_anchor_round_trip_and_a_whole_state_rollback(
    make_config: MakeConfig, clock: Clock, tmp_path: Path
) -> None:
    config = make_config()
    state = Path(config.state_dir)
    await _head(config, clock, "alice")
    older = tmp_path / "older"
    shutil.copytree(state, older)  # an older copy of everything, chain and tags included
    head = await _head(config, clock, "bob")
    assert head["format"] == "walletd-audit-head/1" and head["seq"] == 2
    anchor = parse_checkpoint(json.dumps(head))
    assert inspect_state(config, anchor)["problems"] == []
    # Put the older copy back: every check walletd makes alone passes...
    shutil.rmtree(state)
    shutil.copytree(older, state)
    assert inspect_state(config)["problems"] == []
    # ...the anchor does not.
    found = inspect_state(config, anchor)["problems"]
    assert any("fewer than the expected head" in p for p in found), found
    # A later state still contains an earlier checkpoint.
    early = parse_checkpoint(json.dumps(await _head(config, clock)))
    await _head(config, clock, "carol")
    assert inspect_state(config, early)["problems"] == []


async def test_a_replaced_chain_of_the_same_length_is_caught(
    make_config: MakeConfig, clock: Clock
) -> None:
    config = make_config()
    anchor = parse_checkpoint(json.dumps(await _head(config, clock, "alice")))
    other = make_config(state_dir=str(Path(config.state_dir).parent / "other"))
    await _head(other, clock, "alice")
    found = inspect_state(other, anchor)["problems"]
    assert any("tag does not verify" in p for p in found), found  # another state's key
    forged = parse_checkpoint(json.dumps({**anchor.as_json(), "hash": "ab" * 32}))
    assert any("tag does not verify" in p for p in inspect_state(config, forged)["problems"])


BAD = {
    "not json": "{",
    "not an object": "[1]",
    "no format": json.dumps({"seq": 1, "hash": "0" * 64, "tag": "0" * 64}),
    "negative seq": json.dumps({"format": "walletd-audit-head/1", "seq": -1}),
    "short hash": json.dumps(
        {"format": "walletd-audit-head/1", "seq": 1, "hash": "ab", "tag": "0" * 64}
    ),
    "bool seq": json.dumps(
        {"format": "walletd-audit-head/1", "seq": True, "hash": "0" * 64, "tag": "0" * 64}
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_a_bad_checkpoint_file_is_a_clear_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "head.json"
    path.write_text(BAD[kind])
    with pytest.raises(ValueError, match="not an audit head from 'walletctl audit head'"):
        read_checkpoint(str(path))
    with pytest.raises(ValueError, match="cannot read the expected head"):
        read_checkpoint(str(tmp_path / "missing.json"))
