// Lineage: where a model came from and where it is served, as a graph (docs/lineage.md). The address
// carries what is traced (#/lineage/NAME, or #/lineage/NAME?depth=N), so a trace can be linked; the
// search box suggests every name the API has lineage for (GET /lineage). Tables of the nodes and edges
// under the graph say the same in text.

import { api, ApiError } from "../api.js";
import { html, rowsOr, time, usd } from "../format.js";
import { KIND_LABEL, column, facts, render, title, withClusters } from "./lineage-graph.js";

const DEFAULT_DEPTH = 6;
const MAX_DEPTH = 50;
const TRACEABLE = { dataset: (n) => n.name, artifact: (n) => n.name, model: (n) => `sha256:${n.sha256}` };

const state = { el: null, ctx: null, names: [], graph: null, selected: null, asked: 0 };

function mount(el, ctx) {
  state.el = el;
  state.ctx = ctx;
  el.innerHTML = html`
    <h2>Lineage</h2>
    <form class="toolbar lineage-pick" data-role="pick" role="search" aria-label="Trace lineage">
      <label for="lineage-name">Trace</label>
      <input id="lineage-name" name="name" type="search" list="lineage-names" required autocomplete="off"
        spellcheck="false" placeholder="a dataset, job, service or sha256:…" size="36">
      <datalist id="lineage-names"></datalist>
      <label for="lineage-depth">Depth</label>
      <input id="lineage-depth" name="depth" type="number" min="1" max="${MAX_DEPTH}" value="${DEFAULT_DEPTH}">
      <button type="submit">Trace</button>
      <span class="muted">datasets → job runs → models → service rollouts → clusters; costs on the edges</span>
    </form>
    <div data-role="message" class="lineage-message" role="status" aria-live="polite"></div>
    <div data-role="drawn" class="lineage-drawn" hidden>
      <div class="lineage-layout">
        <div class="panel lineage-canvas" data-role="canvas"></div>
        <aside class="panel lineage-details" data-role="details" aria-live="polite" aria-label="Node details"></aside>
      </div>
      <div data-role="tables"></div>
    </div>
    <div data-role="choices"></div>`.text;
  part("pick").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    const depth = Number(form.elements.depth.value) || DEFAULT_DEPTH;
    ctx.navigate(address(form.elements.name.value.trim(), depth));
  });
  const canvas = part("canvas");
  const pick = (event) => {
    const node = event.target.closest && event.target.closest("g.node");
    if (node) detail(node.dataset.id);
  };
  canvas.addEventListener("focusin", pick);
  canvas.addEventListener("mouseover", pick);
  canvas.addEventListener("click", pick);
}

function part(name) {
  return state.el.querySelector(`[data-role="${name}"]`);
}

/** The address of a trace: `#/lineage/NAME` (with `?depth=N` when not the default). */
export function address(name, depth = DEFAULT_DEPTH) {
  const query = depth === DEFAULT_DEPTH ? "" : `?depth=${depth}`;
  return `#/lineage/${encodeURIComponent(name)}${query}`;
}

