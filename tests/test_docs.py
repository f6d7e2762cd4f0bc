"""The documentation agrees with the code.

docs/PROTOCOL.md, docs/OPERATIONS.md, systemd/walletd.toml.example and README.md restate
things that live in code: the ops and their fields, the error codes, the configuration options
with their defaults and reload classes, the walletctl commands. These tests parse the docs
(their tables, their hex dumps, their command lines) and compare them with the code, so that a
change on one side without the other fails here, with a message naming what drifted.

Only PROTOCOL.md's hex examples need a daemon, and an in-process ephemeral one is enough.
"""

from __future__ import annotations

import argparse
import ast
import functools
import re
import shlex
import tomllib
import typing
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
from msgspec import inspect as mi

import wallet_client.errors as client_errors
import walletd_wire as wire
from wallet_client import walletctl
from walletd import main as walletd_main
from walletd.config import RESTART_ONLY, load_config
from walletd.ops import dispatch
from walletd.server.serve import Server
from walletd_wire.framing import FrameDecoder, encode_frame

from . import test_protocol
from .config_options import config_options, example_lines

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = ROOT / "docs" / "PROTOCOL.md"
OPERATIONS = ROOT / "docs" / "OPERATIONS.md"
README = ROOT / "README.md"
EXAMPLE = ROOT / "systemd" / "walletd.toml.example"
MAKEFILE = ROOT / "Makefile"


def struct_info(struct: type[msgspec.Struct]) -> mi.StructType:
    info = mi.type_info(struct)
    assert isinstance(info, mi.StructType)
    return info


CONFIG_FIELDS = config_options()


# --------------------------------------------------------------------------- markdown helpers


def section(text: str, heading: str) -> str:
    """The body under ``heading`` (a whole heading line), up to the next heading of its level
    or above. Fails loudly when the heading is gone: a renamed section must not make a check
    vacuous."""
    lines = text.splitlines()
    level = len(heading) - len(heading.lstrip("#"))
    try:
        start = lines.index(heading)
    except ValueError:
        pytest.fail(f"heading {heading!r} not found")
    body: list[str] = []
    fenced = False
    for line in lines[start + 1 :]:
        fenced ^= line.startswith("```")
        hashes = len(line) - len(line.lstrip("#"))
        if not fenced and 0 < hashes <= level and line[hashes : hashes + 1] == " ":
            break
        body.append(line)
    return "\n".join(body)


def subsections(text: str, prefix: str) -> dict[str, str]:
    """``{title: body}`` for every heading line starting with ``prefix`` (e.g. ``"#### "``)."""
    return {
        line[len(prefix) :]: section(text, line)
        for line in text.splitlines()
        if line.startswith(prefix)
    }


def tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every markdown table in ``text`` as (header cells, body rows of cells)."""
    found: list[tuple[list[str], list[list[str]]]] = []
    block: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            # `\|` inside a cell is a literal bar (e.g. `--log-format json\|console`).
            block.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])])
        elif block:
            header, _separator, *rows = block
            found.append((header, rows))
            block = []
    return found


def table_with(text: str, header: list[str]) -> list[list[str]]:
    """The rows of every table in ``text`` whose header is exactly ``header``."""
    rows = [row for head, body in tables(text) if head == header for row in body]
    assert rows, f"no table with columns {header}"
    return rows


def code_names(cell: str) -> list[str]:
    """The backticked identifiers in a table cell, in order."""
    return re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", cell)


def fenced_blocks(text: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def without_fences(text: str) -> str:
    return re.sub(r"^```[a-z]*\n.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


# --------------------------------------------------------------------------- wire types


def wire_type(t: mi.Type, *, struct_as_map: bool) -> str:
    """How PROTOCOL.md writes a msgspec type: ``str``, ``bin``, ``array of str``,
    ``int or nil``; a nested struct is ``map`` in result tables and ``{a: t, b: t}`` in
    request fields (where its fields are part of what a client must send)."""
    simple = {
        mi.StrType: "str",
        mi.BytesType: "bin",
        mi.IntType: "int",
        mi.FloatType: "float",
        mi.BoolType: "bool",
        mi.NoneType: "nil",
        mi.DictType: "map",
        mi.AnyType: "any",
    }
    if type(t) in simple:
        return simple[type(t)]
    if isinstance(t, mi.ListType):
        return "array of " + wire_type(t.item_type, struct_as_map=struct_as_map)
    if isinstance(t, mi.StructType):
        if struct_as_map:
            return "map"
        inner = ", ".join(f"{f.name}: {wire_type(f.type, struct_as_map=False)}" for f in t.fields)
        return "{" + inner + "}"
    if isinstance(t, mi.UnionType):
        # nil last, as the docs write it: "str or nil".
        parts = sorted(t.types, key=lambda u: isinstance(u, mi.NoneType))
        return " or ".join(wire_type(u, struct_as_map=struct_as_map) for u in parts)
    raise AssertionError(f"no documented spelling for {t!r}")


def request_fields(op_type: type[wire.Request]) -> list[mi.Field]:
    return [f for f in struct_info(op_type).fields if f.name != "id"]


@functools.cache
def result_types() -> dict[str, type[msgspec.Struct]]:
    """op -> the result Struct the daemon answers with, read from the handlers' return
    annotations (the daemon's op table in walletd.ops.dispatch, not a list kept here)."""
    hints = typing.get_type_hints(dispatch.OpFamilies)
    # The op table only looks attributes up, so the classes stand in for instances.
    families = dispatch.OpFamilies(**{name: hints[name] for name in hints})
    table = dispatch.op_table(families)
    out: dict[str, type[msgspec.Struct]] = {}
    for request_type, handler in table.items():
        returned = typing.get_type_hints(handler)["return"]
        # Handlers that may wait return `Result | Awaitable[Result]`; a signing result may be
        # a held signature's `pending` result instead, documented once in its own section.
        candidates = typing.get_args(returned) or (returned,)
        (result,) = [
            c
            for c in candidates
            if isinstance(c, type) and issubclass(c, msgspec.Struct) and c is not wire.PendingResult
        ]
        out[str(request_type.__struct_config__.tag)] = result
    return out


def record_struct(result: type[msgspec.Struct]) -> mi.StructType:
    """What a result table documents: the result's fields, or, for a result that is just one
    array of records (``records``), a record's fields."""
    info = struct_info(result)
    if len(info.fields) == 1:
        only = info.fields[0].type
        if isinstance(only, mi.ListType) and isinstance(only.item_type, mi.StructType):
            return only.item_type
    return info


# --------------------------------------------------------------------------- PROTOCOL.md: ops


@pytest.fixture(scope="module")
def protocol_md() -> str:
    return PROTOCOL.read_text()


@pytest.fixture(scope="module")
def summary(protocol_md: str) -> dict[str, list[str]]:
    """op -> [request fields cell, result fields cell, may-call cell] from the summary table."""
    rows = table_with(
        section(protocol_md, "### Summary"),
        ["Op", "Request fields (besides `op`, `id`)", "Result fields", "May call"],
    )
    ops = [code_names(row[0]) for row in rows]
    assert all(len(names) == 1 for names in ops), f"summary rows without one op: {ops}"
    listed = [names[0] for names in ops]
    duplicates = {op for op in listed if listed.count(op) > 1}
    assert not duplicates, f"ops listed twice in the summary: {duplicates}"
    return {names[0]: row[1:] for names, row in zip(ops, rows, strict=True)}


@pytest.fixture(scope="module")
def op_sections(protocol_md: str) -> dict[str, str]:
    operations = section(protocol_md, "## Operations")
    found = subsections(operations, "#### ")
    assert all(re.fullmatch(r"`[a-z_]+`", title) for title in found), list(found)
    return {title.strip("`"): body for title, body in found.items()}


def test_summary_lists_exactly_the_ops_the_daemon_speaks(summary: dict[str, list[str]]) -> None:
    assert set(wire.OPS) - set(summary) == set(), "ops missing from PROTOCOL.md's summary"
    assert set(summary) - set(wire.OPS) == set(), (
        "PROTOCOL.md's summary lists ops that do not exist"
    )


def test_every_op_has_its_own_section(op_sections: dict[str, str]) -> None:
    assert set(wire.OPS) - set(op_sections) == set(), "ops without a #### section in PROTOCOL.md"
    assert set(op_sections) - set(wire.OPS) == set(), "PROTOCOL.md has sections for unknown ops"


@pytest.mark.parametrize("op_type", wire.REQUEST_TYPES, ids=wire.OPS)
def test_summary_request_fields_match_the_struct(
    op_type: type[wire.Request], summary: dict[str, list[str]]
) -> None:
    op = str(op_type.__struct_config__.tag)
    cell = summary[op][0]
    documented = dict(re.findall(r"`([a-z_]+)`(\??)", cell))
    fields = request_fields(op_type)
    assert sorted(documented) == sorted(f.name for f in fields), f"{op}: request fields"
    # `?` marks exactly the fields a client may leave out (those with a default).
    optional = {name for name, mark in documented.items() if mark}
    assert optional == {f.name for f in fields if not f.required}, f"{op}: optional fields"
    if not fields:
        assert cell == "—", f"{op}: an op without fields is written —"


@pytest.mark.parametrize("op_type", wire.REQUEST_TYPES, ids=wire.OPS)
def test_section_request_fields_and_types_match_the_struct(
    op_type: type[wire.Request], op_sections: dict[str, str]
) -> None:
    op = str(op_type.__struct_config__.tag)
    body = op_sections[op]
    match = re.search(r"^Request\b(.*?)(?:\bResult\b|\Z)", body, flags=re.MULTILINE | re.DOTALL)
    assert match, f"{op}: no 'Request' paragraph"
    # Fields are written `name: type`; other backticked words in the paragraph are prose.
    documented = dict(re.findall(r"`([a-z_]+): ([^`]+)`", match.group(1)))
    fields = request_fields(op_type)
    assert sorted(documented) == sorted(f.name for f in fields), f"{op}: request fields"
    if not fields:
        assert "no fields" in match.group(1), f"{op}: say 'Request: no fields.'"
    for f in fields:
        want = wire_type(f.type, struct_as_map=False)
        # nil is "not given" for an optional field (see MessagePack types), so the docs may
        # leave it out of an optional field's type.
        accepted = {want, want.removesuffix(" or nil")} if f.default is None else {want}
        assert documented[f.name] in accepted, f"{op}.{f.name}: documented type"


@pytest.mark.parametrize("op", wire.OPS)
def test_summary_result_fields_match_the_result_struct(
    op: str, summary: dict[str, list[str]]
) -> None:
    result = result_types()[op]
    documented = code_names(summary[op][1])
    assert sorted(documented) == sorted(result.__struct_fields__), f"{op}: result fields"


@pytest.mark.parametrize("op", wire.OPS)
def test_section_result_tables_match_the_result_struct(
    op: str, op_sections: dict[str, str]
) -> None:
    found = [rows for head, rows in tables(op_sections[op]) if head == ["Field", "Type", "Meaning"]]
    if not found:
        return  # the result is described in prose; the summary table names its fields
    (rows,) = found
    struct = record_struct(result_types()[op])
    types = {f.name: wire_type(f.type, struct_as_map=True) for f in struct.fields}
    documented: dict[str, str] = {}
    for row in rows:
        for name in code_names(row[0]):  # a row may cover several fields: `a`, `b`
            documented[name] = row[1]
    assert sorted(documented) == sorted(types), f"{op}: result table fields"
    for name, cell in documented.items():
        # A type may be qualified in parentheses: "bin (32 bytes)".
        assert re.sub(r" \(.*\)$", "", cell) == types[name], f"{op}.{name}: documented type"


# --------------------------------------------------------------------------- PROTOCOL.md: errors


@pytest.fixture(scope="module")
def error_rows(protocol_md: str) -> dict[str, list[str]]:
    rows = table_with(
        section(protocol_md, "## Error codes"),
        ["Code", "Meaning", "Connection afterwards", "Python exception"],
    )
    # An option in a table is written `table.key` (`quotas.wallets_per_uid`).
    listed = [re.findall(r"`([a-z_]+(?:\.[a-z_]+)?)`", row[0]) for row in rows]
    assert all(len(names) == 1 for names in listed), listed
    return {names[0]: row for names, row in zip(listed, rows, strict=True)}


def test_error_table_lists_exactly_the_error_codes(error_rows: dict[str, list[str]]) -> None:
    codes = {code.value for code in wire.ErrorCode}
    assert codes - set(error_rows) == set(), "error codes missing from PROTOCOL.md"
    assert set(error_rows) - codes == set(), "PROTOCOL.md lists error codes that do not exist"


def test_error_table_names_the_exception_the_client_raises(
    error_rows: dict[str, list[str]],
) -> None:
    for code, row in error_rows.items():
        raised = type(client_errors.error_from_wire(code, "m")).__name__
        # "`StorageError` (a `WalletKeyError`)": the first name is the class raised.
        assert code_names(row[3])[0] == raised, f"{code}: the client raises {raised}"


def test_every_error_code_the_protocol_mentions_exists(protocol_md: str) -> None:
    codes = {code.value for code in wire.ErrorCode}
    # The per-op "Errors: ..." paragraphs and the accept-time table name only real codes.
    paragraphs = re.findall(r"Errors\b[^:\n]*:(.*?)(?:\n\n|\Z)", protocol_md, flags=re.DOTALL)
    assert len(paragraphs) >= len(wire.OPS) - 3  # hello, status, list_wallets say nothing
    for paragraph in paragraphs:
        assert set(re.findall(r"`([^`]+)`", paragraph)) <= codes, paragraph
    accept = table_with(section(protocol_md, "## Connection-level behaviour"), ["Code", "When"])
    assert {code_names(row[0])[0] for row in accept} <= codes


def test_config_defaults_quoted_in_the_protocol(protocol_md: str) -> None:
    # "`idle_timeout` (300 s)", "`max_attempts` (default 5)", "`rotation_max_age_days` 90",
    # "`N <= max_frame_bytes` (default **1 MiB = 1 048 576 bytes**".
    quoted = re.finditer(
        r"`(?:[^`]*\s)?(?P<name>[a-z_]+)`(?:,|\s[a-z]+)?\s\(?(?:default\s+)?\**(?:\d+ [KMG]iB = )?"
        r"(?P<value>\d[\d ]*\d(?:\.\d+)?|\d|true|false)\b",
        protocol_md,
    )
    checked = set()
    for m in quoted:
        name = m.group("name")
        if name in CONFIG_FIELDS:
            value = tomllib.loads(f"v = {m.group('value').replace(' ', '')}")["v"]
            assert value == CONFIG_FIELDS[name].default, f"PROTOCOL.md: default of {name}"
            checked.add(name)
    # Guard against the pattern silently matching nothing after a rewording.
    assert {"idle_timeout", "max_connections", "max_frame_bytes", "max_attempts"} <= checked


# --------------------------------------------------------------------------- PROTOCOL.md: hex


def hex_examples(protocol_md: str) -> list[tuple[str, str, bytes]]:
    """(preceding paragraph, block text, bytes) for each hex dump: the bytes are the leading
    two-digit hex tokens of each line, the rest of a line is its annotation."""
    text = section(protocol_md, "## Worked examples in hex")
    out = []
    for m in re.finditer(r"((?:[^\n]+\n)+)\n```\n(.*?)```", text, flags=re.DOTALL):
        data = bytearray()
        for line in m.group(2).splitlines():
            for token in line.split():
                if not re.fullmatch(r"[0-9a-f]{2}", token):
                    break
                data.append(int(token, 16))
        out.append((m.group(1), m.group(2), bytes(data)))
    return out


@pytest.fixture(scope="module")
def examples(protocol_md: str) -> dict[str, tuple[str, str, bytes]]:
    found = hex_examples(protocol_md)
    names = ["hello request", "hello response", "sign request", "sign response", "not_found"]
    assert len(found) == len(names), "PROTOCOL.md's hex examples changed: update this test"
    return dict(zip(names, found, strict=True))


def claimed_size(paragraph: str) -> int:
    sizes = re.findall(r"(\d+)\s+bytes", paragraph)
    assert sizes, f"no size given in {paragraph!r}"
    return int(sizes[0])


def test_hex_examples_are_framed_as_annotated(
    examples: dict[str, tuple[str, str, bytes]],
) -> None:
    for name, (paragraph, block, data) in examples.items():
        length = int.from_bytes(data[:4], "big")
        annotated = re.search(r"length: (\d+)", block.splitlines()[0])
        assert annotated and int(annotated.group(1)) == length, f"{name}: length annotation"
        assert claimed_size(paragraph) == 4 + length, f"{name}: size in the text"
        if block.rstrip().splitlines()[-1].startswith("..."):
            assert len(data) < 4 + length, f"{name}: marked abbreviated but complete"
            continue
        assert len(data) == 4 + length, f"{name}: the dump is not the whole frame"
        payload = data[4:]
        # Decoding and re-encoding with msgspec gives the documented bytes back: they are
        # what msgspec (the daemon and the Python client) produces, not hand-made msgpack.
        assert msgspec.msgpack.encode(msgspec.msgpack.decode(payload)) == payload, name


def test_hex_annotations_spell_their_strings(protocol_md: str) -> None:
    # `a5 61 6c 69 63 65   "alice"`: a str (fixstr header, then its bytes), or a line of raw
    # string bytes continuing a longer str, spells what its annotation quotes.
    text = section(protocol_md, "## Worked examples in hex")
    checked = 0
    for block in fenced_blocks(text):
        for line in block.splitlines():
            m = re.match(r'((?:[0-9a-f]{2}\s+)+)"([^"]*)"', line)
            if not m:
                continue
            data = bytes.fromhex(m.group(1))
            if 0xA0 <= data[0] <= 0xBF:
                data = data[1 : 1 + (data[0] & 0x1F)]
            assert data.decode() == m.group(2), f"PROTOCOL.md hex line {line!r}"
            checked += 1
    assert checked > 20


def literal(paragraph: str) -> Any:
    """The Python dict literal quoted in backticks in ``paragraph``."""
    found = re.search(r"`(?:msgspec\.msgpack\.encode\()?(\{.*?\})\)?`", paragraph, re.DOTALL)
    assert found, f"no literal in {paragraph!r}"
    return ast.literal_eval(found.group(1).replace("\n", " "))


def test_hex_requests_are_what_the_text_says(
    examples: dict[str, tuple[str, str, bytes]],
) -> None:
    decoder = msgspec.msgpack.Decoder(wire.AnyRequest)
    for name, expected_type in (("hello request", wire.Hello), ("sign request", wire.SignMessage)):
        paragraph, _block, data = examples[name]
        value = literal(paragraph)
        assert msgspec.msgpack.decode(data[4:]) == value, name
        request = decoder.decode(data[4:])
        assert type(request) is expected_type and request.id == value["id"], name
        # "as the Python client encodes it": the client's typed request gives these bytes.
        assert encode_frame(msgspec.msgpack.encode(request)) == data, name


def test_hex_sign_response_is_the_pinned_example(
    examples: dict[str, tuple[str, str, bytes]],
) -> None:
    paragraph, _block, data = examples["sign response"]
    # "signature bytes 00..1f, address `0xabab...ab`"
    assert "signature bytes 00..1f" in paragraph and "`0xabab...ab`" in paragraph
    result = wire.SignatureResult(bytes(range(32)), "0x" + "ab" * 16)
    assert data == encode_frame(msgspec.msgpack.encode(wire.ok(2, result)))
    # The text says tests/test_protocol.py pins these very bytes.
    assert data.hex() == test_protocol.SIGN_RESPONSE_HEX
    assert examples["sign request"][2].hex() == test_protocol.SIGN_REQUEST_HEX
    assert examples["hello request"][2].hex() == test_protocol.HELLO_REQUEST_HEX
    assert examples["not_found"][2].hex() == test_protocol.NOT_FOUND_RESPONSE_HEX


async def exchange(stream: trio.SocketStream, frames: FrameDecoder, frame: bytes) -> bytes:
    await stream.send_all(frame)
    while not (got := frames.frames()):
        data = await stream.receive_some(65536)
        assert data, "walletd closed the connection"
        frames.feed(data)
    (payload,) = got
    return encode_frame(payload)


async def test_hex_responses_are_what_a_daemon_sends(
    server: Server, examples: dict[str, tuple[str, str, bytes]], protocol_md: str
) -> None:
    frames = FrameDecoder()
    stream = await trio.open_unix_socket(server.config.socket)
    async with stream:
        # "The same request when alice has no wallet: the daemon answers `not_found`".
        not_found = await exchange(stream, frames, examples["sign request"][2])
        assert not_found == examples["not_found"][2]
        assert msgspec.msgpack.decode(not_found[4:])["error"]["code"] == "not_found"

        # The hello answer is abbreviated in the docs: its bytes begin the real one, and the
        # sizes and the op count in the text are the real ones.
        paragraph, block, data = examples["hello response"]
        hello = await exchange(stream, frames, examples["hello request"][2])
        assert hello.startswith(data)
        assert len(hello) == claimed_size(paragraph)
        more = re.search(r"(\d+) more op names", block)
        assert more and int(more.group(1)) == len(wire.OPS) - 2

        # "the answer to an empty frame `00 00 00 00` begins `83 a2 69 64 c0 ...`"
        said = re.search(r"empty\s+frame `00 00 00 00` begins `([0-9a-f ]+) \.\.\.`", protocol_md)
        assert said, "the empty-frame example moved"
        empty = await exchange(stream, frames, b"\x00\x00\x00\x00")
        assert empty[4:].startswith(bytes.fromhex(said.group(1)))


# --------------------------------------------------------------------------- OPERATIONS.md


@pytest.fixture(scope="module")
def option_rows() -> dict[str, list[str]]:
    text = section(OPERATIONS.read_text(), "### Every option")
    rows = table_with(text, ["Option", "Default", "Reload", "Meaning"])
    # An option in a table is written `table.key` (`quotas.wallets_per_uid`).
    listed = [re.findall(r"`([a-z_]+(?:\.[a-z_]+)?)`", row[0]) for row in rows]
    assert all(len(names) == 1 for names in listed), listed
    names = [n[0] for n in listed]
    assert len(names) == len(set(names)), "an option is documented twice"
    return {names[0]: row for names, row in zip(listed, rows, strict=True)}


def test_operations_documents_every_option(option_rows: dict[str, list[str]]) -> None:
    assert set(CONFIG_FIELDS) - set(option_rows) == set(), "options missing from OPERATIONS.md"
    assert set(option_rows) - set(CONFIG_FIELDS) == set(), "OPERATIONS.md documents unknown options"


def test_operations_reload_class_is_restart_only(option_rows: dict[str, list[str]]) -> None:
    assert {row[2] for row in option_rows.values()} <= {"live", "restart"}
    restart = {name for name, row in option_rows.items() if row[2] == "restart"}
    # A table's keys (``approvals.max_leases``) take the reload class of their table.
    assert {name.split(".")[0] for name in restart} == RESTART_ONLY
    assert all(
        row[2] == "restart"
        for name, row in option_rows.items()
        if name.split(".")[0] in RESTART_ONLY
    )


def test_operations_defaults_are_the_config_defaults(option_rows: dict[str, list[str]]) -> None:
    for name, row in option_rows.items():
        default = CONFIG_FIELDS[name].default
        cell = row[1]
        shown = re.match(r"`([^`]+)`", cell)
        if shown is None:
            assert cell.startswith("none") and default is None, f"{name}: default {cell!r}"
            continue
        try:
            value = tomllib.loads(f"v = {shown.group(1)}")["v"]
        except tomllib.TOMLDecodeError:
            # A derived default such as `<state_dir>/backups`: what None means for the option.
            assert default is None and "<" in shown.group(1), f"{name}: default {cell!r}"
            continue
        assert value == default, f"{name}: OPERATIONS.md says {cell}, Config says {default!r}"


def test_operations_flags_exist_and_set_their_option() -> None:
    text = section(OPERATIONS.read_text(), "## Configuration")
    actions = walletd_main.build_parser()._option_string_actions
    for flag_cell, option_cell in table_with(text, ["Flag", "Option"]):
        flag = re.match(r"`(--[a-z-]+)", flag_cell)
        assert flag and flag.group(1) in actions, f"walletd has no flag {flag_cell}"
        if flag.group(1) == "--config":
            continue
        (option,) = code_names(option_cell) or re.findall(r"`([a-z_]+) =", option_cell)
        assert option in CONFIG_FIELDS, option
        # walletd.main.config_from passes flags on by their dest, the option's name.
        assert actions[flag.group(1)].dest == option


# --------------------------------------------------------------------------- walletd.toml.example


def test_example_config_mentions_every_option_once() -> None:
    names = [line.name for line in example_lines(EXAMPLE.read_text())]
    assert set(CONFIG_FIELDS) - set(names) == set(), "options missing from the example"
    assert set(names) - set(CONFIG_FIELDS) == set(), "the example has unknown options"
    assert len(names) == len(set(names)), "an option appears twice in the example"


def test_example_config_reload_tags_are_restart_only() -> None:
    tags = {
        line.name: re.search(r"# \[(live|restart)\]", line.rest)
        for line in example_lines(EXAMPLE.read_text())
    }
    assert all(tags.values()), [name for name, tag in tags.items() if not tag]
    restart = {name for name, tag in tags.items() if tag and tag.group(1) == "restart"}
    assert {name.split(".")[0] for name in restart} == RESTART_ONLY


def test_example_config_loads_as_is_and_uncommented(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    active = load_config(str(EXAMPLE), {})
    assert active.require_external_master_key is True  # what OPERATIONS.md promises
    uncommented = re.sub(r"^# ?([a-z_]+ = )", r"\1", text, flags=re.MULTILINE)
    path = tmp_path / "all.toml"
    path.write_text(uncommented)
    load_config(str(path), {})
    loaded = tomllib.loads(uncommented)
    flat = {
        f"{key}.{sub}" if isinstance(value, dict) else key
        for key, value in loaded.items()
        for sub in (value if isinstance(value, dict) else [None])
    }
    assert flat == set(CONFIG_FIELDS)


def test_example_config_comments_show_the_defaults() -> None:
    # "Lines starting with # show an option at its default" -- except options whose default
    # is "not set", where the commented line shows an example value.
    for line in example_lines(EXAMPLE.read_text()):
        default = CONFIG_FIELDS[line.name].default
        if line.commented and default is not None:
            value = tomllib.loads(f"{line.key} = {line.rest}")[line.key]
            assert value == default, f"example: {line.line!r}, Config default {default!r}"


# --------------------------------------------------------------------------- README.md


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE.read_text(), flags=re.MULTILINE))


