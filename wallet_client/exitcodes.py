"""walletctl's exit codes, in one place, so scripts can rely on them.

====  ===========  =====================================================================
code  name         meaning
====  ===========  =====================================================================
0     OK           the command did what was asked (or the answer was "yes"/"valid")
1     NO           a definite "no": an invalid signature, a stale or tampered backup, a
                   broken audit chain, a recovery ritual answered wrongly
2     USAGE        the command line (or a file or answer it names) could not be used
3     UNREACHABLE  walletd could not be reached: no socket, refused, timed out, lost
4     REFUSED      walletd refused the request (not found, forbidden, locked, ...); the
                   error code and message are printed on stderr
130   INTERRUPTED  stopped with Ctrl-C (128 + SIGINT, as shells report it)
141   BROKEN_PIPE  the reader of stdout went away (128 + SIGPIPE, as for ``| head``)
====  ===========  =====================================================================

A "no" is only ever given by the commands that ask a yes/no question (``verify``,
``backup verify``, ``audit verify``, ``recover``); a "false" field in a report such as
``rotation-status`` is data, not a failure.
"""

from __future__ import annotations

import enum

__all__ = ["ExitCode"]


class ExitCode(enum.IntEnum):
    OK = 0
    NO = 1
    USAGE = 2
    UNREACHABLE = 3
    REFUSED = 4
    INTERRUPTED = 130
    BROKEN_PIPE = 141
