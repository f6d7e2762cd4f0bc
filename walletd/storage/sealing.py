"""Keys at rest: AES-256-GCM under a 32-byte master key, bound to their wallet.

Each wallet key is stored as ``nonce (12 bytes) || ciphertext+tag``, sealed with associated
data naming its user id, address, key type and version, so a ciphertext copied onto another
row fails to unseal.
The master key comes from, in order: ``$CREDENTIALS_DIRECTORY/master-key`` (systemd
credentials), ``master_key_file`` in the config, or a key generated on first start into
``<state_dir>/master.key`` (written whole or not at all, 0600 from creation; refused later if
others can read it). The audit-chain and backup-tag keys are random sub-keys stored
sealed under the master key (see :mod:`walletd.boot`), so a rekey does not invalidate them.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from walletd.errors import StartupError

__all__ = [
    "MasterKey",
    "Sealer",
    "UnsealError",
    "check_key_file",
    "legacy_wallet_aad",
    "load_master_key",
    "wallet_aad",
]

KEY_BYTES = 32
NONCE_BYTES = 12
CREDENTIAL_NAME = "master-key"
GENERATED_KEY_NAME = "master.key"
_CHECK_PLAINTEXT = b"walletd master key check v1"
_CHECK_AAD = b"walletd:check:v1"


class UnsealError(Exception):
    """A sealed value failed authentication: wrong master key, tampering, or a moved row."""


class MasterKey:
    """The 32 key bytes and where they came from (``source`` is safe to log; the key is not)."""

    __slots__ = ("_key", "generated", "source")

    def __init__(self, key: bytes, source: str, *, generated: bool = False) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("a master key is 32 bytes")
        self._key = key
        self.source = source
        self.generated = generated

    def __repr__(self) -> str:
        return f"MasterKey(source={self.source!r})"

    def sealer(self) -> Sealer:
        return Sealer(self._key)


def wallet_aad(
    user_id: str, address: str, key_type: str = "hmac-sha256", version: int = 1
) -> bytes:
    """The associated data of a wallet key: its user id, address, key type and version.

    Sealing the type and version in means a sealed key copied onto a row of another type (an
    HMAC key read as an Ed25519 seed, say) or another version fails to unseal. The fields are
    NUL-separated; none of them can hold a NUL (user ids are validated, addresses and types
    are ours), so the encoding is unambiguous.
    """
    return b"\x00".join(
        (
            b"walletd:wallet-key:v2",
            user_id.encode("utf-8", "surrogatepass"),
            address.encode(),
            key_type.encode(),
            str(int(version)).encode(),
        )
    )


def legacy_wallet_aad(user_id: str, address: str) -> bytes:
    """The first format (seal_format 1), naming neither key type nor version.

    Keys sealed before key types existed carry it. The loader accepts it only on a row that
    is ``hmac-sha256`` at version 1, which every such key is: so the format cannot be used to
    move a key to another type or version (a v1 blob on any other row is refused before it is
    unsealed, and a v2 blob fails to unseal under v1 data). Rotation and ``rekey`` re-seal in
    the current format.
    """
    return (
        b"walletd:wallet-key:v1\x00"
        + user_id.encode("utf-8", "surrogatepass")
        + b"\x00"
        + address.encode()
    )


class Sealer:
    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def unseal(self, sealed: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError) as exc:
            raise UnsealError("sealed value failed authentication") from exc

    def check_value(self) -> bytes:
        """A sealed constant stored beside the data, so a wrong master key is caught at start."""
        return self.seal(_CHECK_PLAINTEXT, _CHECK_AAD)

    def matches(self, check_value: bytes) -> bool:
        try:
            return self.unseal(check_value, _CHECK_AAD) == _CHECK_PLAINTEXT
        except UnsealError:
            return False


def read_key_file(path: Path) -> bytes:
    """32 raw bytes, or 64 hex characters (surrounding whitespace ignored)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StartupError(f"cannot read master key {path}: {exc.strerror}") from exc
    if len(data) == KEY_BYTES:
        return data
    text = data.strip()
    if len(text) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    raise StartupError(
        f"master key {path} must hold 32 raw bytes or 64 hex characters "
        f"(it holds {len(data)} bytes); create one with: head -c 32 /dev/urandom > FILE"
    )


