"""walletd: a local signing daemon that holds wallets for AI agents (see README.md).

# General layout:
#
# One request, socket to response, in the order to read it (six files):
#
#   1. server/connection.py   bytes in: frames decoded in place (walletd_wire.framing), each
#                             payload handed to the dispatcher, answers framed and sent. The
#                             one marked fast path.
#   2. ops/dispatch.py        payload -> typed request (walletd_wire.requests, msgspec) -> the
#                             op table -> the handler; a RequestError becomes an error response
#   3. ops/signing.py         sign_message: ctx.wallet_for (the ownership rule), the count
#                             check, the signature; rotation-policy work when it falls due
#   4. ops/context.py         what every op shares: wallet_for, audit entries, commit
#   5. model/wallets.py       the wallet: key, counts, effective rotation policy
#   6. model/signer.py        HMAC-SHA256 from precomputed pad states (keys.py: Ed25519 via
#                             ed25519_key.py, secp256k1)
#
# The layers, each importing only those before it (tests/test_layers.py):
#
#   model/    pure values and rules: wallets and keys, signers, the audit chain's hashing,
#             ritual hashing, validation, peers and actors, the signing-policy model
#             (policy_*.py, rate_window.py). No trio, sqlite3 or socket.
#   storage/  durable state: the SQLite store, schema and migrations, every SQL statement
#             (sql.py), the state directory, sealing under the master key, the loader
#             (checks first, then load), offline check and rekey
#   ops/      one module per operation family (wallets, signing, rotation, backups, audit,
#             recovery, policy), the context they share, the dispatcher with its op table,
#             and daemon.py, which assembles them. The signing policy on the sign paths:
#             policy_state.py (what is held), policy_gate.py (admit, charge, refuse);
#             batch_threads.py signs large public-key batches on worker threads
#   server/   the listener, connections, peer credentials and the gatekeeper, sd_notify,
#             process hardening, and serve.py: accept loop, reaper, flusher, signals
#   main.py   the command line (serve, check, rekey); config.py, logs.py and errors.py (the
#             exception tree) are leaves every layer may use
#
# The wire contract is its own package, walletd_wire, shared with the clients
# (wallet_client); neither the daemon nor the wire package imports a client.
"""

from __future__ import annotations

__version__ = "0.1.0"
