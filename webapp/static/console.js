// The call-taker's live screen: server-sent events in, fetch() posts out. No framework.
//
// /console/events sends `snapshot` events (the whole screen as JSON, only when it changed)
// and ends every few minutes; EventSource reconnects by itself. Buttons post to
// /console/calls/<call_sid>/<operation> with the CSRF token in X-CSRFToken; the answer is
// 204 (the next snapshot shows the result) or JSON {error}, shown on the page.
"use strict";

(function () {
  const root = document.getElementById("console");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const csrfToken = root.dataset.csrfToken;
  const callsUrl = root.dataset.callsUrl;
  let snapshot = JSON.parse($("console-snapshot").textContent || "{}");
  let clockOffset = 0; // server time minus this browser's time, in ms

  const IDLE_TEXT = {
    available: "Waiting for a call: your phone rings when one is routed to you.",
    ringing: "A call is ringing on your phone: answer it.",
    on_call: "You are on a call.",
    wrap_up: "After-call work: record the work order, then get ready for the next call.",
  };
  const PARTY_STATES = {
    dialing: "dialling", ringing: "ringing", joined: "on the call",
    on_hold: "on hold", left: "left", failed: "did not join",
  };
  const ROLES = {
    citizen: "caller", call_taker: "call-taker", consultee: "transfer target",
    party: "added party", emergency_line: "emergency line",
  };
  const PHASES = {
    waiting: "caller waiting", ringing: "ringing the call-taker", talking: "talking",
    consulting: "consulting (caller on hold)", transferring: "transferring",
    ended: "ended",
  };

  function serverNow() { return Date.now() + clockOffset; }

  function text(id, value) { const el = $(id); if (el) el.textContent = value == null ? "" : value; }

  function show(el, visible) { if (el) el.hidden = !visible; }

  function clock(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const mm = String(m).padStart(h ? 2 : 1, "0"), ss = String(r).padStart(2, "0");
    return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
  }

  function localTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell == null ? "" : cell;
      tr.appendChild(td);
    }
    return tr;
  }

  function fill(tableId, rows, empty) {
    const body = $(tableId).querySelector("tbody");
    body.replaceChildren(...rows);
    if (!rows.length) {
      const tr = row([empty]);
      tr.firstChild.colSpan = $(tableId).querySelectorAll("th").length;
      tr.className = "empty";
      body.appendChild(tr);
    }
  }

  function button(label, op, fields) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.dataset.op = op;
    b.dataset.fields = JSON.stringify(fields || {});
    return b;
  }

  // -- rendering -----------------------------------------------------------------------

  function renderMe(me) {
    if (!me) return;
    const badge = $("my-state");
    badge.textContent = me.state_label;
    badge.className = `state state-${me.state}`;
    text("my-away", me.away_reason || "");
    show($("my-away"), Boolean(me.away_reason));
    text("my-since", me.since ? `since ${new Date(me.since).toISOString().slice(11, 19)} UTC` : "");
    show($("wrap-up"), Boolean(me.wrap_up_until));
    document.querySelectorAll('.actions button[name="state"], .actions select, .actions input[type="text"]')
      .forEach((el) => {
        const state = el.name === "state" ? el.value : "away";
        el.disabled = !me.choices.includes(state);
      });
    $("go-available").textContent = me.state === "wrap_up" ? "Ready: end wrap-up" : "Go available";
    $("call-idle").textContent = IDLE_TEXT[me.state] || "Go available to take calls.";
  }

  function renderCall(call) {
    const screen = $("call-screen");
    const wasFor = screen.dataset.callSid || "";
    show(screen, Boolean(call));
    if (!call) { screen.dataset.callSid = ""; return; }
    if (wasFor !== call.call_sid) {
      // A new call: a clean form and no message from the last one.
      screen.dataset.callSid = call.call_sid;
      $("work-order-form").reset();
      $("work-order-form").action = `${callsUrl}${encodeURIComponent(call.call_sid)}/work-order`;
      message("", "");
    }
    text("call-caller", call.caller);
    text("call-language", call.language_label || "–");
    text("call-intent", call.intent_label || "–");
    text("call-path", call.path.length ? call.path.join(" › ") : "–");
    const room = call.conference;
    text("call-phase", room ? PHASES[room.phase] || room.phase : "–");
    renderParties(room);
    const consulting = Boolean(room && room.phase === "consulting");
    show($("consult-ops"), consulting);
    const openHandoff = Boolean(room && room.handoffs.some((h) => !h.confirmed_at));
    show($("handoff-form"), openHandoff);
    const notices = call.notices || [];
    show($("call-notices"), notices.length > 0);
    text("call-notices", notices.map((n) => `${localTime(n.at)} ${n.message}`).join(" · "));
    const recorded = call.recorded_orders.map((o) => o.number);
    show($("recorded-orders"), recorded.length > 0);
    text("recorded-orders", recorded.length ? `Recorded as work order ${recorded.join(", ")}.` : "");
    fill("history-calls", call.history.calls.map((c) => row([
      localTime(c.at), c.emergency_line ? `emergency: ${c.emergency_line}` : c.intent, c.status,
    ])), "No earlier calls.");
    fill("history-orders", call.history.orders.map((o) => row([
      o.number, o.kind, o.state, (o.is_confidential ? "[confidential] " : "") + o.summary,
    ])), "No work orders.");
  }

  function renderParties(room) {
    const rows = (room ? room.parties : []).map((p) => {
      const who = p.name || ROLES[p.role] || p.label;
      const actions = document.createElement("span");
      const live = p.state === "joined" || p.state === "on_hold";
      const pending = p.state === "dialing" || p.state === "ringing";
      const mine = p.label === room.taker;
      if (p.role !== "citizen" && !mine && live) {
        actions.appendChild(p.state === "on_hold"
          ? button("Resume", "resume", { label: p.label })
          : button("Hold", "hold", { label: p.label }));
      }
      if (p.role !== "citizen" && !mine && (live || pending)) {
        actions.appendChild(button("Hang up", "remove-party", { label: p.label }));
      }
      const tr = row([
        p.address && p.address !== who ? `${who} (${p.address})` : who,
        ROLES[p.role] || p.role,
        (PARTY_STATES[p.state] || p.state) + (p.reason ? ` – ${p.reason}` : ""),
        actions,
      ]);
      tr.dataset.label = p.label;
      tr.dataset.state = p.state;
      return tr;
    });
    fill("parties", rows, "No conference yet.");
  }

  function render(next) {
    snapshot = next;
    if (next.server_time) clockOffset = Date.parse(next.server_time) - Date.now();
    renderMe(next.me);
    renderCall(next.call);
    tick();
  }

  function tick() {
    const call = snapshot.call;
    text("call-timer", call && call.answered_at
      ? clock((serverNow() - Date.parse(call.answered_at)) / 1000) : "–");
    const until = snapshot.me && snapshot.me.wrap_up_until;
    if (until) text("wrap-up-left", Math.max(0, Math.ceil((Date.parse(until) - serverNow()) / 1000)));
  }

  // -- operations ----------------------------------------------------------------------

  function message(textValue, kind) {
    const el = $("call-message");
    el.textContent = textValue;
    el.className = kind ? `flash flash-${kind}` : "flash";
    el.dataset.kind = kind || "";
    show(el, Boolean(textValue));
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      if (body && body.error) return body.error;
    } catch (_) { /* not JSON: a login or CSRF page */ }
    if (response.status === 400) return "The page has expired: reload it and try again.";
    if (response.status === 403) return "You may not do this on this call.";
    return `The server answered ${response.status}; try again.`;
  }

  async function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken, Accept: "application/json" },
      body,
    });
  }

  async function operate(btn) {
    const call = snapshot.call;
    if (!call) return;
    const fields = new URLSearchParams(JSON.parse(btn.dataset.fields || "{}"));
    if (btn.dataset.line) fields.set("line", btn.dataset.line);
    if (btn.dataset.uses) {
      for (const [k, v] of new FormData($(btn.dataset.uses))) fields.set(k, v);
    }
    btn.disabled = true;
    message(`${btn.textContent.trim()}…`, "info");
    try {
      const response = await post(
        `${callsUrl}${encodeURIComponent(call.call_sid)}/${btn.dataset.op}`, fields);
      if (response.status === 204) {
        message(`${btn.textContent.trim()}: sent.`, "success");
        if (btn.dataset.uses) $(btn.dataset.uses).reset();
      } else {
        message(await errorText(response), "error");
      }
    } catch (_) {
      message("The console could not reach the server; check the network and try again.", "error");
    } finally {
      btn.disabled = false;
    }
  }

  document.addEventListener("click", (event) => {
    const btn = event.target.closest("button[data-op]");
    if (btn && $("live-call").contains(btn)) {
      event.preventDefault();
      operate(btn);
    }
  });

  $("work-order-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    if (!snapshot.call) return;
    form.querySelectorAll(".error.live").forEach((el) => el.remove());
    try {
      const response = await post(form.action, new FormData(form));
      if (response.status === 201) {
        const body = await response.json();
        message(body.message, "success");
        form.reset();
        showDispatch(body);
        return;
      }
      let body = null;
      try { body = await response.json(); } catch (_) { /* not JSON */ }
      for (const [name, problem] of Object.entries((body && body.fields) || {})) {
        const input = form.elements[name];
        if (!input) continue;
        const p = document.createElement("p");
        p.className = "error live";
        p.textContent = problem;
        input.closest(".field").appendChild(p);
      }
      message(body && body.error ? body.error : await errorText(response), "error");
    } catch (_) {
      message("The console could not reach the server; the work order was not sent.", "error");
    }
  });

  // -- the dispatch step: the recommender's top three, or a department by hand ---------

  let dispatchUrls = null;

  function showDispatch(order) {
    dispatchUrls = { dispatch: order.dispatch_url, close: order.close_url };
    text("dispatch-number", order.number);
    const list = $("dispatch-choices");
    list.replaceChildren();
    const found = order.recommendations;
    if (!found || !found.items.length) {
      text("dispatch-where", "No suggestions: pick the department by hand.");
    } else {
      const where = found.location.county
        ? `${found.location.county}${found.location.township ? " " + found.location.township : ""}`
        : "county unknown";
      text("dispatch-where", `Location: ${where}${found.location.from_text ? " (from the summary)" : ""}` +
        (found.asks_county ? " – ask the caller for their county or district." : ""));
      found.items.forEach((item, index) => {
        const li = document.createElement("li");
        const label = document.createElement("label");
        const radio = document.createElement("input");
        radio.type = "radio";
        radio.name = "item_code";
        radio.value = item.item_code;
        radio.checked = index === 0;
        const title = document.createElement("strong");
        title.textContent = `${item.item_title} (${item.item_code})`;
        const dept = document.createElement("span");
        dept.className = "department";
        dept.textContent = item.department_name
          ? ` → ${item.department_name}`
          : " → department not resolved: ask the county, or type it below";
        label.append(radio, " ", title, dept);
        if (item.is_urgent) {
          const urgent = document.createElement("span");
          urgent.className = "badge urgent";
          urgent.textContent = "urgent 紧急";
          label.append(" ", urgent);
        }
        const why = document.createElement("small");
        why.className = "matched";
        why.textContent = item.matched_words.length
          ? `matched: ${item.matched_words.join(", ")}`
          : "matched: similar wording";
        li.append(label, why);
        list.append(li);
      });
    }
    show($("dispatch-step"), true);
  }

  async function sendStep(url, form, done) {
    try {
      const response = await post(url, new FormData(form));
      let body = null;
      try { body = await response.json(); } catch (_) { /* not JSON */ }
      if (response.ok) {
        message(body ? body.message : "Done.", "success");
        done();
        return;
      }
      message(body && body.error ? body.error : await errorText(response), "error");
    } catch (_) {
      message("The console could not reach the server; nothing was sent.", "error");
    }
  }

  $("dispatch-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!dispatchUrls) return;
    const form = event.target;  // a department typed by hand wins over the item's own
    sendStep(dispatchUrls.dispatch, form, () => { form.reset(); show($("dispatch-step"), false); });
  });

  $("close-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!dispatchUrls) return;
    const form = event.target;
    sendStep(dispatchUrls.close, form, () => { form.reset(); show($("dispatch-step"), false); });
  });

  // -- the event stream ----------------------------------------------------------------

  const indicator = $("live-indicator");
  function live(state, label) { indicator.dataset.live = state; indicator.textContent = label; }

  const source = new EventSource(root.dataset.eventsUrl);
  source.addEventListener("open", () => live("on", "live"));
  source.addEventListener("snapshot", (event) => {
    live("on", "live");
    render(JSON.parse(event.data));
  });
  source.addEventListener("logout", () => {
    source.close();
    window.location.assign(root.dataset.loginUrl);
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      // Not an event stream any more (logged out, server gone): reload the page.
      live("off", "offline – reloading…");
      setTimeout(() => window.location.reload(), 5000);
    } else {
      live("off", "reconnecting…");
    }
  });

  render(snapshot);
  setInterval(tick, 1000);
})();
