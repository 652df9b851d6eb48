"""What the spread across seeded splits costs the probe stage, measured on a finished run.

``python -m truthmap.spread_bench results/<model>/<dataset> [--layers 0 15 29] [--repeats 3]``
trains the chosen layers the way the train_probes rule does, once with the
primary split only (``probe.split_seeds: 1``) and once with the default
``split_seeds``, alternating the two so that both see the same machine load,
and prints the median seconds per layer of each and their ratio. Import time
is not included: it is the same for both. Like the rule's jobs, it runs on one
thread (numerical libraries included).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

from truthmap.files import read_tsv
from truthmap.probes import train_layer
from truthmap.settings import ProbeSettings, SplitSettings


def time_layer(run: Path, layer: int, tokens: list[str], cfg: ProbeSettings) -> float:
    """Seconds to train and evaluate every cell of one layer (reading included)."""
    start = time.perf_counter()
    train_layer(read_tsv(run / "probes" / "split.tsv"), sorted(map(str, (run / "activations").glob("*.h5"))),
                layer, tokens, cfg, split=SplitSettings())
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="results/<model>/<dataset> of a finished run")
    parser.add_argument("--layers", type=int, nargs="+", default=[0, 15, 29])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    from truthmap.h5io import read_meta

    threadpool_limits(1)  # train_probes jobs get one thread each
    tokens = read_meta(next((args.run / "activations").glob("*.h5"))).tokens
    default = ProbeSettings()
    configs = {"primary split only": dataclasses.replace(default, split_seeds=1),
               f"{default.split_seeds} seeded splits": default}
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(args.repeats):
        for layer in args.layers:
            for name, cfg in configs.items():
                times[name].append(time_layer(args.run, layer, tokens, cfg))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:>22}: {value:6.2f} s per layer (median of {len(times[name])})")
    base, spread = medians.values()
    print(f"{'ratio':>22}: {spread / base:6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
