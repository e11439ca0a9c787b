// The operators' dashboard: listens to /dashboard/events (one JSON snapshot per tick,
// see api/src/dashboard.rs) and draws, per campaign, its figures and small SVG line
// charts of the last HISTORY ticks. No library, nothing loaded from elsewhere.
//
// Every figure is written into an element with stable attributes, for people and for
// the browser test alike: body[data-updates] counts the snapshots received, each card is
// [data-campaign=ID], each figure [data-figure=NAME] with its raw number in data-value.
"use strict";

const HISTORY = 120;
const FUNNEL = ["view", "ticket", "claim", "accepted", "paid"];
const OUTCOMES = ["accepted", "already_claimed", "sold_out", "not_started", "ended",
  "rate_limited", "rejected", "unavailable"];
const SVG = "http://www.w3.org/2000/svg";
const W = 300, H = 100;

// Campaign id -> { card, history: { series name -> [numbers] } }
const campaigns = new Map();

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmt(v, digits = 0) {
  if (v === null || v === undefined) return "–";
  return Number(v).toLocaleString("en", { maximumFractionDigits: digits });
}

function setFigure(root, name, value, digits) {
  const f = root.querySelector(`[data-figure="${name}"]`);
  if (!f) return;
  f.dataset.value = value === null || value === undefined ? "" : String(value);
  f.querySelector(".value").textContent = fmt(value, digits);
}

function figure(name, label) {
  const f = el("div", { class: "figure", "data-figure": name, "data-value": "" });
  f.append(el("span", { class: "label" }, label), el("span", { class: "value" }, "–"));
  return f;
}

function chart(name, title) {
  const box = el("div", { class: "chart", "data-chart": name });
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  box.append(el("div", { class: "title" }, title), svg, el("div", { class: "legend" }));
  return box;
}

// Draws the named series of `history` as lines on a shared scale from zero, `len`
// points across the width.
function draw(box, history, names, unit, len = HISTORY) {
  const svg = box.querySelector("svg");
  const shown = names.filter((n) => (history[n] || []).some((v) => v > 0) || names.length <= 2);
  const max = Math.max(1e-9, ...shown.flatMap((n) => history[n] || []));
  svg.replaceChildren();
  const axis = document.createElementNS(SVG, "line");
  for (const [k, v] of Object.entries({ x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, class: "axis" })) axis.setAttribute(k, v);
  svg.append(axis);
  const top = document.createElementNS(SVG, "text");
  top.setAttribute("x", 2);
  top.setAttribute("y", 10);
  top.setAttribute("class", "tick");
  top.textContent = `${fmt(max, max < 10 ? 2 : 0)}${unit}`;
  svg.append(top);
  for (const n of shown) {
    const values = history[n] || [];
    const step = W / (len - 1);
    const x0 = W - step * (values.length - 1);
    const points = values.map((v, i) => `${(x0 + i * step).toFixed(1)},${(H - 2 - (v / max) * (H - 14)).toFixed(1)}`);
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", points.join(" "));
    line.setAttribute("class", `s-${n}`);
    svg.append(line);
  }
  const legend = box.querySelector(".legend");
  legend.replaceChildren(...shown.map((n) => el("span", { class: `s-${n}` }, n.replace("_", " "))));
}

function card(c) {
  const root = el("article", { class: "card", "data-campaign": String(c.id) });
  const heading = el("h3");
  root.append(heading);
  const figures = el("div", { class: "figures" });
  figures.append(
    figure("remaining", "remaining"), figure("accepted", "accepted claims"),
    figure("backlog", "queue backlog"), figure("persisted", "persisted"),
    figure("accepted_per_sec", "accepted / s"), figure("persisted_per_sec", "persisted / s"),
    figure("p50_ms", "p50 latency (ms)"), figure("p99_ms", "p99 latency (ms)"));
  figures.append(figure("funnel_view", "views (30 min)"), figure("funnel_claim", "claims (30 min)"),
    figure("funnel_accepted", "accepted (30 min)"), figure("funnel_paid", "paid (30 min)"),
    figure("conversion_claim", "claim / view %"), figure("conversion_accepted", "accepted / claim %"));
  if (c.orders) {
    figures.append(figure("paid_orders", "paid orders"), figure("pending_orders", "pending orders"),
      figure("expired_orders", "expired orders"), figure("cancelled_orders", "cancelled orders"),
      figure("refunds_required", "refunds to make"));
  }
  const charts = el("div", { class: "charts" });
  charts.append(chart("claims", "claims / s by outcome"), chart("stock", "remaining stock"),
    chart("queue", "backlog and persisted / s"), chart("latency", "claim latency (ms)"));
  charts.append(chart("funnel", "funnel per minute (last 30 min)"));
  if (c.orders) charts.append(chart("orders", "orders: paid, pending, expired"));
  root.append(figures, charts);
  document.getElementById("campaigns").append(root);
  return { card: root, history: {} };
}

