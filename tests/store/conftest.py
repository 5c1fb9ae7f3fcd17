from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fiumatch.store import Store
from tests.store.factories import NOW


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "node.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store.open(db_path, clock=lambda: NOW)
    try:
        yield s
    finally:
        s.close()
