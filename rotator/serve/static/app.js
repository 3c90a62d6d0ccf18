// rotator's dashboard: one card per group, kept current by the server's event stream.
// Every value is put in the page as text (never as HTML).
"use strict";

const state = { csrf: "", groups: new Map(), notes: new Map(), chartTimer: null };
const ICON = { pending: "·", running: "▶", done: "✔", failed: "✘" };

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function time(t) {
  if (!t) return "";
  return new Date(t * 1000).toLocaleTimeString([], { hour12: false });
}

function when(t) {
  if (!t) return "";
  const d = new Date(t * 1000);
  return d.toISOString().slice(0, 10) + " " + d.toLocaleTimeString([], { hour12: false });
}

function took(a, b) {
  if (!a) return "";
  const s = Math.max(0, (b || Date.now() / 1000) - a);
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + "s";
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${Math.round(s % 60)}s` : `${Math.floor(m / 60)}h${m % 60}m`;
}

function weights(w) {
  const parts = Object.entries(w || {}).sort().map(([slot, v]) => `${slot} ${v}`);
  return parts.length ? parts.join(" / ") : "–";
}

function slotTag(slot) {
  return slot ? h("span", { class: `slot ${slot}` }, slot) : h("span", { class: "dim" }, "none");
}

// ---------------------------------------------------------------- actions

async function act(group, action) {
  // what the card shows now: a button kept across redraws acts on the latest rotation
  const rot = state.groups.get(group)?.rotation || {};
  const [rotation, step] = [rot.id, rot.current_step];
  const question = action === "promote"
    ? `Promote ${group}: approve '${step}' of rotation ${rotation} and carry it on?`
    : `Abort ${group}'s rotation ${rotation} and roll it back?`;
  if (!window.confirm(question)) return;
  const say = (text, ok) => {  // kept across re-renders of the card
    state.notes.set(group, { text, cls: ok ? "notice ok" : "notice error" });
    const note = document.querySelector(`[data-group="${CSS.escape(group)}"] .notice`);
    if (note) { note.textContent = text; note.className = ok ? "notice ok" : "notice error"; }
  };
  try {
    const resp = await fetch(`/api/groups/${encodeURIComponent(group)}/${action}`, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Rotator-CSRF": state.csrf },
      body: JSON.stringify(action === "abort" ? { reason: "aborted from the dashboard" } : {}),
    });
    const body = await resp.json();
    say(resp.ok ? `${action} sent as ${body.by}` : body.error, resp.ok);
  } catch (err) {
    say(String(err), false);
  }
}

// ---------------------------------------------------------------- rendering

function stepList(steps, title) {
  if (!steps.length) return null;
  return h("div", { class: "steps" }, h("h4", {}, title),
    h("ol", {}, steps.map((s) => h("li", { class: `step ${s.status}`, "data-step-status": s.status,
      "data-step-kind": s.kind },
      h("span", { class: "icon" }, ICON[s.status] || "?"),
      h("span", { class: "name" }, s.name),
      h("span", { class: "took" }, s.started_at ? took(s.started_at, s.finished_at) : ""),
      s.reason ? h("span", { class: "reason" }, s.reason) : null))));
}

function analysisBlock(rot) {
  const items = [];
  for (const g of rot.gates || []) {
    items.push(h("li", { class: `verdict ${g.verdict}` }, `${g.step}: ${g.verdict}`,
      g.reason && g.verdict !== "passed" ? ` (${g.reason})` : ""));
  }
  const analysis = rot.analysis;
  const load = (l) => (l ? `${Math.round(l.requests)} requests, ${(100 * (l.error_ratio || 0)).toFixed(2)}% 5xx`
    + (l.p99 !== null && l.p99 !== undefined ? `, p99 ${(l.p99 * 1000).toFixed(0)} ms` : "") : "no data");
  const evaluation = (label, e) => h("li", { class: `verdict ${e.verdict}` },
    `${label}: ${e.verdict}`, (e.failures || []).length ? ` (${e.failures.join("; ")})` : e.reason ? ` (${e.reason})` : "",
    h("div", { class: "dim" }, `candidate ${load(e.candidate)} · stable ${load(e.stable)}`));
  if (analysis && typeof analysis === "object" && (analysis.last || analysis.unwatched)) {
    if (analysis.last) items.push(evaluation("metrics", analysis.last));
    if (analysis.failures) items.push(h("li", { class: "verdict failed" }, `failed evaluations in a row: ${analysis.failures}`));
    if (analysis.unwatched) items.push(evaluation("the wait nobody watched", analysis.unwatched));
  } else if (analysis && typeof analysis === "object") {
    const results = Array.isArray(analysis) ? analysis
      : Array.isArray(analysis.results) ? analysis.results
      : Object.entries(analysis).map(([k, v]) => (typeof v === "object" && v ? { metric: k, ...v } : { metric: k, verdict: v }));
    for (const r of results) {
      const label = r.metric || r.name || "metric";
      const detail = ["candidate", "baseline", "value", "threshold"].filter((k) => r[k] !== undefined)
        .map((k) => `${k} ${typeof r[k] === "object" ? JSON.stringify(r[k]) : r[k]}`).join(", ");
      items.push(h("li", { class: `verdict ${r.verdict}` }, `${label}: ${r.verdict ?? "?"}`,
        detail ? ` (${detail})` : ""));
    }
  }
  const shown = (v) => (typeof v === "number" && v > 1e9 ? time(v)  // an instant
    : v && typeof v === "object" ? Object.entries(v).map(([k, x]) => `${k} ${shown(x)}`).join(", ") : String(v));
  for (const [k, v] of Object.entries(rot.extra || {})) {
    if (v === null || (typeof v === "object" && !Object.keys(v).length)) continue;
    items.push(h("li", { class: "verdict" }, `${k.replaceAll("_", " ")}: ${shown(v)}`));
  }
  return items.length ? h("div", { class: "gates" }, h("h4", {}, "gates and metrics"), h("ul", {}, items)) : null;
}

