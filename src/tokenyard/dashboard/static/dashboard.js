// tokenyard dashboard: polls /dashboard/data.json every second and draws line charts on <canvas>.
// No dependencies. After each draw, <body data-samples> holds the feed's sample count and <body data-points>
// the number of points drawn over all charts (tests read them).
"use strict";
(function () {
  const FEED = "/dashboard/data.json";
  const PALETTE = ["#58a6ff", "#f778ba", "#3fb950", "#d29922", "#a371f7", "#ff7b72", "#79c0ff", "#56d4dd"];
  const GRID = "#2a3540", MUTED = "#8b98a5";
  let polls = 0;

  function sizeCanvas(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(100, canvas.clientWidth), h = Math.max(80, canvas.clientHeight);
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    return { ctx: ctx, w: w, h: h };
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (Number.isInteger(v)) return String(v);
    if (Math.abs(v) >= 100) return v.toFixed(0);
    if (Math.abs(v) >= 10) return v.toFixed(1);
    return v.toFixed(2);
  }

  // Draw series {name: [values]} against t (seconds relative to now, <= 0). Returns the points drawn.
  function drawChart(canvas, t, series) {
    const { ctx, w, h } = sizeCanvas(canvas);
    const left = 44, right = 8, top = 8, bottom = 20;
    const pw = w - left - right, ph = h - top - bottom;
    ctx.clearRect(0, 0, w, h);
    const names = Object.keys(series);
    let max = 0;
    for (const n of names) for (const v of series[n]) if (v !== null && v > max) max = v;
    max = niceMax(max);
    const span = Math.max(60, t.length ? -t[0] : 60);
    ctx.font = "11px system-ui, sans-serif";
    ctx.strokeStyle = GRID; ctx.fillStyle = MUTED; ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = top + ph - (ph * i) / 4;
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + pw, y); ctx.stroke();
      ctx.textAlign = "right"; ctx.fillText(fmt((max * i) / 4), left - 4, y + 4);
    }
    for (let i = 0; i <= 4; i++) {
      const secs = -span + (span * i) / 4;
      ctx.textAlign = i === 0 ? "left" : i === 4 ? "right" : "center";
      ctx.fillText(secs === 0 ? "now" : Math.round(secs) + "s", left + (pw * i) / 4, h - 4);
    }
    let points = 0;
    names.forEach(function (n, k) {
      const values = series[n];
      ctx.strokeStyle = PALETTE[k % PALETTE.length]; ctx.lineWidth = 2;
      ctx.beginPath();
      let pen = false;
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        if (v === null || v === undefined) { pen = false; continue; }
        const x = left + pw * (1 + t[i] / span), y = top + ph - (ph * Math.min(v, max)) / max;
        if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
        pen = true; points++;
      }
      ctx.stroke();
    });
    canvas.dataset.points = String(points);
    return points;
  }

  function legend(el, series) {
    el.textContent = "";
    Object.keys(series).forEach(function (n, k) {
      const values = series[n];
      let last = null;
      for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) { last = values[i]; break; }
      const item = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.style.background = PALETTE[k % PALETTE.length];
      const value = document.createElement("b");
      value.textContent = fmt(last);
      item.append(swatch, n + " ", value);
      el.append(item);
    });
  }

  function backendsTable(card, up, inflight) {
    const body = card.querySelector("table.backends tbody");
    if (!body) return;
    body.textContent = "";
    for (const name of Object.keys(up)) {
      const ups = up[name], last = ups[ups.length - 1];
      const fl = (inflight[name] || []);
      const row = document.createElement("tr");
      const state = document.createElement("td");
      state.textContent = last === 1 ? "● up" : "● down";
      state.className = last === 1 ? "up" : "down";
      const label = document.createElement("td"); label.textContent = name;
      const count = document.createElement("td"); count.textContent = "in flight " + fmt(fl[fl.length - 1]);
      row.append(state, label, count);
      body.append(row);
    }
  }

  function render(feed) {
    let points = 0;
    document.querySelectorAll("section[data-chart]").forEach(function (card) {
      const key = card.dataset.chart;
      const series = feed.series[key] || {};
      points += drawChart(card.querySelector("canvas"), feed.t, series);
      legend(card.querySelector(".legend"), series);
      if (key === "backend_inflight") backendsTable(card, feed.series.backend_up || {}, series);
    });
    const cancel = feed.series.cancel_p95_ms ? feed.series.cancel_p95_ms.p95 : [];
    let lastCancel = null;
    for (let i = cancel.length - 1; i >= 0; i--) if (cancel[i] !== null) { lastCancel = cancel[i]; break; }
    document.getElementById("cancel-latency").textContent =
      "cancel latency p95 (disconnect → upstream closed): " + (lastCancel === null ? "no aborts yet" : fmt(lastCancel) + " ms");
    document.body.dataset.samples = String(feed.samples);
    document.body.dataset.points = String(points);
  }

  async function poll() {
    const status = document.getElementById("status");
    try {
      const resp = await fetch(FEED, { cache: "no-store" });
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      const feed = await resp.json();
      render(feed);
      polls++;
      document.body.dataset.polls = String(polls);
      status.textContent = "live · " + feed.samples + " samples";
      status.className = "status ok";
    } catch (err) {
      status.textContent = "feed unavailable: " + err.message;
      status.className = "status error";
    }
  }

  poll();
  setInterval(poll, 1000);
  window.addEventListener("resize", poll);
})();
