// Draws the metrics page's charts with uPlot from the JSON the page embeds. The tables beside the
// charts carry the same numbers, so without JavaScript nothing is lost but the picture.
(function () {
  "use strict";
  var COLOURS = ["#0b5cad", "#116329", "#a40e26", "#7a4d00", "#6639ba", "#0a7e8c", "#bc4c00", "#4a5360"];

  function draw() {
    var source = document.getElementById("chart-data");
    if (!source || typeof uPlot === "undefined") return;
    var charts = JSON.parse(source.textContent);
    charts.forEach(function (chart) {
      var figure = document.getElementById("chart-" + chart.id);
      if (!figure) return;
      var target = figure.querySelector(".plot");
      var width = Math.max(260, Math.floor(target.getBoundingClientRect().width || 480));
      var series = [{ label: "week" }];
      var data = [chart.x];
      chart.series.forEach(function (s, i) {
        series.push({ label: s.label, stroke: COLOURS[i % COLOURS.length], width: 2,
                      points: { show: true, size: 6 }, spanGaps: false });
        data.push(s.values);
      });
      var plot = new uPlot({
        width: width, height: 220, series: series,
        // One week alone would stretch over years: show half a week either side of it.
        scales: { x: { time: true, range: function (u, min, max) {
          return min === max ? [min - 3.5 * 86400, max + 3.5 * 86400] : [min, max];
        } } },
        axes: [{}, { label: chart.unit, size: 60 }],
        legend: { live: false }
      }, data, target);
      figure.dataset.drawn = "true";
      window.addEventListener("resize", function () {
        var w = Math.max(260, Math.floor(target.getBoundingClientRect().width || width));
        plot.setSize({ width: w, height: 220 });
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
