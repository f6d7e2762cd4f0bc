"""Configuration: the TOML file, the flags on top of it, and the CLI's handling of bad input."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from walletd.config import (
    ApprovalsConfig,
    Config,
    ConfigError,
    QuotaConfig,
    SigningConfig,
    load_config,
    parse_mode,
)
from walletd.main import EXIT_USAGE, build_parser, config_from

from .config_options import config_options, example_lines
from .support import ROOT

EXAMPLE = ROOT / "systemd" / "walletd.toml.example"


def write(tmp_path: Path, text: str, name: str = "walletd.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --------------------------------------------------------------------------- the file


def test_every_key_type(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        socket = "/run/w/walletd.sock"
        socket_mode = 0o660
        socket_group = "wheel"
        allowed_uids = [1000, 1001]
        allowed_groups = ["agents", "ops"]
        admin_group = "walletd-admin"
        state_dir = "/var/lib/w"
        ephemeral = true
        master_key_file = "/etc/w/master.key"
        require_external_master_key = true
        backup_dir = "/var/backups/w"
        counter_flush_interval = 0.5
        max_connections = 10
        max_connections_per_uid = 5
        admin_reserved_connections = 2
        max_frame_bytes = 65536
        idle_timeout = 30          # an integer where a float is expected
        frame_timeout = 2.5
        write_timeout = 3.0
        shutdown_grace = 0
        log_level = "debug"
        log_format = "console"
        rotation_max_age_days = 7
        rotation_max_signatures = 500
        rotation_auto_rotate = true
        rotation_check_interval = 5.0
        max_attempts = 3
        lockout_seconds = 900.0
        lockout_max_seconds = 3600.0
        scrypt_n = 1024
        scrypt_r = 4
        scrypt_p = 2
        recovery_concurrency = 4
        [signing]
        default = "deny"
        policy_group = "ops"
        timezone = "Europe/Paris"

        [quotas]
        wallets_per_uid = 20
        backups_per_wallet = 30
        backup_bytes_per_wallet = 1048576
        [approvals]
        approver_group = "approvers"
        pending_ttl_s = 60
        max_wait_s = 30.0
        max_pending_per_uid = 2
        max_pending = 10
        lease_default_ttl_s = 120.0
        lease_max_ttl_s = 900.0
        lease_default_uses = 5
        lease_max_uses = 50
        max_leases = 16
        summary_max_bytes = 1024
        """.replace("\n        ", "\n"),
    )
    config = load_config(path, {})
    expected = {
        "socket": "/run/w/walletd.sock",
        "socket_mode": 0o660,
        "socket_group": "wheel",
        "allowed_uids": [1000, 1001],
        "allowed_groups": ["agents", "ops"],
        "admin_group": "walletd-admin",
        "state_dir": "/var/lib/w",
        "ephemeral": True,
        "master_key_file": "/etc/w/master.key",
        "require_external_master_key": True,
        "backup_dir": "/var/backups/w",
        "counter_flush_interval": 0.5,
        "max_connections": 10,
        "max_connections_per_uid": 5,
        "admin_reserved_connections": 2,
        "max_frame_bytes": 65536,
        "idle_timeout": 30.0,
        "frame_timeout": 2.5,
        "write_timeout": 3.0,
        "shutdown_grace": 0.0,
        "log_level": "debug",
        "log_format": "console",
        "rotation_max_age_days": 7,
        "rotation_max_signatures": 500,
        "rotation_auto_rotate": True,
        "rotation_check_interval": 5.0,
        "max_attempts": 3,
        "lockout_seconds": 900.0,
        "lockout_max_seconds": 3600.0,
        "scrypt_n": 1024,
        "scrypt_r": 4,
        "scrypt_p": 2,
        "recovery_concurrency": 4,
        "signing": SigningConfig(default="deny", policy_group="ops", timezone="Europe/Paris"),
        "quotas": QuotaConfig(
            wallets_per_uid=20, backups_per_wallet=30, backup_bytes_per_wallet=1 << 20
        ),
        "approvals": ApprovalsConfig(
            approver_group="approvers",
            pending_ttl_s=60.0,
            max_wait_s=30.0,
            max_pending_per_uid=2,
            max_pending=10,
            lease_default_ttl_s=120.0,
            lease_max_ttl_s=900.0,
            lease_default_uses=5,
            lease_max_uses=50,
            max_leases=16,
            summary_max_bytes=1024,
        ),
    }
    assert set(expected) == set(Config.__struct_fields__)  # every option is exercised
    assert msgspec.structs.asdict(config) == expected
    assert isinstance(config.idle_timeout, float)
    assert config.mode == 0o660
    assert config.backups_path == Path("/var/backups/w")


