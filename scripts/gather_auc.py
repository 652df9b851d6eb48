"""Snakemake script: gather every probe cell of a (model, dataset) into auc.tsv, with AUCs within groups."""

from truthmap import logs
from truthmap.detectors import groups_of_test_questions, question_groups
from truthmap.files import read_tsv, write_tsv
from truthmap.questions import load_questions
from truthmap.results import AUC_COLUMNS, gather_cells, within_group_cells
from truthmap.settings import ProbeSettings

log = logs.setup(snakemake.log[0], "gather_auc")
cfg = ProbeSettings.given(snakemake.params.probe)
split = read_tsv(snakemake.input.split)
groups = question_groups(load_questions(snakemake.input.questions), snakemake.params.group)
aligned, why = groups_of_test_questions(split, groups, snakemake.params.group)
rows = within_group_cells(gather_cells(list(snakemake.input.cells)), split, groups if aligned else None,
                          cfg.bootstrap, cfg.ci_level, cfg.seed)
write_tsv(snakemake.output[0], rows, AUC_COLUMNS)
log.info("%d cells, %d skipped; within groups: %s", len(rows), sum(r["status"] != "ok" for r in rows),
         "yes" if aligned else f"none ({why})")
