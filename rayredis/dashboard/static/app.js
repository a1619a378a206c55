// The rayredis dashboard front end: one page per hash route, each a table read from /api/*, refreshed
// when Redis pub/sub announces a change (server-sent events from /api/stream) and every few seconds.
"use strict";

const REFRESH_MS = 2000;
const main = document.getElementById("page");
let current = null;   // {name, refresh()}
let timer = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function showError(msg) {
  const e = document.getElementById("error");
  e.textContent = msg || "";
  e.hidden = !msg;
}

async function api(path) {
  const r = await fetch(path, {credentials: "same-origin", cache: "no-store"});
  if (r.status === 401) { location.href = "/login"; throw new Error("not logged in"); }
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function short(id) { return id ? String(id).slice(0, 12) : ""; }
function bytes(n) {
  n = Number(n || 0);
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n.toFixed(0)) + " " + u[i];
}
function when(ms) { return ms ? new Date(Number(ms)).toLocaleTimeString() : ""; }
function stateCell(s, cls) { return el("td", {class: (cls || "state") + " state-" + s}, s); }
function bar(used, total, fmt) {
  const pct = total > 0 ? Math.min(100, 100 * used / total) : 0;
  const f = fmt || (x => Number(x).toFixed(1));
  return el("span", {}, el("span", {class: "bar"}, el("span", {style: `width:${pct}%`})), `${f(used)} / ${f(total)}`);
}

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, headers.map(h => el("th", {}, h)))), el("tbody", {}, rows));
}

function params() {
  const q = location.hash.split("?")[1] || "";
  return new URLSearchParams(q);
}

// ---- pages -------------------------------------------------------------------------------------

const pages = {};

pages.overview = {
  title: "Cluster",
  async render(box) {
    const o = await api("/api/overview");
    const t = o.totals;
    const cards = el("div", {class: "cards"},
      card("Nodes alive", o.alive, "alive-count"), card("Nodes dead", o.dead, "dead-count"),
      card("CPU in use", `${t.cpu.used.toFixed(1)} / ${t.cpu.total.toFixed(1)}`),
      card("Memory in use", `${bytes(t.memory.used)} / ${bytes(t.memory.total)}`),
      card("Object store", `${bytes(t.object_store.used)} / ${bytes(t.object_store.total)}`),
      card("Running jobs", o.jobs_running), card("Redis", o.address));
    const rows = o.nodes.map(n => el("tr", {"data-node-id": n.node_id, "data-state": n.state},
      el("td", {class: "mono", title: n.node_id}, short(n.node_id), n.is_head ? el("span", {class: "muted"}, " (head)") : ""),
      stateCell(n.state), el("td", {}, n.node_ip), el("td", {class: "mono"}, n.address),
      el("td", {}, bar(n.cpu.used, n.cpu.total)), el("td", {}, bar(n.memory.used, n.memory.total, bytes)),
      el("td", {}, bar(n.object_store.used, n.object_store.total, bytes)),
      el("td", {class: "hb"}, n.heartbeat_age_s === null ? "never" : `${n.heartbeat_age_s.toFixed(1)} s ago`),
      el("td", {}, `${n.running} running, ${n.queued} queued`), el("td", {}, n.workers), el("td", {}, n.pid)));
    box.replaceChildren(el("h2", {}, "Cluster"), cards,
      table(["Node", "State", "IP", "Raylet", "CPU", "Memory", "Object store", "Last heartbeat", "Tasks",
             "Workers", "PID"], rows));
  },
};

function card(k, v, id) { return el("div", {class: "card", id}, el("div", {class: "v"}, v), el("div", {class: "k"}, k)); }

// A page listing records with filters kept in the URL (#/tasks?state=FAILED&name=f).
function listPage(title, path, filterKeys, headers, row, empty) {
  return {
    title,
    setup(box) {
      const p = params();
      const inputs = filterKeys.map(k => el("input", {id: "filter-" + k, placeholder: k, value: p.get(k) || "",
        oninput: () => { syncFilters(filterKeys); refreshSoon(); }}));
      this.count = el("span", {class: "muted", id: "count"});
      this.body = el("div");
      box.replaceChildren(el("h2", {}, title),
        filterKeys.length ? el("div", {class: "filters"}, "Filter:", inputs, this.count) : this.count, this.body);
    },
    async render() {
      const q = new URLSearchParams();
      for (const k of filterKeys) {
        const v = (document.getElementById("filter-" + k) || {}).value;
        if (v) q.set(k, v.trim());
      }
      const d = await api(path + "?" + q.toString());
      this.count.textContent = d.matched === d.total ? `${d.total} in all` : `${d.matched} of ${d.total}`;
      this.body.replaceChildren(d.shown.length ? table(headers, d.shown.map(row)) : el("p", {class: "muted"}, empty));
    },
  };
}

