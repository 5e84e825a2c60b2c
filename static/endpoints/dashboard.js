// The live cohort dashboard: draws the charts, and swaps in newer figures without a reload.
//
// No inline script (the Content-Security-Policy forbids them): the page hands its settings
// over in <script type="application/json" id="dashboard-config"> and the chart data in
// #chart-data, both written by Django's json_script.
//
// Every `pollMs` the page asks the status endpoint when its scope's figures were computed
// and how many changes wait. When the time differs from the one on screen, it fetches the
// re-rendered body for the same filters and replaces #dashboard-body with it.
(function () {
  "use strict";

  const configElement = document.getElementById("dashboard-config");
  const body = document.getElementById("dashboard-body");
  if (!configElement || !body) {
    return;
  }
  const config = JSON.parse(configElement.textContent);
  let computedAt = config.computedAt;
  let charts = [];
  let stopped = false;
  let failures = 0;

  // 000's Figure 1 draws EASI in black and BSA in dark grey; the second series is dashed
  // with square points so the two read apart in print as well.
  const SERIES_STYLES = [
    { color: "#1d2733", pointStyle: "circle", borderDash: [] },
    { color: "#6c757d", pointStyle: "rect", borderDash: [6, 4] },
  ];

  // A PNG download must not come out transparent.
  const whiteBackground = {
    id: "whiteBackground",
    beforeDraw(chart) {
      const { ctx, width, height } = chart;
      ctx.save();
      ctx.globalCompositeOperation = "destination-over";
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(0, 0, width, height);
      ctx.restore();
    },
  };

  function formatNumber(value) {
    if (value === null || value === undefined) {
      return "\u2014";
    }
    return value.toFixed(1).replace("-", "\u2212");
  }

  function drawCharts() {
    charts.forEach((chart) => chart.destroy());
    charts = [];
    const dataElement = document.getElementById("chart-data");
    if (!dataElement || typeof window.Chart === "undefined") {
      return;
    }
    const specs = JSON.parse(dataElement.textContent);
    body.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
      const spec = specs[canvas.dataset.chart];
      if (!spec) {
        return;
      }
      const chart = new window.Chart(canvas, {
        type: "line",
        data: {
          labels: spec.labels,
          datasets: spec.series.map((series, index) => {
            const style = SERIES_STYLES[index % SERIES_STYLES.length];
            return {
              label: series.label,
              data: series.data,
              borderColor: style.color,
              backgroundColor: style.color,
              pointStyle: style.pointStyle,
              borderDash: style.borderDash,
              pointRadius: 4,
              borderWidth: 2,
              spanGaps: true,
            };
          }),
        },
        options: {
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          interaction: { mode: "index", intersect: false },
          plugins: {
            legend: {
              position: "top",
              align: "end",
              labels: { usePointStyle: true, pointStyleWidth: 12, boxHeight: 8 },
            },
            tooltip: {
              callbacks: {
                label(context) {
                  const series = spec.series[context.datasetIndex];
                  const i = context.dataIndex;
                  const sd = series.sd[i] === null ? "" : " \u00b1 " + formatNumber(series.sd[i]);
                  return `${series.label}: ${formatNumber(series.data[i])}${sd} (${spec.n_label} = ${series.n[i]})`;
                },
              },
            },
          },
          scales: {
            x: { title: { display: true, text: spec.x_title }, grid: { display: false } },
            y: { beginAtZero: true, grace: "5%" },
          },
        },
        plugins: [whiteBackground],
      });
      charts.push(chart);
    });
  }

  // PNG download: the link's href becomes the chart's image as it is clicked.
  body.addEventListener("click", (event) => {
    const link = event.target.closest("[data-chart-download]");
    if (!link) {
      return;
    }
    const chart = charts.find((c) => c.canvas.dataset.chart === link.dataset.chartDownload);
    if (chart) {
      link.href = chart.toBase64Image("image/png", 1);
    } else {
      event.preventDefault();
    }
  });

  // Filters apply as soon as one changes (the Apply button is there without JavaScript).
  body.addEventListener("change", (event) => {
    if (event.target.matches("[data-filter]")) {
      event.target.form.requestSubmit();
    }
  });

  function showStatus(status) {
    const time = document.getElementById("computed-at");
    if (time && status.computed_at) {
      time.textContent = status.computed_label;
      time.setAttribute("datetime", status.computed_at);
    }
    const pending = document.getElementById("pending-label");
    if (pending) {
      pending.textContent = status.pending_label;
    }
  }

  function setLive(live) {
    const dot = document.getElementById("live-dot");
    const offline = document.getElementById("offline-badge");
    if (dot) {
      dot.classList.toggle("paused", !live);
    }
    if (offline) {
      offline.classList.toggle("d-none", live);
    }
  }

  function flashUpdated() {
    const badge = document.getElementById("updated-badge");
    if (!badge) {
      return;
    }
    badge.classList.remove("d-none");
    window.clearTimeout(flashUpdated.timer);
    flashUpdated.timer = window.setTimeout(() => badge.classList.add("d-none"), 4000);
  }

  async function getJson(url) {
    const response = await fetch(url, {
      headers: { Accept: "application/json" },
      cache: "no-store",
      credentials: "same-origin",
    });
    const type = response.headers.get("content-type") || "";
    if (response.redirected || !type.includes("application/json")) {
      // Logged out (the session ended): stop asking; a reload goes to the login page.
      stopped = true;
      throw new Error("session ended");
    }
    if (!response.ok) {
      throw new Error(`HTTP ${response.status}`);
    }
    return response.json();
  }

  async function refresh() {
    const live = await getJson(config.liveUrl + window.location.search);
    if (!live.computed_at) {
      return;
    }
    body.innerHTML = live.html;
    computedAt = live.computed_at;
    body.dataset.computedAt = computedAt;
    drawCharts();
    flashUpdated();
  }

  async function poll() {
    if (stopped) {
      return;
    }
    try {
      const status = await getJson(config.statusUrl);
      showStatus(status);
      if (status.computed_at && status.computed_at !== computedAt) {
        await refresh();
      }
      failures = 0;
      setLive(true);
    } catch (error) {
      failures += 1;
      setLive(false);
    }
    if (!stopped) {
      // Back off while the server does not answer; resume the normal pace once it does.
      window.setTimeout(poll, config.pollMs * Math.min(1 + failures, 15));
    }
  }

  body.dataset.computedAt = computedAt || "";
  drawCharts();
  window.setTimeout(poll, config.pollMs);
})();
