/* headatlas: attention-pattern viewer and heatmap selection (inlined in report.html, served by the app).
   Every string that comes from data (tokens, head names) is set with textContent, never parsed as HTML. */
(function () {
  "use strict";

  function readJSON(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  var tip = null;
  function showTip(text, x, y) {
    if (!tip) {
      tip = document.createElement("div");
      tip.className = "tip";
      document.body.appendChild(tip);
    }
    tip.textContent = text;
    tip.style.display = "block";
    tip.style.left = Math.min(x + 14, window.innerWidth - 260) + "px";
    tip.style.top = (y + 14) + "px";
  }
  function hideTip() { if (tip) { tip.style.display = "none"; } }

  // white -> deep blue; weights are probabilities in [0, 1]
  function shade(w) {
    var a = Math.max(0, Math.min(1, w));
    return "rgb(" + Math.round(255 - 229 * a) + "," + Math.round(255 - 192 * a) + "," + Math.round(255 - 115 * a) + ")";
  }
  function show(t) { return JSON.stringify(t); }  // quotes make spaces and newlines visible

  // a token as an axis label: quoted (spaces visible), cut to a few characters
  function label(t) {
    var s = show(t);
    return s.length > 9 ? s.slice(0, 8) + "\u2026" : s;
  }

  var MARK = "#c2185b";  // marked keys (the needle, the IOI names) and the rows a score reads

  // ex: one stored example. Columns are its tokens (a "⋯" column sums left-out keys: positions[k] === null);
  // ex.rows gives the column of each query row shown (absent: every column); rows[i] holds row i's weights on
  // columns 0..ex.rows[i] (a lower triangle).
  function renderPattern(root, ex, rows) {
    root.textContent = "";
    var tokens = ex.tokens, n = tokens.length;
    var rowCol = ex.rows || tokens.map(function (t, i) { return i; });
    var nr = rowCol.length;
    var positions = ex.positions || null;
    function pos(k) { return positions ? positions[k] : k; }
    function isGap(k) { return positions !== null && positions[k] === null; }
    var marked = {}, scored = {};
    Object.keys(ex.marked || {}).forEach(function (name) { (ex.marked[name] || []).forEach(function (k) { marked[k] = name; }); });
    (ex.scored || []).forEach(function (k) { scored[k] = true; });
    var cell = Math.max(8, Math.min(16, Math.floor(480 / Math.max(n, nr, 1))));
    var rh = ex.rows ? Math.max(cell, Math.min(24, Math.floor(160 / Math.max(nr, 1)))) : cell;  // few rows: taller
    var margin = 64;  // room for the token labels: queries down the left, keys along the top
    var canvas = document.createElement("canvas");
    canvas.width = margin + n * cell;
    canvas.height = margin + nr * rh;
    canvas.dataset.margin = String(margin);
    canvas.dataset.cell = String(cell);
    canvas.dataset.row = String(rh);
    canvas.setAttribute("aria-label", "attention pattern, query rows by key columns, tokens on both axes");
    var ctx = canvas.getContext("2d");
    ctx.fillStyle = "#f1f3f6";
    ctx.fillRect(margin, margin, n * cell, nr * rh);
    for (var i = 0; i < nr; i++) {
      var row = rows[i] || [];
      for (var j = 0; j < row.length; j++) {
        ctx.fillStyle = shade(row[j]);
        ctx.fillRect(margin + j * cell, margin + i * rh, cell, rh);
      }
    }
    ctx.strokeStyle = "#8a93a3";
    ctx.setLineDash([2, 2]);
    for (var g = 0; g < n; g++) {  // a "⋯" column: dotted edges
      if (isGap(g)) { ctx.strokeRect(margin + g * cell + 0.5, margin + 0.5, cell - 1, nr * rh - 1); }
    }
    ctx.setLineDash([]);
    var font = Math.max(7, Math.min(11, cell - 1));
    ctx.font = font + "px ui-monospace, Menlo, Consolas, monospace";
    ctx.textBaseline = "middle";
    for (var q = 0; q < nr; q++) {  // query tokens, right-aligned against the matrix
      ctx.textAlign = "right";
      ctx.fillStyle = scored[rowCol[q]] ? MARK : "#4a5262";
      ctx.fillText((scored[rowCol[q]] ? "\u25b8" : "") + label(tokens[rowCol[q]]), margin - 3, margin + q * rh + rh / 2);
    }
    ctx.save();
    ctx.translate(margin, margin);
    ctx.rotate(-Math.PI / 2);
    for (var k = 0; k < n; k++) {  // key tokens, rotated, reading upwards from the matrix
      ctx.textAlign = "left";
      ctx.fillStyle = marked[k] ? MARK : (isGap(k) ? "#8a93a3" : "#4a5262");
      ctx.fillText(isGap(k) ? "\u22ef" : label(tokens[k]), 3, k * cell + cell / 2);
    }
    ctx.restore();
    function describe(k) {
      if (isGap(k)) { return tokens[k] + " (positions " + (positions[k - 1] + 1) + "\u2013" + (positions[k + 1] - 1) + ")"; }
      return pos(k) + " " + show(tokens[k]) + (marked[k] ? " [" + marked[k] + "]" : "");
    }
    canvas.addEventListener("mousemove", function (ev) {
      var r = canvas.getBoundingClientRect();
      var scale = canvas.width / Math.max(r.width, 1);  // the canvas may be shrunk to fit a narrow screen
      var px = (ev.clientX - r.left) * scale - margin, py = (ev.clientY - r.top) * scale - margin;
      if (px < 0 || py < 0) { hideTip(); return; }
      var qi = Math.floor(py / rh), kj = Math.floor(px / cell);
      if (qi < 0 || qi >= nr || kj < 0 || kj > rowCol[qi]) { hideTip(); return; }
      var w = (rows[qi] || [])[kj] || 0;
      showTip("query " + describe(rowCol[qi]) + "\nkey   " + describe(kj) + "\nweight " + w.toFixed(3), ev.clientX, ev.clientY);
    });
    canvas.addEventListener("mouseleave", hideTip);

    var side = document.createElement("div");
    var readout = document.createElement("div");
    readout.className = "readout";
    readout.textContent = "Hover a query token to see where it attends (keys shaded by weight).";
    var strip = document.createElement("div");
    strip.className = "tokens";
    var spans = [];
    var rowOf = {};
    rowCol.forEach(function (c, i) { rowOf[c] = i; });
    tokens.forEach(function (t, kq) {
      var s = document.createElement("span");
      s.className = "tok" + (isGap(kq) ? " gap" : "") + (marked[kq] ? " marked" : "") + (scored[kq] ? " scored" : "");
      s.textContent = t;
      s.dataset.index = String(kq);
      s.addEventListener("mouseenter", function () {
        var qi = rowOf[kq];
        var row = qi === undefined ? [] : (rows[qi] || []);
        spans.forEach(function (other, kj) {
          other.style.background = kj < row.length ? shade(row[kj]) : "";
          other.style.color = kj < row.length && row[kj] > 0.55 ? "#fff" : "";
          other.classList.toggle("query", kj === kq);
        });
        if (qi === undefined) { readout.textContent = describe(kq) + ": not a query row shown here"; return; }
        var order = row.map(function (w, kj) { return [w, kj]; }).sort(function (a, b) { return b[0] - a[0]; }).slice(0, 3);
        readout.textContent = "query " + describe(kq) + " -> " +
          order.map(function (p) { return (isGap(p[1]) ? tokens[p[1]] : show(tokens[p[1]]) + "@" + pos(p[1])) + " " + p[0].toFixed(3); }).join(", ");
      });
      spans.push(s);
      strip.appendChild(s);
      strip.appendChild(document.createTextNode(" "));
    });
    side.appendChild(readout);
    side.appendChild(strip);
    root.appendChild(canvas);
    root.appendChild(side);
  }

  // A pattern panel: <div id="pattern-panel"> with a <select id="pattern-example"> and a data block.
  function initPatternPanel() {
    var data = readJSON("pattern-data");
    var panel = document.getElementById("pattern-panel");
    if (!data || !panel || !data.examples || !data.examples.length) { return null; }
    var select = document.getElementById("pattern-example");
    var title = document.getElementById("pattern-head");
    var view = document.getElementById("pattern-view");
    var note = document.getElementById("pattern-note");
    var current = panel.dataset.head || Object.keys(data.examples[0].heads)[0];
    function draw() {
      var ex = data.examples[select ? Number(select.value) : 0];
      if (title) { title.textContent = current; }
      if (note) {
        var option = select ? select.options[select.selectedIndex] : null;
        note.textContent = ((option && option.dataset.note) || "") +
          (ex.heads[current] ? "" : " " + current + " is not among the heads stored on this example.");
      }
      var rows = ex.heads[current];
      if (!rows) { view.textContent = "No pattern recorded for " + current + " on this example."; return; }
      renderPattern(view, ex, rows);
    }
    function pick(head, type) {  // the example to show for a head: its type's evidence, else one that holds it
      var shown = select ? Number(select.value) : 0;
      var found = -1;
      data.examples.forEach(function (ex, i) {
        if (found < 0 && type && (ex.types || []).indexOf(type) >= 0 && ex.heads[head]) { found = i; }
      });
      if (found < 0 && !data.examples[shown].heads[head]) {
        data.examples.forEach(function (ex, i) { if (found < 0 && ex.heads[head]) { found = i; } });
      }
      return found < 0 ? shown : found;
    }
    if (select) {
      if (panel.dataset.example) { select.value = panel.dataset.example; }
      select.addEventListener("change", draw);
    }
    draw();
    document.querySelectorAll("[data-select-example]").forEach(function (el) {
      el.addEventListener("click", function (ev) {
        ev.preventDefault();
        if (select) { select.value = el.getAttribute("data-select-example"); }
        draw();
        if (panel.scrollIntoView) { panel.scrollIntoView({ behavior: "smooth", block: "nearest" }); }
      });
    });
    return function (head, type) {
      current = head;
      if (select) { select.value = String(pick(head, type)); }
      draw();
    };
  }

  // tables with class "sortable": a click on a column header sorts by it (numbers as numbers, "–" last)
  function sortKey(td) {
    var text = (td ? td.textContent : "").trim();
    var num = parseFloat(text.replace(/^#/, ""));
    return isNaN(num) || !/^[#\-\d.]/.test(text) ? [1, text.toLowerCase()] : [0, num];
  }
  function makeSortable(table) {
    var head = table.rows[0];
    if (!head) { return; }
    Array.prototype.forEach.call(head.cells, function (th, col) {
      th.classList.add("sort");
      th.setAttribute("title", "sort by this column");
      th.addEventListener("click", function () {
        var body = head.parentNode;
        var rows = Array.prototype.slice.call(body.rows, head.rowIndex + 1);
        var numeric = rows.length > 0 && sortKey(rows[0].cells[col])[0] === 0;
        // first click: numbers largest first, text A to Z; a second click reverses
        var first = th.dataset.sorted !== "1";
        var ascending = numeric ? !first : first;
        Array.prototype.forEach.call(head.cells, function (c) { c.removeAttribute("aria-sort"); delete c.dataset.sorted; });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        if (first) { th.dataset.sorted = "1"; }
        rows.sort(function (a, b) {
          var x = sortKey(a.cells[col]), y = sortKey(b.cells[col]);
          if (x[0] !== y[0]) { return x[0] - y[0]; }  // numbers before text and blanks
          var c = x[1] < y[1] ? -1 : (x[1] > y[1] ? 1 : 0);
          return ascending ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.sortable").forEach(makeSortable);
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { ev.preventDefault(); }
      });
    });
    var select = initPatternPanel();
    if (!select) { return; }
    // report: clicking a heatmap cell or a top-head link shows that head's pattern
    document.querySelectorAll("[data-select-head]").forEach(function (el) {
      el.addEventListener("click", function (ev) {
        ev.preventDefault();
        var head = el.getAttribute("data-select-head");
        var typed = el.closest("[data-type]");
        document.querySelectorAll("rect.cell.selected").forEach(function (c) { c.classList.remove("selected"); });
        document.querySelectorAll('rect.cell[data-select-head="' + head + '"]').forEach(function (c) { c.classList.add("selected"); });
        select(head, el.getAttribute("data-select-type") || (typed ? typed.getAttribute("data-type") : null));
        var panel = document.getElementById("pattern-panel");
        if (panel && panel.scrollIntoView) { panel.scrollIntoView({ behavior: "smooth", block: "nearest" }); }
      });
    });
  });
})();
