/* Street office web page (街道调度): MapLibre map of our own layers (no internet basemap),
   case heatmap, grid choropleth, dispatch queue, case timeline, visit coverage, figures.
   Talks to the same REST API as the phones (session auth + CSRF). Features light up when the
   OpenAPI schema lists their endpoint, so the page never calls what the server lacks. */
(function () {
  "use strict";

  const API = "/api/v1";
  const I18N = {
    zh: {},
    en: {
      title: "Grid management · street dispatch", period: "Period", months: "months",
      category: "Category", state: "State", all: "All", choropleth: "Choropleth",
      m_open: "Open", m_overdue: "Overdue", m_rate: "Resolution rate", logout: "Log out",
      t_queue: "Queue", t_case: "Case", t_visits: "Visits", t_figures: "Monthly",
      q_unrouted: "Unrouted", q_overdue: "Overdue", q_flagged: "Flagged", empty: "No cases",
      pick_case: "Pick a case in the queue or on the map", coverage: "Visit coverage (this month)",
      missing: "No daily report today", by_category: "By category",
      by_level: "Level where cases ended", visits_due: "Visits done / due",
      assign: "Assign", escalate: "Escalate", transfer: "Transfer", deadline: "Deadline",
      done: "Done", failed: "Failed", grid: "Grid", due: "Due", done_n: "Done",
      overdue: "Overdue", flagged: "Far-off", cases: "cases", member: "member", chain: "Walked chain",
      timeline: "Timeline", department: "Department", reason: "Reason",
    },
  };
  const params = new URLSearchParams(location.search);
  const lang = params.get("lang") === "en" || (!params.get("lang") && !navigator.language.startsWith("zh") && params.get("lang") !== "zh") ? "en" : "zh";
  const t = (key, zh) => (lang === "en" && I18N.en[key]) || zh || key;

  const state = {
    months: 12, category: "", caseState: "", metric: "open", queue: "overdue",
    paths: new Set(), map: null, charts: {}, selected: null,
  };

  // ------------------------------------------------------------------ helpers
  function csrf() {
    const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  async function api(path, options = {}) {
    const opts = Object.assign({ credentials: "same-origin", headers: {} }, options);
    opts.headers = Object.assign({ Accept: "application/json" }, opts.headers);
    if (opts.body && typeof opts.body !== "string") {
      opts.body = JSON.stringify(opts.body);
      opts.headers["Content-Type"] = "application/json";
    }
    if (opts.method && opts.method !== "GET") opts.headers["X-CSRFToken"] = csrf();
    const r = await fetch(path, opts);
    const text = await r.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = { detail: text }; }
    return { ok: r.ok, status: r.status, body, headers: r.headers };
  }
  function has(path) { return state.paths.has(path); }
  function toast(msg) {
    const el = document.getElementById("toast");
    el.textContent = msg; el.hidden = false;
    clearTimeout(toast._t); toast._t = setTimeout(() => { el.hidden = true; }, 3000);
  }
  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (v !== undefined && v !== null) e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c.nodeType ? c : String(c));
    return e;
  }
  function windowParams() {
    const to = new Date();
    const from = new Date(to.getTime() - state.months * 30.44 * 86400e3);
    const p = new URLSearchParams({ from: from.toISOString().slice(0, 10), to: to.toISOString().slice(0, 10) });
    if (state.category) p.set("category", state.category);
    if (state.caseState) p.set("state", state.caseState);
    return p;
  }
  function translatePage() {
    document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
    document.querySelectorAll("[data-i18n]").forEach((n) => { n.textContent = t(n.dataset.i18n, n.textContent); });
    const toggle = document.getElementById("lang-toggle");
    toggle.textContent = lang === "en" ? "中文" : "English";
    toggle.href = lang === "en" ? "?lang=zh" : "?lang=en";
  }

  // ------------------------------------------------------------------ map
  function buildMap() {
    const map = new maplibregl.Map({
      container: "map",
      style: { version: 8, sources: {}, layers: [{ id: "bg", type: "background", paint: { "background-color": "#eef2f5" } }] },
      center: [103.775, 36.059], zoom: 14, attributionControl: false,
      canvasContextAttributes: { preserveDrawingBuffer: true },  // screenshots of the canvas
    });
    map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-left");
    state.map = map;
    return new Promise((resolve) => map.on("load", () => resolve(map)));
  }

  async function addTerritoryLayers(map) {
    const useTiles = has("/tiles/{layer}/{z}/{x}/{y}.mvt");
    if (useTiles) {
      for (const layer of ["grids", "compounds", "buildings"]) {
        map.addSource(layer, { type: "vector", tiles: [location.origin + `/tiles/${layer}/{z}/{x}/{y}.mvt`], minzoom: 10, maxzoom: 18 });
      }
    } else {
      const grids = await api(`${API}/grids/?page_size=500`);
      const buildings = await api(`${API}/buildings/?page_size=500`);
      const compounds = await api(`${API}/compounds/?page_size=500`);
      map.addSource("grids", { type: "geojson", data: grids.body });
      map.addSource("compounds", { type: "geojson", data: compounds.body });
      map.addSource("buildings", { type: "geojson", data: buildings.body });
    }
    const src = (layer) => (useTiles ? { source: layer, "source-layer": layer } : { source: layer });
    map.addLayer(Object.assign({ id: "grid-fill", type: "fill", paint: { "fill-color": "#ffffff", "fill-opacity": 0.6 } }, src("grids")));
    map.addLayer(Object.assign({ id: "compound-fill", type: "fill", paint: { "fill-color": "#d9e8d4", "fill-opacity": 0.6 } }, src("compounds")));
    map.addLayer(Object.assign({ id: "building-fill", type: "fill", paint: { "fill-color": "#a0aec0", "fill-opacity": 0.9 } }, src("buildings")));
    map.addLayer(Object.assign({ id: "grid-line", type: "line", paint: { "line-color": "#0b4f6c", "line-width": 2 } }, src("grids")));
    // Fit to the caller's grids.
    const grids = await api(`${API}/grids/?page_size=500`);
    const feats = (grids.body && grids.body.features) || [];
    if (feats.length) {
      const b = new maplibregl.LngLatBounds();
      feats.forEach((f) => f.geometry.coordinates.flat(2).forEach((c) => b.extend(c)));
      map.fitBounds(b, { padding: 30, duration: 0 });
    }
    state.gridFeatures = feats;
  }

  // ------------------------------------------------------------------ choropleth
  async function refreshChoropleth() {
    const map = state.map;
    if (!has(`${API}/choropleth/grids/`)) return;
    const r = await api(`${API}/choropleth/grids/?${windowParams()}`);
    if (!r.ok) return;
    const data = r.body;
    const values = data.features.map((f) => Number(f.properties[state.metric] || 0));
    const max = Math.max(1, ...values);
    const color = state.metric === "resolution_rate"
      ? ["interpolate", ["linear"], ["coalesce", ["get", "resolution_rate"], 0], 0, "#fde0dd", 1, "#2c7fb8"]
      : ["interpolate", ["linear"], ["coalesce", ["get", state.metric], 0], 0, "#fff5eb", max, "#d94801"];
    if (map.getSource("choropleth")) map.getSource("choropleth").setData(data);
    else {
      map.addSource("choropleth", { type: "geojson", data });
      map.addLayer({ id: "choropleth", type: "fill", source: "choropleth", paint: { "fill-color": color, "fill-opacity": 0.45 } }, "compound-fill");
    }
    map.setPaintProperty("choropleth", "fill-color", color);
  }

  // ------------------------------------------------------------------ heatmap
  async function refreshHeatmap() {
    const map = state.map;
    if (!has(`${API}/heatmap/cases/`)) return;
    const b = map.getBounds();
    const p = windowParams();
    p.set("bbox", [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(6)).join(","));
    p.set("zoom", Math.round(map.getZoom()));
    const r = await api(`${API}/heatmap/cases/?${p}`);
    if (!r.ok) return;
    const max = Math.max(1, ...r.body.features.map((f) => f.properties.count || 0));
    if (map.getSource("heat")) map.getSource("heat").setData(r.body);
    else {
      map.addSource("heat", { type: "geojson", data: r.body });
      map.addLayer({ id: "heat", type: "fill", source: "heat", paint: {
        "fill-color": ["interpolate", ["linear"], ["get", "count"], 0, "rgba(255,237,160,0.4)", max / 2, "rgba(254,178,76,0.7)", max, "rgba(240,59,32,0.85)"],
        "fill-outline-color": "rgba(255,255,255,0.6)" } });
    }
    state.heatCount = r.body.features.reduce((s, f) => s + (f.properties.count || 0), 0);
    document.getElementById("map").dataset.heatCells = String(r.body.features.length);
  }

  // ------------------------------------------------------------------ case pins
  async function refreshPins() {
    const map = state.map;
    if (!has(`${API}/cases/`)) return;
    const p = windowParams();
    p.set("page_size", "500"); p.set("format", "geojson");
    const r = await api(`${API}/cases/?${p}`);
    if (!r.ok || !r.body || !r.body.features) return;
    if (map.getSource("pins")) map.getSource("pins").setData(r.body);
    else {
      map.addSource("pins", { type: "geojson", data: r.body });
      map.addLayer({ id: "pins", type: "circle", source: "pins", minzoom: 15, paint: {
        "circle-radius": 5, "circle-stroke-width": 1, "circle-stroke-color": "#fff",
        "circle-color": ["match", ["get", "state"], "closed", "#38a169", "verified", "#38a169", "resolved", "#3182ce", "#e53e3e"] } });
      map.on("click", "pins", (e) => {
        const f = e.features[0];
        new maplibregl.Popup().setLngLat(e.lngLat)
          .setHTML(`<b>#${f.properties.id}</b> ${f.properties.category_name || f.properties.category || ""}<br>${f.properties.state}`)
          .addTo(map);
        showCase(f.properties.id);
      });
    }
  }

  // ------------------------------------------------------------------ queue
  async function refreshQueue() {
    const list = document.getElementById("queue");
    const empty = document.getElementById("queue-empty");
    list.innerHTML = "";
    if (!has(`${API}/dispatch/queue/`)) { empty.hidden = false; return; }
    const r = await api(`${API}/dispatch/queue/?kind=${state.queue}&page_size=100`);
    const rows = (r.body && (r.body.results || r.body)) || [];
    empty.hidden = rows.length > 0;
    for (const c of rows) list.append(queueItem(c));
  }
  function queueItem(c) {
    const card = c.card === "red" ? el("span", { class: "card-red" }, "● ") : c.card === "yellow" ? el("span", { class: "card-yellow" }, "● ") : null;
    const assignee = el("select", { "aria-label": "assignee" });
    const deadline = el("input", { type: "datetime-local", "aria-label": "deadline" });
    const dept = el("input", { type: "text", placeholder: t("department", "部门"), size: 8, "aria-label": "department" });
    const li = el("li", { "data-case": c.id },
      el("div", { class: "title", onclick: () => showCase(c.id) }, card, `#${c.id} ${c.category_name || c.category || ""}`),
      el("div", { class: "meta" }, [c.state, c.grid_name || c.grid || "", c.assignee_name || "", c.resolve_by ? `⏰ ${c.resolve_by.slice(0, 16).replace("T", " ")}` : ""].filter(Boolean).join(" · ")),
      el("div", { class: "actions" },
        assignee, el("button", { onclick: () => act(c, "assign", { assignee: Number(assignee.value) }) }, t("assign", "派遣")),
        el("button", { onclick: () => act(c, "escalate", {}) }, t("escalate", "升级")),
        dept, el("button", { onclick: () => act(c, "transfer", { department: dept.value || "区城管局" }) }, t("transfer", "转办")),
        deadline, el("button", { onclick: () => act(c, "set_deadline", { resolve_by: deadline.value ? new Date(deadline.value).toISOString() : null }) }, t("deadline", "期限"))));
    fillAssignees(assignee, c);
    return li;
  }
  async function fillAssignees(select, c) {
    const cands = c.candidates || [];
    for (const m of cands) select.append(el("option", { value: m.member_id }, `${m.name} (${m.level_label || m.level_name || ""})`));
    if (!cands.length) select.append(el("option", { value: "" }, "—"));
  }
  async function act(c, action, payload) {
    const r = await api(`${API}/dispatch/${action}/`, { method: "POST", body: Object.assign({ ids: [c.id] }, payload), headers: c.etag ? { "If-Match": c.etag } : {} });
    const item = r.body && r.body.results ? r.body.results[0] : null;
    if (r.ok && (!item || item.ok !== false)) {
      toast(`#${c.id} ${t(action, action)} ✓`);
      const li = document.querySelector(`#queue li[data-case="${c.id}"]`);
      await refreshQueue();
      if (li && !document.querySelector(`#queue li[data-case="${c.id}"]`)) li.remove();
      refreshHeatmap(); refreshChoropleth();
    } else {
      toast(`#${c.id} ${t("failed", "失败")}: ${JSON.stringify((item && item.error) || r.body)}`);
    }
  }

  // ------------------------------------------------------------------ case detail
  async function showCase(id) {
    document.querySelector('[data-tab="case"]').click();
    const box = document.getElementById("case-detail");
    box.className = "";
    if (!has(`${API}/cases/{id}/`)) return;
    const r = await api(`${API}/cases/${id}/`);
    if (!r.ok) { box.textContent = JSON.stringify(r.body); return; }
    const c = r.body;
    const chain = el("div", { class: "chain" }, ...(c.walked_chain || []).map((s) =>
      el("span", { class: `${s.status}${s.level_name === c.level ? " chosen" : ""}`, title: s.status }, `${s.level_label || s.level_name}${s.holder ? ": " + s.holder : ""}`)));
    const events = has(`${API}/cases/{id}/events/`) ? ((await api(`${API}/cases/${id}/events/`)).body || []) : (c.events || []);
    const rows = (events.results || events).map((e) => el("li", {}, el("b", {}, `${(e.at || e.created_at || "").slice(0, 16).replace("T", " ")} ${e.to_state || e.kind || ""}`), ` ${e.actor_name || ""} ${e.note || ""}`));
    box.replaceChildren(
      el("h3", {}, `#${c.id} ${c.category_name || c.category}`),
      el("p", {}, c.description || ""),
      el("p", { class: "muted" }, `${c.state} · ${c.level || ""} · ${c.assignee_name || ""}`),
      el("h4", {}, t("chain", "流转链路")), chain, el("p", { class: "muted" }, c.route_reason || ""),
      el("h4", {}, t("timeline", "处置记录")), el("ul", { class: "timeline" }, ...rows));
  }

  // ------------------------------------------------------------------ visits
  async function refreshVisits() {
    const table = document.getElementById("coverage");
    if (has(`${API}/visits/coverage/`)) {
      const now = new Date();
      const from = new Date(now.getFullYear(), now.getMonth(), 1).toISOString().slice(0, 10);
      const r = await api(`${API}/visits/coverage/?group=grid&from=${from}&to=${now.toISOString().slice(0, 10)}`);
      const rows = (r.body && (r.body.results || r.body.rows || r.body)) || [];
      table.replaceChildren(el("tr", {}, el("th", {}, t("grid", "网格")), el("th", {}, t("due", "应访")), el("th", {}, t("done_n", "已访")), el("th", {}, t("overdue", "超期")), el("th", {}, t("flagged", "偏远"))),
        ...rows.map((g) => el("tr", {}, el("td", {}, g.name || g.grid_name || g.grid), el("td", {}, g.due), el("td", {}, g.done), el("td", {}, g.overdue), el("td", {}, g.flagged))));
      state.coverage = rows;
    }
    const missing = document.getElementById("missing");
    if (has(`${API}/daily-reports/missing/`)) {
      const r = await api(`${API}/daily-reports/missing/?date=${new Date().toISOString().slice(0, 10)}`);
      const rows = (r.body && (r.body.results || r.body.members || r.body)) || [];
      missing.replaceChildren(...rows.map((m) => el("li", {}, `${m.display_name || m.name || m.username} ${m.position_label || ""}`)));
    }
  }

  // ------------------------------------------------------------------ figures
  function barChart(id, labels, datasets) {
    if (state.charts[id]) state.charts[id].destroy();
    state.charts[id] = new Chart(document.getElementById(id), {
      type: "bar", data: { labels, datasets }, options: { animation: false, responsive: true, plugins: { legend: { display: datasets.length > 1 } } },
    });
  }
  async function refreshFigures() {
    if (!has(`${API}/cases/figures/`)) return;
    const r = await api(`${API}/cases/figures/?${windowParams()}`);
    if (!r.ok) return;
    const f = r.body;
    const cats = f.by_category || [];
    barChart("chart-category", cats.map((c) => c.name || c.category), [
      { label: t("cases", "件"), data: cats.map((c) => c.received || c.count || 0), backgroundColor: "#0b4f6c" },
      { label: "resolved", data: cats.map((c) => c.resolved || 0), backgroundColor: "#38a169" }]);
    const levels = f.by_level || f.ended_at_level || [];
    barChart("chart-level", levels.map((l) => l.level_label || l.level), [{ label: t("cases", "件"), data: levels.map((l) => l.count), backgroundColor: "#d94801" }]);
    const cov = state.coverage || [];
    barChart("chart-visits", cov.map((g) => g.name || g.grid_name || g.grid), [
      { label: t("due", "应访"), data: cov.map((g) => g.due), backgroundColor: "#9fb3c8" },
      { label: t("done_n", "已访"), data: cov.map((g) => g.done), backgroundColor: "#0b4f6c" }]);
  }

  // ------------------------------------------------------------------ filters
  async function loadCategories() {
    if (has(`${API}/categories/`)) {
      const r = await api(`${API}/categories/?page_size=200`);
      const rows = (r.body && (r.body.results || r.body)) || [];
      const sel = document.getElementById("category");
      for (const c of rows) sel.append(el("option", { value: c.code }, c.name));
    }
    const states = ["reported", "assigned", "in_progress", "escalated", "resolved", "verified", "closed", "transferred", "rejected", "reopened"];
    const sel = document.getElementById("state");
    for (const s of states) sel.append(el("option", { value: s }, s));
  }
  function wireControls() {
    const months = document.getElementById("months");
    months.addEventListener("input", () => { document.getElementById("months-out").textContent = months.value; });
    months.addEventListener("change", () => { state.months = Number(months.value); refreshAll(); });
    document.getElementById("category").addEventListener("change", (e) => { state.category = e.target.value; refreshAll(); });
    document.getElementById("state").addEventListener("change", (e) => { state.caseState = e.target.value; refreshAll(); });
    document.getElementById("metric").addEventListener("change", (e) => { state.metric = e.target.value; refreshChoropleth(); });
    document.querySelectorAll(".tabs button").forEach((b) => b.addEventListener("click", () => {
      document.querySelectorAll(".tabs button, .tab").forEach((n) => n.classList.remove("active"));
      b.classList.add("active"); document.getElementById(`tab-${b.dataset.tab}`).classList.add("active");
      if (b.dataset.tab === "figures") refreshFigures();
    }));
    document.querySelectorAll(".queue-filters button").forEach((b) => b.addEventListener("click", () => {
      document.querySelectorAll(".queue-filters button").forEach((n) => n.classList.remove("active"));
      b.classList.add("active"); state.queue = b.dataset.queue; refreshQueue();
    }));
    state.map.on("moveend", () => refreshHeatmap());
  }
  async function refreshAll() {
    await Promise.all([refreshHeatmap(), refreshChoropleth(), refreshPins(), refreshQueue()]);
    document.body.dataset.ready = "1";
  }

  async function main() {
    translatePage();
    const schema = await api("/api/schema/?format=json");
    state.paths = new Set(Object.keys((schema.body && schema.body.paths) || {}));
    const map = await buildMap();
    await addTerritoryLayers(map);
    await loadCategories();
    wireControls();
    await refreshAll();
    await refreshVisits();
    map.once("idle", () => { document.body.dataset.mapIdle = "1"; });
    map.triggerRepaint();
  }
  window.gridsvc = { state, refreshAll, showCase };
  main().catch((e) => { console.error(e); toast(String(e)); });
})();
