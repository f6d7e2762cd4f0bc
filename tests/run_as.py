"""Child process for tests: import the client, drop to UID/GID, run a function or CODE.

Usage: run_as.py UID GID TARGET [ARGS...]. A TARGET of the form ``module:function`` (say
``tests.children:authz_matrix``) is imported first and called as ``function(*ARGS)``; its
return value is printed as JSON. Any other TARGET is CODE, run with ``WalletClient``,
``errors`` and ``ARGS`` in scope, which sets ``result`` (printed as JSON). Privileges are
dropped with setgroups/setgid/setuid, which is irreversible, before either runs.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys

import wallet_client
import wallet_client.walletctl  # imported before dropping privileges, see above
from wallet_client import AsyncWalletClient, RitualStep, WalletClient, hash_response
from wallet_client import errors as errors

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The repository root, so that ``tests.children`` imports as the package module it is.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_FUNCTION = re.compile(r"[\w.]+:\w+")


def main() -> None:
    uid, gid, code, *args = sys.argv[1:]
    function = None
    if _FUNCTION.fullmatch(code):
        module, name = code.split(":")
        function = getattr(importlib.import_module(module), name)  # as root, see above
    os.setgroups([])
    os.setgid(int(gid))
    os.setuid(int(uid))
    assert os.getuid() == int(uid)
    assert os.geteuid() == int(uid)
    if function is not None:
        print(json.dumps(function(*args)))
        return
    scope = {
        "WalletClient": WalletClient,
        "AsyncWalletClient": AsyncWalletClient,
        "RitualStep": RitualStep,
        "hash_response": hash_response,
        "errors": errors,
        "wallet_client": wallet_client,
        "ARGS": args,
        "result": None,
    }
    exec(code, scope)  # test code written by the test itself
    print(json.dumps(scope["result"]))


if __name__ == "__main__":
    main()
