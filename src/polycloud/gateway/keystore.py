"""`StoreKeySource`: inference keys and their monthly totals from the state store, counts back to it."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from polycloud.errors import TransientError
from polycloud.exchange import KeyGrant
from polycloud.state.repositories import KeyRepository


class StoreKeySource:
    """A `KeySource` over a `polycloud.state.Store` (called from the gateway's worker thread)."""

    def __init__(self, store: KeyRepository) -> None:
        self._store = store

    def snapshot(self) -> list[KeyGrant]:
        """Every key with its limits and this month's total.

        Raises:
            TransientError: The database is unreachable, busy or answers with an error.
        """
        try:
            grants = self._store.key_grants()
        except SQLAlchemyError as e:
            raise TransientError(f"cannot read inference keys from the state store: {e}") from e
        return list(grants)

    def flush(self, month: str, counts: dict[int, int], tokens: dict[int, int]) -> None:
        """Add `counts` (requests per key id) and `tokens` (LLM tokens per key id) to `month`'s totals.

        Raises:
            TransientError: The database is unreachable, busy or answers with an error.
        """
        try:
            self._store.add_key_usage(month, counts, tokens)
        except SQLAlchemyError as e:
            raise TransientError(f"cannot write inference key usage to the state store: {e}") from e
