// Audit trail: the hash chain's verification, and its entries filtered in the page (the last 500,
// more on demand with "load older"). Only fleet-wide admins may read it; others see the API's reason.

import { api, ApiError, may } from "../api.js";
import { html, rowsOr, time } from "../format.js";

const PAGE = 500;
const SHORT_DETAIL = 80;
const OUTCOMES = ["all", "ok", "denied", "failed"];

const state = { el: null, ctx: null, entries: new Map(), more: true, refused: null, loading: null };

function mount(el, ctx) {
  state.el = el;
  state.ctx = ctx;
  el.innerHTML = html`
    <h2>Audit trail</h2>
    <div data-role="verify" class="panel audit-verify" role="status" aria-live="polite">Verifying the chain…</div>
    <div data-role="refused" class="panel audit-refused" hidden></div>
    <div data-role="trail">
      <form class="toolbar audit-filters" data-role="filters" role="search" aria-label="Filter audit entries">
        <label for="audit-actor">Actor</label>
        <input id="audit-actor" name="actor" type="search" list="audit-actors" autocomplete="off" spellcheck="false">
        <datalist id="audit-actors"></datalist>
        <label for="audit-action">Action</label>
        <input id="audit-action" name="action" type="search" list="audit-actions" autocomplete="off" spellcheck="false">
        <datalist id="audit-actions"></datalist>
        <label for="audit-outcome">Outcome</label>
        <select id="audit-outcome" name="outcome">${OUTCOMES.map((o) => html`<option value="${o}">${o}</option>`)}</select>
        <label for="audit-text">Target or detail</label>
        <input id="audit-text" name="text" type="search" autocomplete="off" spellcheck="false">
        <span class="muted" data-role="count" aria-live="polite"></span>
      </form>
      <table class="audit-table">
        <thead><tr>
          <th scope="col" class="n">Seq</th><th scope="col">Time</th><th scope="col">Actor</th>
          <th scope="col">Action</th><th scope="col">Target</th><th scope="col">Outcome</th>
          <th scope="col" class="n">Revision</th><th scope="col">Detail</th>
        </tr></thead>
        <tbody data-role="rows"><tr><td colspan="8" class="empty">Loading…</td></tr></tbody>
      </table>
      <p><button type="button" data-role="older" hidden>Load older entries</button></p>
    </div>`.text;
  const filters = part("filters");
  filters.addEventListener("input", render);
  filters.addEventListener("change", render);
  filters.addEventListener("submit", (e) => e.preventDefault());
  part("older").addEventListener("click", loadOlder);
}

function part(name) {
  return state.el.querySelector(`[data-role="${name}"]`);
}

/** On every showing: the newest entries (merged with older ones loaded before) and a fresh verdict. */
function show() {
  if (state.refused) return; // a refusal does not change within a session; asking again only adds to the trail
  if (!state.loading) state.loading = refresh().finally(() => (state.loading = null));
}

async function refresh() {
  const who = state.ctx.who;
  try {
    if (may(who, "admin") && !who.project) {
      const [entries, verdict] = await Promise.all([api.get(`/audit?limit=${PAGE}`), api.get("/audit/verify")]);
      drawVerdict(verdict);
      const first = state.entries.size === 0;
      merge(entries);
      if (first) state.more = entries.length === PAGE;
    } else {
      // One request, for the API's own reason: each refusal is itself written to the audit trail.
      await api.get("/audit?limit=1");
    }
    render();
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) refuse(e.message);
    else fail(e.message);
  }
  state.el.dataset.ready = "1";
}

async function loadOlder() {
  const button = part("older");
  const oldest = Math.min(...state.entries.keys());
  button.disabled = true;
  try {
    const entries = await api.get(`/audit?limit=${PAGE}&before=${oldest}`);
    merge(entries);
    state.more = entries.length === PAGE;
    render();
  } catch (e) {
    state.ctx.toast(`Audit: ${e.message}`, "error");
  } finally {
    button.disabled = false;
  }
}

function merge(entries) {
  entries.forEach((e) => state.entries.set(e.seq, e));
}

