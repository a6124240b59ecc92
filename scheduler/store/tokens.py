"""The SQL TokenStore: API tokens, kept only as hashes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import sqlalchemy as sa

from scheduler.domain import ApiToken, GreenlightError, Role
from scheduler.store.engine import SqlAdapter, read_transaction, write_transaction
from scheduler.store.rows import token_from_row, token_values
from scheduler.store.tables import api_tokens

_CHUNK = 5_000


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

    def get_token(self, token_id: str) -> ApiToken | None:
        """The token with this id, or None."""
        query = sa.select(api_tokens).where(api_tokens.c.id == token_id)
        with read_transaction(self._engine) as conn:
            row = conn.execute(query).mappings().first()
        return token_from_row(row) if row is not None else None

    def consume_token(self, token_id: str, now: datetime) -> bool:
        """Revoke the token if it is live (not revoked, not expired at ``now``), atomically:
        True for the one caller that did, False for every other (a one-time credential)."""
        live = sa.or_(api_tokens.c.expires_at.is_(None), api_tokens.c.expires_at > now)
        update = (
            sa.update(api_tokens)
            .where(api_tokens.c.id == token_id, api_tokens.c.revoked.is_(False), live)
            .values(revoked=True)
            .returning(api_tokens.c.id)
        )
        with write_transaction(self._engine) as conn:
            return conn.execute(update).first() is not None

    def runners_started(self, attempts: Mapping[str, int]) -> set[str]:
        """The jobs among ``attempts`` (job id -> attempt) whose runner has exchanged that
        attempt's bootstrap credential: an attempt token exists, so the run has started."""
        if not attempts:
            return set()
        ids = list(attempts)
        started: set[str] = set()
        with read_transaction(self._engine) as conn:
            for i in range(0, len(ids), _CHUNK):
                query = sa.select(api_tokens.c.job_id, api_tokens.c.attempt).where(
                    api_tokens.c.job_id.in_(ids[i : i + _CHUNK]),
                    api_tokens.c.role == Role.JOB.value,
                )
                started.update(
                    row.job_id for row in conn.execute(query) if attempts[row.job_id] == row.attempt
                )
        return started

    def revoke_attempt_tokens(self, job_id: str, attempt: int | None) -> int:
        """Revoke every token of one job attempt (all of the job's when ``attempt`` is None);
        returns how many were live."""
        query = sa.update(api_tokens).where(
            api_tokens.c.job_id == job_id, api_tokens.c.revoked.is_(False)
        )
        if attempt is not None:
            query = query.where(api_tokens.c.attempt == attempt)
        with write_transaction(self._engine) as conn:
            return len(conn.execute(query.values(revoked=True).returning(api_tokens.c.id)).all())

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
