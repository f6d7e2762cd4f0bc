"""walletctl's checks before it acts: who serves the socket, and "really delete?".

Both are about not doing something irreversible by mistake: sending a message to sign (or a
ritual answer's hash) to a listener that is not walletd, and deleting a key a person did not
mean to delete.
"""

from __future__ import annotations

import argparse
import pwd
import sys

from .calls import DEFAULT_SOCKET
from .cli_io import printable

__all__ = ["DAEMON_USER", "confirm_delete", "expected_server_uid", "uid_or_user"]


def uid_or_user(value: str) -> int:
    """``--expect-uid``: a number, or a user name from the password database."""
    if value.isdigit():
        return int(value)
    try:
        return pwd.getpwnam(value).pw_uid
    except KeyError:
        raise argparse.ArgumentTypeError(f"no user {value!r}") from None


#: The user the packaged unit runs walletd as (systemd/walletd.service: User=walletd).
DAEMON_USER = "walletd"


def expected_server_uid(given: int | None, socket_path: str) -> int | None:
    """The uid walletctl requires of the socket's server, when it is known.

    ``--expect-uid`` when given; for the system socket, the uid of the ``walletd`` user the
    packaged unit runs as (when that user exists); otherwise unknown, and not checked, as for
    a development daemon under ``./.walletd/`` that runs as whoever started it.
    """
    if given is not None:
        return given
    if socket_path == DEFAULT_SOCKET:
        try:
            return pwd.getpwnam(DAEMON_USER).pw_uid
        except KeyError:
            return None
    return None


def confirm_delete(user: str, *, assume_yes: bool) -> bool:
    """Whether to go on deleting ``user``'s wallet.

    A deleted key cannot be brought back. A person at a terminal confirms; a script (stdin not
    a terminal) proceeds as it always did, and ``--yes`` skips the question.
    """
    if assume_yes or not sys.stdin.isatty():
        return True
    sys.stderr.write(
        f"Delete the wallet of {printable(user)}, its key and its ritual? "
        "This cannot be undone. [y/N] "
    )
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")
