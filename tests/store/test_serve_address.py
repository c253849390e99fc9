"""``python -m app serve`` listens where HOST and PORT say, unless --host/--port say otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn

from app.cli import main


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """What ``serve`` hands to uvicorn (the server itself is not started)."""
    seen: dict[str, Any] = {}

    def fake_run(app: object, **kwargs: Any) -> None:
        seen.update(kwargs)

    def fake_server_run(server: uvicorn.Server, *args: Any, **kwargs: Any) -> None:
        seen.update(host=server.config.host, port=server.config.port)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.setattr(uvicorn.Server, "run", fake_server_run)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'serve.sqlite3'}")
    monkeypatch.setenv("DEV_MODE", "true")
    monkeypatch.setenv("REGION_WARMUP", "false")
    return seen


def test_host_and_port_come_from_the_environment_found_item_8(
    served: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "8123")
    assert main(["serve"]) == 0
    assert (served["host"], served["port"]) == ("0.0.0.0", 8123)


def test_the_command_line_wins_over_the_environment(
    served: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "8123")
    assert main(["serve", "--host", "127.0.0.2", "--port", "9001"]) == 0
    assert (served["host"], served["port"]) == ("127.0.0.2", 9001)


def test_without_either_the_documented_defaults_hold(
    served: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOST", raising=False)
    monkeypatch.delenv("PORT", raising=False)
    assert main(["serve"]) == 0
    assert (served["host"], served["port"]) == ("127.0.0.1", 8000)
