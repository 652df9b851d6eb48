"""Stage wall times from Snakemake ``benchmark:`` files.

``python -m truthmap.stage_times benchmarks/`` prints, per rule, the number of
jobs, the summed wall time (CPU-seconds of work, not elapsed time when jobs ran
in parallel), the longest job and the peak resident memory; then, for the model
stages, their FLOPs and MFU (:mod:`truthmap.efficiency`).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from truthmap.efficiency import efficiency_rows, format_table, measured_peaks, read_work


def stage_times(root: str | Path) -> list[dict]:
    """One row per rule (the first folder under ``root``), sorted by summed seconds."""
    stats: dict[str, dict] = {}
    for path in sorted(Path(root).rglob("*.tsv")):
        rule = path.relative_to(root).parts[0]
        with path.open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        for row in rows:
            entry = stats.setdefault(rule, {"rule": rule, "jobs": 0, "sum_s": 0.0, "max_s": 0.0, "max_rss_mb": 0.0})
            seconds = float(row["s"])
            entry["jobs"] += 1
            entry["sum_s"] += seconds
            entry["max_s"] = max(entry["max_s"], seconds)
            rss = row.get("max_rss", "NA")
            if rss not in ("NA", "-", ""):
                entry["max_rss_mb"] = max(entry["max_rss_mb"], float(rss))
    return sorted(stats.values(), key=lambda e: -e["sum_s"])


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else "benchmarks")
    rows = stage_times(root)
    if not rows:
        print(f"no benchmark files under {root}", file=sys.stderr)
        return 1
    print(f"{'rule':<22}{'jobs':>6}{'sum s':>10}{'max s':>9}{'max RSS MB':>12}")
    for r in rows:
        print(f"{r['rule']:<22}{r['jobs']:>6}{r['sum_s']:>10.1f}{r['max_s']:>9.1f}{r['max_rss_mb']:>12.0f}")
    print(f"{'total':<22}{sum(r['jobs'] for r in rows):>6}{sum(r['sum_s'] for r in rows):>10.1f}")
    jobs = read_work(root)
    if jobs:
        print("\nModel stages against the matmul peak measured now (MFU = FLOPs / (seconds x peak)):")
        for line in format_table(efficiency_rows(jobs, measured_peaks())):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
