"""The configuration's options by name, with tables flattened: ``quotas.wallets_per_uid``.

The docs tests compare OPERATIONS.md's settings table and systemd/walletd.toml.example with
walletd.config.Config. Most options are top-level keys; a TOML table (a Struct-typed field
such as ``quotas``) contributes one option per field, named ``table.field``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import msgspec.inspect as mi

from walletd.config import Config


@dataclass(frozen=True)
class Option:
    name: str
    default: Any


def _fields(struct: type[msgspec.Struct]) -> tuple[mi.Field, ...]:
    info = mi.type_info(struct)
    assert isinstance(info, mi.StructType)
    return info.fields


def config_options() -> dict[str, Option]:
    options: dict[str, Option] = {}
    for f in _fields(Config):
        if isinstance(f.type, mi.StructType):
            for sub in _fields(f.type.cls):
                options[f"{f.name}.{sub.name}"] = Option(f"{f.name}.{sub.name}", sub.default)
        else:
            options[f.name] = Option(f.name, f.default)
    return options


_LINE = re.compile(
    r"^(?:(?P<table>#? ?\[(?P<tname>[a-z_]+)\])|(?P<comment># ?)?(?P<name>[a-z_]+) = (?P<rest>.*))$"
)


@dataclass(frozen=True)
class ExampleLine:
    name: str  # dotted inside a table
    key: str  # as written
    commented: bool
    rest: str
    line: str


def example_lines(text: str) -> Iterator[ExampleLine]:
    """Each ``[# ]name = value`` line of an example config, named as :func:`config_options`."""
    table = ""
    for line in text.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        if m.group("table"):
            table = m.group("tname") + "."
            continue
        yield ExampleLine(
            table + m.group("name"),
            m.group("name"),
            bool(m.group("comment")),
            m.group("rest"),
            line,
        )
