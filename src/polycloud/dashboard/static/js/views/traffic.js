// Traffic and SLOs: requests per second, p50/p99 and 5xx share over time (per cluster, or for one
// service with its objectives drawn), and each service's error budget and burn rates. For an LLM service
// (protocol openai) the latency is its time to first token and a chart of tokens per second is added.

import { api } from "../api.js";
import { html, num, pct, ms, colour, rowsOr } from "../format.js";

const KEEP = 900;
const COLUMNS = ["rps", "errorRate", "p50Ms", "p99Ms", "promptTokensPerS", "completionTokensPerS"];
const FIGURES = [
  { key: "rps", title: "Requests per second", unit: "req/s" },
  { key: "latency", title: "Latency p50 / p99 (ms)", unit: "ms" },
  { key: "errorRate", title: "5xx share", unit: "" },
];
const TTFT = { key: "latency", title: "Time to first token p50 / p99 (ms)", unit: "ms", ttft: true };
const TOKENS = { key: "tokens", title: "Tokens per second", unit: "tok/s" };
let el, ctx, series = null, charts = [], scope = "clusters", visible = false, sloTimer = null, slo = null;

function names() {
  if (!series) return [];
  return scope === "clusters" ? Object.keys(series.clusters).sort() : [scope];
}

function llm(name) {
  const o = ctx.overview;
  return !!o && o.services.some((s) => s.name === name && s.protocol === "openai");
}

// The charts of the scope: an LLM service's latency is its time to first token, and it has tokens/s;
// every cluster together gets a tokens/s chart when any LLM service runs.
function figures() {
  if (scope !== "clusters" && llm(scope)) return [FIGURES[0], TTFT, FIGURES[2], TOKENS];
  const o = ctx.overview;
  return o && o.services.some((s) => s.protocol === "openai") ? [...FIGURES, TOKENS] : FIGURES;
}

function columns(name) {
  return scope === "clusters" ? series.clusters[name] : series.services[name];
}

function objective() {
  if (scope === "clusters" || !slo) return null;
  const s = slo.services.find((x) => x.service === scope);
  return s ? s.objective : null;
}

function lines(figure) {
  // The chart's series (after x) and a function giving the data columns in the same order.
  const list = names();
  const out = [];
  for (const name of list) {
    if (!columns(name)) continue;
    if (figure.key === "latency") {
      const what = figure.ttft ? "TTFT " : "";
      out.push({ label: `${name} ${what}p50`, stroke: colour(name, list), dash: [4, 4], width: 1.5, col: (c) => c.p50Ms, name });
      out.push({ label: `${name} ${what}p99`, stroke: colour(name, list), width: 2, col: (c) => c.p99Ms, name });
    } else if (figure.key === "tokens") {
      const tokens = (c, k) => c[k] || series.t.map(() => null); // a series from before tokens were sampled
      out.push({ label: `${name} prompt`, stroke: colour(name, list), dash: [4, 4], width: 1.5, col: (c) => tokens(c, "promptTokensPerS"), name });
      out.push({ label: `${name} completion`, stroke: colour(name, list), width: 2, col: (c) => tokens(c, "completionTokensPerS"), name });
    } else {
      out.push({ label: name, stroke: colour(name, list), width: 2, col: (c) => c[figure.key], name,
        value: (u, v) => fmt(figure.key, v) });
    }
  }
  const goal = objective();
  const target = goal && (figure.key === "latency" ? goal.p99Ms : figure.key === "errorRate" ? 1 - goal.availability : null);
  if (target) {
    const label = figure.key === "latency" ? (figure.ttft ? "TTFT p99 objective" : "p99 objective") : "error budget rate";
    out.push({ label, stroke: "#cf222e", dash: [8, 4], width: 1.5, target });
  }
  return out;
}

function dataOf(defs) {
  return [series.t, ...defs.map((d) => (d.target ? series.t.map(() => d.target) : d.col(columns(d.name))))];
}

