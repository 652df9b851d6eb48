// The run explorer: heatmaps, a cell's panel, the detectors and a second run's difference.
// Plain DOM and SVG; the data is the JSON element the page embeds (truthmap.explorer).
"use strict";

const DATA = JSON.parse(document.getElementById("truthmap-data").textContent);
const SVG_NS = "http://www.w3.org/2000/svg";
const CELL_W = 42, CELL_H = 17, LEFT = 44, TOP = 118;

function el(tag, attrs, text) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function fmt(x, digits = 3) {
  return x === null || x === undefined || Number.isNaN(x) ? "n/a" : Number(x).toFixed(digits);
}

function signed(x, digits = 2) {
  return (x > 0 ? "+" : "") + x.toFixed(digits);
}

function layerName(layer) {
  return layer === -1 ? "emb" : String(layer);
}

function cellKey(site, layer, token) {
  return site + "|" + layer + "|" + token;
}

function colour(scale, value) {
  if (value === null || value === undefined) return "#e8e8e8";
  const t = Math.min(1, Math.max(0, (value - scale.vmin) / (scale.vmax - scale.vmin)));
  return scale.colors[Math.round(t * (scale.colors.length - 1))];
}

function textColour(scale, value) {
  if (value === null) return "#555";
  const hex = colour(scale, value);
  const [r, g, b] = [1, 3, 5].map(i => parseInt(hex.slice(i, i + 2), 16));
  return 0.299 * r + 0.587 * g + 0.114 * b < 140 ? "#fff" : "#111";
}

function cellMap(cells) {
  return new Map(cells.map(c => [cellKey(c.site, c.layer, c.token), c]));
}

const CELLS = cellMap(DATA.cells);
const tooltip = document.getElementById("tooltip");

function showTip(event, html) {
  tooltip.innerHTML = html;
  tooltip.hidden = false;
  tooltip.style.left = (event.clientX + 14) + "px";
  tooltip.style.top = (event.clientY + 12) + "px";
}

function hideTip() {
  tooltip.hidden = true;
}

function cellTip(c) {
  const head = `<b>${c.site} · layer ${layerName(c.layer)} · ${c.token}</b><br>`;
  if (c.auc === null) return head + `skipped: ${c.reason || "no AUC"}`;
  return head + `AUC ${fmt(c.auc)} [${fmt(c.ci_low)}, ${fmt(c.ci_high)}]<br>n = ${c.n_test} test questions ` +
    `(${c.n_test_wrong} wrong)`;
}

// ------------------------------------------------------------------ heatmaps

function drawGrid(container, site, valueOf, scale, tipOf, onClick, annotate) {
  const fig = el("figure", {"class": "heatmap", "data-site": site});
  fig.append(el("figcaption", {}, site));
  const width = LEFT + DATA.tokens.length * CELL_W + 70, height = TOP + DATA.layers.length * CELL_H + 10;
  const svg = el("svg:svg", {width, height, "data-site": site});
  DATA.tokens.forEach((token, j) => {
    const x = LEFT + j * CELL_W + CELL_W / 2;
    svg.append(el("svg:text", {x, y: TOP - 6, transform: `rotate(-55 ${x} ${TOP - 6})`, "font-size": 11}, token));
  });
  svg.append(el("svg:text", {x: 2, y: TOP - 6, "font-size": 11, "font-weight": 600}, "layer"));
  DATA.layers.forEach((layer, i) => {
    const y = TOP + i * CELL_H;
    svg.append(el("svg:text", {x: LEFT - 6, y: y + CELL_H - 4, "text-anchor": "end", "font-size": 11}, layerName(layer)));
    DATA.tokens.forEach((token, j) => {
      const value = valueOf(layer, token);
      const x = LEFT + j * CELL_W;
      const rect = el("svg:rect", {x, y, width: CELL_W - 1, height: CELL_H - 1, fill: colour(scale, value),
        "class": "cell", "data-site": site, "data-layer": layer, "data-token": token});
      rect.addEventListener("mousemove", e => showTip(e, tipOf(layer, token)));
      rect.addEventListener("mouseleave", hideTip);
      if (onClick) rect.addEventListener("click", () => onClick(site, layer, token));
      svg.append(rect);
      if (annotate && value !== null) {
        svg.append(el("svg:text", {x: x + CELL_W / 2, y: y + CELL_H - 5, "text-anchor": "middle", "font-size": 10,
          fill: textColour(scale, value), "pointer-events": "none"}, annotate(value)));
      }
    });
  });
  drawLegend(svg, scale, LEFT + DATA.tokens.length * CELL_W + 14, TOP, DATA.layers.length * CELL_H);
  fig.append(svg);
  container.append(fig);
  return svg;
}

