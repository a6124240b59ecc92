"""The SQL TokenStore: API tokens, kept only as hashes."""

from __future__ import annotations

import sqlalchemy as sa

from scheduler.domain import ApiToken, GreenlightError
from scheduler.store.engine import SqlAdapter, read_transaction, write_transaction
from scheduler.store.rows import token_from_row, token_values
from scheduler.store.tables import api_tokens


class SqlTokenStore(SqlAdapter):
    """TokenStore over SQLAlchemy Core."""

    def add_token(self, token: ApiToken) -> None:
        """Store ``token``. Raises GreenlightError if its id or hash is already stored."""
        try:
            with write_transaction(self._engine) as conn:
                conn.execute(sa.insert(api_tokens).values(token_values(token)))
        except sa.exc.IntegrityError as e:
            raise GreenlightError(f"token {token.id!r} (or its hash) already exists") from e

    def token_by_hash(self, token_hash: str) -> ApiToken | None:
        """The token with this SHA-256 hex hash, revoked or expired included (the caller
        judges); None when there is none."""
        query = sa.select(api_tokens).where(api_tokens.c.token_hash == token_hash)
        with read_transaction(self._engine) as conn:
            row = conn.execute(query).mappings().first()
        return token_from_row(row) if row is not None else None

    def revoke_token(self, token_id: str) -> None:
        """Mark the token revoked; an unknown id changes nothing."""
        with write_transaction(self._engine) as conn:
            conn.execute(
                sa.update(api_tokens).where(api_tokens.c.id == token_id).values(revoked=True)
            )

    def list_tokens(self, tenant: str | None = None) -> list[ApiToken]:
        """Every token (of ``tenant`` when given), oldest first."""
        query = sa.select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id)
        if tenant is not None:
            query = query.where(api_tokens.c.tenant == tenant)
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query).mappings().all()
        return [token_from_row(row) for row in rows]