function rotationBlock(g) {
  const rot = g.rotation;
  if (!rot) return h("p", { class: "dim" }, "no rotation yet");
  const unfinished = !["done", "rolled-back"].includes(rot.status);
  const buttons = unfinished ? h("div", { class: "buttons" },
    h("button", { class: "promote", type: "button", disabled: !rot.waiting_approval,
      title: rot.waiting_approval ? `approve '${rot.current_step}'` : "nothing waits for approval",
      onclick: () => act(g.name, "promote") }, "Promote"),
    h("button", { class: "abort", type: "button", disabled: rot.rolling_back,
      onclick: () => act(g.name, "abort") }, "Abort")) : null;
  const who = g.controller ? h("p", { class: "dim" }, `carried on by ${g.controller.by}: ${g.controller.reason}`)
    : g.lock ? h("p", { class: "dim" }, `held by ${g.lock.holder} (pid ${g.lock.pid}) since ${time(g.lock.since)}`) : null;
  return h("section", { class: "rotation", "data-rotation-status": rot.status, "data-rotation-id": rot.id },
    h("div", { class: "rothead" },
      h("span", { class: `status ${rot.status}` }, rot.status),
      h("span", {}, ` ${rot.stable || "–"} → ${rot.candidate} · ${rot.ami} · ${rot.policy}`),
      h("span", { class: "dim" }, ` · ${rot.id}`)),
    rot.reason ? h("p", { class: "reason" }, rot.reason) : null,
    who,
    buttons,
    h("p", { class: "notice" }),
    h("div", { class: "cols" }, stepList(rot.steps, "steps"), stepList(rot.rollback_steps, "rollback"),
      analysisBlock(rot)));
}

function trafficBlock(g) {
  const rows = [];
  for (const [record, w] of Object.entries(g.weights.dns || {}).sort()) {
    rows.push(h("tr", {}, h("td", {}, "DNS"), h("td", { class: "mono" }, record), h("td", {}, weights(w))));
  }
  if (g.edge_load_balancer) {
    rows.push(h("tr", {}, h("td", {}, "edge"), h("td", { class: "mono" }, g.edge_load_balancer),
      h("td", {}, weights(g.weights.edge))));
  }
  for (const [slot, targets] of Object.entries(g.targets || {}).sort()) {
    rows.push(h("tr", {}, h("td", {}, "targets"), h("td", {}, slotTag(slot)),
      h("td", {}, targets.length ? targets.map((t) => h("span", { class: `target ${t.state}` }, `${t.ip} ${t.state}`)) : "none")));
  }
  for (const [slot, apps] of Object.entries(g.apps || {}).sort()) {
    const list = Object.entries(apps).sort();
    rows.push(h("tr", {}, h("td", {}, "apps"), h("td", {}, slotTag(slot)),
      h("td", {}, list.map(([id, a]) => h("span", { class: `app ${a.ok ? "ok" : "bad"}` },
        `${a.ok ? "✔" : "✘"} ${id} ${a.healthy}/${a.wanted}`)))));
  }
  return h("table", { class: "traffic" }, h("tbody", {}, rows));
}

