/* 网格员走访 — the grid member's offline web app (first version).
 *
 * Uses only the public API and the sync protocol of docs/sync.md:
 *   login per device (POST /api/v1/auth/token/, refresh with rotation, logout),
 *   the change feed (GET /api/v1/sync/changes/?since=… with purge), and
 *   visit batches (POST /api/v1/visits/batch/ with Idempotency-Key and X-Device-Time).
 * Everything the member needs offline lives in IndexedDB (through the `idb` wrapper);
 * the app shell is cached by the service worker (sw.js).
 */
(function () {
  "use strict";

  const APP_VERSION = "0.7.1";
  const API = "/api/v1";
  const DB_NAME = "gridsvc-field";
  const DEVICE_KEY = "gridsvc-field-device"; // localStorage: one id per installation
  const STORES = ["meta", "households", "residents", "tasks", "cases", "inbox", "outbox"];
  const BATCH_MAX = 500;

  const $ = (id) => document.getElementById(id);
  const state = { db: null, session: null, syncing: false, tab: "tasks" };
  window.gridsvcField = state; // for tests and debugging

  // ---------------------------------------------------------------- storage (IndexedDB)

  function openDb() {
    return idb.openDB(DB_NAME, 3, {
      upgrade(db, oldVersion) {
        if (oldVersion < 3) {
          // vector tiles of the member's map, by URL, for offline use (wiped on sign-out)
          db.createObjectStore("tiles");
        }
        if (oldVersion < 2) {
          // other requests waiting to be sent (一日一报 …), each with its Idempotency-Key
          db.createObjectStore("requests", { keyPath: "key" }).createIndex("status", "status");
        }
        if (oldVersion >= 1) return;
        db.createObjectStore("meta");
        for (const name of ["households", "residents", "tasks", "cases", "inbox"]) {
          const store = db.createObjectStore(name, { keyPath: "id" });
          if (name === "residents" || name === "tasks") store.createIndex("household", "household");
        }
        const out = db.createObjectStore("outbox", { keyPath: "client_uuid" });
        out.createIndex("status", "status");
      },
    });
  }

  const meta = {
    get: (key) => state.db.get("meta", key),
    set: (key, value) => state.db.put("meta", value, key),
    del: (key) => state.db.delete("meta", key),
  };

  function deviceId() {
    let id = localStorage.getItem(DEVICE_KEY);
    if (!id) {
      id = crypto.randomUUID();
      localStorage.setItem(DEVICE_KEY, id);
    }
    return id;
  }

  // ---------------------------------------------------------------- time helpers

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  /** The phone's clock as ISO 8601 with its offset (what visits' client_time carry). */
  function isoLocal(d) {
    const off = -d.getTimezoneOffset();
    const sign = off >= 0 ? "+" : "-";
    const abs = Math.abs(off);
    return (
      `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}` +
      `T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}` +
      `.${String(d.getMilliseconds()).padStart(3, "0")}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`
    );
  }

  function today() {
    return isoLocal(new Date()).slice(0, 10);
  }

  function showTime(iso) {
    if (!iso) return "从未";
    const d = new Date(iso);
    return `${d.getMonth() + 1}月${d.getDate()}日 ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  function jwtExp(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part)).exp * 1000;
    } catch (e) {
      return 0;
    }
  }

  // ---------------------------------------------------------------- the API client

  class AuthError extends Error {}
  class TooOldError extends Error {}

  async function rawFetch(path, opts = {}) {
    const headers = Object.assign(
      { "X-App-Version": APP_VERSION, "X-Device-Time": String(Date.now()), Accept: "application/json" },
      opts.headers || {}
    );
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(opts.root ? path : API + path, {
      method: opts.method || "GET",
      headers,
      body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
      cache: "no-store",
    });
    const offset = Number(resp.headers.get("X-Clock-Offset-Ms"));
    if (resp.headers.has("X-Clock-Offset-Ms") && Number.isFinite(offset)) showClock(offset);
    if (resp.status === 426) {
      const body = await resp.json().catch(() => ({}));
      throw new TooOldError(body.detail || "app too old");
    }
    return resp;
  }

  /** Warn when the phone's clock is more than 5 minutes off (the server corrects visit times,
   * but the member should set the clock). */
  function showClock(offsetMs) {
    const min = Math.round(offsetMs / 60000);
    const warn = $("clock-warn");
    warn.hidden = Math.abs(offsetMs) <= 5 * 60 * 1000;
    warn.textContent = `手机时间比服务器${min > 0 ? "快" : "慢"} ${Math.abs(min)} 分钟，请校准手机时间。`;
  }

  /** Refresh the token pair once, however many calls need it at the same moment (map tiles
   * ask in parallel): a second refresh would spend the rotated token needlessly. */
  function refreshTokens() {
    if (!state.refreshing) state.refreshing = doRefresh().finally(() => (state.refreshing = null));
    return state.refreshing;
  }

  /** Refresh the token pair (rotation: the new refresh token is stored before use). */
  async function doRefresh() {
    const s = state.session;
    if (!s || !s.refresh) throw new AuthError("no session");
    const resp = await rawFetch("/auth/token/refresh/", { method: "POST", body: { refresh: s.refresh } });
    if (!resp.ok) throw new AuthError(`refresh refused (${resp.status})`);
    const data = await resp.json();
    s.refresh = data.refresh || s.refresh;
    s.access = data.access;
    s.accessExp = data.expires_in ? Date.now() + data.expires_in * 1000 : jwtExp(data.access);
    await meta.set("session", s);
  }

  /** An authorised API call: refresh ahead of expiry; on 401 refresh once and retry once. */
  async function api(path, opts = {}) {
    const s = state.session;
    if (!s) throw new AuthError("not signed in");
    if (!s.access || (s.accessExp && s.accessExp - 60_000 < Date.now())) await refreshTokens();
    const call = () =>
      rawFetch(path, Object.assign({}, opts, {
        headers: Object.assign({ Authorization: `Bearer ${state.session.access}` }, opts.headers || {}),
      }));
    let resp = await call();
    if (resp.status === 401) {
      await refreshTokens();
      resp = await call();
      if (resp.status === 401) throw new AuthError("401 after refresh");
    }
    return resp;
  }

  // ---------------------------------------------------------------- sign in / out

  async function signIn(username, password) {
    const resp = await rawFetch("/auth/token/", {
      method: "POST",
      body: { username, password, device: deviceId(), device_name: `网页应用 ${navigator.platform || ""}`.trim() },
    });
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      if (resp.status === 429) throw new Error(data.detail || "尝试次数过多，请稍后再试");
      throw new Error("用户名或密码错误");
    }
    const old = await meta.get("session");
    if (old && old.username !== username) {
      // Another member on this phone: their territory is not ours (their outbox stays).
      await clearTerritory();
      await meta.del("cursor");
      await meta.del("lastSync");
    }
    state.session = {
      username,
      access: data.access,
      refresh: data.refresh,
      device: data.device,
      accessExp: data.expires_in ? Date.now() + data.expires_in * 1000 : jwtExp(data.access),
    };
    await meta.set("session", state.session);
  }

  async function clearTerritory() {
    const names = ["households", "residents", "tasks", "cases", "inbox", "tiles"];
    const tx = state.db.transaction(names, "readwrite");
    await Promise.all(names.map((s) => tx.objectStore(s).clear()));
    await tx.done;
    await meta.del("route");
    await meta.del("me");
    await meta.del("pairings");
    await meta.del("campaignReturns");
    await meta.del("campaigns");
  }

  /** Sign out: blacklist the refresh token (when online) and wipe the phone's data. */
  async function signOut() {
    const unsent = await countPending();
    if (unsent && !window.confirm(`还有 ${unsent} 条记录未发送，退出将删除它们。确定退出？`)) return;
    const s = state.session;
    if (s && navigator.onLine) {
      try {
        await rawFetch("/auth/logout/", {
          method: "POST",
          body: { refresh: s.refresh },
          headers: { Authorization: `Bearer ${s.access}`, "Idempotency-Key": crypto.randomUUID() },
        });
      } catch (e) {
        /* offline: the token expires by itself */
      }
    }
    state.session = null;
    state.db.close();
    await idb.deleteDB(DB_NAME);
    state.db = await openDb();
    show("login");
  }

  // ---------------------------------------------------------------- sync: outbox, then the feed

  async function countPending() {
    return (
      (await state.db.getAllFromIndex("outbox", "status", "pending")).length +
      (await state.db.getAllFromIndex("requests", "status", "pending")).length
    );
  }

  /** Keep a request in IndexedDB with a fresh Idempotency-Key before it is ever sent. */
  async function queueRequest(label, method, path, body, extra = {}) {
    await state.db.put("requests", {
      ...extra,
      key: crypto.randomUUID(),
      label,
      method,
      path,
      body,
      status: "pending",
      recorded_at: new Date().toISOString(),
    });
  }

  /** Send the queued requests oldest first, each with its own key (a retry is answered once). */
  async function flushRequests() {
    const pending = (await state.db.getAllFromIndex("requests", "status", "pending")).sort((a, b) =>
      a.recorded_at.localeCompare(b.recorded_at)
    );
    for (const r of pending) {
      const headers = { "Idempotency-Key": r.key };
      if (r.caseId) {
        // A case action names the version the member last saw (the case's ETag, which the
        // phone's own earlier actions move on). Fixed at the first try and kept with the
        // request, so a retry is the same request and gets the stored answer.
        if (r.ifMatch === undefined) {
          const c = await state.db.get("cases", r.caseId);
          r.ifMatch = (c && c.etag) || null;
          await state.db.put("requests", r);
        }
        if (r.ifMatch) headers["If-Match"] = r.ifMatch;
      }
      // a dropped connection throws: the sync stops, the request stays pending with its key
      const resp = await api(r.path, { method: r.method, body: r.body, headers });
      if (resp.status === 429 || resp.status >= 500) return; // later, same key
      let data = await resp.json().catch(() => ({}));
      if (resp.status === 409 && data.code === "idempotency_in_progress") return; // later, same key
      let ok = resp.ok;
      let duplicate = false;
      if (ok && r.batchItem) {
        // a one-item community batch (宗教场所走访, 五员一日一报, 活动): the item's own result decides
        const item = (data.results || [])[0] || {};
        ok = item.status === "accepted" || item.status === "duplicate";
        duplicate = item.status === "duplicate";
        data = ok
          ? { id: item.id, far_off: item.far_off, distance_m: item.distance_m }
          : { errors: item.errors || { items: ["未能保存"] }, code: item.code };
        if (ok) sentPhotosDropped(r); // kept on the phone until the server has them
      }
      r.status = ok ? "sent" : resp.status === 412 ? "conflict" : "refused";
      r.result = ok
        ? { id: data.id, version: data.version, status: data.status, far_off: data.far_off, distance_m: data.distance_m }
        : data;
      r.http = r.batchItem && resp.ok ? undefined : resp.status; // a refused item: its errors say why
      r.replayed = duplicate || resp.headers.get("Idempotent-Replayed") === "true";
      r.sent_at = new Date().toISOString();
      personalDropped(r); // answered (sent or refused): never sent again
      await state.db.put("requests", r);
      if (r.caseId) await caseAnswered(r.caseId, resp, data);
    }
  }

  /** A sent batch item's photos leave the phone (the server keeps them); their count stays. */
  function sentPhotosDropped(r) {
    for (const it of (r.body && r.body.items) || []) {
      if (it.data && Array.isArray(it.data.photos)) {
        r.photoCount = (r.photoCount || 0) + it.data.photos.length;
        delete it.data.photos;
      }
    }
  }

  /** Personal data of a batch item (a 信访's petitioner) leave the phone once the server has
   * answered: stored there when accepted, and a refused item is never sent again (the member
   * records it anew). Like a sent photo's bytes; the label never carried them. */
  const PERSONAL = { petition: ["petitioner"] };

  function personalDropped(r) {
    for (const it of (r.body && r.body.items) || []) {
      for (const field of PERSONAL[it.kind] || []) {
        if (it.data && field in it.data) {
          delete it.data[field];
          r.personalDropped = true;
        }
      }
    }
  }

  /** How many photos a queued request carries (still on the phone, or sent). */
  function requestPhotos(r) {
    const queued = ((r.body && r.body.items) || []).reduce(
      (n, it) => n + ((it.data && it.data.photos) || []).length,
      0
    );
    return queued + (r.photoCount || 0);
  }

  /** 一日一报: today's report, 零报告 (nothing abnormal) or one item; merged by item id. */
  async function dailyReport(nothingAbnormal) {
    const text = $("daily-text").value.trim();
    if (!nothingAbnormal && !text) {
      $("daily-msg").textContent = "请填写情况，或点“零报告”。";
      return;
    }
    const body = nothingAbnormal
      ? { date: today(), nothing_abnormal: true }
      : { date: today(), items: [{ id: crypto.randomUUID(), category: "其他", description: text }] };
    await queueRequest(nothingAbnormal ? `一日一报 ${today()}：零报告` : `一日一报 ${today()}：${text}`, "POST", "/daily-reports/", body);
    $("daily-text").value = "";
    $("daily-msg").textContent = "已保存，联网后发送。";
    await render();
    sync();
  }

  /** Send the pending visits in batches; each batch keeps its Idempotency-Key across retries. */
  async function flushOutbox() {
    for (;;) {
      let batch = await meta.get("batch"); // {key, uuids}: stored before sending
      if (!batch) {
        const pending = (await state.db.getAllFromIndex("outbox", "status", "pending"))
          .sort((a, b) => a.recorded_at.localeCompare(b.recorded_at))
          .slice(0, BATCH_MAX);
        if (!pending.length) return;
        batch = { key: crypto.randomUUID(), uuids: pending.map((v) => v.client_uuid) };
        await meta.set("batch", batch);
      }
      const items = [];
      for (const uuid of batch.uuids) {
        const row = await state.db.get("outbox", uuid);
        if (row) items.push(row.body);
      }
      if (!items.length) {
        await meta.del("batch");
        continue;
      }
      const resp = await api("/visits/batch/", {
        method: "POST",
        body: { visits: items },
        headers: { "Idempotency-Key": batch.key },
      });
      if (resp.status === 409) return; // idempotency_in_progress: the next sync retries
      if (resp.status >= 500) throw new Error(`服务器错误 ${resp.status}`);
      const data = await resp.json().catch(() => ({}));
      if (!resp.ok) {
        // The whole batch was refused (e.g. 400 naming `visits`): show it on every item.
        for (const body of items) await saveResult(body.client_uuid, "rejected", { errors: data });
      } else {
        for (const r of data.results || []) {
          await saveResult(r.client_uuid, r.status, r);
          if ((r.status === "accepted" || r.status === "duplicate") && r.closed_tasks) {
            for (const id of r.closed_tasks) {
              const t = await state.db.get("tasks", id);
              if (t) await state.db.put("tasks", Object.assign(t, { status: "done" }));
            }
          }
        }
      }
      await meta.del("batch");
    }
  }

  async function saveResult(uuid, status, result) {
    const row = await state.db.get("outbox", uuid);
    if (!row) return;
    row.status = status;
    row.result = result;
    row.sent_at = new Date().toISOString();
    await state.db.put("outbox", row);
  }

  /** Pull the change feed from the stored cursor until has_more is false. */
  async function pullFeed() {
    for (;;) {
      const since = await meta.get("cursor");
      const resp = await api(`/sync/changes/${since ? `?since=${encodeURIComponent(since)}` : ""}`);
      if (resp.status === 400 && since) {
        await meta.del("cursor"); // a cursor the server no longer takes: first sync
        continue;
      }
      if (!resp.ok) throw new Error(`同步失败 (${resp.status})`);
      const page = await resp.json();
      await applyPage(page);
      await meta.set("cursor", page.cursor); // only after the page is applied
      if (!page.has_more) return;
    }
  }

  async function applyPage(page) {
    const names = ["households", "residents", "tasks", "cases", "inbox"];
    const tx = state.db.transaction(names, "readwrite");
    const st = Object.fromEntries(names.map((n) => [n, tx.objectStore(n)]));
    const purge = page.purge || {};
    // Purge first: a household takes its residents and tasks along.
    for (const id of purge.households || []) {
      await st.households.delete(id);
      for (const rid of await st.residents.index("household").getAllKeys(id)) await st.residents.delete(rid);
      for (const tid of await st.tasks.index("household").getAllKeys(id)) await st.tasks.delete(tid);
    }
    for (const name of ["residents", "tasks", "cases"]) {
      for (const id of purge[name] || []) await st[name].delete(id);
    }
    for (const h of page.households || []) {
      const keep = new Set(h.residents || []);
      for (const rid of await st.residents.index("household").getAllKeys(h.id)) {
        if (!keep.has(rid)) await st.residents.delete(rid);
      }
      await st.households.put(h);
    }
    for (const name of ["residents", "tasks", "inbox"]) {
      for (const row of page[name] || []) await st[name].put(row);
    }
    for (const row of page.cases || []) {
      // the version the member last saw stays with the case (If-Match of their next action)
      const old = await st.cases.get(row.id);
      if (old && old.etag) Object.assign(row, { etag: old.etag, detail: old.detail });
      await st.cases.put(row);
    }
    await tx.done;
  }

  /** Today's walking order (GET /api/v1/visits/route/), from the last GPS fix when there is
   * one; kept for the day so the list stays in that order offline. */
  async function loadRoute() {
    const fix = await meta.get("lastFix");
    const q = fix ? `?start_lon=${fix.lon}&start_lat=${fix.lat}` : "";
    const resp = await api(`/visits/route/${q}`);
    if (!resp.ok) return;
    const route = await resp.json();
    const order = {};
    let n = 0;
    route.stops.forEach((stop, i) => {
      for (const t of stop.tasks) order[t.id] = { rank: n++, stop: i + 1 };
    });
    await meta.set("route", {
      date: route.date,
      order,
      length_m: route.length_m,
      stops: route.stops.length,
      // for the map: where each stop is, how urgent its tasks are, and the walking path
      points: route.stops.map((stop, i) => ({
        n: i + 1,
        lon: stop.lon,
        lat: stop.lat,
        name: stop.building_name || stop.building_code || "",
        tasks: stop.tasks.map((t) => t.id),
      })),
      start: route.start,
      path: route.path,
    });
  }

  // ---------------------------------------------------------------- the map (MapLibre)
  //
  // A small map of the member's grid above today's tasks: the grid and its buildings from our
  // own vector tiles (/tiles/{layer}/{z}/{x}/{y}.mvt, WGS84 web mercator — the map has no
  // third-party basemap, so no GCJ-02 shift is needed), the stops of the day's route numbered
  // in walking order (red: overdue, orange: due today), the walking path and the last GPS fix.
  // Tiles are fetched with the member's token and kept in IndexedDB, so the map opens offline.

  const EMPTY = { type: "FeatureCollection", features: [] };
  const map = { lib: null, gl: null, ready: null, markers: [], view: "" };
  state.map = map; // for tests

  function loadMapLibre() {
    if (!map.lib) {
      map.lib = new Promise((resolve, reject) => {
        const css = document.createElement("link");
        css.rel = "stylesheet";
        css.href = "vendor/maplibre-gl.css";
        document.head.appendChild(css);
        const js = document.createElement("script");
        js.src = "vendor/maplibre-gl.js";
        js.onload = () => resolve(window.maplibregl);
        js.onerror = () => {
          map.lib = null;
          reject(new Error("地图组件未能加载"));
        };
        document.head.appendChild(js);
      });
    }
    return map.lib;
  }

  function countOn(el, key) {
    el.dataset[key] = String(Number(el.dataset[key] || 0) + 1);
  }

  /** fieldtile://<layer>/<z>/<x>/<y>: one of our vector tiles, from the network when online
   * (and kept), else the copy kept on the phone; never an error (an empty tile instead). */
  async function tileProtocol(params) {
    const key = params.url.slice("fieldtile://".length);
    const el = $("map");
    if (navigator.onLine && state.session) {
      try {
        const resp = await api(`/tiles/${key}.mvt`, { root: true });
        if (resp.ok) {
          const data = await resp.arrayBuffer();
          if (state.db) await state.db.put("tiles", data, key);
          countOn(el, "tilesNetwork");
          return { data };
        }
      } catch (e) {
        /* the network failed after all: the kept copy */
      }
    }
    const kept = state.db ? await state.db.get("tiles", key) : undefined;
    countOn(el, kept ? "tilesCached" : "tilesMissing");
    return { data: kept || new ArrayBuffer(0) };
  }

  function makeMap(gl) {
    gl.addProtocol("fieldtile", tileProtocol);
    const vector = (layer, minzoom) => ({ type: "vector", tiles: [`fieldtile://${layer}/{z}/{x}/{y}`], minzoom, maxzoom: 18 });
    const m = new gl.Map({
      container: "map",
      style: {
        version: 8,
        sources: { grids: vector("grids", 8), buildings: vector("buildings", 13), path: { type: "geojson", data: EMPTY } },
        layers: [
          { id: "bg", type: "background", paint: { "background-color": "#eef2f5" } },
          { id: "grid-fill", type: "fill", source: "grids", "source-layer": "grids", paint: { "fill-color": "#ffffff", "fill-opacity": 0.8 } },
          { id: "building", type: "fill", source: "buildings", "source-layer": "buildings", paint: { "fill-color": "#9aa5b1" } },
          { id: "grid-line", type: "line", source: "grids", "source-layer": "grids", paint: { "line-color": "#0b4f6c", "line-width": 2 } },
          { id: "path", type: "line", source: "path", paint: { "line-color": "#1565c0", "line-width": 3, "line-dasharray": [2, 1] } },
        ],
      },
      center: [103.775, 36.059],
      zoom: 15,
      maxZoom: 19,
      attributionControl: false,
      dragRotate: false,
      pitchWithRotate: false,
      canvasContextAttributes: { preserveDrawingBuffer: true }, // pixels readable (tests)
    });
    m.addControl(new gl.ScaleControl({ unit: "metric" }), "bottom-left");
    m.on("error", (e) => ($("map").dataset.error = String((e.error && e.error.message) || e.error || "error")));
    map.gl = m;
    return new Promise((resolve) => m.on("load", () => resolve(m)));
  }

  /** Draw (or redraw) the map: stops in walking order with due/overdue colours, the path, the
   * member's last fix. Not awaited by render(): the list never waits for the map. */
  async function renderMap() {
    const el = $("map");
    const day = today();
    const route = await meta.get("route");
    const points = route && route.date === day ? route.points || [] : [];
    const fix = await meta.get("lastFix");
    el.hidden = !points.length && !fix;
    el.dataset.stops = String(points.length);
    if (el.hidden) {
      for (const mk of map.markers) mk.remove();
      map.markers = [];
    }
    if (el.hidden || state.tab !== "tasks" || $("main-view").hidden) return;
    let gl;
    try {
      gl = await loadMapLibre();
      if (!map.ready) map.ready = makeMap(gl);
      await map.ready;
    } catch (e) {
      el.dataset.error = e.message;
      return;
    }
    const m = map.gl;
    m.resize();
    m.getSource("path").setData(route && route.date === day && route.path ? route.path : EMPTY);
    const tasks = new Map((await state.db.getAll("tasks")).map((t) => [t.id, t]));
    for (const mk of map.markers) mk.remove();
    map.markers = [];
    const bounds = new gl.LngLatBounds();
    for (const p of points) {
      const open = p.tasks.map((id) => tasks.get(id)).filter((t) => t && (t.status === "open" || t.status === "overdue"));
      const cls = !open.length
        ? "done"
        : open.some((t) => t.status === "overdue" || t.due_on < day)
          ? "overdue"
          : open.some((t) => t.due_on === day)
            ? "due"
            : "open";
      const dot = document.createElement("div");
      dot.className = `stop ${cls}`;
      dot.textContent = String(p.n);
      dot.title = p.name;
      dot.dataset.stop = String(p.n);
      dot.dataset.urgency = cls;
      map.markers.push(new gl.Marker({ element: dot }).setLngLat([p.lon, p.lat]).addTo(m));
      bounds.extend([p.lon, p.lat]);
    }
    if (fix) {
      const me = document.createElement("div");
      me.className = "me";
      me.title = "我的位置";
      map.markers.push(new gl.Marker({ element: me }).setLngLat([fix.lon, fix.lat]).addTo(m));
      bounds.extend([fix.lon, fix.lat]);
    }
    const view = JSON.stringify(bounds.toArray());
    if (view !== map.view) {
      map.view = view; // fit once per new set of points: the member's panning is kept
      m.fitBounds(bounds, { padding: 36, maxZoom: 17, duration: 0 });
    }
    el.dataset.ready = "1";
  }

  /** Case categories (for a finding that opens a case), kept for offline use. */
  async function loadCategories() {
    const resp = await api("/categories/");
    if (!resp.ok) return;
    const rows = await resp.json();
    const list = (Array.isArray(rows) ? rows : rows.results || [])
      .filter((c) => c.active !== false && c.code && c.code.includes("."))
      .map((c) => ({ code: c.code, name: c.name }));
    await meta.set("categories", list);
  }

  async function fillCategories(id = "visit-category", noneText = "不上报，仅记录") {
    const select = $(id);
    const frag = document.createDocumentFragment();
    const none = document.createElement("option");
    none.value = "";
    none.textContent = noneText;
    frag.appendChild(none);
    for (const c of (await meta.get("categories")) || []) {
      const o = document.createElement("option");
      o.value = c.code;
      o.textContent = `${c.name}（${c.code}）`;
      frag.appendChild(o);
    }
    select.replaceChildren(frag);
  }

  /** A photo scaled down on the phone (longest side ≤ 1600 px, JPEG) as base64. */
  async function downscale(file, max = 1600) {
    const bmp = await createImageBitmap(file);
    const k = Math.min(1, max / Math.max(bmp.width, bmp.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(bmp.width * k);
    canvas.height = Math.round(bmp.height * k);
    canvas.getContext("2d").drawImage(bmp, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.8));
    const url = await new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    });
    return String(url).split(",", 2)[1];
  }

  async function sync() {
    if (!state.session) return;
    if (state.syncing) {
      state.again = true; // asked for during a sync: one more after it, never lost
      return;
    }
    if (!navigator.onLine) {
      $("sync-msg").textContent = "离线：记录保存在手机上，联网后自动发送。";
      return;
    }
    state.syncing = true;
    $("sync-msg").textContent = "正在同步…";
    try {
      await flushOutbox();
      await flushRequests();
      await pullFeed();
      await loadCategories();
      await loadRoute();
      await loadVenueTasks();
      await loadMe();
      await loadPairings();
      await loadCampaignReturns();
      const now = new Date().toISOString();
      await meta.set("lastSync", now);
      $("sync-msg").textContent = "同步完成。";
    } catch (e) {
      if (e instanceof AuthError) {
        $("sync-msg").textContent = "";
        $("login-error").textContent = "登录已过期，请重新登录（未发送的记录仍保留）。";
        show("login");
      } else if (e instanceof TooOldError) {
        $("update-text").textContent = `${e.message}。未发送的记录保留在手机上。`;
        show("update");
      } else {
        $("sync-msg").textContent = `同步未完成：${e.message || e}（稍后自动重试）`;
      }
    } finally {
      state.syncing = false;
      await render();
      if (state.again) {
        state.again = false;
        sync();
      }
    }
  }

  // ---------------------------------------------------------------- screens

  function show(name) {
    for (const v of ["login", "main", "visit", "venue", "update", "case"]) $(`${v}-view`).hidden = v !== name;
    if (name === "main" && state.tab === "tasks") renderMap();
  }

  function householdLabel(h) {
    if (!h) return "（住户不在本机）";
    const unit = h.unit_number ? `${h.unit_number}单元` : "";
    return `${h.building_name || ""} ${unit} ${h.room || ""}`.replace(/\s+/g, " ").trim();
  }

  function li(main, sub, badges, button) {
    const item = document.createElement("li");
    const what = document.createElement("div");
    what.className = "what";
    const title = document.createElement("div");
    title.textContent = main;
    for (const [text, cls] of badges) {
      const b = document.createElement("span");
      b.className = `badge ${cls}`;
      b.textContent = text;
      title.appendChild(b);
    }
    what.appendChild(title);
    if (sub) {
      const s = document.createElement("div");
      s.className = "sub";
      s.textContent = sub;
      what.appendChild(s);
    }
    item.appendChild(what);
    if (button) item.appendChild(button);
    return item;
  }

  function visitButton(household, task) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "primary visit";
    b.textContent = "走访";
    b.addEventListener("click", () => openVisit(household, task));
    return b;
  }

  /** Today's tasks: open or overdue, period begun; overdue first, then by due date. */
  async function todaysTasks() {
    const day = today();
    const route = await meta.get("route");
    const order = route && route.date === day ? route.order : {};
    const rank = (t) => (order[t.id] ? order[t.id].rank : Infinity);
    return (await state.db.getAll("tasks"))
      .filter((t) => (t.status === "open" || t.status === "overdue") && t.period_start <= day)
      .sort((a, b) => {
        if (rank(a) !== rank(b)) return rank(a) < rank(b) ? -1 : 1; // walking order first
        const ao = a.status === "overdue" || a.due_on < day ? 0 : 1;
        const bo = b.status === "overdue" || b.due_on < day ? 0 : 1;
        return ao - bo || a.due_on.localeCompare(b.due_on) || a.id - b.id;
      });
  }

  async function renderTasks() {
    const day = today();
    const tasks = await todaysTasks();
    const route = await meta.get("route");
    const order = route && route.date === day ? route.order : {};
    $("route-info").textContent =
      route && route.date === day && route.stops
        ? `步行路线：${route.stops} 站，约 ${Math.round(route.length_m)} 米`
        : "";
    const visited = new Set(
      (await state.db.getAll("outbox")).filter((v) => v.status !== "rejected").map((v) => v.body.task)
    );
    const list = document.createDocumentFragment(); // swapped in whole: never half a list
    for (const t of tasks) {
      const h = await state.db.get("households", t.household);
      const badges = [];
      if (t.status === "overdue" || t.due_on < day) badges.push(["逾期", "overdue"]);
      else if (t.due_on === day) badges.push(["今日到期", "due"]);
      if (visited.has(t.id)) badges.push(["已走访", "pending"]);
      if (order[t.id]) badges.push([`第${order[t.id].stop}站`, "stop"]);
      const item = li(householdLabel(h), `${t.rule_name || t.rule} · 截止 ${t.due_on}`, badges, visitButton(h, t));
      item.dataset.task = t.id;
      list.appendChild(item);
    }
    $("task-list").replaceChildren(list);
    const venues = await renderVenueTasks();
    $("task-empty").hidden = tasks.length + venues > 0;
  }

  // ---------------------------------------------------------------- 宗教场所共同走访 (issue 20)

  /** The member's joint venue visits due (每个月和清真寺共同走访, ?mine=1), kept on the phone
   * at each sync so they show offline; a member who does no community work gets none. */
  function loadVenueTasks() {
    return keepList("/community/venue-tasks/?mine=1&page_size=100", "venueTasks");
  }

  /** A list the phone keeps under ``key`` from one page of ``path``: none when refused
   * (403/404); the phone's copy kept when the server fails. */
  async function keepList(path, key) {
    const resp = await api(path);
    if (resp.status === 403 || resp.status === 404) {
      await meta.set(key, []);
      return;
    }
    if (!resp.ok) return; // keep the phone's copy
    const data = await resp.json();
    await meta.set(key, Array.isArray(data) ? data : data.results || []);
  }

  /** The member's own team memberships running today (/me/'s unity_memberships), kept on the
   * phone at each sync: the 五员一日一报 is shown only to a 五员 member. */
  async function loadMe() {
    const resp = await api("/me/");
    if (!resp.ok) return; // keep the phone's copy
    const data = await resp.json();
    await meta.set("me", {
      id: data.id,
      unity_memberships: data.unity_memberships || [],
      // the posts held now, for what the phone offers (信访: staff; 调处: the mediation committee)
      positions: (data.positions || []).map((p) => ({
        position_type: p.position_type,
        target_type: p.target_type,
        target_id: p.target_id,
        on_leave: p.on_leave,
      })),
    });
  }

  /** The pairings (结对帮扶 …) the member may record help under, kept at each sync: the
   * server lists those in the member's work scope (a member of no such scope gets none). */
  function loadPairings() {
    return keepList("/community/pairings/?page_size=200", "pairings");
  }

  /** The member's team memberships as last synced ([] before the first sync). */
  async function memberships() {
    const me = await meta.get("me");
    return (me && me.unity_memberships) || [];
  }

  /** Venue tasks open or overdue whose period has begun, overdue first, then by due date. */
  async function venueTasks() {
    const day = today();
    return ((await meta.get("venueTasks")) || [])
      .filter((t) => (t.status === "open" || t.status === "overdue") && t.period_start <= day)
      .sort((a, b) => {
        const ao = a.status === "overdue" || a.due_on < day ? 0 : 1;
        const bo = b.status === "overdue" || b.due_on < day ? 0 : 1;
        return ao - bo || a.due_on.localeCompare(b.due_on) || a.id - b.id;
      });
  }

  async function renderVenueTasks() {
    const day = today();
    const tasks = await venueTasks();
    const queued = new Set(
      (await state.db.getAll("requests")).filter((r) => r.venueTask && r.status !== "refused").map((r) => r.venueTask)
    );
    const list = document.createDocumentFragment();
    for (const t of tasks) {
      const badges = [];
      if (t.status === "overdue" || t.due_on < day) badges.push(["逾期", "overdue"]);
      else if (t.due_on === day) badges.push(["今日到期", "due"]);
      if (queued.has(t.id)) badges.push(["已走访", "pending"]);
      const b = document.createElement("button");
      b.type = "button";
      b.className = "primary visit";
      b.textContent = "走访";
      b.addEventListener("click", () => openVenueVisit(t));
      const item = li(t.place_name || `场所 ${t.place}`, `宗教场所共同走访 · 截止 ${t.due_on}`, badges, b);
      item.dataset.venueTask = t.id;
      list.appendChild(item);
    }
    $("venue-list").replaceChildren(list);
    $("venue-head").hidden = tasks.length === 0;
    return tasks.length;
  }

  let venueCurrent = null; // the venue task being recorded

  function openVenueVisit(task) {
    venueCurrent = { task, position: null };
    $("venue-target").textContent = `${task.place_name || `场所 ${task.place}`} · 截止 ${task.due_on}`;
    $("venue-joint").checked = true;
    $("venue-participants").value = "2";
    $("venue-hazards").value = "";
    $("venue-note").value = "";
    $("venue-photo").value = "";
    $("venue-save").disabled = false;
    show("venue");
    locate($("venue-gps"), (coords) => {
      if (venueCurrent && venueCurrent.task === task) venueCurrent.position = coords;
    });
  }

  /** The phone's fix (navigator.geolocation, with its accuracy), shown in `msg`; `done(coords)`
   * when there is one. Without a fix the record is still saved (the server then has none). */
  function locate(msg, done) {
    msg.textContent = "正在定位…";
    if (!navigator.geolocation) {
      msg.textContent = "此设备不支持定位";
      return;
    }
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        done(pos.coords);
        meta.set("lastFix", { lon: pos.coords.longitude, lat: pos.coords.latitude });
        msg.textContent = `已定位：精度 ±${Math.round(pos.coords.accuracy)} 米`;
      },
      (err) => {
        msg.textContent = `未能定位（${err.message || err.code}），仍可保存`;
      },
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 0 }
    );
  }

  /** The venue visit goes through the community offline batch (kind venue_visit), queued with
   * its client_uuid and Idempotency-Key before it is ever sent; the server completes the task. */
  async function saveVenueVisit() {
    const c = venueCurrent;
    if (!c || $("venue-save").disabled) return;
    const t = c.task;
    $("venue-save").disabled = true;
    const participants = Math.max(0, parseInt($("venue-participants").value, 10) || 0);
    const data = {
      place: t.place,
      date: today(),
      joint: $("venue-joint").checked,
      participants,
      hazards: $("venue-hazards").value.trim(),
      note: $("venue-note").value.trim(),
    };
    if (c.position) {
      // where it was recorded: the server measures it from the venue (偏远 when far off)
      data.lon = Number(c.position.longitude.toFixed(7));
      data.lat = Number(c.position.latitude.toFixed(7));
      data.accuracy_m = Math.round(c.position.accuracy * 10) / 10;
      data.crs = "wgs84";
    }
    const photo = $("venue-photo").files[0];
    if (photo) {
      try {
        data.photos = [{ data: await downscale(photo) }]; // kept in the queue until sent
      } catch (e) {
        $("venue-gps").textContent = "照片无法读取，请重新选择";
        $("venue-save").disabled = false;
        return;
      }
    }
    const body = { items: [{ kind: "venue_visit", client_uuid: crypto.randomUUID(), data }] };
    await queueRequest(`宗教场所走访 ${t.place_name || t.place}`, "POST", "/community/batch/", body, {
      venueTask: t.id,
      batchItem: true,
    });
    venueCurrent = null;
    show("main");
    selectTab("outbox");
    await render();
    sync();
  }

  // ---------------------------------------------------------------- 五员一日一报 and 活动 (issue 20)

  const RISK_TEXT = { low: "低", medium: "中", high: "高" };

  /** Queue one item of the community offline batch (kind `screening` or `activity`) with its
   * client_uuid and Idempotency-Key, before it is ever sent: a retry is a duplicate. */
  async function queueCommunityItem(label, kind, data) {
    const body = { items: [{ kind, client_uuid: crypto.randomUUID(), data }] };
    await queueRequest(label, "POST", "/community/batch/", body, { batchItem: true, communityKind: kind });
    await render();
    sync();
  }

  /** 五员一日一报 (screening for 不稳定因素): a one-tap 零报告, or one finding (what, where,
   * risk — written into the report's findings). Shown in the 一日一报 card only to a member
   * holding a 五员 membership (/me/); one whose membership ended since the last sync hears
   * the server's refusal (not_five) in the outbox. */
  async function saveScreening(zero) {
    const what = $("screen-what").value.trim();
    if (!zero && !what) {
      $("screen-msg").textContent = "请填写发现的情况，或点“零报告”。";
      return;
    }
    let data = { date: today(), zero_report: true };
    if (!zero) {
      const parts = [what];
      const where = $("screen-where").value.trim();
      if (where) parts.push(`地点：${where}`);
      parts.push(`风险：${RISK_TEXT[$("screen-risk").value] || "中"}`);
      data = { date: today(), zero_report: false, findings: parts.join("；"), findings_count: 1 };
    }
    $("screen-what").value = "";
    $("screen-where").value = "";
    $("screen-found").open = false;
    $("screen-msg").textContent = "已保存，联网后发送。";
    await queueCommunityItem(zero ? `五员一日一报 ${data.date}：零报告` : `五员一日一报 ${data.date}：${what}`, "screening", data);
  }

  /** The grids of the member's households on the phone: an activity names one (the server
   * places a grid member's record in a grid); asked only when there are several. */
  async function fillActivityGrids() {
    const grids = [...new Set((await state.db.getAll("households")).map((h) => h.grid).filter((g) => g))].sort(
      (a, b) => a - b
    );
    const select = $("activity-grid");
    if (select.dataset.grids === grids.join(",")) return;
    select.dataset.grids = grids.join(",");
    select.replaceChildren(
      ...grids.map((g) => {
        const o = document.createElement("option");
        o.value = String(g);
        o.textContent = `网格 ${g}`;
        return o;
      })
    );
    $("activity-grid-label").hidden = grids.length < 2;
  }

  /** 活动与宣传 (座谈会, 宣传…), recorded offline like the visits. The batch kind takes no
   * photo (an activity's photos are a separate upload), so the form has none. */
  async function saveActivity() {
    const title = $("activity-title").value.trim();
    if (!title) {
      $("activity-msg").textContent = "请填写标题。";
      return;
    }
    const count = (id) => Math.max(0, parseInt($(id).value, 10) || 0);
    const kind = $("activity-kind");
    const data = {
      kind: kind.value,
      title,
      date: $("activity-date").value || today(),
      participants: count("activity-participants"),
      materials: count("activity-materials"),
    };
    if ($("activity-grid").value) data.grid = Number($("activity-grid").value);
    $("activity-title").value = "";
    $("activity-participants").value = "0";
    $("activity-materials").value = "0";
    $("activity-msg").textContent = "已保存，联网后发送。";
    const name = kind.options[kind.selectedIndex].textContent;
    await queueCommunityItem(`活动 ${data.date} ${name}：${title}`, "activity", data);
  }

  // ---------------------------------------------------------------- 服务时长 and 结对帮扶

  /** A select's options from [value, text] pairs, redrawn only when they change (the
   * member's choice survives a re-render). */
  function fillSelect(select, pairs) {
    const key = JSON.stringify(pairs);
    if (select.dataset.options === key) return;
    select.dataset.options = key;
    select.replaceChildren(
      ...pairs.map(([value, text]) => {
        const o = document.createElement("option");
        o.value = String(value);
        o.textContent = text;
        return o;
      })
    );
  }

  /** The cards for service hours (the member's own team memberships, /me/) and 结对帮扶 (the
   * pairings in their scope, their own first), each shown only when there is one to name. */
  async function fillUnityForms() {
    const mine = await memberships();
    fillSelect(
      $("hours-membership"),
      mine.map((m) => [m.id, `${m.team_name} · ${m.role_name}${m.community_name ? ` · ${m.community_name}` : ""}`])
    );
    $("hours-card").hidden = mine.length === 0;
    const me = (await meta.get("me")) || {};
    const households = new Map((await state.db.getAll("households")).map((h) => [h.id, h]));
    const day = today();
    const pairings = ((await meta.get("pairings")) || [])
      .filter((p) => p.started <= day && (!p.ended || p.ended >= day))
      .sort((a, b) => (b.member === me.id) - (a.member === me.id) || a.id - b.id);
    fillSelect(
      $("help-pairing"),
      pairings.map((p) => {
        const h = households.get(p.household);
        const who = p.member_name || p.partner || "";
        const where = h ? householdLabel(h) : p.household ? `住户 ${p.household}` : "";
        return [p.id, [`#${p.id}`, who, where].filter(Boolean).join(" · ")];
      })
    );
    $("help-card").hidden = pairings.length === 0;
    for (const id of ["hours-date", "help-date"]) {
      $(id).max = day;
      if (!$(id).value) $(id).value = day;
    }
  }

  /** 志愿服务时长: a day's hours under one of the member's team memberships (batch kind
   * `service_log`), queued offline like an activity. */
  async function saveHours() {
    const hours = Number($("hours-hours").value);
    if (!$("hours-membership").value || !(hours > 0 && hours <= 24)) {
      $("hours-msg").textContent = "请选择队伍，并填写 0.5–24 小时。";
      return;
    }
    const data = {
      membership: Number($("hours-membership").value),
      date: $("hours-date").value || today(),
      hours: hours.toFixed(1),
      note: $("hours-note").value.trim(),
    };
    $("hours-note").value = "";
    $("hours-msg").textContent = "已保存，联网后发送。";
    await queueCommunityItem(`服务时长 ${data.date} ${data.hours} 小时${data.note ? `：${data.note}` : ""}`, "service_log", data);
  }

  /** 结对帮扶的帮扶记录: what was done under a pairing on a day, with hours and money or
   * goods' value when given (batch kind `pairing_help`), queued offline. */
  async function savePairingHelp() {
    const what = $("help-what").value.trim();
    if (!$("help-pairing").value || !what) {
      $("help-msg").textContent = "请选择结对，并填写帮扶内容。";
      return;
    }
    const data = { pairing: Number($("help-pairing").value), date: $("help-date").value || today(), what };
    if ($("help-hours").value) data.hours = Number($("help-hours").value).toFixed(1);
    if ($("help-amount").value) data.amount = Number($("help-amount").value).toFixed(2);
    for (const id of ["help-what", "help-hours", "help-amount"]) $(id).value = "";
    $("help-msg").textContent = "已保存，联网后发送。";
    await queueCommunityItem(`结对帮扶 ${data.date}：${what}`, "pairing_help", data);
  }

  // ---------------------------------------------------------------- 排查报送, 信访, 调处

  /** The grid's returns to screening campaigns (矛盾纠纷排查化解月, 排查不稳定因素), kept at
   * each sync for offline filing; each return names its campaign and period (campaign_name,
   * campaign_start, campaign_end), so campaigns/ is not downloaded. The campaigns an older
   * version kept are dropped once the returns kept are of the new kind. */
  async function loadCampaignReturns() {
    await keepList("/community/campaign-returns/?page_size=200", "campaignReturns");
    const kept = (await meta.get("campaignReturns")) || [];
    if (kept.every((r) => "campaign_name" in r)) await meta.del("campaigns");
  }

  /** Returns still to file: not filed, their campaign running today, none queued for them. */
  async function openReturns() {
    const day = today();
    // only a copy kept by an older version (before its first sync with this one) has these
    const campaigns = new Map(((await meta.get("campaigns")) || []).map((c) => [c.id, c]));
    const queued = new Set(
      (await state.db.getAll("requests"))
        .filter((r) => r.campaignReturn && r.status !== "refused")
        .map((r) => r.campaignReturn)
    );
    return ((await meta.get("campaignReturns")) || [])
      .filter((r) => !r.filed_at && !queued.has(r.id))
      // the campaign's name and period: the return's own campaign_name / campaign_start /
      // campaign_end; a return kept by an older version has none: the campaigns it kept then
      .map((r) => ({
        ...r,
        c: r.campaign_name
          ? { name: r.campaign_name, start: r.campaign_start, end: r.campaign_end }
          : campaigns.get(r.campaign),
      }))
      .filter((r) => !r.c || ((!r.c.start || r.c.start <= day) && (!r.c.end || day <= r.c.end)))
      .sort((a, b) => a.campaign - b.campaign || a.grid - b.grid);
  }

  function returnLabel(r) {
    const name = r.c ? r.c.name : `排查活动 #${r.campaign}`;
    return `${name}${r.grid ? ` · 网格 ${r.grid}` : ""}`;
  }

  /** Who may mediate where (the server's may_mediate): the community of a running 五员
   * 调处员 membership not on leave (/me/'s unity_memberships: running today, with on_leave),
   * or of a 社区人民调解委员会 post not on leave (/me/'s positions). */
  function mediatorCommunities(me) {
    const ids = new Set();
    for (const m of me.unity_memberships || []) {
      if (m.team === "five_members" && m.role === "mediator" && m.community && !m.on_leave) ids.add(m.community);
    }
    for (const p of me.positions || []) {
      if (p.position_type === "mediation_committee" && p.target_type === "community" && !p.on_leave) ids.add(p.target_id);
    }
    return ids;
  }

  /** Posts that give no community work (楼长, 单元长, 业委会, 物业; the district's officer):
   * a member holding only these records no 信访 (the server refuses them). */
  const NO_WORK_POSTS = new Set(["unit_head", "building_head", "owners_committee", "property_manager", "district_officer"]);

  /** The cards for a campaign return (only with a return to file), a 信访 (grid, community
   * and street staff) and a mediation (the community's 调处员 / mediation committee). */
  async function fillCommunityForms() {
    const day = today();
    const returns = await openReturns();
    fillSelect($("campaign-return"), returns.map((r) => [r.id, returnLabel(r)]));
    $("campaign-card").hidden = returns.length === 0;

    const me = (await meta.get("me")) || {};
    $("petition-card").hidden = !(me.positions || []).some((p) => !NO_WORK_POSTS.has(p.position_type));
    const grids = [...new Set((await state.db.getAll("households")).map((h) => h.grid).filter((g) => g))].sort(
      (a, b) => a - b
    );
    fillSelect($("petition-grid"), grids.map((g) => [g, `网格 ${g}`]));
    $("petition-grid-label").hidden = grids.length < 2;

    const communities = mediatorCommunities(me);
    const disputes = (await state.db.getAll("cases"))
      .filter((c) => c.kind === "dispute" && communities.has(c.community) && !["void", "merged"].includes(c.status))
      .sort((a, b) => String(b.reported_at).localeCompare(String(a.reported_at)));
    fillSelect($("mediation-case"), disputes.map((c) => [c.id, `${c.number} ${c.title || ""}`.trim()]));
    $("mediation-none").hidden = disputes.length > 0;
    $("mediation-card").hidden = communities.size === 0;
    for (const id of ["petition-date", "mediation-date"]) {
      $(id).max = day;
      if (!$(id).value) $(id).value = day;
    }
  }

  /** 排查报送: the grid's return to a campaign, a 零报告 or findings (batch kind
   * `campaign_return`, as campaign-returns/{id}/file/), with the phone's time: a filing
   * recorded on the server later than this one wins (the phone's is refused, stale_filing). */
  async function saveCampaignReturn() {
    const id = Number($("campaign-return").value);
    const ret = (await openReturns()).find((r) => r.id === id);
    if (!ret) {
      $("campaign-msg").textContent = "请选择排查活动。";
      return;
    }
    const zero = $("campaign-zero").checked;
    const findings = $("campaign-findings").value.trim();
    if (!zero && !findings) {
      $("campaign-msg").textContent = "请填写发现情况，或勾选零报告。";
      return;
    }
    const data = { campaign: ret.campaign, grid: ret.grid, zero_report: zero, client_time: isoLocal(new Date()) };
    if (!zero) Object.assign(data, { findings, findings_count: Math.max(1, parseInt($("campaign-count").value, 10) || 1) });
    $("campaign-findings").value = "";
    $("campaign-count").value = "1";
    $("campaign-zero").checked = true;
    $("campaign-found").hidden = true;
    $("campaign-msg").textContent = "已保存，联网后发送。";
    const body = { items: [{ kind: "campaign_return", client_uuid: crypto.randomUUID(), data }] };
    await queueRequest(`排查报送 ${returnLabel(ret)}：${zero ? "零报告" : findings}`, "POST", "/community/batch/", body, {
      batchItem: true,
      communityKind: "campaign_return",
      campaignReturn: ret.id,
    });
    await render();
    sync();
  }

  /** 信访登记 (batch kind `petition`, as petitions/): the petitioner's name travels in the
   * queued item only — never in its label — and leaves the phone once the server answered. */
  async function savePetition() {
    const petitioner = $("petition-name").value.trim();
    const subject = $("petition-subject").value.trim();
    if (!petitioner || !subject) {
      $("petition-msg").textContent = "请填写来访人和反映事项。";
      return;
    }
    const data = {
      date: $("petition-date").value || today(),
      petitioner,
      subject,
      ethnic_religious: $("petition-ethnic").checked,
      group_size: Math.max(1, parseInt($("petition-size").value, 10) || 1),
    };
    if ($("petition-grid").value) data.grid = Number($("petition-grid").value);
    for (const id of ["petition-name", "petition-subject"]) $(id).value = "";
    $("petition-ethnic").checked = false;
    $("petition-size").value = "1";
    $("petition-msg").textContent = "已保存，联网后发送。";
    const size = data.group_size >= 5 ? `（集体访 ${data.group_size} 人）` : "";
    await queueCommunityItem(`信访登记 ${data.date}：${subject}${size}`, "petition", data);
  }

  /** 调处: a mediation session of a dispute case (batch kind `mediation`, as mediations/):
   * offered to the community's 调处员 or mediation committee, for its dispute cases on the
   * phone; a member who may no longer mediate hears not_mediator. */
  async function saveMediation() {
    const id = Number($("mediation-case").value);
    const c = id && (await state.db.get("cases", id));
    if (!c) {
      $("mediation-msg").textContent = "请选择矛盾纠纷事件。";
      return;
    }
    const outcome = $("mediation-outcome");
    const data = {
      case: c.id,
      date: $("mediation-date").value || today(),
      outcome: outcome.value,
      note: $("mediation-note").value.trim(),
    };
    $("mediation-note").value = "";
    $("mediation-msg").textContent = "已保存，联网后发送。";
    const said = outcome.options[outcome.selectedIndex].textContent;
    await queueCommunityItem(`调处 ${data.date} ${c.number}：${said}`, "mediation", data);
  }

  async function renderHouseholds() {
    const q = $("hh-search").value.trim().toLowerCase();
    const terms = q.split(/\s+/).filter(Boolean);
    const all = (await state.db.getAll("households")).sort(
      (a, b) => householdLabel(a).localeCompare(householdLabel(b), "zh-CN", { numeric: true })
    );
    const hits = all.filter((h) => {
      const text = `${householdLabel(h)} ${h.building_name} ${h.unit_number}单元 ${h.room}`.toLowerCase();
      return terms.every((t) => text.includes(t));
    });
    const list = document.createDocumentFragment(); // swapped in whole: never half a list
    for (const h of hits.slice(0, 100)) {
      const sub = `户主 ${h.head_name || "—"} · ${h.resident_count} 人`;
      const item = li(householdLabel(h), sub, [], visitButton(h, null));
      item.dataset.household = h.id;
      list.appendChild(item);
    }
    $("hh-list").replaceChildren(list);
  }

  const RESULT_TEXT = {
    pending: ["待发送", "pending"],
    accepted: ["已发送", "sent"],
    duplicate: ["已发送（重复）", "sent"],
    conflict: ["冲突：服务器已有不同内容", "conflict"],
    rejected: ["被拒绝", "rejected"],
  };

  async function renderOutbox() {
    const rows = (await state.db.getAll("outbox")).sort((a, b) => b.recorded_at.localeCompare(a.recorded_at));
    const list = document.createDocumentFragment(); // swapped in whole: never half a list
    for (const v of rows) {
      const h = await state.db.get("households", v.body.household);
      const [text, cls] = RESULT_TEXT[v.status] || [v.status, ""];
      let sub = `记录于 ${showTime(v.recorded_at)}`;
      const r = v.result || {};
      if (v.status === "rejected" || v.status === "conflict") {
        sub += ` · ${why(r)}`;
      } else if (r.far_off) {
        sub += ` · 距住户 ${Math.round(r.distance_m)} 米（偏远）`;
      }
      if (v.body.photos) sub += ` · 照片 ${v.body.photos.length} 张`;
      if (r.case_ids && r.case_ids.length) sub += ` · 已上报事件 ${r.case_ids.length} 件`;
      let action = null;
      if (v.status === "conflict") {
        // The server keeps another visit under this UUID: if this really is a different
        // visit, it goes again under a new UUID (the old row is replaced).
        action = actionButton("作为新走访重发", "resend", () => resendAsNew(v));
      } else if (v.status === "rejected") {
        action = actionButton("删除", "drop", () => dropVisit(v));
      }
      const item = li(v.label || householdLabel(h), sub, [[text, cls]], action);
      item.dataset.uuid = v.client_uuid;
      item.dataset.status = v.status;
      list.appendChild(item);
    }
    const REQ_TEXT = {
      pending: ["待发送", "pending"],
      sent: ["已发送", "sent"],
      refused: ["被拒绝", "rejected"],
      conflict: ["冲突：已被他人更改", "conflict"],
    };
    const reqs = (await state.db.getAll("requests")).sort((a, b) => b.recorded_at.localeCompare(a.recorded_at));
    for (const r of reqs) {
      const [text, cls] = REQ_TEXT[r.status] || [r.status, ""];
      let sub = `记录于 ${showTime(r.recorded_at)}`;
      if (r.status === "sent" && r.replayed) sub += " · 服务器已收到（重发未重复）";
      if (r.status === "refused" || r.status === "conflict") sub += ` · ${why(r.result || {}, r.http)}`;
      else if (r.result && r.result.far_off) sub += ` · 距场所 ${Math.round(r.result.distance_m)} 米（偏远）`;
      const photos = requestPhotos(r);
      if (photos) sub += ` · 照片 ${photos} 张`;
      if (r.personalDropped) sub += " · 来访人信息已从手机删除";
      const item = li(r.label, sub, [[text, cls]]);
      item.dataset.key = r.key;
      item.dataset.status = r.status;
      list.appendChild(item);
    }
    $("outbox-list").replaceChildren(list);
    $("outbox-empty").hidden = rows.length + reqs.length > 0;
  }

  const WHY = {
    not_in_territory: "住户不在您的辖区",
    unknown_task: "任务不属于该住户",
    invalid: "内容有误",
    not_stored: "未能保存，请重发",
    conflict: "服务器已有同一编号的不同记录",
    stale_version: "已被他人更改",
    app_too_old: "应用版本过旧",
    not_mediator: "只有本社区的调处员或调委会可记录调处",
    permission_denied: "无权记录",
    not_five: "您不是五员团队成员，无需报送五员一日一报",
    stale_filing: "该网格已有更晚记录的报送，此条未采用",
    campaign_ended: "排查活动已结束，此条未采用",
  };

  /** The batch items' fields in words (a refused item's messages name them). */
  const FIELD_TEXT = {
    campaign: "排查活动",
    grid: "网格",
    case: "事件",
    date: "日期",
    petitioner: "来访人",
    subject: "反映事项",
    group_size: "来访人数",
    outcome: "调处结果",
    findings: "发现情况",
    client_time: "记录时间",
  };

  /** Why the server refused something, in words: the code, then each field's message. */
  function why(r, http) {
    const parts = [];
    if (http) parts.push(`HTTP ${http}`);
    if (r.code) parts.push(WHY[r.code] || r.code);
    if (r.current_version) parts.push(`服务器现为第 ${r.current_version} 版，请打开事件查看后重做`);
    if (r.allowed) parts.push(`当前状态不允许此操作（${CASE_STATUS[r.status] || r.status || ""}）`);
    const errors = r.errors || (r.code || r.allowed ? {} : r);
    for (const [field, msgs] of Object.entries(errors)) {
      if (["code", "current", "current_version", "If-Match", "allowed", "status"].includes(field)) continue;
      parts.push(`${FIELD_TEXT[field] || field}：${[].concat(msgs).join("；")}`);
    }
    return parts.join(" · ");
  }

  function actionButton(text, cls, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = cls;
    b.textContent = text;
    b.addEventListener("click", onClick);
    return b;
  }

  async function resendAsNew(v) {
    const body = Object.assign({}, v.body, { client_uuid: crypto.randomUUID() });
    const tx = state.db.transaction("outbox", "readwrite");
    await tx.store.delete(v.client_uuid);
    await tx.store.put({ client_uuid: body.client_uuid, body, status: "pending", recorded_at: v.recorded_at, label: v.label });
    await tx.done;
    await render();
    sync();
  }

  async function dropVisit(v) {
    if (!window.confirm("删除这条未被接受的走访记录？")) return;
    await state.db.delete("outbox", v.client_uuid);
    await render();
  }

  const CASE_STATUS = {
    reported: "已上报", assigned: "已派遣", in_progress: "处置中", on_hold: "挂起", resolved: "已办结",
    verified: "已核查", closed: "已结案", reopened: "重新打开", escalated: "已上报上级", transferred: "已转办",
    rejected: "已退回", void: "作废", merged: "已合并",
  };

  /** My cases (handled by me first) and my inbox, from the feed; a message is marked read
   * through the request queue (idempotent), so offline too. */
  async function renderCases() {
    // the feed's cases: those I handle first, then overdue ones, then the newest
    const mine = (await state.db.getAll("cases")).sort(
      (a, b) =>
        (b.mine ? 1 : 0) - (a.mine ? 1 : 0) ||
        (b.overdue ? 1 : 0) - (a.overdue ? 1 : 0) ||
        String(b.reported_at).localeCompare(String(a.reported_at))
    );
    const list = document.createDocumentFragment();
    for (const c of mine.slice(0, 200)) {
      const badges = [[CASE_STATUS[c.status] || c.status, ""]];
      if (c.mine) badges.push(["我处理", "pending"]);
      if (c.overdue) badges.push(["超时", "overdue"]);
      const item = li(
        `${c.number} ${c.title || ""}`,
        `${c.category || ""} · 上报于 ${showTime(c.reported_at)}${c.due_at ? ` · 时限 ${showTime(c.due_at)}` : ""}`,
        badges,
        actionButton("详情", "open", () => showCase(c.id))
      );
      item.dataset.case = c.id;
      list.appendChild(item);
    }
    $("case-list").replaceChildren(list);
    $("case-empty").hidden = mine.length > 0;
    const inbox = (await state.db.getAll("inbox")).sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
    const msgs = document.createDocumentFragment();
    for (const m of inbox.slice(0, 50)) {
      const button = m.read ? null : actionButton("已读", "read", () => markRead(m));
      const item = li(m.title, `${showTime(m.created_at)} · ${m.body || ""}`.slice(0, 140), m.read ? [] : [["未读", "due"]], button);
      item.dataset.message = m.id;
      item.dataset.read = m.read ? "1" : "0";
      msgs.appendChild(item);
    }
    $("inbox-list").replaceChildren(msgs);
    const unread = inbox.filter((m) => !m.read).length;
    $("unread").hidden = unread === 0;
    $("unread").textContent = String(unread);
  }

  // ---------------------------------------------------------------- one case: details, actions

  /** What the handler may do from the phone, by status (the server's workflow, ACTIONS in
   * gridsvc/cases/services.py): 开始处置 (start) and 办结 (resolve with the outcome). */
  const CASE_ACTIONS = {
    start: { label: "开始处置", from: ["assigned", "escalated", "reopened"], to: "in_progress" },
    resolve: { label: "办结", from: ["assigned", "in_progress", "escalated", "reopened", "transferred"], to: "resolved" },
  };
  let openCaseId = null;

  /** The case's status as the phone will have it once its queued actions are sent. */
  async function caseView(c) {
    const queued = (await state.db.getAll("requests")).filter((r) => r.caseId === c.id && r.status === "pending");
    let status = c.status;
    for (const r of queued.sort((a, b) => a.recorded_at.localeCompare(b.recorded_at))) status = CASE_ACTIONS[r.action].to;
    return { status, queued };
  }

  /** Open a case: what the phone has at once; online, the full case (GET /api/v1/cases/{id}/:
   * description, parties as masked for the member, outcome) and its ETag, kept for offline. */
  async function showCase(id) {
    openCaseId = id;
    $("case-outcome-text").value = "";
    $("case-note").textContent = "";
    await drawCase();
    show("case");
    if (!navigator.onLine) return;
    try {
      const resp = await api(`/cases/${id}/`);
      if (resp.status === 404) {
        await state.db.delete("cases", id); // no longer the member's to see
        $("case-note").textContent = "此事件已不在您的权限范围内。";
        return;
      }
      if (!resp.ok) return;
      await caseAnswered(id, resp, await resp.json());
      await drawCase();
    } catch (e) {
      /* offline after all: what the phone has */
    }
  }

  /** Keep the server's copy of a case (an answer to GET or to an action) with its ETag. */
  async function caseAnswered(id, resp, data) {
    const etag = resp.headers.get("ETag");
    const row = await state.db.get("cases", id);
    if (!row) return;
    if (resp.ok && data && data.id === id) {
      for (const k of ["status", "handler", "handler_name", "due_at", "due_stage", "overdue", "card", "closed_at", "updated_at", "title"]) {
        if (k in data) row[k] = data[k];
      }
      row.detail = data;
      if (etag) row.etag = etag;
    } else if (resp.status === 412) {
      delete row.etag; // the member must look at the server's copy before acting again
    }
    await state.db.put("cases", row);
  }

  async function drawCase() {
    const c = openCaseId && (await state.db.get("cases", openCaseId));
    if (!c) return;
    const d = c.detail || {};
    const { status, queued } = await caseView(c);
    $("case-head").textContent = `${c.number} ${c.title || ""}`;
    $("case-meta").textContent = [
      CASE_STATUS[status] || status,
      d.category_name || c.category || "",
      c.handler_name ? `处理人 ${c.handler_name}` : "",
      c.due_at ? `时限 ${showTime(c.due_at)}${c.overdue ? "（超时）" : ""}` : "",
    ].filter(Boolean).join(" · ");
    $("case-desc").textContent = d.description || (c.detail ? "" : "联网后显示详情。");
    const parties = (d.parties || []).map((p) => [p.role_label || p.role, p.name, p.phone].filter(Boolean).join(" "));
    $("case-parties").textContent = parties.length ? `当事人：${parties.join("；")}` : "";
    $("case-outcome").textContent = d.outcome ? `处置结果：${d.outcome}` : "";
    $("case-queued").textContent = queued.length ? `待发送：${queued.map((r) => CASE_ACTIONS[r.action].label).join("、")}` : "";
    const mine = c.mine;
    $("case-start").hidden = !(mine && CASE_ACTIONS.start.from.includes(status));
    $("case-resolve-box").hidden = !(mine && CASE_ACTIONS.resolve.from.includes(status));
    $("case-view").dataset.case = String(c.id);
    $("case-view").dataset.status = status;
  }

  /** Queue 开始处置 / 办结 with its own Idempotency-Key (and If-Match when it is sent). */
  async function caseAction(name) {
    const c = await state.db.get("cases", openCaseId);
    if (!c) return;
    const body = {};
    if (name === "resolve") {
      const outcome = $("case-outcome-text").value.trim();
      if (!outcome) {
        $("case-note").textContent = "请填写处置结果（事事有结果）。";
        return;
      }
      body.outcome = outcome;
    }
    const fix = await meta.get("lastFix");
    if (fix) Object.assign(body, { lon: fix.lon, lat: fix.lat, crs: "wgs84" });
    const label = `${CASE_ACTIONS[name].label} ${c.number}`;
    await queueRequest(label, "POST", `/cases/${c.id}/actions/${name}/`, body, { caseId: c.id, action: name });
    $("case-outcome-text").value = "";
    $("case-note").textContent = navigator.onLine ? "正在发送…" : "已保存，联网后发送。";
    await drawCase();
    await render();
    sync();
  }

  /** 上报事件 where the member stands: the GPS fix now, queued with its Idempotency-Key. */
  async function reportCase() {
    const category = $("case-category").value;
    const title = $("case-title").value.trim();
    if (!category || !title) {
      $("case-msg").textContent = "请选择类别并填写标题。";
      return;
    }
    $("case-save").disabled = true;
    $("case-msg").textContent = "正在定位…";
    let coords;
    try {
      coords = await new Promise((resolve, reject) =>
        navigator.geolocation.getCurrentPosition((p) => resolve(p.coords), reject, {
          enableHighAccuracy: true,
          timeout: 15000,
          maximumAge: 0,
        })
      );
    } catch (e) {
      $("case-msg").textContent = "未能定位，无法在此处上报。";
      $("case-save").disabled = false;
      return;
    }
    const body = {
      category,
      title,
      description: $("case-description").value.trim(),
      lon: Number(coords.longitude.toFixed(7)),
      lat: Number(coords.latitude.toFixed(7)),
      crs: "wgs84",
    };
    await queueRequest(`上报事件：${title}`, "POST", "/cases/", body);
    $("case-title").value = "";
    $("case-description").value = "";
    $("case-msg").textContent = "已保存，联网后上报。";
    $("case-save").disabled = false;
    await render();
    sync();
  }

  async function markRead(m) {
    m.read = true;
    await state.db.put("inbox", m);
    await queueRequest(`已读：${m.title}`, "POST", `/inbox/${m.id}/read/`, {});
    await render();
    sync();
  }

  async function render() {
    if (!state.session) return;
    $("who").textContent = state.session.username;
    const lastSync = await meta.get("lastSync");
    const pending = await countPending();
    await renderTasks();
    await renderHouseholds();
    await renderOutbox();
    await renderCases();
    await fillActivityGrids();
    $("screen-card").hidden = !(await memberships()).some((m) => m.five_members);
    await fillUnityForms();
    await fillCommunityForms();
    $("activity-date").max = today();
    if (!$("activity-date").value) $("activity-date").value = today();
    if (openCaseId && !$("case-view").hidden) await drawCase();
    renderMap();
    $("last-sync").textContent = showTime(lastSync);
    $("outbox-count").textContent = String(pending);
    document.body.dataset.lastSync = lastSync || "";
    document.body.dataset.ready = "1";
  }

  function selectTab(name) {
    state.tab = name;
    if (name === "cases") fillCategories("case-category", "请选择类别");
    for (const b of document.querySelectorAll(".tabs button")) b.classList.toggle("active", b.dataset.tab === name);
    for (const t of ["tasks", "households", "cases", "outbox"]) $(`tab-${t}`).hidden = t !== name;
    if (name === "tasks") renderMap();
  }

  // ---------------------------------------------------------------- recording a visit

  let current = null; // {household, task, position}

  function openVisit(household, task) {
    if (!household) return;
    current = { household, task, position: null };
    $("visit-target").textContent = `${householdLabel(household)}${task ? ` · ${task.rule_name || task.rule}` : ""}`;
    $("visit-notes").value = "";
    $("visit-finding").value = "";
    $("visit-photo").value = "";
    $("visit-save").disabled = false;
    fillCategories().then(() => ($("visit-category").value = ""));
    show("visit");
    const opened = current;
    locate($("gps"), (coords) => {
      if (current === opened) current.position = coords;
    });
  }

  /** Store the visit in the outbox (IndexedDB) first; send it when the network allows. */
  async function saveVisit() {
    const c = current;
    if (!c || $("visit-save").disabled) return;
    $("visit-save").disabled = true; // one tap, one visit
    const body = {
      client_uuid: crypto.randomUUID(),
      household: c.household.id,
      client_time: isoLocal(new Date()),
      purpose: $("visit-purpose").value.trim(),
      notes: $("visit-notes").value.trim(),
    };
    if (c.task) body.task = c.task.id;
    if (c.position) {
      body.lon = Number(c.position.longitude.toFixed(7));
      body.lat = Number(c.position.latitude.toFixed(7));
      body.accuracy_m = Math.round(c.position.accuracy * 10) / 10;
      body.crs = "wgs84";
    }
    const finding = $("visit-finding").value.trim();
    const category = $("visit-category").value;
    if (category) {
      body.findings = [{ category, description: finding || "走访发现", open_case: true }];
    } else if (finding) {
      body.findings = [{ category: "other", description: finding }];
    }
    const photo = $("visit-photo").files[0];
    if (photo) {
      try {
        body.photos = [{ data: await downscale(photo) }];
      } catch (e) {
        $("gps").textContent = "照片无法读取，请重新选择";
        $("visit-save").disabled = false;
        return;
      }
    }
    await state.db.put("outbox", {
      client_uuid: body.client_uuid,
      body,
      status: "pending",
      recorded_at: new Date().toISOString(),
      label: householdLabel(c.household),
    });
    current = null;
    show("main");
    selectTab("outbox");
    await render();
    sync();
  }

  // ---------------------------------------------------------------- start

  function setNet() {
    const on = navigator.onLine;
    $("net").textContent = on ? "在线" : "离线";
    $("net").classList.toggle("offline", !on);
  }

  function wire() {
    $("login-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      $("login-error").textContent = "";
      try {
        await signIn($("username").value.trim(), $("password").value);
        $("password").value = "";
        show("main");
        await render();
        await sync();
      } catch (e) {
        $("login-error").textContent = navigator.onLine ? e.message : "登录需要联网";
      }
    });
    $("sync-now").addEventListener("click", () => sync());
    $("daily-zero").addEventListener("click", () => dailyReport(true));
    $("case-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      reportCase();
    });
    $("daily-send").addEventListener("click", () => dailyReport(false));
    $("sign-out").addEventListener("click", () => signOut());
    $("case-start").addEventListener("click", () => caseAction("start"));
    $("case-resolve").addEventListener("click", () => caseAction("resolve"));
    $("case-back").addEventListener("click", async () => {
      openCaseId = null;
      show("main");
      await render();
    });
    $("update-reload").addEventListener("click", () => location.reload());
    for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => selectTab(b.dataset.tab));
    $("hh-search").addEventListener("input", () => renderHouseholds());
    $("visit-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      saveVisit();
    });
    $("visit-cancel").addEventListener("click", () => {
      current = null;
      show("main");
    });
    $("venue-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      saveVenueVisit();
    });
    $("screen-zero").addEventListener("click", () => saveScreening(true));
    $("screen-send").addEventListener("click", () => saveScreening(false));
    $("activity-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      saveActivity();
    });
    $("hours-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      saveHours();
    });
    $("help-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      savePairingHelp();
    });
    $("campaign-zero").addEventListener("change", () => ($("campaign-found").hidden = $("campaign-zero").checked));
    $("campaign-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      saveCampaignReturn();
    });
    $("petition-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      savePetition();
    });
    $("mediation-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      saveMediation();
    });
    $("venue-cancel").addEventListener("click", () => {
      venueCurrent = null;
      show("main");
    });
    window.addEventListener("online", () => {
      setNet();
      sync();
    });
    window.addEventListener("offline", setNet);
    setInterval(() => sync(), 5 * 60 * 1000);
  }

  async function start() {
    wire();
    setNet();
    state.db = await openDb();
    state.session = (await meta.get("session")) || null;
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.register("sw.js", { scope: "./" }).then(
        () => navigator.serviceWorker.ready.then(() => (document.body.dataset.sw = "1")),
        () => {}
      );
    }
    if (!state.session) {
      show("login");
      document.body.dataset.ready = "1";
      return;
    }
    show("main");
    await render();
    sync();
  }

  start();
})();
