"""The service's one settings object, read once at start-up from the environment (and ``.env``).

Every knob the service has lives here; nothing else reads ``os.environ``. Build it with
:func:`load_settings` in the entry point and pass it down (``create_app(settings)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.domain import TravelMode

#: The project root (the directory holding pyproject.toml).
PROJECT_ROOT = Path(__file__).resolve().parents[1]

#: Secrets that ship in the source and are only acceptable in dev mode.
DEV_SECRET = "dev-insecure-change-me"


def _default_database_url() -> str:
    return f"sqlite:///{PROJECT_ROOT / 'data' / 'homecare.sqlite3'}"


class DatabaseSettings(BaseSettings):
    """Just the database part: what migrations need (no secrets required)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    database_url: str = Field(
        default_factory=_default_database_url,
        description="SQLAlchemy URL; unset means a SQLite file under ./data/.",
    )
    database_echo: bool = False


class Settings(DatabaseSettings):
    """Configuration of one service process (see the README's configuration table)."""

    region_file: Path = Field(
        default=PROJECT_ROOT.parent / "shared" / "data" / "osm" / "liechtenstein.osm.pbf",
        description="The .osm.pbf/.osm extract that travel times and geocoding are built from.",
    )
    osm_cache_dir: Path = PROJECT_ROOT / "osm_cache"
    #: Travel modes whose road graphs are built and loaded (``REGION_MODES=drive`` or
    #: ``drive,bike,walk``): a large region builds and holds only what its teams use.
    region_modes: Annotated[tuple[TravelMode, ...], NoDecode] = (
        TravelMode.DRIVE,
        TravelMode.BIKE,
        TravelMode.WALK,
    )
    data_dir: Path = PROJECT_ROOT / "data"
    default_timezone: str = "Europe/Vaduz"
    solver_time_limit_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    solver_exploration_level: Annotated[int, Field(ge=0, le=5)] = 5
    solver_threads: Annotated[int, Field(ge=1, le=64)] = 2
    continuity_penalty_s: Annotated[int, Field(ge=0)] = 900
    #: Worker processes that build matrices and solve (each loads the region once).
    planning_workers: Annotated[int, Field(ge=1, le=64)] = 1
    #: Load the region in the API process at start-up (in the background; /readyz says
    #: "loading" until it is there), so the first geocode or region call does not wait for it.
    region_warmup: bool = True
    #: Longest ``?wait=`` a plan request may block before it answers with the job.
    plan_wait_max_s: Annotated[float, Field(ge=0, le=600)] = 60.0
    #: Re-plans leave stops starting within this many minutes of ``now`` as they are.
    replan_freeze_minutes: Annotated[int, Field(ge=0, le=720)] = 20
    #: Solver seconds of one re-plan (it solves only the open part of the day).
    replan_time_limit_s: Annotated[float, Field(gt=0, le=600)] = 1.5
    #: Webhook deliveries: request timeout, how often the loop looks for due ones, attempts.
    webhook_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    webhook_poll_s: Annotated[float, Field(gt=0, le=3600)] = 2.0
    webhook_max_attempts: Annotated[int, Field(ge=1, le=20)] = 8
    #: Allow webhook URLs on loopback/private/link-local addresses (internal receivers only).
    webhook_allow_private_targets: bool = False
    #: A running job writes a heartbeat this often; one silent for ``job_stale_s`` is lost.
    job_heartbeat_s: Annotated[float, Field(gt=0, le=300)] = 5.0
    job_stale_s: Annotated[float, Field(gt=0)] = 60.0
    #: Runs of a job (first try included) before a lost job is marked failed.
    job_max_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    #: Hard wall-clock limit of one job in the worker (the solver's own limit comes first).
    job_timeout_s: Annotated[float, Field(gt=0)] = 600.0
    #: Where solve jobs run: in the API process (embedded default) or on procrastinate workers
    #: (``python -m app worker``; PostgreSQL only, the queue lives in the same database).
    job_backend: Literal["inprocess", "procrastinate"] = "inprocess"
    #: How often a queue worker looks for lost jobs (stale heartbeat) and undelivered ones.
    worker_reap_s: Annotated[float, Field(gt=0, le=3600)] = 15.0
    #: On SIGTERM a worker waits this long for running jobs before stopping them (re-queued).
    worker_shutdown_s: Annotated[float, Field(ge=0, le=3600)] = 30.0
    max_body_bytes: Annotated[int, Field(ge=1024)] = 10 * 1024 * 1024
    dev_mode: bool = False
    secret_key: SecretStr = SecretStr(DEV_SECRET)
    #: Lifetime of a person's sign-in token (JWT); short so that a lost phone stops working soon.
    token_ttl_s: Annotated[int, Field(ge=60, le=86400)] = 1800
    #: Redis for rate limits shared by all replicas; unset means in-memory per process.
    redis_url: str | None = None
    #: Requests per second each API key or user may make on average (0 turns limiting off) ...
    rate_limit_per_s: Annotated[float, Field(ge=0)] = 20.0
    #: ... and how many it may make at once (the token bucket's size).
    rate_limit_burst: Annotated[int, Field(ge=1)] = 200
    #: Sign-in attempts per minute per client address (against password guessing).
    login_attempts_per_min: Annotated[int, Field(ge=1)] = 10
    #: Seconds a verified API key or sign-in token is trusted without reading its row again: a
    #: revoked key, or a disabled user, stops working at most this long after (0 = every request).
    auth_cache_ttl_s: Annotated[float, Field(ge=0, le=60)] = 5.0
    #: An online map under the console's own road map, as an XYZ tile URL
    #: (``https://tiles.example/{z}/{x}/{y}.png``); unset: the console stays fully offline.
    console_tile_url: Annotated[
        str | None, Field(pattern=r"^https://[^/\s]+/\S*\{z\}\S*\{x\}\S*\{y\}\S*$")
    ] = None
    #: Built carer routes kept per process (keyed by plan version and carer; 0 turns it off) ...
    route_cache_entries: Annotated[int, Field(ge=0)] = 4096
    #: ... and for how long: an edited address or task shows within this many seconds (a new
    #: plan version at once).
    route_cache_ttl_s: Annotated[float, Field(ge=0, le=3600)] = 10.0
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000

    @field_validator("default_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            msg = f"unknown IANA timezone {value!r}"
            raise ValueError(msg) from exc
        return value

    @field_validator("region_modes", mode="before")
    @classmethod
    def _modes_from_text(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, (list, tuple)):
            if not value:
                msg = "REGION_MODES needs at least one of drive, bike, walk"
                raise ValueError(msg)
            return tuple(dict.fromkeys(value))
        return value

    @field_validator("region_file", "osm_cache_dir", "data_dir")
    @classmethod
    def _relative_to_project(cls, value: Path) -> Path:
        return value if value.is_absolute() else PROJECT_ROOT / value

    @model_validator(mode="after")
    def _no_default_secrets_outside_dev(self) -> Settings:
        secret = self.secret_key.get_secret_value()
        if not self.dev_mode and (secret == DEV_SECRET or len(secret) < 32):
            msg = (
                "SECRET_KEY must be set to a random value of at least 32 characters "
                "outside dev mode (set DEV_MODE=true for local development)"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _queue_needs_postgresql(self) -> Settings:
        if self.job_backend == "procrastinate" and not self.database_url.startswith("postgresql"):
            msg = "JOB_BACKEND=procrastinate needs a PostgreSQL DATABASE_URL"
            raise ValueError(msg)
        return self

    @property
    def is_sqlite(self) -> bool:
        """Whether the configured database is the embedded SQLite file."""
        return self.database_url.startswith("sqlite")


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment; keyword overrides win (used by the CLI and tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]
