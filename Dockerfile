# Pozytywka Group Playlists: the same scripts as the README's quick start, in a container.
#   docker build -t pozytywka .
#   docker run -p 127.0.0.1:8081:8081 -v "$PWD:/predictions" pozytywka
# Never publish this port to the internet: gunicorn's sync workers are held by slow clients
# (slowloris). Put nginx in front with deploy/nginx/pozytywka.conf (buffers whole requests)
# and PROXY_HOPS=1; deploy/compose.yaml runs nginx + app + PostgreSQL + Redis that way.
# First start: migrates, generates and imports the demo data and trains a model (a few
# minutes; the health check allows for it). instance/ (database) and models/ are volumes, so
# later starts only migrate. The predictions log goes to /predictions/predictions.jsonl, as
# with the original service; the container runs as the unprivileged user "app", so a bind-mounted
# /predictions must be writable by it (or add --user "$(id -u)" and a writable directory).
FROM python:3.11-slim

# gcc builds rectools-lightfm (OpenMP comes with it); nothing else is compiled.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system app && useradd --system --gid app --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app

# Dependencies first, so that code changes reuse the installed layer.
COPY --chown=app:app requirements.txt requirements-dev.txt ./
COPY --chown=app:app scripts/setup.sh scripts/setup.sh
RUN mkdir -p /app/instance /app/models /predictions && chown app:app /app /app/instance /app/models /predictions
USER app
ENV VENV=.venv \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN bash scripts/setup.sh

# The application only (an explicit list: a local .venv, instance/ or models/ never leaks in).
COPY --chown=app:app config.py wsgi.py gunicorn.conf.py ./
COPY --chown=app:app app app
COPY --chown=app:app migrations migrations
COPY --chown=app:app scripts scripts
COPY --chown=app:app templates templates
COPY --chown=app:app static static

ENV HOST=0.0.0.0 \
    PORT=8081 \
    WEB_CONCURRENCY=2 \
    POZYTYWKA_CONFIG=production \
    INSTANCE_DIR=/app/instance \
    MODEL_DIR=/app/models \
    PREDICTIONS_LOG=/predictions/predictions.jsonl \
    CI=1 \
    PYTHONUNBUFFERED=1 \
    OPENBLAS_NUM_THREADS=1

VOLUME ["/app/instance", "/app/models", "/predictions"]
EXPOSE 8081

HEALTHCHECK --interval=30s --timeout=5s --start-period=600s --retries=3 \
  CMD python3 -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8081/health', timeout=4).status != 200)"

# Production refuses to start without SECRET_KEY: pass one with -e, or one is generated on the
# first start and kept in the instance volume (mode 600). Session cookies are Secure: put the
# container behind HTTPS, or for a plain-HTTP test on your own machine pass
# -e SESSION_COOKIE_SECURE=0 (SECURITY.md). Then migrate (and on an empty database load the
# demo data and train), and serve with gunicorn - the README's prepare and serve scripts.
CMD ["bash", "-c", "set -euo pipefail; if [ -z \"${SECRET_KEY:-}\" ]; then [ -s instance/secret_key ] || (umask 077; python3 -c 'import secrets; print(secrets.token_hex(32))' > instance/secret_key); SECRET_KEY=$(cat instance/secret_key); export SECRET_KEY; fi; bash scripts/prepare.sh; exec bash scripts/serve.sh"]
