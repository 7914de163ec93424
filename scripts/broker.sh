#!/usr/bin/env bash
# A local Kafka-compatible broker for tests, demos and benches: tansu 0.6.0 (Apache-2.0).
#
#   scripts/broker.sh start|stop|status [--storage memory|sqlite] [--port 9092]
#
# Installs tansu into ${TANSU_ROOT:-$HOME/.local/tansu-0.6.0} if missing (cargo install,
# ~20 min once), starts it on 127.0.0.1:<port> in the background with its pid file and log
# under ${CRISIS_PULSE_BROKER_DIR:-${TMPDIR:-/tmp}/crisis-pulse-broker}/<port>, and waits
# until it answers a TCP connect and a Kafka metadata request. Idempotent: `start` on a
# running broker and `stop` on a stopped one succeed.
set -euo pipefail

cmd="${1:-}"
shift || true
storage=memory
port=9092
while [[ $# -gt 0 ]]; do
  case "$1" in
    --storage) storage="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

root="${TANSU_ROOT:-$HOME/.local/tansu-0.6.0}"
bin="$root/bin/tansu"
state="${CRISIS_PULSE_BROKER_DIR:-${TMPDIR:-/tmp}/crisis-pulse-broker}/$port"
pidfile="$state/tansu.pid"
log="$state/tansu.log"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

running() {
  [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

tcp_up() {
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

# A metadata request through librdkafka (the crisis-pulse binary), when it is built.
metadata_ok() {
  local cp=""
  for c in "${CRISIS_PULSE_BIN:-}" "$here/target/release/crisis-pulse" "$here/target/debug/crisis-pulse"; do
    if [[ -n "$c" && -x "$c" ]]; then cp="$c"; break; fi
  done
  if [[ -z "$cp" ]]; then
    return 0 # TCP only; tests do their own metadata check
  fi
  "$cp" kafka --brokers "127.0.0.1:$port" ping --timeout 5s >/dev/null 2>&1
}

install() {
  if [[ -x "$bin" ]]; then return 0; fi
  echo "installing tansu 0.6.0 into $root (takes a while, once)" >&2
  cargo install tansu --version 0.6.0 --features dynostore,libsql --root "$root" >&2
}

start() {
  if running; then
    echo "broker already running on 127.0.0.1:$port (pid $(cat "$pidfile"))"
    return 0
  fi
  install
  mkdir -p "$state"
  local engine
  case "$storage" in
    memory) engine="memory://tansu/" ;;
    sqlite) engine="sqlite://tansu.db" ;;
    *) echo "storage must be memory or sqlite" >&2; exit 2 ;;
  esac
  (
    cd "$state"
    # tansu logs through RUST_LOG; TANSU_LOG (e.g. tansu_broker::coordinator=info) sets it for
    # a post-mortem without inheriting the caller's RUST_LOG.
    RUST_LOG="${TANSU_LOG:-warn}" nohup "$bin" broker \
      --cluster-id crisis-pulse \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine "$engine" \
      >>"$log" 2>&1 &
    echo $! >"$pidfile"
  )
  for _ in $(seq 1 150); do
    if ! running; then
      echo "broker exited; last log lines:" >&2
      tail -20 "$log" >&2 || true
      exit 1
    fi
    if tcp_up && metadata_ok; then
      echo "broker up on 127.0.0.1:$port (pid $(cat "$pidfile"), storage $storage, log $log)"
      return 0
    fi
    sleep 0.2
  done
  echo "broker did not answer within 30 s; log: $log" >&2
  exit 1
}

stop() {
  if ! running; then
    rm -f "$pidfile"
    echo "broker not running on port $port"
    return 0
  fi
  local pid
  pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "broker stopped"
}

status() {
  if running && tcp_up; then
    echo "running on 127.0.0.1:$port (pid $(cat "$pidfile"))"
  else
    echo "not running on port $port"
    return 1
  fi
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status [--storage memory|sqlite] [--port 9092]" >&2; exit 2 ;;
esac