function build() {
  charts.forEach((c) => c.chart.destroy());
  charts = [];
  const holder = el.querySelector(".charts");
  holder.innerHTML = "";
  if (!series || !series.t.length) {
    holder.innerHTML = html`<p class="muted">No samples yet: they arrive every second while the dashboard is open.</p>`.text;
    return;
  }
  const wide = holder.clientWidth || 900;
  const width = Math.max(360, Math.floor(wide / (wide > 1300 ? 3 : 2)) - 24);
  for (const figure of figures()) {
    const box = document.createElement("div");
    box.className = "panel chart";
    box.dataset.figure = figure.ttft ? "ttft" : figure.key;
    box.innerHTML = html`<h3>${figure.title}${scope === "clusters" ? " per cluster" : ` — ${scope}`}</h3>`.text;
    holder.appendChild(box);
    const defs = lines(figure);
    const opts = {
      width,
      height: 220,
      series: [{}, ...defs.map(({ label, stroke, dash, width, value }) => ({ label, stroke, dash, width, value, points: { show: false } }))],
      axes: [{}, { values: (u, vals) => vals.map((v) => (figure.key === "errorRate" ? pct(v, 1) : num(v, 1))), size: 72 }],
      scales: {
        x: { time: true },
        // A flat zero must not stretch the 5xx axis to 100 %; other figures start at zero too.
        y: { range: (u, min, max) => [0, figure.key === "errorRate" ? Math.max(max, 0.01) : Math.max(max * 1.1, 1)] },
      },
      legend: { show: defs.length <= 12 }, // 20 clusters' legends would dwarf the chart: hover shows values
    };
    charts.push({ figure, defs, chart: new uPlot(opts, dataOf(defs), box) });
  }
}

function fmt(key, v) {
  if (v === null || v === undefined) return "—";
  if (key === "errorRate") return pct(v, 2);
  if (key === "latency") return `${num(v, 1)}`;
  return num(v, 1);
}

function append(o) {
  if (!series) return;
  const t = Date.parse(o.at) / 1000;
  if (series.t.length && t <= series.t[series.t.length - 1]) return;
  series.t.push(t);
  for (const [group, rows] of [["clusters", o.clusters], ["services", o.services]]) {
    const seen = new Set();
    for (const row of rows) {
      seen.add(row.name);
      if (!series[group][row.name]) {
        series[group][row.name] = Object.fromEntries(COLUMNS.map((k) => [k, []]));
        for (const k of Object.keys(series[group][row.name])) series[group][row.name][k] = series.t.slice(0, -1).map(() => null);
      }
      for (const k of COLUMNS) series[group][row.name][k].push(row[k] === undefined ? null : row[k]);
    }
    for (const [name, col] of Object.entries(series[group])) {
      if (!seen.has(name)) for (const k of Object.keys(col)) col[k].push(null);
    }
  }
  if (series.t.length > KEEP) {
    series.t.shift();
    for (const group of ["clusters", "services"]) for (const col of Object.values(series[group])) for (const k of Object.keys(col)) col[k].shift();
  }
}