def test_empty_file_and_no_file_give_the_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), {}) == Config() == load_config(None, {})
    config = Config()
    assert config.socket == ".walletd/walletd.sock" and config.state_dir == ".walletd"
    assert config.mode == 0o600
    assert config.max_frame_bytes == 1 << 20
    assert config.backups_path == Path(".walletd/backups")


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("max_conections = 10", "unknown option `max_conections`"),
        ("[section]\nkey = 1", "unknown option `section`"),
        ('max_connections = "ten"', "`max_connections`"),
        ("max_connections = 1.5", "`max_connections`"),
        ("max_connections = 0", "`max_connections`"),
        ("ephemeral = 1", "`ephemeral`"),
        ('log_level = "verbose"', "`log_level`"),
        ('log_format = "xml"', "`log_format`"),
        ("idle_timeout = 0", "`idle_timeout`"),
        ("idle_timeout = -1.0", "`idle_timeout`"),
        ('allowed_uids = ["root"]', "`allowed_uids"),
        ("max_frame_bytes = 100", "`max_frame_bytes`"),
        ("max_frame_bytes = 1_000_000_000", "`max_frame_bytes`"),
        ("shutdown_grace = -1", "`shutdown_grace`"),
        ("scrypt_n = 1000", "scrypt_n"),
        ('socket_mode = "0777"', "socket_mode"),
        ("socket_mode = 660", "socket_mode 660"),  # decimal in TOML: the message says so
        ('socket_mode = "rw"', "socket_mode 'rw'"),
        ('socket_mode = "0400"', "socket_mode"),
        ("socket_mode = true", "`socket_mode`"),
    ],
)
def test_bad_values_name_the_option(tmp_path: Path, text: str, names: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    message = str(info.value)
    assert names in message
    assert path in message


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*missing\.toml"):
        load_config(str(tmp_path / "missing.toml"), {})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "socket = "), {})


@pytest.mark.parametrize(
    ("value", "mode"),
    [("0660", 0o660), ("660", 0o660), ("0o600", 0o600), (0o660, 0o660), (0o600, 0o600)],
)
def test_socket_mode_forms(value: int | str, mode: int) -> None:
    assert parse_mode(value) == mode
    assert Config(socket_mode=value).mode == mode


def test_socket_mode_from_toml_string_and_octal_integer(tmp_path: Path) -> None:
    as_string = load_config(write(tmp_path, 'socket_mode = "0660"', "a.toml"), {})
    as_octal = load_config(write(tmp_path, "socket_mode = 0o660", "b.toml"), {})
    assert as_string.mode == as_octal.mode == 0o660
    assert as_string.socket_mode == 0o660  # normalised to an int


def test_example_config_covers_every_option_and_loads(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    mentioned = {line.name for line in example_lines(text)}
    assert mentioned == set(config_options())
    assert load_config(str(EXAMPLE), {}).socket_group == "walletd"
    # Uncommenting every option still gives a valid file.
    uncommented = re.sub(r"^# ([a-z_]+ = )", r"\1", text, flags=re.MULTILINE)
    config = load_config(write(tmp_path, uncommented), {})
    assert config.lockout_seconds == 900.0


# --------------------------------------------------------------------------- flags


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'socket = "/from/file.sock"\nsocket_mode = "0600"\nlog_level = "error"\n'
        'state_dir = "/from/file"\nmax_connections = 7\n',
    )
    args = build_parser().parse_args(
        [
            "--config",
            path,
            "--socket",
            "/from/flag.sock",
            "--socket-mode",
            "660",
            "--log-level",
            "debug",
            "--ephemeral",
        ]
    )
    config = config_from(args)
    assert config.socket == "/from/flag.sock"
    assert config.mode == 0o660
    assert config.log_level == "debug"
    assert config.ephemeral is True
    # Options without a flag, and flags not given, keep the file's values.
    assert config.state_dir == "/from/file"
    assert config.max_connections == 7


def test_flags_without_a_file() -> None:
    args = build_parser().parse_args(["--state-dir", "/tmp/x", "--log-format", "console"])
    config = config_from(args)
    assert config.state_dir == "/tmp/x"
    assert config.log_format == "console"
    assert config.socket == Config().socket


def test_bad_flag_value_names_the_option() -> None:
    with pytest.raises(ConfigError, match="socket_mode"):
        config_from(build_parser().parse_args(["--socket-mode", "777"]))


@pytest.mark.parametrize("command", ["check", "rekey"])
def test_state_options_before_a_subcommand_are_kept(tmp_path: Path, command: str) -> None:
    # `walletd --config F check` must read F just as `walletd check --config F` does.
    path = write(tmp_path, 'state_dir = "/from/file"\n')
    extra = ["--new-master-key-file", "k"] if command == "rekey" else []
    before = build_parser().parse_args(["--config", path, "--state-dir", "/flag", command, *extra])
    after = build_parser().parse_args([command, "--config", path, "--state-dir", "/flag", *extra])
    assert before.config == after.config == path
    assert config_from(before).state_dir == config_from(after).state_dir == "/flag"


# --------------------------------------------------------------------------- the CLI


def _flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings]


@pytest.mark.slow
def test_help_documents_every_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "walletd", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert result.returncode == 0
    parser = build_parser()
    for action in _flags(parser):
        assert action.help, f"{action.option_strings} has no help text"
        for option in action.option_strings:
            assert option in result.stdout, option
    # Subcommands are listed with their purpose; their own flags are documented too.
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        assert name in result.stdout
        for action in _flags(sub):
            assert action.help, f"{name} {action.option_strings} has no help text"


@pytest.mark.slow
def test_bad_config_exits_2_with_the_message_on_stderr(tmp_path: Path) -> None:
    path = write(tmp_path, "max_conections = 10\n")
    result = subprocess.run(
        [sys.executable, "-m", "walletd", "--config", path],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
    )
    assert result.returncode == EXIT_USAGE == 2
    assert result.stdout == ""
    assert "unknown option `max_conections`" in result.stderr
    assert path in result.stderr
    assert not (tmp_path / ".walletd").exists()  # nothing was created