def load_master_key(
    state_dir: Path, master_key_file: str | None, *, require_external: bool, may_generate: bool
) -> MasterKey:
    """The master key from the first source that has one (see the module docstring).

    ``may_generate`` is False when the state already exists: a missing key then means the data
    cannot be opened, and generating a new one would only hide that.
    """
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials:
        candidate = Path(credentials) / CREDENTIAL_NAME
        if candidate.exists():
            return MasterKey(read_key_file(candidate), f"credential {candidate}")
    if master_key_file:
        check_key_file(Path(master_key_file))
        return MasterKey(read_key_file(Path(master_key_file)), f"file {master_key_file}")
    generated = state_dir / GENERATED_KEY_NAME
    if generated.exists():
        if require_external:
            raise StartupError(
                "require_external_master_key is set but the only master key is the generated "
                f"{generated}; provide the credential {CREDENTIAL_NAME} or master_key_file"
            )
        _check_generated_key_file(generated)
        return MasterKey(read_key_file(generated), f"generated file {generated}", generated=True)
    if require_external:
        raise StartupError(
            "no master key: require_external_master_key is set, and neither "
            f"$CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME} nor master_key_file provides one"
        )
    if not may_generate:
        raise StartupError(
            f"the state in {state_dir} exists but its master key is missing: expected "
            f"$CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME}, master_key_file or {generated}. "
            "walletd changed nothing; start it with the key this state was sealed with"
        )
    key = secrets.token_bytes(KEY_BYTES)
    try:
        _write_new_key_file(generated, key)
    except OSError as exc:
        raise StartupError(f"cannot write a new master key to {generated}: {exc}") from exc
    return MasterKey(key, f"generated file {generated}", generated=True)


def check_key_file(path: Path) -> None:
    """Refuse a configured key file that another uid could have written or can read.

    It must belong to walletd's uid or to root (an operator's key installed by root is fine;
    one owned by another user is that user's to swap), and no group or other bit may be set:
    whoever reads it can unseal every key, whoever can replace it can make walletd seal new
    keys under a key they know. A missing file is left to :func:`read_key_file`, which says so.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StartupError(f"cannot read master key {path}: {exc.strerror}") from exc
    uid = os.getuid()
    if st.st_uid not in (uid, 0):
        raise StartupError(
            f"master key {path} is owned by uid {st.st_uid}, neither walletd's uid {uid} nor "
            f"root; another user could replace it. Fix it with: chown {uid} {path}"
        )
    if st.st_mode & 0o077:
        raise StartupError(
            f"master key {path} is readable or writable by group or others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}); anyone who reads it can unseal every key. "
            f"Fix it with: chmod 600 {path}"
        )


def _check_generated_key_file(path: Path) -> None:
    """Refuse a generated key others can read or that is not ours, as ssh refuses a private key."""
    st = path.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise StartupError(
            f"master key {path} is readable by others or not owned by walletd's uid (mode "
            f"{stat.S_IMODE(st.st_mode):04o}, uid {st.st_uid}); fix it with: "
            f"chown {os.getuid()} {path} && chmod 600 {path}"
        )


def _write_new_key_file(path: Path, key: bytes) -> None:
    """Write ``key`` to ``path`` (0600 from creation) so that it exists whole or not at all."""
    temp = path.with_name(path.name + ".tmp")
    temp.unlink(missing_ok=True)  # left by a crash during an earlier first start
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)  # the rename must survive a crash before the database refers to it
    finally:
        os.close(dir_fd)
