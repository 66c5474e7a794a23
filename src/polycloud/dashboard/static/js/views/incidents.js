// Incidents: the timeline of failovers, rollbacks, anomalies, drills and budget alerts (live), the
// open and recent incidents, and a drill that can be started here and watched as it happens.

import { api, may } from "../api.js";
import { html, num, ms, time, ago, HEALTH_LABEL, rowsOr } from "../format.js";

const KINDS = {
  failover: /^(Failover|Failback|ClusterUnreachable|Burst|DriverUnavailable)/,
  rollout: /^Rollout|RolledBack|Rollback/,
  replicas: /^(Replica|StartFailed|Scaled|ServiceBlocked)/,
  slo: /^Slo/,
  budget: /^Budget/,
  drill: /^Drill|PreemptionDrill/,
  jobs: /^(Job|Checkpoint)/,
};
let el, ctx, events = [], anomalies = [], incidents = [], filter = "all", drill = null, timer = null;

function kindOf(e) {
  if (e.signal) return "anomaly";
  return Object.entries(KINDS).find(([, re]) => re.test(e.reason))?.[0] || "other";
}

function renderTimeline() {
  const items = [...events, ...anomalies.map((a) => ({ ...a, reason: `Anomaly ${a.signal}`, level: "warning", workload: a.service }))]
    .filter((e) => filter === "all" || kindOf(e) === filter)
    .sort((a, b) => Date.parse(b.time) - Date.parse(a.time));
  const grouped = collapse(items).slice(0, 200);
  el.querySelector(".timeline").innerHTML = grouped.length
    ? html`${grouped.map(
        ({ e, count, first }) => html`<li data-level="${e.level}" data-kind="${kindOf(e)}"><time datetime="${e.time}">${time(e.time)}</time>
          <strong>${e.reason}</strong> ${e.workload ? html`<span class="chip role">${e.workload}</span>` : ""}
          ${e.cluster ? html`<span class="chip role">${e.cluster}</span>` : ""}
          ${count > 1 ? html`<span class="muted">× ${count} since ${time(first)}</span>` : ""}<div>${e.message}</div></li>`,
      )}`.text
    : html`<li class="muted">Nothing of this kind yet.</li>`.text;
  el.querySelectorAll(".filters button").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.filter === filter)));
}

function collapse(items) {
  // A controller retrying in a downed cluster repeats the same event every pass: show it once, counted.
  const out = [];
  for (const e of items) {
    const last = out[out.length - 1];
    const key = `${e.reason}|${e.workload}|${e.cluster}|${e.message}`;
    if (last && last.key === key) {
      last.count += 1;
      last.first = e.time;
    } else out.push({ e, key, count: 1, first: e.time });
  }
  return out;
}

function renderIncidents() {
  const rows = incidents.map(
    (i) => html`<tr data-incident="${i.id}"><td><span class="chip ${i.state === "open" ? "down" : "idle"}">${i.state}</span></td>
      <th scope="row">${i.title}</th><td>${i.service || ""}</td><td>${i.cluster || ""}</td>
      <td>${time(i.openedAt)}</td><td>${i.resolvedAt ? time(i.resolvedAt) : ago(i.openedAt)}</td>
      <td class="n">${i.timeline.length}</td></tr>`,
  );
  el.querySelector(".incidents tbody").innerHTML = html`${rowsOr(rows, 7, "no incidents")}`.text;
}

function renderDrillForm(o) {
  const form = el.querySelector("#drill");
  const select = form.querySelector("select[name=cluster]");
  const current = select.value;
  const names = o.clusters.map((c) => c.name);
  if ([...select.options].map((x) => x.value).join() !== names.join()) {
    select.innerHTML = html`${o.clusters.map((c) => html`<option value="${c.name}">${c.name}</option>`)}`.text;
    if (names.includes(current)) select.value = current;
  }
}

