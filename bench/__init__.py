"""walletd benchmarks, run by ``make bench`` (``python -m bench``); ``make bench-check`` gates.

Read in this order: ``scenarios`` (the registry: servers, and rows with their subject, anchor,
other legs and goals; add a row here), ``run`` (start the lineup, interleave every leg of every
scenario per repetition), ``harness`` (one measurement), ``client`` (the load generator, in
forked worker processes on blocking sockets), ``wire`` (pre-encoded request frames for
walletd's protocol and ssh-agent's, answer checks), ``servers`` (start/probe/stop, /proc CPU),
``references`` (the independent servers of ``../shared/bench-references``),
``reference_server`` (our own ceiling: walletd's I/O design, bare), ``results`` (paired
per-repetition ratios, medians), ``report`` (target checks, the table), ``chart`` (the SVG of
headline ratios), ``gate`` (the baseline and the regression check), ``startup`` (startup to
ready with many wallets) and ``__main__`` (the command line, JSON, notes). Rows that need
wallets or a server of their own: ``policy_rows`` (signing policies, on wallets of the bench's
walletd process), ``approval_rows`` (review, leases, the approve round trip); rows that
report latency only: ``latency`` (the kind) and ``latency_rows`` (the registry: the approval
round trip, ``mcp_stdio``).
"""
