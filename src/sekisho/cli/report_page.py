"""The page of ``sekisho report``: one self-contained HTML file (inline CSS, JS and data).

Nothing is fetched when it opens: the data is a JSON island, the script draws
an SVG graph of the groups (edges: allowed pairs of the chosen probe) and a
heat map (share of allowed pairs per group pair); filters by namespace and by
probe (port); a click on a cell or an edge shows trace's explanation of one of
its pairs. When drawing finished without an error the body carries
``data-status="ok"``; a script error is written to ``data-errors`` (the
browser test reads both).
"""

from __future__ import annotations

import html
import json

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { padding: 10px 16px; background: #263238; color: #eceff1; }
header h1 { font-size: 18px; margin: 0 0 4px 0; }
header .sub { font-size: 12px; color: #b0bec5; }
#controls { padding: 8px 16px; background: #eceff1; display: flex; gap: 18px; flex-wrap: wrap;
  align-items: center; border-bottom: 1px solid #cfd8dc; }
#controls label { white-space: nowrap; }
main { display: grid; grid-template-columns: minmax(420px, 1fr) minmax(420px, 1fr); gap: 12px;
  padding: 12px 16px; }
section { background: #fff; border: 1px solid #ddd; border-radius: 4px; padding: 8px; overflow: auto; }
section h2 { font-size: 14px; margin: 0 0 6px 0; }
#graph svg { width: 100%; height: auto; max-height: 640px; }
.edge.denied { stroke: #c62828; }
.edge { stroke: #2e7d32; stroke-opacity: .55; fill: none; cursor: pointer; }
.edge:hover, .edge.sel { stroke: #ff6f00; stroke-opacity: 1; }
.node circle { stroke: #333; stroke-width: 1; cursor: pointer; }
.node text { font-size: 11px; pointer-events: none; }
table.heat { border-collapse: collapse; font-size: 11px; }
table.heat td, table.heat th { border: 1px solid #eee; padding: 0; }
table.heat td.c { width: 20px; height: 20px; cursor: pointer; }
table.heat td.c.sel { outline: 2px solid #ff6f00; }
table.heat th.row { text-align: right; padding: 0 4px; white-space: nowrap; font-weight: normal; }
table.heat th.col { writing-mode: vertical-rl; transform: rotate(180deg); padding: 4px 0;
  font-weight: normal; white-space: nowrap; }
#explain { grid-column: 1 / span 2; }
#explain pre { white-space: pre-wrap; font: 12px ui-monospace, monospace; margin: 0; }
#legend { font-size: 12px; color: #555; }
#groups { grid-column: 1 / span 2; font-size: 12px; }
#groups td { padding: 1px 6px; vertical-align: top; }
</style>
</head>
<body data-status="loading">
<header>
  <h1>__TITLE__</h1>
  <div class="sub" id="summary"></div>
</header>
<div id="controls">
  <label>probe (port) <select id="probe"></select></label>
  <label>edges <select id="edges"><option value="allowed">allowed</option>
    <option value="denied">denied</option></select></label>
  <span id="nsfilter">namespaces: </span>
  <span id="legend">heat map: green = every pair allowed, red = none; rows from, columns to</span>
</div>
<main>
  <section id="graph"><h2>groups and allowed connections</h2><div id="svg"></div></section>
  <section id="heat"><h2>heat map</h2><div id="table"></div></section>
  <section id="explain"><h2>explanation</h2>
    <pre id="why">click a heat map cell or an edge: the walk of one of its pairs, as trace prints it</pre>
  </section>
  <section id="groups"><h2>groups (pods policy cannot tell apart)</h2><div id="grouplist"></div></section>
</main>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
window.addEventListener("error", function (e) {
  document.body.dataset.errors = (document.body.dataset.errors || "") + e.message + "\\n";
});
(function () {
  var D = JSON.parse(document.getElementById("data").textContent);
  var SVGNS = "http://www.w3.org/2000/svg";
  var state = { probe: 0, ns: {}, denied: false };
  D.namespaces.forEach(function (n) { state.ns[n] = true; });

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function sel(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    return e;
  }
  function hue(s) {
    var h = 0;
    for (var i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) % 360;
    return h;
  }
  function groupName(g) {
    return g.id + " " + g.ns + (g.labels ? " {" + g.labels + "}" : "") +
      (g.hostNetwork ? " hostNetwork" : "") + " (" + g.pods.length + ")";
  }
  function visible() {
    var out = [];
    D.groups.forEach(function (g, i) { if (state.ns[g.ns]) out.push(i); });
    return out;
  }
  function explain(a, b) {
    var p = D.probes[state.probe];
    var ga = D.groups[a], gb = D.groups[b];
    var head = p.name + ": " + groupName(ga) + " -> " + groupName(gb) + ": " +
      p.counts[a][b] + " of " + D.totals[a][b] + " pod pairs allowed\\n\\n";
    var k = p.explain[a][b];
    var body = k >= 0 ? D.strings[k] :
      (D.totals[a][b] === 0 ? "no pair: a single pod to itself" :
       "not explained here (a report of this size explains the first " +
       D.explained_groups + " groups); run: sekisho trace PATH... --from " + ga.pods[0] +
       " --to " + gb.pods[0]);
    document.getElementById("why").textContent = head + body;
    document.querySelectorAll(".sel").forEach(function (x) { x.classList.remove("sel"); });
    document.querySelectorAll('[data-pair="' + a + "-" + b + '"]').forEach(function (x) {
      x.classList.add("sel");
    });
  }
  function drawGraph() {
    var ids = visible();
    var p = D.probes[state.probe];
    var size = 640, r = size / 2 - 90, c = size / 2;
    var svg = sel("svg", { viewBox: "0 0 " + size + " " + size, role: "img" });
    var defs = sel("defs");
    var m = sel("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5",
      markerWidth: "6", markerHeight: "6", orient: "auto-start-reverse" });
    m.appendChild(sel("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#2e7d32" }));
    defs.appendChild(m);
    svg.appendChild(defs);
    var pos = {};
    ids.forEach(function (g, n) {
      var t = 2 * Math.PI * n / Math.max(ids.length, 1) - Math.PI / 2;
      pos[g] = [c + r * Math.cos(t), c + r * Math.sin(t), t];
    });
    var radius = function (g) { return 5 + Math.min(14, Math.sqrt(D.groups[g].pods.length) * 3); };
    var edges = sel("g");
    var drawn = 0;
    ids.forEach(function (a) {
      ids.forEach(function (b) {
        if (a === b || D.totals[a][b] === 0) return;
        if (state.denied ? p.counts[a][b] === D.totals[a][b] : p.counts[a][b] === 0) return;
        var pa = pos[a], pb = pos[b];
        var dx = pb[0] - pa[0], dy = pb[1] - pa[1], len = Math.sqrt(dx * dx + dy * dy) || 1;
        var rb = radius(b) + 2, ra = radius(a);
        var x1 = pa[0] + dx / len * ra, y1 = pa[1] + dy / len * ra;
        var x2 = pb[0] - dx / len * rb, y2 = pb[1] - dy / len * rb;
        var mx = (x1 + x2) / 2 - dy / len * 12, my = (y1 + y2) / 2 + dx / len * 12;
        var path = sel("path", { d: "M" + x1 + "," + y1 + " Q" + mx + "," + my + " " + x2 + "," + y2,
          "class": state.denied ? "edge denied" : "edge", "marker-end": "url(#arrow)", "data-pair": a + "-" + b,
          "stroke-width": p.counts[a][b] === D.totals[a][b] ? 1.6 : 0.8,
          "stroke-dasharray": p.counts[a][b] === D.totals[a][b] ? "" : "3,2" });
        var t = sel("title");
        t.textContent = D.groups[a].id + " -> " + D.groups[b].id + ": " + p.counts[a][b] + "/" + D.totals[a][b];
        path.appendChild(t);
        path.addEventListener("click", function () { explain(a, b); });
        edges.appendChild(path);
        drawn++;
      });
    });
    svg.appendChild(edges);
    ids.forEach(function (g) {
      var grp = D.groups[g];
      var node = sel("g", { "class": "node" });
      var circle = sel("circle", { cx: pos[g][0], cy: pos[g][1], r: radius(g),
        fill: "hsl(" + hue(grp.ns) + ",55%,70%)" });
      var t = sel("title");
      t.textContent = groupName(grp) + "\\n" + grp.pods.slice(0, 20).join("\\n") +
        (grp.pods.length > 20 ? "\\n..." : "");
      circle.appendChild(t);
      circle.addEventListener("click", function () { explain(g, g); });
      node.appendChild(circle);
      var out = pos[g][2];
      var lx = pos[g][0] + Math.cos(out) * (radius(g) + 6);
      var ly = pos[g][1] + Math.sin(out) * (radius(g) + 6);
      var label = sel("text", { x: lx, y: ly + 4,
        "text-anchor": Math.cos(out) < -0.2 ? "end" : (Math.cos(out) > 0.2 ? "start" : "middle") });
      label.textContent = grp.pods.length === 1 ? grp.pods[0] : grp.id + " " + grp.ns;
      node.appendChild(label);
      svg.appendChild(node);
    });
    var holder = document.getElementById("svg");
    holder.textContent = "";
    holder.appendChild(svg);
    holder.appendChild(el("div", { "class": "sub" }, drawn + (state.denied ? " denied" : " allowed") +
      " group pairs drawn (dashed: some pairs)"));
  }
  function drawHeat() {
    var ids = visible();
    var p = D.probes[state.probe];
    var table = el("table", { "class": "heat" });
    var head = el("tr");
    head.appendChild(el("th"));
    ids.forEach(function (b) { head.appendChild(el("th", { "class": "col", title: groupName(D.groups[b]) }, D.groups[b].id)); });
    table.appendChild(head);
    ids.forEach(function (a) {
      var tr = el("tr");
      tr.appendChild(el("th", { "class": "row", title: D.groups[a].pods.join(" ") }, groupName(D.groups[a])));
      ids.forEach(function (b) {
        var total = D.totals[a][b], n = p.counts[a][b];
        var td = el("td", { "class": "c", "data-pair": a + "-" + b });
        if (total === 0) {
          td.style.background = "#eee";
        } else {
          var f = n / total;
          td.style.background = "hsl(" + Math.round(120 * f) + ",65%," + (f === 0 || f === 1 ? 55 : 65) + "%)";
        }
        td.title = D.groups[a].id + " -> " + D.groups[b].id + ": " + n + " of " + total + " allowed";
        td.addEventListener("click", function () { explain(a, b); });
        tr.appendChild(td);
      });
      table.appendChild(tr);
    });
    var holder = document.getElementById("table");
    holder.textContent = "";
    holder.appendChild(table);
  }
  function drawGroups() {
    var t = el("table");
    D.groups.forEach(function (g) {
      if (!state.ns[g.ns]) return;
      var tr = el("tr");
      tr.appendChild(el("td", {}, g.id));
      tr.appendChild(el("td", {}, g.ns));
      tr.appendChild(el("td", {}, "{" + g.labels + "}" + (g.ports ? " [" + g.ports + "]" : "")));
      tr.appendChild(el("td", {}, g.pods.length > 12 ? g.pods.slice(0, 12).join(" ") + " ... (" + g.pods.length + ")" : g.pods.join(" ")));
      t.appendChild(tr);
    });
    var holder = document.getElementById("grouplist");
    holder.textContent = "";
    holder.appendChild(t);
  }
  function draw() {
    var p = D.probes[state.probe];
    var total = 0;
    D.totals.forEach(function (row) { row.forEach(function (x) { total += x; }); });
    document.getElementById("summary").textContent = D.pods + " pods in " + D.groups.length +
      " groups, " + D.namespaces.length + " namespaces; " + p.name + ": " + p.allowed + " of " +
      total + " ordered pod pairs allowed";
    drawGraph();
    drawHeat();
    drawGroups();
  }
  var probe = document.getElementById("probe");
  D.probes.forEach(function (p, i) { probe.appendChild(el("option", { value: i }, p.name)); });
  probe.addEventListener("change", function () { state.probe = +probe.value; draw(); });
  var edgesSel = document.getElementById("edges");
  edgesSel.addEventListener("change", function () { state.denied = edgesSel.value === "denied"; draw(); });
  var nsf = document.getElementById("nsfilter");
  D.namespaces.forEach(function (n) {
    var label = el("label");
    var box = el("input", { type: "checkbox" });
    box.checked = true;
    box.addEventListener("change", function () { state.ns[n] = box.checked; draw(); });
    label.appendChild(box);
    label.appendChild(document.createTextNode(" " + n + " "));
    nsf.appendChild(label);
  });
  if (D.probes.length) {
    draw();
    var first = null;
    D.groups.forEach(function (g, a) {
      D.groups.forEach(function (h, b) {
        if (first === null && a !== b && D.probes[0].explain[a][b] >= 0) first = [a, b];
      });
    });
    if (first) explain(first[0], first[1]);
  }
  document.body.dataset.status = "ok";
})();
</script>
</body>
</html>
"""


def page(data: dict[str, object]) -> str:
    """The HTML text: the page with ``data`` inlined (``</`` escaped so it cannot end the script)."""
    text = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    title = html.escape(str(data.get("title", "sekisho report")))
    return PAGE.replace("__TITLE__", title).replace("__DATA__", text)
