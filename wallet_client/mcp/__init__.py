"""walletd-mcp: walletd's tools for LLM agents over the Model Context Protocol (issue 17).

An optional extra (``pip install 'walletd[mcp]'``): nothing else in wallet_client imports
this package, and it imports nothing from the daemon. It is one more unprivileged client of
walletd: no key, seed or token in its configuration, because the kernel tells the daemon
which uid it runs as, and the daemon decides ownership, policy and approvals.

General layout (read in this order):

- :mod:`.schemas`: what a model sees (names, descriptions, JSON Schemas, hints);
- :mod:`.tools`: what each tool does, through the trio client;
- :mod:`.approvals`: adapters to the signing policy and approvals;
- :mod:`.failures`: tool errors ``{code, message, retryable, hint}``;
- :mod:`.server`: the SDK's low-level server, argument validation, stdio;
- :mod:`.main`: the ``walletd-mcp`` command.
"""
