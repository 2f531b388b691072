# The runbook CLI and Temporal worker: `docker run IMAGE <command>`, `worker` by default.
# Must match the major.minor of the Redis it backs up: see the redis-check-rdb note below.
ARG REDIS_IMAGE=redis:7.2-bookworm

FROM ${REDIS_IMAGE} AS redis

FROM node:20-bookworm-slim

# redis-tools (redis-cli, redis-check-rdb) and zstd are what the activities drive; redis-tools also
# brings the shared libraries (libssl3) the binaries copied below need.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-tools zstd ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# Bookworm's redis-tools is Redis 7.0, whose redis-check-rdb rejects the RDB version 11 that Redis 7.2
# writes ("Can't handle RDB format version 11"), failing every backup check. Binaries from the Redis
# image, earlier on PATH, shadow them; redis-check-rdb is redis-server run under that name.
COPY --from=redis /usr/local/bin/redis-server /usr/local/bin/redis-cli /usr/local/bin/
RUN ln -s redis-server /usr/local/bin/redis-check-rdb \
 && redis-check-rdb --version >/dev/null \
 && mkdir -p /var/lib/runbook/backups /etc/runbook \
 && chown node:node /var/lib/runbook/backups

WORKDIR /app
ENV NODE_ENV=production \
    RUNBOOK_CONFIG=/etc/runbook/runbook.yaml

# Dependencies first, so a source change does not reinstall them. tsx is a runtime dependency.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY tsconfig.json ./
COPY domain ./domain
COPY common ./common
COPY workflows ./workflows
COPY activities ./activities
COPY worker ./worker
COPY cli ./cli
COPY bin ./bin

# The code stays root-owned (read-only to the process); only the backups folder is writable.
USER node

ENTRYPOINT ["npx", "tsx", "cli/index.ts"]
CMD ["worker"]
