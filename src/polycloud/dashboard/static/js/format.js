// Small helpers shared by the views: escaping, numbers, times, colours.

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Tagged template that escapes every interpolated value unless it is wrapped with raw(). */
export function html(strings, ...values) {
  let out = strings[0];
  values.forEach((v, i) => {
    out += render(v) + strings[i + 1];
  });
  return new Raw(out);
}

class Raw {
  constructor(text) {
    this.text = text;
  }
  toString() {
    return this.text;
  }
}

export const raw = (text) => new Raw(String(text));

function render(v) {
  if (v instanceof Raw) return v.text;
  if (Array.isArray(v)) return v.map(render).join("");
  if (v === null || v === undefined || v === false) return "";
  return String(v).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

export function usd(v, digits = 2) {
  if (v === null || v === undefined) return "—";
  // Cents hide what a few minutes of a small fleet cost: below 10 cents, show four decimals.
  const places = digits === 2 && v !== 0 && Math.abs(v) < 0.1 ? 4 : digits;
  return `$${Number(v).toLocaleString("en-US", { minimumFractionDigits: places, maximumFractionDigits: places })}`;
}

export const num = (v, digits = 1) =>
  v === null || v === undefined ? "—" : Number(v).toLocaleString("en-US", { maximumFractionDigits: digits });

export const pct = (v, digits = 1) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(digits)} %`);

export const ms = (v) => (v === null || v === undefined || v === 0 ? "—" : `${Number(v).toFixed(v < 10 ? 2 : 0)} ms`);

export function time(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString("en-GB", { hour12: false, dateStyle: "short", timeStyle: "medium" });
}

export function ago(iso) {
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export const HEALTH_LABEL = { up: "up", degraded: "degraded", down: "down", idle: "idle" };

/** A stable colour per name (clusters in charts), readable on white. */
const PALETTE = ["#1f6feb", "#d1242f", "#1a7f37", "#8250df", "#bc4c00", "#0a7b83", "#bf3989", "#57606a", "#6639ba", "#953800"];
export function colour(name, names) {
  const i = names.indexOf(name);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

/** A table's body from rows, or one row saying there is nothing. */
export function rowsOr(rows, columns, empty) {
  return rows.length ? rows : html`<tr><td colspan="${columns}" class="empty">${empty}</td></tr>`;
}
