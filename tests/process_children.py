"""Children that test the process and the socket rather than the daemon's answers.

Run under another uid by :func:`tests.support.call_as` (tests/run_as.py): who the child is
after the drop, a ptrace attach (tests/test_hardening.py) and a listener standing in for
walletd (tests/test_server_uid.py). Only the standard library is imported, at the top: the
child imports this module as root and cannot read the interpreter's files after the drop.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket

# <sys/ptrace.h>
PTRACE_ATTACH = 16
PTRACE_DETACH = 17


def identity() -> dict[str, object]:
    """The child's real and effective uid and gid, and its supplementary groups."""
    return {
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "egid": os.getegid(),
        "groups": os.getgroups(),
    }


def ptrace_attach(pid: str) -> dict[str, object]:
    """Try to ptrace-attach to ``pid`` (detaching again when it worked): whether it attached,
    and errno as the attach left it (EPERM, 1, when it was refused)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    target = int(pid)
    rc = libc.ptrace(PTRACE_ATTACH, target, None, None)
    err = ctypes.get_errno()
    if rc == 0:
        os.waitpid(target, 0)
        libc.ptrace(PTRACE_DETACH, target, None, None)
    return {"attached": rc == 0, "errno": err}


def bytes_sent_to_a_stand_in(path: str) -> int:
    """Listen at ``path``, let the first connection (a readiness probe) in and close it, then
    return how many bytes the next connection sent before it closed (its first recv: 0 means
    nothing was sent)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(4)
        probe, _ = listener.accept()
        probe.close()
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(20)
            return len(conn.recv(65536))
