#!/usr/bin/env bash
# Validates docker/ without a container engine:
#   - Prometheus config, alert rules and their unit tests (promtool)
#   - the compose file against the Compose schema (`docker compose config`, or Debian's
#     docker-compose when the v2 plugin is absent)
#   - the Grafana dashboard and provisioning parse, and the dashboard matches its generator
#   - the metric names used by the dashboard and rules exist (cargo test --test metrics)
# Installs promtool and docker-compose with apt-get when missing (root, Debian).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" > /dev/null
  else
    echo "missing $*; install it (Debian: apt-get install $*)" >&2
    exit 1
  fi
}

command -v promtool > /dev/null || apt_install prometheus

step() { printf '\n== %s\n' "$*"; }

step "promtool check config"
promtool check config docker/prometheus/prometheus.yml
step "promtool check rules"
promtool check rules docker/prometheus/alerts.yml
step "promtool test rules"
promtool test rules docker/prometheus/alerts_test.yml

step "compose file"
if docker compose version > /dev/null 2>&1; then
  (cd docker && docker compose -f docker-compose.yml --profile demo config -q)
else
  command -v docker-compose > /dev/null || apt_install docker-compose
  (cd docker && docker-compose -f docker-compose.yml --profile demo config -q)
fi
echo "docker/docker-compose.yml: valid"

step "Grafana dashboard and provisioning"
python3 - << 'PY'
import json, pathlib, subprocess, sys
root = pathlib.Path(".")
dash = json.loads((root / "docker/grafana/dashboards/crisis-pulse.json").read_text())
assert dash["uid"] == "crisis-pulse" and dash["panels"], "dashboard has no panels"
for p in dash["panels"]:
    if p["type"] != "row":
        assert p.get("targets"), f"panel {p['title']!r} has no query"
        assert p["datasource"]["uid"] == "prometheus", p["title"]
# The committed JSON is what the generator produces.
out = subprocess.run([sys.executable, "-c",
    "import runpy,json;m=runpy.run_path('scripts/gen-dashboard.py');print(json.dumps(m['build'](), indent=2))"],
    check=True, capture_output=True, text=True).stdout
assert json.loads(out) == dash, "dashboard JSON is stale: run python3 scripts/gen-dashboard.py"
print(f"dashboard: {len(dash['panels'])} panels, matches scripts/gen-dashboard.py")
PY
for f in docker/grafana/provisioning/*/*.yml; do
  python3 -c "import sys,yaml; yaml.safe_load(open(sys.argv[1]))" "$f" 2> /dev/null \
    || { echo "$f: cannot parse" >&2; exit 1; }
done
echo "provisioning: parses"

step "metric names in dashboard and rules are exported (cargo test --test metrics)"
cargo test --quiet --test metrics -- dashboard_and_alert prometheus_config

echo
echo "docker/ validated"
