# kube-remedy: one image for the worker, beat and web processes (see docs/operations.md).
# Runs as uid 10001 with a read-only root filesystem: it writes only to /tmp and /data.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY bot ./bot
COPY fixers ./fixers
# constraints.txt pins every runtime dependency to the versions the tests ran with.
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-compile -c constraints.txt '.[cluster]'

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    REMEDY_DATA_DIR=/data
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 remedy \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin remedy \
    && mkdir -p /data && chown 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /tmp
VOLUME ["/data"]
EXPOSE 8080 9102
ENTRYPOINT ["remedy"]
CMD ["worker"]
