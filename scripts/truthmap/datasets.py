"""A configured dataset: its source checked, its questions loaded, subsampled and sharded.

:func:`make_dataset` reads a dataset's source with :mod:`truthmap.loaders` (records of the
schema in :mod:`truthmap.questions`; ``builtin`` is the set of :mod:`truthmap.builtin`) and
takes a seeded subsample balanced across domains (:func:`subsample`); :func:`shard_records`
splits the questions into shards; :func:`check_source` checks a source when the config is read.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from truthmap.files import InputError
from truthmap.loaders import Loaded, LoadOptions, load_source, parse_hf_source

# --------------------------------------------------------------------------- subsets and shards


def subsample(records: list[dict], limit: int | None, seed: int) -> list[dict]:
    """Up to ``limit`` records, balanced across ``meta['domain']``, in their original order.

    ``None`` or a limit of at least ``len(records)`` keeps every record. Otherwise domains
    (sorted by name; records without a domain form one group) take turns giving one record,
    each domain in its own order shuffled from ``seed`` and the domain name, until ``limit``
    records are chosen; small domains simply run out first. The same inputs give the same
    subset, and a domain's picks do not depend on which other domains are present.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    if limit is None or limit >= len(records):
        return list(records)

    groups: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        groups[str((record.get("meta") or {}).get("domain", ""))].append(index)
    queues = []
    for domain in sorted(groups):
        order = list(groups[domain])
        random.Random(f"{seed}:{domain}").shuffle(order)
        queues.append(order)

    chosen: list[int] = []
    depth = 0
    while len(chosen) < limit:
        for queue in queues:
            if depth < len(queue) and len(chosen) < limit:
                chosen.append(queue[depth])
        depth += 1
    return [records[i] for i in sorted(chosen)]


def shard_records(records: list[dict], n_shards: int) -> list[list[dict]]:
    """Split records round-robin: record ``i`` goes to shard ``i % n_shards``.

    Every record lands in exactly one shard and shard sizes differ by at most one.
    """
    if isinstance(n_shards, bool) or not isinstance(n_shards, int) or n_shards < 1:
        raise InputError(
            f"cannot split {len(records)} questions into {n_shards!r} shards: "
            "'shards' must be a positive integer"
        )
    if n_shards > len(records):
        raise InputError(
            f"cannot split {len(records)} questions into {n_shards} shards: "
            "lower 'shards' in the config"
        )
    return [records[i::n_shards] for i in range(n_shards)]


# --------------------------------------------------------------------------- a configured dataset


SKIPPED_COLUMNS: tuple[str, ...] = ("row", "field", "reason")
"""Columns of a table of skipped rows (the fields of :class:`truthmap.loaders.Skipped`)."""


def check_source(key: str, source: str) -> None:
    """Fail early, naming the config key, when a dataset source cannot be read.

    ``builtin`` always exists; an ``hf:`` source is only checked for its syntax (whether it is
    in the local Hugging Face cache shows when it is loaded); anything else must be an existing
    file or folder.
    """
    if source == "builtin":
        return
    if source.startswith("hf:"):
        try:
            parse_hf_source(source)
        except InputError as err:
            raise InputError(f"config key {key!r}: {err}") from None
        return
    if not Path(source).expanduser().exists():
        raise InputError(
            f"config key {key!r}: {source!r} is neither 'builtin', an 'hf:' source "
            "nor an existing file or folder"
        )


def make_dataset(
    name: str,
    source: str,
    limit: int | None,
    seed: int | None,
    options: LoadOptions | Mapping[str, Any] | None = None,
) -> Loaded:
    """The questions of a configured dataset, read by :func:`truthmap.loaders.load_source`.

    ``options`` are the loader's (``format``, ``with_context`` ...). Every record's
    ``dataset`` field is ``name``; ``limit`` takes a subsample balanced across domains,
    seeded by ``seed`` (:func:`subsample`; no limit needs no seed). The rows skipped as
    malformed come back unchanged.
    """
    loaded = load_source(name, source, options or {})
    return Loaded(subsample(loaded.records, limit, seed), loaded.skipped)
