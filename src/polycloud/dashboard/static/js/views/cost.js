// Cost: spend per hour (stacked by key), totals with egress apart, this month's budgets, and the
// advisor's savings with the command that makes each. Polls every 30 s while shown: cost moves by the
// hour, so the once-a-second overview would only add load.

import { api } from "../api.js";
import { colour, html, num, rowsOr, usd } from "../format.js";

const REFRESH_MS = 30_000;
const HOUR_S = 3600;
const GROUPS = ["team", "provider", "cluster", "service"];
const WINDOWS = [
  ["24h", "Last 24 hours"],
  ["7d", "Last 7 days"],
  ["30d", "Last 30 days"],
];
const ALERT_CLASS = { 50: "low", 80: "low", 100: "out" };

const state = {
  el: null,
  ctx: null,
  by: "team",
  since: "7d",
  timer: null,
  loading: null,
  chart: null,
  resize: null,
  commands: [],
  keys: [],
  drawn: { columns: [], hours: 0 },
};

function mount(el, ctx) {
  state.el = el;
  state.ctx = ctx;
  el.innerHTML = html`
    <h2>Cost</h2>
    <form class="toolbar" data-role="controls">
      <label for="cost-by">Group by</label>
      <select id="cost-by" data-role="by">${GROUPS.map((g) => html`<option value="${g}">${g}</option>`)}</select>
      <label for="cost-since">Window</label>
      <select id="cost-since" data-role="since">${WINDOWS.map(([v, label]) => html`<option value="${v}">${label}</option>`)}</select>
      <span class="muted" data-role="updated" aria-live="polite"></span>
    </form>
    <section class="panel chart cost-chart" aria-labelledby="cost-chart-title">
      <h3 id="cost-chart-title">Spend per hour</h3>
      <div data-role="chart" role="img" aria-label="Stacked spend per hour; the Totals table has the figures"></div>
      <p class="muted" data-role="chart-note"></p>
    </section>
    <div class="cost-grid">
      <section class="panel" aria-labelledby="cost-totals-title">
        <h3 id="cost-totals-title">Totals</h3>
        <div data-role="totals"><p class="muted">Loading…</p></div>
      </section>
      <section class="panel" aria-labelledby="cost-budgets-title">
        <h3 id="cost-budgets-title">Budgets this month</h3>
        <div data-role="budgets"><p class="muted">Loading…</p></div>
      </section>
    </div>
    <section class="panel cost-advice" aria-labelledby="cost-advice-title">
      <h3 id="cost-advice-title">Savings</h3>
      <div data-role="advice"><p class="muted">Loading…</p></div>
    </section>`.text;
  part("by").value = state.by;
  part("since").value = state.since;
  el.querySelector('[data-role="controls"]').addEventListener("submit", (e) => e.preventDefault());
  part("by").addEventListener("change", (e) => {
    state.by = e.target.value;
    refresh({ advice: false, budgets: false });
  });
  part("since").addEventListener("change", (e) => {
    state.since = e.target.value;
    refresh({ advice: false, budgets: false });
  });
  el.querySelector('[data-role="advice"]').addEventListener("click", copyCommand);
}

function part(name) {
  return state.el.querySelector(`[data-role="${name}"]`);
}

function show() {
  refresh();
  clearInterval(state.timer);
  state.timer = setInterval(refresh, REFRESH_MS);
  if (!state.resize && window.ResizeObserver) {
    state.resize = new ResizeObserver(() => fitChart());
    state.resize.observe(part("chart"));
  }
}

function hide() {
  clearInterval(state.timer);
  state.timer = null;
}

// ---------------------------------------------------------------------------------------- loading

/** Load and draw; one load at a time (a change of selects while one runs waits for it, then reloads). */
async function refresh(which = {}) {
  while (state.loading) await state.loading.catch(() => null);
  state.loading = load({ advice: true, budgets: true, ...which }).finally(() => (state.loading = null));
  return state.loading;
}

async function load(which) {
  const query = `by=${encodeURIComponent(state.by)}&since=${encodeURIComponent(state.since)}`;
  const [spend, totals, budgets, advice] = await Promise.allSettled([
    api.get(`/dashboard/spend?${query}`),
    api.get(`/cost?${query}`),
    which.budgets ? api.get("/cost/budgets") : null,
    which.advice ? api.get("/advice") : null,
  ]);
  const failures = [];
  settle(spend, drawChart, "chart-note", failures);
  settle(totals, drawTotals, "totals", failures);
  if (which.budgets) settle(budgets, drawBudgets, "budgets", failures);
  if (which.advice) settle(advice, drawAdvice, "advice", failures);
  if (failures.length) state.ctx.toast(`Cost: ${failures[0]}`, "error");
  part("updated").textContent = `updated ${new Date().toLocaleTimeString("en-GB", { hour12: false })}`;
  state.el.dataset.ready = "1";
}

