// Switchyard's ops dashboard: plain DOM and SVG, no third-party code, everything read from the
// admin API with the admin key (kept in this tab's sessionStorage only).
"use strict";

const KEY_STORAGE = "switchyard.admin-key";
const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c"];
const MARKERS = { promote: "#16a34a", rollback: "#dc2626", canary: "#ea580c", reject: "#6b7280", register: "#2563eb" };

const state = { key: sessionStorage.getItem(KEY_STORAGE), adapters: [], selected: null };
const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, { method = "GET" } = {}) {
  const response = await fetch(path, { method, headers: { Authorization: `Bearer ${state.key}` } });
  if (!response.ok) {
    let message = response.statusText;
    try {
      message = (await response.json()).error.message;
    } catch (_) {
      // not the JSON envelope (a proxy's page): keep the status text
    }
    throw new ApiError(response.status, message);
  }
  return response.json();
}

function el(tag, attributes = {}, text = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

function svgEl(tag, attributes = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.className = isError ? "error" : "";
}

function formatTime(iso) {
  return new Date(iso).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

function asTime(iso) {
  // The API's datetimes are UTC; a naive one (SQLite) is read as UTC too.
  return Date.parse(/[zZ]|[+-]\d\d:\d\d$/.test(iso) ? iso : `${iso}Z`);
}

// A time-series chart: `series` is [{name, points: [[t, y], ...], dashed}], `markers` is
// [{t, label, color}] drawn as vertical lines (promotions, rollbacks, ...).
function timeChart(container, { series, markers = [], since, until, yMin = null, yMax = null, bars = false }) {
  container.replaceChildren();
  const width = 520, height = 180, left = 44, right = 10, top = 10, bottom = 26;
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  const values = series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => v !== null && Number.isFinite(v));
  const low = yMin ?? Math.min(0, ...values);
  let high = yMax ?? Math.max(1e-9, ...values);
  if (high <= low) high = low + 1;
  const x = (t) => left + ((t - since) / Math.max(1, until - since)) * (width - left - right);
  const y = (v) => top + (1 - (v - low) / (high - low)) * (height - top - bottom);

  for (let i = 0; i <= 4; i += 1) {
    const v = low + ((high - low) * i) / 4;
    svg.append(svgEl("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }));
    const label = svgEl("text", { x: left - 4, y: y(v) + 3, "text-anchor": "end", class: "axis" });
    label.textContent = Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2).replace(/\.?0+$/, "");
    svg.append(label);
  }
  for (const [t, anchor] of [[since, "start"], [(since + until) / 2, "middle"], [until, "end"]]) {
    const label = svgEl("text", { x: x(t), y: height - 8, "text-anchor": anchor, class: "axis" });
    label.textContent = formatTime(new Date(t).toISOString());
    svg.append(label);
  }
  for (const marker of markers) {
    if (marker.t < since || marker.t > until) continue;
    const line = svgEl("line", { x1: x(marker.t), x2: x(marker.t), y1: top, y2: height - bottom, stroke: marker.color, class: "marker" });
    const title = svgEl("title");
    title.textContent = marker.label;
    line.append(title);
    svg.append(line);
  }
  series.forEach((s, index) => {
    const color = s.color ?? COLORS[index % COLORS.length];
    const points = s.points.filter((p) => p[1] !== null && Number.isFinite(p[1]));
    if (bars) {
      const barWidth = Math.max(2, (width - left - right) / Math.max(20, points.length * series.length * 1.5));
      for (const [t, v] of points) {
        svg.append(svgEl("rect", { x: x(t) + index * barWidth, y: y(v), width: barWidth, height: Math.max(0, y(low) - y(v)), fill: color }));
      }
    } else if (points.length) {
      const d = points.map(([t, v], i) => `${i ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
      svg.append(svgEl("path", { d, stroke: color, fill: "none", "stroke-width": 2, "stroke-dasharray": s.dashed ? "4 3" : "none" }));
      for (const [t, v] of points) svg.append(svgEl("circle", { cx: x(t), cy: y(v), r: 2.5, fill: color }));
    }
  });
  container.append(svg);
  const legend = el("div", { class: "legend" });
  series.forEach((s, index) => {
    const item = el("span", {}, s.name);
    item.style.setProperty("--swatch", s.color ?? COLORS[index % COLORS.length]);
    legend.append(item);
  });
  container.append(legend);
  if (!values.length) container.append(el("p", { class: "empty" }, "No data in this window."));
}

function fillTable(table, rows) {
  const body = table.querySelector("tbody");
  body.replaceChildren();
  for (const cells of rows) {
    const tr = el("tr");
    for (const cell of cells) tr.append(el("td", {}, cell === null || cell === undefined ? "—" : String(cell)));
    body.append(tr);
  }
  if (!rows.length) {
    const tr = el("tr");
    tr.append(el("td", { colspan: table.querySelectorAll("th").length, class: "empty" }, "None yet."));
    body.append(tr);
  }
}

async function loadAdapters() {
  const list = await api("/admin/adapters");
  state.adapters = list.data;
  const ul = $("adapters");
  ul.replaceChildren();
  for (const adapter of state.adapters) {
    const button = el("button", { type: "button", "data-adapter": adapter.name }, adapter.name);
    const meta = adapter.active_version ? `@${adapter.active_version}` : "no active version";
    button.append(el("small", {}, ` ${meta}${adapter.canary_version ? ` · canary @${adapter.canary_version}` : ""}`));
    button.addEventListener("click", () => select(adapter.name).catch(showError));
    const li = el("li");
    li.append(button);
    ul.append(li);
  }
  if (!state.selected && state.adapters.length) state.selected = state.adapters[0].name;
}

async function optional(path) {
  // A part that may be missing (no drift run yet) must not blank the whole page.
  try {
    return await api(path);
  } catch (error) {
    if (error.status === 404) return null;
    throw error;
  }
}

async function select(name) {
  state.selected = name;
  for (const button of document.querySelectorAll("#adapters button")) {
    button.classList.toggle("selected", button.dataset.adapter === name);
  }
  const windowS = Number($("window").value);
  const until = Date.now();
  const since = until - windowS * 1000;
  const bucket = Math.max(10, Math.round(windowS / 60));
  const range = `since=${encodeURIComponent(new Date(since).toISOString())}&until=${encodeURIComponent(new Date(until).toISOString())}`;
  setStatus(`Loading ${name}…`);
  const [detail, events, traffic, drift, jobs] = await Promise.all([
    api(`/admin/adapters/${name}`),
    api(`/admin/adapters/${name}/events?limit=1000`),
    api(`/admin/traffic?adapter=${name}&${range}&bucket_s=${bucket}`),
    optional(`/admin/drift?adapter=${name}&limit=200`),
    optional("/v1/fine_tuning/jobs?limit=100"),
  ]);
  renderSummary(detail, traffic);
  const at = (bucketRow) => asTime(bucketRow.start);
  const markers = events.data
    .filter((e) => e.action in MARKERS)
    .map((e) => ({ t: asTime(e.created_at), label: `${e.action} ${e.version ? `@${e.version}` : ""}`, color: MARKERS[e.action] }));
  timeChart($("chart-traffic"), {
    since, until, bars: true, markers,
    series: [
      { name: "requests", points: traffic.buckets.map((b) => [at(b), b.requests]) },
      { name: "errors", points: traffic.buckets.map((b) => [at(b), b.errors]), color: "#dc2626" },
    ],
  });
  timeChart($("chart-latency"), {
    since, until, markers,
    series: [
      { name: "p50", points: traffic.buckets.map((b) => [at(b), b.p50_latency_ms]) },
      { name: "p95", points: traffic.buckets.map((b) => [at(b), b.p95_latency_ms]), color: "#dc2626" },
      { name: "TTFT", points: traffic.buckets.map((b) => [at(b), b.mean_ttft_ms]), color: "#16a34a", dashed: true },
    ],
  });
  timeChart($("chart-feedback"), {
    since, until, yMin: -1, yMax: 1, markers,
    series: [{ name: "mean score", points: traffic.buckets.map((b) => [at(b), b.mean_feedback]) }],
  });
  await renderDrift(drift, since, until);
  renderVersions(detail, events, since, until);
  renderJobs(jobs, name);
  setStatus(`${name}: ${traffic.rows} requests in the window${traffic.truncated ? " (newest 100,000)" : ""}`);
}

function renderSummary(detail, traffic) {
  const summary = $("summary");
  summary.replaceChildren();
  summary.append(el("h2", {}, detail.name));
  const facts = [
    ["tenant", detail.tenant ?? "default"],
    ["shared", detail.shared ? "yes" : "no"],
    ["active", detail.active_version ? `@${detail.active_version}` : "—"],
    ["canary", detail.canary_version ? `@${detail.canary_version} (${Math.round(detail.canary_weight * 100)} %)` : "—"],
    ["pinned", detail.pinned ? "yes" : "no"],
    ["requests", traffic.buckets.reduce((n, b) => n + b.requests, 0)],
    ["errors", traffic.buckets.reduce((n, b) => n + b.errors, 0)],
  ];
  const dl = el("dl");
  for (const [term, value] of facts) {
    dl.append(el("dt", {}, term), el("dd", {}, String(value)));
  }
  summary.append(dl);
}

async function renderDrift(drift, since, until) {
  const results = drift ? drift.data : [];
  timeChart($("chart-drift"), {
    since, until, yMin: 0, yMax: 1,
    series: [
      { name: "drift share", points: results.filter((r) => r.drift_share !== null).map((r) => [asTime(r.created_at), r.drift_share]) },
      { name: "drifted", points: results.filter((r) => r.drifted).map((r) => [asTime(r.created_at), r.drift_share ?? 1]), color: "#dc2626", dashed: true },
    ],
  });
  const latest = results[0];
  // The newest report, even when a later run had too little data to make one.
  const reported = results.find((r) => r.has_report);
  const note = $("drift-note");
  const frame = $("report");
  frame.hidden = true;
  if (reported) {
    // An iframe cannot send the admin key: the report opens through a short-lived link.
    const link = await api(`/admin/drift/${reported.id}/report-link`, { method: "POST" });
    frame.src = link.url;
    frame.hidden = false;
  }
  if (!drift) {
    note.textContent = "Drift monitoring is not available on this server.";
  } else if (!latest) {
    note.textContent = "No drift run yet (POST /admin/drift/run, or `switchyard drift run`).";
  } else {
    note.textContent = `${formatTime(latest.created_at)}: ${latest.status}${latest.drifted ? ", DRIFTED" : ""}; ` +
      `drift share ${latest.drift_share ?? "—"}; reference ${latest.reference_rows} rows, current ${latest.current_rows}` +
      (latest.reason ? ` (${latest.reason})` : "");
  }
  fillTable($("drift-columns"), (latest ? latest.columns : []).map((c) => [
    c.column ?? c.name, c.method, typeof c.score === "number" ? c.score.toFixed(4) : c.score, c.drifted ? "yes" : "no",
  ]));
}

function renderVersions(detail, events, since, until) {
  const versions = detail.versions;
  const markers = events.data
    .filter((e) => e.action in MARKERS)
    .map((e) => ({ t: asTime(e.created_at), label: `${e.action} @${e.version ?? ""}`, color: MARKERS[e.action] }));
  // The active version over time: each promote or rollback moves it.
  const steps = events.data
    .filter((e) => e.action === "promote" || e.action === "rollback" || (e.action === "register" && versions.find((v) => v.version === e.version && v.promoted_at === v.created_at)))
    .map((e) => [asTime(e.created_at), e.version]);
  if (detail.active_version) steps.push([until, detail.active_version]);
  timeChart($("chart-versions"), {
    since: Math.min(since, ...steps.map((s) => s[0])), until, markers,
    yMin: 0, yMax: Math.max(1, ...versions.map((v) => v.version)),
    series: [{ name: "active version", points: steps }],
  });
  fillTable($("versions"), [...versions].reverse().map((v) => [
    `@${v.version}`, v.status, formatTime(v.created_at), v.parent_version ? `@${v.parent_version}` : null,
    v.metrics && v.metrics.gate ? v.metrics.gate.verdict : null,
  ]));
}

function renderJobs(jobs, name) {
  const rows = jobs ? jobs.data.filter((j) => j.adapter === name) : [];
  fillTable($("jobs"), rows.map((j) => [
    j.id, j.trigger, j.status, j.outcome, j.fine_tuned_model, formatTime(new Date(j.created_at * 1000).toISOString()),
  ]));
}

function showError(error) {
  if (error.status === 401 || error.status === 403) {
    signOut("That key is not the admin key.");
    return;
  }
  setStatus(`Could not load: ${error.message}`, true);
}

async function refresh() {
  try {
    await loadAdapters();
    if (state.selected) await select(state.selected);
  } catch (error) {
    showError(error);
  }
}

function showApp(signedIn) {
  $("login").hidden = signedIn;
  $("app").hidden = !signedIn;
  $("logout").hidden = !signedIn;
}

function signOut(message = "") {
  sessionStorage.removeItem(KEY_STORAGE);
  state.key = null;
  showApp(false);
  $("login-error").textContent = message;
  setStatus("");
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  state.key = $("key").value.trim();
  sessionStorage.setItem(KEY_STORAGE, state.key);
  $("key").value = "";
  $("login-error").textContent = "";
  showApp(true);
  await refresh();
});
$("logout").addEventListener("click", () => signOut());
$("refresh").addEventListener("click", refresh);
$("window").addEventListener("change", refresh);

if (state.key) {
  showApp(true);
  refresh();
} else {
  showApp(false);
}
