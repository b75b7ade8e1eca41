// The operators' dashboard: signs in with an operator's bearer token (kept in this tab's
// sessionStorage only), reads GET /admin/stats for the chosen days by product, by
// provider and by the breakdown picked (business line by default), and GET /admin/users/{id}/orders for a user's recent orders. Everything it
// shows comes from those answers; nothing is computed that the API does not give, except
// formatting, so the page and /admin/stats cannot disagree.
"use strict";
(function () {
  const TOKEN_KEY = "tollgate.admin.token";
  const $ = (id) => document.getElementById(id);
  // ISO 4217 minor unit exponents other than 2, for the currencies likely to appear.
  const EXPONENT = { JPY: 0, KRW: 0, VND: 0, CLP: 0, ISK: 0, HUF: 2, KWD: 3, BHD: 3, JOD: 3, OMR: 3, TND: 3 };
  let zone = null;
  let charts = [];
  let renders = 0;

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  async function api(path) {
    const r = await fetch(path, { headers: { Authorization: "Bearer " + token() } });
    let body = null;
    try { body = await r.json(); } catch (_) { body = null; }
    if (!r.ok) {
      const detail = body && body.detail ? body.detail : r.statusText;
      const e = new Error(r.status + ": " + detail);
      e.status = r.status;
      throw e;
    }
    return body;
  }

  function status(text, error) {
    const s = $("status");
    s.textContent = text;
    s.className = error ? "error" : "";
  }

  function money(minor, cur) {
    const exp = EXPONENT[cur] === undefined ? 2 : EXPONENT[cur];
    return (minor / Math.pow(10, exp)).toFixed(exp) + " " + cur;
  }
  function moneys(map) {
    const keys = Object.keys(map || {});
    return keys.length ? keys.map((c) => money(map[c], c)).join(" · ") : "–";
  }
  function pct(rate) { return rate === null || rate === undefined ? "–" : (rate * 100).toFixed(1) + "%"; }
  function int(n) { return String(n); }

  const FORMAT = {
    orders_created: int, orders_paid: int, paying_users: int, new_payers: int, repeat_payers: int, refunds: int,
    conversion_rate: pct, repurchase_rate: pct, first_access: int, first_access_rate: pct,
    revenue: moneys, refunded: moneys, net_revenue: moneys, revenue_per_paying_user: moneys, net_revenue_per_paying_user: moneys,
  };

  // Today in the operator's zone (or the browser's, before the first answer names it).
  function today(offsetDays) {
    const d = new Date(Date.now() - (offsetDays || 0) * 86400000);
    const opts = { year: "numeric", month: "2-digit", day: "2-digit" };
    if (zone) opts.timeZone = zone;
    return new Intl.DateTimeFormat("en-CA", opts).format(d);
  }

  function cell(tag, text, attrs) {
    const c = document.createElement(tag);
    c.textContent = text;
    for (const [k, v] of Object.entries(attrs || {})) c.setAttribute(k, v);
    return c;
  }

  const COLUMNS = ["orders_created", "orders_paid", "conversion_rate", "first_access", "first_access_rate", "revenue", "refunded", "net_revenue",
    "paying_users", "new_payers", "repeat_payers", "repurchase_rate", "revenue_per_paying_user"];
  const HEADINGS = { orders_created: "created", orders_paid: "paid", conversion_rate: "paid/created",
    first_access: "watched", first_access_rate: "watched/paid", revenue: "gross",
    refunded: "refunded", net_revenue: "net", paying_users: "payers", new_payers: "new", repeat_payers: "repeat",
    repurchase_rate: "repurchase", revenue_per_paying_user: "客单价" };

  function table(el, first, rows) {
    el.replaceChildren();
    const head = document.createElement("tr");
    head.append(cell("th", first));
    for (const c of COLUMNS) head.append(cell("th", HEADINGS[c]));
    el.append(head);
    if (!rows.length) {
      const tr = document.createElement("tr");
      tr.append(cell("td", "nothing counted", { colspan: String(COLUMNS.length + 1), class: "empty" }));
      el.append(tr);
      return;
    }
    for (const [name, f] of rows) {
      const tr = document.createElement("tr");
      tr.setAttribute("data-group", name);
      tr.append(cell("td", name));
      for (const c of COLUMNS) tr.append(cell("td", FORMAT[c](f[c]), { "data-col": c, "data-value": JSON.stringify(f[c]) }));
      el.append(tr);
    }
  }

  // Store subscriptions: the total, then each product that has any.
  const SUB_COLUMNS = ["starts", "renewals", "renewal_revenue", "cancellations", "expirations", "refunds"];
  const SUB_FORMAT = { renewal_revenue: moneys };
  function subscriptions_table(el, total) {
    el.replaceChildren();
    const head = document.createElement("tr");
    head.append(cell("th", "product"));
    for (const c of SUB_COLUMNS) head.append(cell("th", c.replace("_", " ")));
    el.append(head);
    const rows = [["all", total.subscriptions]].concat(
      Object.entries(total.by || {}).map(([p, f]) => [p, f.subscriptions])
        .filter(([, f]) => SUB_COLUMNS.some((c) => c === "renewal_revenue" ? Object.keys(f[c]).length : f[c] !== 0)));
    for (const [name, f] of rows) {
      const tr = document.createElement("tr");
      tr.setAttribute("data-group", name);
      tr.append(cell("td", name));
      for (const c of SUB_COLUMNS) {
        tr.append(cell("td", (SUB_FORMAT[c] || int)(f[c]), { "data-col": c, "data-value": JSON.stringify(f[c]) }));
      }
      el.append(tr);
    }
  }

  // Preview → purchase per stream: previews started, purchases from the stream's paywall.
  const STREAM_COLUMNS = [["previews", "previews", int], ["purchases", "purchases", int], ["conversion_rate", "purchases/previews", pct]];
  function streams(el, map) {
    el.replaceChildren();
    const head = document.createElement("tr");
    head.append(cell("th", "stream"));
    for (const [, h] of STREAM_COLUMNS) head.append(cell("th", h));
    el.append(head);
    const rows = Object.entries(map || {});
    if (!rows.length) {
      const tr = document.createElement("tr");
      tr.append(cell("td", "nothing counted", { colspan: String(STREAM_COLUMNS.length + 1), class: "empty" }));
      el.append(tr);
      return;
    }
    for (const [name, f] of rows) {
      const tr = document.createElement("tr");
      tr.setAttribute("data-group", name);
      tr.append(cell("td", name));
      for (const [c, , fmt] of STREAM_COLUMNS) tr.append(cell("td", fmt(f[c]), { "data-col": c, "data-value": JSON.stringify(f[c]) }));
      el.append(tr);
    }
  }

  // Refused callbacks: one row per provider, its total and each reason.
  function rejections(el, map) {
    el.replaceChildren();
    const head = document.createElement("tr");
    head.append(cell("th", "provider"), cell("th", "refused"), cell("th", "reasons"));
    el.append(head);
    const rows = Object.entries(map || {});
    if (!rows.length) {
      const tr = document.createElement("tr");
      tr.append(cell("td", "none", { colspan: "3", class: "empty" }));
      el.append(tr);
      return;
    }
    for (const [provider, r] of rows) {
      const tr = document.createElement("tr");
      tr.setAttribute("data-group", provider);
      const reasons = Object.entries(r.reasons).map(([k, n]) => k + " " + n).join(" · ");
      tr.append(cell("td", provider), cell("td", int(r.total), { "data-col": "total", "data-value": JSON.stringify(r.total) }),
        cell("td", reasons, { "data-col": "reasons", "data-value": JSON.stringify(r.reasons) }));
      el.append(tr);
    }
  }

  function kpis(total) {
    for (const el of document.querySelectorAll("[data-kpi]")) {
      const k = el.getAttribute("data-kpi");
      el.setAttribute("data-value", JSON.stringify(total[k]));
      el.querySelector(".v").textContent = FORMAT[k](total[k]);
    }
  }

  function funnel(total) {
    const f = $("funnel");
    f.replaceChildren();
    // The third step: paid grants whose first stream token was issued (first access).
    const steps = [["Created", total.orders_created, null], ["Paid", total.orders_paid, total.conversion_rate],
      ["Watched", total.first_access, total.first_access_rate]];
    const max = Math.max(1, total.orders_created, total.orders_paid, total.first_access);
    for (const [name, n, rate] of steps) {
      const row = document.createElement("div");
      row.className = "funnel-row";
      row.setAttribute("data-step", name.toLowerCase());
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.style.width = (100 * n / max) + "%";
      const wrap = document.createElement("div");
      wrap.append(bar);
      row.append(cell("span", name), wrap, cell("span", rate === null ? int(n) : int(n) + " · " + pct(rate), { class: "n" }));
      f.append(row);
    }
  }

  function chart(el, title, series, data, labels) {
    const width = Math.max(280, el.clientWidth || 600);
    const opts = {
      width, height: 220, title,
      scales: { x: { time: false } },
      axes: [
        { values: (u, splits) => splits.map((i) => (Number.isInteger(i) && labels[i] ? labels[i].slice(5) : "")) },
        {},
      ],
      series: [{ label: "day", value: (u, i) => (i === null || labels[i] === undefined ? "" : labels[i]) }].concat(series),
    };
    if (series.some((s) => s.scale === "pct")) {
      opts.axes.push({ scale: "pct", side: 1, grid: { show: false }, values: (u, v) => v.map((x) => x + "%") });
    }
    return new uPlot(opts, data, el);
  }

  function charts_for(days, total) {
    for (const c of charts) c.destroy();
    charts = [];
    const labels = days.map((d) => d.day);
    const xs = days.map((_, i) => i);
    const currencies = Object.keys(total.revenue || {});
    const cur = currencies.includes("CNY") ? "CNY" : (currencies[0] || "CNY");
    const exp = EXPONENT[cur] === undefined ? 2 : EXPONENT[cur];
    const unit = (m) => ((m && m[cur]) || 0) / Math.pow(10, exp);
    $("revenue-currency").textContent = cur;
    const rev = $("chart-revenue");
    rev.replaceChildren();
    charts.push(chart(rev, "", [
      { label: "gross", stroke: "#98a2b3", width: 2 },
      { label: "refunded", stroke: "#c4372d", width: 2 },
      { label: "net", stroke: "#2f6fdb", width: 3, fill: "rgba(47,111,219,0.08)" },
    ], [xs, days.map((d) => unit(d.revenue)), days.map((d) => unit(d.refunded)), days.map((d) => unit(d.net_revenue))], labels));
    const rep = $("chart-repeat");
    rep.replaceChildren();
    charts.push(chart(rep, "", [
      { label: "客单价 " + cur, stroke: "#1f8a4c", width: 2 },
      { label: "repurchase %", stroke: "#b54708", width: 2, scale: "pct" },
    ], [xs, days.map((d) => unit(d.revenue_per_paying_user)),
        days.map((d) => (d.repurchase_rate === null ? null : Math.round(d.repurchase_rate * 1000) / 10))], labels));
  }

  async function load() {
    const from = $("from").value, to = $("to").value;
    if (!from || !to) return;
    status("Loading " + from + " … " + to);
    const q = "from=" + encodeURIComponent(from) + "&to=" + encodeURIComponent(to);
    try {
      const chosen = $("breakdown").value;
      const [byProduct, byProvider, byChosen] = await Promise.all([
        api("/admin/stats?" + q + "&by=product"),
        api("/admin/stats?" + q + "&by=provider"),
        api("/admin/stats?" + q + "&by=" + encodeURIComponent(chosen)),
      ]);
      zone = byProduct.time_zone;
      $("zone").textContent = zone;
      const total = byProduct.total;
      kpis(total);
      funnel(total);
      charts_for(byProduct.days, total);
      table($("by-product"), "product", Object.entries(total.by || {}));
      table($("by-provider"), "provider", Object.entries(byProvider.total.by || {}));
      subscriptions_table($("subscriptions"), total);
      table($("days"), "day", byProduct.days.map((d) => [d.day, d]));
      table($("by-chosen"), chosen, Object.entries(byChosen.total.by || {}));
      streams($("streams"), total.streams);
      rejections($("rejections"), total.rejections);
      $("by-chosen").setAttribute("data-by", chosen);
      renders += 1;
      document.body.setAttribute("data-range", from + ".." + to);
      document.body.setAttribute("data-loaded", String(renders));
      status(from + " … " + to + " (" + zone + ")");
    } catch (e) {
      if (e.status === 401 || e.status === 403) signedOut("Not signed in as an operator: " + e.message);
      else status("Could not load the figures: " + e.message, true);
    }
  }

  async function recent(user) {
    const t = $("recent");
    t.replaceChildren();
    try {
      const page = await api("/admin/users/" + encodeURIComponent(user) + "/orders?limit=20");
      const head = document.createElement("tr");
      for (const h of ["order", "state", "product", "amount", "provider", "created", "paid"]) head.append(cell("th", h));
      t.append(head);
      for (const o of page.orders) {
        const tr = document.createElement("tr");
        tr.setAttribute("data-order", o.order_id);
        tr.append(cell("td", o.order_id), cell("td", o.state), cell("td", o.product_id + (o.plan_id ? " / " + o.plan_id : "")),
          cell("td", money(o.amount.amount, o.amount.currency)), cell("td", o.provider), cell("td", o.created_at), cell("td", o.paid_at || "–"));
        t.append(tr);
      }
      if (!page.orders.length) t.append(cell("tr", "no orders", { class: "empty" }));
    } catch (e) {
      status("Could not load the orders: " + e.message, true);
    }
  }

  function signedIn() {
    $("signin-panel").hidden = true;
    $("app").hidden = false;
    $("signout").hidden = false;
    if (!$("from").value) { $("from").value = today(6); $("to").value = today(0); }
    load();
  }

  function signedOut(why) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("signin-panel").hidden = false;
    $("app").hidden = true;
    $("signout").hidden = true;
    status(why || "", !!why);
    if (why) $("signin-panel").append($("status"));
  }

  $("signin-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token").value.trim().replace(/^Bearer\s+/i, "");
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $("token").value = "";
    $("app").prepend($("status"));
    signedIn();
  });
  $("signout").addEventListener("click", () => signedOut());
  $("range-form").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  $("breakdown").addEventListener("change", () => load());
  for (const b of document.querySelectorAll(".preset")) {
    b.addEventListener("click", () => {
      const n = Number(b.getAttribute("data-days"));
      $("from").value = today(n - 1);
      $("to").value = today(0);
      load();
    });
  }
  $("recent-form").addEventListener("submit", (ev) => { ev.preventDefault(); recent($("recent-user").value.trim()); });
  window.addEventListener("resize", () => {
    for (const c of charts) c.setSize({ width: Math.max(280, c.root.parentElement.clientWidth), height: 220 });
  });
  if (token()) signedIn(); else signedOut();
})();
