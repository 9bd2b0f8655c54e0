// The console's only script: it draws the costs chart with uPlot from the
// series the server put in the chart element's data-chart attribute.
// (No inline script: the Content-Security-Policy allows scripts from the
// server only.)
(function () {
  "use strict";
  var palette = ["#2f5bd3", "#d9822b", "#0f9960", "#b3261e", "#7157d9", "#29a634", "#db2c6f"];

  function draw(el) {
    var data;
    try { data = JSON.parse(el.getAttribute("data-chart")); } catch (e) { return; }
    if (!data || !data.days) { return; }
    var series = [{}];
    var columns = [data.days];
    data.models.forEach(function (m, i) {
      series.push({ label: m, stroke: palette[i % palette.length], width: 2,
        points: { show: true }, value: function (u, v) { return v == null ? "" : "$" + v.toFixed(4); } });
      columns.push(data.series[m]);
    });
    series.push({ label: "total", stroke: "#1d2433", width: 2, dash: [6, 4],
      points: { show: true }, value: function (u, v) { return v == null ? "" : "$" + v.toFixed(4); } });
    columns.push(data.total);
    var width = Math.max(320, el.clientWidth - 24);
    var opts = {
      width: width, height: 280, series: series,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.15 : 1]; } } },
      axes: [{}, { values: function (u, ticks) { return ticks.map(function (t) { return "$" + t; }); }, size: 70 }]
    };
    el.textContent = "";
    var plot = new uPlot(opts, columns, el);
    el.setAttribute("data-drawn", String(data.days.length));
    window.addEventListener("resize", function () { plot.setSize({ width: Math.max(320, el.clientWidth - 24), height: 280 }); });
  }

  // A refused resource or inline code is counted on the root element (and
  // logged), so a page that breaks under the policy is visible in tests.
  document.addEventListener("securitypolicyviolation", function (e) {
    var root = document.documentElement;
    root.setAttribute("data-csp-violations", String(Number(root.getAttribute("data-csp-violations") || 0) + 1));
    console.warn("Content-Security-Policy refused", e.violatedDirective, e.blockedURI);
  });

  document.addEventListener("DOMContentLoaded", function () {
    var el = document.getElementById("chart");
    if (el && window.uPlot) { draw(el); }
  });
})();
