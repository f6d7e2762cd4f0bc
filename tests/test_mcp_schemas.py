"""What a model sees, pinned: the tools/list snapshot and the rule on property names.

``tests/mcp_tools.json`` is the listing (names, input schemas, annotations) as a host
receives it. A change to it is a change to what every model sees, so it is a reviewed diff:
regenerate it with ``WALLETD_MCP_SNAPSHOT=write`` and commit it with the change.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import mcp_types as types

from wallet_client.mcp.schemas import TOOLS
from wallet_client.mcp.server import _tool

SNAPSHOT = Path(__file__).with_name("mcp_tools.json")
FORBIDDEN = ("secret", "seed", "mnemonic", "private", "password", "passphrase", "path", "socket")
KEY_NAMES = {"public_key", "pubkey", "key_type", "key_types"}
NEVER_EXPOSED = ("delete", "rotate", "policy", "backup", "ritual", "recover", "pause", "resume")


def listing() -> list[dict[str, Any]]:
    tools = [_tool(spec).model_dump(by_alias=True, exclude_none=True) for spec in TOOLS]
    return [
        {"name": t["name"], "inputSchema": t["inputSchema"], "annotations": t["annotations"]}
        for t in tools
    ]


def property_names(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        for name, sub in schema.get("properties", {}).items():
            yield name
            yield from property_names(sub)
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                yield from property_names(schema[key])


def test_tools_list_matches_the_snapshot() -> None:
    current = listing()
    if os.environ.get("WALLETD_MCP_SNAPSHOT") == "write":
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text()), (
        "what models see changed: review, then WALLETD_MCP_SNAPSHOT=write and commit"
    )


def test_no_property_is_named_like_a_secret_or_a_path() -> None:
    for spec in TOOLS:
        for schema in (spec.input_schema, spec.output_schema):
            for name in property_names(schema):
                lowered = name.lower()
                assert not any(word in lowered for word in FORBIDDEN), (spec.name, name)
                if "key" in lowered:
                    assert name in KEY_NAMES, (spec.name, name)


def test_no_tool_deletes_rotates_or_administers() -> None:
    for spec in TOOLS:
        assert not any(word in spec.name for word in NEVER_EXPOSED), spec.name


def test_annotations_are_honest() -> None:
    for spec in TOOLS:
        hints = _tool(spec).annotations
        assert isinstance(hints, types.ToolAnnotations)
        assert hints.destructive_hint is False
        assert hints.read_only_hint is (not spec.writes)
    writers = {s.name for s in TOOLS if s.writes}
    assert writers == {"wallet_create", "wallet_sign_message", "wallet_sign_typed_data"}


def test_schemas_are_valid_json_schema() -> None:
    for spec in TOOLS:
        jsonschema.Draft202012Validator.check_schema(spec.input_schema)
        jsonschema.Draft202012Validator.check_schema(spec.output_schema)
        assert spec.input_schema["type"] == "object"
        assert spec.description and spec.title
