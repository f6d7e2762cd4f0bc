"""Process hardening at start, as ssh-agent does: no core dumps, not ptrace-able, not dumpable."""

from __future__ import annotations

import ctypes
import resource

PR_SET_DUMPABLE = 4
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
MMAP_THRESHOLD_BYTES = 128 * 1024


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
    _unmap_large_blocks(libc)


def _unmap_large_blocks(libc: ctypes.CDLL) -> None:
    """Make glibc give large blocks (scrypt's 16 MiB work areas) back to the kernel on free.

    glibc raises its mmap threshold dynamically, after which large freed blocks stay in the
    worker threads' arenas: a flood of recovery attempts would leave their RSS behind for
    good, and the freed memory held values derived from ritual answers. A fixed threshold
    keeps every large block a private mapping that free() unmaps. Not glibc: nothing to do.
    """
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
