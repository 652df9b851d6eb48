"""Snakemake script: the greedy probe chooses among each test question's sampled answers; its accuracy
beside greedy, random and majority answers, overall and per error type."""

from truthmap import logs
from truthmap.choose import CHOICE_COLUMNS, SELECTION_COLUMNS, choose_answers
from truthmap.files import read_json, read_jsonl, read_tsv, write_tsv
from truthmap.settings import ProbeSettings

log = logs.setup(snakemake.log[0], "choose_answers")
labels = [r for path in snakemake.input.sample_labels for r in read_jsonl(path)]
table, choices = choose_answers(
    read_tsv(snakemake.input.split),
    list(snakemake.input.activations),
    list(snakemake.params.tokens),
    read_json(snakemake.input.selection)["probe_best_cell"],
    list(snakemake.input.candidates),
    labels,
    read_tsv(snakemake.input.error_types),
    ProbeSettings.given(snakemake.params.probe),
    int(snakemake.params.seed),
)
write_tsv(snakemake.output.table, table, SELECTION_COLUMNS)
write_tsv(snakemake.output.choices, choices, CHOICE_COLUMNS)
for r in table:
    if r["type"] == "all":
        log.info("%s: accuracy %.3f [%.3f, %.3f] on %d test questions, vs greedy p %.3g (+%d -%d)", r["strategy"],
                 r["accuracy"], r["ci_low"], r["ci_high"], r["n"], r["p_vs_greedy"], r["gains"], r["losses"])
log.info("%d test questions without a scorable candidate", sum(1 for c in choices if c["reason"]))