function drawLegend(svg, scale, x, y, height) {
  const n = scale.colors.length;
  scale.colors.forEach((c, i) => {
    svg.append(el("svg:rect", {x, y: y + height - (i + 1) * height / n, width: 12, height: height / n + 0.5, fill: c}));
  });
  [scale.vmax, (scale.vmin + scale.vmax) / 2, scale.vmin].forEach((v, i) => {
    svg.append(el("svg:text", {x: x + 16, y: y + 4 + i * height / 2, "font-size": 10}, v.toFixed(2)));
  });
}

function drawHeatmaps() {
  const box = document.getElementById("heatmaps");
  for (const site of DATA.sites) {
    const svg = drawGrid(box, site, (layer, token) => {
      const c = CELLS.get(cellKey(site, layer, token));
      return c ? c.auc : null;
    }, DATA.scale, (layer, token) => {
      const c = CELLS.get(cellKey(site, layer, token));
      return c ? cellTip(c) : "not probed";
    }, selectCell, v => v.toFixed(2));
    for (const [family, chosen] of Object.entries(DATA.chosen || {})) {
      if (!chosen || chosen.site !== site) continue;
      const i = DATA.layers.indexOf(chosen.layer), j = DATA.tokens.indexOf(chosen.token);
      if (i < 0 || j < 0) continue;
      const mark = el("svg:rect", {x: LEFT + j * CELL_W, y: TOP + i * CELL_H, width: CELL_W - 1, height: CELL_H - 1,
        "class": "chosen"});
      mark.append(el("svg:title", {}, `chosen (${family})`));
      svg.append(mark);
    }
  }
}

// ------------------------------------------------------------------ a cell's panel

let current = null;

function rocPoints(scores, wrong) {
  // Thresholds at every distinct score, highest first; ties move both rates at once.
  const order = scores.map((s, i) => i).sort((a, b) => scores[b] - scores[a]);
  const pos = wrong.filter(w => w).length, neg = wrong.length - pos;
  const points = [[0, 0]];
  let tp = 0, fp = 0;
  for (let k = 0; k < order.length; k++) {
    if (wrong[order[k]]) tp++; else fp++;
    if (k + 1 < order.length && scores[order[k + 1]] === scores[order[k]]) continue;
    points.push([fp / neg, tp / pos]);
  }
  return points;
}

function area(points) {
  let a = 0;
  for (let k = 1; k < points.length; k++) {
    a += (points[k][0] - points[k - 1][0]) * (points[k][1] + points[k - 1][1]) / 2;
  }
  return a;
}

function drawRoc(scores, wrong) {
  const svg = document.getElementById("roc");
  svg.replaceChildren();
  const m = 36, size = 280 - m - 10;
  const X = x => m + x * size, Y = y => 10 + (1 - y) * size;
  svg.append(el("svg:rect", {x: m, y: 10, width: size, height: size, fill: "none", stroke: "#999"}));
  svg.append(el("svg:line", {x1: X(0), y1: Y(0), x2: X(1), y2: Y(1), stroke: "#999", "stroke-dasharray": "4 3",
    id: "roc-chance"}));
  [0, 0.5, 1].forEach(t => {
    svg.append(el("svg:text", {x: X(t), y: 10 + size + 14, "text-anchor": "middle", "font-size": 10}, t));
    svg.append(el("svg:text", {x: m - 4, y: Y(t) + 3, "text-anchor": "end", "font-size": 10}, t));
  });
  svg.append(el("svg:text", {x: m + size / 2, y: 278, "text-anchor": "middle", "font-size": 11},
    "false positive rate (right answers flagged)"));
  svg.append(el("svg:text", {x: 10, y: 10 + size / 2, transform: `rotate(-90 10 ${10 + size / 2})`,
    "text-anchor": "middle", "font-size": 11}, "true positive rate"));
  const pts = rocPoints(scores, wrong);
  const d = pts.map((p, k) => (k ? "L" : "M") + X(p[0]).toFixed(1) + "," + Y(p[1]).toFixed(1)).join("");
  const auc = area(pts);
  svg.append(el("svg:path", {d, fill: "none", stroke: "#1f4e9c", "stroke-width": 2, id: "roc-curve",
    "data-auc": auc.toFixed(6), "data-points": pts.length}));
  return auc;
}