function historyBlock(g) {
  const rows = (g.history || []).map((r) => h("tr", { "data-history-status": r.status },
    h("td", {}, when(r.created_at)), h("td", {}, r.kind), h("td", {}, h("span", { class: `status ${r.status}` }, r.status)),
    h("td", { class: "mono" }, r.kind === "rotation" ? r.ami : `${r.from} → ${r.to}`),
    h("td", {}, r.duration ? took(r.created_at, r.created_at + r.duration) : ""),
    h("td", { class: "operators" }, r.operators || ""), h("td", { class: "reason" }, r.reason || "")));
  if (!rows.length) return null;
  return h("details", { class: "history", open: true }, h("summary", {}, "history"),
    h("table", {}, h("thead", {}, h("tr", {}, ["when", "kind", "status", "AMI / move", "took", "who", "reason"].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows)));
}

function card(g) {
  return h("article", { class: "group card", "data-group": g.name, "data-live-slot": g.live_slot || "" },
    h("header", {}, h("h2", {}, g.name), slotTag(g.live_slot),
      h("span", { class: "mono ami" }, g.ami || ""),
      h("span", { class: "spacer" }),
      h("span", { class: "dim" }, g.live_read_at ? `read ${time(g.live_read_at)}` : "")),
    (g.errors || []).length ? h("p", { class: "error" }, g.errors.join("; ")) : null,
    h("div", { class: "cols" }, trafficBlock(g),
      h("img", { class: "chart", alt: `traffic of ${g.name} by slot, last hour`,
        src: `/api/groups/${encodeURIComponent(g.name)}/traffic.svg?t=${Math.floor(Date.now() / 30000)}` })),
    rotationBlock(g),
    historyBlock(g));
}

// A card is redrawn on every pushed change, in place: the nodes that stay are kept and
// brought up to date, as a button taken out of the page between mousedown and mouseup
// would swallow the click. A node is kept only for one of the same tag and class (a
// button keeps its listener, which reads the group's latest state when it runs).
function morph(old, fresh) {
  if (old.nodeName !== fresh.nodeName
      || (old.nodeType === Node.ELEMENT_NODE && old.className !== fresh.className)) {
    old.replaceWith(fresh);
    return;
  }
  if (old.nodeType !== Node.ELEMENT_NODE) {
    if (old.nodeValue !== fresh.nodeValue) old.nodeValue = fresh.nodeValue;
    return;
  }
  for (const name of old.getAttributeNames()) {
    if (!fresh.hasAttribute(name)) old.removeAttribute(name);
  }
  for (const name of fresh.getAttributeNames()) {
    const value = fresh.getAttribute(name);
    if (old.getAttribute(name) !== value) old.setAttribute(name, value);
  }
  const [olds, news] = [[...old.childNodes], [...fresh.childNodes]];
  news.forEach((child, i) => (i < olds.length ? morph(olds[i], child) : old.append(child)));
  for (const extra of olds.slice(news.length)) extra.remove();
}

function render(g) {
  state.groups.set(g.name, g);
  const main = document.getElementById("groups");
  const fresh = card(g);
  const said = state.notes.get(g.name);
  const newNote = fresh.querySelector(".notice");
  if (said && newNote) { newNote.textContent = said.text; newNote.className = said.cls; }
  const old = main.querySelector(`[data-group="${CSS.escape(g.name)}"]`);
  if (old) {
    const details = old.querySelector("details.history");
    if (details && !details.open) fresh.querySelector("details.history")?.removeAttribute("open");
    morph(old, fresh);
  } else {
    const names = [...state.groups.keys()].sort();
    const next = names.find((n) => n > g.name && main.querySelector(`[data-group="${CSS.escape(n)}"]`));
    main.insertBefore(fresh, next ? main.querySelector(`[data-group="${CSS.escape(next)}"]`) : null);
  }
}

function refreshCharts() {
  const stamp = Math.floor(Date.now() / 1000);
  for (const img of document.querySelectorAll("img.chart")) {
    img.src = img.src.replace(/\?t=\d+/, `?t=${stamp}`);
  }
}

// ---------------------------------------------------------------- start

async function start() {
  const resp = await fetch("/api/session", { credentials: "same-origin" });
  if (resp.status === 401) { window.location = "/login"; return; }
  const session = await resp.json();
  state.csrf = session.csrf;
  document.getElementById("environment").textContent = session.environment;
  document.getElementById("who").textContent = session.name ? `as ${session.name}` : "";
  document.getElementById("logout").hidden = !session.needs_token;
  const stream = document.getElementById("stream");
  const events = new EventSource("/api/events");
  events.addEventListener("open", () => { stream.dataset.state = "live"; stream.textContent = "live"; });
  events.addEventListener("error", () => { stream.dataset.state = "reconnecting"; stream.textContent = "reconnecting…"; });
  events.addEventListener("group", (e) => render(JSON.parse(e.data)));
  state.chartTimer = setInterval(refreshCharts, 30000);  // CloudWatch periods are 10-60 s
}

start();
