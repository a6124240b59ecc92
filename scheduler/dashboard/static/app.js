// Greenlight's admin dashboard: fetches GET /v1/dashboard with the admin token kept in this tab
// (sessionStorage) and draws every chart as inline SVG. No library, no request elsewhere.
"use strict";

const REFRESH_MS = 15000;
const SVG_NS = "http://www.w3.org/2000/svg";
const COLORS = { actual: "#2e8b57", baseline: "#9aa5a0", forecast: "#2c6fbb", bad: "#c0392b" };
const STATE_COLORS = { planned: "#9cc3e6", running: "#2e8b57", ran: "#2e8b57", pending: "#d68910" };
const TOKEN_KEY = "greenlight-token";
let timer = null;
let lastDoc = null;

function $(id) { return document.getElementById(id); }

function el(tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children || []) node.append(c);
  return node;
}

function svg(tag, attrs, children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const c of children || []) node.append(c);
  return node;
}

// Masses in the unit that keeps them readable: mg when grams round to zero, kg, t.
function fmtMass(g) {
  if (g === null || g === undefined || !isFinite(g)) return "–";
  const a = Math.abs(g);
  if (a >= 1e6) return (g / 1e6).toFixed(2) + " t";
  if (a >= 1e3) return (g / 1e3).toFixed(2) + " kg";
  if (a >= 1) return g.toFixed(1) + " g";
  if (a === 0) return "0 g";
  return (g * 1e3).toFixed(1) + " mg";
}

function fmtEnergy(kwh) {
  if (kwh === null || kwh === undefined || !isFinite(kwh)) return "–";
  if (Math.abs(kwh) >= 1) return kwh.toFixed(2) + " kWh";
  return (kwh * 1e3).toFixed(1) + " Wh";
}

function fmtPct(p) { return p === null || p === undefined ? "–" : p.toFixed(1) + " %"; }

function fmtTime(iso) {
  if (!iso) return "–";
  return iso.replace("T", " ").replace(/:\d\d(\.\d+)?(\+00:00|Z)$/, " UTC");
}

function niceTicks(lo, hi, count) {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const ticks = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(v);
  if (ticks[ticks.length - 1] < hi) ticks.push(ticks[ticks.length - 1] + step);
  return ticks;
}

function compact(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toPrecision(3).replace(/\.?0+$/, "") + "M";
  if (a >= 1e3) return (v / 1e3).toPrecision(3).replace(/\.?0+$/, "") + "k";
  return Number(v.toPrecision(3)).toString();
}

// Charts are drawn at the pixel width of their container, so text stays 12 px at any size.
function widthOf(container, fallback) {
  return Math.max(280, Math.round(container.clientWidth || fallback));
}

function frame(width, height) {
  return svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    preserveAspectRatio: "xMidYMid meet" });
}

function emptyChart(container, message) {
  const W = widthOf(container, 600);
  const root = frame(W, 120);
  root.append(svg("rect", { x: 1, y: 1, width: W - 2, height: 118, fill: "none",
    stroke: "#d8e0da", "stroke-dasharray": "4 4", rx: 6 }));
  root.append(svg("text", { x: W / 2, y: 66, "text-anchor": "middle" }, [message]));
  root.dataset.empty = "true";
  container.replaceChildren(root);
}

function yAxis(root, ticks, y, left, right) {
  for (const t of ticks) {
    root.append(svg("line", { x1: left, x2: right, y1: y(t), y2: y(t),
      stroke: t === 0 ? "#8a968f" : "#e3e8e4" }));
    root.append(svg("text", { x: left - 6, y: y(t) + 4, "text-anchor": "end" }, [compact(t)]));
  }
}

function legend(root, items, x, y) {
  let dx = x;
  for (const item of items) {
    root.append(svg("rect", { x: dx, y: y - 10, width: 12, height: 12, fill: item.color }));
    root.append(svg("text", { x: dx + 16, y: y }, [item.label]));
    dx += 24 + item.label.length * 7;
  }
}

