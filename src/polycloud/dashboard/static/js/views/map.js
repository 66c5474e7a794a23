// Fleet map: every cluster at its location (colour = health, size = traffic), arcs for traffic from
// user regions to the cluster that serves them and for data read across clusters. Offline: the land
// shapes are bundled (world-atlas, Natural Earth 1:110m), drawn with d3-geo.

import { html, num, ms, pct, HEALTH_LABEL, rowsOr } from "../format.js";

const W = 960;
const H = 500;
let el, ctx, svg, projection, path, land = null, selected = null, zoomed = false;

function spread(clusters) {
  // Clusters within 18 px of each other on screen (one metro, neighbouring regions) are fanned out on
  // a small ring around their centre, so that each stays visible and clickable; the order is by name,
  // so positions are stable between updates. Returns name -> {xy, angle} (angle: where the label goes).
  const points = clusters.map((c) => ({ c, xy: projection([c.lon, c.lat]) }));
  const parent = points.map((_, i) => i);
  const root = (i) => (parent[i] === i ? i : (parent[i] = root(parent[i])));
  points.forEach((a, i) =>
    points.forEach((b, j) => {
      if (j > i && Math.hypot(a.xy[0] - b.xy[0], a.xy[1] - b.xy[1]) < 18) parent[root(j)] = root(i);
    }),
  );
  const groups = new Map();
  points.forEach((p, i) => groups.set(root(i), [...(groups.get(root(i)) || []), p]));
  const at = new Map();
  for (const g of groups.values()) {
    const cx = g.reduce((s, p) => s + p.xy[0], 0) / g.length;
    const cy = g.reduce((s, p) => s + p.xy[1], 0) / g.length;
    g.sort((a, b) => a.c.name.localeCompare(b.c.name));
    const r = g.length > 1 ? 10 + 4 * g.length : 0;
    g.forEach((p, i) => {
      const angle = g.length > 1 ? (2 * Math.PI * i) / g.length - Math.PI / 4 : 0;
      at.set(p.c.name, { xy: [cx + r * Math.cos(angle), cy + r * Math.sin(angle)], angle });
    });
  }
  return at;
}

function arcPath(a, b) {
  // A great-circle arc between two lon/lat points, bowed slightly when they are close on screen.
  const d = path({ type: "LineString", coordinates: [a, b] });
  return d || "";
}