function settle(result, draw, where, failures) {
  if (result.status === "fulfilled") {
    draw(result.value);
    return;
  }
  failures.push(result.reason.message);
  part(where).innerHTML = html`<p class="error" role="alert">Could not load: ${result.reason.message}</p>`.text;
}

// ------------------------------------------------------------------------------------------ chart

/** Dense hourly columns from the first to the last hour with cost: an hour missing from the answer
 * accrued nothing (e.g. the control plane was down), and a gap would otherwise draw as a ramp. */
function densify(spend) {
  const given = spend.hours.map((h) => Date.parse(h) / 1000);
  const keys = Object.keys(spend.series);
  if (!given.length) return { xs: [], keys, columns: keys.map(() => []) };
  const xs = [];
  for (let t = given[0]; t <= given[given.length - 1]; t += HOUR_S) xs.push(t);
  const at = new Map(given.map((t, i) => [t, i]));
  const columns = keys.map((k) => xs.map((t) => (at.has(t) ? spend.series[k][at.get(t)] : 0)));
  // Steps hold each hour's value until the next hour starts; one more x closes the last hour's step.
  xs.push(xs[xs.length - 1] + HOUR_S);
  columns.forEach((col) => col.push(col[col.length - 1]));
  return { xs, keys, columns, hours: xs.length - 1 };
}

function drawChart(spend) {
  const { xs, keys, columns, hours } = densify(spend);
  const sameKeys = keys.length === state.keys.length && keys.every((k, i) => k === state.keys[i]);
  state.keys = keys;
  state.drawn = { columns, hours };
  const holder = part("chart");
  if (state.chart && !(sameKeys && xs.length)) {
    state.chart.destroy();
    state.chart = null;
    holder.replaceChildren();
  }
  const egress = Object.values(spend.egress).flat().reduce((a, b) => a + b, 0);
  if (!xs.length) {
    part("chart-note").textContent = "No cost accrued in this window yet.";
    return;
  }
  part("chart-note").textContent =
    `${usd(spend.totalUSD)} in ${num(spend.hours.length, 0)} ${spend.hours.length === 1 ? "hour" : "hours"} with cost, of which ${usd(egress)} egress. ` +
    "Areas are stacked; the legend shows each key's own spend in the hour under the cursor.";
  // Stack: each series draws its running sum, and a band fills it down to the series below it.
  const sums = xs.map(() => 0);
  const stacked = columns.map((col) => col.map((v, i) => (sums[i] += v)));
  if (state.chart) {
    state.chart.setData([xs, ...stacked]); // same keys: keep the chart (and the reader's cursor)
    return;
  }
  const series = [
    { label: "hour" },
    ...keys.map((k) => ({
      label: k,
      stroke: colour(k, keys),
      fill: `${colour(k, keys)}40`,
      width: 1.5,
      points: { show: false },
      paths: uPlot.paths.stepped({ align: 1 }),
      value: (u, v, si, idx) => legendValue(si, idx),
    })),
  ];
  const bands = keys.slice(1).map((_, i) => ({ series: [i + 2, i + 1] }));
  state.chart = new uPlot(
    {
      width: Math.max(320, holder.clientWidth || 800),
      height: 260,
      series,
      bands,
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.05 : 1] } },
      // Hourly data: ticks no closer than an hour, and dollar labels with the digits their spacing needs.
      axes: [
        { space: 80, incrs: [3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400] },
        { values: (u, ticks) => ticks.map((t) => usd(t, tickDigits(ticks))), size: 80 },
      ],
      cursor: { drag: { x: false, y: false } },
    },
    [xs, ...stacked],
    holder,
  );
}

/** A key's own spend in the hour under the cursor (the plotted values are running sums). */
function legendValue(seriesIdx, idx) {
  const { columns, hours } = state.drawn;
  return idx === null || idx === undefined || idx >= hours ? "—" : usd(columns[seriesIdx - 1][idx]);
}

function fitChart() {
  const holder = part("chart");
  if (state.chart && holder.clientWidth) state.chart.setSize({ width: holder.clientWidth, height: 260 });
}

// --------------------------------------------------------------------------------- totals, budgets