async function loadSlo() {
  try {
    slo = await api.get("/slo");
  } catch (e) {
    el.querySelector(".slo").innerHTML = html`<p class="error">${e.message}</p>`.text;
    return;
  }
  const rows = slo.services.map((s) => {
    const o = s.overall;
    const left = Math.max(0, Math.min(1, o.budgetLeft));
    const level = left <= 0 ? "out" : left < 0.25 ? "low" : "";
    const burn = o.burnRates;
    const availability = o.availability;
    const ttft = llm(s.service) ? "TTFT " : "";
    return html`<tr data-slo="${s.service}"><th scope="row">${s.service}${s.declared ? "" : html` <span class="muted">(default)</span>`}</th>
      <td class="n">${pct(s.objective.availability, 2)}${s.objective.p99Ms ? ` · ${ttft}p99 ≤ ${s.objective.p99Ms} ms` : ""}</td>
      <td><div class="gauge" role="img" aria-label="availability ${pct(availability, 3)} against objective ${pct(s.objective.availability, 2)}">
        <span class="fill" data-value="${gaugeX(availability)}"></span><span class="objective" data-value="${gaugeX(s.objective.availability)}"></span></div>
        <span class="muted">${pct(availability, 3)}</span></td>
      <td><div class="budget" role="meter" aria-label="error budget left" aria-valuemin="0" aria-valuemax="100" aria-valuenow="${Math.round(left * 100)}">
        <span class="${level}" data-value="${left * 100}"></span></div><span class="muted">${pct(o.budgetLeft, 1)} left</span></td>
      <td class="n">${num(burn["5m"], 2)}</td><td class="n">${num(burn["1h"], 2)}</td><td class="n">${num(burn["6h"], 2)}</td>
      <td class="n">${ms(o.p99Ms)}${ttft ? html`<div class="muted">TTFT</div>` : ""}</td>
      <td>${o.alerts.map((a) => html`<span class="chip down">${a.severity || a.level || "alert"} ${a.window || ""}</span> `)}</td></tr>`;
  });
  el.querySelector(".slo tbody").innerHTML = html`${rowsOr(rows, 9, "no services")}`.text;
  el.querySelectorAll(".slo [data-value]").forEach((bar) => {
    if (bar.classList.contains("objective")) bar.style.left = `${bar.dataset.value}%`;
    else bar.style.width = `${bar.dataset.value}%`;
  });
  const select = el.querySelector("#traffic-scope");
  const current = select.value;
  select.innerHTML = html`<option value="clusters">every cluster</option>${slo.services.map((s) => html`<option value="${s.service}">service ${s.service}</option>`)}`.text;
  select.value = current || "clusters";
  el.dataset.ready = "1";
}

function gaugeX(availability) {
  // The gauge spans 99 %–100 %, where objectives live; anything lower pins to the left edge.
  return Math.max(0, Math.min(100, (availability - 0.99) * 10000));
}

export default {
  id: "traffic",
  title: "Traffic & SLOs",
  mount(section, context) {
    el = section;
    ctx = context;
    el.innerHTML = html`<div class="toolbar"><label for="traffic-scope">Show</label>
        <select id="traffic-scope"><option value="clusters">every cluster</option></select>
        <span class="muted">one sample a second, last 15 minutes; dashed red lines are the service's objectives</span></div>
      <div class="charts"></div>
      <h2>Service level objectives</h2>
      <div class="slo panel"><table><thead><tr><th scope="col">service</th><th scope="col" class="n">objective</th>
        <th scope="col">availability (99–100 %)</th><th scope="col">error budget</th><th scope="col" class="n">burn 5m</th>
        <th scope="col" class="n">burn 1h</th><th scope="col" class="n">burn 6h</th><th scope="col" class="n">p99</th>
        <th scope="col">alerts</th></tr></thead><tbody></tbody></table></div>`.text;
    el.querySelector("#traffic-scope").addEventListener("change", (e) => {
      scope = e.target.value;
      build();
    });
    ctx.on("overview", (o) => append(o));
    api.get("/dashboard/series").then(
      (s) => {
        series = s;
        if (visible) build();
      },
      (e) => ctx.toast(e.message, "error"),
    );
  },
  show() {
    visible = true;
    build();
    loadSlo();
    sloTimer = setInterval(loadSlo, 10000);
  },
  hide() {
    visible = false;
    clearInterval(sloTimer);
  },
  update() {
    if (!visible || !series) return;
    const wanted = figures().map((f) => f.title).join();
    if (charts.length && wanted !== charts.map((c) => c.figure.title).join()) return build();
    for (const c of charts) {
      const defs = lines(c.figure);
      if (defs.map((d) => d.label).join() !== c.defs.map((d) => d.label).join()) return build();
      c.chart.setData(dataOf(defs));
    }
    if (!charts.length && series.t.length) build();
  },
};
