// The dashboard shell: login, the view router (#/map, #/services, ...), and the live stream that feeds
// every view. Each view module exports { id, mount(el, ctx), update(overview), show(), hide() }.

import { api, ApiError } from "./api.js";
import { html, num, ms, pct } from "./format.js";
import map from "./views/map.js";
import services from "./views/services.js";
import traffic from "./views/traffic.js";
import incidents from "./views/incidents.js";
import cost from "./views/cost.js";
import lineage from "./views/lineage.js";
import audit from "./views/audit.js";
import flags from "./views/flags.js";

const VIEWS = Object.fromEntries([map, services, traffic, incidents, cost, flags, lineage, audit].map((v) => [v.id, v]));
const $ = (id) => document.getElementById(id);

const listeners = { overview: [], event: [] };
const state = { who: null, overview: null, mounted: new Set(), current: null, source: null };

const ctx = {
  get who() {
    return state.who;
  },
  get overview() {
    return state.overview;
  },
  on(kind, fn) {
    listeners[kind].push(fn);
  },
  toast,
  navigate(hash) {
    location.hash = hash;
  },
};

function toast(message, kind = "info") {
  const el = $("toast");
  el.textContent = message;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (el.hidden = true), 6000);
}

// ------------------------------------------------------------------------------------------ login

async function login() {
  const match = location.hash.match(/login=([A-Za-z0-9_-]+)/);
  if (match) {
    // The code works once: take it out of the address bar (and history) before anything else.
    history.replaceState(null, "", `${location.pathname}#/map`);
    try {
      return await api.post("/session", { code: match[1] });
    } catch (e) {
      showLogin(e.message);
      return null;
    }
  }
  try {
    return await api.get("/session");
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      showLogin("");
      return null;
    }
    throw e;
  }
}

function showLogin(message) {
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("login-token").focus();
  // Single sign-on, when the control plane has an OpenID Provider: the link runs the code flow.
  api.get("/auth/oidc").then(
    (provider) => {
      $("sso-link").textContent = `Sign in with ${provider.name}`;
      $("sso").hidden = false;
    },
    () => null,
  );
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const who = await api.post("/session", { token: $("login-token").value.trim() });
    $("login-token").value = "";
    $("login").hidden = true;
    start(who);
  } catch (e) {
    $("login-error").textContent = e.message;
  }
});

$("logout").addEventListener("click", async () => {
  await api.del("/session").catch(() => null);
  location.replace("/");
});

// ------------------------------------------------------------------------------------ live stream

function connect() {
  const source = new EventSource("/api/v1/dashboard/stream");
  state.source = source;
  source.addEventListener("open", () => setLive("live", "live"));
  source.addEventListener("error", () => setLive("reconnecting", "reconnecting…"));
  source.addEventListener("overview", (e) => receive(JSON.parse(e.data)));
  source.addEventListener("event", (e) => {
    const event = JSON.parse(e.data);
    listeners.event.forEach((fn) => fn(event));
  });
  source.addEventListener("closed", () => source.close());
}

function setLive(stateName, text) {
  const el = $("live");
  el.dataset.state = stateName;
  el.textContent = text;
}

function receive(overview) {
  state.overview = overview;
  renderSummary(overview);
  listeners.overview.forEach((fn) => fn(overview));
  const view = VIEWS[state.current];
  if (view && view.update) view.update(overview);
}

function renderSummary(o) {
  const count = (health) => o.clusters.filter((c) => c.health === health).length;
  const rps = o.clusters.reduce((sum, c) => sum + c.rps, 0);
  const errors = o.clusters.reduce((sum, c) => sum + c.rps * c.errorRate, 0);
  const ready = o.clusters.reduce((sum, c) => sum + c.ready, 0);
  const wanted = o.clusters.reduce((sum, c) => sum + c.desired, 0);
  const el = $("summary");
  el.hidden = false;
  el.innerHTML = html`
    <div><span class="k">clusters</span> <span class="v">${o.clusters.length}</span>
      <span class="chip up">${count("up")} up</span>
      ${count("degraded") ? html`<span class="chip degraded">${count("degraded")} degraded</span>` : ""}
      ${count("down") ? html`<span class="chip down">${count("down")} down</span>` : ""}</div>
    <div><span class="k">services</span> <span class="v">${o.services.length}</span></div>
    <div><span class="k">replicas ready</span> <span class="v">${ready} / ${wanted}</span></div>
    <div><span class="k">requests</span> <span class="v">${num(rps)}/s</span></div>
    <div><span class="k">errors</span> <span class="v">${pct(rps ? errors / rps : 0, 2)}</span></div>
    <div><span class="k">p99</span> <span class="v">${ms(Math.max(0, ...o.clusters.map((c) => c.p99Ms)))}</span></div>
    ${controlPlane(o.controlPlane)}`.text;
}

// Who leads the control plane, and how many servers and gateways report in (status's controlPlane).
function controlPlane(plane) {
  if (!plane) return "";
  const names = (members) => members.map((m) => m.id).join(", ");
  const leader = plane.leader
    ? html`<span class="v" title="lease epoch ${plane.epoch}">${plane.leader}</span>`
    : html`<span class="chip down">no leader</span>`;
  return html`<div id="control-plane"><span class="k">leader</span> ${leader}
    <span class="chip" title="${names(plane.servers)}">${plane.servers.length} servers</span>
    <span class="chip" title="${names(plane.gateways)}">${plane.gateways.length} gateways</span></div>`;
}

// ------------------------------------------------------------------------------------------ router

function route() {
  const id = (location.hash.match(/^#\/(\w+)/) || [])[1] || "map";
  const view = VIEWS[id] || VIEWS.map;
  if (state.current && state.current !== view.id) {
    const old = VIEWS[state.current];
    if (old.hide) old.hide();
    document.querySelector(`section.view[data-view="${old.id}"]`).hidden = true;
  }
  const el = document.querySelector(`section.view[data-view="${view.id}"]`);
  el.hidden = false;
  if (!state.mounted.has(view.id)) {
    state.mounted.add(view.id);
    view.mount(el, ctx);
  }
  state.current = view.id;
  if (view.show) view.show();
  if (state.overview && view.update) view.update(state.overview);
  document.querySelectorAll("#tabs a").forEach((a) => {
    if (a.dataset.view === view.id) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  document.title = `polycloud — ${view.title}`;
}

function start(who) {
  state.who = who;
  $("who").textContent = `${who.name} · ${who.role}${who.project ? ` of ${who.project}` : ""}`;
  $("logout").hidden = false;
  document.body.dataset.role = who.role;
  window.addEventListener("hashchange", route);
  route();
  connect();
  // The first overview by plain GET, so the page is complete even before the stream's first push.
  api.get("/dashboard/overview").then((o) => state.overview || receive(o), (e) => toast(e.message, "error"));
}

login().then((who) => who && start(who), (e) => showLogin(e.message));
