"""``log-ingest run`` with the audit chain switched off: the bench's baseline for its cost.

Not the product: only ``log-ingest bench`` starts this, so that the worker's figures
with and without the chain come from one run on one backlog. The rows are the same;
no ``audit_chain`` entries are written.
"""

from __future__ import annotations

from worker.audit.heads import Pending
from worker.audit.ingest import AuditChain
from worker.cli import main
from worker.records import Accepted
from worker.write.connection import Connection


async def _chain_nothing(
    _self: AuditChain, _connection: Connection, _pending: Pending, _events: list[Accepted]
) -> None:
    """The sink's chain step, skipped."""


if __name__ == "__main__":
    AuditChain.append = _chain_nothing  # type: ignore[method-assign,assignment]
    main()
