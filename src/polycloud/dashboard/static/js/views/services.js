// Services: placement (clusters and roles), replicas and their states, revision and canary progress,
// the planner's explanation, revision history and rollback. Rows expand with a click or Enter.
// LLM services (protocol openai) show tokens per second, and their latencies are times to first token.

import { api, may } from "../api.js";
import { html, num, ms, pct, usd, time, HEALTH_LABEL, rowsOr } from "../format.js";

let el, ctx;
const expanded = new Set();
const explained = new Map(); // service -> explanation JSON (or {error})
const histories = new Map(); // service -> revisions
const armed = new Map(); // button key -> timeout: a second click within 5 s confirms

function canChange(s) {
  const who = ctx.who;
  return may(who, "deployer") && (!who.project || who.project === s.project);
}

function placement(s) {
  return s.clusters.map(
    (c) => html`<span class="chip ${c.health}" title="${HEALTH_LABEL[c.health]}">${c.cluster} · ${c.role} ·
      ${c.ready}/${c.desired}</span>`,
  );
}

function rollout(s) {
  const r = s.rollout;
  if (!r) return "";
  return html`<div class="muted">canary ${r.canaryRevision}: step ${r.step}/${r.steps.length}, ${r.weight} % ·
    ${r.state}</div><span class="progress" role="progressbar" aria-label="canary weight" aria-valuemin="0"
    aria-valuemax="100" aria-valuenow="${r.weight}"><span data-width="${r.weight}"></span></span>`;
}

function held(s) {
  if (!s.held || !s.held.length) return "";
  return html`<div class="muted held" title="older revisions kept running: the service's routing by a feature flag sends some requests to them">also ${s.held.join(", ")} for its flag</div>`;
}

const isLlm = (s) => s.protocol === "openai";
const tokensPerS = (x) => (x.promptTokensPerS || 0) + (x.completionTokensPerS || 0);

function tokenCell(s) {
  if (!isLlm(s)) return html`<td class="n tokens muted" data-service="${s.name}">—</td>`;
  return html`<td class="n tokens" data-service="${s.name}" title="prompt ${num(s.promptTokensPerS)} + completion ${num(s.completionTokensPerS)} tokens/s">
    ${num(tokensPerS(s))} tok/s<div class="muted">${num(s.tokensToday.prompt + s.tokensToday.completion, 0)} today</div></td>`;
}

// The per-cluster token figures of an LLM service, in its detail.
function tokenTable(s) {
  const rows = s.clusters.map(
    (c) => html`<tr data-cluster="${c.cluster}"><td>${c.cluster}</td><td class="n">${num(c.rps)}</td>
      <td class="n">${ms(c.p50Ms)}</td><td class="n">${ms(c.p99Ms)}</td><td class="n">${num(c.promptTokensPerS)}</td>
      <td class="n">${num(c.completionTokensPerS)}</td><td class="n itl">${ms(c.interTokenMs)}</td><td class="n">${num(c.tokensToday.prompt, 0)} / ${num(c.tokensToday.completion, 0)}</td></tr>`,
  );
  return html`<h3>Tokens, time to first token and inter-token latency</h3>
    <table class="llm-tokens" data-service="${s.name}"><thead><tr><th scope="col">cluster</th><th scope="col" class="n">req/s</th>
      <th scope="col" class="n">TTFT p50</th><th scope="col" class="n">TTFT p99</th><th scope="col" class="n">prompt tok/s</th>
      <th scope="col" class="n">completion tok/s</th><th scope="col" class="n" title="mean time between streamed tokens">ITL</th>
      <th scope="col" class="n">today (UTC): prompt / completion</th></tr></thead>
      <tbody>${rowsOr(rows, 8, "not placed")}</tbody></table>
    <p class="muted">Histograms of both are in each gateway's <code>/metrics</code>
      (<code>polycloud_gateway_llm_time_to_first_token_seconds</code>, <code>…_inter_token_seconds</code>).</p>`;
}

