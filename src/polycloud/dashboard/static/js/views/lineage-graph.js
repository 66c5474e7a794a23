// The lineage graph as an SVG: a layered layout in columns by kind (datasets → job runs → models →
// service rollouts → clusters), each column ordered by the barycentre of its nodes' neighbours (a few
// sweeps each way), which removes most crossings of graphs this size without a layout library.

import { html, usd } from "../format.js";

export const NODE_W = 190;
export const NODE_H = 64;
const GAP_X = 100; // room for an edge's label between columns
const GAP_Y = 18;
const PAD = 14;
const SWEEPS = 4;
const NAME_CHARS = 24;

const COLUMN = { dataset: 0, "job-run": 1, model: 2, artifact: 2, "service-rollout": 3, cluster: 4 };
export const KIND_LABEL = {
  dataset: "dataset",
  "job-run": "job run",
  model: "model",
  artifact: "artifact",
  "service-rollout": "service rollout",
  cluster: "cluster",
};

/** The API's graph with a node per cluster a rollout ran on (an `on` edge to it): where each served. */
export function withClusters(graph) {
  const nodes = [...graph.nodes];
  const edges = [...graph.edges];
  const clusters = new Map();
  for (const n of graph.nodes) {
    if (n.kind !== "service-rollout" || !n.cluster) continue;
    const id = `cluster:${n.cluster}`;
    if (!clusters.has(id)) {
      const where = { cluster: n.cluster, provider: n.provider, region: n.region, jurisdiction: n.jurisdiction };
      clusters.set(id, { id, kind: "cluster", name: n.cluster, ...where });
    }
    edges.push({ from: n.id, to: id, kind: "on", costUSD: null });
  }
  return { nodes: nodes.concat([...clusters.values()]), edges };
}

export const column = (n) => COLUMN[n.kind] ?? 2;
const sortKey = (n) => `${n.job || n.name || n.sha256 || n.id}\u0000${String(n.revision ?? "").padStart(6, "0")}\u0000${n.cluster || ""}\u0000${n.startedAt || ""}`;

/** Positions of every node: `{at: Map(id → {x, y}), width, height}`. */
export function layout(nodes, edges) {
  const used = [...new Set(nodes.map(column))].sort((a, b) => a - b);
  const columns = used.map((c) =>
    nodes.filter((n) => column(n) === c).sort((a, b) => sortKey(a).localeCompare(sortKey(b))),
  );
  const near = new Map(nodes.map((n) => [n.id, []]));
  for (const e of edges) {
    if (near.has(e.from) && near.has(e.to)) {
      near.get(e.from).push(e.to);
      near.get(e.to).push(e.from);
    }
  }
  const place = new Map(); // id -> position in its column, centred (columns are drawn centred)
  const number = (col) => col.forEach((n, i) => place.set(n.id, i - (col.length - 1) / 2));
  columns.forEach(number);
  const columnOf = new Map(nodes.map((n) => [n.id, column(n)]));
  const barycentre = (n) => {
    const others = near.get(n.id).filter((id) => columnOf.get(id) !== columnOf.get(n.id));
    if (!others.length) return place.get(n.id);
    return others.reduce((sum, id) => sum + place.get(id), 0) / others.length;
  };
  for (let sweep = 0; sweep < SWEEPS; sweep++) {
    const order = sweep % 2 ? [...columns.keys()].reverse() : [...columns.keys()];
    for (const c of order) {
      const weights = new Map(columns[c].map((n) => [n.id, barycentre(n)]));
      columns[c].sort((a, b) => weights.get(a.id) - weights.get(b.id) || place.get(a.id) - place.get(b.id));
      number(columns[c]);
    }
  }
  const tallest = Math.max(...columns.map((col) => col.length));
  const height = tallest * (NODE_H + GAP_Y) - GAP_Y;
  const at = new Map();
  columns.forEach((col, c) => {
    const top = PAD + (height - (col.length * (NODE_H + GAP_Y) - GAP_Y)) / 2;
    col.forEach((n, i) => at.set(n.id, { x: PAD + c * (NODE_W + GAP_X), y: top + i * (NODE_H + GAP_Y) }));
  });
  return { at, width: PAD * 2 + columns.length * NODE_W + (columns.length - 1) * GAP_X, height: height + PAD * 2 };
}

// A node has room for the minute a run started; the details and tables give the second.
const when = (iso) =>
  iso ? new Date(iso).toLocaleString("en-GB", { hour12: false, dateStyle: "short", timeStyle: "short" }) : "not started";
const short = (text, chars = NAME_CHARS) => (text.length > chars ? `${text.slice(0, chars - 1)}…` : text);
const base = (path) => String(path).split("/").pop();

