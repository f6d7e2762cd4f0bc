"""Configuration: one flat TOML file whose keys are the option names, plus command-line flags.

The file is parsed with :mod:`tomllib` into a msgspec Struct, so an unknown key or a value of
the wrong type is a startup error that names it. Flags for the common options override the
file. With neither, walletd runs on the embedded default: state and socket under
``./.walletd/``, which is what ``make run`` uses.
"""

from __future__ import annotations

import tomllib
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

__all__ = [
    "ApprovalsConfig",
    "Config",
    "ConfigError",
    "QuotaConfig",
    "SigningConfig",
    "load_config",
    "parse_mode",
]

PositiveFloat = Annotated[float, Meta(gt=0)]
PositiveInt = Annotated[int, Meta(ge=1)]

#: Options that only take effect at startup; a SIGHUP reload logs that they need a restart.
RESTART_ONLY = frozenset(
    {
        "socket",
        "socket_mode",
        "socket_group",
        "state_dir",
        "ephemeral",
        "master_key_file",
        "require_external_master_key",
        "backup_dir",
        "max_frame_bytes",
        "scrypt_n",
        "scrypt_r",
        "scrypt_p",
        "recovery_concurrency",
        "approvals",
    }
)


class ConfigError(Exception):
    """The configuration cannot be used; the message says which option and why."""


class SigningConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The ``[signing]`` table: the daemon-wide side of the signing policy (issue 15).

    ``default`` is what a policy layer yields when none of its rules matches (``"allow"``
    keeps the behaviour of a walletd without policies); ``policy_group`` names a group whose
    members may write admin layers as admins do; ``timezone`` is the zone of rules' weekly
    hours. All three are live on reload: ``default`` and ``policy_group`` for the next
    request, ``timezone`` by recompiling every stored layer (a reload that cannot is refused).
    """

    default: Literal["allow", "deny"] = "allow"
    policy_group: str | None = None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"[signing] timezone {self.timezone[:64]!r} is not known") from None


class QuotaConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The ``[quotas]`` table: what one non-admin uid may make (admins are exempt).

    The defaults are far above what a person does by hand; they exist so one uid cannot fill
    the disk the others share. All are live on reload and apply to the next request; nothing
    already stored is removed when a quota is lowered, only further growth is refused.
    """

    wallets_per_uid: Annotated[int, Meta(ge=1)] = 1000
    backups_per_wallet: Annotated[int, Meta(ge=1)] = 1000
    backup_bytes_per_wallet: Annotated[int, Meta(ge=64 << 10)] = 8 << 20


class ApprovalsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The ``[approvals]`` table: human approval of ``review`` signatures (issue 16).

    ``approver_group`` names the group whose members (besides admins) may approve or deny;
    nobody may decide a request their own uid made. Pending approvals expire after
    ``pending_ttl_s``; a signing request may wait for its decision at most ``max_wait_s``;
    the caps bound the queue per requesting uid and in total. Leases are bounded in time
    (``lease_max_ttl_s``) and uses (``lease_max_uses``); the defaults apply when an approver
    gives none. Summaries shown to approvers are at most ``summary_max_bytes``. All of it is
    read at startup: pending approvals and leases live in memory and end at a restart.
    """

    approver_group: str | None = None
    pending_ttl_s: Annotated[float, Meta(gt=0, le=86_400)] = 300.0
    max_wait_s: Annotated[float, Meta(ge=0, le=3600)] = 300.0
    max_pending_per_uid: Annotated[int, Meta(ge=1, le=10_000)] = 8
    max_pending: Annotated[int, Meta(ge=1, le=100_000)] = 64
    lease_default_ttl_s: Annotated[float, Meta(gt=0, le=7 * 86_400)] = 600.0
    lease_max_ttl_s: Annotated[float, Meta(gt=0, le=7 * 86_400)] = 3600.0
    lease_default_uses: Annotated[int, Meta(ge=1, le=10**6)] = 100
    lease_max_uses: Annotated[int, Meta(ge=1, le=10**6)] = 1000
    max_leases: Annotated[int, Meta(ge=1, le=100_000)] = 256
    summary_max_bytes: Annotated[int, Meta(ge=512, le=65_536)] = 4096

    def __post_init__(self) -> None:
        if self.max_pending_per_uid > self.max_pending:
            raise ValueError("[approvals] max_pending_per_uid must not exceed max_pending")


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Where clients connect.
    socket: str = ".walletd/walletd.sock"
    socket_mode: int | str = 0o600
    socket_group: str | None = None
    # Who may connect and who is an admin (uid 0 and the daemon's own uid always are).
    allowed_uids: list[int] | None = None
    allowed_groups: list[str] | None = None
    admin_group: str | None = None
    # State.
    state_dir: str = ".walletd"
    ephemeral: bool = False
    master_key_file: str | None = None
    require_external_master_key: bool = False
    backup_dir: str | None = None  # default: <state_dir>/backups
    counter_flush_interval: PositiveFloat = 1.0
    # Limits and timeouts (seconds).
    max_connections: PositiveInt = 256
    # Per-uid connection cap and admin reserve (walletd/server/admission.py).
    max_connections_per_uid: PositiveInt = 64  # admins are exempt
    admin_reserved_connections: PositiveInt = 4  # at least 1 slot whatever max_connections
    max_frame_bytes: Annotated[int, Meta(ge=1024, le=64 << 20)] = 1 << 20
    idle_timeout: PositiveFloat = 300.0
    frame_timeout: PositiveFloat = 10.0
    write_timeout: PositiveFloat = 10.0
    shutdown_grace: Annotated[float, Meta(ge=0)] = 5.0
    # Logging.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    # Default rotation policy (a wallet's owner or an admin may override it per wallet).
    rotation_max_age_days: Annotated[int, Meta(ge=1, le=36500)] = 90
    rotation_max_signatures: Annotated[int, Meta(ge=1, le=10**12)] = 10000
    rotation_auto_rotate: bool = False
    rotation_check_interval: PositiveFloat = 60.0
    # Recovery ritual.
    max_attempts: Annotated[int, Meta(ge=1, le=1000)] = 5
    # A lockout lasts lockout_seconds, doubling with each lockout in a row (a failed attempt
    # after one expired counts on), up to lockout_max_seconds. "until_reset" (TOML has no
    # null) keeps a lock until an admin resets it; in memory that is None.
    lockout_seconds: PositiveFloat | str | None = 900.0
    lockout_max_seconds: PositiveFloat = 86400.0
    scrypt_n: Annotated[int, Meta(ge=2, le=1 << 20)] = 1 << 14
    scrypt_r: Annotated[int, Meta(ge=1, le=64)] = 8
    scrypt_p: Annotated[int, Meta(ge=1, le=16)] = 1
    recovery_concurrency: Annotated[int, Meta(ge=1, le=64)] = 2
    # Signing policy: the [signing] table (SigningConfig).
    signing: SigningConfig = msgspec.field(default_factory=SigningConfig)
    # Quotas: the [quotas] table (QuotaConfig).
    quotas: QuotaConfig = msgspec.field(default_factory=QuotaConfig)
    # Human approval: the [approvals] table (ApprovalsConfig).
    approvals: ApprovalsConfig = msgspec.field(default_factory=ApprovalsConfig)

    def __post_init__(self) -> None:
        self.socket_mode = parse_mode(self.socket_mode)
        if isinstance(self.lockout_seconds, str):
            if self.lockout_seconds != "until_reset":
                raise ValueError('lockout_seconds must be a number of seconds or "until_reset"')
            self.lockout_seconds = None
        if self.scrypt_n & (self.scrypt_n - 1):
            raise ValueError("scrypt_n must be a power of two")

    @property
    def mode(self) -> int:
        assert isinstance(self.socket_mode, int)
        return self.socket_mode

    @property
    def lockout_duration(self) -> float | None:
        """The first lockout's length in seconds; None: until an admin resets it."""
        assert not isinstance(self.lockout_seconds, str)
        return self.lockout_seconds

    @property
    def backups_path(self) -> Path:
        return Path(self.backup_dir) if self.backup_dir else Path(self.state_dir) / "backups"


def parse_mode(value: int | str) -> int:
    """A socket mode from TOML (``0o660`` or ``"0660"``) or a flag (``660``, ``0660``)."""
    if isinstance(value, str):
        try:
            value = int(value, 8)
        except ValueError:
            raise ValueError(f"socket_mode {value!r} is not an octal mode such as 0660") from None
    if not 0 <= value <= 0o777:
        # Most likely `socket_mode = 660` in TOML, where a bare number is decimal.
        raise ValueError(f'socket_mode {value} is not a file mode; in TOML write 0o660 or "0660"')
    if value & 0o111:
        raise ValueError(f"socket_mode {value:04o} must be rw bits only, such as 0600 or 0660")
    if not value & 0o600 == 0o600:
        raise ValueError(f"socket_mode {value:04o} must let the daemon's own user read and write")
    return value


def load_config(path: str | None, overrides: dict[str, Any]) -> Config:
    """The file at ``path`` (when given) with ``overrides`` (flags that were set) on top."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                values = tomllib.load(f)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return msgspec.convert(values, Config)
    except (msgspec.ValidationError, ValueError) as exc:
        where = f"config file {path}" if path else "configuration"
        raise ConfigError(f"{where}: {_explain(exc)}") from exc


def _explain(exc: Exception) -> str:
    # msgspec says "at `$.max_connections`"; the option is what a person looks for.
    return (
        str(exc)
        .replace("`$.", "option `")
        .replace("Object contains unknown field", "unknown option")
    )