function drawHistogram(scores, wrong) {
  const svg = document.getElementById("hist");
  svg.replaceChildren();
  const m = 36, w = 360 - m - 10, h = 280 - 50, bins = 20;
  // Bins span the 1st to 99th percentile; the few scores beyond fall in the edge bins.
  const sorted = [...scores].sort((a, b) => a - b);
  const quantile = q => sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))))];
  const lo = quantile(0.01), hi = quantile(0.99) > lo ? quantile(0.99) : lo + 1, step = (hi - lo) / bins;
  const counts = [new Array(bins).fill(0), new Array(bins).fill(0)];
  scores.forEach((s, i) => counts[wrong[i]][Math.min(bins - 1, Math.max(0, Math.floor((s - lo) / step)))]++);
  const totals = [wrong.length - wrong.filter(x => x).length, wrong.filter(x => x).length];
  const dens = counts.map((c, k) => c.map(v => totals[k] ? v / totals[k] : 0));
  const top = Math.max(...dens[0], ...dens[1]) || 1;
  const X = v => m + (v - lo) / (hi - lo) * w, Y = f => 10 + (1 - f / top) * h;
  svg.append(el("svg:line", {x1: m, y1: 10 + h, x2: m + w, y2: 10 + h, stroke: "#999"}));
  const colours = ["#2ca02c", "#d62728"], names = ["right", "wrong"];
  [0, 1].forEach(k => {
    dens[k].forEach((f, b) => {
      if (!f) return;
      svg.append(el("svg:rect", {x: X(lo + b * step), y: Y(f), width: Math.max(1, w / bins - 1), height: 10 + h - Y(f),
        fill: colours[k], "fill-opacity": 0.45, "class": "bar-" + names[k]}));
    });
    svg.append(el("svg:rect", {x: m + w - 90, y: 14 + k * 16, width: 10, height: 10, fill: colours[k], "fill-opacity": 0.6}));
    svg.append(el("svg:text", {x: m + w - 76, y: 23 + k * 16, "font-size": 11}, `${names[k]} (${totals[k]})`));
  });
  [lo, (lo + hi) / 2, hi].forEach(v => svg.append(el("svg:text", {x: X(v), y: 10 + h + 14, "text-anchor": "middle",
    "font-size": 10}, v.toFixed(1))));
  svg.append(el("svg:text", {x: m + w / 2, y: 276, "text-anchor": "middle", "font-size": 11},
    "probe score (higher: more likely wrong; 1st-99th percentile)"));
  svg.append(el("svg:text", {x: 10, y: 10 + h / 2, transform: `rotate(-90 10 ${10 + h / 2})`, "text-anchor": "middle",
    "font-size": 11}, "share of the class"));
}

function statRows(c, rocAuc) {
  const level = `${Math.round(100 * DATA.ci_level)}% interval`;
  const rows = [
    ["test AUC", c.auc === null ? `skipped: ${c.reason}` : `${fmt(c.auc)} [${fmt(c.ci_low)}, ${fmt(c.ci_high)}] (${level})`],
    ["ROC area of the scores shown", rocAuc === null ? "n/a" : fmt(rocAuc)],
    ["test questions", c.n_test === null ? "n/a" : `${c.n_test} (${c.n_test_wrong} wrong)`],
    ["training questions", c.n_train === null ? "n/a" : `${c.n_train} (${c.n_train_wrong} wrong)`],
  ];
  if (c.split_aucs.length > 1) {
    rows.push([`over ${c.split_aucs.length} seeded splits`, `${fmt(c.auc_split_mean)} ± ${fmt(c.auc_split_std)}`]);
  }
  if (c.auc_within_group !== null) {
    rows.push([`within ${DATA.group_field} (${c.groups} groups)`,
      `${fmt(c.auc_within_group)} [${fmt(c.within_ci_low)}, ${fmt(c.within_ci_high)}]`]);
  }
  rows.push(["CV AUC on training questions", c.cv_auc === null ? "n/a" : `${fmt(c.cv_auc)} (${c.cv_folds} folds)`]);
  rows.push(["training AUC", fmt(c.train_auc)]);
  if (c.n_excluded) rows.push(["labelled questions not used", String(c.n_excluded)]);
  if (other) {
    const o = other.cells.get(cellKey(c.site, c.layer, c.token));
    rows.push([`in ${other.data.title}`, o && o.auc !== null ? `${fmt(o.auc)} [${fmt(o.ci_low)}, ${fmt(o.ci_high)}]` : "not probed"]);
  }
  return rows;
}

