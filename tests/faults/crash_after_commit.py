"""`log-ingest` with one fault built in: exit abruptly right after the first database commit.

The fault suite runs it as ``python -m tests.faults.crash_after_commit run`` from the
repository root (``-m`` puts that root on ``sys.path``). ``PostgresSink.write`` stores a
batch and its offsets in one transaction; once the first such write has returned, the
process exits with ``EXIT_CODE`` at once (``os._exit``: no cleanup, no flush), before the
pipeline can tell Kafka the new offsets. The production code knows nothing of this.
"""

from __future__ import annotations

import os
from typing import Any

from worker import cli
from worker.write.sink import PostgresSink

EXIT_CODE = 86

_write = PostgresSink.write


async def _write_then_exit(self: PostgresSink, *args: Any, **kwargs: Any) -> Any:
    await _write(self, *args, **kwargs)  # committed: PostgreSQL holds the batch and offsets
    os._exit(EXIT_CODE)


def main() -> None:
    PostgresSink.write = _write_then_exit  # type: ignore[method-assign]
    cli.main()


if __name__ == "__main__":
    main()
