"""Snakemake script: every error detector on the probes' test questions, with intervals and p-values."""

from truthmap import logs
from truthmap.detectors import DETECTOR_COLUMNS, compare_detectors, detector_scores, question_groups
from truthmap.files import read_json, read_jsonl, read_tsv, write_tsv
from truthmap.questions import load_questions
from truthmap.results import Cell
from truthmap.settings import ProbeSettings

log = logs.setup(snakemake.log[0], "compare_detectors")
cfg = ProbeSettings.given(snakemake.params.probe)
cells = {Cell.of(c): c for c in map(read_json, snakemake.input.cells)}
chosen = {
    family: cell and cells[Cell.of(cell)]
    for family, cell in read_json(snakemake.input.selection).items()
}
group_field = snakemake.params.group
inputs = detector_scores(
    read_tsv(snakemake.input.split),
    [g for path in snakemake.input.generations for g in read_jsonl(path)],
    [p for path in snakemake.input.positions for p in read_tsv(path)],
    chosen,
    [r for path in snakemake.input.p_true for r in read_tsv(path)] if snakemake.input.p_true else None,
    question_groups(load_questions(snakemake.input.questions), group_field),
    group_field,
    read_tsv(snakemake.input.error_types) if snakemake.input.error_types else None,
)
rows = compare_detectors(inputs.test_ids, inputs.labels, inputs.scores, inputs.details, cfg, inputs.test_groups,
                         inputs.train_aucs)
write_tsv(snakemake.output[0], [r.to_dict() for r in rows], DETECTOR_COLUMNS)
for r in rows:
    log.info("%-24s AUC %.3f [%.3f, %.3f] p=%.4f; within groups %.3f", r.method, r.auc, r.ci_low, r.ci_high,
             r.p_vs_best_probe, r.auc_within_group)
