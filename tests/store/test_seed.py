"""The demo seeding behind ``make run`` is idempotent and loads a usable district."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import Engine

from app.settings import Settings
from app.store import seed, tenants
from app.store.db import make_sessionmaker
from tests.conftest import count_rows

DAY = dt.date(2025, 3, 3)


def test_seeding_twice_changes_nothing_and_keeps_the_key(
    db: Engine, database_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=database_url, dev_mode=True, data_dir=tmp_path)
    first = seed.seed_demo(settings, day=DAY)
    rows = count_rows(db)
    assert rows["visits"] >= 10
    assert rows["shifts"] >= 3
    assert first.key_file.read_text(encoding="utf-8").strip() == first.api_key
    second = seed.seed_demo(settings, day=DAY)
    assert "created 0, updated 0" in second.summary
    assert second.api_key == first.api_key
    assert count_rows(db) == rows
    with make_sessionmaker(db)() as session:
        key = tenants.find_active_key(session, first.api_key)
        assert key is not None
        assert key.org_id == first.org_id


def test_without_a_region_the_hand_built_dataset_is_seeded(
    db: Engine, database_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=database_url,
        dev_mode=True,
        data_dir=tmp_path,
        region_file=tmp_path / "missing.osm.pbf",
    )
    result = seed.seed_demo(settings, day=DAY)
    assert "hand-built" in result.summary
    assert count_rows(db)["visits"] == 10