function syncFilters(keys) {
  const base = location.hash.split("?")[0];
  const q = new URLSearchParams();
  for (const k of keys) {
    const v = document.getElementById("filter-" + k).value;
    if (v) q.set(k, v);
  }
  const s = q.toString();
  history.replaceState(null, "", base + (s ? "?" + s : ""));
}

pages.jobs = listPage("Jobs", "/api/jobs", ["status"],
  ["Job", "Status", "Entrypoint", "Driver PID", "Driver node", "Namespace", "Started"],
  j => el("tr", {"data-job-id": j.job_id}, el("td", {class: "mono"}, j.job_id), stateCell(j.status),
    el("td", {class: "mono"}, j.entrypoint), el("td", {}, j.driver_pid), el("td", {class: "mono"}, short(j.driver_node_id)),
    el("td", {}, j.namespace), el("td", {}, when(j.start_time))), "No jobs yet.");

pages.actors = listPage("Actors", "/api/actors", ["state", "class_name", "node_id"],
  ["Actor", "Class", "Name", "State", "Restarts", "Node", "PID", "Job", "Death cause"],
  a => el("tr", {"data-actor-id": a.actor_id}, el("td", {class: "mono", title: a.actor_id}, short(a.actor_id)),
    el("td", {}, a.class_name), el("td", {}, a.name), stateCell(a.state),
    el("td", {}, `${a.num_restarts} / ${a.max_restarts < 0 ? "∞" : a.max_restarts}`),
    el("td", {class: "mono"}, short(a.node_id)), el("td", {}, a.pid || ""), el("td", {}, a.job_id),
    el("td", {class: "cause"}, a.death_cause ? a.death_cause.error_message : "")), "No actors.");

pages.tasks = listPage("Tasks", "/api/tasks", ["state", "name", "node_id", "job_id", "error_type"],
  ["Task", "Attempt", "Name", "State", "Type", "Node", "Job", "Error", "Created", "Ended"],
  t => el("tr", {"data-task-id": t.task_id, "data-name": t.name},
    el("td", {class: "mono", title: t.task_id}, short(t.task_id)), el("td", {}, t.attempt_number),
    el("td", {class: "name"}, t.name), stateCell(t.state), el("td", {}, t.type),
    el("td", {class: "mono"}, short(t.node_id)), el("td", {}, t.job_id), el("td", {}, t.error_type || ""),
    el("td", {}, when(t.creation_time_ms)), el("td", {}, when(t.end_time_ms))), "No tasks match.");

pages["placement-groups"] = listPage("Placement groups", "/api/placement_groups", ["state"],
  ["Placement group", "Name", "State", "Strategy", "Bundles", "Job", "Detached"],
  g => el("tr", {"data-pg-id": g.placement_group_id},
    el("td", {class: "mono", title: g.placement_group_id}, short(g.placement_group_id)), el("td", {}, g.name),
    stateCell(g.state), el("td", {}, g.strategy),
    el("td", {class: "mono"}, g.bundles.map(b => `#${b.bundle_id} ${JSON.stringify(b.unit_resources)} on ${short(b.node_id) || "—"}`).join("\n")),
    el("td", {}, g.creator_job_id), el("td", {}, g.is_detached ? "yes" : "no")), "No placement groups.");

pages.objects = listPage("Objects", "/api/objects", ["task_id"],
  ["Object", "Size", "Task", "Error", "Locations"],
  o => el("tr", {"data-object-id": o.object_id}, el("td", {class: "mono", title: o.object_id}, short(o.object_id)),
    el("td", {}, bytes(o.object_size)), el("td", {class: "mono"}, short(o.task_id)), el("td", {}, o.is_error ? "yes" : ""),
    el("td", {class: "mono"}, o.node_ids.map(short).join(", "))),
  "No objects in any node's store (small objects stay inline with their owner).");

