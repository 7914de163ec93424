#!/usr/bin/env python3
"""Renders the pulse from a windows CSV: observed complaints vs the expected band, per topic.

    crisis-pulse demo --windows w.csv > /dev/null
    python3 scripts/plot-pulse.py w.csv docs/img/pulse.png [--from 2026-03-09] [--to 2026-03-16]
    python3 scripts/plot-pulse.py w.csv docs/img/pulse-outage.png --topics outage \
        --from 2026-03-10T06:00 --to 2026-03-10T16:00

Needs matplotlib (`pip install matplotlib`). Reads only the all-channels rows (channel=all).
"""
import argparse
import csv
from collections import defaultdict
from datetime import datetime, timezone

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402


def parse_time(s):
    s = s.replace("Z", "+00:00")
    t = datetime.fromisoformat(s)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def load(path, t0, t1, topics):
    series = defaultdict(lambda: defaultdict(list))
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["channel"] != "all" or (topics and row["topic"] not in topics):
                continue
            t = parse_time(row["window_start"])
            if (t0 and t < t0) or (t1 and t >= t1):
                continue
            s = series[row["topic"]]
            s["t"].append(t)
            s["observed"].append(float(row["observed"]))
            s["expected"].append(float(row["expected"]))
            s["upper"].append(float(row["upper_bound"]))
            s["crisis"].append(row["state"] == "crisis")
    return series


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("windows_csv")
    ap.add_argument("out_png")
    ap.add_argument("--from", dest="t0", type=parse_time)
    ap.add_argument("--to", dest="t1", type=parse_time)
    ap.add_argument("--topics", nargs="*", default=[])
    a = ap.parse_args()
    series = load(a.windows_csv, a.t0, a.t1, set(a.topics))
    names = [t for t in series if t != "other"] or list(series)
    fig, axes = plt.subplots(len(names), 1, figsize=(12, 2.1 * len(names) + 0.8), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        s = series[name]
        ax.fill_between(s["t"], s["expected"], s["upper"], step="post", color="tab:blue", alpha=0.18,
                        label="normal band (expected .. upper bound)")
        ax.step(s["t"], s["expected"], where="post", color="tab:blue", lw=0.8, label="expected")
        ax.step(s["t"], s["observed"], where="post", color="black", lw=0.7, label="observed")
        top = max(max(s["observed"]), max(s["upper"]), 1.0)
        ax.fill_between(s["t"], 0, top, where=s["crisis"], step="post", color="tab:red", alpha=0.25,
                        label="in crisis")
        ax.set_ylim(0, top * 1.05)
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", ncol=4, fontsize=8, frameon=False)
    axes[-1, 0].xaxis.set_major_formatter(mdates.DateFormatter("%a %d %b\n%H:%M", tz=timezone.utc))
    fig.suptitle("crisis-pulse: complaints per 5-minute window vs the expected band (UTC)")
    fig.tight_layout()
    fig.savefig(a.out_png, dpi=110)
    print(f"wrote {a.out_png}")


if __name__ == "__main__":
    main()
