"""Start walletd as another uid (tests only): import first, drop privileges, then serve.

Usage: run_daemon_as.py UID GID [--idle] -- WALLETD_ARGS...

The interpreter lives where other uids cannot read it, so this process starts as root, imports
walletd, and drops to UID/GID for good. Changing uid makes the kernel mark a process
non-dumpable on its own; to test walletd's *own* hardening we mark it dumpable again, exactly
as a freshly exec'd process of that uid would be, before walletd starts. With ``--idle`` it
does not start walletd at all and just waits for stdin to close: the control case.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import walletd.main
import walletd.server.hardening
import walletd.server.serve
import walletd.storage.loader  # imported before the uid change, see above

PR_SET_DUMPABLE = 4


def main() -> int:
    uid, gid, *rest = sys.argv[1:]
    idle = rest[:1] == ["--idle"]
    args = rest[rest.index("--") + 1 :] if "--" in rest else []
    os.setgroups([])
    os.setgid(int(gid))
    os.setuid(int(uid))
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl")
    if idle:
        print("ready", flush=True)
        sys.stdin.read()
        return 0
    return walletd.main.main(args)


if __name__ == "__main__":
    sys.exit(main())