// Grouped vertical bars: categories along x, one bar per series in each group.
function barChart(container, categories, series, unit) {
  if (!categories.length) { emptyChart(container, "no finished jobs yet"); return; }
  const W = widthOf(container, 640), H = 260, L = 56, R = 12, T = 28, B = 52;
  const values = series.flatMap((s) => s.values);
  const ticks = niceTicks(Math.min(0, ...values), Math.max(0, ...values), 4);
  const lo = ticks[0], hi = ticks[ticks.length - 1];
  const y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
  const root = frame(W, H);
  yAxis(root, ticks, y, L, W - R);
  root.append(svg("text", { x: 4, y: 14 }, [unit]));
  const groupW = (W - L - R) / categories.length;
  const barW = Math.min(48, (groupW * 0.8) / series.length);
  categories.forEach((cat, i) => {
    const x0 = L + i * groupW + (groupW - barW * series.length) / 2;
    series.forEach((s, k) => {
      const v = s.values[i];
      const top = y(Math.max(v, 0)), bottom = y(Math.min(v, 0));
      const bar = svg("rect", { x: x0 + k * barW, y: top, width: Math.max(barW - 2, 1),
        height: Math.max(bottom - top, 1), fill: v < 0 && s.negative ? s.negative : s.color });
      bar.append(svg("title", {}, [`${cat} · ${s.label}: ${compact(v)} ${unit}`]));
      root.append(bar);
    });
    const label = cat.length > 14 ? cat.slice(0, 13) + "…" : cat;
    root.append(svg("text", { x: L + (i + 0.5) * groupW, y: H - B + 18,
      "text-anchor": "middle" }, [label]));
  });
  legend(root, series.map((s) => ({ label: s.label, color: s.color })), L, H - 12);
  container.replaceChildren(root);
}

function timeScale(t0, t1, left, right) {
  const a = Date.parse(t0), b = Date.parse(t1);
  return (iso) => left + (right - left) * ((Date.parse(iso) - a) / (b - a));
}

function timeAxis(root, t0, t1, x, yTop, yBottom) {
  const a = Date.parse(t0), b = Date.parse(t1);
  const hours = (b - a) / 3600e3;
  const stepMs = [1, 2, 3, 6, 12, 24].find((h) => hours / h <= Math.max(2, (x(t1) - x(t0)) / 70))
    * 3600e3 || 24 * 3600e3;
  for (let t = Math.ceil(a / stepMs) * stepMs; t <= b; t += stepMs) {
    const iso = new Date(t).toISOString();
    root.append(svg("line", { x1: x(iso), x2: x(iso), y1: yTop, y2: yBottom, stroke: "#eef2ef" }));
    root.append(svg("text", { x: x(iso), y: yBottom + 16, "text-anchor": "middle" },
      [iso.slice(11, 16)]));
  }
}

function nowLine(root, x, now, yTop, yBottom) {
  root.append(svg("line", { x1: x(now), x2: x(now), y1: yTop, y2: yBottom, stroke: COLORS.bad,
    "stroke-dasharray": "3 3" }));
  root.append(svg("text", { x: x(now) + 3, y: yTop + 10 }, ["now"]));
}

