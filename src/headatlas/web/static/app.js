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

  function renderPattern(root, tokens, rows) {
    root.textContent = "";
    var n = tokens.length;
    var cell = Math.max(8, Math.min(16, Math.floor(480 / Math.max(n, 1))));
    var canvas = document.createElement("canvas");
    canvas.width = n * cell;
    canvas.height = n * cell;
    canvas.setAttribute("aria-label", "attention pattern, query rows by key columns");
    var ctx = canvas.getContext("2d");
    ctx.fillStyle = "#f1f3f6";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    for (var i = 0; i < n; i++) {
      var row = rows[i] || [];
      for (var j = 0; j < row.length; j++) {
        ctx.fillStyle = shade(row[j]);
        ctx.fillRect(j * cell, i * cell, cell, cell);
      }
    }
    canvas.addEventListener("mousemove", function (ev) {
      var r = canvas.getBoundingClientRect();
      var qi = Math.floor((ev.clientY - r.top) / cell), kj = Math.floor((ev.clientX - r.left) / cell);
      if (qi < 0 || qi >= n || kj < 0 || kj > qi) { hideTip(); return; }
      var w = (rows[qi] || [])[kj] || 0;
      showTip("query " + qi + " " + show(tokens[qi]) + "\nkey   " + kj + " " + show(tokens[kj]) + "\nweight " + w.toFixed(3), ev.clientX, ev.clientY);
    });
    canvas.addEventListener("mouseleave", hideTip);

    var side = document.createElement("div");
    var readout = document.createElement("div");
    readout.className = "readout";
    readout.textContent = "Hover a token to see where it attends (keys shaded by weight).";
    var strip = document.createElement("div");
    strip.className = "tokens";
    var spans = [];
    tokens.forEach(function (t, qi) {
      var s = document.createElement("span");
      s.className = "tok";
      s.textContent = t;
      s.dataset.index = String(qi);
      s.addEventListener("mouseenter", function () {
        var row = rows[qi] || [];
        spans.forEach(function (other, kj) {
          other.style.background = kj < row.length ? shade(row[kj]) : "";
          other.style.color = kj < row.length && row[kj] > 0.55 ? "#fff" : "";
          other.classList.toggle("query", kj === qi);
        });
        var order = row.map(function (w, kj) { return [w, kj]; }).sort(function (a, b) { return b[0] - a[0]; }).slice(0, 3);
        readout.textContent = "query " + qi + " " + show(t) + " -> " +
          order.map(function (p) { return show(tokens[p[1]]) + "@" + p[1] + " " + p[0].toFixed(3); }).join(", ");
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
    var current = panel.dataset.head || Object.keys(data.examples[0].heads)[0];
    function draw() {
      var ex = data.examples[select ? Number(select.value) : 0];
      if (title) { title.textContent = current; }
      var rows = ex.heads[current];
      if (!rows) { view.textContent = "No pattern recorded for " + current + "."; return; }
      renderPattern(view, ex.tokens, rows);
    }
    if (select) {
      if (panel.dataset.example) { select.value = panel.dataset.example; }
      select.addEventListener("change", draw);
    }
    draw();
    return function (head) { current = head; draw(); };
  }

  document.addEventListener("DOMContentLoaded", function () {
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
        document.querySelectorAll("rect.cell.selected").forEach(function (c) { c.classList.remove("selected"); });
        document.querySelectorAll('rect.cell[data-select-head="' + head + '"]').forEach(function (c) { c.classList.add("selected"); });
        select(head);
        var panel = document.getElementById("pattern-panel");
        if (panel && panel.scrollIntoView) { panel.scrollIntoView({ behavior: "smooth", block: "nearest" }); }
      });
    });
  });
})();
