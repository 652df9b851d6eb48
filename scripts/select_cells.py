"""Snakemake script: choose cells by cross-validated AUC on the training questions only."""

from truthmap import logs
from truthmap.detectors import select_cells
from truthmap.files import read_json, write_json

log = logs.setup(snakemake.log[0], "select_cells")
selection = select_cells([read_json(path) for path in snakemake.input])
write_json(snakemake.output[0], selection)
for family, cell in selection.items():
    log.info("%s: %s", family, cell and f"{cell['site']} layer {cell['layer']} {cell['token']} (cv AUC {cell['cv_auc']:.3f})")
