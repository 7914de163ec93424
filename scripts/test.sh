#!/usr/bin/env bash
# The whole test suite, real Kafka-protocol broker and real Prometheus included, on a fresh
# machine: installs what the tests need, starts the broker, runs every test, stops the broker.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*" >&2; }

# System packages: promtool/prometheus for the metrics tests, OpenSSL headers and a C
# toolchain for librdkafka (built from source by rdkafka-sys).
missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v promtool >/dev/null || missing+=(prometheus)
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v cc >/dev/null || missing+=(build-essential)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian package starts a Prometheus service we do not need.
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

log "starting the test broker (tansu 0.6.0; first run builds it, ~20 min)"
scripts/broker.sh start
trap 'scripts/broker.sh stop || true' EXIT

log "cargo test"
export CRISIS_PULSE_TEST_BROKERS="${CRISIS_PULSE_TEST_BROKERS:-127.0.0.1:9092}"
cargo test --all-targets --no-fail-fast "$@"
