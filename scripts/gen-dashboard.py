#!/usr/bin/env python3
"""Generates docker/grafana/dashboards/crisis-pulse.json (the committed dashboard).

Edit here, run `python3 scripts/gen-dashboard.py`, commit both. tests/metrics.rs checks that every
metric the dashboard queries is one crisis-pulse exports.
"""
import json
import pathlib

DS = {"type": "prometheus", "uid": "prometheus"}
OUT = pathlib.Path(__file__).resolve().parent.parent / "docker/grafana/dashboards/crisis-pulse.json"

_next_id = [0]


def pid():
    _next_id[0] += 1
    return _next_id[0]


def target(expr, legend, ref):
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


def timeseries(title, targets, x, y, w=12, h=8, unit="short", desc="", overrides=None, stack=False, **extra):
    p = {
        "id": pid(),
        "type": "timeseries",
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [target(e, l, chr(65 + i)) for i, (e, l) in enumerate(targets)],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 20 if stack else 0,
                    "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                    "showPoints": "never",
                },
            },
            "overrides": overrides or [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
    }
    p.update(extra)
    return p


def by_name(name, props):
    return {"matcher": {"id": "byName", "options": name}, "properties": props}


def pulse_panel(y):
    """Observed vs the expected band, one panel per topic (repeated over $topic)."""
    return timeseries(
        "Pulse: $topic (observed vs expected band)",
        [
            ('crisis_pulse_window_observed_complaints{topic="$topic"}', "observed"),
            ('crisis_pulse_window_expected_complaints{topic="$topic"}', "expected"),
            ('crisis_pulse_window_upper_bound_complaints{topic="$topic"}', "upper bound"),
        ],
        0, y, w=8, h=7,
        desc="Complaints in the last closed window against the baseline's expectation and the upper "
             "edge of the normal band. Observed above the upper bound for several windows opens a crisis.",
        overrides=[
            by_name("observed", [{"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
                                 {"id": "custom.lineWidth", "value": 2}]),
            by_name("expected", [{"id": "color", "value": {"mode": "fixed", "fixedColor": "blue"}}]),
            by_name("upper bound", [{"id": "color", "value": {"mode": "fixed", "fixedColor": "blue"}},
                                    {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                                    {"id": "custom.fillBelowTo", "value": "expected"},
                                    {"id": "custom.fillOpacity", "value": 15}]),
        ],
        repeat="topic", repeatDirection="h", maxPerRow=3,
    )


def state_timeline(y):
    return {
        "id": pid(),
        "type": "state-timeline",
        "title": "Crisis state per topic",
        "description": "0 normal, 1 watch, 2 crisis (crisis_pulse_crisis_state).",
        "datasource": DS,
        "gridPos": {"x": 0, "y": y, "w": 24, "h": 7},
        "targets": [target("max by (topic) (crisis_pulse_crisis_state)", "{{topic}}", "A")],
        "fieldConfig": {
            "defaults": {
                "mappings": [{"type": "value", "options": {
                    "0": {"text": "normal", "color": "green", "index": 0},
                    "1": {"text": "watch", "color": "yellow", "index": 1},
                    "2": {"text": "crisis", "color": "red", "index": 2},
                }}],
                "color": {"mode": "thresholds"},
                "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]},
            },
            "overrides": [],
        },
        "options": {"showValue": "never", "mergeValues": True, "rowHeight": 0.8,
                    "legend": {"showLegend": False}},
    }


def stat(title, expr, x, y, w=6, unit="short", desc=""):
    return {
        "id": pid(), "type": "stat", "title": title, "description": desc, "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": 4},
        "targets": [target(expr, "", "A")],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"},
    }


def row(title, y):
    return {"id": pid(), "type": "row", "title": title, "collapsed": False,
            "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []}


def latency(title, metric, x, y):
    q = lambda p: f"histogram_quantile({p}, sum by (le) (rate({metric}_bucket[$__rate_interval])))"
    return timeseries(title, [(q("0.5"), "p50"), (q("0.99"), "p99"), (q("0.999"), "p99.9")],
                      x, y, unit="s",
                      desc=f"From {metric}. Exact HdrHistogram percentiles are in the periodic "
                           "'latency percentiles' log line.")


def build():
    y = 0
    panels = [
        stat("Topics in crisis", "count(max by (topic) (crisis_pulse_crisis_state) == 2) or vector(0)", 0, y,
             desc="Topics whose crisis_pulse_crisis_state is 2."),
        stat("Crises opened (range)", 'sum(increase(crisis_pulse_crises_total{state="opened"}[$__range]))', 6, y),
        stat("Events / s", "sum(rate(crisis_pulse_events_total[$__rate_interval]))", 12, y, unit="reqps"),
        stat("Watermark delay", "max(crisis_pulse_watermark_delay_seconds)", 18, y, unit="s"),
    ]
    y += 4
    panels.append(state_timeline(y))
    y += 7
    panels.append(row("The pulse per topic", y))
    y += 1
    panels.append(pulse_panel(y))
    y += 7
    panels.append(timeseries("Anomaly score per topic",
                             [("max by (topic) (crisis_pulse_window_anomaly_score)", "{{topic}}")],
                             0, y, w=24, h=6, unit="percentunit"))
    y += 6
    panels.append(row("Intake", y))
    y += 1
    panels += [
        timeseries("Intake rate", [
            ("sum(rate(crisis_pulse_events_total[$__rate_interval]))", "events"),
            ("sum(rate(crisis_pulse_complaints_total[$__rate_interval]))", "complaints"),
            ("sum by (kafka_topic) (rate(crisis_pulse_kafka_messages_total[$__rate_interval]))", "kafka {{kafka_topic}}"),
        ], 0, y, unit="reqps"),
        timeseries("Channel mix", [
            ("sum by (channel) (rate(crisis_pulse_events_total[$__rate_interval]))", "{{channel}}"),
        ], 12, y, unit="reqps", stack=True),
    ]
    y += 8
    panels += [
        timeseries("Complaints per topic", [
            ("sum by (topic) (rate(crisis_pulse_complaints_total[$__rate_interval]))", "{{topic}}"),
        ], 0, y, unit="reqps", stack=True),
        timeseries("Refused, dead-lettered and late", [
            ("sum by (reason) (rate(crisis_pulse_decode_errors_total[$__rate_interval]))", "refused {{reason}}"),
            ("sum by (reason) (rate(crisis_pulse_dead_letters_total[$__rate_interval]))", "DLQ {{reason}}"),
            ("sum(rate(crisis_pulse_late_events_total[$__rate_interval]))", "late"),
        ], 12, y, unit="reqps"),
    ]
    y += 8
    panels.append(row("Stream health", y))
    y += 1
    panels += [
        timeseries("Consumer lag per partition", [
            ("sum by (kafka_topic, partition) (crisis_pulse_consumer_lag_messages)", "{{kafka_topic}}/{{partition}}"),
        ], 0, y, w=8),
        timeseries("Watermark delay behind the clock", [
            ("max by (instance) (crisis_pulse_watermark_delay_seconds)", "{{instance}}"),
        ], 8, y, w=8, unit="s"),
        timeseries("Rebalances, producer queue, delivery errors", [
            ("sum by (kind) (increase(crisis_pulse_rebalances_total[$__rate_interval]))", "rebalance {{kind}}"),
            ("sum(crisis_pulse_producer_queue_messages)", "producer queue"),
            ("sum by (output) (increase(crisis_pulse_delivery_errors_total[$__rate_interval]))", "delivery errors {{output}}"),
            ("sum(crisis_pulse_assigned_partitions)", "assigned partitions"),
        ], 16, y, w=8),
    ]
    y += 8
    panels.append(row("Latency", y))
    y += 1
    panels += [
        latency("Processing latency per batch", "crisis_pulse_batch_processing_seconds", 0, y),
        latency("Detection latency (window close to published)", "crisis_pulse_detection_latency_seconds", 12, y),
    ]
    return {
        "uid": "crisis-pulse",
        "title": "crisis-pulse",
        "description": "The complaint pulse per topic, crises, intake, stream health and latency.",
        "tags": ["crisis-pulse"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "5s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": {"list": [{
            "name": "topic",
            "label": "Topic",
            "type": "query",
            "datasource": DS,
            "query": {"query": "label_values(crisis_pulse_crisis_state, topic)", "refId": "topic"},
            "definition": "label_values(crisis_pulse_crisis_state, topic)",
            "refresh": 2,
            "multi": True,
            "includeAll": True,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1,
        }]},
        "annotations": {"list": [{
            "name": "Crises opened",
            "datasource": DS,
            "enable": True,
            "iconColor": "red",
            "expr": 'changes(crisis_pulse_crises_total{state="opened"}[1m]) > 0',
            "titleFormat": "crisis opened: {{topic}}",
            "step": "30s",
        }, {
            "name": "Record days",
            "datasource": DS,
            "enable": True,
            "iconColor": "orange",
            "expr": "changes(crisis_pulse_day_records_total[1m]) > 0",
            "titleFormat": "{{direction}} day on record: {{topic}}",
            "step": "30s",
        }]},
        "panels": panels,
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {OUT}")
