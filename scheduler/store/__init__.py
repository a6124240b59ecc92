"""SQL storage: tables, the stores over them and the schema migrations that create them.

Public surface: :class:`SqlStore`, :func:`create_store_engine`, and
:mod:`scheduler.store.migrate` (``upgrade``, ``downgrade``).
"""

from scheduler.store.engine import create_store_engine
from scheduler.store.sql import SqlStore

__all__ = ["SqlStore", "create_store_engine"]