function refuse(reason) {
  state.refused = reason;
  part("verify").hidden = true;
  part("trail").hidden = true;
  const panel = part("refused");
  panel.hidden = false;
  panel.innerHTML = html`
    <h3>The audit trail is for fleet-wide admins</h3>
    <p>The control plane refused to show it to ${state.ctx.who.name}:</p>
    <p class="audit-reason" role="alert">${reason}</p>
    <p class="muted">It spans every project, so only an admin token without a project may read or verify it.</p>`.text;
}

function fail(message) {
  state.ctx.toast(`Audit: ${message}`, "error");
  if (!state.entries.size) {
    part("rows").innerHTML = html`<tr><td colspan="8" class="empty error">Could not load: ${message}</td></tr>`.text;
  }
}

// ----------------------------------------------------------------------------------------- drawing

function drawVerdict(v) {
  const el = part("verify");
  el.dataset.intact = v.intact ? "yes" : "no";
  el.innerHTML = v.intact
    ? html`<strong class="audit-intact">Chain intact ✓</strong>
        <span>${v.entries} entries verified; head #${v.headSeq}
        <code title="${v.headHash}">${v.headHash.slice(0, 12)}…</code></span>`.text
    : html`<strong class="audit-broken">Chain BROKEN</strong>
        <span>${
          v.broken ? html`at entry #${v.broken.seq} (${v.broken.kind}): ${v.broken.reason}` : "where is unknown"
        } — ${v.entries} entries checked.</span>`.text;
}

function filters() {
  const form = part("filters");
  const field = (name) => form.elements[name].value.trim().toLowerCase();
  return { actor: field("actor"), action: field("action"), outcome: form.elements.outcome.value, text: field("text") };
}

function matches(e, f) {
  if (f.outcome !== "all" && e.outcome !== f.outcome) return false;
  if (f.actor && !e.actor.toLowerCase().includes(f.actor)) return false;
  if (f.action && !e.action.toLowerCase().includes(f.action)) return false;
  if (f.text && !`${e.target} ${JSON.stringify(e.detail)}`.toLowerCase().includes(f.text)) return false;
  return true;
}

function render() {
  const all = [...state.entries.values()].sort((a, b) => b.seq - a.seq);
  const f = filters();
  const shown = all.filter((e) => matches(e, f));
  const empty = all.length ? "No entry matches the filters." : "The audit trail is empty.";
  part("rows").innerHTML = html`${rowsOr(shown.map(row), 8, empty)}`.text;
  part("count").textContent = `${shown.length} of ${all.length} loaded entries`;
  fillChoices("audit-actors", all.map((e) => e.actor));
  fillChoices("audit-actions", all.map((e) => e.action));
  const older = part("older");
  older.hidden = !state.more || !all.length || Math.min(...state.entries.keys()) <= 1;
}

function row(e) {
  return html`<tr>
    <td class="n">${e.seq}</td>
    <td><time datetime="${e.time}">${time(e.time)}</time></td>
    <td>${e.actor}</td>
    <td><code>${e.action}</code></td>
    <td>${e.target}</td>
    <td><span class="chip outcome-${e.outcome}">${e.outcome}</span></td>
    <td class="n">${e.revision ?? "—"}</td>
    <td class="audit-detail">${detail(e.detail)}</td>
  </tr>`;
}

/** Compact JSON; long details fold into a <details> that opens to the indented form. */
function detail(d) {
  const compact = JSON.stringify(d ?? {});
  if (compact === "{}") return html`<span class="muted">—</span>`;
  if (compact.length <= SHORT_DETAIL) return html`<code>${compact}</code>`;
  return html`<details><summary><code>${compact.slice(0, SHORT_DETAIL)}…</code></summary>
    <pre class="explain">${JSON.stringify(d, null, 2)}</pre></details>`;
}

function fillChoices(id, values) {
  const list = state.el.querySelector(`#${id}`);
  list.innerHTML = [...new Set(values)]
    .sort()
    .map((v) => html`<option value="${v}"></option>`.text)
    .join("");
}

export default { id: "audit", title: "Audit trail", mount, show };
