from __future__ import annotations
from scheduler.planning.capacity import CapacityLedger
from scheduler.planning.placement import Assignment
from scheduler.planning.policies import Books, CurrentPlans
from scheduler.planning.table import JobTable

def improve(table: JobTable, books: Books, current: CurrentPlans, ledger: CapacityLedger, a: Assignment, budget_s: float) -> Assignment:
    return a

def guard_run_now(table: JobTable, books: Books, ledger: CapacityLedger, a: Assignment) -> None:
    return None
