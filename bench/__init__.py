"""walletd benchmarks, run by ``make bench`` (``python -m bench``).

Modules: ``reference_server`` (the ceiling: bare trio + msgspec + HMAC), ``wire`` (pre-encoded
request frames for walletd's protocol and ssh-agent's), ``client`` (the load generator, in
forked worker processes on blocking sockets), ``servers`` (start/probe/stop, /proc CPU),
``harness`` (one measurement), ``report`` (medians, targets, table), ``startup`` (startup to
ready with many wallets) and ``__main__`` (the interleaved run).
"""