/** What the address asks for: `{name, depth}` (name "" when nothing is chosen). */
function asked() {
  const match = location.hash.match(/^#\/lineage\/?([^?]*)(?:\?(.*))?$/) || [];
  let name = "";
  try {
    name = decodeURIComponent(match[1] || "");
  } catch {
    name = match[1] || "";
  }
  const depth = Number(new URLSearchParams(match[2] || "").get("depth")) || DEFAULT_DEPTH;
  return { name, depth: Math.min(MAX_DEPTH, Math.max(1, depth)) };
}

/** On every showing (and change of address): the choices, and the graph the address asks for. */
async function show() {
  const ask = asked();
  const form = part("pick");
  form.elements.name.value = ask.name;
  form.elements.depth.value = ask.depth;
  const turn = ++state.asked; // a newer address wins over an answer still on its way
  const [names, graph] = await Promise.all([loadNames(), ask.name ? load(ask) : null]);
  if (turn !== state.asked) return;
  state.names = names;
  fillChoices();
  if (!ask.name) nothingChosen();
  else if (graph) draw(graph, ask);
  state.el.dataset.traced = ask.name;
  state.el.dataset.ready = "1";
}

async function loadNames() {
  try {
    return (await api.get("/lineage")).names;
  } catch {
    return state.names; // the suggestions are a help: the trace itself says what went wrong
  }
}

async function load(ask) {
  try {
    return await api.get(`/lineage/${encodeURIComponent(ask.name)}?depth=${ask.depth}`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) notFound(ask.name);
    else failed(e.message);
    return null;
  }
}

// ------------------------------------------------------------------------------------ the states

function message(markup, kind = "") {
  const el = part("message");
  el.className = `lineage-message ${kind}`;
  el.innerHTML = markup.text;
}

function nothingChosen() {
  part("drawn").hidden = true;
  message(
    state.names.length
      ? html`<p>Pick what to trace: a dataset, a job, a service or a model digest.</p>`
      : html`<p>No lineage is recorded yet: it is, as soon as a job runs or a service rolls out.</p>`,
  );
  choices();
}

function notFound(name) {
  part("drawn").hidden = true;
  message(
    html`<div class="panel lineage-empty" data-role="empty"><strong>Nothing by that name has lineage:</strong>
      <code>${name}</code>. No run, dataset or model digest by that name has events yet (or none your token
      may see).</div>`,
  );
  choices();
}

function failed(reason) {
  part("drawn").hidden = true;
  message(html`<p class="error" role="alert">Could not trace: ${reason}</p>`);
  state.ctx.toast(`Lineage: ${reason}`, "error");
}

/** Every traceable name as a link, by kind (the search box suggests the same). */
function choices() {
  const byKind = new Map();
  state.names.forEach((n) => byKind.set(n.kind, [...(byKind.get(n.kind) || []), n]));
  part("choices").innerHTML = html`${[...byKind].map(
    ([kind, names]) => html`<div class="lineage-choices" data-kind="${kind}"><h3>${kind}s</h3><ul>${names.map(
      (n) => html`<li><a href="${address(n.name)}" title="${(n.paths || []).join(", ")}">${
        kind === "model" ? `${n.name.slice(0, 19)}…` : n.name
      }</a> <span class="muted">${n.runs} run${n.runs === 1 ? "" : "s"}</span></li>`,
    )}</ul></div>`,
  )}`.text;
}

function fillChoices() {
  state.el.querySelector("#lineage-names").innerHTML = html`${state.names.map(
    (n) => html`<option value="${n.name}">${n.kind}</option>`,
  )}`.text;
}

// -------------------------------------------------------------------------------------- the graph

function draw(answer, ask) {
  const graph = withClusters(answer);
  state.graph = graph;
  const roots = new Set(answer.roots);
  message(
    html`<p>${graph.nodes.length} nodes within ${ask.depth} steps of <strong>${ask.name}</strong>.
      Hover or focus a node for its details; edges carry the cost of the step (egress of the data read, the
      run's compute).</p>`,
  );
  part("choices").innerHTML = "";
  part("canvas").innerHTML = render(graph, roots, ask.name).text;
  part("tables").innerHTML = tables(graph, roots).text;
  part("drawn").hidden = false;
  state.selected = null;
  detail(answer.roots[0]);
}

function nameOf(id) {
  const n = state.graph.nodes.find((x) => x.id === id);
  return n ? `${KIND_LABEL[n.kind]} ${title(n)}` : id;
}

function detail(id) {
  const n = state.graph && state.graph.nodes.find((x) => x.id === id);
  if (!n || state.selected === id) return;
  state.selected = id;
  state.el.querySelectorAll("g.node[data-selected]").forEach((g) => g.removeAttribute("data-selected"));
  const g = [...state.el.querySelectorAll("g.node")].find((x) => x.dataset.id === id);
  if (g) g.setAttribute("data-selected", "yes");
  const trace = TRACEABLE[n.kind] ? TRACEABLE[n.kind](n) : n.job;
  part("details").innerHTML = html`<h3>${KIND_LABEL[n.kind]} ${title(n)}</h3>
    <dl class="lineage-facts">${facts(n).map((line) => {
      const [k, ...v] = line.split(": ");
      return html`<dt>${k}</dt><dd>${v.join(": ")}</dd>`;
    })}</dl>
    ${trace && trace !== asked().name ? html`<p><a href="${address(trace, asked().depth)}">Trace from here</a></p>` : ""}`.text;
}

function tables(graph, roots) {
  const edges = graph.edges.map(
    (e) => html`<tr data-kind="${e.kind}"><td>${nameOf(e.from)}</td><td>${nameOf(e.to)}</td><td>${e.kind}</td>
      <td class="n">${e.costUSD === null || e.costUSD === undefined ? "—" : usd(e.costUSD)}</td></tr>`,
  );
  const nodes = [...graph.nodes].sort((a, b) => column(a) - column(b)).map(
    (n) => html`<tr data-id="${n.id}"><td>${KIND_LABEL[n.kind]}${roots.has(n.id) ? html` <span class="chip">traced</span>` : ""}</td>
      <td>${title(n)}</td><td>${n.state || "—"}</td><td>${[n.cluster, n.jurisdiction].filter(Boolean).join(" · ") || "—"}</td>
      <td>${n.startedAt ? html`<time datetime="${n.startedAt}">${time(n.startedAt)}</time>` : "—"}</td></tr>`,
  );
  return html`<div class="lineage-tables">
    <table class="lineage-edges"><caption>Edges: from → to, kind and cost (egress of the data read, compute of the run that wrote)</caption>
      <thead><tr><th scope="col">from</th><th scope="col">to</th><th scope="col">kind</th><th scope="col" class="n">cost</th></tr></thead>
      <tbody>${rowsOr(edges, 4, "no edge within that depth")}</tbody></table>
    <table class="lineage-nodes"><caption>Nodes</caption>
      <thead><tr><th scope="col">kind</th><th scope="col">name</th><th scope="col">state</th><th scope="col">where</th><th scope="col">started</th></tr></thead>
      <tbody>${nodes}</tbody></table></div>`;
}

export default { id: "lineage", title: "Lineage", mount, show };