function detail(s) {
  const replicas = s.clusters.flatMap((c) =>
    c.replicas.map(
      (r) => html`<tr><td>${r.id}</td><td>${c.cluster}</td><td>${c.role}</td>
        <td><span class="chip ${r.state === "ready" ? "up" : r.state === "failed" ? "down" : "degraded"}">${r.state}</span></td>
        <td>${r.revision}</td><td class="muted">${r.message || ""}</td></tr>`,
    ),
  );
  const change = canChange(s);
  const why = change ? "" : "needs a deployer token of this service's project";
  const explanation = explained.get(s.name);
  const history = histories.get(s.name) || [];
  const r = s.rollout;
  return html`<div class="actions">
      <button type="button" data-action="explain" data-service="${s.name}">Explain placement</button>
      <button type="button" data-action="history" data-service="${s.name}">Revision history</button>
      <a class="lineage-link" href="#/lineage/${encodeURIComponent(s.name)}">Lineage</a>
      <button type="button" class="danger" data-action="rollback" data-service="${s.name}" ${change ? "" : "disabled"}
        title="${why}">${armed.has(`rollback:${s.name}`) ? "Click again to roll back" : "Roll back"}</button>
      ${r && r.state === "running" ? html`<button type="button" data-action="pause" data-service="${s.name}" ${change ? "" : "disabled"}>Pause canary</button>` : ""}
      ${r && r.state === "paused" ? html`<button type="button" data-action="resume" data-service="${s.name}" ${change ? "" : "disabled"}>Resume canary</button>` : ""}
      ${r ? html`<button type="button" class="danger" data-action="abort" data-service="${s.name}" ${change ? "" : "disabled"}>Abort canary</button>` : ""}
    </div>
    ${r && r.message ? html`<p class="muted">Rollout: ${r.message}</p>` : ""}
    ${isLlm(s) ? tokenTable(s) : ""}
    <table><thead><tr><th scope="col">replica</th><th scope="col">cluster</th><th scope="col">role</th>
      <th scope="col">state</th><th scope="col">revision</th><th scope="col">message</th></tr></thead>
      <tbody>${rowsOr(replicas, 6, "no replicas")}</tbody></table>
    ${explanation ? html`<h3>Why here</h3>${explanation.error ? html`<p class="error">${explanation.error}</p>` : html`
      <p>${explanation.assignments.map((a) => `${a.cluster} (${a.role}, ${a.replicas} × ${a.instanceType} at $${a.hourlyUSD}/h)`).join(" · ")}
        — ${usd(explanation.totalUSD)}/month (compute ${usd(explanation.computeUSD)}, egress ${usd(explanation.egressUSD)})</p>
      <pre class="explain">${explanation.explanation}</pre>`}` : ""}
    ${history.length ? html`<h3>Revisions</h3><table><thead><tr><th scope="col">revision</th><th scope="col">when</th>
      <th scope="col">author</th><th scope="col">message</th></tr></thead><tbody>
      ${history.slice(-8).reverse().map((h) => html`<tr><td>${h.revision}</td><td>${time(h.createdAt || h.time)}</td>
        <td>${h.author || ""}</td><td>${h.message || ""}</td></tr>`)}</tbody></table>` : ""}`;
}

