"""Ownership that holds across waits: a claim on a wallet, re-checked after every await.

:meth:`Context.wallet_for` answers "may this peer use this wallet *now*". An operation that
then waits (for the writer lock, a commit, scrypt, a rotation, a store read) must not act on
that answer afterwards: meanwhile the wallet may have been deleted (and perhaps created again
under the same user id, by another uid) or recovered by another uid, which changes its owner
in place on the same object. So such an operation takes a :class:`Claim` before its first
wait and calls :meth:`Claim.recheck` after each one.

A claim records the wallet object and its *tenure*, a counter that every change of hands
(a successful recovery, whoever makes it) increases. Re-checking asks three things: the user
id still names the same wallet object (not deleted, not re-created), the tenure is the one the
claim was taken under (no recovery happened meanwhile, even one by an admin or by the same
uid), and the peer may still use it. The second is what makes a recovery invalidate in-flight
work of the old owner even when that owner is an admin, whom the third would let through.
"""

from __future__ import annotations

from dataclasses import dataclass

from walletd.errors import RequestError, forbidden, not_found
from walletd.model.peer import Peer
from walletd.model.wallets import Wallet, WalletBook

__all__ = ["Claim", "hand_over"]


@dataclass(frozen=True, slots=True)
class Claim:
    """``peer``'s right to use ``wallet``, as it stood when the claim was taken."""

    peer: Peer
    wallet: Wallet
    tenure: int

    @classmethod
    def of(cls, peer: Peer, wallet: Wallet) -> Claim:
        """A claim on a wallet ``peer`` was just found to be allowed to use."""
        return cls(peer, wallet, wallet.tenure)

    def problem(self, book: WalletBook) -> RequestError | None:
        """Why the claim no longer holds, or None while it does."""
        wallet = self.wallet
        if book.get(wallet.user_id) is not wallet:
            return not_found(f"the wallet of user {wallet.user_id!r} was deleted meanwhile")
        if wallet.tenure != self.tenure or not self.peer.may_use(wallet.owner_uid):
            return forbidden(
                f"the wallet of user {wallet.user_id!r} changed hands (it was recovered) "
                "while this request waited; nothing more was done for it"
            )
        return None

    def recheck(self, book: WalletBook) -> Wallet:
        """The wallet, if the claim still holds; otherwise the RequestError saying why."""
        problem = self.problem(book)
        if problem is not None:
            raise problem
        return self.wallet


def hand_over(wallet: Wallet, new_owner: int) -> None:
    """Give ``wallet`` to ``new_owner`` (a committed recovery): every earlier claim lapses."""
    wallet.owner_uid = new_owner
    wallet.tenure += 1