// Forecast (dashed) against actual (solid) intensity, job windows shaded underneath.
function intensityChart(container, region, span, now) {
  if (!region.actual.length && !region.forecast.length) {
    emptyChart(container, "no intensity data for this region yet"); return;
  }
  const W = widthOf(container, 600), H = 220, L = 44, R = 10, T = 16, B = 30;
  const x = timeScale(span.start, span.end, L, W - R);
  const values = [...region.actual, ...region.forecast].map((p) => p[1]);
  const ticks = niceTicks(Math.min(...values) * 0.9, Math.max(...values) * 1.05, 4);
  const lo = ticks[0], hi = ticks[ticks.length - 1];
  const y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
  const root = frame(W, H);
  for (const w of region.windows) {
    const shade = svg("rect", { x: x(w.start), y: T, width: Math.max(x(w.end) - x(w.start), 1),
      height: H - T - B, fill: w.state === "planned" ? "#dbe9f6" : "#cfe8d9", opacity: 0.8 });
    shade.append(svg("title", {}, [`${w.name} (${w.job_id}) ${w.state} ` +
      `${fmtTime(w.start)} → ${fmtTime(w.end)}`]));
    shade.dataset.window = w.state;
    root.append(shade);
  }
  yAxis(root, ticks, y, L, W - R);
  timeAxis(root, span.start, span.end, x, T, H - B);
  const path = (points) => points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},` +
    `${y(p[1]).toFixed(1)}`).join(" ");
  if (region.actual.length) {
    root.append(svg("path", { d: path(region.actual), fill: "none", stroke: COLORS.actual,
      "stroke-width": 2, "data-series": "actual" }));
  }
  if (region.forecast.length) {
    root.append(svg("path", { d: path(region.forecast), fill: "none", stroke: COLORS.forecast,
      "stroke-width": 2, "stroke-dasharray": "6 4", "data-series": "forecast" }));
  }
  nowLine(root, x, now, T, H - B);
  container.replaceChildren(root);
}

function queueChart(container, jobs, span, now) {
  const rows = jobs.filter((j) => j.start && j.end);
  if (!rows.length) { emptyChart(container, "no planned or running windows"); return; }
  const shown = rows.slice(0, 40);
  const W = widthOf(container, 900), rowH = 18, L = Math.min(150, W / 3), R = 10, T = 8,
    B = 24;
  const H = T + B + rowH * shown.length;
  const start = new Date(Math.min(Date.parse(now) - 3600e3,
    ...shown.map((j) => Date.parse(j.start)))).toISOString();
  const end = new Date(Math.max(Date.parse(now) + 3600e3,
    ...shown.map((j) => Date.parse(j.end)))).toISOString();
  const x = timeScale(start, end, L, W - R);
  const root = frame(W, H);
  timeAxis(root, start, end, x, T, H - B);
  shown.forEach((j, i) => {
    const yTop = T + i * rowH;
    const label = `${j.name || j.id}`.slice(0, 20);
    root.append(svg("text", { x: L - 6, y: yTop + 12, "text-anchor": "end" }, [label]));
    const bar = svg("rect", { x: x(j.start), y: yTop + 2, width: Math.max(x(j.end) - x(j.start), 2),
      height: rowH - 4, rx: 3, fill: j.late ? COLORS.bad : (STATE_COLORS[j.state] || "#9aa5a0") });
    bar.append(svg("title", {}, [`${j.id} ${j.state} in ${j.region || "?"}: ` +
      `${fmtTime(j.start)} → ${fmtTime(j.end)}`]));
    root.append(bar);
  });
  nowLine(root, x, now, T, H - B);
  if (rows.length > shown.length) {
    root.append(svg("text", { x: W - R, y: H - 4, "text-anchor": "end" },
      [`first ${shown.length} of ${rows.length}`]));
  }
  container.replaceChildren(root);
}

function card(label, value, raw, cls, hint) {
  const node = el("div", { class: "card " + (cls || ""), "data-metric": label });
  node.dataset.value = raw === null || raw === undefined ? "" : String(raw);
  node.append(el("div", { class: "label" }, [label]), el("div", { class: "value" }, [value]));
  if (hint) node.append(el("div", { class: "hint" }, [hint]));
  return node;
}

function renderCards(total) {
  const saved = total.saved_g;
  $("cards").replaceChildren(
    card("jobs", String(total.jobs), total.jobs),
    card("energy", fmtEnergy(total.energy_kwh), total.energy_kwh),
    card("emissions", fmtMass(total.emissions_g), total.emissions_g),
    card("baseline", fmtMass(total.baseline_g), total.baseline_g),
    card("saved", fmtMass(saved), saved, saved >= 0 ? "good" : "bad"),
    card("saved %", fmtPct(total.saved_pct), total.saved_pct, saved >= 0 ? "good" : "bad"),
  );
}

function fmtCount(n) {
  if (n === null || n === undefined || !isFinite(n)) return "–";
  return Math.round(n).toLocaleString("en-US");
}

function fmtSaving(g, pct) {
  if (g === null || g === undefined) return "–";
  return pct === null || pct === undefined ? fmtMass(g) : `${fmtMass(g)} (${fmtPct(pct)})`;
}

// SCI per R for each job kind (the report grouped by kind): a fleet's total mixes steps and
// requests, so it has no R of its own.
const KIND_UNITS = { training: "steps", deployment: "requests" };

function renderSci(report) {
  const byKind = Object.fromEntries((report.groups || []).map((g) => [g.key, g]));
  const cards = [];
  for (const [kind, unit] of Object.entries(KIND_UNITS)) {
    const g = byKind[kind];
    const sci = g ? g.sci_g_per_r : null;
    const counted = g && g.functional_units !== null && g.functional_units !== undefined;
    cards.push(card(`SCI per 1,000 ${unit}`, sci === null || sci === undefined ? "–" :
      fmtMass(sci), sci, "", !g ? `no ${kind} jobs in this period` :
      counted ? `${fmtCount(g.functional_units)} ${unit} counted by ${g.jobs} jobs` :
      `not every ${kind} job reported its ${unit}`));
    if (kind === "deployment" && g) {
      cards.push(card("energy per 1,000 requests", fmtEnergy(g.energy_kwh_per_1k_requests),
        g.energy_kwh_per_1k_requests, "", "operational energy at the meters"));
      cards.push(card("emissions per 1,000 requests", fmtMass(g.emissions_g_per_1k_requests),
        g.emissions_g_per_1k_requests, "", "operational, location-based"));
    }
  }
  $("sci").replaceChildren(...cards);
}

function renderPacking(packing) {
  const holder = $("packing");
  if (!packing) {
    holder.dataset.empty = "true";
    holder.replaceChildren(el("p", { class: "note" }, ["No deployment shared a GPU in this " +
      "period, so packing powered no fewer GPUs. Deployments asking for a fraction of a GPU " +
      "(resources.gpus: 0.25) are packed onto as few devices as fit."]));
    return;
  }
  holder.dataset.empty = "false";
  const row = (label, value, raw) => {
    const node = el("div", { class: "kv", "data-metric": label }, [
      el("span", { class: "label" }, [label]), el("span", { class: "value" }, [value])]);
    node.dataset.value = raw === null || raw === undefined ? "" : String(raw);
    return node;
  };
  holder.replaceChildren(
    el("div", { class: "caption" }, [`GPUs powered with vs without packing ` +
      `(${packing.deployments} shared-GPU deployments)`]),
    row("GPU-hours packed", `${packing.gpu_h_packed.toFixed(1)} GPU-h`, packing.gpu_h_packed),
    row("GPU-hours unpacked", `${packing.gpu_h_unpacked.toFixed(1)} GPU-h`,
      packing.gpu_h_unpacked),
    row("peak GPUs packed / unpacked", `${packing.peak_gpus_packed} / ` +
      `${packing.peak_gpus_unpacked}`, packing.peak_gpus_packed),
    row("idle energy saved", `${fmtEnergy(packing.energy_kwh)} at ${packing.idle_gpu_w} W ` +
      `(${packing.idle_power_source})`, packing.energy_kwh),
    row("idle emissions saved", packing.emissions_g === null ? "unpriced" :
      fmtMass(packing.emissions_g), packing.emissions_g),
  );
}

function renderRelocations(rel) {
  $("relocation-counts").replaceChildren(...Object.entries(rel.counts).map(([outcome, n]) =>
    el("span", { class: "chip", "data-outcome": outcome }, [`${outcome}: ${n}`])));
  const body = $("relocations").querySelector("tbody");
  body.replaceChildren(...rel.moves.map((m) => {
    const outcome = m.outcome === "in progress" ? `in progress (${m.phase})` :
      m.outcome === "rolled back" ? `rolled back: ${m.reason || "no reason given"}` : "relocated";
    const measured = m.measured_saving_g !== null ? fmtSaving(m.measured_saving_g,
      m.measured_saving_pct) : m.outcome === "relocated" ? "awaiting actuals" : "–";
    const row = el("tr", { "data-job": m.job_id, "data-outcome": m.outcome }, [
      el("td", { title: m.job_id, "data-label": "Deployment" }, [m.name || m.job_id]),
      el("td", { "data-label": "Move" }, [`${m.from_region || "?"} → ${m.to_region || "?"}`]),
      el("td", { "data-label": "When" }, [fmtTime(m.at)]),
      el("td", { "data-label": "Expected", "data-value": String(m.expected_saving_g ?? "") },
        [fmtSaving(m.expected_saving_g, m.expected_saving_pct)]),
      el("td", { "data-label": "Measured", "data-value": String(m.measured_saving_g ?? "") },
        [measured]),
      el("td", { "data-label": "Outcome", class: "wrap" + (m.outcome === "rolled back" ?
        " bad" : "") }, [outcome]),
    ]);
    return row;
  }));
  if (!rel.moves.length) {
    body.append(el("tr", { class: "empty-row" }, [el("td", { colspan: "6" }, [
      "No relocations yet. A running deployment moves when another of its allowed regions is " +
      "expected to save more than the [relocation] thresholds over the horizon."])]));
  }
}

function renderRegions(doc) {
  const holder = $("regions");
  holder.replaceChildren();
  // Lay every panel out first: a chart is drawn at its container's final width.
  const charts = doc.regions.map((region) => {
    const chart = el("div", { class: "chart", "data-region": region.name });
    const caption = `${region.name} · ${region.grid_zone} via ${region.provider}` +
      (region.last_error ? ` — fault: ${region.last_error}` : "");
    holder.append(el("figure", { class: "panel" }, [el("figcaption", {}, [caption]), chart]));
    return chart;
  });
  doc.regions.forEach((region, i) => intensityChart(charts[i], region, doc.span, doc.generated_at));
}

function renderQueue(queue, now) {
  $("counts").replaceChildren(...Object.entries(queue.counts).map(([state, n]) =>
    el("span", { class: "chip", "data-state": state }, [`${state}: ${n}`])));
  const body = $("queue").querySelector("tbody");
  body.replaceChildren(...queue.jobs.map((j) => el("tr", {}, [
    el("td", { title: j.id }, [j.name || j.id]), el("td", {}, [j.tenant]),
    el("td", { class: j.late ? "late" : "" }, [j.late ? `${j.state} (late)` : j.state]),
    el("td", {}, [j.region || "–"]), el("td", {}, [fmtTime(j.start)]),
    el("td", {}, [fmtTime(j.end)]), el("td", {}, [fmtTime(j.latest_start)]),
  ])));
  if (!queue.jobs.length) {
    body.append(el("tr", {}, [el("td", { colspan: "7" }, ["the queue is empty"])]));
  }
  queueChart($("chart-queue"), queue.jobs, null, now);
}

function renderFaults(doc) {
  const items = [
    ...doc.faults.map((f) => el("li", {}, [el("span", { class: "when" }, [f.source]), f.message])),
    ...doc.events.map((e) => el("li", {}, [el("span", { class: "when" }, [fmtTime(e.at)]),
      `${e.kind} · ${e.job_id}: ${e.reason}`])),
  ];
  $("faults").replaceChildren(...(items.length ? items : [el("li", {}, ["no faults or warnings"])]));
}

function render(doc) {
  lastDoc = doc;
  const report = doc.report;
  renderCards(report.total);
  $("empty").hidden = report.total.jobs > 0 || doc.queue.jobs.length > 0;
  const periods = report.by_period;
  barChart($("chart-time"), periods.map((g) => g.key), [
    { label: "actual", values: periods.map((g) => g.emissions_g), color: COLORS.actual },
    { label: "run-now baseline", values: periods.map((g) => g.baseline_g), color: COLORS.baseline },
  ], "gCO2e");
  for (const [id, groups] of [["chart-tenant", report.by_tenant], ["chart-region", report.by_region]]) {
    barChart($(id), groups.map((g) => g.key), [{ label: "saved", values: groups.map((g) => g.saved_g),
      color: COLORS.actual, negative: COLORS.bad }], "gCO2e");
  }
  renderRegions(doc);
  renderQueue(doc.queue, doc.generated_at);
  renderSci(report);
  renderPacking(report.packing);
  renderRelocations(doc.relocations);
  renderFaults(doc);
  $("updated").textContent = "updated " + fmtTime(doc.generated_at);
  const root = document.documentElement;
  document.body.dataset.overflow = String(root.scrollWidth > root.clientWidth + 1);
  document.body.dataset.state = "ready";
}

function showLogin(message) {
  $("board").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  document.body.dataset.state = "login";
}

async function load() {
  clearTimeout(timer);
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) { showLogin(); return; }
  try {
    const response = await fetch("/v1/dashboard", { headers: { Authorization: "Bearer " + token } });
    if (response.status === 401 || response.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(response.status === 401 ? "That token is not valid." : "That token is not an admin's.");
      return;
    }
    if (!response.ok) throw new Error(`the service answered ${response.status}`);
    const doc = await response.json();
    $("login").hidden = true;
    $("board").hidden = false;
    $("logout").hidden = false;
    $("error").textContent = "";
    render(doc);
  } catch (err) {
    $("error").textContent = `Could not refresh: ${err.message}. Retrying.`;
    document.body.dataset.state = "error";
  }
  timer = setTimeout(load, REFRESH_MS);
}

function start() {
  // A token in the fragment (#token=...) never reaches the server; take it and drop it.
  const match = /(?:^|&)token=([^&]+)/.exec(location.hash.slice(1));
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname);
  }
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    load();
  });
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    clearTimeout(timer);
    showLogin();
  });
  load();
}

let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { if (lastDoc) render(lastDoc); }, 150);
});

document.addEventListener("DOMContentLoaded", start);