function drawTotals(cost) {
  // The chart's key order, so a key has the same colour in both.
  const keys = [...state.keys, ...cost.rows.map((r) => r.key).filter((k) => !state.keys.includes(k))];
  const compute = cost.rows.reduce((s, r) => s + r.computeUSD, 0);
  const egress = cost.rows.reduce((s, r) => s + r.egressUSD, 0);
  const share = cost.totalUSD > 0 ? egress / cost.totalUSD : 0;
  part("totals").innerHTML = html`
    <p class="cost-callout">Egress: <strong>${usd(egress)}</strong>
      <span class="muted">(${num(share * 100, 1)} % of ${usd(cost.totalUSD)})</span></p>
    <table>
      <thead><tr>
        <th scope="col">${state.by}</th><th scope="col" class="n">Compute</th>
        <th scope="col" class="n">Egress</th><th scope="col" class="n">Total</th>
      </tr></thead>
      <tbody>${rowsOr(
        cost.rows.map(
          (r) => html`<tr>
            <th scope="row"><span class="swatch" data-key="${r.key}" aria-hidden="true"></span>${r.key}</th>
            <td class="n">${usd(r.computeUSD)}</td><td class="n">${usd(r.egressUSD)}</td>
            <td class="n">${usd(r.totalUSD)}</td></tr>`,
        ),
        4,
        "No cost accrued in this window.",
      )}</tbody>
      <tfoot><tr>
        <th scope="row">All</th><td class="n">${usd(compute)}</td>
        <td class="n"><strong>${usd(egress)}</strong></td><td class="n"><strong>${usd(cost.totalUSD)}</strong></td>
      </tr></tfoot>
    </table>`.text;
  // Colours are data, and the page's CSP forbids style attributes: set them through the CSSOM.
  part("totals")
    .querySelectorAll(".swatch")
    .forEach((s) => (s.style.background = colour(s.dataset.key, keys)));
}

function drawBudgets(data) {
  const rows = data.budgets.map(
    (b) => html`<tr>
      <th scope="row">${b.policy}</th>
      <td><code>${b.label}=${b.value}</code></td>
      <td class="n">${usd(b.limitUSD)}</td>
      <td class="n">${usd(b.spendUSD)}</td>
      <td class="n">${usd(b.forecastUSD)}</td>
      <td><div class="cost-used"><div class="budget" role="meter" aria-valuemin="0" aria-valuemax="100"
           aria-valuenow="${Math.min(100, b.percentUsed).toFixed(1)}"
           aria-label="${b.policy} ${b.label}=${b.value}: ${num(b.percentUsed, 1)} % used"><span
           class="${ALERT_CLASS[b.alert] || ""}" data-percent="${b.percentUsed}"></span></div>
           <span class="n">${num(b.percentUsed, 1)} %</span></div></td>
      <td>${
        b.alert === null
          ? html`<span class="muted">none</span>`
          : html`<span class="chip cost-alert-${b.alert}">${b.alert} %</span>`
      }</td>
    </tr>`,
  );
  part("budgets").innerHTML = html`
    <table>
      <thead><tr>
        <th scope="col">Policy</th><th scope="col">Covers</th><th scope="col" class="n">Limit</th>
        <th scope="col" class="n">Spend</th><th scope="col" class="n">Forecast</th>
        <th scope="col">Used</th><th scope="col">Alert</th>
      </tr></thead>
      <tbody>${rowsOr(rows, 7, "No Policy sets a budget.")}</tbody>
    </table>`.text;
  part("budgets")
    .querySelectorAll("[data-percent]")
    .forEach((bar) => (bar.style.width = `${Math.min(100, Math.max(0, Number(bar.dataset.percent)))}%`));
}

function tickDigits(ticks) {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : 1;
  return step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step)));
}

// ------------------------------------------------------------------------------------------ advice

const ADVICE_SHOWN = 10;

function drawAdvice(data) {
  const per = { month: "/ month", run: "per run" };
  const items = data.advice.slice(0, ADVICE_SHOWN).map(
    (a, i) => html`<li>
      <div class="cost-saving"><strong>${usd(a.savingUSD)}</strong> <span class="muted">${per[a.per] || a.per}</span>
        <span class="chip role">${a.kind}</span> <span>${a.target}</span></div>
      <p>${a.detail}</p>
      <div class="cost-command"><code id="cost-command-${i}">${a.command}</code>
        <button type="button" data-copy="${i}" aria-label="Copy the command for ${a.target}">Copy</button></div>
    </li>`,
  );
  state.commands = data.advice.map((a) => a.command);
  part("advice").innerHTML = html`
    <p>Up to <strong>${usd(data.monthlySavingUSD)}</strong> a month${
      data.perRunSavingUSD > 0 ? html` and <strong>${usd(data.perRunSavingUSD)}</strong> per job run` : ""
    }.</p>
    ${data.notes.map((n) => html`<p class="banner">${n}</p>`)}
    ${items.length ? html`<ol class="cost-advice-list">${items}</ol>` : html`<p class="muted">No savings found.</p>`}
    ${data.advice.length > ADVICE_SHOWN ? html`<p class="muted">The ${ADVICE_SHOWN} largest of ${data.advice.length}; all of them: <code>polycloud advise</code>.</p>` : ""}`
    .text;
}

function copyCommand(event) {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const i = Number(button.dataset.copy);
  const text = state.commands[i];
  const done = () => {
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = "Copy"), 1500);
  };
  // Without the clipboard API (an insecure origin), select the command so Ctrl+C copies it.
  const select = () => {
    const range = document.createRange();
    range.selectNodeContents(state.el.querySelector(`#cost-command-${i}`));
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  };
  if (navigator.clipboard && navigator.clipboard.writeText) {
    navigator.clipboard.writeText(text).then(done, select);
  } else {
    select();
  }
}

export default { id: "cost", title: "Cost", mount, show, hide };
