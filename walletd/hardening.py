"""Process hardening at start, as ssh-agent does: no core dumps, not ptrace-able, not dumpable."""

from __future__ import annotations

import ctypes
import resource

PR_SET_DUMPABLE = 4


def harden_process() -> None:
    """Disable core dumps and mark the process non-dumpable.

    A non-dumpable process cannot be ptrace-attached by other processes of the same uid and its
    /proc/<pid>/ files (mem, environ, ...) belong to root. Raises OSError when the kernel refuses.
    """
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # CDLL(None) is the process's own symbol table, where libc's prctl is: no ldconfig child.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, "prctl(PR_SET_DUMPABLE, 0) failed")