function selectCell(site, layer, token) {
  const c = CELLS.get(cellKey(site, layer, token));
  if (!c) return;
  current = c;
  document.querySelectorAll("rect.cell.selected").forEach(r => r.classList.remove("selected"));
  const sel = `#heatmaps rect.cell[data-site="${site}"][data-layer="${layer}"][data-token="${token}"]`;
  document.querySelectorAll(sel).forEach(r => r.classList.add("selected"));
  const title = document.getElementById("cell-title");
  title.textContent = `${site} · layer ${layerName(layer)} · ${token}`;
  Object.assign(title.dataset, {site, layer: String(layer), token});
  const qs = DATA.question_sets[c.qset];
  const wrong = qs.map(i => DATA.questions[i].wrong);
  const rocAuc = c.scores.length ? drawRoc(c.scores, wrong) : null;
  if (!c.scores.length) {
    document.getElementById("roc").replaceChildren();
    document.getElementById("hist").replaceChildren();
  } else {
    drawHistogram(c.scores, wrong);
  }
  const stats = document.getElementById("cell-stats");
  stats.replaceChildren();
  for (const [k, v] of statRows(c, rocAuc)) {
    stats.append(el("dt", {}, k));
    stats.append(el("dd", {}, v));
  }
  drawQuestions();
}

function withExact(parent, text, from, to, exact) {
  // text[from:to] into parent, the part inside the exact answer's span highlighted.
  const cuts = [from, to];
  if (exact) cuts.push(Math.min(to, Math.max(from, exact[0])), Math.min(to, Math.max(from, exact[1])));
  const bounds = [...new Set(cuts)].sort((a, b) => a - b);
  for (let k = 0; k + 1 < bounds.length; k++) {
    const [a, b] = [bounds[k], bounds[k + 1]];
    const piece = document.createTextNode(text.slice(a, b));
    if (exact && a >= exact[0] && b <= exact[1]) {
      const m = el("mark", {"class": "exact"});
      m.append(piece);
      parent.append(m);
    } else {
      parent.append(piece);
    }
  }
}

function answerNode(q, mark) {
  // The answer with the exact answer highlighted; the probed token is one box around its characters.
  const td = el("td", {"class": "answer"});
  const text = q.answer;
  const probe = Array.isArray(mark) && mark[1] > mark[0] ? mark : null;
  if (probe) {
    withExact(td, text, 0, probe[0], q.exact);
    const box = el("span", {"class": "probe", title: "the probed token"});
    withExact(box, text, probe[0], probe[1], q.exact);
    td.append(box);
    withExact(td, text, probe[1], text.length, q.exact);
  } else {
    withExact(td, text, 0, text.length, q.exact);
  }
  if (Array.isArray(mark) && mark[1] === mark[0]) td.append(el("span", {"class": "probe special", title: "the end-of-sequence token"}, "⟨eos⟩"));
  if (typeof mark === "string") td.append(el("span", {"class": "prompt-token"}, `probed: the prompt's token “${mark}”`));
  if (mark === null) td.append(el("span", {"class": "prompt-token"}, "this position is masked for this answer"));
  return td;
}

