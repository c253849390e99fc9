"""Command line: ``python -m app serve|worker|migrate|create-org|create-api-key|create-admin``.

Secrets are printed once to stdout and never logged.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

from app.logging_setup import configure_logging
from app.settings import Settings, load_settings
from app.store import migrate, tenants, users
from app.store.db import make_engine, make_sessionmaker
from app.store.models import Role

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

log = logging.getLogger("app")


def _migrate(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the database up to the newest migration."""
    _migrate(load_settings(dev_mode=args.dev) if args.dev else load_settings())
    print("database is at the newest migration")
    return 0


def cmd_create_org(args: argparse.Namespace) -> int:
    """Create an organisation and its first admin API key; print the key once."""
    settings = load_settings(dev_mode=True) if args.dev else load_settings()
    _migrate(settings)
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            org = tenants.create_organisation(
                session, args.name, timezone=args.timezone or settings.default_timezone
            )
            key = tenants.create_api_key(session, org.id, name="admin (created by CLI)")
            org_id = org.id
    finally:
        engine.dispose()
    print(f"organisation {org_id} created: {args.name}")
    print("admin API key (shown once, store it now):")
    print(key.plaintext)
    return 0


def cmd_create_api_key(args: argparse.Namespace) -> int:
    """Create another API key for an existing organisation; print it once."""
    settings = load_settings(dev_mode=True) if args.dev else load_settings()
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            tenants.get_organisation(session, args.org_id)
            key = tenants.create_api_key(
                session, args.org_id, name=args.name, role=Role(args.role), scopes=args.scopes
            )
    finally:
        engine.dispose()
    print(key.plaintext)
    return 0


def cmd_create_admin(args: argparse.Namespace) -> int:
    """Create an admin user who signs in with email and password; print a generated password once.

    The password is read from stdin when ``--password-stdin`` is given (first line), else generated.
    """
    settings = load_settings(dev_mode=True) if args.dev else load_settings()
    generated = not args.password_stdin
    password = users.generate_password() if generated else sys.stdin.readline().rstrip("\r\n")
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            tenants.get_organisation(session, args.org)
            user = users.create_user(
                session, args.org, email=args.email, role=Role.ADMIN, password=password
            )
            user_id = user.id
    finally:
        engine.dispose()
    print(f"admin user {user_id} created in organisation {args.org}")
    if generated:
        print("password (shown once, store it now):")
        print(password)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Migrate, optionally seed the demo organisation, then serve HTTP with uvicorn."""
    import uvicorn

    from app.api.app import create_app

    # Only what the command line names overrides HOST / PORT from the environment.
    overrides: dict[str, object] = {
        k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None
    }
    if args.demo:
        overrides["dev_mode"] = True
    settings = load_settings(**overrides)
    _migrate(settings)
    if args.demo:
        from app.store import seed

        demo = seed.seed_demo(settings)
        print(f"demo organisation {demo.org_id}: {demo.summary}")
        print(f"demo API key (also in {demo.key_file}):")
        print(demo.api_key)
        print(f"open http://{settings.host}:{settings.port}/docs")
    configure_logging(settings.log_level)
    # uvicorn's access log prints raw paths and query strings (external ids, search terms); the
    # app writes its own access line with the route template instead.
    if args.workers > 1:
        if settings.job_backend != "procrastinate":
            # Each worker would run its own embedded job runner and take the others' running
            # jobs for crashed ones; several API processes need the shared queue.
            log.error("--workers > 1 needs JOB_BACKEND=procrastinate and `python -m app worker`")
            return 2
        if args.demo:
            os.environ["DEV_MODE"] = "true"  # the worker processes read the environment
        uvicorn.run(
            "app.cli:worker_app",
            factory=True,
            workers=args.workers,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
        )
        return 0
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
    )
    _stopping_server(config).run()
    return 0


def _stopping_server(config: uvicorn.Config) -> uvicorn.Server:
    """A uvicorn server that stops the solver processes at the first SIGTERM/SIGINT.

    uvicorn drains open requests before the app's shutdown runs; a solve must not run on (or
    hold a waiting request) meanwhile: its job goes back to the queue for the next start.
    """
    import uvicorn

    from app.planning.pool import close_pools

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # A thread: the signal may arrive while this thread holds the pools' lock.
            threading.Thread(target=close_pools, name="close-solver-pools").start()
            super().handle_exit(sig, frame)

    return Server(config)


def worker_app() -> FastAPI:
    """The app of one ``serve --workers N`` process (uvicorn factory): settings from the env."""
    from app.api.app import create_app

    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)


def cmd_worker(args: argparse.Namespace) -> int:
    """Migrate, then run solve jobs from the procrastinate queue until SIGTERM."""
    import asyncio

    from app.jobs.worker import run_worker

    overrides: dict[str, object] = {"job_backend": "procrastinate"}
    if args.concurrency is not None:
        overrides["planning_workers"] = args.concurrency
    if args.dev:
        overrides["dev_mode"] = True
    settings = load_settings(**overrides)
    _migrate(settings)
    asyncio.run(run_worker(settings))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m app``."""
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate and serve the HTTP API")
    serve.add_argument("--demo", action="store_true", help="dev mode with a seeded demo org")
    serve.add_argument("--host", default=None, help="listen address (default HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="listen port (default PORT, 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="HTTP worker processes (default 1; more need JOB_BACKEND=procrastinate and a "
        "separate `python -m app worker`, since the embedded job runner lives in the one process)",
    )
    serve.set_defaults(func=cmd_serve)

    work = sub.add_parser("worker", help="run solve jobs from the queue (PostgreSQL)")
    work.add_argument(
        "--concurrency", type=int, default=None, help="jobs at once (default PLANNING_WORKERS)"
    )
    work.add_argument("--dev", action="store_true", help="allow the default dev secret")
    work.set_defaults(func=cmd_worker)

    mig = sub.add_parser("migrate", help="run alembic upgrade head")
    mig.add_argument("--dev", action="store_true", help="allow the default dev secret")
    mig.set_defaults(func=cmd_migrate)

    org = sub.add_parser("create-org", help="create an organisation and print an admin API key")
    org.add_argument("name")
    org.add_argument("--timezone", default=None, help="IANA timezone (default: settings)")
    org.add_argument("--dev", action="store_true", help="allow the default dev secret")
    org.set_defaults(func=cmd_create_org)

    key = sub.add_parser("create-api-key", help="create another API key for an organisation")
    key.add_argument("org_id", type=int)
    key.add_argument("--name", default="integration")
    key.add_argument("--role", choices=[r.value for r in Role], default=Role.PLANNER.value)
    key.add_argument("--scopes", nargs="*", default=None, choices=list(tenants.SCOPES))
    key.add_argument("--dev", action="store_true", help="allow the default dev secret")
    key.set_defaults(func=cmd_create_api_key)

    admin = sub.add_parser("create-admin", help="create an admin user (email + password sign-in)")
    admin.add_argument("--org", type=int, required=True, help="organisation id")
    admin.add_argument("--email", required=True)
    admin.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from stdin (else one is generated and printed once)",
    )
    admin.add_argument("--dev", action="store_true", help="allow the default dev secret")
    admin.set_defaults(func=cmd_create_admin)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    if args.command != "serve":
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
