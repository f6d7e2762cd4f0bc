"""Adversarial verification of walletd: model-based stateful tests, protocol fuzzing, load with
hostile clients, fault injection and security edges.

Every module runs in a bounded form in the normal suite and long under ``WALLETD_FUZZ=long``
(``make fuzz``) or ``WALLETD_SOAK=long`` (``make soak``). Figures the tests record are printed
as one table at the end of the session (see conftest.py).
"""
