"""Snakemake script: the run's explorer page, one self-contained HTML file (truthmap.explorer)."""

from truthmap import logs
from truthmap.detectors import question_groups
from truthmap.explorer import explorer_data, probed_marks, render, tested_ids
from truthmap.files import read_json, read_jsonl, read_tsv, write_text
from truthmap.models import load_tokenizer
from truthmap.questions import load_questions
from truthmap.results import gather_cells

log = logs.setup(snakemake.log[0], "build_explorer")
cells = gather_cells(snakemake.input.cells)
tested = tested_ids(cells)
generations = {g["id"]: g for p in snakemake.input.generations for g in read_jsonl(p) if g["id"] in tested}
positions = {r["id"]: r for p in snakemake.input.positions for r in read_tsv(p) if r["id"] in tested}
tokenizer = load_tokenizer(snakemake.input.model)
tokens = list(snakemake.params.tokens)
questions = load_questions(snakemake.input.questions)
data = explorer_data(
    title=f"{snakemake.wildcards.model} on {snakemake.wildcards.dataset}",
    cells=cells,
    auc_rows=read_tsv(snakemake.input.auc),
    split_rows=read_tsv(snakemake.input.split),
    questions={q["id"]: q for q in questions},
    generations=generations,
    labels={r["id"]: r for p in snakemake.input.labels for r in read_jsonl(p) if r["id"] in tested},
    marks={q: probed_marks(tokenizer, generations[q], positions[q], tokens) for q in tested},
    groups=question_groups(questions, snakemake.params.group),
    group_field=snakemake.params.group,
    tokens=tokens,
    ci_level=snakemake.params.probe["ci_level"],
    detectors=read_tsv(snakemake.input.detectors),
    selection=read_json(snakemake.input.selection),
)
page = render(data)
write_text(snakemake.output[0], page)
log.info("explorer: %d cells, %d test questions, %.2f MB", len(data["cells"]), len(data["questions"]),
         len(page.encode()) / 1e6)
