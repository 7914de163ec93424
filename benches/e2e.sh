#!/usr/bin/env bash
# End-to-end Kafka throughput: a bare rdkafka consumer vs `crisis-pulse run` on the same
# topic. A script, not a timed test: it prints a table; the numbers go in docs/kafka.md.
#
#   benches/e2e.sh [N]            (default N=1000000; BROKERS, PARTITIONS, HTTP_PORT env)
#   MOCK=1 benches/e2e.sh [N]     librdkafka's mock cluster instead of a broker (default
#                                 N=100000 over 8 partitions: mock partitions keep 5 MB)
#
# Needs a broker (scripts/broker.sh start) unless MOCK=1. Timing starts at each consumer's first message
# (group join excluded) and ends at its N-th; CPU is user+system from /proc/<pid>/stat.
set -euo pipefail
cd "$(dirname "$0")/.."

MOCK="${MOCK:-0}"
if [[ "$MOCK" == 1 ]]; then
  N="${1:-${N:-100000}}"
  PARTITIONS="${PARTITIONS:-8}"
else
  N="${1:-${N:-1000000}}"
  PARTITIONS="${PARTITIONS:-4}"
fi
BROKERS="${BROKERS:-127.0.0.1:9092}"
HTTP_PORT="${HTTP_PORT:-9899}"
TICK="$(getconf CLK_TCK)"

cargo build --release --quiet --bin crisis-pulse --example bare_consumer --example mock_broker
TARGET="${CARGO_TARGET_DIR:-target}"
CP="$TARGET/release/crisis-pulse"
BARE="$TARGET/release/examples/bare_consumer"
TOPIC="bench.$(date +%s).history"
create=()
mock_pid=""
cfg=""
trap '[[ -n "$mock_pid" ]] && kill "$mock_pid"; rm -f "$cfg"' EXIT
if [[ "$MOCK" == 1 ]]; then
  addr_file="$(mktemp)"
  "$TARGET/release/examples/mock_broker" --partitions "$PARTITIONS" "$TOPIC" \
    bench.crisis.events bench.contacts.dlq >"$addr_file" &
  mock_pid=$!
  for _ in $(seq 50); do [[ -s "$addr_file" ]] && break; sleep 0.1; done
  BROKERS="$(cat "$addr_file")"
  create=(--no-create)
  echo "mock cluster at $BROKERS" >&2
fi
"$CP" kafka --brokers "$BROKERS" ping --timeout 10s >/dev/null

echo "loading $N events into $TOPIC ($PARTITIONS partitions)" >&2
"$BARE" load --brokers "$BROKERS" --topic "$TOPIC" --count "$N" --partitions "$PARTITIONS" "${create[@]}"

echo "bare consumer..." >&2
read -r bare_n bare_s bare_cpu < <("$BARE" consume --brokers "$BROKERS" --topic "$TOPIC" --count "$N")

cfg="$(mktemp --suffix .toml)"
sed -n '/^\[window\]/,$p' examples/demo.toml >"$cfg"
cat >>"$cfg" <<TOML

[kafka]
brokers = "$BROKERS"
group_id = "bench-$$"
topics = ["$TOPIC"]
crisis_topic = "bench.crisis.events"
dlq_topic = "bench.contacts.dlq"
TOML
if [[ "$MOCK" != 1 ]]; then
  "$CP" kafka --brokers "$BROKERS" create-topics --partitions 1 bench.crisis.events bench.contacts.dlq
fi

echo "service..." >&2
RUST_LOG=warn "$CP" run --config "$cfg" --http-addr "127.0.0.1:$HTTP_PORT" &
pid=$!
cpu() { awk -v t="$TICK" '{ sub(/.*\) /, ""); split($0, f, " "); print (f[12] + f[13]) / t }' "/proc/$pid/stat"; }
consumed() {
  curl -fsS "http://127.0.0.1:$HTTP_PORT/metrics" 2>/dev/null |
    awk '/^crisis_pulse_kafka_messages_total/ { s += $2 } END { print s + 0 }'
}
t0=""; c0=""
deadline=$((SECONDS + 900))
while (( SECONDS < deadline )); do
  n="$(consumed || echo 0)"
  if [[ -z "$t0" && "${n%.*}" -gt 0 ]]; then
    t0="$(date +%s.%N)"; c0="$(cpu)"; n0="${n%.*}"
  fi
  if [[ "${n%.*}" -ge "$N" ]]; then
    t1="$(date +%s.%N)"; c1="$(cpu)"
    break
  fi
  sleep 0.05
done
kill -TERM "$pid"
wait "$pid" || true
[[ -n "${t1:-}" ]] || { echo "service did not reach $N events" >&2; exit 1; }

svc_n=$((N - n0))
awk -v bn="$bare_n" -v bs="$bare_s" -v bc="$bare_cpu" -v sn="$svc_n" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" 'BEGIN {
  ss = t1 - t0; sc = c1 - c0
  printf "%-16s %10s %10s %12s %14s\n", "consumer", "events", "seconds", "events/s", "CPU us/event"
  printf "%-16s %10d %10.2f %12.0f %14.2f\n", "bare rdkafka", bn, bs, bn / bs, bc * 1e6 / bn
  printf "%-16s %10d %10.2f %12.0f %14.2f\n", "crisis-pulse run", sn, ss, sn / ss, sc * 1e6 / sn
  printf "service / bare throughput: %.0f%%\n", 100 * (sn / ss) / (bn / bs)
}'
