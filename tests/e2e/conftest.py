"""The end-to-end run: one per module, shared by the tests that each check a piece of it.

It takes minutes and real servers (PostgreSQL, RabbitMQ, Chromium); `make test` runs it, `make e2e` runs only it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "dags")]  # the e2e package; books_support (the fixture site)


@pytest.fixture(scope="module")
def e2e():
    """Deploy to a private emulator, run everything, stop everything; the tests read the Result."""
    from e2e.runner import E2ERun, summary  # noqa: PLC0415 - only when the run is wanted

    run = E2ERun()
    result = run.run_all()
    text = summary(result)
    print(text, flush=True)
    (run.artifacts / "summary.txt").write_text(text + "\n")  # beside the run's logs: its figures after a CI run
    return result