def test_readme_starts_with_make_run_and_make_test() -> None:
    head = "\n".join(README.read_text().splitlines()[:60])
    commands = [
        line.split("#")[0].split() for block in fenced_blocks(head) for line in block.splitlines()
    ]
    assert ["make", "run"] in commands, "README's first 60 lines do not show `make run`"
    assert ["make", "test"] in commands, "README's first 60 lines do not show `make test`"


def test_readme_make_targets_exist() -> None:
    used = {
        m.group(1)
        for block in fenced_blocks(README.read_text())
        for m in re.finditer(r"^make ([a-z-]+)", block, flags=re.MULTILINE)
    }
    assert {"run", "test"} <= used
    assert used - make_targets() == set(), "README uses make targets the Makefile lacks"


def walletctl_invocations(text: str) -> list[str]:
    """The argument strings of every `walletctl ...` in code blocks and inline code."""
    snippets = [line for block in fenced_blocks(text) for line in block.splitlines()]
    snippets += re.findall(r"`([^`\n]+)`", without_fences(text))
    found = []
    for snippet in snippets:
        # Up to a `)` that closes $(...) or a `#` comment; `walletctl:` is an error message.
        found += re.findall(r"\bwalletctl +([^)#]*)", snippet)
    return [args.strip() for args in found]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_path(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """The subcommand names at the start of ``argv`` (after any global options), checked
    level by level against the parser: `backup verify`, `policy set`, `audit`."""
    path: list[str] = []
    rest = list(argv)
    while choices := subcommands(parser):
        while rest and rest[0].startswith("-"):
            action = parser._option_string_actions.get(rest.pop(0))
            if action is not None and action.nargs != 0:
                rest.pop(0)  # the option's value
        if not rest:
            break
        name = rest.pop(0)
        assert name in choices, f"no subcommand {' '.join([*path, name])!r}"
        path.append(name)
        parser = choices[name]
    return path


def parse_exit_code(parser: argparse.ArgumentParser, argv: list[str]) -> int | str | None:
    """None when ``argv`` parses, else argparse's exit code (2: usage error)."""
    try:
        parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code
    return None


def test_readme_walletctl_commands_exist_and_parse(capsys: pytest.CaptureFixture[str]) -> None:
    invocations = walletctl_invocations(README.read_text())
    # Shell variables stand for values the tour printed earlier.
    variables = {"$SIG": "ab" * 32, "$BID": "0" * 32}
    checked = 0
    for args in invocations:
        argv = [variables.get(word, word) for word in shlex.split(args)]
        if any(re.fullmatch(r"[A-Z]+", word) for word in argv):
            continue  # a placeholder, as in `walletctl COMMAND --help`
        parser = walletctl.build_parser()
        path = command_path(parser, argv)
        assert path or "--help" in argv, f"README: `walletctl {args}` names no subcommand"
        # And the whole line parses, options and all (--help exits 0).
        exit_code = parse_exit_code(parser, argv)
        expected = 0 if "--help" in argv else None
        assert exit_code == expected, f"README: `walletctl {args}` is refused"
        checked += 1
    capsys.readouterr()  # what --help printed
    assert checked > 20  # the tour was found


def test_readme_exception_tree_matches_the_classes() -> None:
    text = README.read_text()
    (tree,) = [b for b in fenced_blocks(text) if b.startswith("WalletError ")]
    parents: list[type] = []
    names = []
    for line in tree.splitlines():
        m = re.match(r"^((?:[│ ]   )*)(?:[├└]── )?([A-Za-z]+Error)\b", line)
        assert m, f"unexpected line in README's exception tree: {line!r}"
        depth = len(m.group(1)) // 4 + (1 if "──" in line else 0)
        cls = getattr(client_errors, m.group(2))
        if depth:
            assert cls.__bases__ == (parents[depth - 1],), f"README: parent of {cls.__name__}"
        parents[depth:] = [cls]
        names.append(cls.__name__)
    # Every exception the client exports is in the tree.
    exported = {n for n in client_errors.__all__ if n.endswith("Error")}
    assert set(names) == exported