function renderWatch(o) {
  const box = el.querySelector(".drill-watch");
  if (!drill) {
    box.innerHTML = "";
    return;
  }
  const left = Math.max(0, Math.round((drill.ends - Date.now()) / 1000));
  const c = o.clusters.find((x) => x.name === drill.cluster);
  const moved = o.flows.filter((f) => f.kind === "traffic").map((f) => `${f.workload}: ${f.from.label} → ${f.to || "nowhere"}`);
  box.innerHTML = html`<div class="banner" role="status">
    <strong>${drill.kind}</strong> drill on <strong>${drill.cluster}</strong>: ${left ? `${left} s left` : "fault cleared, recovering"}.
    ${c ? html` Cluster is <span class="chip ${c.health}">${HEALTH_LABEL[c.health]}</span>, ${c.ready}/${c.desired} ready,
      ${num(c.rps)} req/s, p99 ${ms(c.p99Ms)}.` : ""}
    <div class="muted">Traffic now: ${moved.join(" · ") || "no traffic declared"}</div></div>`.text;
  if (!left && c && c.health === "up") drill = null;
}

async function load() {
  try {
    [events, anomalies, incidents] = await Promise.all([
      api.get("/events?limit=300"),
      api.get("/anomalies?minutes=1440&limit=200"),
      api.get("/incidents?limit=50"),
    ]);
  } catch (e) {
    ctx.toast(e.message, "error");
    return;
  }
  renderTimeline();
  renderIncidents();
  el.dataset.ready = "1";
}

async function runDrill(event) {
  event.preventDefault();
  const form = event.target;
  const body = { cluster: form.cluster.value, kind: form.kind.value, seconds: Number(form.seconds.value) };
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await api.post("/dashboard/drills", body);
    drill = { ...body, ends: Date.now() + body.seconds * 1000 };
    ctx.toast(`${body.kind} drill started on ${body.cluster} for ${body.seconds} s`);
    if (ctx.overview) renderWatch(ctx.overview);
  } catch (e) {
    ctx.toast(`drill refused: ${e.message}`, "error");
  } finally {
    button.disabled = false;
  }
}

export default {
  id: "incidents",
  title: "Incidents",
  mount(section, context) {
    el = section;
    ctx = context;
    const allowed = may(ctx.who, "deployer") && !ctx.who.project;
    el.innerHTML = html`<div class="grid wide-side">
      <div>
        <div class="toolbar filters" role="group" aria-label="Show">
          ${["all", "failover", "rollout", "drill", "anomaly", "slo", "budget", "replicas", "jobs"].map(
            (f) => html`<button type="button" data-filter="${f}" aria-pressed="${f === filter}">${f}</button>`,
          )}</div>
        <ol class="timeline" aria-label="Timeline, newest first"></ol>
      </div>
      <div>
        <div class="panel"><h2>Run a drill</h2>
          <form id="drill">
            <div class="toolbar"><label for="drill-cluster">Cluster</label>
              <select id="drill-cluster" name="cluster"></select></div>
            <div class="toolbar"><label for="drill-kind">Fault</label>
              <select id="drill-kind" name="kind"><option value="outage">outage (cluster down)</option>
                <option value="brownout">brownout (+300 ms)</option><option value="errors">errors (50 % 5xx)</option>
                <option value="blackhole">blackhole (frozen, sockets open)</option></select>
              <label for="drill-seconds">for</label>
              <input id="drill-seconds" name="seconds" type="number" min="2" max="600" value="20" size="4"> s</div>
            <button type="submit" class="primary" ${allowed ? "" : "disabled"}>Run drill</button>
            ${allowed ? "" : html`<p class="muted">Drills need a fleet-wide deployer or admin token.</p>`}
          </form>
          <div class="drill-watch"></div>
        </div>
        <h2>Incidents</h2>
        <table class="incidents"><thead><tr><th scope="col">state</th><th scope="col">incident</th>
          <th scope="col">service</th><th scope="col">cluster</th><th scope="col">opened</th>
          <th scope="col">resolved</th><th scope="col" class="n">events</th></tr></thead><tbody></tbody></table>
      </div></div>`.text;
    el.querySelector("#drill").addEventListener("submit", runDrill);
    el.querySelector(".filters").addEventListener("click", (e) => {
      const b = e.target.closest("button[data-filter]");
      if (b) {
        filter = b.dataset.filter;
        renderTimeline();
      }
    });
    ctx.on("event", (e) => {
      events.unshift(e);
      if (events.length > 500) events.pop();
      if (el.dataset.ready) renderTimeline();
    });
  },
  show() {
    load();
    timer = setInterval(() => api.get("/incidents?limit=50").then((i) => ((incidents = i), renderIncidents()), () => null), 10000);
  },
  hide() {
    clearInterval(timer);
  },
  update(o) {
    renderDrillForm(o);
    renderWatch(o);
  },
};
