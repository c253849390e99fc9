"""Settings refuse unsafe secrets; the CLI creates an organisation and prints its key once."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from app.cli import main
from app.settings import DEV_SECRET, Settings
from app.store import tenants
from app.store.db import make_sessionmaker


def test_default_secret_is_refused_outside_dev_mode() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(dev_mode=False, secret_key=DEV_SECRET)


def test_a_real_secret_is_accepted() -> None:
    settings = Settings(dev_mode=False, secret_key="x" * 40)
    assert not settings.dev_mode


def test_unknown_timezone_is_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        Settings(dev_mode=True, default_timezone="Mars/Olympus")


def test_create_org_prints_a_working_admin_key(
    db: Engine,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["create-org", "Thuiszorg Noord", "--timezone", "Europe/Amsterdam", "--dev"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    with make_sessionmaker(db)() as session:
        record = tenants.find_active_key(session, key)
        assert record is not None
        assert record.role == "admin"
        org = tenants.get_organisation(session, record.org_id)
        assert (org.name, org.timezone) == ("Thuiszorg Noord", "Europe/Amsterdam")
        assert "insulin" in tenants.competence_codes(session, org.id)