function drawQuestions() {
  const body = document.querySelector("#questions tbody");
  body.replaceChildren();
  if (!current) return;
  const group = document.getElementById("filter-group").value;
  const label = document.getElementById("filter-label").value;
  const qs = DATA.question_sets[current.qset];
  const t = DATA.tokens.indexOf(current.token);
  const rows = qs.map((qi, k) => ({q: DATA.questions[qi], score: current.scores[k]}))
    .sort((a, b) => b.score - a.score);
  let shown = 0;
  for (const {q, score} of rows) {
    if (group && q.group !== group) continue;
    if (label && String(q.wrong) !== label) continue;
    shown++;
    const tr = el("tr", {"class": q.wrong ? "wrong" : "right", "data-id": q.id});
    tr.append(el("td", {"class": "num"}, score.toFixed(3)));
    tr.append(el("td", {}, q.wrong ? "wrong" : "right"));
    tr.append(el("td", {}, q.group === null ? "" : q.group));
    tr.append(el("td", {}, q.question));
    tr.append(answerNode(q, q.marks[t]));
    tr.append(el("td", {}, q.aliases.join(" | ")));
    body.append(tr);
  }
  const count = document.getElementById("row-count");
  count.textContent = `${shown} of ${rows.length} test questions, sorted by the probe's score`;
  count.dataset.rows = String(shown);
}

function fillFilters() {
  const groups = [...new Set(DATA.questions.map(q => q.group).filter(g => g !== null))].sort();
  const select = document.getElementById("filter-group");
  for (const g of groups) select.append(el("option", {value: g}, g));
  document.getElementById("group-head").textContent = DATA.group_field;
  select.addEventListener("change", drawQuestions);
  document.getElementById("filter-label").addEventListener("change", drawQuestions);
}

// ------------------------------------------------------------------ detectors

const DETECTOR_COLUMNS = [
  ["method", "method"], ["auc", "AUC"], ["ci_low", "low"], ["ci_high", "high"], ["p_vs_best_probe", "p vs best probe"],
  ["n", "n"], ["n_wrong", "wrong"], ["auc_within_group", "within groups"], ["train_auc", "training AUC"],
  ["detail", "detail"],
];
let detectorSort = {key: "auc", dir: -1};

function drawDetectorTable() {
  const table = document.getElementById("detectors");
  const head = table.tHead;
  head.replaceChildren();
  const tr = el("tr");
  for (const [key, name] of DETECTOR_COLUMNS) {
    const th = el("th", {"data-key": key}, name);
    if (key === detectorSort.key) th.classList.add(detectorSort.dir > 0 ? "asc" : "desc");
    th.addEventListener("click", () => {
      detectorSort = {key, dir: detectorSort.key === key ? -detectorSort.dir : (key === "method" || key === "detail" ? 1 : -1)};
      drawDetectorTable();
    });
    tr.append(th);
  }
  head.append(tr);
  const rows = [...DATA.detectors].sort((a, b) => {
    const [x, y] = [a[detectorSort.key], b[detectorSort.key]];
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    return (x < y ? -1 : 1) * detectorSort.dir;
  });
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const r of rows) {
    const row = el("tr", {"data-method": r.method});
    for (const [key] of DETECTOR_COLUMNS) {
      const v = r[key];
      const text = typeof v === "number" ? (Number.isInteger(v) ? String(v) : (key === "p_vs_best_probe" ? v.toPrecision(2) : fmt(v))) : (v ?? "");
      row.append(el("td", {"class": typeof v === "number" ? "num" : ""}, text || (v === null ? "n/a" : "")));
    }
    body.append(row);
  }
}

function drawDetectorPlot() {
  const rows = DATA.detectors.filter(r => r.auc !== null).sort((a, b) => b.auc - a.auc);
  const svg = document.getElementById("detector-plot");
  const left = 210, w = 420, rowH = 20;
  svg.setAttribute("width", left + w + 30);
  svg.setAttribute("height", rows.length * rowH + 40);
  const lo = Math.min(0.4, ...rows.map(r => r.ci_low ?? r.auc)), hi = 1;
  const X = v => left + (v - lo) / (hi - lo) * w;
  svg.append(el("svg:line", {x1: X(0.5), y1: 4, x2: X(0.5), y2: rows.length * rowH + 8, stroke: "#999",
    "stroke-dasharray": "4 3"}));
  rows.forEach((r, i) => {
    const y = 14 + i * rowH;
    svg.append(el("svg:text", {x: left - 8, y: y + 4, "text-anchor": "end", "font-size": 11}, r.method));
    if (r.ci_low !== null && r.ci_high !== null) {
      svg.append(el("svg:line", {x1: X(r.ci_low), y1: y, x2: X(r.ci_high), y2: y, stroke: "#1f4e9c", "stroke-width": 2}));
    }
    const dot = el("svg:circle", {cx: X(r.auc), cy: y, r: 4, fill: "#1f4e9c"});
    dot.append(el("svg:title", {}, `${r.method}: ${fmt(r.auc)} [${fmt(r.ci_low)}, ${fmt(r.ci_high)}]`));
    svg.append(dot);
  });
  const axisY = rows.length * rowH + 22;
  for (let v = Math.ceil(lo * 10) / 10; v <= hi + 1e-9; v += 0.1) {
    svg.append(el("svg:text", {x: X(v), y: axisY, "text-anchor": "middle", "font-size": 10}, v.toFixed(1)));
  }
  svg.append(el("svg:text", {x: left + w / 2, y: axisY + 14, "text-anchor": "middle", "font-size": 11}, "test ROC AUC"));
}