pages.logs = {
  title: "Logs",
  setup(box) {
    this.list = el("ul", {id: "log-files"});
    this.head = el("div", {class: "muted", id: "log-name"}, "Choose a file.");
    this.pre = el("pre", {id: "log-content"});
    box.replaceChildren(el("h2", {}, "Logs"), el("div", {class: "logs"}, this.list, el("div", {}, this.head, this.pre)));
  },
  async render() {
    const p = params();
    const files = (await api("/api/logs")).files;
    const items = [];
    let node = null;
    for (const f of files) {
      if (f.node_id !== node) { node = f.node_id; items.push(el("li", {class: "node"}, "node " + short(node))); }
      const href = `#/logs?node_id=${encodeURIComponent(f.node_id)}&filename=${encodeURIComponent(f.name)}`;
      const active = p.get("filename") === f.name && p.get("node_id") === f.node_id;
      items.push(el("li", {}, el("a", {href, "data-log": f.name, class: active ? "active" : null}, f.name,
        el("span", {class: "muted"}, ` ${bytes(f.size)}`))));
    }
    this.list.replaceChildren(...items);
    if (!p.get("filename")) return;
    const d = await api(`/api/log?node_id=${encodeURIComponent(p.get("node_id") || "")}&filename=${encodeURIComponent(p.get("filename"))}&tail=1000`);
    const atEnd = this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 4;
    this.head.textContent = `${d.name} on node ${short(d.node_id)} (${bytes(d.size)}; last 1000 lines, following)`;
    this.pre.textContent = d.lines.join("\n");
    if (atEnd) this.pre.scrollTop = this.pre.scrollHeight;
  },
};

pages.events = {
  title: "Events",
  setup(box) {
    this.tbody = el("tbody", {id: "events-body"});
    this.seen = new Set();
    box.replaceChildren(el("h2", {}, "Cluster events"),
      el("p", {class: "muted"}, "Node registrations and deaths, actor restarts, GCS takeovers, process restarts and Redis failovers, newest first; new ones appear as they happen."),
      el("table", {}, el("thead", {}, el("tr", {}, ["Time", "Severity", "Source", "Event", "Message", "Details"].map(h => el("th", {}, h)))), this.tbody));
  },
  row(e) {
    const details = Object.entries(e.custom_fields || {}).map(([k, v]) => `${k}=${typeof v === "string" ? (/^[0-9a-f]{24,}$/.test(v) ? short(v) : v) : JSON.stringify(v)}`).join(" ");
    return el("tr", {"data-event-id": e.event_id, "data-label": e.label},
      el("td", {}, new Date(e.time).toLocaleTimeString()), el("td", {class: "sev-" + e.severity}, e.severity),
      el("td", {}, e.source_type), el("td", {class: "label"}, e.label), el("td", {class: "message"}, e.message),
      el("td", {class: "mono"}, details));
  },
  add(e, atTop) {
    if (this.seen.has(e.event_id)) return;
    this.seen.add(e.event_id);
    const r = this.row(e);
    if (atTop) this.tbody.prepend(r); else this.tbody.append(r);
  },
  async render() {
    const d = await api("/api/events?limit=500");
    if (!this.seen.size) { for (const e of d.events) this.add(e, false); return; }
    for (const e of d.events.slice().reverse()) this.add(e, true);
  },
};

// ---- routing and refresh -----------------------------------------------------------------------

async function refresh() {
  if (!current) return;
  try {
    await current.page.render(main);
    showError("");
  } catch (e) {
    showError(String(e.message || e));
  }
}

let soon = null;
function refreshSoon() {
  clearTimeout(soon);
  soon = setTimeout(refresh, 150);
}

function route() {
  const name = (location.hash.replace(/^#\/?/, "").split("?")[0]) || "overview";
  const page = pages[name] || pages.overview;
  const changed = !current || current.page !== page;
  if (changed) {
    current = {page};
    if (page.setup) page.setup(main); else main.replaceChildren();
    document.title = `rayredis: ${page.title}`;
    for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === name);
  }
  refresh();
}

function live() {
  const status = document.getElementById("live");
  const es = new EventSource("/api/stream");
  es.onopen = () => { status.textContent = "live"; status.className = "on"; };
  es.onerror = () => { status.textContent = "reconnecting"; status.className = ""; };
  es.addEventListener("change", refreshSoon);
  es.addEventListener("cluster_event", m => {
    if (current && current.page === pages.events) pages.events.add(JSON.parse(m.data), true);
  });
}

window.addEventListener("hashchange", route);
route();
live();
timer = setInterval(refresh, REFRESH_MS);
