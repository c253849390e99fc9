"""Run Alembic migrations from code (the ``serve`` prestart step and the tests)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from app.settings import PROJECT_ROOT


def alembic_config() -> Config:
    """An Alembic config for this project (migrations then run on ``attributes["connection"]``)."""
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.attributes["configure_logging"] = False
    return cfg


#: Prefix of the queue library's own tables (procrastinate, created by migration 0003, not models).
QUEUE_PREFIX = "procrastinate"


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Whether Alembic compares an object with the models: not the queue library's own tables."""
    return not (type_ == "table" and reflected and (name or "").startswith(QUEUE_PREFIX))


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database behind ``engine`` up to ``revision`` (default: the newest)."""
    with engine.begin() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Take the database behind ``engine`` down to ``revision`` (default: empty)."""
    with engine.begin() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
