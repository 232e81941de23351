// ltrr console: plain JavaScript against the app's own HTTP API. No framework, no network
// beyond this origin. Every value from the API is inserted as text (never as HTML).
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { lastStats: null, series: {}, latency: {}, job: null };
const POLL_MS = 2000;
const SERIES_LEN = 30;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { "content-type": "application/json", ...(options.headers || {}) } });
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = { detail: text }; }
  if (!res.ok) throw new Error(`${res.status}: ${body && body.detail ? JSON.stringify(body.detail) : text}`);
  return body;
}

function eventId() {
  const a = new Uint8Array(8);
  crypto.getRandomValues(a);
  return "ui-" + Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
}

// -- search -------------------------------------------------------------------------
async function search(ev) {
  ev.preventDefault();
  const body = { query: $("#q").value, k: Number($("#k").value), related: 6 };
  if ($("#user").value.trim()) body.user_id = $("#user").value.trim();
  $("#status").textContent = "searching...";
  try {
    const res = await api("/search", { method: "POST", body: JSON.stringify(body) });
    render(res);
  } catch (e) {
    $("#status").textContent = "search failed: " + e.message;
  }
}

function render(res) {
  const degraded = res.degraded ? ` - degraded (${res.failed_strategies.join(", ")})` : "";
  $("#status").textContent = `${res.results.length} results in ${res.timings_ms.total.toFixed(1)} ms${degraded}`;
  $("#status").dataset.requestId = res.request_id;
  $("#versions").textContent = `policy ${res.versions.policy} · ranker ${res.versions.ranker}`;
  const list = $("#results");
  list.replaceChildren();
  for (const r of res.results) {
    const f = r.fields;
    const names = Object.keys(f).filter((k) => k !== "year");
    const titleKey = "title" in f ? "title" : names[0];
    const metaKeys = ["artist", "album"].some((k) => k in f) ? ["artist", "album", "year"] : names.slice(1, 3).concat(["year"]);
    const badges = el("div");
    for (const s of r.strategies) badges.append(el("span", { class: `badge ${s}`, title: `${s} ranked it #${r.strategy_ranks[s]}` },
      `${s} #${r.strategy_ranks[s] ?? "?"}`));
    const buttons = el("span", { class: "fb-buttons" });
    for (const type of ["click", "play", "like"]) {
      buttons.append(el("button", { class: `fb fb-${type}`, type: "button",
        onclick: (e) => feedback(res.request_id, r, type, e.target) }, type));
    }
    list.append(el("li", { class: "result", "data-item": r.item_id },
      el("span", { class: "title" }, f[titleKey] || r.item_id), " ",
      el("span", { class: "meta" }, metaKeys.map((k) => f[k]).filter(Boolean).join(" · ")), " ", buttons,
      el("div", { class: "meta" }, `score ${r.score.toFixed(4)}` + (f.genre ? ` · ${f.genre} ${f.mood || ""}` : "")), badges));
  }
  // a click on an entity card or a related entity is feedback too: it credits the results it came through
  const cards = $("#cards");
  cards.replaceChildren();
  (res.entities || []).forEach((e, i) => {
    cards.append(el("div", { class: "card", "data-entity": e.entity_id, title: "click: feedback on this entity",
      onclick: (ev) => entityFeedback(res.request_id, e, i + 1, ev.currentTarget) }, el("span", { class: "type" }, e.type),
      el("b", {}, e.name), ` · ${e.n_items} items`, e.fields.artist ? ` · by ${e.fields.artist}` : ""));
  });
  const related = $("#related");
  related.replaceChildren();
  (res.related || []).forEach((e, i) => {
    related.append(el("span", { class: "chip", "data-entity": e.entity_id, title: `via ${e.via.join(", ")}`,
      onclick: (ev) => entityFeedback(res.request_id, e, i + 1, ev.currentTarget) },
      el("span", { class: "type" }, e.type), e.name));
  });
  $("#related-box").hidden = !(res.related || []).length;
  renderPlan(res);
}

function renderPlan(res) {
  const rows = Object.entries(res.plan.budgets).map(([s, b]) =>
    el("tr", {}, el("td", {}, s), el("td", { class: "num" }, b),
       el("td", { class: "num" }, res.timings_ms[`retrieve:${s}`] != null ? res.timings_ms[`retrieve:${s}`].toFixed(1) + " ms" : "-")));
  $("#plan").replaceChildren(
    el("div", {}, `policy ${res.plan.policy_version} · propensity ${res.plan.propensity.toPrecision(3)}`,
       res.plan.shadow ? " · shadow (every strategy, for learning)" : ""),
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "strategy"), el("th", {}, "budget"), el("th", {}, "latency"))),
       el("tbody", {}, ...rows)));
  const stages = ["features", "plan", "retrieve", "rank", "log", "total"].filter((s) => res.timings_ms[s] != null);
  $("#timings").replaceChildren(el("div", { class: "muted" },
    "stage timings (cumulative ms for features and plan): " + stages.map((s) => `${s} ${res.timings_ms[s].toFixed(1)}`).join(" · ")));
  for (const [s, b] of Object.entries(res.plan.budgets)) {
    const ms = res.timings_ms[`retrieve:${s}`];
    if (b > 0 && ms != null) (state.latency[s] = state.latency[s] || []).push(ms);
  }
}

async function feedback(requestId, result, type, button) {
  await sendEvent(requestId, { item_id: result.item_id, type, position: result.rank }, button);
}

