"""``codomyrmex.wallet.exceptions``, as walletd raises them.

The wallet errors are the client's own classes (:mod:`wallet_client.errors`), so an
``except WalletNotFoundError`` written for Codomyrmex catches what the daemon reports. They take
Codomyrmex's constructor forms; ``code`` is walletd's wire code (``"not_found"``, not
``"WALLET_NOT_FOUND"``) unless one is given, see docs/MIGRATING.md.

The on-chain errors (funds, transactions, contracts, gas) are never raised by walletd, which
signs and does not transact; they are here so that code importing them keeps importing, with
Codomyrmex's constructors, attributes and codes, as :class:`WalletError` subclasses.
"""

from __future__ import annotations

from ..errors import (
    BackupIntegrityError,
    DaemonUnavailableError,
    InvalidArgumentError,
    PermissionDeniedError,
    ProtocolError,
    RitualError,
    RitualLockedError,
    StorageError,
    WalletError,
    WalletExistsError,
    WalletKeyError,
    WalletNotFoundError,
)

__all__ = [
    "BackupIntegrityError",
    "ContractError",
    "DaemonUnavailableError",
    "GasEstimationError",
    "InsufficientFundsError",
    "InvalidArgumentError",
    "PermissionDeniedError",
    "ProtocolError",
    "RitualError",
    "RitualLockedError",
    "StorageError",
    "TransactionError",
    "WalletError",
    "WalletExistsError",
    "WalletKeyError",
    "WalletNotFoundError",
]


class InsufficientFundsError(WalletError):
    """Not enough balance for an operation (never raised by walletd)."""

    code = "INSUFFICIENT_FUNDS"

    def __init__(self, required: float = 0, available: float = 0, currency: str = "ETH") -> None:
        self.required = required
        self.available = available
        self.currency = currency
        super().__init__(
            f"Insufficient {currency}: need {required}, have {available}",
            details={"required": required, "available": available, "currency": currency},
        )


class TransactionError(WalletError):
    """A transaction could not be built or submitted (never raised by walletd)."""

    code = "TX_ERROR"

    def __init__(
        self, message: str = "Transaction failed", tx_hash: str = "", reason: str = ""
    ) -> None:
        self.tx_hash = tx_hash
        self.reason = reason
        super().__init__(message, details={"tx_hash": tx_hash, "reason": reason})


class ContractError(WalletError):
    """A smart-contract interaction failed (never raised by walletd)."""

    code = "CONTRACT_ERROR"

    def __init__(
        self, message: str = "Contract error", contract_address: str = "", function_name: str = ""
    ) -> None:
        self.contract_address = contract_address
        self.function_name = function_name
        super().__init__(
            message,
            details={"contract_address": contract_address, "function_name": function_name},
        )


class GasEstimationError(WalletError):
    """Gas estimation failed (never raised by walletd)."""

    code = "GAS_ESTIMATION_ERROR"
    default_message = "Gas estimation failed"
