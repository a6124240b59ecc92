from __future__ import annotations
from scheduler.planning.capacity import CapacityLedger
from scheduler.planning.placement import Assignment
from scheduler.planning.policies import Books
from scheduler.planning.table import JobTable

def split_interruptible(table: JobTable, books: Books, ledger: CapacityLedger, a: Assignment) -> None:
    return None
