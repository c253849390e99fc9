// The planner's console: one page over the /v1 API, with the credential the user signed in with.
// No framework and no outside request: the map is SVG drawn from GET /v1/region/roads.
"use strict";

(() => {
  const T = window.CONSOLE_TEXTS;
  const $ = (id) => document.getElementById(id);
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
    "#e377c2", "#bcbd22", "#393b79", "#637939", "#843c39", "#7b4173", "#3182bd", "#e6550d"];
  const state = {
    token: sessionStorage.getItem("hc-token"), me: null, plan: null, versions: [],
    visits: new Map(), clients: new Map(), shifts: [], staffColor: new Map(), roads: null,
    view: null, selected: null, stream: null,
  };

  // ---- texts --------------------------------------------------------------------------------
  function t(key, vars) {
    let s = T[key] ?? key;
    for (const [k, v] of Object.entries(vars || {})) s = s.replaceAll(`{${k}}`, String(v));
    return s;
  }
  function applyTexts() {
    document.documentElement.lang = T.lang;
    document.title = T.title;
    for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  }
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }
  // Timeline labels: the distinctive part of an id ("visit-00030@2026-12-01" -> "00030").
  const shortId = (id) => id.split("@")[0].replace(/^[A-Za-z]+[-_]?/, "") || id;
  const minutes = (hhmm) => { const [h, m] = hhmm.split(":").map(Number); return h * 60 + m; };
  const hhmm = (min) => `${String(Math.floor(min / 60)).padStart(2, "0")}:${String(Math.round(min % 60)).padStart(2, "0")}`;
  function duration(s) {
    const m = Math.round(s / 60);
    return m >= 60 ? t("hoursMinutes", { h: Math.floor(m / 60), m: m % 60 }) : t("minutes", { n: m });
  }
  const signed = (s) => (s > 0 ? "+" : s < 0 ? "−" : "±") + duration(Math.abs(s));

  // ---- API ----------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, body) {
      super(body?.error?.message || `HTTP ${status}`);
      this.status = status; this.body = body;
    }
  }
  async function api(path, { method = "GET", body, headers = {} } = {}) {
    const h = { Accept: "application/json", ...headers };
    if (state.token) h.Authorization = `Bearer ${state.token}`;
    if (body !== undefined) h["Content-Type"] = "application/json";
    const r = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    const data = text ? JSON.parse(text) : null;
    if (!r.ok) throw new ApiError(r.status, data);
    return data;
  }
  async function all(path) {
    const out = [];
    for (let offset = 0; ; offset += 1000) {
      const sep = path.includes("?") ? "&" : "?";
      const page = await api(`${path}${sep}limit=1000&offset=${offset}`);
      out.push(...page.items);
      if (out.length >= page.total || page.items.length === 0) return out;
    }
  }
  function say(id, text, ok) {
    const node = $(id);
    node.textContent = text;
    node.className = ok === undefined ? "" : ok ? "ok" : "bad";
  }

  // ---- sign-in ------------------------------------------------------------------------------
  async function signIn(ev) {
    ev.preventDefault();
    say("signin-error", "");
    try {
      const key = $("apikey").value.trim();
      if (key) {
        state.token = key;
      } else {
        const r = await api("/v1/auth/token", {
          method: "POST", body: { email: $("email").value, password: $("password").value },
        });
        state.token = r.access_token;
      }
      state.me = await api("/v1/auth/me");
    } catch (e) {
      state.token = null;
      say("signin-error", t("signInFailed", { msg: e.message }), false);
      return;
    }
    await start().catch((e) => say("message", t("error", { msg: e.message }), false));
  }
  async function start() {
    if (!state.me) state.me = await api("/v1/auth/me");
    state.tileUrl = (await api("/console/config.json")).tile_url;
    sessionStorage.setItem("hc-token", state.token);
    $("signin").hidden = true;
    $("sign-out").hidden = false;
    if (state.me.role === "nurse") return startNurse();
    $("planner").hidden = false;
    $("day-nav").hidden = false;
    // The base map does not depend on the day: ask for it while the day's lists load.
    state.roads = state.roads || api("/v1/region/roads");
    const [districts, latest] = await Promise.all([all("/v1/districts"), api("/v1/plans?limit=1")]);
    $("district").replaceChildren(...districts.map((d) => el("option", { value: d.external_id }, d.name || d.external_id)));
    if (latest.items.length) {
      $("district").value = latest.items[0].district;
      $("date").value = latest.items[0].date;
    } else {
      $("date").value = new Date().toISOString().slice(0, 10);
    }
    await loadDay();
  }
  function signOut() {
    sessionStorage.removeItem("hc-token");
    if (state.stream) state.stream.abort();
    location.reload();
  }

  // ---- the day ------------------------------------------------------------------------------
  async function loadDay() {
    const district = $("district").value, day = $("date").value;
    say("message", t("loading"));
    const q = `district=${encodeURIComponent(district)}&date=${day}`;
    const [versions, visits, clients, shifts, staff, roads] = await Promise.all([
      all(`/v1/plans?${q}`), all(`/v1/visits?${q}`), all(`/v1/clients?district=${encodeURIComponent(district)}`),
      all(`/v1/shifts?${q}`), all(`/v1/staff?district=${encodeURIComponent(district)}`),
      state.roads,
    ]);
    state.roads = roads;
    state.versions = versions;
    state.visits = new Map(visits.map((v) => [v.external_id, v]));
    state.clients = new Map(clients.map((c) => [c.external_id, c]));
    state.shifts = shifts;
    state.staff = staff;
    state.staffColor = new Map(staff.map((s, i) => [s.external_id, COLORS[i % COLORS.length]]));
    fillEventForm();
    const current = versions.find((v) => v.status === "published");
    if (!current) {
      state.plan = null;
      say("message", t("noPlan"));
      renderAll();
      return;
    }
    await showPlan(current.id);
    follow(district, day, current.version);
  }
  async function showPlan(id) {
    const [plan, geo] = await Promise.all([api(`/v1/plans/${id}`), api(`/v1/plans/${id}/geojson`)]);
    state.plan = plan;
    state.geo = geo;
    say("message", "");
    renderAll();
  }
  function renderAll() {
    renderVersions();
    renderKpis();
    renderMap();
    renderTimeline();
    renderUnassigned();
    fillCompare();
  }

  function renderVersions() {
    const items = [...state.versions].sort((a, b) => b.version - a.version).map((v) => {
      const when = new Date(v.created_at).toLocaleString(T.lang);
      const cur = v.status === "published";
      return el("li", { class: cur ? "cur" : "", "data-version": v.version },
        t("versionLine", { version: v.version, when, who: v.created_by }), cur ? ` (${t("current")}) ` : " ",
        state.plan && v.id === state.plan.id ? null
          : el("button", { type: "button", class: "secondary", onclick: () => showPlan(v.id) }, t("version") + " " + v.version));
    });
    $("versions").replaceChildren(...items);
  }

  function renderKpis() {
    const k = state.plan?.kpis || {};
    const pct = (x) => (x === undefined ? "–" : `${Math.round(x * 100)} %`);
    const rows = [
      ["kpi_visits", `${k.visits_planned ?? "–"} / ${(k.visits_planned ?? 0) + (k.visits_unassigned ?? 0)}`],
      ["kpi_travel", k.travel_s === undefined ? "–" : duration(k.travel_s)],
      ["kpi_direct", pct(k.direct_care_ratio)],
      ["kpi_continuity", pct(k.preferred_share)],
      ["kpi_overtime", k.overtime_s === undefined ? "–" : duration(k.overtime_s)],
      ["kpi_utilisation", pct(k.utilisation_mean)],
      ["kpi_balance", k.utilisation_spread === undefined ? "–" : `± ${Math.round(k.utilisation_spread * 100)} %`],
    ];
    $("kpis").replaceChildren(...rows.flatMap(([key, v]) => [el("dt", {}, t(key)), el("dd", { "data-kpi": key }, v)]));
  }

  // ---- map ----------------------------------------------------------------------------------
  // Web Mercator in map units (WORLD across the globe), shifted to the region's corner, so that
  // an optional online tile layer lines up with the roads.
  const WORLD = 360000;
  const mercator = (lon, lat) => {
    const phi = lat * Math.PI / 180;
    return [(lon + 180) / 360 * WORLD, (1 - Math.log(Math.tan(phi) + 1 / Math.cos(phi)) / Math.PI) / 2 * WORLD];
  };
  function origin() { return mercator(state.roads.bbox[0], state.roads.bbox[3]); }
  function projector() {
    const [ox, oy] = origin();
    return (lon, lat) => { const [x, y] = mercator(lon, lat); return [x - ox, y - oy]; };
  }
  function drawTiles(px) {
    const map = $("map");
    let layer = map.querySelector("g.tiles");
    if (!state.tileUrl || !state.roads) { if (layer) layer.remove(); return; }
    if (!layer) { layer = svg("g", { class: "tiles" }); map.prepend(layer); }
    const [ox, oy] = origin();
    const z = Math.max(0, Math.min(19, Math.round(Math.log2(WORLD / (px * 256)))));
    const size = WORLD / 2 ** z;
    const [vx, vy, vw, vh] = state.view;
    const x0 = Math.floor((vx + ox) / size), x1 = Math.floor((vx + vw + ox) / size);
    const y0 = Math.floor((vy + oy) / size), y1 = Math.floor((vy + vh + oy) / size);
    const tiles = [];
    for (let x = x0; x <= x1; x++) for (let y = y0; y <= y1; y++) if (x >= 0 && y >= 0 && x < 2 ** z && y < 2 ** z) tiles.push([x, y]);
    layer.replaceChildren(...tiles.slice(0, 144).map(([x, y]) => svg("image", {
      href: state.tileUrl.replace("{z}", z).replace("{x}", x).replace("{y}", y),
      x: x * size - ox, y: y * size - oy, width: size, height: size, preserveAspectRatio: "none",
    })));
  }
  function renderMap() {
    const map = $("map");
    map.replaceChildren();
    if (!state.roads) return;
    const P = projector();
    const line = (pts) => pts.map(([lon, lat], i) => { const [x, y] = P(lon, lat); return `${i ? "L" : "M"}${x.toFixed(2)} ${y.toFixed(2)}`; }).join("");
    const minor = [], main = [];
    state.roads.lines.forEach((l, i) => (state.roads.main[i] ? main : minor).push(line(l)));
    map.append(svg("path", { class: "road", d: minor.join("") }), svg("path", { class: "road main", d: main.join("") }));
    const box = [Infinity, Infinity, -Infinity, -Infinity];
    const grow = (x, y) => { box[0] = Math.min(box[0], x); box[1] = Math.min(box[1], y); box[2] = Math.max(box[2], x); box[3] = Math.max(box[3], y); };
    const feats = state.geo?.features || [];
    const routes = svg("g", { class: "routes" }), stops = svg("g", { class: "stops" });
    for (const f of feats.filter((f) => f.properties.feature === "route")) {
      const pts = f.geometry.coordinates;
      if (pts.length < 2) continue;
      pts.forEach(([lon, lat]) => grow(...P(lon, lat)));
      routes.append(svg("path", { class: "route", d: line(pts), stroke: state.staffColor.get(f.properties.staff) || "#333", "data-staff": f.properties.staff }));
    }
    const r = 0.09;
    const seq = new Map();
    for (const f of feats.filter((f) => f.properties.feature === "stop")) {
      const p = f.properties;
      const [x, y] = P(...f.geometry.coordinates);
      grow(x, y);
      if (p.kind === "start" || p.kind === "end") {
        const depot = svg("g", { class: "depot" });
        depot.append(svg("rect", { "data-x": x, "data-y": y }));
        stops.append(depot);
        continue;
      }
      if (p.kind !== "visit") continue;
      const g = svg("g", { class: "stop", "data-visit": p.visit, "data-staff": p.staff, tabindex: "0", role: "button", "aria-label": `${t("visit")} ${p.visit} ${p.start}` });
      g.append(svg("circle", { cx: x, cy: y, r, fill: state.staffColor.get(p.staff) || "#333" }));
      const label = svg("text", { x, y, "font-size": r * 1.2 });
      seq.set(p.shift, (seq.get(p.shift) || 0) + 1);
      label.textContent = String(seq.get(p.shift));
      g.append(label);
      g.addEventListener("click", () => showVisit(p.visit));
      g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); showVisit(p.visit); } });
      stops.append(g);
    }
    const marks = svg("g", { class: "unassigned-mark" });
    for (const u of state.plan?.unassigned || []) {
      const c = state.clients.get(u.client);
      if (!c?.coordinates) continue;
      const [x, y] = P(c.coordinates.lon, c.coordinates.lat);
      grow(x, y);
      const m = svg("path", { "data-x": x, "data-y": y, "data-visit": u.visit, tabindex: "0", role: "button", "aria-label": `${t("unassigned")}: ${u.visit}` });
      const title = svg("title");
      title.textContent = `${u.visit}: ${u.detail}`;
      m.append(title);
      m.addEventListener("click", () => showVisit(u.visit));
      marks.append(m);
    }
    map.append(routes, marks, stops);
    if (!Number.isFinite(box[0])) { const [a, b] = P(state.roads.bbox[0], state.roads.bbox[3]); const [c, d] = P(state.roads.bbox[2], state.roads.bbox[1]); box.splice(0, 4, a, b, c, d); }
    const pad = 0.04 * Math.max(box[2] - box[0], box[3] - box[1], 1);
    if (!state.view) state.view = [box[0] - pad, box[1] - pad, box[2] - box[0] + 2 * pad, box[3] - box[1] + 2 * pad];
    setView();
  }
  function setView() {
    const map = $("map");
    map.setAttribute("viewBox", state.view.map((v) => v.toFixed(3)).join(" "));
    // Marks keep their size on screen whatever the zoom: radius in map units per pixel.
    // The view is fitted whole ("meet"): the scale is the larger of the two ratios.
    const px = Math.max(state.view[2] / Math.max(map.clientWidth, 1), state.view[3] / Math.max(map.clientHeight, 1));
    drawTiles(px);
    for (const c of map.querySelectorAll(".stop circle")) c.setAttribute("r", 9 * px);
    for (const n of map.querySelectorAll(".stop text")) n.setAttribute("font-size", 11 * px);
    for (const n of map.querySelectorAll(".depot rect, .unassigned-mark path")) {
      const [x, y] = [Number(n.dataset.x), Number(n.dataset.y)], r = 8 * px;
      if (n.tagName === "rect") { n.setAttribute("x", x - r / 2); n.setAttribute("y", y - r / 2); n.setAttribute("width", r); n.setAttribute("height", r); }
      else n.setAttribute("d", `M${x} ${y - r * 1.3}L${x + r * 1.3} ${y}L${x} ${y + r * 1.3}L${x - r * 1.3} ${y}Z`);
    }
  }
  function mapControls() {
    const map = $("map");
    map.addEventListener("wheel", (e) => {
      e.preventDefault();
      const f = e.deltaY > 0 ? 1.2 : 1 / 1.2;
      const rect = map.getBoundingClientRect();
      const [x, y, w, h] = state.view;
      const px = x + ((e.clientX - rect.left) / rect.width) * w, py = y + ((e.clientY - rect.top) / rect.height) * h;
      state.view = [px - (px - x) * f, py - (py - y) * f, w * f, h * f];
      setView();
    }, { passive: false });
    let drag = null;
    map.addEventListener("pointerdown", (e) => { if (e.target === map || e.target.classList.contains("road")) drag = [e.clientX, e.clientY, ...state.view]; });
    window.addEventListener("pointerup", () => { drag = null; });
    map.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const rect = map.getBoundingClientRect();
      const s = drag[4] / rect.width;
      state.view = [drag[2] - (e.clientX - drag[0]) * s, drag[3] - (e.clientY - drag[1]) * s, drag[4], drag[5]];
      setView();
    });
    map.addEventListener("keydown", (e) => {
      const [x, y, w, h] = state.view;
      const moves = { ArrowLeft: [-w / 10, 0], ArrowRight: [w / 10, 0], ArrowUp: [0, -h / 10], ArrowDown: [0, h / 10] };
      if (moves[e.key]) { state.view = [x + moves[e.key][0], y + moves[e.key][1], w, h]; setView(); e.preventDefault(); }
      if (e.key === "+" || e.key === "-") { const f = e.key === "+" ? 0.8 : 1.25; state.view = [x + w * (1 - f) / 2, y + h * (1 - f) / 2, w * f, h * f]; setView(); }
    });
  }

  // ---- timeline -----------------------------------------------------------------------------
  function renderTimeline() {
    const box = $("timeline");
    box.replaceChildren();
    const plan = state.plan;
    if (!plan) return;
    const shiftsByStaff = new Map();
    for (const s of state.shifts) shiftsByStaff.set(s.staff, [...(shiftsByStaff.get(s.staff) || []), s]);
    let lo = 24 * 60, hi = 0;
    for (const s of state.shifts) { lo = Math.min(lo, minutes(s.start)); hi = Math.max(hi, minutes(s.end)); }
    for (const r of plan.routes) for (const s of r.stops) { lo = Math.min(lo, minutes(s.arrival) - s.travel_s / 60); hi = Math.max(hi, minutes(s.end)); }
    lo = Math.floor(lo / 60) * 60; hi = Math.ceil(hi / 60) * 60;
    const pos = (m) => `${((m - lo) / (hi - lo)) * 100}%`;
    const width = (a, b) => `${(Math.max(b - a, 0.5) / (hi - lo)) * 100}%`;
    const axis = el("div", { class: "tl-axis", "aria-hidden": "true" });
    for (let m = lo; m <= hi; m += 60) { const s = el("span", {}, hhmm(m)); s.style.left = pos(m); axis.append(s); }
    box.append(el("div", { class: "tl-row" }, el("span"), axis));
    const counts = new Map();
    for (const r of plan.routes) for (const s of r.stops) if (s.kind === "visit") counts.set(s.visit, (counts.get(s.visit) || 0) + 1);
    const today = new Date();
    const isToday = $("date").value === `${today.getFullYear()}-${String(today.getMonth() + 1).padStart(2, "0")}-${String(today.getDate()).padStart(2, "0")}`;
    const routed = new Set(plan.routes.map((r) => r.staff));
    const idle = [...new Set(state.shifts.map((s) => s.staff))].filter((s) => !routed.has(s)).map((staff) => ({ staff, stops: [] }));
    for (const r of [...plan.routes, ...idle]) {
      const color = state.staffColor.get(r.staff) || "#333";
      const track = el("div", { class: "tl-track", "data-staff": r.staff });
      for (const sh of shiftsByStaff.get(r.staff) || []) {
        const d = el("div", { class: "tl-shift", title: `${t("shift")} ${sh.start}–${sh.end}` });
        d.style.left = pos(minutes(sh.start)); d.style.width = width(minutes(sh.start), minutes(sh.end));
        track.append(d);
      }
      for (const s of r.stops) {
        const arr = minutes(s.arrival), st = minutes(s.start), en = minutes(s.end);
        if (s.travel_s > 0) {
          const d = el("div", { class: "tl-travel", title: `${t("travel")} ${duration(s.travel_s)}` });
          d.style.left = pos(arr - s.travel_s / 60); d.style.width = width(arr - s.travel_s / 60, arr);
          track.append(d);
        }
        if (s.waiting_s > 0) {
          const d = el("div", { class: "tl-wait", title: `${t("waiting")} ${duration(s.waiting_s)}` });
          d.style.left = pos(st - s.waiting_s / 60); d.style.width = width(st - s.waiting_s / 60, st);
          track.append(d);
        }
        if (s.kind === "break") {
          const d = el("div", { class: "tl-break", title: `${t("break")} ${s.start}–${s.end}` });
          d.style.left = pos(st); d.style.width = width(st, en);
          track.append(d);
        }
        if (s.kind === "visit") {
          const v = state.visits.get(s.visit);
          const wins = (v?.windows || []).map((w) => `${w.start}–${w.end}`).join(", ");
          const dbl = counts.get(s.visit) > 1;
          const d = el("div", {
            class: `tl-visit${dbl ? " double" : ""}`, "data-visit": s.visit, tabindex: "0", role: "button",
            title: `${s.visit} ${s.start}–${s.end}\n${t("windows")}: ${wins || "–"}${dbl ? `\n${t("double")}` : ""}`,
          }, shortId(s.visit));
          d.style.left = pos(st); d.style.width = width(st, en); d.style.background = color;
          d.addEventListener("mouseenter", () => showWindows(track, v, s.visit, true));
          d.addEventListener("mouseleave", () => showWindows(track, v, s.visit, false));
          d.addEventListener("focus", () => showWindows(track, v, s.visit, true));
          d.addEventListener("blur", () => showWindows(track, v, s.visit, false));
          d.addEventListener("click", () => showVisit(s.visit));
          d.addEventListener("keydown", (e) => { if (e.key === "Enter") showVisit(s.visit); });
          track.append(d);
        }
      }
      if (isToday) {
        const now = today.getHours() * 60 + today.getMinutes();
        if (now >= lo && now <= hi) { const d = el("div", { class: "tl-now", title: t("now") }); d.style.left = pos(now); track.append(d); }
      }
      track.dataset.lo = lo; track.dataset.hi = hi;
      box.append(el("div", { class: "tl-row" }, el("span", { class: "tl-name" }, (() => { const i = el("i"); i.style.background = color; return i; })(), r.staff), track));
    }
  }
  function showWindows(track, visit, id, on) {
    for (const node of document.querySelectorAll(`.tl-visit[data-visit="${CSS.escape(id)}"]`)) node.classList.toggle("hl", on);
    track.querySelectorAll(".tl-window").forEach((n) => n.remove());
    if (!on || !visit) return;
    const lo = Number(track.dataset.lo), hi = Number(track.dataset.hi);
    for (const w of visit.windows) {
      const d = el("div", { class: "tl-window" });
      d.style.left = `${((minutes(w.start) - lo) / (hi - lo)) * 100}%`;
      d.style.width = `${((minutes(w.end) - minutes(w.start)) / (hi - lo)) * 100}%`;
      track.append(d);
    }
  }

  // ---- visit panel, moves -------------------------------------------------------------------
  function stopsOf(visitId) {
    const out = [];
    for (const r of state.plan?.routes || []) for (const s of r.stops) if (s.visit === visitId) out.push({ staff: r.staff, stop: s });
    return out;
  }
  function showVisit(id) {
    state.selected = id;
    const v = state.visits.get(id);
    const placed = stopsOf(id);
    const un = (state.plan?.unassigned || []).find((u) => u.visit === id);
    const rows = [
      [t("visit"), id], [t("client"), v?.client || un?.client || "–"],
      [t("windows"), (v?.windows || []).map((w) => `${w.start}–${w.end}`).join(", ") || "–"],
      [t("duration"), v ? t("minutes", { n: v.duration_minutes }) : "–"],
      [t("carer"), placed.map((p) => p.staff).join(" + ") || "–"],
      [t("planned"), placed.map((p) => `${p.stop.start}–${p.stop.end}`).join(", ") || "–"],
    ];
    if (un) rows.push([t("reason"), un.detail]);
    $("visit-info").replaceChildren(...rows.flatMap(([k, val]) => [el("dt", {}, k), el("dd", {}, val)]));
    const carers = [...new Set(state.shifts.map((s) => s.staff))];
    $("move-carer").replaceChildren(...carers.map((c) => el("option", { value: c }, c)));
    if (placed.length) $("move-carer").value = placed[0].staff;
    $("move-start").value = placed.length ? placed[0].stop.start : "";
    $("move-pin").checked = Boolean(v?.pinned_carer);
    say("move-result", "");
    $("visit-panel").hidden = false;
    $("visit-panel").focus();
  }
  function moveBody(preview) {
    const body = { visit: state.selected, staff: $("move-carer").value, preview, pin: $("move-pin").checked };
    if ($("move-start").value) body.start = $("move-start").value;
    return body;
  }
  function describePreview(p) {
    if (!p.valid) return [t("previewBad", { rules: p.violations.map((v) => v.detail).join("; ") }), false];
    const cont = p.continuity.after_preferred ? t("preferred") : t("notPreferred");
    return [t("previewOk", { travel: signed(p.travel_delta_s), continuity: cont, moved: p.moved.length ? p.moved.map((m) => `${m.visit} ${m.from_start}→${m.to_start}`).join(", ") : t("none") }), true];
  }
  async function move(preview) {
    try {
      const p = await api(`/v1/plans/${state.plan.id}/moves`, { method: "POST", body: moveBody(preview), headers: { "If-Match": `"${state.plan.version}"` } });
      if (preview) { const [text, ok] = describePreview(p); say("move-result", text, ok); return; }
      say("move-result", t("committed", { version: p.plan.version }), true);
      await reloadCurrent();
    } catch (e) {
      await handleError(e, "move-result");
    }
  }
  async function handleError(e, target) {
    if (e.status === 409) {
      await reloadCurrent();
      say(target, t("conflict", { version: state.plan?.version }), false);
    } else {
      const details = (e.body?.error?.details || []).map((d) => d.msg).join("; ");
      say(target, t("error", { msg: details ? `${e.message} (${details})` : e.message }), false);
    }
  }
  async function reloadCurrent() {
    const q = `district=${encodeURIComponent($("district").value)}&date=${$("date").value}`;
    state.versions = await all(`/v1/plans?${q}`);
    const cur = state.versions.find((v) => v.status === "published");
    if (cur) await showPlan(cur.id);
  }

  // ---- unassigned and recommendations ---------------------------------------------------------
  function renderUnassigned() {
    const list = state.plan?.unassigned || [];
    $("recs").replaceChildren();
    if (!list.length) { $("unassigned").replaceChildren(el("li", {}, t("noneUnassigned"))); return; }
    $("unassigned").replaceChildren(...list.map((u) => el("li", { "data-visit": u.visit },
      el("strong", {}, u.visit), ` (${u.client || "–"}): ${u.detail} `,
      el("button", { type: "button", class: "secondary", "aria-label": `${t("recommend")}: ${u.visit}`, onclick: () => recommend(u.visit) }, t("recommend")))));
  }
  async function recommend(visit) {
    const box = $("recs");
    box.replaceChildren(el("p", {}, t("loading")));
    try {
      const r = await api(`/v1/plans/${state.plan.id}/recommendations?visit=${encodeURIComponent(visit)}`);
      if (!r.items.length) { box.replaceChildren(el("p", {}, t("noRecommendation"))); return; }
      box.replaceChildren(el("h3", {}, `${t("recommendations")}: ${visit}`), el("ol", { class: "recs" }, ...r.items.map((it) =>
        el("li", {}, t("recLine", { carer: it.staff, start: it.start, travel: signed(it.travel_delta_s), continuity: it.preferred ? t("preferred") : t("notPreferred") }), " ",
          el("button", { type: "button", onclick: () => take(visit, it) }, t("take"))))));
    } catch (e) { await handleError(e, "message"); box.replaceChildren(); }
  }
  // A new visit: where would it fit? Taking a place sends the urgent visit with its window
  // narrowed to that start (the re-plan then places it; the carer is its choice).
  async function recommendNew() {
    const box = $("recs");
    const dur = Number($("ev-dur").value);
    const q = new URLSearchParams({ client: $("ev-client").value, duration_minutes: String(dur), window_start: $("ev-wstart").value, window_end: $("ev-wend").value });
    box.replaceChildren(el("p", {}, t("loading")));
    try {
      const r = await api(`/v1/plans/${state.plan.id}/recommendations?${q}`);
      if (!r.items.length) { box.replaceChildren(el("p", {}, t("noRecommendation"))); return; }
      box.replaceChildren(el("h3", {}, `${t("recommendations")}: ${t("ev_urgent_visit_added")} (${r.client})`), el("ol", { class: "recs" }, ...r.items.map((it) =>
        el("li", {}, t("recLine", { carer: it.staff, start: it.start, travel: signed(it.travel_delta_s), continuity: it.preferred ? t("preferred") : t("notPreferred") }), " ",
          el("button", { type: "button", onclick: () => { $("ev-wstart").value = it.start; $("ev-wend").value = hhmm(minutes(it.start) + dur); $("event-form").requestSubmit(); } }, t("take"))))));
      box.scrollIntoView({ block: "nearest" });
    } catch (e) { await handleError(e, "event-result"); box.replaceChildren(); }
  }
  async function take(visit, it) {
    try {
      const p = await api(`/v1/plans/${state.plan.id}/moves`, { method: "POST", body: { visit, staff: it.staff, start: it.start, preview: false }, headers: { "If-Match": `"${state.plan.version}"` } });
      await reloadCurrent();
      say("message", t("committed", { version: p.plan.version }), true);
    } catch (e) { await handleError(e, "message"); }
  }

  // ---- events -------------------------------------------------------------------------------
  function fillEventForm() {
    const carers = [...new Set(state.shifts.map((s) => s.staff))];
    $("ev-staff").replaceChildren(...carers.map((c) => el("option", { value: c }, c)));
    const open = [...state.visits.values()].filter((v) => v.status !== "cancelled").map((v) => v.external_id);
    $("ev-visit").replaceChildren(...open.map((v) => el("option", { value: v }, v)));
    $("ev-client").replaceChildren(...[...state.clients.keys()].map((c) => el("option", { value: c }, c)));
    $("ev-new-visit").value = `URG-${Date.now().toString(36)}`;
    showEventFields();
  }
  function showEventFields() {
    const kind = $("ev-kind").value;
    for (const label of document.querySelectorAll("#event-form [data-ev]")) label.hidden = !label.dataset.ev.split(" ").includes(kind);
  }
  function eventOf(kind) {
    switch (kind) {
      case "carer_absent": case "carer_available": {
        const ev = { kind, staff: $("ev-staff").value };
        if ($("ev-from").value) ev.from_time = $("ev-from").value;
        if ($("ev-until").value) ev.until_time = $("ev-until").value;
        return ev;
      }
      case "visit_cancelled": return { kind, visit: $("ev-visit").value };
      case "visit_delayed": return { kind, visit: $("ev-visit").value, actual_start: $("ev-delay").value };
      default: return {
        kind, visit: $("ev-new-visit").value, client: $("ev-client").value,
        windows: [{ start: $("ev-wstart").value, end: $("ev-wend").value }], duration_minutes: Number($("ev-dur").value),
      };
    }
  }
  async function sendEvent(ev) {
    ev.preventDefault();
    const body = { events: [eventOf($("ev-kind").value)] };
    if ($("ev-now").value) body.now = $("ev-now").value;
    say("event-result", t("loading"));
    try {
      const p = await api(`/v1/plans/${state.plan.id}/events`, { method: "POST", body, headers: { "If-Match": `"${state.plan.version}"` } });
      await reloadCurrent();
      say("event-result", t("sent", { version: p.version, summary: p.diff?.summary || "" }), true);
      if (body.events[0].kind === "urgent_visit_added") $("ev-new-visit").value = `URG-${Date.now().toString(36)}`;
    } catch (e) { await handleError(e, "event-result"); }
  }

  // ---- compare ------------------------------------------------------------------------------
  function fillCompare() {
    const opts = () => [...state.versions].sort((a, b) => b.version - a.version).map((v) => el("option", { value: v.id }, `v${v.version}`));
    $("cmp-from").replaceChildren(...opts());
    $("cmp-to").replaceChildren(...opts());
    if (state.versions.length > 1) $("cmp-from").selectedIndex = 1;
  }
  async function compare(ev) {
    ev.preventDefault();
    try {
      const r = await api(`/v1/plans/compare?from=${$("cmp-from").value}&to=${$("cmp-to").value}`);
      const parts = [el("p", {}, r.summary)];
      for (const c of r.carers) parts.push(el("h3", {}, c.staff), el("ul", { class: "change-list" }, ...c.lines.map((l) => el("li", {}, l))));
      if (!r.carers.length) parts.push(el("p", {}, t("noChanges")));
      $("compare-result").replaceChildren(...parts);
    } catch (e) { await handleError(e, "compare-result"); }
  }

  // ---- live updates (server-sent events over fetch, so the credential stays in a header) ----
  function follow(district, day, version) {
    if (state.stream) state.stream.abort();
    const ctl = new AbortController();
    state.stream = ctl;
    let after = version;
    const run = async () => {
      while (!ctl.signal.aborted) {
        try {
          const r = await fetch(`/v1/districts/${encodeURIComponent(district)}/plans/stream?date=${day}&after=${after}`, {
            headers: { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" }, signal: ctl.signal,
          });
          if (!r.ok) return;
          if (!$("live").textContent) $("live").textContent = t("live");
          const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += value;
            let cut;
            while ((cut = buf.indexOf("\n\n")) >= 0) {
              const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
              const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5)).join("\n");
              if (!data) continue;
              const msg = JSON.parse(data);
              if (msg.version !== after) {
                after = msg.version;
                if (!state.plan || state.plan.version !== msg.version) {
                  await reloadCurrent();
                  $("live").textContent = t("liveUpdated", { version: msg.version, who: msg.created_by });
                }
              }
            }
          }
        } catch (e) {
          if (ctl.signal.aborted) return;
          await new Promise((res) => setTimeout(res, 3000));
        }
      }
    };
    run();
  }

  // ---- nurse view ---------------------------------------------------------------------------
  async function startNurse() {
    document.body.classList.add("nurse");
    $("nurse").hidden = false;
    const d = new Date();
    $("nurse-date").value = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
    const params = new URLSearchParams(location.search);
    if (params.get("date")) $("nurse-date").value = params.get("date");
    $("nurse-date").addEventListener("change", loadNurse);
    await loadNurse();
  }
  async function loadNurse() {
    const list = $("nurse-stops");
    try {
      const r = await api(`/v1/staff/${encodeURIComponent(state.me.staff)}/route?date=${$("nurse-date").value}`);
      const stops = r.stops.filter((s) => s.kind === "visit");
      if (!stops.length) { list.replaceChildren(el("li", {}, t("nurseNoRoute"))); return; }
      list.replaceChildren(...stops.map((s, i) => {
        const a = s.address;
        const address = a ? [a.street, a.housenumber, a.postcode, a.city].filter(Boolean).join(" ") : "";
        const task = s.task ? `${t("minutes", { n: s.task.duration_minutes })}${s.task.competences.length ? " · " + s.task.competences.join(", ") : ""}` : "";
        return el("li", { "data-visit": s.visit },
          el("div", { class: "time" }, `${s.start}–${s.end}`),
          el("div", {}, `${t("stop", { n: i + 1 })} · ${s.display_name || s.client || ""}`),
          el("div", {}, address), el("div", {}, `${t("tasks")}: ${task}`),
          s.navigation ? el("a", { class: "nav", href: s.navigation.osm, rel: "noopener" }, t("navigate")) : null);
      }));
    } catch (e) {
      list.replaceChildren(el("li", {}, e.status === 404 ? t("nurseNoRoute") : t("error", { msg: e.message })));
    }
  }

  // ---- wiring -------------------------------------------------------------------------------
  function init() {
    applyTexts();
    $("signin-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", signOut);
    $("load").addEventListener("click", () => { state.view = null; loadDay(); });
    $("visit-close").addEventListener("click", () => { $("visit-panel").hidden = true; });
    $("visit-suggest").addEventListener("click", () => recommend(state.selected));
    $("move-preview").addEventListener("click", () => move(true));
    $("move-commit").addEventListener("click", () => move(false));
    $("ev-kind").addEventListener("change", showEventFields);
    $("event-form").addEventListener("submit", sendEvent);
    $("ev-suggest").addEventListener("click", recommendNew);
    $("compare-form").addEventListener("submit", compare);
    mapControls();
    if (state.token) start().catch(() => { state.token = null; sessionStorage.removeItem("hc-token"); });
  }
  init();
})();
