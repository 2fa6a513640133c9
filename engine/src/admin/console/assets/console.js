// Junction console: draws the trend charts (uPlot) from their data-chart attributes, on load
// and whenever htmx swaps new content in. Everything else is htmx.
(function () {
  function draw(root) {
    if (typeof uPlot === "undefined") return;
    root.querySelectorAll(".chart[data-chart]").forEach(function (el) {
      if (el.dataset.drawn) return;
      el.dataset.drawn = "1";
      var points = JSON.parse(el.dataset.chart);
      if (points.length < 2) { el.textContent = "Collecting: a point a minute."; return; }
      var style = getComputedStyle(document.documentElement);
      var accent = style.getPropertyValue("--accent").trim(), bad = style.getPropertyValue("--bad").trim();
      var data = [
        points.map(function (p) { return p.t; }),
        points.map(function (p) { return p.messages; }),
        points.map(function (p) { return p.errors; }),
      ];
      new uPlot({
        width: Math.min(el.clientWidth || 800, 1200), height: 200,
        series: [{}, { label: "messages/min", stroke: accent }, { label: "errors/min", stroke: bad }],
        axes: [{ stroke: style.getPropertyValue("--muted") }, { stroke: style.getPropertyValue("--muted") }],
      }, data, el);
    });
  }
  // The topology page: Mermaid draws the flowchart, in the theme the system asks for.
  function topology() {
    if (typeof mermaid === "undefined" || !document.querySelector(".mermaid")) return;
    var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    mermaid.initialize({ startOnLoad: false, theme: dark ? "dark" : "default", securityLevel: "strict" });
    mermaid.run({ querySelector: ".mermaid" });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); topology(); });
  document.addEventListener("htmx:afterSwap", function (e) { draw(e.target); });
})();
