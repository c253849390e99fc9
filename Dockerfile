# syntax=docker/dockerfile:1
# Multi-stage image: dependencies are built in a throw-away stage, the runtime stage holds only the
# virtualenv and the code, runs as an unprivileged user, and migrates the database at start
# (`python -m app serve` runs `alembic upgrade head` before it listens).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Only the dependencies go into the venv (the code is copied into the runtime stage), so code
# changes do not rebuild this layer.
COPY pyproject.toml README.md ./
RUN mkdir -p app bench && touch app/__init__.py bench/__init__.py \
 && pip install . && pip uninstall -y homecare-planner

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/var/lib/homecare/data \
    DATABASE_URL=sqlite:////var/lib/homecare/data/homecare.sqlite3 \
    OSM_CACHE_DIR=/var/lib/homecare/osm_cache \
    REGION_FILE=/var/lib/homecare/region.osm.pbf \
    NUMBA_CACHE_DIR=/var/lib/homecare/osm_cache/numba
# NUMBA_CACHE_DIR: the matrix engine's compiled kernels (~6 s CPU to compile) live on the volume
# with the OSM cache, so a new container does not compile them again.
RUN groupadd --system --gid 10001 homecare \
 && useradd --system --uid 10001 --gid homecare --home-dir /app --shell /usr/sbin/nologin homecare \
 && mkdir -p /var/lib/homecare/data /var/lib/homecare/osm_cache \
 && chown -R homecare:homecare /var/lib/homecare
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=homecare:homecare alembic.ini ./
COPY --chown=homecare:homecare migrations ./migrations
COPY --chown=homecare:homecare app ./app
USER homecare
VOLUME ["/var/lib/homecare"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
# Set DATABASE_URL (PostgreSQL) and SECRET_KEY in production; without DATABASE_URL a SQLite file
# under DATA_DIR is used. Add "--demo" to seed a demo organisation. HOST and PORT may be
# overridden at run time (the health check asks port 8000).
ENV HOST=0.0.0.0 PORT=8000
ENTRYPOINT ["python", "-m", "app", "serve"]