/** A node's name in a line: what a person calls it. */
export function title(n) {
  switch (n.kind) {
    case "job-run":
      return `${n.job} r${n.revision ?? "?"}${n.attempt ? ` attempt ${n.attempt}` : ""}`;
    case "service-rollout":
      return `${n.job} r${n.revision ?? "?"} on ${n.cluster ?? "?"}`;
    case "model":
      return `sha256:${n.sha256.slice(0, 12)}…`;
    case "artifact":
      return base(n.name);
    default:
      return n.name ?? n.id;
  }
}

/** The node's third line: where and when, or what it is. */
function meta(n) {
  switch (n.kind) {
    case "job-run":
    case "service-rollout":
      return `${n.cluster ?? "?"} · ${when(n.startedAt)}`;
    case "model":
      return n.paths.length ? base(n.paths[0]) : "";
    case "cluster":
      return [n.provider && n.region ? `${n.provider}/${n.region}` : n.provider, n.jurisdiction].filter(Boolean).join(" · ");
    case "dataset":
      return [n.cluster, n.sizeGB != null ? `${n.sizeGB} GB` : null, n.residency ? `stays in ${n.residency}` : null]
        .filter(Boolean)
        .join(" · ");
    default:
      return n.namespace ?? "";
  }
}

/** What hovering a node says (its <title>): every fact, one a line. */
export function facts(n) {
  return Object.entries(n)
    .filter(([k, v]) => k !== "id" && v !== null && v !== undefined && v !== "")
    .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ") : v}`);
}

export function edgeLabel(e) {
  return e.costUSD === null || e.costUSD === undefined ? e.kind : `${e.kind} ${usd(e.costUSD)}`;
}

function nodeSvg(n, p, roots) {
  const state = n.state ? html`<text class="state" x="${NODE_W - 8}" y="16" text-anchor="end">${n.state}</text>` : "";
  return html`<g class="node" tabindex="0" data-id="${n.id}" data-kind="${n.kind}" data-state="${n.state || ""}"
      data-root="${roots.has(n.id) ? "yes" : "no"}" transform="translate(${p.x},${p.y})">
    <title>${[`${KIND_LABEL[n.kind] || n.kind} ${title(n)}`, ...facts(n)].join("\n")}</title>
    <rect class="box" width="${NODE_W}" height="${NODE_H}" rx="6"></rect>
    <rect class="bar" width="5" height="${NODE_H}" rx="2"></rect>
    <text class="kind" x="12" y="16">${KIND_LABEL[n.kind] || n.kind}</text>${state}
    <text class="name" x="12" y="36">${short(title(n))}</text>
    <text class="meta" x="12" y="54">${short(meta(n), 30)}</text>
  </g>`;
}

function edgeSvg(e, a, b, names) {
  const [x1, y1, x2, y2] = [a.x + NODE_W, a.y + NODE_H / 2, b.x, b.y + NODE_H / 2];
  const dx = Math.max(40, Math.abs(x2 - x1) / 2);
  const d = `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2 - 2},${y2}`;
  // A symmetric cubic's midpoint is the midpoint of its ends.
  const [mx, my] = [(x1 + x2) / 2, (y1 + y2) / 2];
  return html`<g class="edge" data-kind="${e.kind}" data-from="${e.from}" data-to="${e.to}">
    <title>${names(e.from)} → ${names(e.to)}: ${edgeLabel(e)}</title>
    <path d="${d}" marker-end="url(#lineage-arrow)"></path>
    <text x="${mx}" y="${my - 4}" text-anchor="middle">${edgeLabel(e)}</text>
  </g>`;
}

/** The whole SVG (escaped markup) of `graph` (nodes and edges, clusters included). */
export function render(graph, roots, query) {
  const { at, width, height } = layout(graph.nodes, graph.edges);
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const names = (id) => (byId.has(id) ? `${KIND_LABEL[byId.get(id).kind]} ${title(byId.get(id))}` : id);
  const edges = graph.edges.filter((e) => at.has(e.from) && at.has(e.to));
  const label = `Lineage of ${query}: ${graph.nodes.length} nodes and ${edges.length} edges, listed in the tables below`;
  return html`<svg class="lineage-graph" role="img" aria-label="${label}" width="${width}" height="${height}"
      viewBox="0 0 ${width} ${height}" xmlns="http://www.w3.org/2000/svg">
    <defs><marker id="lineage-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8"
      orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"></path></marker></defs>
    <g class="edges">${edges.map((e) => edgeSvg(e, at.get(e.from), at.get(e.to), names))}</g>
    <g class="nodes">${graph.nodes.map((n) => nodeSvg(n, at.get(n.id), roots))}</g>
  </svg>`;
}
