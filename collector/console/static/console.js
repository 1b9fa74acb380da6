// linewarden console: enhancements only; every page works without this file.
"use strict";
(function () {
  const base = document.body.dataset.base || "";

  function duration(ms) {
    const neg = ms < 0; let s = Math.floor(Math.abs(ms) / 1000);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    s = s % 60;
    const text = d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
    return (neg ? "-" : "") + text;
  }

  // SLA clocks that are counting now tick down once a second (the server's figure is the truth on reload).
  setInterval(function () {
    document.querySelectorAll('.countdown[data-running="1"]').forEach(function (el) {
      const left = Number(el.dataset.leftMs) - 1000;
      el.dataset.leftMs = String(left);
      el.textContent = left > 0 ? duration(left) : "due now";
    });
  }, 1000);

  const live = document.querySelectorAll("[data-live][id]");
  if (!live.length || !window.EventSource) return;
  const status = document.getElementById("live-status");
  let version = null;
  let refreshing = false;
  let lastRefresh = 0;
  let pending = null;
  const REFRESH_MS = 5000;  // live parts are fetched again at most this often; states change at once

  function apply(assets) {
    Object.keys(assets).forEach(function (key) {
      const [state, reason] = assets[key];
      document.querySelectorAll('[data-asset="' + CSS.escape(key) + '"]').forEach(function (el) {
        el.textContent = state;
        el.className = "state " + state.toLowerCase();
      });
      document.querySelectorAll('[data-reason="' + CSS.escape(key) + '"]').forEach(function (el) {
        el.textContent = reason;
      });
    });
  }

  async function refresh() {
    if (refreshing) return;
    refreshing = true;
    try {
      const response = await fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } });
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      live.forEach(function (el) {
        const fresh = doc.getElementById(el.id);
        if (fresh) el.replaceChildren(...Array.from(fresh.childNodes).map((n) => document.adoptNode(n)));
      });
    } finally {
      refreshing = false;
    }
  }

  const source = new EventSource(base + "/events");
  source.addEventListener("open", function () { if (status) status.textContent = "Live: updates arrive as they happen."; });
  source.addEventListener("error", function () { if (status) status.textContent = "Live updates interrupted; reconnecting."; });
  source.addEventListener("state", function (event) {
    const message = JSON.parse(event.data);
    apply(message.assets);
    if (version !== null && message.v !== version && pending === null) {
      const wait = Math.max(0, lastRefresh + REFRESH_MS - Date.now());
      pending = setTimeout(function () { pending = null; lastRefresh = Date.now(); refresh(); }, wait);
    }
    version = message.v;
    document.body.dataset.liveVersion = message.v;
  });
})();
