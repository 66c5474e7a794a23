// Feature flags: each live flag's state (DISABLED is the kill switch), version and default variant, and
// how the gateways evaluated it over a window: a stacked bar of the variants' shares, with a table of the
// same counts and percentages (the bar's text alternative) and, for a flag that routes services, where
// each variant sends them. Polls every 5 s while shown: a flipped flag shows within the next poll.

import { api } from "../api.js";
import { html, num, pct, rowsOr, time } from "../format.js";

const REFRESH_MS = 5000;
const WINDOWS = [
  [60, "Last minute"],
  [300, "Last 5 minutes"],
  [900, "Last 15 minutes"],
  [3600, "Last hour"],
  [86400, "Last 24 hours"],
];
const NO_VARIANT = "no variant (code default)";
/** Variants' colours, without the red of errors and the grey of "no variant"; white text reads on each. */
const PALETTE = ["#1f6feb", "#8250df", "#1a7f37", "#bc4c00", "#0a7b83", "#bf3989", "#6639ba", "#953800"];

const state = { el: null, ctx: null, window: 900, timer: null, loading: null };

function mount(el, ctx) {
  state.el = el;
  state.ctx = ctx;
  el.innerHTML = html`
    <h2>Feature flags</h2>
    <form class="toolbar" data-role="controls">
      <label for="flags-window">Evaluations over</label>
      <select id="flags-window" data-role="window">${WINDOWS.map(([s, label]) => html`<option value="${s}">${label}</option>`)}</select>
      <span class="muted" data-role="updated" aria-live="polite"></span>
    </form>
    <p class="muted">Shares of the evaluations every gateway answered (OFREP and flag-routed requests), by minute.</p>
    <div data-role="flags" class="flag-list"><p class="muted">Loading…</p></div>`.text;
  part("window").value = String(state.window);
  part("controls").addEventListener("submit", (e) => e.preventDefault());
  part("window").addEventListener("change", (e) => {
    state.window = Number(e.target.value);
    refresh();
  });
}

function part(name) {
  return state.el.querySelector(`[data-role="${name}"]`);
}

function show() {
  refresh();
  clearInterval(state.timer);
  state.timer = setInterval(refresh, REFRESH_MS);
}

function hide() {
  clearInterval(state.timer);
  state.timer = null;
}

/** One load at a time: a change of window while one runs waits for it, then loads again. */
async function refresh() {
  while (state.loading) await state.loading.catch(() => null);
  state.loading = load().finally(() => (state.loading = null));
  return state.loading;
}

async function load() {
  try {
    draw(await api.get(`/flags?window=${state.window}`));
    part("updated").textContent = `updated ${new Date().toLocaleTimeString("en-GB", { hour12: false })}`;
  } catch (e) {
    state.ctx.toast(`Flags: ${e.message}`, "error");
    part("flags").innerHTML = html`<p class="error" role="alert">Could not load: ${e.message}</p>`.text;
  }
  state.el.dataset.ready = "1";
}

// ----------------------------------------------------------------------------------------- drawing

function draw(flags) {
  const list = part("flags");
  list.innerHTML = flags.length
    ? flags.map(flag).join("")
    : html`<p class="muted">No feature flags: apply a FeatureFlag document to add one.</p>`.text;
  // Widths and colours through the CSSOM: the page's CSP refuses inline style attributes.
  list.querySelectorAll("[data-fill]").forEach((el) => (el.style.background = el.dataset.fill));
  list.querySelectorAll("[data-width]").forEach((el) => (el.style.width = `${el.dataset.width}%`));
}

function label(s) {
  return s.error ? `error ${s.error}` : s.variant ?? NO_VARIANT;
}

function fill(s, names) {
  if (s.error) return "var(--down)";
  if (s.variant === null) return "var(--idle)";
  const i = names.indexOf(s.variant);
  return PALETTE[(i < 0 ? names.length : i) % PALETTE.length];
}

function flag(f) {
  const e = f.evaluations;
  const names = f.variants;
  const disabled = f.state === "DISABLED";
  const id = `flag-${f.name}`;
  return html`<article class="panel flag" data-flag="${f.name}" data-state="${f.state}" aria-labelledby="${id}">
    <header class="flag-head">
      <h3 id="${id}"><code>${f.name}</code></h3>
      <span data-role="state" class="chip ${disabled ? "down" : "up"}">${disabled ? "DISABLED — kill switch" : f.state}</span>
      <span class="muted">v${f.version} · default <code>${f.defaultVariant ?? "none"}</code> ·
        changed <time datetime="${f.createdAt}">${time(f.createdAt)}</time> by ${f.author}</span>
    </header>
    ${disabled ? html`<p class="flag-killed">Every evaluation answers the caller's code default; flag-routed requests stay with the service called.</p>` : ""}
    ${bar(f.name, e, names)}
    <table class="flag-shares">
      <caption class="muted">${num(e.total, 0)} evaluations in the window</caption>
      <thead><tr><th scope="col">Variant</th><th scope="col" class="n">Evaluations</th>
        <th scope="col" class="n">Share</th><th scope="col">Routes</th></tr></thead>
      <tbody>${rowsOr(e.shares.map((s) => row(s, names)), 4, "No variants.")}</tbody>
    </table>
  </article>`.text;
}

/** The stacked bar; decorative for screen readers beyond its label (the table has the figures). */
function bar(name, e, names) {
  if (!e.total) return html`<div class="flag-bar empty" role="img" aria-label="${name}: no evaluations in the window">no evaluations in the window</div>`;
  const summary = e.shares.filter((s) => s.count).map((s) => `${label(s)} ${pct(s.share)}`).join(", ");
  const segments = e.shares
    .filter((s) => s.count)
    .map(
      (s) => html`<span data-width="${(s.share * 100).toFixed(3)}" data-fill="${fill(s, names)}"
        title="${label(s)}: ${num(s.count, 0)} (${pct(s.share)})">${s.share >= 0.08 ? html`${label(s)} ${pct(s.share, 0)}` : ""}</span>`,
    );
  return html`<div class="flag-bar" role="img" aria-label="${name}: ${summary}">${segments}</div>`;
}

function row(s, names) {
  const routes = (s.routesTo || []).map((r) => {
    if (r.revision != null) return html`<code>${r.service}</code> → revision <code>r${r.revision}</code>`;
    return r.to === r.service ? html`<code>${r.service}</code> stays` : html`<code>${r.service}</code> → <code>${r.to}</code>`;
  });
  return html`<tr data-variant="${s.variant ?? ""}" data-error="${s.error ?? ""}" data-share="${s.share}" data-count="${s.count}">
    <th scope="row"><span class="swatch" data-fill="${fill(s, names)}" aria-hidden="true"></span>${label(s)}</th>
    <td class="n">${num(s.count, 0)}</td>
    <td class="n">${pct(s.share)}</td>
    <td>${routes.length ? routes.map((r, i) => html`${i ? ", " : ""}${r}`) : html`<span class="muted">—</span>`}</td>
  </tr>`;
}

export default { id: "flags", title: "Feature flags", mount, show, hide };