// position: the entity's 1-based place among the cards, or among the related entities
async function entityFeedback(requestId, entity, position, node) {
  await sendEvent(requestId, { entity_id: entity.entity_id, type: "click", position }, node);
}

async function sendEvent(requestId, event, node) {
  const body = { request_id: requestId, events: [{ event_id: eventId(), ...event }] };
  try {
    const res = await api("/feedback", { method: "POST", body: JSON.stringify(body) });
    if (res.accepted) node.classList.add("sent");
    refreshStats();
  } catch (e) {
    $("#status").textContent = "feedback failed: " + e.message;
  }
}

// -- live panel ---------------------------------------------------------------------
function sparkline(values) {
  const w = 90, h = 18, n = values.length;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h);
  if (n < 2) return svg;
  const max = Math.max(...values, 1e-9);
  const pts = values.map((v, i) => `${(i / (n - 1)) * w},${h - 1 - (v / max) * (h - 2)}`).join(" ");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", pts); line.setAttribute("fill", "none"); line.setAttribute("stroke", "#2d5fa8");
  svg.append(line);
  return svg;
}

async function refreshStats() {
  let stats;
  try { stats = await api("/stats"); } catch (_) { return; }
  state.lastStats = stats;
  $("#n-requests").textContent = stats.requests;
  $("#fb-count").textContent = stats.events;
  const tbody = $("#strategy-table tbody");
  tbody.replaceChildren();
  for (const [s, c] of Object.entries(stats.strategies || {})) {
    const sel = stats.requests ? c.chosen / stats.requests : 0;
    const hit = c.chosen ? c.hits / c.chosen : 0;
    const series = (state.series[s] = state.series[s] || []);
    series.push(hit);
    if (series.length > SERIES_LEN) series.shift();
    const lat = state.latency[s] || [];
    const mean = lat.length ? (lat.reduce((a, b) => a + b, 0) / lat.length).toFixed(1) : "-";
    tbody.append(el("tr", { "data-strategy": s }, el("td", {}, s),
      el("td", { class: "num sel" }, el("span", { class: "bar", style: `width:${Math.round(sel * 40)}px` }), `${(100 * sel).toFixed(0)}%`),
      el("td", { class: "num hit", "data-hits": c.hits, title: `${c.hits} hits over ${c.chosen} selections` },
        c.chosen ? hit.toFixed(2) : "-"),
      el("td", { class: "num" }, mean), el("td", {}, sparkline(series))));
  }
}

async function refreshPromotions() {
  let p;
  try { p = await api("/promotions"); } catch (_) { return; }
  const box = $("#promotions");
  const gates = p.bandit_gates || [];
  const ranker = (p.history && p.history.ranker) || [];
  if (!gates.length && !ranker.length) { box.textContent = "none yet: send traffic, then retrain"; return; }
  box.replaceChildren();
  for (const g of gates) {
    const ope = g.ope || {};
    const cand = ope.candidate || {}, serv = ope.serving || {};
    const fmt = (e) => (e && typeof e.value === "number" ? e.value.toFixed(3) : "?");
    const text = Object.keys(cand).map((k) =>
      `${k}${k === ope.estimator ? " (gate)" : ""} ${fmt(cand[k])} [${fmt({ value: cand[k].ci_low })}, ${fmt({ value: cand[k].ci_high })}] vs ${fmt(serv[k])}`)
      .join(" · ");
    box.append(el("div", { class: `gate ${g.promoted ? "" : "rejected"}` },
      el("b", {}, g.version), g.promoted ? " promoted" : " kept out", ` (vs ${g.serving_version})`,
      el("div", { class: "muted" }, text || JSON.stringify(ope).slice(0, 200))));
  }
  for (const h of ranker) box.append(el("div", { class: "gate" }, `ranker ${h.version} (${h.reason})`));
}

async function refreshVersions() {
  try {
    const h = await api("/healthz");
    if (!$("#status").dataset.requestId) $("#versions").textContent = `policy ${h.policy} · ranker ${h.ranker}`;
  } catch (_) { /* the panel shows what it can */ }
}

async function retrain() {
  const token = $("#token").value.trim();
  const status = $("#job-status");
  if (!token) { status.textContent = "paste the admin token (state/admin_token) first"; return; }
  try {
    const job = await api("/admin/retrain", { method: "POST", headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify({ what: $("#what").value }) });
    state.job = { id: job.job_id, token };
    status.textContent = `job ${job.job_id}: ${job.status}`;
  } catch (e) {
    status.textContent = "retrain refused: " + e.message;
  }
}

async function pollJob() {
  if (!state.job) return;
  try {
    const j = await api(`/admin/jobs/${encodeURIComponent(state.job.id)}`, { headers: { authorization: `Bearer ${state.job.token}` } });
    $("#job-status").textContent = `job ${j.job_id}: ${j.status}` + (j.message ? ` - ${j.message}` : "");
    if (["SUCCEEDED", "FAILED", "STOPPED"].includes(j.status)) { state.job = null; refreshPromotions(); refreshVersions(); }
  } catch (e) {
    $("#job-status").textContent = "job status: " + e.message;
  }
}

$("#search-form").addEventListener("submit", search);
$("#retrain-btn").addEventListener("click", retrain);
refreshVersions(); refreshStats(); refreshPromotions();
setInterval(refreshStats, POLL_MS);
setInterval(refreshPromotions, 5 * POLL_MS);
setInterval(pollJob, POLL_MS);