function render(o) {
  if (!el) return;
  const filter = el.querySelector("#service-filter").value.trim().toLowerCase();
  const shown = o.services.filter(
    (s) => !filter || [s.name, s.team, s.project, s.pattern].some((v) => v && v.toLowerCase().includes(filter)),
  );
  const rows = shown.map((s) => {
    const open = expanded.has(s.name);
    const ttft = isLlm(s) ? html`<div class="muted ttft">TTFT</div>` : "";
    const latency = isLlm(s) ? "time to first token" : "answer time";
    return html`<tr class="service" data-service="${s.name}" tabindex="0" aria-expanded="${open}">
        <th scope="row">${s.name}${isLlm(s) ? html` <span class="chip role">LLM · openai</span>` : ""}<div class="muted">${s.team ? `team ${s.team}` : ""}${s.project ? ` · project ${s.project}` : ""}</div></th>
        <td>${s.pattern}</td><td>${s.revision}${held(s)}${rollout(s)}</td><td class="placement">${placement(s)}</td>
        <td class="n">${num(s.rps)}</td>${tokenCell(s)}<td class="n" title="${latency} p50">${ms(s.p50Ms)}${ttft}</td>
        <td class="n" title="${latency} p99">${ms(s.p99Ms)}${ttft}</td>
        <td class="n">${pct(s.errorRate, 2)}</td><td class="n">${usd(s.monthlyUSD, 0)}</td></tr>
      ${open ? html`<tr class="detail" data-service="${s.name}"><td colspan="10">${detail(s)}</td></tr>` : ""}`;
  });
  const focused = document.activeElement;
  const refocus = focused && el.contains(focused) ? focused.dataset.action || (focused.matches("tr.service") && "row") : null;
  const refocusService = focused && focused.dataset ? focused.dataset.service : null;
  el.querySelector("tbody").innerHTML = html`${rowsOr(rows, 10, filter ? "no service matches" : "no services declared")}`.text;
  el.querySelectorAll(".progress > span").forEach((bar) => (bar.style.width = `${bar.dataset.width}%`));
  el.querySelector("#service-count").textContent = `${shown.length} of ${o.services.length}`;
  if (refocus && refocusService) {
    const selector = refocus === "row" ? `tr.service[data-service="${CSS.escape(refocusService)}"]` : `button[data-action="${refocus}"][data-service="${CSS.escape(refocusService)}"]`;
    const again = el.querySelector(selector);
    if (again) again.focus();
  }
  el.dataset.ready = "1";
}

function redraw() {
  if (ctx.overview) render(ctx.overview);
}

async function act(action, name) {
  try {
    if (action === "explain") {
      explained.set(name, await api.get(`/dashboard/services/${encodeURIComponent(name)}/explain`).catch((e) => ({ error: e.message })));
    } else if (action === "history") {
      histories.set(name, await api.get(`/workloads/${encodeURIComponent(name)}/history`));
    } else if (action === "rollback") {
      const key = `rollback:${name}`;
      if (!armed.has(key)) {
        armed.set(key, setTimeout(() => armed.delete(key) && redraw(), 5000));
        return redraw();
      }
      clearTimeout(armed.get(key));
      armed.delete(key);
      const made = await api.post(`/workloads/${encodeURIComponent(name)}/rollback`, {});
      ctx.toast(`${name} rolled back: now revision r${made.number}`);
      histories.delete(name);
    } else {
      await api.post(`/rollouts/${encodeURIComponent(name)}/${action}`, {});
      ctx.toast(`${name}: canary ${action}d`);
    }
  } catch (e) {
    ctx.toast(`${name}: ${e.message}`, "error");
  }
  redraw();
}

export default {
  id: "services",
  title: "Services",
  mount(section, context) {
    el = section;
    ctx = context;
    el.innerHTML = html`<div class="toolbar"><label for="service-filter">Filter</label>
        <input id="service-filter" type="search" placeholder="name, team, project, pattern">
        <span id="service-count" class="muted"></span></div>
      <table class="services"><thead><tr><th scope="col">service</th><th scope="col">pattern</th>
        <th scope="col">revision</th><th scope="col">placement (cluster · role · ready)</th>
        <th scope="col" class="n">req/s</th><th scope="col" class="n" title="LLM services: prompt and completion tokens per second">tokens/s</th>
        <th scope="col" class="n" title="LLM services: time to first token (TTFT)">p50</th>
        <th scope="col" class="n" title="LLM services: time to first token (TTFT)">p99</th>
        <th scope="col" class="n">errors</th><th scope="col" class="n">cost/month</th></tr></thead><tbody></tbody></table>`.text;
    el.querySelector("#service-filter").addEventListener("input", redraw);
    el.addEventListener("click", (e) => {
      const button = e.target.closest("button[data-action]");
      if (button) return act(button.dataset.action, button.dataset.service);
      const row = e.target.closest("tr.service");
      if (row) toggle(row.dataset.service);
    });
    el.addEventListener("keydown", (e) => {
      if ((e.key === "Enter" || e.key === " ") && e.target.matches("tr.service")) {
        e.preventDefault();
        toggle(e.target.dataset.service);
      }
    });
  },
  update: render,
};

function toggle(name) {
  if (expanded.has(name)) expanded.delete(name);
  else expanded.add(name);
  redraw();
}
