/* Street office web page (街道调度): MapLibre map of our own layers (no internet basemap),
   case heatmap with a month slider, grid choropleth, case pins, the dispatch queue with its
   actions, a case's timeline and walked chain, visit coverage, missing daily reports and the
   monthly figures. Talks to the same REST API as the phones (session auth + CSRF, If-Match
   with the case ETag). A panel lights up only when the OpenAPI schema lists its endpoint;
   where a server-side layer is missing the page falls back to what it can draw itself
   (GeoJSON territory instead of tiles, a client-side heatmap and choropleth from the cases). */
(function () {
  "use strict";

  const API = "/api/v1";
  const EN = {
    title: "Grid management platform · street dispatch", period: "Period", category: "Category",
    state: "State", all: "All", choropleth: "Choropleth", s_open: "Open", s_done: "Done",
    m_open: "Open", m_overdue: "Overdue", m_rate: "Resolution rate", logout: "Log out",
    l_places: "Places", p_religious: "Religious venues", p_school: "Schools", p_other: "Other", legend: "Legend",
    l_heat: "Case heatmap", l_choropleth: "Grid figures", l_pins: "Case pins",
    t_queue: "Queue", t_case: "Case", t_visits: "Visits", t_figures: "Monthly",
    q_mine: "My cases", t_work: "My work", q_unrouted: "Unrouted", q_overdue: "Overdue", q_flagged: "Flagged", empty: "No cases",
    pick_case: "Pick a case in the queue or on the map",
    coverage: "Visit coverage (this month)", missing: "No daily report today",
    fig_month: "Month", by_category: "Cases by category",
    by_level: "Level where cases ended", visits_due: "Visits done / due",
    trend: "Last 12 months: cases and resolution rate",
    last12: "last 12 months", assign: "Assign", reassign: "Reassign", escalate: "Escalate",
    transfer: "Transfer", set_deadline: "Deadline", supervise: "Supervise", confirm: "Confirm",
    cancel: "Cancel", note: "Note", member: "Member", department: "Department", due: "Due",
    done_n: "Done", grid: "Grid", overdue: "Overdue", far_off: "GPS off the household", rate: "Rate",
    missed: "Missed", open_n: "Open", chain: "Walked chain", timeline: "Timeline",
    cases: "Cases", resolved: "Resolved", resolution_rate: "Resolution rate",
    within_month: "Disputes settled within a month", total: "Reported",
    red: "Red card", yellow: "Yellow card", supervised: "Supervised", handler: "Handler",
    level: "Level", loading: "Loading…", no_candidates: "Nobody to assign to", ok: "done",
    e412: "Someone changed this case meanwhile (412). The card now shows the current version; check it and try again.",
    e409: "Not allowed in the case's current state (409).", allowed: "Allowed",
    failed: "Failed", details: "Details", reported_at: "Reported", cells: "cells",
    hex: "hex bins", kde: "density (client-side)", max: "max", choropleth_local: "computed in the page",
    ethnic_religious: "Ethnic/religious", group_incident: "Group incident", petition_risk: "Petition risk",
    place: "Grid", all_places: "All grids", retry: "Retry", search: "Search", clear: "Clear",
    search_ph: "Case number, address, building or words", sort: "Sort", sort_deadline: "Deadline first",
    sort_priority: "Priority", sort_age: "Oldest first", t_exports: "Exports",
    monthly_report: "Monthly work report", report_scope: "Scope", ledgers: "Grid ledgers (xlsx)",
    layer_exports: "Layer exports", export_note: "Exports cover your territory only, personal data masked; every download is logged.",
    load_failed: "Could not load", schema_failed: "Could not read the API description; nothing can be shown.",
    tiles_failed: "Map tiles could not be loaded; the territory is missing.", search_results: "Search results",
    no_results: "No case matches", changed: "Changed meanwhile", ask_again: "Check the changes above and confirm again",
    again: "Confirm again", print: "Print case sheet", printed_at: "Printed",
    street_all: "Whole street", community: "Community", before: "was", now: "now", handler_l: "Handler",
    status_l: "State", level_l: "Level", due_l: "Deadline", card_l: "Card", dept_l: "Department",
    past_due: "The deadline must be in the future; pick another.", click_again: "Click again to confirm: ",
    chase: "Chase", chased: "Chased", chase_copied: "reminder copied", no_contact: "The API gives no contact",
    no_contact_short: "no contact", five: "Five helpers (screening report)", five_short: "Five helpers",
    sign_off: "Ethnic-affairs desk sign-off", signed_ok: "Confirmed stable", signed_no: "Not yet stable",
    not_signed: "Not signed off yet (needed before closing)", sign_note: "Reason (required when not stable)",
    sign_why: "Say why the case is not yet stable.", sign_off_done: "Sign-off", sign_yes: "Confirm stable", sign_no: "Not yet stable",
    no_data: "No data", filters: "Filters", map_keys: "Map: arrows pan, +/- zoom, Enter lists the cases near the centre", zoom_in: "No single case pin near the centre; zoom in", on_leave: "on leave", t_unity: "Ethnic unity", t_services: "People's services",
    screening: "Five helpers' daily screening (today)", petitions: "Open petitions (信访)", activities_l: "Unity activities",
    expected: "Expected", reported: "Filed", zero_reports: "Zero reports", findings: "Findings", missing_n: "Missing", persons_year: "Person-times this year",
    all_filed: "All five helpers have filed today", no_team: "No five-helper team in your territory", forbidden: "Your position does not show this",
    group_risk: "Group petition risk", persons: "people", no_petitions: "No open petitions", this_year: "This year", times: "events",
    person_times: "person-times", materials: "materials", participants: "Participants", show_on_map: "Show on the map",
    applications: "Assistance applications", gaps: "Eligible but not covered (应保尽保)", flows: "Migrants: inflow / outflow",
    none: "None", recommended: "Recommended", not_recommended: "Not recommended", household: "Household", opinion: "Review",
    recheck_due: "Re-check", opinion_ph: "Review opinion (required)", reason_ph: "Reasons (required)", start_date: "Start", end_date: "End",
    amount: "Amount (yuan/month)", need_reason: "Give the reasons.", past_start: "The start date cannot be before today.",
    forbidden_step: "Your position cannot take this step", gap_dibao: "Suggests 低保, none", gap_housing: "Housing aid", arrived: "Arrived",
    departed: "Left", present: "Present", permits_expiring: "Permits expiring", pins_key: "numbers: cases at that spot (click to zoom)", chased_before: "already chased today, not sent again", chase_sent: "reminder sent", new_urgent: "New urgent cases", outside: "outside every grid", due_at: "due", new_due: "New deadline", suggested: "suggested grid", n_people: "",
    updated_by_other: "Updated by someone else", kept_form: "your form is kept; submitting it shows the changes again",
    venues_l: "Joint visits to religious venues", this_month: "This month", last_month: "Last month", no_venue_tasks: "No joint venue visits due",
    last_visit: "Last visit", never_visited: "no visit recorded", assignee: "Assigned to", joint: "joint", on_map: "On the map", hazard: "hazard found",
    t_district: "District", district_l: "District and streets", district_streets: "Streets side by side", whole_year: "Whole year",
    figure: "Figure", plan: "Year plan", summary_r: "Year summary", monthly_r: "Monthly report", r_missing: "not filed", r_submitted: "filed",
    r_acknowledged: "acknowledged", f_activities: "Activities", f_participants: "Participants", f_materials: "Materials handed out",
    f_screening: "Screening reports", f_zero: "Zero reports", f_findings: "Findings", f_petitions: "Petitions", f_petitions_er: "of them ethnic/religious",
    f_venue_visits: "Venue visits", f_venue_hazards: "Venue hazards", f_pairings: "Pairings active", f_volunteer: "Volunteer hours",
    f_five_star: "Five-star households", f_mediations: "Mediations", district_of: "District", no_streets: "No street in the district",
    pairings_l: "Pairings (结对帮扶)", ratings_l: "Ratings", community_ledgers: "Community ledgers (xlsx)", no_pairings: "No pairings",
    no_ratings: "No ratings this year", help_n: "Help records", last_help: "Last help", no_help: "no help recorded yet", ended: "ended",
    revoked: "Revoked", revised: "Revised", ledger_short: "ledger", stars: "stars", partner: "Partner", household_n: "Household", more_rows: "more not shown",
  };
  const STATUS_EN = {
    reported: "Reported", assigned: "Assigned", in_progress: "In progress", escalated: "Escalated",
    resolved: "Resolved", verified: "Verified", closed: "Closed", reopened: "Reopened",
    transferred: "Transferred", rejected: "Rejected", on_hold: "On hold", void: "Void", merged: "Merged",
  };
  const STATUS_ZH = {
    reported: "已上报", assigned: "已派遣", in_progress: "处置中", escalated: "已升级", resolved: "已处置",
    verified: "已核查", closed: "已结案", reopened: "已重办", transferred: "已转办", rejected: "不予受理",
    on_hold: "挂账", void: "作废", merged: "已合并",
  };
  const LEVELS = [
    ["household_head", "户长", "Household head"], ["unit_head", "单元长", "Unit head"],
    ["building_head", "楼长", "Building head"], ["owners_committee", "业主委员会", "Owners' committee"],
    ["property_manager", "物业经理", "Property manager"], ["community_cadre", "社区干部", "Community cadre"],
    ["mediation_committee", "社区调委会", "Mediation committee"], ["street_dispatcher", "街道调度台", "Street desk"],
    ["department", "职能部门", "Outside department"], ["unknown", "未记录", "Not recorded"],
  ];
  const POSITIONS = {
    grid_member: ["网格员", "Grid member"], community_cadre: ["社区干部", "Community cadre"],
    building_head: ["楼长", "Building head"], unit_head: ["单元长", "Unit head"],
    property_manager: ["物业经理", "Property manager"], owners_committee: ["业主委员会", "Owners' committee"],
    household_head: ["户长", "Household head"], mediation_committee: ["社区调委会", "Mediation committee"],
  };
  const FLAGS_ZH = { ethnic_religious: "涉民族宗教", group_incident: "群体性", petition_risk: "信访风险" };
  const OPEN = ["reported", "assigned", "in_progress", "escalated", "reopened", "transferred"];
  const RUNNING = ["assigned", "in_progress", "escalated", "reopened"];
  const DONE = ["resolved", "verified", "closed"];
  /** Timeline event kinds (CaseEvent.kind) in words; requests: {kind}_requested / _{state}. */
  const EVENT_ZH = {
    report: ["上报", "Reported"], route: ["自动分派", "Routed"], assign: ["派遣/改派", "Assigned"], start: ["受理/开始处置", "Started"],
    resolve: ["处置完毕", "Resolved"], verify: ["回访核查", "Verified"], close: ["结案", "Closed"], escalate: ["升级", "Escalated"],
    transfer: ["转办职能部门", "Transferred"], reject: ["不予受理", "Rejected"], reopen: ["重新办理", "Reopened"], send_back: ["回退", "Sent back"],
    resume: ["恢复办理", "Resumed"], merge: ["合并", "Merged"], merged_in: ["并入案件", "Case merged in"], set_deadline: ["设定时限", "Deadline set"],
    supervise: ["督办", "Supervised"], comment: ["备注", "Note"], red_card: ["红牌(超期)", "Red card (overdue)"], yellow_card: ["黄牌(临期)", "Yellow card (due soon)"],
    deadline_kept: ["时限保持", "Deadline kept"], deadline_recomputed: ["时限重算", "Deadline recomputed"], on_the_spot: ["当场处置", "Handled on the spot"],
    sign_off: ["会签", "Signed off"],
  };
  const REQUEST_ZH = { extension: ["延时", "extension"], hold: ["挂账", "hold"], void: ["作废", "void"] };
  const REQUEST_STATE_ZH = { requested: ["申请", "requested"], approved: ["已批准", "approved"], refused: ["已驳回", "refused"], pending: ["待审批", "pending"] };
  function eventLabel(kind) {
    const i = lang === "en" ? 1 : 0;
    if (EVENT_ZH[kind]) return EVENT_ZH[kind][i];
    const m = /^(extension|hold|void)_(requested|approved|refused|pending)$/.exec(kind || "");
    if (m) return lang === "en" ? `${REQUEST_ZH[m[1]][1]} ${REQUEST_STATE_ZH[m[2]][1]}` : `${REQUEST_ZH[m[1]][0]}${REQUEST_STATE_ZH[m[2]][0]}`;
    return kind;
  }
  const STEP_ZH = { vacant: "空缺", on_leave: "请假", no_object: "无此对象", inactive: "未启用" };
  /** The server's routing reason (English words around Chinese names) in Chinese. */
  function routeReason(text) {
    if (lang === "en" || !text) return text;
    return text
      .replace(/: starts at /g, ":起始层级 ")
      .replace(/ skipped \((\w+)\)/g, (m, st) => ` 跳过(${STEP_ZH[st] || st})`)
      .replace("nobody holds the street desk → dispatch queue", "街道调度台无人值守 → 进入调度队列")
      .replace("outside every grid → street dispatch queue", "不在任何网格内 → 进入街道调度队列")
      .replace(/nearest grid (.+?) \((\w+)\) at (\d+) m/, "最近网格 $1($2)约 $3 米")
      .replace(/escalated by hand/g, "人工升级")
      .replace(/; /g, ";");
  }
  /** Notes the server writes in English (automatic steps) in Chinese. */
  function noteText(note) {
    if (lang === "en" || !note) return note;
    const m = /^overdue: escalated one level$/.exec(note);
    if (m) return "超期:自动升级一级";
    const merged = /^(\S+) merged in$/.exec(note);
    if (merged) return `${merged[1]} 已并入`;
    return routeReason(note);
  }
  const CONFIRM_TWICE = ["escalate", "supervise"];
  const FIELD_ZH = { member: "人员", due_at: "期限", department: "部门", note: "备注", grid: "网格", non_field_errors: "", version: "版本", status: "状态" };
  const DISPATCH_ACTIONS = ["assign", "escalate", "transfer", "set_deadline", "supervise"];
  const ACTION_ZH = { assign: "派遣", reassign: "改派", escalate: "升级", transfer: "转办", set_deadline: "设期限", supervise: "督办" };

  const params = new URLSearchParams(location.search);
  const lang = (() => {
    const p = params.get("lang");
    if (p === "en" || p === "zh") { try { localStorage.setItem("gridsvc.lang", p); } catch (e) { /* private mode */ } return p; }
    let saved = null;
    try { saved = localStorage.getItem("gridsvc.lang"); } catch (e) { /* private mode */ }
    if (saved === "en" || saved === "zh") return saved;
    return (navigator.language || "zh").toLowerCase().startsWith("zh") ? "zh" : "en";
  })();
  const t = (key, zh) => (lang === "en" ? EN[key] || zh || key : zh || key);
  const statusLabel = (s) => (lang === "en" ? STATUS_EN[s] : STATUS_ZH[s]) || s;
  const levelLabel = (name) => { const l = LEVELS.find((x) => x[0] === name); return l ? (lang === "en" ? l[2] : l[1]) : name || ""; };
  const positionLabel = (p) => (POSITIONS[p] ? POSITIONS[p][lang === "en" ? 1 : 0] : p);
  const flagLabel = (f) => (lang === "en" ? EN[f] : FLAGS_ZH[f]) || f;

  const state = {
    month: 12, category: "", status: "", metric: "open", queue: "overdue",
    paths: new Set(), map: null, charts: {}, cases: [], grids: null, categories: [],
    departments: null, queueRows: new Map(), counts: {}, selected: null, busy: 0,
    place: "", sort: "deadline", roles: new Set(), desk: true, manager: true, kinds: ["unrouted", "overdue", "flagged"], search: null, queueStatus: {}, communities: [],
  };

  // ------------------------------------------------------------------ helpers
  function csrf() {
    const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  async function api(path, options = {}) {
    const opts = Object.assign({ credentials: "same-origin" }, options);
    opts.headers = Object.assign({ Accept: "application/json" }, options.headers || {});
    if (opts.body && typeof opts.body !== "string") {
      opts.body = JSON.stringify(opts.body);
      opts.headers["Content-Type"] = "application/json";
    }
    if (opts.method && opts.method !== "GET") opts.headers["X-CSRFToken"] = csrf();
    state.busy += 1; document.body.dataset.busy = String(state.busy);
    try {
      let r;
      try { r = await fetch(path, opts); } catch (e) { return { ok: false, status: 0, body: { detail: String(e) }, headers: new Headers() }; }
      const date = Date.parse(r.headers.get("Date") || "");
      if (Number.isFinite(date) && !(date < (state.serverNow || 0))) state.serverNow = date; // the server's clock, not the browser's
      const text = await r.text();
      let body = null;
      try { body = text ? JSON.parse(text) : null; } catch (e) { body = { detail: text.slice(0, 300) }; }
      if (r.status === 401 || (r.status === 403 && body && /credentials|认证/.test(String(body.detail)))) {
        location.href = `/login/?next=${encodeURIComponent(location.pathname + location.search)}`;
      }
      return { ok: r.ok, status: r.status, body, headers: r.headers };
    } finally {
      state.busy -= 1; document.body.dataset.busy = String(state.busy);
    }
  }
  const has = (path) => state.paths.has(path);
  const rows = (body) => (Array.isArray(body) ? body : (body && (body.results || body.features)) || []);
  function toast(msg, error) {
    const box = document.getElementById("toast");
    box.textContent = msg; box.hidden = false; box.classList.toggle("error", !!error);
    clearTimeout(toast.timer); toast.timer = setTimeout(() => { box.hidden = true; }, error ? 6000 : 3000);
  }
  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "value") e.value = v;
      else if (k === "style") e.style.cssText = v; // CSSOM, allowed by the CSP (a style attribute is not)
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c.nodeType ? c : String(c));
    return e;
  }
  const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString(lang === "en" ? "en-GB" : "zh-CN", { hour12: false, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" }) : "");
  const pct = (v) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(1)}%`);
  const ymd = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
  const monthStart = (back) => { const n = new Date(); return new Date(n.getFullYear(), n.getMonth() - back, 1); };
  const monthLabel = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}`;

  /** The time window of the slider: 0..11 = one month (0 the oldest), 12 = the last 12 months. */
  function windowRange(month = state.month) {
    if (month >= 12) {
      const now = new Date();
      return { since: monthStart(11), until: new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1) };
    }
    const back = 11 - month;
    return { since: monthStart(back), until: monthStart(back - 1) };
  }
  /** Query of the list API (/cases/, /cases/figures/): since/until date-times, status filters. */
  function caseQuery(range = windowRange(), withFilters = true) {
    const p = new URLSearchParams({ since: range.since.toISOString(), until: range.until.toISOString() });
    if (withFilters && state.category) p.set("category", state.category);
    if (withFilters && state.status === "open") p.set("open", "true");
    else if (withFilters && state.status === "done") DONE.forEach((s) => p.append("status", s));
    else if (withFilters && state.status) p.set("status", state.status);
    return p;
  }
  /** Query of the layer API (heatmap, choropleth): since/until, category, status (open/done/state). */
  function layerQuery() {
    const range = windowRange();
    const p = new URLSearchParams({ since: range.since.toISOString(), until: new Date(range.until.getTime() - 1000).toISOString() });
    if (state.category) p.set("category", state.category);
    if (state.status) p.set("status", state.status);
    return p;
  }
  function translatePage() {
    document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
    document.querySelectorAll("[data-i18n]").forEach((n) => { n.textContent = t(n.dataset.i18n, n.textContent); });
    document.querySelectorAll("[data-i18n-placeholder]").forEach((n) => { n.placeholder = t(n.dataset.i18nPlaceholder, n.placeholder); });
    if (lang === "en") document.title = "Grid management platform · street dispatch";
    const toggle = document.getElementById("lang-toggle");
    toggle.textContent = lang === "en" ? "中文" : "English";
    toggle.href = lang === "en" ? "?lang=zh" : "?lang=en";
  }

  // ------------------------------------------------------------------ map
  function buildMap() {
    const map = new maplibregl.Map({
      container: "map",
      style: { version: 8, sources: {}, layers: [{ id: "bg", type: "background", paint: { "background-color": "#eef2f5" } }] },
      center: [103.775, 36.059], zoom: 14, attributionControl: false, maxZoom: 19,
      canvasContextAttributes: { preserveDrawingBuffer: true }, // canvas pixels readable (tests, screenshots)
    });
    map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-left");
    map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-right");
    state.map = map;
    return new Promise((resolve) => map.on("load", () => resolve(map)));
  }

  /** Our own vector tiles, found without the OpenAPI schema (the map must not wait for it):
      the grids' TileJSON answers → tiles for the three territory layers (a failing tile server
      raises the banner); 404 → the server has none and the page draws GeoJSON instead. */
  async function tilesServed() {
    try {
      const r = await fetch(`${location.origin}/tiles/grids.json`, { credentials: "same-origin", method: "GET" });
      return r.status !== 404;
    } catch (e) { return true; } // no answer: keep the tiles; their errors raise the banner
  }
  async function addTerritoryLayers(map, gridsAnswer) {
    const grids = gridsAnswer || await api(`${API}/grids/?page_size=500`);
    state.grids = grids.ok && grids.body && grids.body.features ? grids.body : { type: "FeatureCollection", features: [] };
    const tiles = await tilesServed();
    state.tiles = tiles;
    document.getElementById("map").dataset.territory = tiles ? "tiles" : "geojson";
    const tileJson = (layer) => ({ type: "vector", url: `${location.origin}/tiles/${layer}.json` });
    if (tiles) {
      for (const layer of ["grids", "compounds", "buildings"]) map.addSource(layer, tileJson(layer));
    } else {
      const [compounds, buildings] = await Promise.all([api(`${API}/compounds/?page_size=500`), api(`${API}/buildings/?page_size=500`)]);
      map.addSource("grids", { type: "geojson", data: state.grids });
      map.addSource("compounds", { type: "geojson", data: compounds.ok ? compounds.body : { type: "FeatureCollection", features: [] } });
      map.addSource("buildings", { type: "geojson", data: buildings.ok ? buildings.body : { type: "FeatureCollection", features: [] } });
    }
    const src = (layer) => (tiles ? { source: layer, "source-layer": layer } : { source: layer });
    map.on("error", (e) => {
      if (!["grids", "compounds", "buildings"].includes(e.sourceId)) return;
      document.getElementById("map").dataset.tiles = "error";
      banner(`${t("tiles_failed", "地图瓦片加载失败,辖区图层缺失。")} ${e.error && e.error.status ? `(${e.error.status})` : ""}`, async () => {
        document.getElementById("map").dataset.tiles = "";
        for (const layer of ["grids", "compounds", "buildings"]) {
          const source = map.getSource(layer);
          if (source && source.setUrl) source.setUrl(tileJson(layer).url);
        }
      });
    });
    map.addLayer({ id: "grid-fill", type: "fill", paint: { "fill-color": "#ffffff", "fill-opacity": 0.7 }, ...src("grids") });
    map.addSource("choropleth", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
    map.addLayer({ id: "choropleth", type: "fill", source: "choropleth", paint: { "fill-color": "#c6dbef", "fill-opacity": 0.55 } });
    map.addLayer({ id: "compound-fill", type: "fill", paint: { "fill-color": "#d9e8d4", "fill-opacity": 0.35 }, ...src("compounds") });
    map.addLayer({ id: "compound-line", type: "line", paint: { "line-color": "#68a063", "line-width": 1, "line-dasharray": [2, 2] }, ...src("compounds") });
    map.addLayer({ id: "building-fill", type: "fill", paint: { "fill-color": "#9aa5b1", "fill-opacity": 0.85 }, ...src("buildings") });
    map.addLayer({ id: "grid-line", type: "line", paint: { "line-color": "#0b4f6c", "line-width": 2 }, ...src("grids") });
    addLabels(map, src);
    const feats = state.grids.features || [];
    if (feats.length) {
      const b = new maplibregl.LngLatBounds();
      feats.forEach((f) => f.geometry && f.geometry.coordinates.flat(2).forEach((c) => b.extend(c)));
      map.fitBounds(b, { padding: 20, duration: 0 });
    }
    map.on("click", "choropleth", (e) => {
      if (map.queryRenderedFeatures(e.point, { layers: ["pins", "pin-clusters"].filter((l) => map.getLayer(l)) }).length) return;
      const p = e.features[0].properties;
      const box = el("div", { class: "popup" }, el("b", {}, p.name || p.code || ""),
        el("div", {}, `${t("m_open", "在办")} ${p.open ?? 0} · ${t("m_overdue", "超期")} ${p.overdue ?? 0}`),
        el("div", {}, `${t("m_rate", "化解率")} ${pct(p.resolution_rate === "null" ? null : p.resolution_rate)} (${p.resolved ?? 0}/${p.cases ?? 0})`),
        p.visits_done !== undefined ? el("div", {}, `${t("done_n", "已访")} ${p.visits_done}`) : null);
      new maplibregl.Popup({ maxWidth: "260px" }).setLngLat(e.lngLat).setDOMContent(box).addTo(map);
    });
  }

  /** A point inside a grid for its label: the area-weighted centroid of its largest ring
      (grids are compact blocks), or its first vertex when that falls outside. */
  function labelPoint(geometry) {
    const polys = geometry.type === "MultiPolygon" ? geometry.coordinates : [geometry.coordinates];
    let best = null;
    let bestArea = -1;
    for (const poly of polys) {
      const ring = poly[0];
      let a = 0; let cx = 0; let cy = 0;
      for (let i = 0, j = ring.length - 1; i < ring.length; j = i, i += 1) {
        const f = ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
        a += f; cx += (ring[j][0] + ring[i][0]) * f; cy += (ring[j][1] + ring[i][1]) * f;
      }
      if (Math.abs(a) > bestArea) { bestArea = Math.abs(a); best = a ? [cx / (3 * a), cy / (3 * a)] : ring[0]; }
    }
    return best;
  }
  /** Names on the map (glyphs drawn in the browser: MapLibre renders text locally when the
      style names no glyph server): grids from z12 to 16, compounds from z15, buildings from
      z17, each with a white halo; symbols give way to each other instead of overlapping. */
  function addLabels(map, src) {
    const text = (color) => ({ "text-color": color, "text-halo-color": "rgba(255,255,255,0.95)", "text-halo-width": 1.6 });
    map.addSource("grid-labels", { type: "geojson", data: { type: "FeatureCollection", features: (state.grids.features || [])
      .filter((f) => f.geometry).map((f) => ({ type: "Feature", id: f.id, geometry: { type: "Point", coordinates: labelPoint(f.geometry) },
        properties: { name: f.properties.name || f.properties.code || "" } })) } });
    map.addLayer({ id: "compound-labels", type: "symbol", minzoom: 15, maxzoom: 18.5, ...src("compounds"),
      layout: { "text-field": ["get", "name"], "text-font": ["Noto Sans CJK SC Regular"], "text-size": 12, "text-padding": 4 },
      paint: text("#276227") });
    map.addLayer({ id: "building-labels", type: "symbol", minzoom: 17, ...src("buildings"),
      layout: { "text-field": ["get", "name"], "text-font": ["Noto Sans CJK SC Regular"], "text-size": 11, "text-padding": 2 },
      paint: text("#1f2933") });
    // the grids' names last: placed first, the other names give way to them
    map.addLayer({ id: "grid-labels", type: "symbol", source: "grid-labels", minzoom: 12, maxzoom: 16.5,
      layout: { "text-field": ["get", "name"], "text-font": ["Noto Sans CJK SC Bold"], "text-size": ["interpolate", ["linear"], ["zoom"], 12, 12, 16, 16], "text-allow-overlap": false },
      paint: text("#0b4f6c") });
  }

  /** Places (场所: religious venues, schools, clinics …) as coloured dots with a popup. */
  async function addPlaces(map) {
    if (!has(`${API}/places/`)) { document.getElementById("show-places").closest("label").hidden = true; return; }
    const r = await api(`${API}/places/?page_size=500`);
    const data = r.ok ? (r.body.type === "FeatureCollection" ? r.body : { type: "FeatureCollection", features: rows(r.body) }) : { type: "FeatureCollection", features: [] };
    document.getElementById("places-count").textContent = r.ok ? `(${data.features.length})` : failText(r);
    state.placesData = data;
    map.addSource("places", { type: "geojson", data });
    map.addLayer({ id: "places", type: "circle", source: "places", minzoom: 12, paint: {
      "circle-radius": ["interpolate", ["linear"], ["zoom"], 12, 3, 17, 7],
      "circle-color": ["match", ["get", "kind"], ["mosque", "religious_venue"], "#6b46c1", "school", "#2b6cb0", "#4a5568"],
      "circle-stroke-color": "#ffffff", "circle-stroke-width": 1.5 } });
    map.on("click", "places", (e) => placePopup(e.features[0].properties, e.lngLat));
  }
  /** A place's popup; a religious venue's also says its last visit and this month's joint visit. */
  function placePopup(p, lngLat) {
    const venue = state.venueInfo && state.venueInfo.get(Number(p.id));
    state.placePopup = new maplibregl.Popup({ maxWidth: "260px" }).setLngLat(lngLat)
      .setDOMContent(el("div", { class: "popup", "data-place": p.id }, el("b", {}, p.name || ""), el("div", { class: "muted" }, p.address || ""),
        venue ? el("div", { class: "venue-last" }, `${t("last_visit", "最近走访")}: ${venue.last ? `${venue.last.date}${venue.last.joint ? ` (${t("joint", "联合")})` : ""}` : t("never_visited", "暂无记录")}`) : null,
        venue && venue.task ? el("div", {}, `${t("this_month", "本月")}: `, venueStatusBadge(venue.task.status), ` ${t("due", "期限")} ${venue.task.due_on}`) : null))
      .addTo(state.map);
  }

  // ------------------------------------------------------------------ cases (pins, and the fallbacks)
  async function loadCases() {
    if (!has(`${API}/cases/`)) { state.cases = []; return; }
    const p = caseQuery(); p.set("page_size", "500");
    const out = [];
    let url = `${API}/cases/?${p}`;
    for (let page = 0; url && page < 10; page += 1) { // the street's cases of a year: a few pages at most
      const r = await api(url);
      if (!r.ok) { state.casesFailed = r; state.cases = out; banner(`${t("cases", "案件")}: ${failText(r)}`, () => refreshCases()); return; }
      out.push(...rows(r.body));
      url = r.body && r.body.next ? new URL(r.body.next, location.origin).pathname + new URL(r.body.next, location.origin).search : null;
    }
    state.cases = out;
    state.casesFailed = null;
  }
  function casesGeoJSON() {
    return {
      type: "FeatureCollection",
      features: state.cases.filter((c) => c.lon !== null && c.lat !== null).map((c) => ({
        type: "Feature", id: c.id, geometry: { type: "Point", coordinates: [c.lon, c.lat] },
        properties: { id: c.id, status: c.status, group: c.overdue ? "late" : OPEN.includes(c.status) ? "open" : DONE.includes(c.status) ? "done" : "other", card: c.card || "" },
      })),
    };
  }
  function refreshPins() {
    const map = state.map;
    const data = casesGeoJSON();
    data.features = data.features.filter((f) => passesFilters(state.cases.find((c) => c.id === f.id) || {}) || !state.place);
    const count = document.getElementById("pins-count");
    if (count) count.textContent = `(${data.features.length})`;
    if (map.getSource("pins")) { map.getSource("pins").setData(data); map.getSource("pins-raw").setData(data); return; }
    // clustered below z18 (a circle with the number of cases, red when one of them is
    // overdue; a click zooms in); from z18 each case is a pin and a stacked building a list
    map.addSource("pins", { type: "geojson", data, cluster: true, clusterMaxZoom: 17, clusterRadius: 28,
      clusterProperties: { late: ["+", ["case", ["==", ["get", "group"], "late"], 1, 0]] } });
    map.addSource("pins-raw", { type: "geojson", data }); // the client-side density heatmap's points
    map.addLayer({ id: "pin-clusters", type: "circle", source: "pins", minzoom: 12, filter: ["has", "point_count"], paint: {
      "circle-color": ["case", [">", ["get", "late"], 0], "#9b2c2c", "#dd6b20"],
      "circle-opacity": 0.85, "circle-stroke-color": "#ffffff", "circle-stroke-width": 1.5,
      "circle-radius": ["step", ["get", "point_count"], 9, 10, 12, 50, 16, 200, 20] } });
    map.addLayer({ id: "pin-cluster-count", type: "symbol", source: "pins", minzoom: 12, filter: ["has", "point_count"],
      layout: { "text-field": ["get", "point_count_abbreviated"], "text-font": ["Noto Sans CJK SC Bold"], "text-size": 11, "text-allow-overlap": true, "text-ignore-placement": true },
      paint: { "text-color": "#ffffff" } });
    map.on("click", "pin-clusters", async (e) => {
      const f = e.features[0];
      const zoom = await map.getSource("pins").getClusterExpansionZoom(f.properties.cluster_id);
      map.easeTo({ center: f.geometry.coordinates, zoom: Math.min(zoom, 18), duration: 300 });
    });
    map.on("mouseenter", "pin-clusters", () => { map.getCanvas().style.cursor = "pointer"; });
    map.on("mouseleave", "pin-clusters", () => { map.getCanvas().style.cursor = ""; });
    map.addLayer({ id: "pins", type: "circle", source: "pins", minzoom: 12, filter: ["!", ["has", "point_count"]], paint: {
      "circle-radius": ["interpolate", ["linear"], ["zoom"], 13, 2.5, 17, 6],
      "circle-stroke-width": ["match", ["get", "card"], "red", 2, "yellow", 2, 1],
      "circle-stroke-color": ["match", ["get", "card"], "red", "#7f1d1d", "yellow", "#d69e2e", "#ffffff"],
      "circle-color": ["match", ["get", "group"], "late", "#9b2c2c", "open", "#dd6b20", "done", "#2f855a", "#718096"] } });
    // keyboard: the map takes focus (arrows pan, +/- zoom); Enter lists the cases near its
    // centre as buttons, the first one focused, so pins are reachable without a mouse
    map.getCanvas().setAttribute("aria-label", t("map_keys", "地图:方向键平移,+/-缩放,回车列出中心附近的案件"));
    map.getCanvas().addEventListener("keydown", (e) => {
      if (e.key !== "Enter") return;
      e.preventDefault(); // the key's press must not reach the button focused below
      const c = map.project(map.getCenter());
      const near = map.queryRenderedFeatures([[c.x - 60, c.y - 60], [c.x + 60, c.y + 60]], { layers: ["pins"] });
      const ids = [...new Set(near.map((f) => f.properties.id))].slice(0, 20);
      const list = ids.map((i) => state.cases.find((x) => x.id === i)).filter(Boolean);
      const box = el("div", { class: "popup stacked", "data-keyboard": "1" }, el("b", {}, list.length ? `${list.length} ${t("cases", "件")}` : t("zoom_in", "中心附近没有单独的案件点位,请放大")),
        el("ul", { class: "stack-list" }, list.map((x) => el("li", {}, badges(x),
          el("button", { type: "button", class: "link", onclick: () => showCase(x.id) }, `${x.number} ${x.category_name || ""}`)))));
      new maplibregl.Popup({ maxWidth: "300px" }).setLngLat(map.getCenter()).setDOMContent(box).addTo(map);
      const first = box.querySelector("button");
      if (first) first.focus();
    });
    map.on("mouseenter", "pins", () => { map.getCanvas().style.cursor = "pointer"; });
    map.on("mouseleave", "pins", () => { map.getCanvas().style.cursor = ""; });
    map.on("click", "pins", (e) => {
      // a building with several cases stacks their pins: list them all
      const ids = [...new Set(e.features.map((f) => f.properties.id))];
      const stacked = ids.map((i) => state.cases.find((x) => x.id === i)).filter(Boolean);
      if (stacked.length > 1) {
        const list = el("div", { class: "popup stacked", "data-stacked": stacked.length },
          el("b", {}, `${stacked.length} ${t("cases", "件")}`),
          el("ul", { class: "stack-list" }, stacked.map((x) => el("li", {}, badges(x),
            el("button", { type: "button", class: "link", onclick: () => showCase(x.id) }, `${x.number} ${x.category_name || ""}`),
            el("span", { class: "muted small" }, ` ${statusLabel(x.status)}`)))));
        new maplibregl.Popup({ maxWidth: "300px" }).setLngLat(e.lngLat).setDOMContent(list).addTo(map);
        return;
      }
      const id = e.features[0].properties.id;
      const c = state.cases.find((x) => x.id === id);
      if (!c) return;
      const box = el("div", { class: "popup" },
        el("b", {}, `${c.number} ${c.category_name || ""}`),
        el("div", {}, c.title || ""),
        el("div", { class: "muted" }, `${statusLabel(c.status)} · ${levelLabel(c.level)} · ${c.handler_name || c.department_name || "—"}`),
        el("div", { class: "muted" }, `${t("reported_at", "上报")} ${fmtTime(c.reported_at)}`),
        badges(c),
        el("button", { type: "button", class: "link", onclick: () => showCase(c.id) }, t("details", "详情 ›")));
      new maplibregl.Popup({ maxWidth: "280px" }).setLngLat(e.lngLat).setDOMContent(box).addTo(map);
    });
  }

  // ------------------------------------------------------------------ heatmap
  const PIN_LAYERS = ["pin-clusters", "pin-cluster-count", "pins"];
  const HEAT_STOPS = ["rgba(255,237,160,0.55)", "rgba(254,178,76,0.75)", "rgba(240,59,32,0.85)"];
  async function refreshHeatmap() {
    const map = state.map;
    const info = document.getElementById("heat-info");
    const mapBox = document.getElementById("map");
    if (has(`${API}/heatmap/cases/`)) {
      const b = map.getBounds();
      const p = layerQuery();
      p.set("bbox", [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(6)).join(","));
      p.set("zoom", String(Math.round(map.getZoom())));
      const seq = (refreshHeatmap.seq = (refreshHeatmap.seq || 0) + 1);
      const r = await api(`${API}/heatmap/cases/?${p}`);
      if (seq !== refreshHeatmap.seq) return; // a newer request is on its way
      if (!r.ok) {
        info.replaceChildren(el("span", { class: "state-error" }, failText(r)), " ", el("button", { type: "button", class: "retry", onclick: () => refreshHeatmap() }, t("retry", "重试")));
        mapBox.dataset.heatTotal = "error";
        return;
      }
      const feats = r.body.features || [];
      const max = Math.max(1, ...feats.map((f) => f.properties.count || 0));
      const total = r.body.total ?? feats.reduce((s, f) => s + (f.properties.count || 0), 0);
      const color = ["interpolate", ["linear"], ["get", "count"], 1, HEAT_STOPS[0], Math.max(2, max / 2), HEAT_STOPS[1], Math.max(3, max), HEAT_STOPS[2]];
      if (map.getSource("heat")) map.getSource("heat").setData(r.body);
      else {
        map.addSource("heat", { type: "geojson", data: r.body });
        map.addLayer({ id: "heat", type: "fill", source: "heat", paint: { "fill-color": color, "fill-outline-color": "rgba(255,255,255,0.7)" } }, "grid-line");
      }
      map.setPaintProperty("heat", "fill-color", color);
      info.textContent = `${t("hex", "六边形")} · ${total} ${t("cases", "件")} · ${t("max", "最多")} ${max}`;
      mapBox.dataset.heatCells = String(feats.length);
      mapBox.dataset.heatTotal = String(total);
    } else {
      // No heatmap endpoint: a density heatmap of the case points, drawn by MapLibre.
      if (!map.getLayer("heat")) {
        map.addLayer({ id: "heat", type: "heatmap", source: "pins-raw", maxzoom: 19, paint: {
          "heatmap-weight": 1,
          "heatmap-intensity": ["interpolate", ["linear"], ["zoom"], 13, 0.6, 18, 1.5],
          "heatmap-radius": ["interpolate", ["linear"], ["zoom"], 13, 12, 16, 30, 18, 60],
          "heatmap-opacity": 0.8,
          "heatmap-color": ["interpolate", ["linear"], ["heatmap-density"], 0, "rgba(255,237,160,0)", 0.15, HEAT_STOPS[0], 0.5, HEAT_STOPS[1], 1, HEAT_STOPS[2]],
        } }, "grid-line");
      }
      const total = state.cases.filter((c) => c.lon !== null).length;
      if (state.casesFailed) { info.textContent = failText(state.casesFailed); mapBox.dataset.heatTotal = "error"; return; }
      info.textContent = `${t("kde", "密度")} · ${total} ${t("cases", "件")}`;
      mapBox.dataset.heatCells = String(total);
      mapBox.dataset.heatTotal = String(total);
    }
    setVisibility("heat", document.getElementById("show-heat").checked);
    for (const l of PIN_LAYERS) if (map.getLayer(l)) map.moveLayer(l);
  }

  // ------------------------------------------------------------------ choropleth
  function localChoropleth() {
    const by = new Map();
    for (const c of state.cases) {
      if (!c.grid || c.status === "void" || c.status === "merged") continue;
      const g = by.get(c.grid) || { cases: 0, open: 0, overdue: 0, resolved: 0 };
      g.cases += 1;
      if (OPEN.includes(c.status)) g.open += 1;
      if (c.overdue) g.overdue += 1;
      if (DONE.includes(c.status)) g.resolved += 1;
      by.set(c.grid, g);
    }
    return {
      type: "FeatureCollection",
      features: (state.grids.features || []).map((f) => {
        const g = by.get(f.id) || { cases: 0, open: 0, overdue: 0, resolved: 0 };
        return { type: "Feature", id: f.id, geometry: f.geometry, properties: {
          code: f.properties.code, name: f.properties.name, ...g, resolution_rate: g.cases ? g.resolved / g.cases : null } };
      }),
    };
  }
  async function refreshChoropleth() {
    const map = state.map;
    let data;
    const info = document.getElementById("choropleth-info");
    if (has(`${API}/choropleth/grids/`)) {
      const r = await api(`${API}/choropleth/grids/?${layerQuery()}`);
      if (!r.ok) {
        info.replaceChildren(el("span", { class: "state-error" }, failText(r)), " ", el("button", { type: "button", class: "retry", onclick: () => refreshChoropleth() }, t("retry", "重试")));
        return;
      }
      data = r.body; info.textContent = "";
    } else {
      data = localChoropleth(); info.textContent = t("choropleth_local", "由页面按案件计算");
    }
    state.choropleth = data;
    const metric = state.metric;
    const values = data.features.map((f) => Number(f.properties[metric] || 0));
    const max = metric === "resolution_rate" ? 1 : Math.max(1, ...values);
    const ramp = metric === "resolution_rate" ? ["#f7fcf5", "#238b45"] : metric === "overdue" ? ["#f2f0f7", "#54278f"] : ["#eff3ff", "#08519c"];
    // the resolution rate in steps that separate 72% from 100%; counts on a linear ramp
    const RATE_STEPS = [[0, "#b2182b"], [0.6, "#ef8a62"], [0.8, "#fddbc7"], [0.9, "#a6dba0"], [0.99, "#1b7837"]];
    const color = ["case", ["==", ["get", metric], null], "#e2e8f0",
      metric === "resolution_rate"
        ? ["step", ["to-number", ["get", metric], 0], RATE_STEPS[0][1], ...RATE_STEPS.slice(1).flat()]
        : ["interpolate", ["linear"], ["to-number", ["get", metric], 0], 0, ramp[0], max, ramp[1]]];
    const scale = document.getElementById("choropleth-scale");
    if (metric === "resolution_rate") {
      scale.replaceChildren(...RATE_STEPS.map(([v, col], i) => el("span", { class: "step" }, el("i", { class: "swatch", style: `background:${col}` }),
        i + 1 < RATE_STEPS.length ? `${Math.round(v * 100)}–${Math.round(RATE_STEPS[i + 1][0] * 100)}%` : "≥99%")));
    } else {
      scale.replaceChildren(el("span", {}, "0"), el("span", { class: "right" }, String(max)));
    }
    map.getSource("choropleth").setData(data);
    map.setPaintProperty("choropleth", "fill-color", color);
    document.getElementById("choropleth-ramp").style.background = metric === "resolution_rate"
      ? `linear-gradient(to right, ${RATE_STEPS.map(([, col]) => col).join(", ")})` : `linear-gradient(to right, ${ramp[0]}, ${ramp[1]})`;
    document.getElementById("choropleth-ramp").dataset.max = metric === "resolution_rate" ? "100%" : String(max);
    setVisibility("choropleth", document.getElementById("show-choropleth").checked);
  }
  function setVisibility(layer, on) {
    if (state.map.getLayer(layer)) state.map.setLayoutProperty(layer, "visibility", on ? "visible" : "none");
  }

  // ------------------------------------------------------------------ queue
  function badges(c) {
    const out = [];
    if (c.card === "red") out.push(el("span", { class: "badge red", title: t("red", "红牌") }, t("red", "红牌")));
    if (c.card === "yellow") out.push(el("span", { class: "badge yellow", title: t("yellow", "黄牌") }, t("yellow", "黄牌")));
    if (c.overdue) out.push(el("span", { class: "badge late" }, t("overdue", "超期")));
    for (const f of c.flags || []) out.push(el("span", { class: "badge flag" }, flagLabel(f)));
    if (c.supervised_at) out.push(el("span", { class: "badge sup" }, t("supervised", "督办")));
    return el("span", { class: "badges" }, out);
  }
  /** The error text of a failed answer: status and the server's detail (0 = no answer). */
  const failText = (r) => `${t("load_failed", "加载失败")} (${r.status || "网络"})${r.body && r.body.detail ? `: ${String(r.body.detail).slice(0, 120)}` : ""}`;
  /** Show one of loading / empty / error / ready under the queue; error offers a retry. */
  function queueState(kind, text, retry) {
    const box = document.getElementById("queue-state");
    box.dataset.state = kind;
    box.hidden = kind === "ready";
    document.getElementById("queue-state-text").textContent = text || "";
    const btn = document.getElementById("queue-retry");
    btn.hidden = !retry;
    btn.onclick = retry || null;
  }
  /** Live updates: every POLL_MS one poll asks the queues again and the cases changed since
      the last server time seen (not while a queue form is open, the tab is hidden or a search
      is shown); new urgent cases (紧急, red card) raise a quiet notice; changes to cases on
      screen (reassigned, a deadline, escalated, closed by another dispatcher) are merged into
      the queue, the pins and the open case card. */
  const POLL_MS = 60e3;
  /** Overlap of each poll with the last one: a change saved just before the last answer but
      committed after it is still caught (duplicates are merged by version). */
  const OVERLAP_MS = 60e3;
  function startPolling() {
    state.seen = new Set(state.kinds.flatMap((k) => (state.counts[k] || []).map((c) => c.id))); // in a queue already
    state.known = new Set(state.cases.map((c) => c.id)); // reported before the page was read
    // the server's time when the page had read everything (its Date header), else the latest
    // change the page has read
    state.cursor = state.serverNow || Math.max(0, ...state.cases.map((c) => Date.parse(c.updated_at) || 0)) || null;
    setInterval(() => pollOnce(false), POLL_MS);
  }
  /** Cases reported or changed since the cursor, less the overlap (``updated_since``, oldest
      change first; a few pages at most): the cursor moves to the answer's server time. */
  async function changedCases() {
    if (!has(`${API}/cases/`)) return null;
    const base = state.cursor || state.serverNow;
    if (!base) return null;
    const since = base - OVERLAP_MS;
    const out = [];
    let url = `${API}/cases/?updated_since=${encodeURIComponent(new Date(since).toISOString())}&page_size=200`;
    let now = null;
    for (let page = 0; url && page < 5; page += 1) {
      const r = await api(url);
      if (!r.ok) return null;
      const date = Date.parse(r.headers.get("Date") || "");
      if (Number.isFinite(date) && now === null) now = date;
      out.push(...rows(r.body));
      url = r.body && r.body.next ? new URL(r.body.next, location.origin).pathname + new URL(r.body.next, location.origin).search : null;
    }
    const latest = Math.max(0, ...out.map((c) => Date.parse(c.updated_at) || 0));
    state.cursor = Math.max(state.cursor || 0, now || 0, latest) || null;
    return { since, rows: out };
  }
  /** Does a case belong in the pins as loaded (the slider's window, the state and category filters)? */
  function inLoadedList(c) {
    const range = windowRange();
    const at = Date.parse(c.reported_at);
    if (!(at >= range.since.getTime() && at < range.until.getTime())) return false;
    if (state.status === "open" && !OPEN.includes(c.status)) return false;
    if (state.status === "done" && !DONE.includes(c.status)) return false;
    if (state.status && !["open", "done"].includes(state.status) && c.status !== state.status) return false;
    return !state.category || categoryMatches(c);
  }
  /** Merge what the poll brought into the page: newer versions replace the copies in the pins
      and the search results, new cases in the window are added; the open card is told. */
  function mergeChanged(list) {
    const added = [];
    let touched = false;
    for (const c of list) {
      const i = state.cases.findIndex((x) => x.id === c.id);
      if (i >= 0) {
        if ((c.version || 0) <= (state.cases[i].version || 0)) continue;
        if (inLoadedList(c)) state.cases[i] = c; else state.cases.splice(i, 1);
        touched = true;
      } else if (inLoadedList(c)) { state.cases.push(c); added.push(c); touched = true; }
      if (state.search) state.search.items = state.search.items.map((x) => (x.id === c.id && (c.version || 0) > (x.version || 0) ? c : x));
    }
    if (touched) refreshPins();
    const card = state.card;
    const open = card && (list.find((c) => c.id === card.id) || state.cardPending);
    state.cardPending = null;
    if (open && open.id === card.id && state.selected === card.id && (open.version || 0) > (card.version || 0)) cardChanged(card, open);
    return added;
  }
  /** The open case card's case was changed by someone else: a quiet note says what changed.
      The card is redrawn with the new version unless the user is filling in one of its forms
      (then the form is kept as typed, and submitting it meets the 412 that asks again). */
  async function cardChanged(before, after) {
    const box = document.getElementById("case-detail");
    const typing = box.querySelector(".action-form:not([hidden])") || box.contains(document.activeElement) && document.activeElement.matches("input, select, textarea")
      || [...box.querySelectorAll("input[type=text]")].some((i) => i.value);
    const changes = caseChanges(before, after);
    if (!typing) await showCase(after.id, false, true);
    if (state.selected !== after.id) return;
    const note = el("div", { class: "live-note", role: "status", "data-live-note": String(after.version), "data-kept": typing ? "1" : undefined },
      el("b", {}, t("updated_by_other", "已被他人更新")), changes.length ? ": " : "",
      changes.map(([key, zh, a, b], i) => el("span", { "data-field": key }, i ? ";" : "", `${t(key, zh)} ${a || "—"} → `, el("strong", {}, b || "—"))),
      typing ? el("div", { class: "small" }, t("kept_form", "您正在填写的表单已保留,提交时会再次提示变化")) : null);
    const old = box.querySelector(".live-note");
    if (old) old.replaceWith(note); else box.querySelector("h3") ? box.querySelector("h3").after(note) : box.prepend(note);
    state.cardPending = typing ? after : null; // redrawn by a later poll once the form is closed
  }
  async function pollOnce(force) {
    {
      if (!force && (document.hidden || state.busy || state.search)) return;
      if (document.querySelector("#queue .action-form:not([hidden])")) return;
      const [answer] = await Promise.all([changedCases(), refreshQueue(true)]);
      const polled = answer ? answer.rows : [];
      const added = mergeChanged(polled);
      // new in a queue, or newly reported anywhere (in or out of the loaded window)
      const reported = answer ? polled.filter((c) => !state.known.has(c.id) && Date.parse(c.reported_at) >= answer.since) : [];
      polled.forEach((c) => state.known.add(c.id));
      const fresh = [...state.kinds.flatMap((k) => state.counts[k] || []).filter((c) => !state.seen.has(c.id)), ...added, ...reported]
        .filter((c, i, all) => !state.seen.has(c.id) && all.findIndex((x) => x.id === c.id) === i);
      fresh.forEach((c) => state.seen.add(c.id));
      const urgent = fresh.filter((c) => c.priority === 1 || c.card === "red" || (c.flags || []).length);
      if (urgent.length) {
        const box = document.getElementById("live");
        box.textContent = `${t("new_urgent", "新的紧急案件")}: ${urgent.map((c) => c.number).join("、")}`;
        box.hidden = false;
      }
    }
  }
  async function refreshQueue(quiet = false) {
    if (!has(`${API}/dispatch/queue/`)) {
      if (!state.schemaOk) { queueState("error", t("schema_failed", "无法读取接口说明,无法显示案件。"), () => location.reload()); return; }
      document.querySelector('[data-tab="queue"]').hidden = true; return;
    }
    const kinds = state.kinds;
    if (!state.search && !quiet) { document.getElementById("queue").replaceChildren(); queueState("loading", t("loading", "加载中…")); }
    const answers = await Promise.all(kinds.map((k) => (k === "mine"
      ? api(`${API}/cases/?mine=true&open=true&page_size=200`) : api(`${API}/dispatch/queue/?kind=${k}`))));
    kinds.forEach((k, i) => {
      state.counts[k] = answers[i].ok ? rows(answers[i].body) : [];
      state.queueStatus[k] = answers[i].ok ? null : answers[i];
    });
    if (!state.landed) {
      // first load: someone with no case of their own lands on the first list that has work
      state.landed = true;
      if (state.queue === "mine" && !(state.counts.mine || []).length) {
        const next = state.kinds.find((k) => (state.counts[k] || []).length);
        if (next) {
          state.queue = next;
          document.querySelectorAll(".queue-filters button").forEach((b) => b.classList.toggle("active", b.dataset.queue === next));
        }
      }
    }
    renderQueue();
  }
  /** Does a case pass the place (grid / community) and category filters of the header? */
  function passesFilters(c) {
    if (state.place.startsWith("g:") && String(c.grid || c.suggested_grid) !== state.place.slice(2)) return false;
    if (state.place.startsWith("c:") && String(c.community) !== state.place.slice(2)) return false;
    return !state.category || categoryMatches(c);
  }
  /** Is the case of the header's category (that code, or one under it)? */
  function categoryMatches(c) {
    const code = c.category_code || "";
    if (code === state.category || code.startsWith(`${state.category}.`)) return true;
    const cat = state.categories.find((x) => x.code === code);
    const parent = cat && state.categories.find((x) => x.id === cat.parent);
    return !!parent && parent.code === state.category;
  }
  const SORTS = {
    deadline: (a, b) => (a.due_at ? Date.parse(a.due_at) : Infinity) - (b.due_at ? Date.parse(b.due_at) : Infinity) || a.id - b.id,
    priority: (a, b) => (a.priority || 3) - (b.priority || 3) || (a.due_at ? Date.parse(a.due_at) : Infinity) - (b.due_at ? Date.parse(b.due_at) : Infinity) || a.id - b.id,
    age: (a, b) => Date.parse(a.reported_at) - Date.parse(b.reported_at) || a.id - b.id,
  };
  function renderQueue() {
    const list = document.getElementById("queue");
    for (const k of state.kinds) {
      const badge = document.querySelector(`[data-count="${k}"]`);
      if (badge) badge.textContent = state.queueStatus[k] ? "!" : String((state.counts[k] || []).filter(passesFilters).length);
    }
    let items;
    let failed = null;
    if (state.search) {
      items = state.search.items.filter(passesFilters);
      failed = state.search.failed;
      list.dataset.kind = "search";
    } else {
      items = (state.counts[state.queue] || []).filter(passesFilters);
      failed = state.queueStatus[state.queue];
      list.dataset.kind = state.queue;
    }
    items = [...items].sort(SORTS[state.sort] || SORTS.deadline);
    state.queueRows = new Map(items.map((c) => [c.id, c]));
    list.replaceChildren(...items.map((c) => queueItem(c)));
    if (failed) queueState("error", failText(failed), state.search ? () => runSearch(state.search.q) : () => refreshQueue());
    else if (!items.length) queueState("empty", state.search ? `${t("no_results", "没有符合条件的案件")}: “${state.search.q}”` : t("empty", "没有案件"));
    else if (state.search) queueState("results", `${t("search_results", "搜索结果")} · ${items.length} ${t("cases", "件")}`);
    else queueState("ready");
  }
  /** Search the cases the caller may see (/cases/?q=): number, address, building, words. */
  async function runSearch(q) {
    q = (q || "").trim();
    document.getElementById("search-clear").hidden = !q;
    if (!q) { state.search = null; renderQueue(); return; }
    document.querySelectorAll(".queue-filters button").forEach((n) => n.classList.remove("active"));
    state.search = { q, items: [], failed: null };
    document.getElementById("queue").replaceChildren();
    queueState("loading", t("loading", "加载中…"));
    const p = new URLSearchParams({ q, page_size: "100" });
    if (state.place.startsWith("g:")) p.set("grid", state.place.slice(2));
    if (state.category) p.set("category", state.category);
    const r = await api(`${API}/cases/?${p}`);
    if (!state.search || state.search.q !== q) return;
    state.search = { q, items: r.ok ? rows(r.body) : [], failed: r.ok ? null : r };
    renderQueue();
  }
  function gridName(id) {
    const f = state.grids && (state.grids.features || []).find((g) => g.id === id);
    return f ? f.properties.name : id ? `#${id}` : "";
  }
  function caseMeta(c) {
    const place = c.grid ? gridName(c.grid) : `${t("outside", "网格外")}${c.suggested_grid ? ` (${t("suggested", "建议")}: ${gridName(c.suggested_grid)})` : ""}`;
    return [statusLabel(c.status), levelLabel(c.level), c.handler_name || c.department_name || "", place,
      c.due_at ? `${t("due_at", "期限")} ${fmtTime(c.due_at)}` : ""].filter(Boolean).join(" · ");
  }
  function queueItem(c) {
    const li = el("li", { "data-case": c.id, class: c.card ? `card-${c.card}` : c.overdue ? "card-late" : "" },
      el("div", { class: "title" }, badges(c),
        el("button", { type: "button", class: "link", onclick: () => showCase(c.id) }, `${c.number} ${c.category_name || ""}`)),
      el("div", { class: "subject" }, c.title || ""),
      el("div", { class: "meta" }, caseMeta(c)),
      actionBar(c, () => afterAction(c.id)));
    return li;
  }

  /** Buttons for the dispatch actions the case's state allows; each opens an inline form that
      posts to /cases/{id}/actions/{name}/ with If-Match. */
  function actionBar(c, onDone) {
    const bar = el("div", { class: "actions" });
    const form = el("div", { class: "action-form", hidden: true });
    const error = el("div", { class: "action-error", role: "alert", hidden: true });
    // the dispatch actions are the managers' (street desk, community cadre, mediation committee:
    // what the server's can_manage allows); others see the case without them
    const allowed = state.manager ? c.allowed_actions || [] : [];
    for (const name of DISPATCH_ACTIONS) {
      if (!allowed.includes(name)) continue;
      // the street desk and outside departments are the top of the chain: nothing to escalate to
      if (name === "escalate" && ["street_dispatcher", "department"].includes(c.level)) continue;
      const key = name === "assign" && c.status !== "reported" ? "reassign" : name;
      const label = t(key, ACTION_ZH[key]);
      bar.append(el("button", { type: "button", "data-action": key,
        onclick: () => openForm(c, name, label, form, error, onDone) }, label));
    }
    return el("div", { class: "action-area" }, bar, form, error);
  }
  function openForm(c, name, label, form, error, onDone) {
    error.hidden = true;
    const note = el("input", { type: "text", name: "note", placeholder: t("note", "备注/理由"), "aria-label": "note" });
    const fields = [];
    let collect = () => ({});
    if (name === "assign") {
      const select = el("select", { name: "member", "aria-label": "member" }, el("option", { value: "" }, t("loading", "加载中…")));
      fields.push(select);
      const why = el("div", { class: "small muted candidate-why" });
      const explain = () => { const opt = select.selectedOptions[0]; why.textContent = opt && opt.dataset.reason ? opt.dataset.reason : ""; };
      select.addEventListener("change", explain);
      candidates(c).then((list) => {
        select.replaceChildren(...(list.length ? list.map((m) => el("option", { value: String(m.member), "data-grid": m.grid || "",
          "data-reason": m.reason || undefined, "data-on-leave": m.on_leave ? "1" : undefined, "data-contact": m.contact || undefined }, `${m.name} · ${m.label}`))
          : [el("option", { value: "" }, t("no_candidates", "无可派遣人员"))]));
        select.dataset.loaded = "1";
        select.dataset.source = has(CANDIDATES) ? "server" : "chain";
        explain();
      });
      fields.push(why);
      // A new deadline with the (re)assignment: the server keeps the stage's old start when a
      // case is reassigned, so an overdue case would stay overdue under its new handler.
      const due = el("input", { type: "datetime-local", name: "due_at", "aria-label": t("new_due", "新时限"), title: t("new_due", "新时限"), min: localInput(new Date(Date.now() + 3600e3)) });
      if (c.overdue || c.card === "red") due.value = localInput(new Date(Date.now() + 86400e3));
      fields.push(el("label", { class: "small" }, t("new_due", "新时限"), " ", due));
      collect = () => {
        const opt = select.selectedOptions[0];
        const body = { member: Number(select.value) };
        if (opt && opt.dataset.grid) body.grid = Number(opt.dataset.grid);
        if (due.value) body.then_deadline = new Date(due.value).toISOString();
        return body;
      };
    } else if (name === "transfer") {
      const select = el("select", { name: "department", "aria-label": "department" });
      fields.push(select);
      departments().then((list) => select.replaceChildren(...list.map((d) => el("option", { value: String(d.id) }, d.name))));
      collect = () => ({ department: Number(select.value) });
    } else if (name === "set_deadline") {
      const input = el("input", { type: "datetime-local", name: "due_at", value: localInput(new Date(Date.now() + 3 * 86400e3)), "aria-label": t("new_due", "新时限"), min: localInput(new Date(Date.now() + 3600e3)) });
      fields.push(input);
      collect = () => ({ due_at: input.value ? new Date(input.value).toISOString() : null });
    }
    const ok = el("button", { type: "submit", class: "primary" }, `${t("confirm", "确认")}${label}`);
    const cancel = el("button", { type: "button", onclick: () => { form.hidden = true; form.replaceChildren(); } }, t("cancel", "取消"));
    const f = el("form", { "data-form": name, onsubmit: async (e) => {
      e.preventDefault();
      const body = { ...collect(), note: note.value };
      const past = [body.due_at, body.then_deadline].some((v) => v && Date.parse(v) <= Date.now());
      if (past) {
        error.replaceChildren(el("div", {}, t("past_due", "期限不能早于现在,请重新选择。")));
        error.hidden = false; error.dataset.status = "past";
        return;
      }
      // 升级 and 督办 reach people above the handler: a second click confirms
      if (CONFIRM_TWICE.includes(name) && ok.dataset.armed !== "1") {
        ok.dataset.armed = "1";
        ok.textContent = `${t("click_again", "再次点击确认")}${label}`;
        return;
      }
      ok.disabled = true;
      try { await submitAction(c, name, body, error, onDone, label); } finally { ok.disabled = false; }
    } }, ...fields, note, ok, cancel);
    form.replaceChildren(f);
    form.hidden = false;
  }
  function localInput(d) {
    d.setMinutes(0, 0, 0);
    return new Date(d.getTime() - d.getTimezoneOffset() * 60e3).toISOString().slice(0, 16);
  }
  const etagOf = (c) => c.etag || `"case-${c.id}-v${c.version}"`;
  async function submitAction(c, name, body, error, onDone, label) {
    if (body.note === "") delete body.note;
    const thenDeadline = body.then_deadline;
    delete body.then_deadline;
    let r = await api(`${API}/cases/${c.id}/actions/${name}/`, { method: "POST", body, headers: { "If-Match": etagOf(c) } });
    if (r.ok) Object.assign(c, r.body, { etag: r.headers.get("ETag") || undefined });
    if (r.ok && thenDeadline) {
      r = await api(`${API}/cases/${c.id}/actions/set_deadline/`, { method: "POST", body: { due_at: thenDeadline }, headers: { "If-Match": etagOf(c) } });
      if (r.ok) Object.assign(c, r.body, { etag: r.headers.get("ETag") || undefined });
    }
    if (r.ok) {
      error.hidden = true;
      toast(`${c.number} ${label || t(name, ACTION_ZH[name])} ✓`);
      await onDone(r.body);
      return;
    }
    const b = r.body || {};
    let msg;
    let changes = [];
    if (r.status === 412) {
      const before = { ...c };
      const fresh = await api(`${API}/cases/${c.id}/`);
      if (fresh.ok) Object.assign(c, fresh.body, { etag: fresh.headers.get("ETag") });
      else if (r.headers.get("ETag")) c.etag = r.headers.get("ETag");
      changes = caseChanges(before, c);
      msg = `${t("e412", "案件已被他人修改(412),卡片已刷新为最新版本,请核对后重试。")}`;
      const area = error.closest("li[data-case], .case-detail");
      const meta = area && area.querySelector(".meta");
      if (meta) meta.textContent = caseMeta(c);
      const submit = error.parentElement.querySelector("form button[type=submit]");
      if (submit) { submit.textContent = `${t("again", "核对后再次确认")}`; submit.dataset.again = "1"; }
    } else if (r.status === 409) {
      msg = `${t("e409", "当前状态不允许此操作(409)。")} ${statusLabel(b.status || c.status)} · ${t("allowed", "可执行")}: ${(b.allowed || []).map((a) => (lang === "en" ? a : ACTION_ZH[a] || eventLabel(a))).join("、") || "—"}`;
    } else {
      const detail = Object.entries(b).filter(([k]) => !["detail", "code"].includes(k)).map(([k, v]) => `${lang === "en" ? k : FIELD_ZH[k] || k}: ${[].concat(v).map((x) => (typeof x === "object" ? JSON.stringify(x) : x)).join(" ")}`).join("; ");
      msg = `${t("failed", "失败")} (${r.status}): ${b.detail || detail || ""}`;
    }
    error.replaceChildren(el("div", {}, msg), changes.length ? el("ul", { class: "changes" }, changes.map(([key, zh, a, b]) => el("li", { "data-field": key },
      el("b", {}, t(key, zh)), `: ${a || "—"} → `, el("strong", {}, b || "—")))) : null,
    r.status === 412 ? el("div", { class: "small" }, t("ask_again", "请核对上面的变化,再次确认才会执行。")) : null);
    error.hidden = false;
    error.dataset.status = String(r.status);
    toast(`${c.number}: ${msg}`, true);
  }
  /** What another dispatcher changed between the version the page showed and the fresh one. */
  function caseChanges(a, b) {
    const fields = [["status_l", "状态", (c) => statusLabel(c.status)], ["due_l", "期限", (c) => (c.due_at ? fmtTime(c.due_at) : "")],
      ["handler_l", "处置人", (c) => c.handler_name || ""], ["level_l", "层级", (c) => levelLabel(c.level)],
      ["dept_l", "部门", (c) => c.department_name || ""], ["card_l", "红黄牌", (c) => (c.card ? t(c.card, c.card === "red" ? "红牌" : "黄牌") : "")],
      ["supervised", "督办", (c) => (c.supervised_at ? fmtTime(c.supervised_at) : "")]];
    return fields.map(([key, zh, f]) => [key, zh, f(a), f(b)]).filter(([, , x, y]) => x !== y);
  }
  async function afterAction(id) {
    await Promise.all([refreshQueue(), refreshCases()]);
    // quiet: the card is redrawn where it is; the map stays put (a late re-centre, landing after
    // the user has moved on to another tab or view, would pull the map away from it)
    if (state.selected === id) await showCase(id, false, true);
  }

  const CANDIDATES = `${API}/cases/{id}/candidates/`;
  async function candidates(c) {
    // The server's list when it has one: ordered by who should normally take this case (the
    // level routing picks for its category first, then up the chain, then below; people on
    // leave last), each with role, grid, open cases (whole territory) and work contact.
    if (has(CANDIDATES)) {
      const r = await api(`${API}/cases/${c.id}/candidates/`);
      if (r.ok) {
        return rows(r.body).filter((m) => m.member !== c.handler).map((m) => ({
          member: m.member, name: m.name, grid: c.grid ? null : m.grid, on_leave: !!m.on_leave, contact: m.contact || "",
          reason: m.reason || "", level: m.level,
          label: [m.role_label || positionLabel(m.role) || levelLabel(m.level), m.grid_name || "", `${t("open_n", "在办")} ${m.open_cases ?? 0}`,
            m.contact || t("no_contact_short", "无联系方式"), m.on_leave ? t("on_leave", "请假") : ""].filter(Boolean).join(" · "),
        }));
      }
    }
    // Without it: the chain over its place (who holds each level now), or, for a case outside
    // every grid, the positions in its suggested grid (the case is placed there).
    const out = [];
    const seen = new Set();
    // workload: open cases each person handles among the cases the page has loaded
    const load = new Map();
    for (const x of state.cases) if (x.handler && OPEN.includes(x.status)) load.set(x.handler, (load.get(x.handler) || 0) + 1);
    const add = (member, name, label, grid) => {
      if (!member || seen.has(member) || member === c.handler) return; // (re)assign to someone else
      seen.add(member);
      const extra = `${t("open_n", "在办")} ${load.get(member) || 0}`;
      out.push({ member, name, label: `${label} · ${extra}`, grid });
    };
    if (c.grid && has(`${API}/chain/`)) {
      const ref = c.household ? `household=${c.household}` : c.unit ? `unit=${c.unit}` : c.building ? `building=${c.building}` : c.compound ? `compound=${c.compound}` : `lon=${c.lon}&lat=${c.lat}`;
      const r = await api(`${API}/chain/?${ref}`);
      // who should normally take it first: the case's own level, then up the chain, then below
      const steps = (r.ok && r.body.steps) || [];
      const at = Math.max(0, steps.findIndex((s) => s.level_name === c.level));
      const ordered = [...steps.slice(at), ...steps.slice(0, at).reverse()];
      for (const s of ordered) {
        if (!s.can_act || s.level_name === "household_head") continue;
        for (const h of s.holders || []) if (!h.on_leave) add(h.member_id, h.name, s.level_label, null);
      }
    } else if ((c.suggested_grid || c.grid) && has(`${API}/positions/`)) {
      const grid = c.suggested_grid || c.grid;
      const r = await api(`${API}/positions/?grid=${grid}&at=${encodeURIComponent(new Date().toISOString())}&page_size=100`);
      for (const p of rows(r.body)) if (!p.on_leave) add(p.member, p.member_name, `${p.position_label} · ${gridName(grid)}`, c.grid ? null : grid);
    }
    return out;
  }
  async function departments() {
    if (!state.departments) {
      const r = await api(`${API}/departments/`);
      state.departments = r.ok ? rows(r.body) : [];
    }
    return state.departments;
  }

  // ------------------------------------------------------------------ case detail
  async function showCase(id, switchTab = true, quiet = false) {
    if (switchTab) selectTab("case");
    state.selected = id;
    const box = document.getElementById("case-detail");
    if (!has(`${API}/cases/{id}/`)) return;
    if (!quiet) { box.className = "muted"; box.dataset.state = "loading"; box.textContent = t("loading", "加载中…"); }
    const [r, ev] = await Promise.all([api(`${API}/cases/${id}/`),
      has(`${API}/cases/{id}/events/`) ? api(`${API}/cases/${id}/events/`) : Promise.resolve({ ok: false })]);
    if (state.selected !== id) return; // another case was chosen meanwhile
    if (!r.ok) {
      box.dataset.state = "error";
      box.replaceChildren(el("span", {}, failText(r)), " ", el("button", { type: "button", class: "retry", onclick: () => showCase(id, false) }, t("retry", "重试")));
      return;
    }
    box.dataset.state = "ready";
    const c = Object.assign(r.body, { etag: r.headers.get("ETag") });
    state.card = c; // the case as the card shows it (live updates compare versions with it)
    const history = ev.ok ? ev.body : { chain: [], events: [], route_reason: c.route_reason };
    const chainSteps = history.chain || [];
    const chain = el("ol", { class: "chain" }, chainSteps.map((s) => el("li", {
      class: `${s.status}${s.level_name === c.level ? " chosen" : ""}`, title: s.status, "data-level": s.level_name },
    el("b", {}, s.level_label || levelLabel(s.level_name)),
    " ", (s.holders || []).map((h) => h.name).join("、") || "—",
    el("span", { class: "muted small" }, ` ${s.object_name || ""}`))));
    const timeline = el("ul", { class: "timeline" }, (history.events || []).map((e) => el("li", { "data-kind": e.kind },
      el("div", {}, el("b", {}, eventLabel(e.kind)), e.to_status && e.to_status !== e.from_status ? ` ${statusLabel(e.from_status) || "∅"} → ${statusLabel(e.to_status)}` : "",
        e.level ? el("span", { class: "muted" }, ` · ${levelLabel(e.level)}`) : null),
      el("div", { class: "muted small" }, `${fmtTime(e.at)} · ${e.actor_name || ""}`),
      e.note ? el("div", {}, noteText(e.note)) : null)));
    box.className = "case-detail";
    box.dataset.case = String(c.id);
    box.replaceChildren(...[ // (a bare null would be printed as "null")
      el("div", { class: "print-head" }, `${t("title", "网格化管理平台 · 街道调度")} · ${t("printed_at", "打印于")} ${new Date().toLocaleString(lang === "en" ? "en-GB" : "zh-CN", { hour12: false })}`),
      el("h3", {}, badges(c), `${c.number} ${c.category_name || ""}`),
      el("button", { type: "button", class: "print-btn no-print", "data-print": "case", onclick: () => printCase() }, `🖨 ${t("print", "打印案件单")}`),
      el("p", { class: "subject" }, c.title || ""),
      el("p", {}, c.description || ""),
      el("p", { class: "meta" }, caseMeta(c)),
      c.outcome ? el("p", {}, el("b", {}, "✔ "), c.outcome) : null,
      actionBar(c, () => afterAction(c.id)),
      signOffArea(c),
      el("h4", {}, t("chain", "流转链路(走过的五位一体链)")), chain,
      el("p", { class: "muted small route-reason" }, routeReason(history.route_reason || c.route_reason || "")),
      el("h4", {}, t("timeline", "处置记录")), timeline].filter(Boolean));
    if (switchTab && window.matchMedia("(max-width: 1024px)").matches) box.scrollIntoView({ block: "start" });
    if (!quiet && c.lon !== null && c.lat !== null && state.map) state.map.easeTo({ center: [c.lon, c.lat], zoom: Math.max(state.map.getZoom(), 16), duration: 300 });
  }

  /** Does the case's closing rule ask for the ethnic-affairs desk (民族宗教工作站确认)? The
      ethnic category (or one under it), or flagged 涉及民族宗教因素 (as the server's rule). */
  const needsSignOff = (c) => /^ethnic(\.|$)/.test(c.category_code || "") || (c.flags || []).includes("ethnic_religious");
  const SIGN_OFFS = `${API}/community/sign-offs/`;
  /** The ethnic-affairs desk's own action on a case: its sign-off (确认稳定, or 尚未稳定 with
      the reason), with the standing (latest) sign-off shown. Only the desk sees the buttons. */
  function signOffArea(c) {
    if (!needsSignOff(c) || !has(SIGN_OFFS)) return null;
    const box = el("div", { class: "sign-off", "data-sign-off": "loading" }, el("h4", {}, t("sign_off", "民族宗教工作站确认(会签)")));
    const standing = el("p", { class: "small standing" }, t("loading", "加载中…"));
    box.append(standing);
    const show = async () => {
      const r = await api(`${SIGN_OFFS}?case=${c.id}&page_size=100`);
      if (!r.ok) { standing.replaceChildren(failText(r), " ", el("button", { type: "button", class: "retry", onclick: show }, t("retry", "重试"))); box.dataset.signOff = "error"; return; }
      const list = rows(r.body).sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at) || b.id - a.id);
      const last = list[0];
      box.dataset.signOff = last ? (last.confirmed ? "confirmed" : "refused") : "none";
      standing.textContent = last
        ? `${last.confirmed ? t("signed_ok", "已确认稳定") : t("signed_no", "尚未稳定")} · ${fmtTime(last.created_at)}${last.note ? ` · ${last.note}` : ""}`
        : t("not_signed", "尚未会签(结案前需要民族宗教工作站确认)");
    };
    show();
    if (document.body.dataset.role !== "ethnic") return box;
    const note = el("input", { type: "text", name: "sign_note", placeholder: t("sign_note", "说明(尚未稳定时必填)"), "aria-label": t("sign_note", "说明(尚未稳定时必填)") });
    const error = el("div", { class: "action-error", role: "alert", hidden: true });
    const send = async (confirmed, btn) => {
      if (!confirmed && !note.value.trim()) { error.textContent = t("sign_why", "请说明为何尚未稳定。"); error.hidden = false; note.focus(); return; }
      btn.disabled = true;
      const r = await api(SIGN_OFFS, { method: "POST", body: { case: c.id, confirmed, note: note.value.trim() } });
      btn.disabled = false;
      if (!r.ok) {
        const b = r.body || {};
        const detail = b.detail || Object.entries(b).map(([k, v]) => `${lang === "en" ? k : FIELD_ZH[k] || k}: ${[].concat(v).join(" ")}`).join("; ");
        error.textContent = `${t("failed", "失败")} (${r.status}): ${detail}`; error.hidden = false; error.dataset.status = String(r.status);
        toast(`${c.number}: ${error.textContent}`, true);
        return;
      }
      error.hidden = true; note.value = "";
      toast(`${c.number} ${t("sign_off_done", "会签")}: ${confirmed ? t("signed_ok", "已确认稳定") : t("signed_no", "尚未稳定")} ✓`);
      await show();
    };
    const yes = el("button", { type: "button", class: "primary", "data-action": "sign_off", onclick: () => send(true, yes) }, t("sign_yes", "确认稳定"));
    const no = el("button", { type: "button", "data-action": "sign_off_refuse", onclick: () => send(false, no) }, t("sign_no", "尚未稳定"));
    box.append(el("div", { class: "actions" }, yes, no, note), error);
    return box;
  }

  /** Print the case sheet: the print stylesheet shows only the case detail (chain, timeline). */
  function printCase() {
    document.body.classList.add("printing-case");
    const done = () => { document.body.classList.remove("printing-case"); window.removeEventListener("afterprint", done); };
    window.addEventListener("afterprint", done);
    window.print();
  }

  // ------------------------------------------------------------------ exports
  function lastCompleteMonth(back = 1) { return monthLabel(monthStart(back)); }
  async function setupExports() {
    const tab = document.querySelector('[data-tab="exports"]');
    const monthly = has(`${API}/reports/monthly/`);
    const ledgers = has(`${API}/reports/ledgers/{grid}/`);
    const layers = has(`${API}/reports/export/{layer}/`);
    if (!monthly && !ledgers && !layers) { tab.hidden = true; return; }
    const month = document.getElementById("report-month");
    for (let back = 1; back <= 12; back += 1) month.append(el("option", { value: lastCompleteMonth(back) }, lastCompleteMonth(back)));
    const scope = document.getElementById("report-scope");
    const streets = has(`${API}/streets/`) ? await api(`${API}/streets/`) : { ok: false };
    for (const st of streets.ok ? rows(streets.body) : []) scope.append(el("option", { value: `street=${st.code}` }, `${st.name} (${t("street_all", "全街道")})`));
    for (const cm of state.communities) scope.append(el("option", { value: `community=${cm.code}` }, cm.name));
    const reportLinks = () => {
      const q = `${scope.value}&month=${month.value}`;
      document.getElementById("report-links").replaceChildren(...(monthly && scope.value ? ["xlsx", "pdf"].map((f) => el("a", {
        href: `${API}/reports/monthly/?${q}&format=${f}`, download: "", "data-export": `monthly-${f}`, class: "button" }, `${month.value} ${f.toUpperCase()}`)) : []));
    };
    month.addEventListener("change", reportLinks); scope.addEventListener("change", reportLinks);
    reportLinks();
    if (!monthly) document.getElementById("report-links").closest(".tab").querySelector("h3").hidden = true;
    const year = new Date().getFullYear();
    document.getElementById("ledger-links").replaceChildren(...(ledgers ? (state.grids.features || []).map((g) => el("li", {},
      el("a", { href: `${API}/reports/ledgers/${encodeURIComponent(g.properties.code)}/?year=${year}`, download: "", "data-export": `ledger-${g.properties.code}` },
        `${g.properties.name} · ${year}`))) : []));
    const LAYER_NAMES = { grids: ["网格", "Grids"], compounds: ["小区", "Compounds"], buildings: ["楼栋", "Buildings"], places: ["场所", "Places"], cases: ["案件", "Cases"] };
    document.getElementById("layer-links").replaceChildren(...(layers ? Object.entries(LAYER_NAMES).map(([layer, names]) => el("tr", { "data-layer": layer },
      el("td", {}, names[lang === "en" ? 1 : 0]),
      ...["geojson", "gpkg", "shp"].map((f) => el("td", {}, el("a", { href: `${API}/reports/export/${layer}/?format=${f}`, download: "", "data-export": `${layer}-${f}` }, f)))) ) : []));
  }

  /** A page-wide problem (schema, tiles) in the banner at the top, with a retry. */
  function banner(text, retry) {
    const box = document.getElementById("banner");
    document.getElementById("banner-text").textContent = text;
    box.hidden = false;
    document.getElementById("banner-retry").onclick = async () => { box.hidden = true; await retry(); };
  }

  // ------------------------------------------------------------------ visits
  async function refreshVisits() {
    const table = document.getElementById("coverage");
    const now = new Date();
    const from = ymd(new Date(now.getFullYear(), now.getMonth(), 1));
    const to = ymd(new Date(now.getFullYear(), now.getMonth() + 1, 0));
    if (has(`${API}/visits/coverage/`)) {
      document.getElementById("coverage-range").textContent = `${from} – ${to}`;
      const r = await api(`${API}/visits/coverage/?group=grid&from=${from}&to=${to}`);
      const list = r.ok ? rows(r.body) : [];
      table.replaceChildren(
        el("tr", {}, ["grid|网格", "due|应访", "done_n|已访", "open_n|未访", "overdue|超期", "missed|漏访", "far_off|定位偏离", "rate|完成率"].map((k) => { const [key, zh] = k.split("|"); return el("th", {}, t(key, zh)); })),
        ...list.map((g) => el("tr", { "data-grid": g.id }, el("td", {}, g.name), el("td", {}, g.due), el("td", {}, g.done), el("td", {}, g.open),
          el("td", {}, g.overdue), el("td", {}, g.missed), el("td", {}, g.flagged),
          el("td", {}, el("span", { class: "bar", style: `--w:${Math.round((g.rate || 0) * 100)}%` }), pct(g.rate)))));
    } else {
      table.closest(".tab").querySelector("h3").hidden = true; table.hidden = true;
    }
    await refreshMissing(now);
  }
  /** Who has not filed today's 一日一报 (or the 五员's screening report): each with their role,
      where they serve (grid, or compound/building/unit and its grid), a contact when the API gives
      one, and 催报: the server's chase action when the schema lists one, else a reminder copied
      for the phone/WeChat and the person marked 已催 for the day in this browser. */
  async function refreshMissing(now = new Date()) {
    const missing = document.getElementById("missing");
    if (!has(`${API}/daily-reports/missing/`)) { missing.previousElementSibling.hidden = true; return; }
    const day = ymd(now);
    const r = await api(`${API}/daily-reports/missing/?date=${day}`);
    if (!r.ok) {
      document.getElementById("missing-count").textContent = "!";
      missing.replaceChildren(el("p", { class: "list-state", "data-state": "error" }, failText(r), " ",
        el("button", { type: "button", class: "retry", onclick: () => refreshMissing(now) }, t("retry", "重试"))));
      return;
    }
    const list = rows(r.body);
    state.missingRows = list;
    document.getElementById("missing-count").textContent = String(list.length);
    await loadPlaceNames(list);
    const groups = new Map();
    for (const m of list) {
      const type = (m.positions && m.positions[0] && m.positions[0].position_type) || ((m.screening || []).length ? "five" : "other");
      if (!groups.has(type)) groups.set(type, []);
      groups.get(type).push(m);
    }
    const order = ["grid_member", "community_cadre", "property_manager", "owners_committee", "building_head", "unit_head", "five"];
    const keys = [...groups.keys()].sort((a, b) => (order.indexOf(a) + 99) % 99 - (order.indexOf(b) + 99) % 99);
    const chased = chasedToday(day);
    missing.replaceChildren(...keys.map((k, i) => el("details", { open: i < 2 || undefined, "data-position": k },
      el("summary", {}, `${k === "five" ? t("five", "五员(排查日报)") : positionLabel(k)} (${groups.get(k).length})`),
      el("ul", { class: "missing-list" }, groups.get(k).map((m) => missingRow(m, day, chased))))));
  }
  function missingRow(m, day, chased) {
    const roles = [...(m.positions || []).map((p) => (POSITIONS[p.position_type] ? positionLabel(p.position_type) : p.position_label || p.position_type)),
      ...(m.screening || []).map((s) => `${t("five_short", "五员")}·${s.role_name || s.role}`)];
    if (m.role_label && !roles.length) roles.push(m.role_label);
    const places = [...new Set((m.positions || []).map((p) => placeName(p.target_type, p.target_id)).filter(Boolean))];
    if (m.grid_name && !places.some((x) => x.includes(m.grid_name))) places.unshift(m.grid_name);
    const phone = m.phone || m.contact || "";
    // chased today: the server's record when the rows carry it, else this browser's note
    const serverChased = m.chased_at || (m.chased && typeof m.chased === "object" ? m.chased.chased_at || true : m.chased);
    const done = !!serverChased || chased.has(String(m.member));
    // the server's 催报 is the managers' (street desk, cadres, mediation committee): not offered
    // to roles it would refuse (403); they see whether someone was chased
    const mayChase = state.manager || !CHASE_PATHS.some((p) => has(p));
    const btn = !mayChase ? el("span", { class: "chase muted small" }, done ? t("chased", "已催") : "") : el("button", { type: "button", class: "chase", "data-chase": m.member, disabled: done || undefined,
      onclick: () => chase(m, day, btn, li) }, done ? `${t("chased", "已催")}${typeof serverChased === "string" ? ` ${fmtTime(serverChased).slice(-5)}` : ""}` : t("chase", "催报"));
    const li = el("li", { "data-member": m.member, class: done ? "chased" : "" },
      el("b", { class: "who" }, m.name || m.username),
      el("span", { class: "role" }, roles.join("、") || "—"),
      el("span", { class: "where" }, places.join("、") || "—"),
      phone ? el("a", { class: "contact", href: `tel:${phone}` }, phone) : el("span", { class: "contact muted", title: t("no_contact", "接口未提供联系方式") }, t("no_contact_short", "无联系方式")),
      btn);
    return li;
  }
  const CHASE_PATHS = [`${API}/daily-reports/chase/`, `${API}/daily-reports/missing/chase/`];
  function chasedToday(day) {
    try { return new Set(JSON.parse(localStorage.getItem(`gridsvc.chased.${day}`) || "[]")); } catch (e) { return new Set(); }
  }
  async function chase(m, day, btn, li) {
    const name = m.name || m.username;
    const endpoint = CHASE_PATHS.find((p) => has(p));
    if (endpoint) {
      btn.disabled = true;
      const r = await api(endpoint, { method: "POST", body: { member: m.member, date: day } });
      if (!r.ok) { btn.disabled = false; toast(`${t("chase", "催报")} ${name}: ${failText(r)}`, true); return; }
      // 201 = sent now; 200 = already chased today (the server sends no second message)
      toast(`${t("chase", "催报")} ✓ ${name}${r.status === 200 ? ` · ${t("chased_before", "今日已催过,未重复发送")}` : ` · ${t("chase_sent", "已发送站内提醒")}`}`);
    } else {
      // no chase action on the server yet: a reminder to send by phone / WeChat, copied
      const text = lang === "en" ? `Reminder: please file today's (${day}) daily report.` : `${name}您好:请尽快提交今日(${day})的一日一报。`;
      try { await navigator.clipboard.writeText(text); } catch (e) { /* no clipboard permission: the toast shows the text */ }
      toast(`${t("chase", "催报")} ${name} · ${t("chase_copied", "提醒已复制")}: ${text}`);
    }
    const set = chasedToday(day);
    set.add(String(m.member));
    try { localStorage.setItem(`gridsvc.chased.${day}`, JSON.stringify([...set])); } catch (e) { /* private mode */ }
    btn.textContent = t("chased", "已催"); btn.disabled = true; li.classList.add("chased");
  }
  /** Names of the places people serve (compounds, buildings with their grid, units' buildings),
      asked once, only for the kinds the list needs. */
  async function loadPlaceNames(list) {
    const need = new Set(list.flatMap((m) => (m.positions || []).map((p) => p.target_type)));
    state.placeNames = state.placeNames || {};
    const names = state.placeNames;
    const fetchAll = async (kind, path) => {
      if (names[kind] || !has(`${API}/${path}/`)) return;
      const out = [];
      let url = `${API}/${path}/?page_size=500`;
      for (let page = 0; url && page < 10; page += 1) { // the page size is capped at 500
        const r = await api(url);
        if (!r.ok) break;
        out.push(...rows(r.body));
        url = r.body && r.body.next ? new URL(r.body.next, location.origin).pathname + new URL(r.body.next, location.origin).search : null;
      }
      names[kind] = new Map(out.map((x) => [x.id, x.properties ? { id: x.id, ...x.properties } : x]));
    };
    await Promise.all([
      need.has("compound") ? fetchAll("compound", "compounds") : null,
      need.has("building") || need.has("unit") ? fetchAll("building", "buildings") : null,
      need.has("unit") ? fetchAll("unit", "units") : null,
    ]);
  }
  function placeName(type, id) {
    const names = state.placeNames || {};
    if (type === "grid") return gridName(id);
    if (type === "community") { const cm = state.communities.find((x) => x.id === id); return cm ? cm.name : ""; }
    if (type === "compound") { const x = names.compound && names.compound.get(id); return x ? x.name : ""; }
    const building = (bid) => { const b = names.building && names.building.get(bid); return b ? `${b.name}${b.grid ? `(${gridName(b.grid)})` : ""}` : ""; };
    if (type === "building") return building(id);
    if (type === "unit") { const u = names.unit && names.unit.get(id); return u ? `${building(u.building)} ${u.number}${lang === "en" ? "" : "单元"}` : ""; }
    return "";
  }

  // ------------------------------------------------------------------ 民族团结 (issue 20)
  const UNITY = { day: `${API}/community/screening/day/`, petitions: `${API}/community/petitions/`, activities: `${API}/community/activities/map/` };
  /** The 民族团结 view: the 五员's 一日一报 today (filed, 零报告, missing with 催报), open 信访,
      this year's activities (a map layer). Shown only when the server answers: a 403 (a role
      that does not see this work) hides the tab. */
  async function setupUnity() {
    const tab = document.querySelector('[data-tab="unity"]');
    if (!has(UNITY.day) && !has(UNITY.petitions)) return;
    const [day, petitions] = await Promise.all([has(UNITY.day) ? api(UNITY.day) : null, has(UNITY.petitions) ? api(`${UNITY.petitions}?status=open&page_size=100`) : null]);
    if ([day, petitions].every((r) => !r || r.status === 403)) return;
    tab.hidden = false;
    renderScreening(day);
    renderPetitions(petitions);
    communityLedgerLinks();
    await Promise.all([has(UNITY.activities) ? addActivities() : null, refreshVenues(), refreshPairings(), refreshRatings()]);
  }
  function unityState(box, r, retry) {
    box.replaceChildren(el("p", { class: "list-state", "data-state": "error" }, r.status === 403 ? t("forbidden", "您的岗位无权查看") : failText(r), " ",
      r.status === 403 ? null : el("button", { type: "button", class: "retry", onclick: retry }, t("retry", "重试"))));
  }
  function renderScreening(r) {
    const box = document.getElementById("screening");
    if (!r) { box.closest("section").hidden = true; return; }
    if (!r.ok) { unityState(box, r, async () => renderScreening(await api(UNITY.day))); return; }
    const d = r.body;
    const kpi = (key, zh, v) => el("div", { class: "kpi", "data-kpi": key }, el("b", {}, String(v)), el("span", {}, t(key, zh)));
    const known = new Map((state.missingRows || []).map((m) => [m.member, m]));
    const today = d.date || ymd(new Date());
    const chased = chasedToday(today);
    box.dataset.state = "ready";
    box.replaceChildren(
      el("p", { class: "summary" }, d.summary || ""),
      el("div", { class: "kpis" }, kpi("expected", "应报", d.expected), kpi("reported", "已报", d.reported), kpi("zero_reports", "零报告", d.zero_reports),
        kpi("findings", "发现问题", d.findings), kpi("missing_n", "未报", (d.missing || []).length), kpi("persons_year", "今年人次", d.persons_this_year)),
      (d.missing || []).length
        ? el("ul", { class: "missing-list", id: "screening-missing" }, d.missing.map((m) => missingRow({ ...(known.get(m.id) || {}), member: m.id, username: m.username, name: (known.get(m.id) || {}).name || m.name || m.username }, today, chased)))
        : el("p", { class: "list-state", "data-state": "empty" }, d.expected ? t("all_filed", "今日五员均已报告") : t("no_team", "辖区内暂无五员队伍")));
  }
  function renderPetitions(r) {
    const box = document.getElementById("petitions");
    if (!r) { box.closest("section").hidden = true; return; }
    if (!r.ok) { unityState(box, r, async () => renderPetitions(await api(`${UNITY.petitions}?status=open&page_size=100`))); return; }
    const list = rows(r.body);
    document.getElementById("petitions-count").textContent = String(r.body.count ?? list.length);
    box.dataset.state = list.length ? "ready" : "empty";
    box.replaceChildren(list.length ? el("ul", { class: "plain-list" }, list.map((p) => el("li", { "data-petition": p.id },
      el("div", {}, el("b", {}, p.subject || ""), " ", p.group_risk ? el("span", { class: "badge red" }, t("group_risk", "群体访风险")) : null,
        p.ethnic_religious ? el("span", { class: "badge flag" }, flagLabel("ethnic_religious")) : null),
      el("div", { class: "meta" }, [p.date, p.petitioner, p.group_size > 1 ? `${p.group_size} ${t("persons", "人")}` : "", p.grid ? gridName(p.grid) : ""].filter(Boolean).join(" · "),
        p.case ? el("button", { type: "button", class: "link", onclick: () => showCase(p.case) }, ` ${t("t_case", "案件")} ›`) : null))))
      : el("p", { class: "list-state", "data-state": "empty" }, t("no_petitions", "暂无办理中的信访")));
  }
  // ------------------------------------------------------------------ 结对帮扶, 评比, 社区台账 (issue 20)
  const PAIRING_KIND = { help: ["结对帮扶", "Help pairing"], co_building: ["共建单位", "Co-building unit"], party_member: ["在职党员报到", "Party member reporting"], wish: ["微心愿", "Micro-wish"] };
  const RATING_TITLE = { five_star: ["五星级文明户", "Five-star household"], good_daughter_in_law: ["好媳妇", "Good daughter-in-law"], good_mother_in_law: ["好婆婆", "Good mother-in-law"], service_star: ["服务之星", "Service star"] };
  const label2 = (table, key) => (table[key] ? table[key][lang === "en" ? 1 : 0] : key || "");
  const PAIRINGS = `${API}/community/pairings/`;
  const RATINGS = `${API}/community/ratings/`;
  const COMMUNITY_LEDGER = `${API}/community/ledgers/{community}/`;
  const PAIRING_PAGE = 50;
  /** Community staff on the page: the street office and the community cadres (the server
      scopes the lists and answers 403 to anyone else, shown as such). */
  const communityStaff = () => state.desk || state.roles.has("community_cadre");
  /** Where a row is: its grid by name, else its community; the household only by the id the
      REST list gives (the page shows no more of a household than the list does). */
  const rowPlace = (x) => (x.grid ? gridName(x.grid) : x.community ? placeName("community", x.community) : "");
  const householdRef = (id) => (id ? `${t("household_n", "户")} #${id}` : "");
  /** 结对帮扶 (and 共建单位, 在职党员报到, 微心愿): kind, member or partner, household, and the
      help records under each (count and the last day, as the list gives them). */
  async function refreshPairings() {
    const section = document.getElementById("pairing-section");
    if (!has(PAIRINGS) || !communityStaff()) return;
    section.hidden = false;
    const box = document.getElementById("pairings");
    const r = await api(`${PAIRINGS}?page_size=${PAIRING_PAGE}`);
    if (!r.ok) { unityState(box, r, refreshPairings); document.getElementById("pairings-count").textContent = "!"; return; }
    const list = rows(r.body);
    const total = r.body.count ?? list.length;
    document.getElementById("pairings-count").textContent = String(total);
    box.dataset.state = list.length ? "ready" : "empty";
    box.replaceChildren(list.length ? el("ul", { class: "plain-list pairing-list" }, list.map((p) => {
      const count = p.help_count ?? 0; // the list carries the help records' count and last day
      const who = p.partner || p.member_name || (p.member ? `${t("member", "成员")} #${p.member}` : "");
      return el("li", { "data-pairing": p.id, "data-kind": p.kind },
        el("div", {}, el("span", { class: "badge" }, label2(PAIRING_KIND, p.kind)), " ", el("b", {}, who), p.ended ? el("span", { class: "badge late" }, `${t("ended", "已结束")} ${p.ended}`) : null),
        el("div", { class: "meta" }, [householdRef(p.household), rowPlace(p), p.started].filter(Boolean).join(" · ")),
        el("div", { class: "meta pairing-help", "data-help-count": count },
          count ? `${t("help_n", "帮扶记录")} ${count} · ${t("last_help", "最近帮扶")} ${p.last_help_on}` : t("no_help", "暂无帮扶记录")));
    }), total > list.length ? el("li", { class: "muted" }, `+${total - list.length} ${t("more_rows", "条未显示")}`) : null)
      : el("p", { class: "list-state", "data-state": "empty" }, t("no_pairings", "暂无结对帮扶")));
  }
  /** This year's 评比 (五星级文明户, 好媳妇 …): title, stars, household and grid as listed;
      revoked ones struck through, revised ones marked (动态管理). */
  async function refreshRatings() {
    const section = document.getElementById("rating-section");
    if (!has(RATINGS) || !communityStaff()) return;
    section.hidden = false;
    const box = document.getElementById("ratings");
    const year = new Date().getFullYear();
    const r = await api(`${RATINGS}?year=${year}&page_size=200`);
    if (!r.ok) { unityState(box, r, refreshRatings); document.getElementById("ratings-count").textContent = "!"; return; }
    const list = rows(r.body);
    const total = r.body.count ?? list.length;
    document.getElementById("ratings-count").textContent = `${year} · ${total}`;
    box.dataset.state = list.length ? "ready" : "empty";
    box.replaceChildren(list.length ? el("ul", { class: "plain-list rating-list" }, list.map((x) => el("li", { "data-rating": x.id, "data-revoked": x.revoked ? "1" : null, class: x.revoked ? "rating-revoked" : null },
      el("div", {}, el("b", {}, label2(RATING_TITLE, x.title)), " ", "★".repeat(Math.max(0, Math.min(5, x.stars || 0))),
        x.revoked ? [" ", el("span", { class: "badge red" }, t("revoked", "已撤销"))] : null,
        x.revised_at ? [" ", el("span", { class: "badge", title: fmtTime(x.revised_at) }, `${t("revised", "已调整")} ${fmtTime(x.revised_at)}`)] : null),
      el("div", { class: "meta" }, [householdRef(x.household), rowPlace(x)].filter(Boolean).join(" · ")))),
    total > list.length ? el("li", { class: "muted" }, `+${total - list.length} ${t("more_rows", "条未显示")}`) : null)
      : el("p", { class: "list-state", "data-state": "empty" }, t("no_ratings", "本年度暂无评比")));
  }
  /** A 台账 (xlsx) link per community the caller reads, downloaded with the page's session
      like the monthly report and the grid ledgers (the server masks and audits it). */
  function communityLedgerLinks() {
    const box = document.getElementById("community-ledgers");
    if (!has(COMMUNITY_LEDGER) || !communityStaff() || !state.communities.length) return;
    box.closest("section").hidden = false;
    const year = new Date().getFullYear();
    box.replaceChildren(...state.communities.map((cm) => el("li", {}, el("a", {
      href: `${API}/community/ledgers/${encodeURIComponent(cm.id)}/?year=${year}`, download: "", "data-export": `community-ledger-${cm.code || cm.id}`, class: "button" },
    `${cm.name} · ${t("ledger_short", "台账")} ${year}`))));
  }
  /** This year's activities (座谈会, 公益日, 节日 …) as a map layer, off by default. */
  async function addActivities() {
    const r = await api(UNITY.activities);
    const label = document.getElementById("show-activities").closest("label");
    label.hidden = false;
    const info = document.getElementById("activities-info");
    if (!r.ok) { info.replaceChildren(el("span", { class: "state-error" }, failText(r))); return; }
    const feats = r.body.features || [];
    state.activities = feats;
    document.getElementById("activities-count").textContent = `(${feats.length})`;
    const people = feats.reduce((n, f) => n + (f.properties.participants || 0), 0);
    const materials = feats.reduce((n, f) => n + (f.properties.materials || 0), 0);
    info.textContent = `${t("this_year", "今年")} ${feats.length} ${t("times", "场")} · ${people} ${t("person_times", "人次")} · ${t("materials", "宣传资料")} ${materials}`;
    const map = state.map;
    map.addSource("activities", { type: "geojson", data: r.body });
    map.addLayer({ id: "activities", type: "circle", source: "activities", layout: { visibility: "none" }, paint: {
      "circle-radius": ["interpolate", ["linear"], ["get", "participants"], 0, 4, 100, 11],
      "circle-color": "#b7791f", "circle-opacity": 0.8, "circle-stroke-color": "#5f370e", "circle-stroke-width": 1 } },
    map.getLayer("compound-labels") ? "compound-labels" : undefined); // under the names
    map.on("click", "activities", (e) => {
      const p = e.features[0].properties;
      const photos = el("div", { class: "activity-photos", "data-activity": p.id, "data-state": "loading", style: "display:flex;flex-wrap:wrap;gap:4px;margin-top:4px" });
      const popup = new maplibregl.Popup({ maxWidth: "260px" }).setLngLat(e.lngLat).setDOMContent(el("div", { class: "popup" }, el("b", {}, p.title || ""),
        el("div", {}, `${p.kind_name || p.kind} · ${p.date}`), el("div", { class: "muted" }, `${t("participants", "参与")} ${p.participants} · ${t("materials", "宣传资料")} ${p.materials}`), photos)).addTo(map);
      activityPhotos(p.id, photos, popup);
    });
    document.getElementById("unity-show-map").hidden = false;
  }

  /** An activity's photos as thumbnails in its popup: the activity (`/community/activities/{id}/`,
      its `photos`) and each file (`…/photos/{photo}/file/`, served only to those who read the
      activity) fetched with the page's session like every API call, shown from a blob: URL (the
      CSP's img-src allows blob:, and the file's own sandbox policy never applies to an image
      drawn here); the URLs are revoked when the popup closes. */
  async function activityPhotos(id, box, popup) {
    const r = has(`${API}/community/activities/{id}/`) ? await api(`${API}/community/activities/${id}/`) : null;
    const list = r && r.ok ? (r.body.photos || []).slice(0, 6) : [];
    const urls = [];
    popup.on("close", () => urls.forEach((u) => URL.revokeObjectURL(u)));
    const thumbs = await Promise.all(list.map(async (ph, i) => {
      let res;
      try { res = await fetch(new URL(ph.url, location.href).pathname, { credentials: "same-origin" }); } catch (err) { return null; }
      if (!res.ok) return null;
      const u = URL.createObjectURL(await res.blob());
      urls.push(u);
      return el("img", { src: u, alt: `${t("photo", "照片")} ${i + 1}`, "data-photo": ph.id, width: 72, height: 54, style: "object-fit:cover;border-radius:3px" });
    }));
    box.replaceChildren(...thumbs.filter(Boolean));
    box.dataset.state = box.childElementCount ? "ready" : "empty";
  }

  // ------------------------------------------------------------------ 宗教场所共同走访 (issue 20 item 6)
  const VENUE_TASKS = `${API}/community/venue-tasks/`;
  const VENUE_VISITS = `${API}/community/venue-visits/`;
  // by value, so statuses the server adds later (逾期, 漏访) are shown by their label
  const VENUE_STATUS = { open: ["待走访", "To visit", ""], overdue: ["逾期", "Overdue", "red"], missed: ["漏访", "Missed", "late"], done: ["已走访", "Visited", "ok"] };
  function venueStatusBadge(status) {
    const s = VENUE_STATUS[status] || [status, status, ""];
    return el("span", { class: `badge ${s[2]}`.trim(), "data-status": status }, lang === "en" ? s[1] : s[0]);
  }
  /** This month's and last month's joint venue visits (每个月和清真寺共同走访) per venue: due
      date, who is to go, status (逾期 in red), the venue's last visit; the venues on the map
      with their last visit, ringed in red while a visit is overdue. For the street office and
      the community cadres (the server scopes the list). */
  async function refreshVenues() {
    const section = document.getElementById("venue-section");
    if (!has(VENUE_TASKS) || !(state.manager || state.roles.has("ethnic_affairs_desk"))) return;
    section.hidden = false;
    const box = document.getElementById("venues");
    const now = new Date();
    const periods = [[monthLabel(now), t("this_month", "本月")], [monthLabel(new Date(now.getFullYear(), now.getMonth() - 1, 1)), t("last_month", "上月")]];
    const [answers, visits] = await Promise.all([Promise.all(periods.map(([p]) => api(`${VENUE_TASKS}?period=${p}&page_size=200`))),
      has(VENUE_VISITS) ? api(`${VENUE_VISITS}?page_size=500`) : null]);
    const failed = answers.find((r) => !r.ok);
    if (failed) { unityState(box, failed, refreshVenues); document.getElementById("venues-count").textContent = "!"; return; }
    const last = new Map();
    for (const v of visits && visits.ok ? rows(visits.body) : []) {
      const seen = last.get(v.place);
      if (!seen || v.date > seen.date) last.set(v.place, v);
    }
    const tasks = answers.map((r) => rows(r.body));
    state.venueInfo = new Map();
    for (const task of tasks.flat()) if (!state.venueInfo.has(task.place)) state.venueInfo.set(task.place, { last: last.get(task.place) || null, task: null });
    for (const task of tasks[0]) state.venueInfo.get(task.place).task = task;
    for (const [place, v] of last) if (!state.venueInfo.has(place)) state.venueInfo.set(place, { last: v, task: null });
    document.getElementById("venues-count").textContent = String(tasks[0].length);
    const item = (task) => {
      const seen = last.get(task.place);
      const who = task.assigned_member_name || levelLabel(task.assigned_level) || "—";
      return el("li", { "data-venue-task": task.id, "data-place": task.place, "data-status": task.status, class: task.status === "overdue" ? "venue-late" : null },
        el("div", {}, el("b", {}, task.place_name || ""), " ", venueStatusBadge(task.status)),
        el("div", { class: "meta" }, `${t("due", "期限")} ${task.due_on} · ${t("assignee", "走访人")} ${who} · ${t("last_visit", "最近走访")} ${seen ? seen.date : t("never_visited", "暂无记录")}`,
          seen && seen.hazard_found ? el("span", { class: "badge red" }, t("hazard", "发现隐患")) : null,
          placeFeature(task.place) ? [" ", el("button", { type: "button", class: "link", onclick: () => showVenue(task.place) }, `${t("on_map", "地图")} ›`)] : null));
    };
    box.dataset.state = tasks.flat().length ? "ready" : "empty";
    box.replaceChildren(...(tasks.flat().length ? periods.map(([p, label], i) => (tasks[i].length
      ? el("div", { "data-period": p }, el("h4", {}, `${label} ${p}`), el("ul", { class: "plain-list venue-list" }, tasks[i].map(item))) : null))
      : [el("p", { class: "list-state", "data-state": "empty" }, t("no_venue_tasks", "暂无宗教场所共同走访任务"))]));
    markVenues();
  }
  const placeFeature = (id) => ((state.placesData && state.placesData.features) || []).find((f) => Number(f.id ?? f.properties.id) === Number(id));
  /** The venues on the map: a label with the last visit (from z14) and a red ring while overdue. */
  function markVenues() {
    const map = state.map;
    if (!state.placesData || !map.getSource("places")) return;
    for (const f of state.placesData.features) {
      const v = state.venueInfo.get(Number(f.id ?? f.properties.id));
      if (!v) continue;
      f.properties.id = Number(f.id ?? f.properties.id);
      f.properties.task_status = v.task ? v.task.status : "";
      f.properties.visit_label = `${f.properties.name}\n${t("last_visit", "最近走访")} ${v.last ? v.last.date.slice(5) : t("never_visited", "暂无记录")}`;
    }
    map.getSource("places").setData(state.placesData);
    if (map.getLayer("venue-marks")) return;
    map.addLayer({ id: "venue-marks", type: "circle", source: "places", minzoom: 12, filter: ["==", ["get", "task_status"], "overdue"], paint: {
      "circle-radius": ["interpolate", ["linear"], ["zoom"], 12, 7, 17, 13], "circle-color": "rgba(0,0,0,0)",
      "circle-stroke-color": "#c53030", "circle-stroke-width": 3 } }, "places");
    map.addLayer({ id: "venue-labels", type: "symbol", source: "places", minzoom: 14, filter: ["has", "visit_label"],
      layout: { "text-field": ["get", "visit_label"], "text-font": ["Noto Sans CJK SC Regular"], "text-size": 11, "text-offset": [0, 1.4], "text-anchor": "top" },
      paint: { "text-color": "#44337a", "text-halo-color": "rgba(255,255,255,0.95)", "text-halo-width": 1.6 } });
    document.getElementById("show-places").addEventListener("change", (e) => ["venue-marks", "venue-labels"].forEach((l) => setVisibility(l, e.target.checked)));
  }
  function showVenue(placeId) {
    const f = placeFeature(placeId);
    if (!f) return;
    const box = document.getElementById("show-places");
    if (!box.checked) { box.checked = true; box.dispatchEvent(new Event("change")); }
    state.map.jumpTo({ center: f.geometry.coordinates, zoom: Math.max(state.map.getZoom(), 16) });
    if (state.placePopup) state.placePopup.remove();
    placePopup(f.properties, f.geometry.coordinates);
  }

  // ------------------------------------------------------------------ 区 (issue 20 item 9)
  const DISTRICT_MAP = `${API}/districts/map/`;
  const DISTRICT = `${API}/community/district/`;
  /** The districts the server lets the caller read (/districts/map/): the district's 创建 office
      gets the district's outline and its streets (drawn, and the 区 tab with the streets side
      by side); a street office the district's name only (shown in the header). */
  async function loadDistrict() {
    if (!has(DISTRICT_MAP)) return;
    const r = await api(DISTRICT_MAP);
    if (!r.ok) return;
    const feats = r.body.features || [];
    const district = feats.find((f) => f.properties.layer === "district");
    if (!district) return;
    const of = document.getElementById("district-of");
    of.textContent = `${t("district_of", "所属区")}: ${district.properties.name}`;
    of.hidden = false;
    if (!district.geometry) return; // by name only
    state.district = { feature: district, streets: feats.filter((f) => f.properties.layer === "street") };
    const map = state.map;
    const drawn = { type: "FeatureCollection", features: feats.filter((f) => f.geometry) };
    map.addSource("district", { type: "geojson", data: drawn });
    map.addSource("street-labels", { type: "geojson", data: { type: "FeatureCollection", features: state.district.streets.filter((f) => f.geometry)
      .map((f) => ({ type: "Feature", id: f.id, geometry: { type: "Point", coordinates: labelPoint(f.geometry) }, properties: { name: f.properties.name } })) } });
    map.addLayer({ id: "street-fill", type: "fill", source: "district", filter: ["==", ["get", "layer"], "street"], paint: { "fill-color": "#e9d8fd", "fill-opacity": 0.25 } }, "grid-fill");
    map.addLayer({ id: "street-line", type: "line", source: "district", filter: ["==", ["get", "layer"], "street"], paint: { "line-color": "#6b46c1", "line-width": 2, "line-dasharray": [3, 2] } });
    map.addLayer({ id: "district-line", type: "line", source: "district", filter: ["==", ["get", "layer"], "district"], paint: { "line-color": "#44337a", "line-width": 4 } });
    map.addLayer({ id: "street-labels", type: "symbol", source: "street-labels",
      layout: { "text-field": ["get", "name"], "text-font": ["Noto Sans CJK SC Bold"], "text-size": 14 },
      paint: { "text-color": "#44337a", "text-halo-color": "rgba(255,255,255,0.95)", "text-halo-width": 1.8 } });
    document.getElementById("show-district").closest("label").hidden = false;
    document.getElementById("show-district").addEventListener("change", (e) => ["street-fill", "street-line", "district-line", "street-labels"].forEach((l) => setVisibility(l, e.target.checked)));
    document.querySelector('[data-tab="district"]').hidden = false;
    document.getElementById("district-name").textContent = district.properties.name;
    const sel = document.getElementById("district-month");
    sel.replaceChildren(...[...Array(12).keys()].map((i) => { const m = monthLabel(monthStart(i + 1)); return el("option", { value: m }, m); }),
      el("option", { value: String(monthStart(1).getFullYear()) }, `${monthStart(1).getFullYear()} ${t("whole_year", "全年")}`));
    sel.addEventListener("change", refreshDistrict);
    if (!(state.grids.features || []).length) fitTo(district.geometry);
    await refreshDistrict();
  }
  function fitTo(geometry) {
    const b = new maplibregl.LngLatBounds();
    geometry.coordinates.flat(2).forEach((c) => b.extend(c));
    state.map.fitBounds(b, { padding: 30, duration: 0 });
  }
  const DISTRICT_FIGURES = [["activities", "f_activities", "活动(场)"], ["activity_participants", "f_participants", "参与人次"], ["materials", "f_materials", "宣传资料(份)"],
    ["screening_reports", "f_screening", "五员一日一报"], ["zero_reports", "f_zero", "零报告"], ["screening_findings", "f_findings", "发现问题"],
    ["petitions", "f_petitions", "信访"], ["petitions_ethnic_religious", "f_petitions_er", "其中涉民族宗教"], ["venue_visits", "f_venue_visits", "宗教场所走访"],
    ["venue_hazards", "f_venue_hazards", "场所隐患"], ["pairings_active", "f_pairings", "结对帮扶(在帮)"], ["volunteer_hours", "f_volunteer", "志愿服务(小时)"],
    ["five_star_households", "f_five_star", "五星级文明户"], ["mediations", "f_mediations", "调处"]];
  const REPORT_STATE = { missing: ["未报", "r_missing", "red"], submitted: ["已报送", "r_submitted", ""], acknowledged: ["已签收", "r_acknowledged", "ok"] };
  /** The district's streets side by side (/community/district/): a column per street, the 创建
      figures of the chosen month (or year) and where its plan, summary and report stand. */
  async function refreshDistrict() {
    const box = document.getElementById("district-streets");
    const value = document.getElementById("district-month").value;
    const [year, month] = value.split("-");
    const r = await api(`${DISTRICT}?code=${encodeURIComponent(state.district.feature.properties.code)}&year=${year}${month ? `&month=${Number(month)}` : ""}`);
    if (!r.ok) { box.dataset.state = "error"; box.replaceChildren(el("p", { class: "list-state", "data-state": "error" }, failText(r), " ", el("button", { type: "button", class: "retry", onclick: refreshDistrict }, t("retry", "重试")))); return; }
    const streets = r.body.streets || [];
    if (!streets.length) { box.dataset.state = "empty"; box.replaceChildren(el("p", { class: "list-state", "data-state": "empty" }, t("no_streets", "区内暂无街道"))); return; }
    const stateCell = (s) => { const x = REPORT_STATE[s]; return x ? el("span", { class: `badge ${x[2]}`.trim(), "data-report": s }, t(x[1], x[0])) : "—"; };
    const outline = (id) => (state.district.streets.find((f) => f.properties.id === id) || {}).geometry;
    box.dataset.state = "ready";
    box.replaceChildren(el("table", { class: "table district-table" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, t("figure", "指标")), streets.map((s) => el("th", { scope: "col", "data-street": s.street },
        outline(s.street) ? el("button", { type: "button", class: "link", onclick: () => fitTo(outline(s.street)) }, s.name) : s.name)))),
      el("tbody", {},
        [["plan", "plan", "年度计划"], ["summary", "summary_r", "年度总结"], ...(month ? [["monthly", "monthly_r", "月报"]] : [])].map(([key, k, zh]) =>
          el("tr", { "data-row": key }, el("th", { scope: "row" }, t(k, zh)), streets.map((s) => el("td", {}, stateCell(s[key]))))),
        DISTRICT_FIGURES.map(([key, k, zh]) => el("tr", { "data-figure": key }, el("th", { scope: "row" }, t(k, zh)),
          streets.map((s) => el("td", {}, String((s.figures || {})[key] ?? "—"))))))));
  }

  // ------------------------------------------------------------------ 民生服务 (issue 21)
  const ASSIST = `${API}/assistance/`;
  /** What the street office works in 民生服务: applications awaiting its step (the street desk
      decides reviewed ones; a community cadre reviews checked ones; others see both lists
      without actions), 复核 overdue, 应保尽保 gaps per grid and the migrants' flows. */
  async function setupServices() {
    if (!has(ASSIST)) return;
    const probe = await api(`${ASSIST}?page_size=1`);
    if (probe.status === 403) return;
    document.querySelector('[data-tab="services"]').hidden = false;
    await Promise.all([refreshApplications(), refreshGaps(), refreshFlows()]);
    state.servicesShown = true;
  }
  const STAGES = [
    { key: "reviewed", zh: "待街道审批", en: "Awaiting the street's decision", action: "decide", who: () => state.desk },
    { key: "checked", zh: "待社区评议", en: "Awaiting the community's review", action: "review", who: () => state.manager && !state.desk },
    { key: "submitted", zh: "待核查", en: "Awaiting checks", action: null, who: () => false },
  ];
  async function refreshApplications() {
    const box = document.getElementById("applications");
    box.dataset.state = "loading";
    box.replaceChildren(el("p", { class: "list-state", "data-state": "loading" }, t("loading", "加载中…")));
    // the stage this role acts on first
    const stages = [...STAGES].sort((a, b) => Number(b.who()) - Number(a.who()));
    const answers = await Promise.all(stages.map((st) => api(`${ASSIST}?status=${st.key}&page_size=100`)));
    const seq = (refreshApplications.seq = (refreshApplications.seq || 0) + 1);
    const overdue = await api(`${ASSIST}?recheck_overdue=1&page_size=100`);
    if (seq !== refreshApplications.seq) return; // a newer refresh is on its way
    box.dataset.state = "ready";
    box.replaceChildren(...stages.map((st, i) => applicationGroup(st, answers[i])),
      applicationGroup({ key: "recheck", zh: "复核逾期", en: "Re-check overdue", action: "recheck", who: () => state.desk }, overdue));
  }
  function applicationGroup(st, r) {
    const list = r.ok ? rows(r.body) : [];
    const details = el("details", { "data-stage": st.key, open: st.who() || list.length ? true : undefined },
      el("summary", {}, `${lang === "en" ? st.en : st.zh} (${r.ok ? r.body.count ?? list.length : "!"})`));
    if (!r.ok) { details.append(el("p", { class: "list-state", "data-state": "error" }, failText(r))); return details; }
    if (!list.length) { details.append(el("p", { class: "list-state", "data-state": "empty" }, t("none", "暂无"))); return details; }
    details.append(el("ul", { class: "queue applications" }, list.map((a) => applicationItem(a, st))));
    return details;
  }
  function applicationItem(a, st) {
    const li = el("li", { "data-application": a.id },
      el("div", { class: "title" }, el("b", {}, `${a.kind_name || a.kind}`), " ", el("span", { class: "badge" }, a.status_name || a.status),
        a.recommended === true ? el("span", { class: "badge ok" }, t("recommended", "社区推荐")) : a.recommended === false && a.status === "reviewed" ? el("span", { class: "badge late" }, t("not_recommended", "社区不推荐")) : null),
      el("div", { class: "subject" }, a.reason || ""),
      el("div", { class: "meta" }, [`${t("household", "户")} #${a.household}`, a.members_count ? `${a.members_count} ${t("persons", "人")}` : "",
        a.review_opinion ? `${t("opinion", "评议")}: ${a.review_opinion}` : "", a.recheck_due ? `${t("recheck_due", "复核期")} ${a.recheck_due}` : "",
        a.due_at ? `${t("due_at", "期限")} ${fmtTime(a.due_at)}` : ""].filter(Boolean).join(" · ")));
    if (st.action && st.who()) li.append(assistanceActions(a, st.action));
    return li;
  }
  /** The step the role may take (the server checks it again: a refusal is shown, in Chinese). */
  function assistanceActions(a, action) {
    const form = el("form", { class: "action-form assist-form", "data-form": action });
    const error = el("div", { class: "action-error", role: "alert", hidden: true });
    const reason = el("input", { type: "text", name: "reason", required: true, placeholder: action === "review" ? t("opinion_ph", "评议意见(必填)") : t("reason_ph", "理由(必填)"), "aria-label": t("reason_ph", "理由(必填)") });
    const fields = [reason];
    const today = ymd(new Date());
    let start = null; let end = null; let amount = null;
    if (action === "decide") {
      start = el("input", { type: "date", name: "start_date", value: today, min: today, "aria-label": t("start_date", "起始日期") });
      end = el("input", { type: "date", name: "end_date", min: today, "aria-label": t("end_date", "截止日期") });
      amount = el("input", { type: "number", name: "amount", min: "0", step: "0.01", placeholder: t("amount", "金额(元/月)"), "aria-label": t("amount", "金额(元/月)") });
      fields.push(el("label", { class: "small" }, t("start_date", "起始"), " ", start), el("label", { class: "small" }, t("end_date", "截止"), " ", end), amount);
    }
    const LABELS = { decide: [["approve", "批准", "Approve", true], ["reject", "不批准", "Reject", false]],
      review: [["recommend", "推荐", "Recommend", true], ["not_recommend", "不推荐", "Do not recommend", false]],
      recheck: [["continue", "继续保障", "Continue", true], ["end", "停止保障", "End", false]] };
    const send = async (yes, label, btn) => {
      if (!reason.value.trim()) { error.textContent = t("need_reason", "请填写理由。"); error.hidden = false; reason.focus(); return; }
      if (start && yes && (!start.value || start.value < today)) { error.textContent = t("past_start", "起始日期不能早于今天。"); error.hidden = false; start.focus(); return; }
      const body = action === "decide" ? { approved: yes, reason: reason.value.trim(), ...(yes ? { start_date: start.value, end_date: end.value || null, amount: amount.value || null } : {}) }
        : action === "review" ? { recommended: yes, opinion: reason.value.trim() } : { continues: yes, note: reason.value.trim() };
      btn.disabled = true;
      const r = await api(`${ASSIST}${a.id}/${action}/`, { method: "POST", body });
      btn.disabled = false;
      if (!r.ok) {
        const b = r.body || {};
        const detail = r.status === 403 ? t("forbidden_step", "您的岗位不能办理这一步") : b.detail || Object.entries(b).map(([k, v]) => `${lang === "en" ? k : ASSIST_FIELDS[k] || FIELD_ZH[k] || k}: ${[].concat(v).join(" ")}`).join("; ");
        error.textContent = `${t("failed", "失败")} (${r.status}): ${detail}`; error.hidden = false; error.dataset.status = String(r.status);
        toast(`${a.kind_name || ""} #${a.id}: ${error.textContent}`, true);
        return;
      }
      toast(`${a.kind_name || ""} #${a.id} ${label} ✓`);
      await refreshApplications();
    };
    const buttons = LABELS[action].map(([key, zh, en, yes]) => {
      const label = lang === "en" ? en : zh;
      const b = el("button", { type: "button", class: yes ? "primary" : "", "data-action": key, onclick: () => send(yes, label, b) }, label);
      return b;
    });
    form.append(...fields, ...buttons);
    return el("div", { class: "action-area" }, form, error);
  }
  const ASSIST_FIELDS = { reason: "理由", opinion: "评议意见", start_date: "起始日期", end_date: "截止日期", amount: "金额", approved: "批准", recommended: "推荐", note: "说明" };
  async function refreshGaps() {
    const table = document.getElementById("gaps");
    if (!has(`${ASSIST}gaps/`)) { table.closest("section").hidden = true; return; }
    const r = await api(`${ASSIST}gaps/`);
    if (!r.ok) { table.replaceChildren(el("tr", {}, el("td", { class: "state-error" }, failText(r)))); return; }
    const list = (r.body.results || []);
    const cell = (v) => el("td", {}, v === null || v === undefined ? "—" : typeof v === "number" ? String(v) : String(v));
    table.replaceChildren(el("tr", {}, ["grid|网格", "gap_dibao|疑似应保未保(低保)", "gap_housing|住房保障", "recheck_overdue|复核逾期"].map((k) => { const [key, zh] = k.split("|"); return el("th", {}, t(key, zh)); })),
      ...(list.length ? list.map((g) => el("tr", { "data-grid": g.grid ?? "" }, el("td", {}, g.grid ? gridName(g.grid) : t("outside", "网格外")), cell(g.dibao), cell(g.public_housing), cell(g.recheck_overdue)))
        : [el("tr", {}, el("td", { colspan: "4" }, t("none", "暂无")))]));
  }
  async function refreshFlows() {
    const box = document.getElementById("flows");
    if (!has(`${API}/migrants/flows/`)) { box.closest("section").hidden = true; return; }
    const months = [0, 1, 2].map((back) => monthLabel(monthStart(back)));
    const answers = await Promise.all(months.map((m) => api(`${API}/migrants/flows/?month=${m}`)));
    if (answers.every((r) => !r.ok)) { box.replaceChildren(el("tr", {}, el("td", { class: "state-error" }, failText(answers[0])))); return; }
    box.replaceChildren(el("tr", {}, ["fig_month|月份", "arrived|流入", "departed|流出", "present|在住", "permits_expiring|居住证将到期"].map((k) => { const [key, zh] = k.split("|"); return el("th", {}, t(key, zh)); })),
      ...answers.map((r, i) => el("tr", { "data-month": months[i] }, el("td", {}, months[i]),
        ...(r.ok ? ["arrived", "departed", "present", "permits_expiring"].map((k) => el("td", {}, String(r.body[k] ?? "—"))) : [el("td", { colspan: "4", class: "state-error" }, failText(r))]))));
  }

  // ------------------------------------------------------------------ figures
  function chart(id, config) {
    if (state.charts[id]) state.charts[id].destroy();
    config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, config.options || {});
    const canvas = document.getElementById(id);
    state.charts[id] = new Chart(canvas, config);
    // a text alternative for screen readers: the heading, then each label with its values
    const heading = canvas.parentElement.previousElementSibling;
    const data = config.data;
    const text = data.labels.map((l, i) => `${l}: ${data.datasets.map((d) => d.data[i] ?? "—").join(" / ")}`).join("; ");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `${heading ? heading.textContent : ""} — ${data.datasets.map((d) => d.label).join(" / ")}: ${text || t("no_data", "暂无数据")}`);
  }
  function fillFigureMonths() {
    const sel = document.getElementById("fig-month");
    for (let back = 0; back < 12; back += 1) sel.append(el("option", { value: String(11 - back) }, monthLabel(monthStart(back))));
    sel.value = "10"; // the last complete month
  }
  async function refreshFigures() {
    if (!has(`${API}/cases/figures/`)) { document.querySelector('[data-tab="figures"]').hidden = true; return; }
    const month = Number(document.getElementById("fig-month").value || 10);
    const range = windowRange(month);
    const r = await api(`${API}/cases/figures/?${caseQuery(range, false)}`);
    const note = document.getElementById("fig-state") || document.getElementById("kpis").insertAdjacentElement("beforebegin", el("p", { id: "fig-state", class: "list-state" }));
    if (!r.ok) {
      note.dataset.state = "error"; note.hidden = false;
      note.replaceChildren(failText(r), " ", el("button", { type: "button", class: "retry", onclick: () => refreshFigures() }, t("retry", "重试")));
      return;
    }
    const f = r.body;
    note.dataset.state = f.total ? "ready" : "empty";
    note.hidden = !!f.total;
    note.textContent = f.total ? "" : t("no_data", "暂无数据");
    const kpi = (key, zh, v) => el("div", { class: "kpi", "data-kpi": key }, el("b", {}, v), el("span", {}, t(key, zh)));
    document.getElementById("kpis").replaceChildren(
      kpi("total", "受理", f.total), kpi("resolved", "办结", f.resolved), kpi("resolution_rate", "化解率", pct(f.resolution_rate)),
      kpi("m_open", "在办", f.open), kpi("overdue", "超期", f.overdue), kpi("within_month", "纠纷月内调结", pct(f.disputes_settled_within_a_month_rate)));
    const cats = Object.entries(f.by_category || {}).map(([code, v]) => ({ code, name: v.name, count: v.count })).sort((a, b) => b.count - a.count);
    chart("chart-category", { type: "bar", data: { labels: cats.map((c) => c.name), datasets: [{ label: t("cases", "件"), data: cats.map((c) => c.count), backgroundColor: "#0b4f6c" }] },
      options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } }, y: { ticks: { autoSkip: false, font: { size: 11 } } } } } });
    document.getElementById("chart-category").parentElement.style.height = `${Math.max(160, 22 * cats.length + 40)}px`;
    const ended = f.ended_at_level || {};
    const levels = LEVELS.filter(([name]) => ended[name]);
    chart("chart-level", { type: "bar", data: { labels: levels.map(([n]) => levelLabel(n)), datasets: [{ label: t("cases", "件"), data: levels.map(([n]) => ended[n]),
      backgroundColor: levels.map(([n]) => (["unit_head", "building_head", "owners_committee", "property_manager", "household_head"].includes(n) ? "#2f855a" : n === "community_cadre" || n === "mediation_committee" ? "#d69e2e" : "#c53030")) }] },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } });
    if (has(`${API}/visits/coverage/`)) {
      const last = new Date(range.until.getTime() - 86400e3);
      const cov = await api(`${API}/visits/coverage/?group=grid&from=${ymd(range.since)}&to=${ymd(last)}`);
      const list = cov.ok ? rows(cov.body) : [];
      chart("chart-visits", { type: "bar", data: { labels: list.map((g) => g.name), datasets: [
        { label: t("due", "应访"), data: list.map((g) => g.due), backgroundColor: "#9fb3c8" },
        { label: t("done_n", "已访"), data: list.map((g) => g.done), backgroundColor: "#0b4f6c" }] },
      options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } });
    }
    if (!state.charts["chart-trend"]) await refreshTrend();
    document.getElementById("tab-figures").dataset.ready = "1";
  }
  async function refreshTrend() {
    const months = [...Array(12).keys()];
    const answers = await Promise.all(months.map((m) => api(`${API}/cases/figures/?${caseQuery(windowRange(m), false)}`)));
    const labels = months.map((m) => monthLabel(windowRange(m).since));
    chart("chart-trend", { type: "bar", data: { labels, datasets: [
      { type: "bar", label: t("total", "受理"), data: answers.map((a) => (a.ok ? a.body.total : 0)), backgroundColor: "#9fb3c8", yAxisID: "y" },
      { type: "line", label: t("resolution_rate", "化解率") + " %", data: answers.map((a) => (a.ok && a.body.resolution_rate !== null ? Math.round(a.body.resolution_rate * 1000) / 10 : null)), borderColor: "#2f855a", yAxisID: "y1" }] },
    options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } }, y1: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false } } } } });
  }

  // ------------------------------------------------------------------ filters and wiring
  /** Who is looking (/me/): the street desk lands on the dispatch board; a cadre, grid member
      or the ethnic-affairs desk on their own work, without the actions their role lacks. */
  async function loadMe() {
    if (!has(`${API}/me/`)) return;
    const r = await api(`${API}/me/`);
    if (!r.ok) return;
    state.me = r.body;
    state.roles = new Set((r.body.positions || []).map((p) => p.position_type));
    const everything = !!(r.body.territory && r.body.territory.everything);
    state.desk = state.roles.has("street_dispatcher") || (everything && !state.roles.size);
    state.manager = state.desk || state.roles.has("community_cadre") || state.roles.has("mediation_committee");
    document.body.dataset.role = state.desk ? "desk" : state.roles.has("ethnic_affairs_desk") ? "ethnic" : state.manager ? "cadre" : "member";
    if (!state.desk) {
      state.kinds = ["mine", "overdue", "flagged"];
      state.queue = state.roles.has("ethnic_affairs_desk") ? "flagged" : "mine";
      document.querySelector('[data-queue="mine"]').hidden = false;
      document.querySelector('[data-queue="unrouted"]').hidden = true;
      document.querySelectorAll(".queue-filters button").forEach((b) => b.classList.toggle("active", b.dataset.queue === state.queue));
      const tab = document.querySelector('[data-tab="queue"]');
      tab.textContent = t("t_work", "我的工作");
    }
  }
  /** The place filter: each community, then its grids (applies to the queue, search and pins). */
  async function loadPlaces() {
    const sel = document.getElementById("grid-filter");
    const r = has(`${API}/communities/`) ? await api(`${API}/communities/`) : { ok: false };
    state.communities = r.ok ? rows(r.body) : [];
    const grids = (state.grids.features || []);
    for (const cm of state.communities) {
      sel.append(el("option", { value: `c:${cm.id}` }, `${cm.name}(${t("community", "社区")})`));
      for (const g of grids.filter((x) => x.properties.community === cm.id)) sel.append(el("option", { value: `g:${g.id}` }, `\u3000${g.properties.name}`));
    }
    for (const g of grids.filter((x) => !state.communities.some((cm) => cm.id === x.properties.community))) sel.append(el("option", { value: `g:${g.id}` }, g.properties.name));
  }
  async function loadCategories() {
    if (!has(`${API}/categories/`)) return;
    const r = await api(`${API}/categories/`);
    const list = r.ok ? rows(r.body) : [];
    state.categories = list;
    const sel = document.getElementById("category");
    const top = list.filter((c) => !c.parent);
    for (const c of top) {
      sel.append(el("option", { value: c.code }, c.name));
      for (const s of list.filter((x) => x.parent === c.id)) sel.append(el("option", { value: s.code }, `\u3000└ ${s.name}`));
    }
    for (const c of list.filter((x) => x.parent && !list.some((p) => p.id === x.parent))) sel.append(el("option", { value: c.code }, c.name));
    const statusSel = document.getElementById("state");
    for (const s of Object.keys(STATUS_ZH)) statusSel.append(el("option", { value: s }, statusLabel(s)));
  }
  function monthOut() {
    const input = document.getElementById("month");
    const v = Number(input.value);
    const label = v >= 12 ? t("last12", "近12个月") : monthLabel(windowRange(v).since);
    document.getElementById("month-out").textContent = label;
    input.setAttribute("aria-valuetext", label); // read out as the month, not "7"
    if (!input.getAttribute("list")) {
      // a month scale: tick marks on the slider, each month named in its tooltip
      const ticks = el("datalist", { id: "month-ticks" }, [...Array(13).keys()].map((i) => el("option", { value: String(i), label: i >= 12 ? t("last12", "近12个月") : monthLabel(windowRange(i).since) })));
      input.after(ticks);
      input.setAttribute("list", "month-ticks");
      input.title = `${monthLabel(windowRange(0).since)} … ${monthLabel(windowRange(11).since)} · ${t("last12", "近12个月")}`;
    }
  }
  function selectTab(name) {
    document.querySelectorAll(".tabs button, .tab").forEach((n) => n.classList.remove("active"));
    document.querySelectorAll(".tabs button").forEach((n) => n.setAttribute("aria-selected", String(n.dataset.tab === name)));
    document.querySelector(`.tabs [data-tab="${name}"]`).classList.add("active");
    document.getElementById(`tab-${name}`).classList.add("active");
    if (name === "figures") refreshFigures();
    if (name === "services" && state.servicesShown) refreshApplications(); // applications move on between visits
  }
  function wireControls() {
    const month = document.getElementById("month");
    month.addEventListener("input", monthOut);
    month.addEventListener("change", () => { state.month = Number(month.value); refreshCases(); });
    const play = document.getElementById("play");
    play.addEventListener("click", () => {
      if (state.playing) { clearInterval(state.playing); state.playing = null; play.textContent = "▶"; return; }
      let m = Number(month.value) >= 11 ? -1 : Number(month.value);
      play.textContent = "❚❚";
      state.playing = setInterval(() => {
        m += 1;
        if (m > 11) { clearInterval(state.playing); state.playing = null; play.textContent = "▶"; return; }
        month.value = String(m); monthOut(); state.month = m; refreshCases();
      }, 1500);
    });
    document.getElementById("category").addEventListener("change", (e) => { state.category = e.target.value; renderQueue(); refreshCases(); });
    document.getElementById("grid-filter").addEventListener("change", (e) => { state.place = e.target.value; renderQueue(); refreshPins(); });
    document.getElementById("queue-sort").addEventListener("change", (e) => { state.sort = e.target.value; renderQueue(); });
    document.getElementById("search-form").addEventListener("submit", (e) => { e.preventDefault(); runSearch(document.getElementById("search").value); });
    document.getElementById("search-clear").addEventListener("click", () => {
      document.getElementById("search").value = ""; runSearch("");
      document.querySelector(`.queue-filters [data-queue="${state.queue}"]`).classList.add("active");
    });
    document.getElementById("state").addEventListener("change", (e) => { state.status = e.target.value; refreshCases(); });
    document.getElementById("metric").addEventListener("change", (e) => { state.metric = e.target.value; refreshChoropleth(); });
    // on phones the header's filters and the legend start folded (a button each opens them)
    if (window.matchMedia("(max-width: 600px)").matches) {
      document.getElementById("legend").classList.add("collapsed");
      document.getElementById("legend-toggle").setAttribute("aria-expanded", "false");
    }
    const foldFilters = document.getElementById("filters-toggle");
    if (foldFilters) foldFilters.addEventListener("click", (e) => {
      const open = document.getElementById("filters").classList.toggle("open");
      e.currentTarget.setAttribute("aria-expanded", String(open));
    });
    document.getElementById("legend-toggle").addEventListener("click", (e) => {
      const legend = document.getElementById("legend");
      legend.classList.toggle("collapsed");
      e.target.setAttribute("aria-expanded", String(!legend.classList.contains("collapsed")));
    });
    for (const [box, layers] of [["show-heat", ["heat"]], ["show-choropleth", ["choropleth"]], ["show-pins", PIN_LAYERS], ["show-places", ["places"]], ["show-activities", ["activities"]]]) {
      document.getElementById(box).addEventListener("change", (e) => layers.forEach((l) => setVisibility(l, e.target.checked)));
    }
    document.querySelectorAll(".tabs button").forEach((b) => b.addEventListener("click", () => selectTab(b.dataset.tab)));
    document.getElementById("unity-show-map").addEventListener("click", () => {
      const box = document.getElementById("show-activities");
      box.checked = true; box.dispatchEvent(new Event("change"));
      const feats = state.activities || [];
      if (feats.length) { const b = new maplibregl.LngLatBounds(); feats.forEach((f) => b.extend(f.geometry.coordinates)); state.map.fitBounds(b, { padding: 40, maxZoom: 16, duration: 300 }); }
    });
    document.getElementById("fig-month").addEventListener("change", refreshFigures);
    document.querySelectorAll(".queue-filters button").forEach((b) => b.addEventListener("click", () => {
      document.querySelectorAll(".queue-filters button").forEach((n) => n.classList.remove("active"));
      b.classList.add("active"); state.queue = b.dataset.queue;
      if (state.search) { state.search = null; document.getElementById("search").value = ""; document.getElementById("search-clear").hidden = true; }
      renderQueue();
    }));
    let timer = null;
    state.map.on("moveend", () => {
      if (!has(`${API}/heatmap/cases/`) || state.districtOnly) return;
      clearTimeout(timer); timer = setTimeout(() => refreshHeatmap(), 250);
    });
  }
  /** Everything that depends on the time window and the filters. */
  async function refreshCases() {
    const seq = (refreshCases.seq = (refreshCases.seq || 0) + 1);
    document.body.dataset.ready = "0";
    await loadCases();
    if (seq !== refreshCases.seq) return; // the filters changed again meanwhile
    refreshPins();
    await Promise.all([refreshHeatmap(), refreshChoropleth()]);
    if (state.loaded && seq === refreshCases.seq) await settle();
  }
  /** Resolves when the map has drawn everything; marks the page ready (the tests wait on it). */
  function settle() {
    return new Promise((resolve) => {
      state.map.once("idle", () => {
        document.body.dataset.ready = "1";
        document.body.dataset.mapIdle = "1";
        resolve();
      });
      state.map.triggerRepaint();
    });
  }

  /** The first meaningful map: the territory drawn (measured from navigation start, reported
      as body[data-first-map-ms]; the browser test prints it). */
  function markFirstMap(map) {
    map.once("idle", () => {
      const ms = Math.round(performance.now());
      document.body.dataset.firstMapMs = String(ms);
      state.firstMapMs = ms;
    });
  }
  async function main() {
    translatePage();
    monthOut();
    fillFigureMonths();
    // The map and the territory do not wait for the API description: it is asked in parallel,
    // and what depends on it (places, cases, queue, tabs) starts when it arrives. Only the
    // OpenAPI schema's path templates (/api/schema/paths/, a few kB), never the 4-5 MB schema.
    const schemaAnswer = api("/api/schema/paths/");
    const [map, grids] = await Promise.all([buildMap(), api(`${API}/grids/?page_size=500`)]);
    await addTerritoryLayers(map, grids);
    markFirstMap(map);
    const schema = await schemaAnswer;
    state.schemaOk = schema.ok && !!(schema.body && Array.isArray(schema.body.paths));
    state.paths = new Set((state.schemaOk && schema.body.paths) || []);
    if (!state.schemaOk) {
      // Without the API description the page cannot tell what exists: say so, never "no cases".
      banner(`${t("schema_failed", "无法读取接口说明,无法显示案件。")} ${failText(schema)}`, () => location.reload());
      await refreshQueue();
      document.getElementById("heat-info").textContent = failText(schema);
      document.body.dataset.ready = "1";
      return;
    }
    await Promise.all([addPlaces(map), loadCategories(), loadPlaces(), loadMe()]);
    await loadDistrict();
    wireControls();
    if (state.district && !(state.grids.features || []).length && !((state.me && state.me.positions) || []).some((p) => p.position_type !== "district_officer")) {
      // the district's 创建 office (a post over the district, 区创建办, and none in a street): no
      // territory of cases and households, its district and streets
      state.districtOnly = true;
      document.body.dataset.role = "district";
      for (const tab of ["queue", "case", "visits", "figures", "exports"]) document.querySelector(`.tabs [data-tab="${tab}"]`).hidden = true;
      selectTab("district");
      state.loaded = true;
      await settle();
      return;
    }
    await Promise.all([refreshCases(), refreshQueue(), refreshVisits().then(setupUnity), setupExports(), setupServices()]);
    state.loaded = true;
    startPolling();
    await settle();
  }
  window.gridsvc = { state, refreshCases, refreshQueue, showCase, selectTab, runSearch, poll: () => pollOnce(true) };
  main().catch((e) => { console.error(e); toast(String(e), true); });
})();