// ------------------------------------------------------------------ a second run

let other = null;

function readOther(text) {
  const doc = new DOMParser().parseFromString(text, "text/html");
  const node = doc.getElementById("truthmap-data");
  if (!node) throw new Error("this file is not a truthmap explorer page");
  const data = JSON.parse(node.textContent);
  return {data, cells: cellMap(data.cells)};
}

function pairedCell(site, layer, token) {
  // The other run's cell where both runs have an AUC there, else null.
  const c = CELLS.get(cellKey(site, layer, token)), o = other.cells.get(cellKey(site, layer, token));
  return c && o && c.auc !== null && o.auc !== null ? o : null;
}

function drawDifference() {
  const box = document.getElementById("diff-heatmaps");
  box.replaceChildren();
  const diffs = [];
  let apart = 0;
  for (const c of DATA.cells) {
    const o = pairedCell(c.site, c.layer, c.token);
    if (!o) continue;
    diffs.push(c.auc - o.auc);
    if (c.ci_low > o.ci_high || o.ci_low > c.ci_high) apart++;
  }
  const status = document.getElementById("compare-status");
  if (!diffs.length) {
    status.textContent = `${other.data.title}: no cell in common with this run.`;
    return;
  }
  const mean = diffs.reduce((a, b) => a + b, 0) / diffs.length;
  status.textContent = `This run (${DATA.title}) minus ${other.data.title}: ${diffs.length} cells in common, ` +
    `mean difference ${signed(mean, 3)}; ${apart} cells whose intervals do not overlap.`;
  status.dataset.cells = String(diffs.length);
  for (const site of DATA.sites) {
    drawGrid(box, site, (layer, token) => {
      const o = pairedCell(site, layer, token);
      return o ? CELLS.get(cellKey(site, layer, token)).auc - o.auc : null;
    }, DATA.diff_scale, (layer, token) => {
      const c = CELLS.get(cellKey(site, layer, token)), o = pairedCell(site, layer, token);
      if (!o) return "not in both runs";
      return `<b>${site} · layer ${layerName(layer)} · ${token}</b><br>this run ${fmt(c.auc)} [${fmt(c.ci_low)}, ` +
        `${fmt(c.ci_high)}]<br>other ${fmt(o.auc)} [${fmt(o.ci_low)}, ${fmt(o.ci_high)}]<br>difference ${signed(c.auc - o.auc, 3)}`;
    }, selectCell, v => signed(v));
  }
}

document.getElementById("compare-file").addEventListener("change", event => {
  const file = event.target.files[0];
  if (!file) return;
  file.text().then(text => {
    try {
      other = readOther(text);
    } catch (err) {
      document.getElementById("compare-status").textContent = `${file.name}: ${err.message}`;
      return;
    }
    drawDifference();
    if (current) selectCell(current.site, current.layer, current.token);
  });
});

// ------------------------------------------------------------------ start

function summary() {
  const n = DATA.questions.length, wrong = DATA.questions.filter(q => q.wrong).length;
  const ok = DATA.cells.filter(c => c.auc !== null).length;
  return `${DATA.cells.length} cells (${ok} with an AUC) over ${DATA.layers.length} layers and ` +
    `${DATA.tokens.length} token positions; ${n} test questions, ${wrong} answered wrongly.`;
}

document.getElementById("run-summary").textContent = summary();
drawHeatmaps();
fillFilters();
drawDetectorTable();
drawDetectorPlot();
const first = Object.values(DATA.chosen || {}).find(c => c && CELLS.has(cellKey(c.site, c.layer, c.token)));
const start = first || DATA.cells.find(c => c.auc !== null) || DATA.cells[0];
if (start) selectCell(start.site, start.layer, start.token);
