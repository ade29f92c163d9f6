"""The page's script (our own, plain browser JavaScript; plotly.js, from the installed package, draws the plots).

It polls ``api/dashboard`` (304 while nothing changed), redraws what changed, and says on the page when the
data go stale (the run or the connection stopped), so a frozen page is never mistaken for a quiet run.
"""
from __future__ import annotations

__all__ = ["SCRIPT"]

SCRIPT = r"""
var timetagDashboard = (function () {
  "use strict";
  var state = {version: -1, gen: null, etag: null, lastChange: Date.now(), lastOk: Date.now(), payload: null,
               series: {}, est: null};
  var token = new URLSearchParams(window.location.search).get("token");
  var CFG = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"]};
  var PAL = ["#1565c0", "#c62828", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#5d4037", "#ad1457",
             "#9e9d24", "#455a64", "#283593", "#00695c"];

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in (attrs || {})) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function num(x, d) { return (x === null || x === undefined || !isFinite(x)) ? "–" : Number(x).toFixed(d); }
  function rate(x) {
    if (x === null || x === undefined) return "–";
    if (Math.abs(x) >= 1e6) return (x / 1e6).toFixed(2) + " M/s";
    if (Math.abs(x) >= 1e3) return (x / 1e3).toFixed(2) + " k/s";
    return x.toFixed(2) + " /s";
  }
  function pm(v, e, d) { return num(v, d) + (e === null || e === undefined ? "" : " ± " + num(e, d)); }
  function layout(title, xt, yt, extra) {
    var l = {title: {text: title, font: {size: 13}}, margin: {l: 55, r: 10, t: 28, b: 38},
             xaxis: {title: {text: xt, font: {size: 11}}}, yaxis: {title: {text: yt, font: {size: 11}}},
             legend: {font: {size: 10}, orientation: "h", y: -0.25}, showlegend: true, uirevision: title};
    for (var k in (extra || {})) l[k] = extra[k];
    return l;
  }
  function draw(id, traces, lay) {
    var div = document.getElementById(id);
    if (div && window.Plotly) Plotly.react(div, traces, lay, CFG);
  }
  function kv(rows) {
    var t = el("table", {"class": "kv"});
    rows.forEach(function (r) {
      var tr = el("tr"); tr.appendChild(el("td", {}, r[0]));
      var td = el("td", r[2] ? {id: r[2]} : {}, r[1]); tr.appendChild(td); t.appendChild(tr);
    });
    return t;
  }

  // Series come as {n, cols: {key: [...]}}: the whole history (full) or the rows since the version the page
  // has; the tail (the newest row, which the thinned history may not keep) is drawn but never stored.
  function merge(store, part) {
    var out = {n: store.n + part.n, cols: {}};
    var keys = Object.keys(store.cols).concat(Object.keys(part.cols));
    keys.forEach(function (k) {
      if (out.cols[k]) return;
      var a = store.cols[k] || new Array(store.n).fill(null), b = part.cols[k] || new Array(part.n).fill(null);
      out.cols[k] = a.concat(b);
    });
    return out;
  }
  var EMPTY = {n: 0, cols: {}};
  function view(flat) {  // flat columns -> what the plots take
    var c = flat.cols, v = {x: c.t || [], round_rate: c.round_rate, channels: {}, heralds: {}};
    Object.keys(c).forEach(function (k) {
      if (k.indexOf("ch:") === 0) v.channels[k.slice(3)] = c[k];
      if (k.indexOf("her:") === 0) v.heralds[k.slice(4)] = c[k];
    });
    return v;
  }

  function labCard(lab) {
    var card = document.getElementById("lab-" + lab.name);
    if (!card) {
      card = el("div", {"class": "card", id: "lab-" + lab.name});
      card.appendChild(el("h2", {id: "lab-title-" + lab.name}));
      card.appendChild(el("div", {id: "lab-kv-" + lab.name}));
      ["rates", "heralds", "arrival", "counts"].forEach(function (p) {
        card.appendChild(el("div", {id: "plot-" + p + "-" + lab.name, "class": "plot"}));
      });
      document.getElementById("labs").appendChild(card);
    }
    return card;
  }

  function renderLab(lab, mode) {
    labCard(lab);
    var s = lab.snapshot || {};
    var title = document.getElementById("lab-title-" + lab.name);
    title.textContent = "Lab " + lab.name + " (" + lab.role + ")";
    (lab.badges || []).forEach(function (b) { title.appendChild(el("span", {"class": "badge"}, b)); });
    var flags = s.flags || {}, her = s.heralds || {}, hr = s.herald_rates || {}, lost = s.lost || {}, c = s.counts || {};
    var flagText = Object.keys(flags).filter(function (k) { return flags[k]; })
      .map(function (k) { return k + " " + flags[k]; }).join(", ") || "none";
    var herText = Object.keys(her).filter(function (p) { return p !== "none" || her[p]; })
      .map(function (p) { return p + " " + her[p] + (hr[p] !== undefined && hr[p] !== null ? " (" + rate(hr[p]) + ")" : ""); })
      .join(", ");
    var rows = [
      ["rounds", String(s.rounds === undefined ? "–" : s.rounds), "rounds-" + lab.name],
      ["outputs up", String(s.outputs_up === undefined ? "–" : s.outputs_up) +
        (c.p_up !== undefined && c.p_up !== null ? "  (P(up) " + num(c.p_up, 3) + ")" : "")],
      ["flags", flagText, "flags-" + lab.name],
      ["heralds", herText || "–"],
      ["tags", (s.tags === undefined ? "–" : s.tags) + (s.tag_rate !== undefined ? "  (" + rate(s.tag_rate) + ")" : "")],
      ["device time", num(s.device_time_s, 3) + " s" +
        (s.since_last_herald_s !== null && s.since_last_herald_s !== undefined ? ";  last herald " + num(s.since_last_herald_s, 1) + " s ago" : "")],
      ["lost data", (lost.overflow_intervals || 0) + " overflow interval(s), " + (lost.missed_events || 0) +
        " missed, " + (lost.errors || 0) + " error(s)" + (lost.overflow_open ? "  — OVERFLOW NOW" : ""), "lost-" + lab.name],
      ["window / threshold", "click − sync in [" + lab.window_ps[0] / 1000 + ", " + lab.window_ps[1] / 1000 +
        ") ns (" + lab.sync_reference + " sync); output up when count ≥ " + lab.threshold]
    ];
    var box = document.getElementById("lab-kv-" + lab.name);
    box.replaceChildren(kv(rows));

    var stored = state.series[lab.name] = merge(state.full ? EMPTY : (state.series[lab.name] || EMPTY), lab.series || EMPTY);
    var ser = view(merge(stored, lab.series_tail || EMPTY));
    ser.x_label = lab.x_label;
    var chans = ser.channels || {}, ck = Object.keys(chans).sort(function (a, b) { return a - b; });
    if (ser.x && ser.x.length && ck.length) {
      draw("plot-rates-" + lab.name, ck.map(function (ch, i) {
        return {x: ser.x, y: chans[ch], name: "ch " + ch, mode: ser.x.length < 30 ? "lines+markers" : "lines",
                line: {color: PAL[i % PAL.length], width: 1.5}, marker: {size: 4}};
      }), layout("Channel rates", ser.x_label, "tags / s", {yaxis: {type: "log", title: {text: "tags / s"}}}));
    } else {  // a finished run keeps each channel's total only: its mean rate
      var tot = s.channel_rates || {};
      var keys = Object.keys(tot).sort(function (a, b) { return a - b; });
      draw("plot-rates-" + lab.name, [{type: "bar", x: keys.map(function (k) { return "ch " + k; }),
        y: keys.map(function (k) { return tot[k]; }), name: "mean rate", marker: {color: "#1565c0"}}],
        layout("Channel rates (mean over the run)", "channel", "tags / s", {showlegend: false, yaxis: {type: "log"}}));
    }
    if (ser.x && ser.x.length) {
      var hk = Object.keys(ser.heralds || {}).filter(function (p) {  // a lab without a BSM has no heralds
        return p !== "none" && ser.heralds[p].some(function (v) { return v; });
      });
      var ht = hk.map(function (p, i) {
        return {x: ser.x, y: ser.heralds[p], name: p, mode: ser.x.length < 30 ? "lines+markers" : "lines",
                line: {color: PAL[i % PAL.length]}, marker: {size: 4}};
      });
      if (ser.round_rate) ht.push({x: ser.x, y: ser.round_rate, name: "rounds", mode: "lines", line: {dash: "dot", color: "#000"}});
      draw("plot-heralds-" + lab.name, ht, layout(hk.length ? "Herald rate per pattern, round rate" : "Round rate (no BSM in this lab)",
        ser.x_label, "per s"));
    }
    var h = lab.histograms || {};
    var hasArrival = !!(h.arrival && h.arrival.length && h.arrival_edges_ps);
    document.getElementById("plot-arrival-" + lab.name).style.display = hasArrival ? "" : "none";
    if (hasArrival) {
      var e = h.arrival_edges_ps, xs = [];
      for (var i = 0; i + 1 < e.length; i++) xs.push((e[i] + e[i + 1]) / 2000);
      var tr = h.arrival.map(function (row, j) {
        return {x: xs, y: row, name: "ch " + (h.arrival_channels || [])[j], mode: "lines", line: {shape: "hv", width: 1, color: PAL[j % PAL.length]}};
      });
      draw("plot-arrival-" + lab.name, tr, layout("Arrival times (click − sync), window shaded", "ns", "clicks",
        {shapes: [{type: "rect", xref: "x", yref: "paper", x0: lab.window_ps[0] / 1000, x1: lab.window_ps[1] / 1000,
                   y0: 0, y1: 1, fillcolor: "rgba(46,125,50,0.18)", line: {width: 0}}]}));
    }
    if (h.counts) {
      var last = 0;
      h.counts.forEach(function (v, k) { if (v) last = k; });
      var n = Math.max(last + 2, lab.threshold + 2), ks = [], vs = [], cs = [];
      for (var k2 = 0; k2 < n && k2 < h.counts.length; k2++) {
        ks.push(k2); vs.push(h.counts[k2]); cs.push(k2 >= lab.threshold ? "#1565c0" : "#90a4ae");
      }
      draw("plot-counts-" + lab.name, [{type: "bar", x: ks, y: vs, marker: {color: cs}, name: "rounds"}],
        layout("Fluorescence counts per round, threshold " + lab.threshold, "photons in the read-out window", "rounds",
          {showlegend: false, bargap: 0.05, shapes: [{type: "line", xref: "x", yref: "paper", x0: lab.threshold - 0.5,
            x1: lab.threshold - 0.5, y0: 0, y1: 1, line: {color: "#c62828", width: 2, dash: "dash"}}]}));
    }
  }

  // the band of +-1 sigma, cut to the physical range [min, max] when given (a QBER below 0 is not a possibility)
  function band(x, v, e, name, color, min, max) {
    var up = [], lo = [];
    var cut = function (y) {
      if (min !== undefined && y < min) return min;
      if (max !== undefined && y > max) return max;
      return y;
    };
    for (var i = 0; i < x.length; i++) {
      var ok = v[i] !== null && e[i] !== null && e[i] !== undefined;
      up.push(ok ? cut(v[i] + e[i]) : null); lo.push(ok ? cut(v[i] - e[i]) : null);
    }
    return [{x: x, y: lo, mode: "lines", line: {width: 0}, showlegend: false, hoverinfo: "skip"},
            {x: x, y: up, mode: "lines", line: {width: 0}, fill: "tonexty", fillcolor: color.replace("1)", "0.2)"),
             name: name + " ± 1σ", hoverinfo: "skip"},
            {x: x, y: v, mode: "lines+markers", name: name, line: {color: color}, marker: {size: 4}}];
  }

  function renderEstimate(p) {
    var est = p.estimate || {}, big = document.getElementById("est-big");
    var items = [["S", "est-S", est.S, est.S_err, 4], ["Q0", "est-Q0", est.Q0, est.Q0_err, 4],
                 ["Q1", "est-Q1", est.Q1, est.Q1_err, 4], ["key rate (bit/event)", "est-key", est.key_rate, est.key_rate_err, 4],
                 ["pairs", "est-pairs", est.pairs, null, 0]];
    big.replaceChildren();
    items.forEach(function (it) {
      var d = el("div", {}, it[0]), sp = el("span", {id: it[1]}, pm(it[2], it[3], it[4]));
      if (it[2] !== undefined && it[2] !== null) sp.setAttribute("data-value", String(it[2]));
      d.appendChild(sp); big.appendChild(d);
    });
    if (est.note) big.appendChild(el("div", {"class": "muted"}, est.note));
    state.est = merge(state.full ? EMPTY : (state.est || EMPTY), p.estimate_series || EMPTY);
    var es = merge(state.est, p.estimate_tail || EMPTY).cols, x = es.pairs || [];
    if (!x.length) return;
    var s = band(x, es.S, es.S_err, "S", "rgba(21,101,192,1)", -4, 4);
    draw("plot-est-S", s, layout("CHSH S vs rounds", "joined rounds", "S", {shapes: [
      {type: "line", xref: "paper", x0: 0, x1: 1, y0: 2, y1: 2, line: {color: "#c62828", dash: "dash"}},
      {type: "line", xref: "paper", x0: 0, x1: 1, y0: 2.828, y1: 2.828, line: {color: "#2e7d32", dash: "dot"}}]}));
    draw("plot-est-Q", band(x, es.Q0, es.Q0_err, "Q0", "rgba(239,108,0,1)", 0, 1).concat(
      band(x, es.Q1, es.Q1_err, "Q1", "rgba(106,27,154,1)", 0, 1)),
      layout("QBER vs rounds", "joined rounds", "Q"));
    var kt = [{x: x, y: es.key_rate_lo || [], mode: "lines", line: {width: 0}, showlegend: false, hoverinfo: "skip"},
              {x: x, y: es.key_rate_hi || [], mode: "lines", line: {width: 0}, fill: "tonexty",
               fillcolor: "rgba(46,125,50,0.2)", name: "95 % interval"},
              {x: x, y: es.key_rate, mode: "lines+markers", name: "key rate", line: {color: "#2e7d32"}, marker: {size: 4}}];
    draw("plot-est-key", kt, layout("Key rate (random basis) vs rounds", "joined rounds", "bit / event", {shapes: [
      {type: "line", xref: "paper", x0: 0, x1: 1, y0: 0, y1: 0, line: {color: "#c62828", dash: "dash"}}]}));
  }

  function renderSide(p) {
    var fk = p.finite_key, box = document.getElementById("finite-key");
    box.replaceChildren();
    if (!fk) box.appendChild(el("div", {"class": "muted"}, "needs S, Q0 and Q1 of both labs"));
    else if (!fk.reachable) box.appendChild(el("div", {}, fk.rounds + " rounds; no finite key at the current S and Q (no block length suffices)"));
    else {
      var f = Math.min(1, fk.fraction || 0);
      box.appendChild(el("div", {id: "fk-text"}, fk.rounds + " of " + Math.round(fk.needed) + " rounds needed for a positive key (ε = " +
        fk.eps + "): " + (100 * (fk.fraction || 0)).toFixed(2) + " %"));
      var bar = el("div", {"class": "bar"}), inner = el("div"); inner.style.width = (100 * f) + "%";
      bar.appendChild(inner); box.appendChild(bar);
    }
    var c = p.clock || {}, rows = [["source", c.source || "–"]];
    if (c.offset_ps !== null && c.offset_ps !== undefined) rows.push(["offset (Bob − Alice)", pm(c.offset_ps / 1000, c.offset_err_ps ? c.offset_err_ps / 1000 : null, 3) + " ns"]);
    if (c.drift !== null && c.drift !== undefined) rows.push(["drift", Number(c.drift).toExponential(3) + (c.drift_err ? " ± " + Number(c.drift_err).toExponential(2) : "")]);
    if (c.residual_rms_ps !== undefined && c.residual_rms_ps !== null) rows.push(["join residual rms", num(c.residual_rms_ps / 1000, 3) + " ns"]);
    if (c.pairs) rows.push(["pairs", String(c.pairs)]);
    document.getElementById("clock").replaceChildren(kv(rows));
    var log = document.getElementById("alarm-log");
    log.replaceChildren();
    var entries = (p.alarm_log || []).slice(-12).reverse();
    if (!entries.length) log.textContent = "no alarm so far";
    entries.forEach(function (a) { log.appendChild(el("div", {}, "t = " + num(a.wall_s, 1) + " s " + a.event + ": " + a.alarm)); });
    var ex = document.getElementById("extras");
    ex.replaceChildren();
    (p.extras || []).forEach(function (t) {
      ex.appendChild(el("h2", {style: "margin-top:14px"}, t.title));
      var tab = el("table", {"class": "list"}), hr = el("tr");
      t.columns.forEach(function (c) { hr.appendChild(el("th", {}, c)); }); tab.appendChild(hr);
      t.rows.forEach(function (r) {
        var tr = el("tr"); r.forEach(function (v) { tr.appendChild(el("td", {}, v === null ? "–" : String(v))); }); tab.appendChild(tr);
      });
      ex.appendChild(tab);
    });
  }

  function renderHeader(p) {
    document.getElementById("title").textContent = p.title || "timetag";
    var mode = document.getElementById("mode"), r = p.run || {};
    var done = r.completion && r.completion.state;
    mode.textContent = p.mode === "live" ? (done ? "RUN " + String(done).toUpperCase() : "LIVE") : "FINISHED RUN";
    mode.className = "mode" + (p.mode === "live" && !done ? "" : " finished");
    var parts = [];
    if (r.wall_s !== undefined && r.wall_s !== null) parts.push("wall " + num(r.wall_s, 1) + " s");
    if (r.lag_s !== undefined && r.lag_s !== null) parts.push("lag " + num(r.lag_s, 2) + " s");
    if (r.load !== undefined && r.load !== null) parts.push("load " + Math.round(100 * r.load) + " %");
    if (r.idle_s >= 1) parts.push("idle for " + num(r.idle_s, 0) + " s");
    if (r.latency_s) parts.push("latency median " + num(r.latency_s.median, 2) + " s");
    if (r.rounds_on_disk) parts.push("on disk: " + Object.keys(r.rounds_on_disk).map(function (k) { return k + " " + r.rounds_on_disk[k]; }).join(", "));
    if (r.completion && r.completion.reason) parts.push(r.completion.reason);
    document.getElementById("runline").textContent = parts.join("   ");
  }

  function renderAlarms(p) {
    var box = document.getElementById("alarms");
    box.replaceChildren();
    var al = (p.alarms || []).concat(p.errors || []);
    if (!al.length) box.appendChild(el("span", {"class": "ok"}, "no alarms"));
    al.forEach(function (a) { box.appendChild(el("div", {"class": "alarm"}, "⚠ " + a)); });
  }

  function render(p) {
    state.payload = p;
    state.full = p.full !== false;
    state.gen = p.gen;
    // every lab's card exists before anything is drawn: plots sized for a one-column page would overflow
    var added = Object.keys(p.labs || {}).filter(function (k) {
      var had = !!document.getElementById("lab-" + k); labCard(p.labs[k]); return !had;
    });
    if (added.length && window.Plotly) {
      document.querySelectorAll(".js-plotly-plot").forEach(function (d) { Plotly.Plots.resize(d); });
    }
    renderHeader(p);
    renderAlarms(p);
    Object.keys(p.labs || {}).forEach(function (k) { renderLab(p.labs[k], p.mode); });
    renderEstimate(p);
    renderSide(p);
    document.body.setAttribute("data-version", String(p.version));
  }

  function freshness() {
    var f = document.getElementById("freshness"), now = Date.now(), p = state.payload;
    var live = p && p.mode === "live" && !(p.run && p.run.completion);
    if (now - state.lastOk > 5000) {
      f.textContent = "connection lost " + Math.round((now - state.lastOk) / 1000) + " s ago: the numbers shown are old";
      document.getElementById("mode").className = "mode stale";
    } else if (live && now - state.lastChange > 5000) {
      f.textContent = "no status update for " + Math.round((now - state.lastChange) / 1000) + " s";
    } else f.textContent = p ? "updated " + new Date(state.lastChange).toLocaleTimeString() : "";
  }

  function poll() {
    var q = [];
    if (token) q.push("token=" + encodeURIComponent(token));
    if (state.version >= 0 && state.gen !== null) q.push("since=" + state.version, "gen=" + encodeURIComponent(state.gen));
    var url = "api/dashboard" + (q.length ? "?" + q.join("&") : "");
    var headers = state.etag ? {"If-None-Match": state.etag} : {};
    fetch(url, {headers: headers, cache: "no-store"}).then(function (r) {
      state.lastOk = Date.now();
      if (r.status === 304) return null;
      if (!r.ok) throw new Error("HTTP " + r.status);
      state.etag = r.headers.get("ETag");
      return r.json();
    }).then(function (p) {
      if (p && p.version !== state.version) { state.version = p.version; state.lastChange = Date.now(); render(p); }
    }).catch(function (e) { console.log("dashboard poll: " + e); })
      .finally(function () { freshness(); });
  }

  function start() {
    var ms = parseInt(document.body.getAttribute("data-poll-ms"), 10) || 500;
    poll();
    setInterval(poll, ms);
  }
  return {start: start, render: render};
})();
"""
