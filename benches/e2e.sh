#!/usr/bin/env bash
# End-to-end Kafka throughput: a bare rdkafka consumer vs `crisis-pulse run` on the same
# topic. A script, not a timed test: it prints a table; the numbers go in docs/kafka.md.
#
#   benches/e2e.sh [N]            (default N=1000000; BROKERS, PARTITIONS, HTTP_PORT,
#                                 CARGO_TARGET_DIR, CP (the service binary) env)
#   MOCK=1 benches/e2e.sh [N]     librdkafka's mock cluster instead of a broker (default
#                                 N=100000 over 8 partitions: mock partitions keep 5 MB)
#   CRISIS_PULSE_KAFKA_MODE=group benches/e2e.sh [N]
#                                 the service in group mode (one instance: it forwards every
#                                 event to <group>.classified and counts them from there);
#                                 a run ends when the detector has read N forwarded records
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
# CP=path/to/crisis-pulse measures another build of the service (A/B against the same load).
CP="${CP:-$TARGET/release/crisis-pulse}"
BARE="$TARGET/release/examples/bare_consumer"
TOPIC="bench.$(date +%s).history"
create=()
mock_pid=""
cfg=""
rows=""
trap '[[ -n "$mock_pid" ]] && kill "$mock_pid"; rm -f "$cfg" "$rows"' EXIT
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

cfg="$(mktemp --suffix .toml)"
rows="$(mktemp)"
if [[ "$MOCK" != 1 ]]; then
  "$CP" kafka --brokers "$BROKERS" create-topics --partitions 1 bench.crisis.events bench.contacts.dlq
fi

# One service run over the whole topic with a fresh group; prints "events seconds cpu".
service() {
  local bin="$1" group="$2"
  sed -n '/^\[window\]/,$p' examples/demo.toml >"$cfg"
  cat >>"$cfg" <<TOML

[kafka]
brokers = "$BROKERS"
group_id = "$group"
topics = ["$TOPIC"]
crisis_topic = "bench.crisis.events"
dlq_topic = "bench.contacts.dlq"
TOML
  RUST_LOG=warn "$bin" run --config "$cfg" --http-addr "127.0.0.1:$HTTP_PORT" >&2 &
  local pid=$! t0="" c0="" n0=0 t1="" c1="" n
  # The topic whose messages end a run: the source, or in group mode the classified topic the
  # detector reads back (every source record is forwarded there once).
  local counted="$TOPIC"
  [[ "${CRISIS_PULSE_KAFKA_MODE:-}" == group ]] && counted="$group.classified"
  cpu() { awk -v t="$TICK" '{ sub(/.*\) /, ""); split($0, f, " "); print (f[12] + f[13]) / t }' "/proc/$pid/stat"; }
  consumed() {
    curl -fsS "http://127.0.0.1:$HTTP_PORT/metrics" 2>/dev/null |
      awk -v l="kafka_topic=\"$counted\"" 'index($0, "crisis_pulse_kafka_messages_total{") == 1 && index($0, l) { s += $2 } END { print s + 0 }'
  }
  local deadline=$((SECONDS + 900))
  while (( SECONDS < deadline )); do
    n="$(consumed || true)"  # awk prints 0 when the scrape fails
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
  [[ -n "$t1" ]] || { echo "service did not reach $N events" >&2; exit 1; }
  awk -v n=$((N - n0)) -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" \
    'BEGIN { printf "%d %.3f %.3f\n", n, t1 - t0, c1 - c0 }'
}

# RUNS rounds (default 1), each: the bare consumer, the service (CP), and with CP_B set a
# second build of the service, every one from the start of the topic with a fresh group.
RUNS="${RUNS:-1}"
for r in $(seq "$RUNS"); do
  echo "round $r/$RUNS: bare consumer..." >&2
  read -r bn bs bc < <("$BARE" consume --brokers "$BROKERS" --topic "$TOPIC" --count "$N")
  echo "bare $bn $bs $bc" >>"$rows"
  echo "round $r/$RUNS: service..." >&2
  echo "service $(service "$CP" "bench-$$-$r")" >>"$rows"
  if [[ -n "${CP_B:-}" ]]; then
    echo "round $r/$RUNS: service (CP_B)..." >&2
    echo "service_b $(service "$CP_B" "bench-$$-$r-b")" >>"$rows"
  fi
done

# Rows per run, then per consumer the median (and range) of events/s and CPU us/event.
awk '
  function median(a, k,   i, j, t) {
    for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  BEGIN {
    name["bare"] = "bare rdkafka"; name["service"] = "crisis-pulse run"; name["service_b"] = "run (CP_B)"
    printf "%-16s %10s %10s %12s %14s\n", "consumer", "events", "seconds", "events/s", "CPU us/event"
  }
  {
    rate = $2 / $3; us = $4 * 1e6 / $2
    printf "%-16s %10d %10.2f %12.0f %14.2f\n", name[$1], $2, $3, rate, us
    k[$1]++; R[$1, k[$1]] = rate; U[$1, k[$1]] = us
  }
  END {
    if (k["bare"] < 2 && !k["service_b"]) {
      printf "service / bare throughput: %.0f%%\n", 100 * R["service", 1] / R["bare", 1]
      exit
    }
    print "medians over " k["bare"] " rounds (min-max):"
    for (c in k) {
      for (i = 1; i <= k[c]; i++) { r[i] = R[c, i]; u[i] = U[c, i] }
      mr[c] = median(r, k[c]); mu = median(u, k[c])
      lo = hi = R[c, 1]; ulo = uhi = U[c, 1]
      for (i = 1; i <= k[c]; i++) {
        if (R[c, i] < lo) lo = R[c, i]; if (R[c, i] > hi) hi = R[c, i]
        if (U[c, i] < ulo) ulo = U[c, i]; if (U[c, i] > uhi) uhi = U[c, i]
      }
      printf "  %-16s %9.0f events/s (%.0f-%.0f)  %.2f CPU us/event (%.2f-%.2f)\n", name[c], mr[c], lo, hi, mu, ulo, uhi
    }
    printf "service / bare throughput (medians): %.0f%%\n", 100 * mr["service"] / mr["bare"]
    if (k["service_b"]) printf "CP_B / bare throughput (medians): %.0f%%\n", 100 * mr["service_b"] / mr["bare"]
  }' "$rows"
