/**
 * The operator's status page, served at `/` and `/ui` by every KV node: one static HTML document
 * with its style and script inline, shipped inside the package (no build step for the user, nothing
 * fetched from elsewhere). The script polls `/v1/cluster-status` of the node that served it once a
 * second and redraws: nodes and their health, each group's master, lease and instances (how far
 * each node trails), the log kept and cleaned, small charts of the last minutes, recent events.
 *
 * Everything that comes from the cluster reaches the DOM through textContent or SVG attributes set
 * one by one, never as markup. Charts are hand-drawn SVG polylines: a few dozen lines, no library.
 * The script is plain ES2017 in a String.raw template, so it must not use backquotes or "${".
 *
 * The page itself holds no data and is served without a token; `/v1/cluster-status` needs one
 * (unless the node runs without tokens). When it answers 401 or 403 the page asks for a token,
 * keeps it in the tab's sessionStorage (gone when the tab closes, never sent to another origin)
 * and sends it as `Authorization: Bearer`.
 */
export const STATUS_PAGE_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>multipaxos cluster status</title>
<style>
  :root { --bg: #f6f7f9; --card: #fff; --ink: #1d2330; --muted: #667085; --line: #e3e6eb;
          --ok: #1a7f37; --bad: #c4302b; --warn: #b26b00; --accent: #2457c5; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--ink); }
  header { display: flex; align-items: baseline; gap: 16px; padding: 14px 24px; background: #1d2330; color: #fff; }
  header h1 { margin: 0; font-size: 18px; font-weight: 600; }
  header .meta { color: #c3c9d5; font-size: 13px; }
  #live { margin-left: auto; font-size: 13px; padding: 2px 10px; border-radius: 10px; background: #3a4356; }
  #live.ok { background: var(--ok); } #live.bad { background: var(--bad); }
  main { padding: 16px 24px; display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
  section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; min-width: 0; }
  section.wide { grid-column: 1 / -1; }
  h2 { margin: 0 0 8px; font-size: 13px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { font-weight: 600; color: var(--muted); font-size: 12px; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .up { color: var(--ok); font-weight: 600; } .down { color: var(--bad); font-weight: 600; }
  .behind { color: var(--warn); } .muted { color: var(--muted); } .err { color: var(--bad); }
  .badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 12px; background: #e8eefc; color: var(--accent); }
  .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 12px; }
  .chart h3 { margin: 0 0 4px; font-size: 13px; font-weight: 600; }
  .chart svg { width: 100%; height: 130px; display: block; }
  .legend { display: flex; gap: 12px; font-size: 12px; color: var(--muted); margin-top: 4px; flex-wrap: wrap; }
  .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
  ul.events { list-style: none; margin: 0; padding: 0; max-height: 260px; overflow: auto; font-size: 13px; }
  ul.events li { padding: 3px 0; border-bottom: 1px solid var(--line); }
  ul.events time { color: var(--muted); margin-right: 8px; font-variant-numeric: tabular-nums; }
  #token-form { margin: 16px 24px 0; padding: 10px 14px; border-radius: 6px; background: var(--card); border: 1px solid var(--line); }
  #token-form[hidden] { display: none; }
  #banner { display: none; margin: 16px 24px 0; padding: 10px 14px; border-radius: 6px; background: #fdecea; color: var(--bad); }
</style>
</head>
<body>
<header>
  <h1>multipaxos cluster</h1>
  <span class="meta" id="served-by">connecting…</span>
  <span id="live">waiting</span>
</header>
<div id="banner" role="alert"></div>
<form id="token-form" hidden><label>This node needs a token with the read role:
  <input id="token" type="password" autocomplete="off" size="40"></label> <button type="submit">Use it</button></form>
<main>
  <section class="wide"><h2>Nodes</h2>
    <table id="nodes"><thead><tr>
      <th>node</th><th>role</th><th>health</th><th>endpoint</th><th>up for</th><th>keys</th><th>log on disk</th><th>masters of</th>
    </tr></thead><tbody></tbody></table>
  </section>
  <section class="wide"><h2>Groups</h2>
    <table id="groups"><thead><tr>
      <th>group</th><th>master</th><th>lease left</th><th>highest instance</th><th>instance on each node (trailing)</th><th>members</th>
    </tr></thead><tbody></tbody></table>
  </section>
  <section class="wide"><h2>Last minutes</h2>
    <div class="charts">
      <div class="chart" id="chart-proposals"><h3>proposals chosen / s</h3><svg></svg><div class="legend"></div></div>
      <div class="chart" id="chart-kv"><h3>KV requests / s</h3><svg></svg><div class="legend"></div></div>
      <div class="chart" id="chart-latency"><h3>write latency, mean ms</h3><svg></svg><div class="legend"></div></div>
      <div class="chart" id="chart-read-latency"><h3>read latency, mean ms</h3><svg></svg><div class="legend"></div></div>
    </div>
  </section>
  <section><h2>Log kept and cleaned</h2>
    <table id="log"><thead><tr>
      <th>node</th><th>group</th><th>kept from</th><th>to</th><th>cleaned</th><th>snapshot at</th>
    </tr></thead><tbody></tbody></table>
  </section>
  <section><h2>Recent events and errors</h2><ul class="events" id="events"></ul></section>
</main>
<script>
"use strict";
(function () {
  var POLL_MS = 1000;
  var COLORS = ["#2457c5", "#d4631f", "#1a7f37", "#8e44ad", "#c4302b", "#0f8b8d", "#7a6a00"];
  var SVG = "http://www.w3.org/2000/svg";
  var lastOk = 0;

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function row(cells) {
    var tr = document.createElement("tr");
    cells.forEach(function (cell) { tr.appendChild(cell); });
    return tr;
  }
  function fill(tbody, rows) {
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    rows.forEach(function (r) { tbody.appendChild(r); });
  }
  function colorOf(nodeId) { return COLORS[(nodeId - 1) % COLORS.length]; }
  function duration(ms) {
    if (ms === null || ms === undefined) return "–";
    if (ms < 1000) return Math.round(ms) + " ms";
    var s = Math.floor(ms / 1000);
    if (s < 60) return (ms / 1000).toFixed(1) + " s";
    if (s < 3600) return Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + String(Math.floor(s / 60) % 60).padStart(2, "0") + "m";
    return Math.floor(s / 86400) + "d " + String(Math.floor(s / 3600) % 24).padStart(2, "0") + "h";
  }
  function bytes(n) {
    if (n === null || n === undefined) return "–";
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(1)) + " " + units[i];
  }
  function clock(at) { return new Date(at).toLocaleTimeString(); }

  function drawNodes(report) {
    var rows = report.nodes.map(function (node) {
      var r = node.report;
      var health = node.reachable ? el("td", "up", "up") : el("td", "down: " + (node.error || "no answer"), "down");
      var masters = r ? r.groups.filter(function (g) { return g.isMaster; }).map(function (g) { return "g" + g.group; }) : [];
      var name = el("td");
      var swatch = el("span", null, "swatch");
      swatch.style.background = colorOf(node.nodeId);
      name.appendChild(swatch);
      name.appendChild(document.createTextNode("node " + node.nodeId));
      if (node.nodeId === report.servedBy) { name.appendChild(document.createTextNode(" ")); name.appendChild(el("span", "serving this page", "badge")); }
      var tr = row([
        name, el("td", node.role), health, el("td", node.endpoint || "unknown", node.endpoint ? "" : "muted"),
        el("td", r ? duration(r.uptimeSeconds * 1000) : "–", "num"), el("td", r ? r.kv.keys : "–", "num"),
        el("td", r ? bytes(r.logDiskBytes) : "–", "num"), el("td", masters.length ? masters.join(" ") : "–"),
      ]);
      tr.dataset.nodeId = String(node.nodeId);
      tr.dataset.health = node.reachable ? "up" : "down";
      tr.dataset.keys = r ? String(r.kv.keys) : "";
      return tr;
    });
    fill(document.querySelector("#nodes tbody"), rows);
  }

  function drawGroups(report) {
    var membersOf = {};
    report.nodes.forEach(function (node) {
      if (node.report) node.report.groups.forEach(function (g) { if (!membersOf[g.group]) membersOf[g.group] = g.members; });
    });
    var rows = report.groups.map(function (g) {
      var instances = el("td");
      g.nodes.forEach(function (n, i) {
        if (i > 0) instances.appendChild(document.createTextNode(" · "));
        var text = "n" + n.nodeId + ": " + n.nowInstanceId + (n.behind > 0 ? " (−" + n.behind + ")" : "");
        instances.appendChild(el("span", text, n.behind > 0 ? "behind" : ""));
      });
      var tr = row([
        el("td", "g" + g.group),
        el("td", g.masterNodeId === null ? "none" : "node " + g.masterNodeId, g.masterNodeId === null ? "down" : ""),
        el("td", duration(g.leaseExpiresInMs), "num"),
        el("td", g.highestInstanceId, "num"),
        instances,
        el("td", (membersOf[g.group] || []).join(", ")),
      ]);
      tr.dataset.group = String(g.group);
      tr.dataset.master = g.masterNodeId === null ? "" : String(g.masterNodeId);
      tr.dataset.instance = String(g.highestInstanceId);
      return tr;
    });
    fill(document.querySelector("#groups tbody"), rows);
  }

  function drawLog(report) {
    var rows = [];
    report.nodes.forEach(function (node) {
      if (!node.report) return;
      node.report.groups.forEach(function (g) {
        rows.push(row([
          el("td", "node " + node.nodeId), el("td", "g" + g.group), el("td", g.minChosenInstanceId, "num"),
          el("td", g.nowInstanceId, "num"), el("td", g.instancesCleaned, "num"),
          el("td", g.checkpointInstanceId < 0 ? "none" : g.checkpointInstanceId, "num"),
        ]));
      });
    });
    fill(document.querySelector("#log tbody"), rows);
  }

  function drawEvents(report) {
    var merged = {};
    var items = [];
    report.nodes.forEach(function (node) {
      if (!node.reachable) items.push({ at: report.at, kind: "error", text: "node " + node.nodeId + " does not answer: " + (node.error || "no answer"), nodes: [] });
      if (!node.report) return;
      node.report.events.forEach(function (e) {
        // The same change seen by several nodes within a few seconds is one line naming them all.
        var key = Math.floor(e.at / 5000) + " " + e.kind + " " + e.text;
        if (!merged[key]) { merged[key] = { at: e.at, kind: e.kind, text: e.text, nodes: [] }; items.push(merged[key]); }
        merged[key].nodes.push(node.nodeId);
      });
    });
    items.sort(function (a, b) { return b.at - a.at; });
    var list = document.getElementById("events");
    while (list.firstChild) list.removeChild(list.firstChild);
    items.slice(0, 80).forEach(function (e) {
      var li = el("li", null, e.kind === "error" || e.kind === "halted" ? "err" : "");
      li.dataset.kind = e.kind;
      li.appendChild(el("time", clock(e.at)));
      var who = e.nodes.length === 0 ? "" : (e.nodes.length === 1 ? "node " : "nodes ") + e.nodes.join(", ") + ": ";
      li.appendChild(document.createTextNode(who + e.text));
      list.appendChild(li);
    });
  }

  /** One small line chart: a line per node over the last five minutes. */
  function drawChart(id, report, pick) {
    var box = document.getElementById(id);
    var svg = box.querySelector("svg");
    // Drawn at the size it is shown, so that text and dots are not stretched.
    var W = Math.max(200, Math.round(svg.getBoundingClientRect().width) || 400), H = 130, L = 40, B = 18, T = 6, R = 8;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    // The window is the history the nodes hold (five minutes at most), at least a minute wide.
    var end = report.at, oldest = end;
    report.nodes.forEach(function (n) { if (n.report && n.report.history.length) oldest = Math.min(oldest, n.report.history[0].at); });
    var span = Math.min(5 * 60 * 1000, Math.max(60 * 1000, end - oldest));
    var start = end - span;
    var series = report.nodes.filter(function (n) { return n.report; }).map(function (n) {
      var points = n.report.history.filter(function (s) { return s.at >= start && pick(s) !== null; })
        .map(function (s) { return [s.at, pick(s)]; });
      return { nodeId: n.nodeId, points: points };
    });
    var max = 0;
    series.forEach(function (s) { s.points.forEach(function (p) { if (p[1] > max) max = p[1]; }); });
    var top = niceCeiling(max);
    svg.setAttribute("data-max", String(max));
    function x(at) { return L + (W - L - R) * (at - start) / (end - start); }
    function y(v) { return T + (H - T - B) * (1 - v / top); }
    [0, 0.5, 1].forEach(function (f) {
      var line = document.createElementNS(SVG, "line");
      line.setAttribute("x1", L); line.setAttribute("x2", W - R);
      line.setAttribute("y1", y(top * f)); line.setAttribute("y2", y(top * f));
      line.setAttribute("stroke", "#e3e6eb");
      svg.appendChild(line);
      var label = document.createElementNS(SVG, "text");
      label.setAttribute("x", L - 4); label.setAttribute("y", y(top * f) + 4);
      label.setAttribute("text-anchor", "end"); label.setAttribute("font-size", "10"); label.setAttribute("fill", "#667085");
      label.textContent = shortNumber(top * f);
      svg.appendChild(label);
    });
    [[Math.round(span / 60000) + " min ago", L, "start"], ["now", W - R, "end"]].forEach(function (t) {
      var label = document.createElementNS(SVG, "text");
      label.setAttribute("x", t[1]); label.setAttribute("y", H - 4);
      label.setAttribute("text-anchor", t[2]); label.setAttribute("font-size", "10"); label.setAttribute("fill", "#667085");
      label.textContent = t[0];
      svg.appendChild(label);
    });
    series.forEach(function (s) {
      if (s.points.length === 0) return;
      var line = document.createElementNS(SVG, "polyline");
      line.setAttribute("fill", "none");
      line.setAttribute("stroke", colorOf(s.nodeId));
      line.setAttribute("stroke-width", "1.6");
      line.setAttribute("vector-effect", "non-scaling-stroke");
      line.setAttribute("points", s.points.map(function (p) { return x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1); }).join(" "));
      svg.appendChild(line);
      // The latest value as a dot, so that a single sample shows too.
      var last = s.points[s.points.length - 1];
      var dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("cx", x(last[0]).toFixed(1)); dot.setAttribute("cy", y(last[1]).toFixed(1));
      dot.setAttribute("r", "2.5"); dot.setAttribute("fill", colorOf(s.nodeId));
      svg.appendChild(dot);
    });
    var legend = box.querySelector(".legend");
    while (legend.firstChild) legend.removeChild(legend.firstChild);
    series.forEach(function (s) {
      var last = s.points.length ? s.points[s.points.length - 1][1] : null;
      var peak = s.points.reduce(function (m, p) { return Math.max(m, p[1]); }, 0);
      var item = el("span");
      var swatch = el("span", null, "swatch");
      swatch.style.background = colorOf(s.nodeId);
      item.appendChild(swatch);
      item.appendChild(document.createTextNode("node " + s.nodeId + ": " +
        (last === null ? "–" : shortNumber(last) + " (peak " + shortNumber(peak) + ")")));
      legend.appendChild(item);
    });
  }
  function niceCeiling(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) if (v <= steps[i] * p) return steps[i] * p;
    return 10 * p;
  }
  function shortNumber(v) {
    if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (v >= 1e4) return (v / 1e3).toFixed(0) + "k";
    if (v >= 100) return v.toFixed(0);
    return String(Math.round(v * 10) / 10);
  }

  function draw(report) {
    var up = report.nodes.filter(function (n) { return n.reachable; }).length;
    document.getElementById("served-by").textContent = "served by node " + report.servedBy + " · " + up + " of " +
      report.nodes.length + " nodes answer · updated " + clock(report.at);
    drawNodes(report);
    drawGroups(report);
    drawLog(report);
    drawEvents(report);
    drawChart("chart-proposals", report, function (s) { return s.proposalsPerSecond; });
    drawChart("chart-kv", report, function (s) { return s.kvOpsPerSecond; });
    drawChart("chart-latency", report, function (s) { return s.writeLatencyMs; });
    drawChart("chart-read-latency", report, function (s) { return s.readLatencyMs; });
  }

  function setLive(ok, text) {
    var live = document.getElementById("live");
    live.className = ok ? "ok" : "bad";
    live.textContent = text;
    var banner = document.getElementById("banner");
    banner.style.display = ok ? "none" : "block";
    if (!ok) banner.textContent = "No answer from this node's /v1/cluster-status: " + text +
      (lastOk ? " (the figures below are from " + clock(lastOk) + ")" : "");
  }

  var TOKEN_KEY = "multipaxos-token";
  var tokenForm = document.getElementById("token-form");
  tokenForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var typed = document.getElementById("token").value.trim();
    if (typed) sessionStorage.setItem(TOKEN_KEY, typed);
    document.getElementById("token").value = "";
    tokenForm.hidden = true;
  });
  function credentials() {
    var token = sessionStorage.getItem(TOKEN_KEY);
    return token ? { Authorization: "Bearer " + token } : {};
  }

  function poll() {
    var abort = new AbortController();
    var timer = setTimeout(function () { abort.abort(); }, 4000);
    fetch("/v1/cluster-status", { cache: "no-store", signal: abort.signal, headers: credentials() })
      .then(function (response) {
        if (response.status === 401 || response.status === 403) {
          sessionStorage.removeItem(TOKEN_KEY);
          tokenForm.hidden = false;
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (report) { draw(report); lastOk = Date.now(); setLive(true, "live"); })
      .catch(function (error) { setLive(false, error && error.name === "AbortError" ? "timed out" : String(error && error.message || error)); })
      .then(function () { clearTimeout(timer); setTimeout(poll, POLL_MS); });
  }
  poll();
})();
</script>
</body>
</html>
`;