function render(o) {
  if (!svg) return;
  const at = spread(o.clusters);
  const byName = Object.fromEntries(o.clusters.map((c) => [c.name, c]));
  const maxRps = Math.max(1, ...o.clusters.map((c) => c.rps));
  const radius = (c) => 6 + 12 * Math.sqrt(c.rps / maxRps);
  const maxFlow = Math.max(1, ...o.flows.filter((f) => f.kind === "traffic").map((f) => f.rps));
  const lonlat = (name) => {
    const c = byName[name];
    const place = at.get(name);
    return c && place ? projection.invert(place.xy) : null;
  };
  const arcs = o.flows
    .map((f) => {
      if (f.kind === "traffic" && f.to && byName[f.to]) {
        const width = 1.5 + 5 * Math.sqrt(f.rps / maxFlow);
        return html`<path class="arc traffic" data-service="${f.workload}" data-to="${f.to}"
          stroke-width="${width.toFixed(1)}" d="${arcPath([f.from.lon, f.from.lat], lonlat(f.to))}">
          <title>${f.workload}: ${f.from.label} → ${f.to}, ${num(f.rps)} req/s, ${num(f.rttMs)} ms RTT</title></path>`;
      }
      if (f.kind === "data" && byName[f.from] && byName[f.to]) {
        return html`<path class="arc data" data-service="${f.workload}" data-from="${f.from}" data-to="${f.to}"
          stroke-width="2" d="${arcPath(lonlat(f.from), lonlat(f.to))}">
          <title>${f.workload} reads ${f.dataset}: ${f.from} → ${f.to}, ${num(f.gbPerMonth)} GB/month</title></path>`;
      }
      return "";
    })
    .filter(Boolean);
  const users = new Map();
  o.flows.filter((f) => f.kind === "traffic").forEach((f) => users.set(f.from.label, f.from));
  const userMarks = [...users.values()].map((u) => {
    const [x, y] = projection([u.lon, u.lat]);
    return html`<rect class="user" x="${(x - 4).toFixed(1)}" y="${(y - 4).toFixed(1)}" width="8" height="8">
      <title>users in ${u.label}</title></rect>`;
  });
  const marks = o.clusters.map((c) => {
    const { xy: [x, y], angle } = at.get(c.name);
    const r = radius(c);
    // Labels point away from their group's centre, and inwards near the map's right edge.
    const left = Math.cos(angle) < -0.2 || x > W - 130;
    const lx = x + (left ? -(r + 3) : r + 3);
    const ly = y + 4 + (Math.abs(Math.sin(angle)) > 0.8 ? Math.sign(Math.sin(angle)) * (r + 2) : 0);
    const label = `${c.name}: ${HEALTH_LABEL[c.health]}, ${c.ready}/${c.desired} replicas ready, ${num(c.rps)} req/s`;
    return html`<circle class="cluster" data-cluster="${c.name}" data-health="${c.health}" tabindex="0"
        role="button" aria-label="${label}" aria-pressed="${selected === c.name}"
        cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="${r.toFixed(1)}"><title>${label}</title></circle>
      <text class="label" x="${lx.toFixed(1)}" y="${ly.toFixed(1)}" text-anchor="${left ? "end" : "start"}">${c.name}</text>`;
  });
  svg.querySelector("g.flows").innerHTML = html`${arcs}${userMarks}`.text;
  svg.querySelector("g.clusters").innerHTML = html`${marks}`.text;
  const focused = document.activeElement && document.activeElement.dataset && document.activeElement.dataset.cluster;
  if (focused) {
    const again = svg.querySelector(`circle[data-cluster="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
  renderSide(o);
  el.dataset.ready = "1";
}

function renderSide(o) {
  const rows = o.clusters.map(
    (c) => html`<tr data-cluster="${c.name}" class="${selected === c.name ? "selected" : ""}">
      <th scope="row"><button type="button" class="link" data-select="${c.name}">${c.name}</button>
        <div class="muted">${c.provider} · ${c.region}${c.jurisdiction ? ` · ${c.jurisdiction}` : ""}</div></th>
      <td><span class="chip ${c.health}">${HEALTH_LABEL[c.health]}</span></td>
      <td class="n">${c.ready}/${c.desired}</td>
      <td class="n">${num(c.rps)}</td>
      <td class="n">${ms(c.p99Ms)}</td></tr>`,
  );
  el.querySelector("table.clusters tbody").innerHTML = html`${rowsOr(rows, 5, "no clusters declared")}`.text;
  const detail = el.querySelector(".cluster-detail");
  const c = o.clusters.find((c) => c.name === selected);
  if (!c) {
    detail.innerHTML = html`<p class="muted">Select a cluster for what runs there.</p>`.text;
    return;
  }
  const here = o.services
    .map((s) => ({ s, row: s.clusters.find((r) => r.cluster === c.name) }))
    .filter((x) => x.row);
  const inbound = o.flows.filter((f) => f.kind === "traffic" && f.to === c.name);
  detail.innerHTML = html`<h3>${c.name} <span class="chip ${c.health}">${HEALTH_LABEL[c.health]}</span></h3>
    <p class="muted">${c.provider} ${c.region} · ${num(c.rps)} req/s · errors ${pct(c.errorRate, 2)} ·
      p50 ${ms(c.p50Ms)} · p99 ${ms(c.p99Ms)}</p>
    <table><thead><tr><th scope="col">service</th><th scope="col">role</th><th scope="col" class="n">ready</th>
      <th scope="col" class="n">req/s</th></tr></thead><tbody>
    ${rowsOr(
      here.map(
        ({ s, row }) => html`<tr><td><a href="#/services" data-service-link="${s.name}">${s.name}</a></td>
          <td>${row.role}</td><td class="n">${row.ready}/${row.desired}</td><td class="n">${num(row.rps)}</td></tr>`,
      ),
      4,
      "nothing runs here",
    )}</tbody></table>
    ${inbound.length ? html`<p class="muted">Serves users in ${inbound.map((f) => `${f.from.label} (${f.workload})`).join(", ")}.</p>` : ""}`.text;
}

function select(name) {
  selected = selected === name ? null : name;
  if (ctx.overview) render(ctx.overview);
}

function fit(o) {
  // The whole world, or (zoomed) the box around every cluster and user region, padded so that a fleet
  // in one metro still shows its country.
  if (zoomed && o && o.clusters.length) {
    const points = [...o.clusters.map((c) => [c.lon, c.lat]), ...o.flows.filter((f) => f.kind === "traffic").map((f) => [f.from.lon, f.from.lat])];
    const lons = points.map((p) => p[0]);
    const lats = points.map((p) => p[1]);
    const pad = 6;
    const box = {
      type: "MultiPoint",
      coordinates: [
        [Math.max(-180, Math.min(...lons) - pad), Math.max(-85, Math.min(...lats) - pad)],
        [Math.min(180, Math.max(...lons) + pad), Math.min(85, Math.max(...lats) + pad)],
      ],
    };
    projection = d3.geoNaturalEarth1().fitExtent([[40, 30], [W - 40, H - 30]], box);
  } else {
    projection = d3.geoNaturalEarth1().fitExtent([[8, 8], [W - 8, H - 8]], { type: "Sphere" });
  }
  path = d3.geoPath(projection);
  if (land) svg.querySelector("path.land").setAttribute("d", path(land));
  svg.querySelector("path.graticule").setAttribute("d", path(d3.geoGraticule10()));
}

async function drawLand() {
  const topo = await fetch("vendor/land-110m.json").then((r) => r.json());
  land = topojson.feature(topo, topo.objects.land);
  svg.querySelector("path.land").setAttribute("d", path(land));
}

export default {
  id: "map",
  title: "Fleet map",
  mount(section, context) {
    el = section;
    ctx = context;
    el.innerHTML = html`<div class="grid map">
      <div class="panel">
        <svg viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="map-title">
          <title id="map-title">World map of the fleet's clusters and traffic</title>
          <path class="graticule"></path><path class="land"></path>
          <g class="flows"></g><g class="clusters"></g>
        </svg>
        <div class="legend">
          <span><i class="dot-up"></i>up</span><span><i class="dot-degraded"></i>degraded</span>
          <span><i class="dot-down"></i>down</span><span><i class="dot-idle"></i>idle</span>
          <span><i class="line line-traffic"></i>traffic from users (width = req/s)</span>
          <span><i class="line line-data"></i>data read across clusters</span>
          <span>□ user region · circle size = req/s</span>
          <button type="button" class="link zoom" aria-pressed="false">Zoom to the fleet</button>
        </div>
      </div>
      <div class="panel">
        <table class="clusters"><caption class="muted">Clusters</caption><thead><tr>
          <th scope="col">cluster</th><th scope="col">health</th><th scope="col" class="n">ready</th>
          <th scope="col" class="n">req/s</th><th scope="col" class="n">p99</th></tr></thead><tbody></tbody></table>
        <div class="cluster-detail"></div>
      </div></div>`.text;
    svg = el.querySelector("svg");
    fit(null);
    drawLand().catch((e) => ctx.toast(`map data: ${e.message}`, "error"));
    el.querySelector("button.zoom").addEventListener("click", (e) => {
      zoomed = !zoomed;
      e.target.setAttribute("aria-pressed", String(zoomed));
      e.target.textContent = zoomed ? "Show the whole world" : "Zoom to the fleet";
      fit(ctx.overview);
      if (ctx.overview) render(ctx.overview);
    });
    el.addEventListener("click", (e) => {
      const target = e.target.closest("[data-cluster], [data-select]");
      if (target && (target.matches("circle") || target.dataset.select)) select(target.dataset.select || target.dataset.cluster);
    });
    el.addEventListener("keydown", (e) => {
      if ((e.key === "Enter" || e.key === " ") && e.target.matches("circle.cluster")) {
        e.preventDefault();
        select(e.target.dataset.cluster);
      }
    });
  },
  update: render,
};
