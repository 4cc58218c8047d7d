# One image for ChainWatch's collector, alerting service and web app (docker-compose.yml runs it three
# times with a different command), and for the demo simulator. See docs/deploy.md.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A CJK TrueType font for the Chinese PDF reports (reportlab cannot read Noto CJK's CFF outlines).
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-zenhei \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY core/ core/
COPY collector/ collector/
COPY alerting/ alerting/
COPY web/ web/
COPY simulators/ simulators/
COPY bench/ bench/
COPY dashboards/ dashboards/
RUN pip install . && rm -rf build

# Not root: its own user, whose files live in /data (CHAINWATCH_DATA_DIR: SQLite, spool, keys).
RUN groupadd --system --gid 10001 chainwatch \
    && useradd --system --uid 10001 --gid chainwatch --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin chainwatch \
    && mkdir /data && chown chainwatch:chainwatch /data
USER chainwatch
WORKDIR /data
ENV CHAINWATCH_DATA_DIR=/data \
    CHAINWATCH_WEB_HOST=0.0.0.0 \
    CHAINWATCH_WEB_PORT=8080
EXPOSE 8080

ENTRYPOINT ["chainwatch"]
CMD ["web"]