function push(history, name, value) {
  const h = history[name] || (history[name] = []);
  h.push(value === null || value === undefined ? 0 : value);
  if (h.length > HISTORY) h.shift();
}

function listRow(c) {
  const tr = el("tr", { "data-campaign-row": String(c.id) });
  for (const v of [c.id, c.name, c.kind, c.status, `${fmt(c.remaining)} / ${fmt(c.total)}`,
    fmt(c.accepted), fmt(c.backlog), fmt(c.persisted), fmt(c.dead_letters)]) {
    tr.append(el("td", {}, String(v)));
  }
  return tr;
}

function update(snapshot) {
  const error = document.getElementById("error");
  error.hidden = !snapshot.error;
  error.textContent = snapshot.error || "";
  if (snapshot.error) return;
  document.body.dataset.updates = String(Number(document.body.dataset.updates) + 1);
  document.getElementById("updated-at").textContent =
    `updated ${new Date(snapshot.at_ms).toLocaleTimeString("en-GB")}`;
  const list = snapshot.campaigns;
  document.querySelector("#campaign-list tbody").replaceChildren(...list.map(listRow));
  document.getElementById("no-campaigns").hidden = list.length > 0;
  const seen = new Set();
  for (const c of list) {
    seen.add(c.id);
    const entry = campaigns.get(c.id) || campaigns.set(c.id, card(c)).get(c.id);
    const { card: root, history } = entry;
    root.dataset.status = c.status;
    root.querySelector("h3").textContent = `#${c.id} ${c.name} (${c.kind.replace("_", " ")}, ${c.status.replace("_", " ")})`;
    setFigure(root, "remaining", c.remaining);
    setFigure(root, "accepted", c.accepted);
    setFigure(root, "backlog", c.backlog);
    setFigure(root, "persisted", c.persisted);
    setFigure(root, "accepted_per_sec", c.claims_per_sec.accepted, 1);
    setFigure(root, "persisted_per_sec", c.persisted_per_sec, 1);
    setFigure(root, "p50_ms", c.p50_ms, 2);
    setFigure(root, "p99_ms", c.p99_ms, 2);
    for (const o of OUTCOMES) push(history, o, c.claims_per_sec[o]);
    push(history, "remaining", c.remaining);
    push(history, "backlog", c.backlog);
    push(history, "persisted", c.persisted_per_sec);
    push(history, "p50", c.p50_ms);
    push(history, "p99", c.p99_ms);
    draw(root.querySelector('[data-chart="claims"]'), history, OUTCOMES, "/s");
    draw(root.querySelector('[data-chart="stock"]'), history, ["remaining"], "");
    draw(root.querySelector('[data-chart="queue"]'), history, ["backlog", "persisted"], "");
    draw(root.querySelector('[data-chart="latency"]'), history, ["p50", "p99"], " ms");
    if (c.funnel && c.funnel.length > 0) {
      // The funnel: per-minute series straight from the snapshot (not a tick history).
      const perMinute = {};
      const sums = {};
      for (const k of FUNNEL) {
        perMinute[k] = c.funnel.map((m) => m[k]);
        sums[k] = perMinute[k].reduce((a, b) => a + b, 0);
        if (k !== "ticket") setFigure(root, `funnel_${k}`, sums[k]);
      }
      const pct = (a, b) => (b > 0 ? (100 * a) / b : null);
      setFigure(root, "conversion_claim", pct(sums.claim, sums.view), 1);
      setFigure(root, "conversion_accepted", pct(sums.accepted, sums.claim), 1);
      draw(root.querySelector('[data-chart="funnel"]'), perMinute, FUNNEL, "/min", Math.max(2, c.funnel.length));
    }
    if (c.orders) {
      for (const f of ["paid_orders", "pending_orders", "expired_orders", "cancelled_orders", "refunds_required"]) {
        setFigure(root, f, c.orders[f]);
      }
      push(history, "paid", c.orders.paid_orders);
      push(history, "pending", c.orders.pending_orders);
      push(history, "expired", c.orders.expired_orders);
      const orders = root.querySelector('[data-chart="orders"]');
      if (orders) draw(orders, history, ["paid", "pending", "expired"], "");
    }
  }
  for (const [id, entry] of campaigns) {
    if (!seen.has(id)) {
      entry.card.remove();
      campaigns.delete(id);
    }
  }
}

function connect() {
  const status = document.getElementById("connection");
  const events = new EventSource("/dashboard/events");
  events.addEventListener("open", () => {
    status.dataset.state = "live";
    status.textContent = "live";
  });
  events.addEventListener("snapshot", (e) => update(JSON.parse(e.data)));
  events.addEventListener("error", () => {
    // EventSource retries by itself; it gives up (CLOSED) on a refusal, such as an
    // expired login.
    status.dataset.state = "lost";
    status.textContent = events.readyState === EventSource.CLOSED
      ? "disconnected: reload the page, or log in again"
      : "reconnecting…";
  });
}

connect();
