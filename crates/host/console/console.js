// The operator console's page: asks for the API token, polls /v1/status (and
// the queue's history) every 2 s, follows the event stream, and draws.
// The logic lives in console-model.js; this file fetches and builds DOM.
//
// The token lives in this module's memory only: never in localStorage,
// sessionStorage, a cookie or the URL. Reloading the page forgets it.

import {
  QUIET_KINDS,
  QueueSeries,
  STATE_TEXT,
  SseParser,
  Timeline,
  authProblem,
  backoffMs,
  formatAgo,
  formatClock,
  formatRate,
  readStreamEvent,
  sameHostQuery,
  statusView,
  stillHolds,
} from "./console-model.js";

/** How often /v1/status is read. */
const POLL_MS = 2000;
/** A data call that takes longer is abandoned (and retried at the next poll). */
const REQUEST_TIMEOUT_MS = 5000;
/** Events read from the ring when the page opens. */
const INITIAL_EVENTS = 200;
/** A stream silent this long is taken for dead (the server comments every 15 s). */
const STREAM_SILENCE_MS = 40_000;
/** Timeline rows drawn. */
const TIMELINE_ROWS = 200;

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);

/** A DOM element: `h("td", {class: "num", text: "3"}, child…)`. */
function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "text") element.textContent = String(value);
    else if (key === "testid") element.dataset.testid = value;
    else if (key === "data") Object.assign(element.dataset, value);
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

const badge = (state, text = STATE_TEXT[state] ?? state) => h("span", { class: `state ${state}`, text });
const since = (ms) => (ms ? h("span", { title: formatClock(ms), text: formatAgo(ms, Date.now()) }) : "—");

class AuthError extends Error {
  constructor(message) {
    super(message);
    this.name = "AuthError";
  }
}

/** One signed-in session: the token and everything running on it. */
class Session {
  constructor(token) {
    this.token = token;
    this.controller = new AbortController();
    this.timeline = new Timeline();
    this.series = new QueueSeries();
    this.status = null;
    this.pollOk = false;
    this.streamState = "connecting";
    this.hiddenSystems = new Set();
    this.showAttempts = false;
    this.wakers = {};
    this.chart = null;
    this.chartResize = null;
    this.renderQueued = false;
  }

  get alive() {
    return !this.controller.signal.aborted;
  }

  stop() {
    this.controller.abort();
    for (const wake of Object.values(this.wakers)) wake();
  }

  /** GET `path` with the token; throws AuthError on 401. */
  async get(path, extraHeaders = {}) {
    const signal = AbortSignal.any([this.controller.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]);
    const response = await fetch(path, {
      headers: { authorization: `Bearer ${this.token}`, ...extraHeaders },
      cache: "no-store",
      signal,
    });
    const body = await response.json().catch(() => null);
    const problem = authProblem(response.status, body);
    if (problem) throw new AuthError(problem);
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}${body?.error ? `: ${body.error}` : ""}`);
    return body;
  }

  /** Ends the 2 s wait early (a health change arrived: read the status now). */
  wakePoll() {
    if (this.wakers.poll) this.wakers.poll();
    // Mid-request: that answer may predate the change, so poll again at once.
    else this.pollAgain = true;
  }

  /** Waits `ms`, or less when woken (`slot` names the waiter) or stopped. */
  sleep(ms, slot) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.wakers[slot] === done) delete this.wakers[slot];
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers[slot] = done;
    });
  }
}

let session = null;

// ---- the token form ---------------------------------------------------------------

function showTokenForm(message = "") {
  $("token-form").hidden = false;
  $("board").hidden = true;
  $("sign-out").hidden = true;
  $("token-error").textContent = message;
  setIndicator("live", "off", "not connected");
  $("token").value = "";
  $("token").focus();
}

async function signIn(token) {
  if (session) session.stop();
  const candidate = new Session(token);
  $("token-error").textContent = "";
  $("token-submit").disabled = true;
  try {
    candidate.status = await candidate.get("/v1/status");
  } catch (error) {
    $("token-submit").disabled = false;
    if (error instanceof AuthError) return showTokenForm(error.message);
    $("token-error").textContent = `Cannot reach this site's API: ${error.message}`;
    return;
  }
  $("token-submit").disabled = false;
  session = candidate;
  candidate.pollOk = true;
  $("token").value = "";
  $("token-form").hidden = true;
  $("board").hidden = false;
  $("sign-out").hidden = false;
  render(candidate);
  pollLoop(candidate);
  followEvents(candidate);
}

/** The token was refused mid-session: stop everything, ask again. */
function signOut(s, message) {
  s.stop();
  if (session === s) session = null;
  s.chartResize?.disconnect();
  s.chartResize = null;
  s.chart?.destroy();
  s.chart = null;
  showTokenForm(message);
}

// ---- polling ----------------------------------------------------------------------

async function pollLoop(s) {
  let first = true;
  while (s.alive) {
    if (!first && !s.pollAgain) await s.sleep(POLL_MS, "poll");
    s.pollAgain = false;
    if (!s.alive) return;
    try {
      if (!first) s.status = await s.get("/v1/status");
      if ((s.status?.systems ?? []).includes("messaging")) await readQueue(s);
      else s.queueError = "";
      s.pollOk = true;
      s.pollError = "";
      s.updatedAt = Date.now();
    } catch (error) {
      if (!s.alive) return;
      if (error instanceof AuthError) return signOut(s, error.message);
      s.pollOk = false;
      s.pollError = `Cannot read the status: ${error.message}. Retrying every ${POLL_MS / 1000} s.`;
    }
    first = false;
    render(s);
  }
}

/**
 * The queue's history once, then a sample per poll. A failure here leaves
 * the rest of the status standing (the chart says why it stopped).
 */
async function readQueue(s) {
  const after = s.series.lastAt();
  try {
    const history = await s.get(after === null ? "/v1/queue/history" : `/v1/queue/history?after_ms=${after}`);
    if (after === null) for (const sample of history.samples ?? []) s.series.add(sample);
    if (history.now) s.series.add(history.now);
    s.queueError = "";
  } catch (error) {
    if (error instanceof AuthError) throw error;
    s.queueError = `Queue history unavailable: ${error.message}`;
  }
}

// ---- the event stream ---------------------------------------------------------------

async function followEvents(s) {
  try {
    const ring = await s.get(`/v1/events?limit=${INITIAL_EVENTS}`);
    for (const record of ring.events ?? []) s.timeline.add(record);
  } catch (error) {
    if (error instanceof AuthError) return signOut(s, error.message);
    // The stream's backlog fills the gap once it connects.
  }
  render(s);
  let attempt = 0;
  let connected = false;
  while (s.alive) {
    s.streamState = attempt === 0 ? "connecting" : "reconnecting";
    render(s);
    const connection = new AbortController();
    const stop = () => connection.abort();
    s.controller.signal.addEventListener("abort", stop, { once: true });
    let watchdog = null;
    const feed = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(stop, STREAM_SILENCE_MS);
    };
    try {
      // Resuming: a restarted host numbers its events from 1 again, so check
      // that its ring still holds the last event seen before resuming after it.
      // Checked after any failed attempt, not only after a connected
      // stream: the host may restart while the first attempts fail.
      const last = connected || attempt > 0 ? s.timeline.lastRecord() : null;
      if (last && !stillHolds(await s.get(sameHostQuery(last)), last)) s.timeline.restarted();
      // The silence watchdog covers the wait for the answer's head too: a
      // host that accepts the connection and never answers is given up.
      feed();
      const lastSeq = s.timeline.lastSeq();
      const headers = { authorization: `Bearer ${s.token}`, accept: "text/event-stream" };
      // Nothing seen yet (the ring could not be read): the newest events as
      // the stream's backlog, not the whole ring from seq 0.
      if (lastSeq > 0) headers["last-event-id"] = String(lastSeq);
      const path = lastSeq > 0 ? "/v1/events/stream" : `/v1/events/stream?limit=${INITIAL_EVENTS}`;
      const response = await fetch(path, {
        headers,
        cache: "no-store",
        signal: connection.signal,
      });
      if (response.status === 401) {
        const body = await response.json().catch(() => null);
        return signOut(s, authProblem(401, body));
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      s.streamState = "live";
      connected = true;
      attempt = 0;
      render(s);
      feed();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      const parser = new SseParser();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        feed();
        for (const event of parser.push(value)) await onStreamEvent(s, event);
      }
    } catch (error) {
      if (error instanceof AuthError) return signOut(s, error.message);
      // Refused, cut or silent: reconnect below.
    } finally {
      clearTimeout(watchdog);
      s.controller.signal.removeEventListener("abort", stop);
    }
    if (!s.alive) return;
    const delay = backoffMs(attempt, Math.random());
    attempt += 1;
    s.streamState = "reconnecting";
    s.reconnectAt = Date.now() + delay;
    render(s);
    await s.sleep(delay, "stream");
  }
}

async function onStreamEvent(s, event) {
  const read = readStreamEvent(event);
  if (!read) return;
  if (read.lagged !== undefined) {
    // The stream skipped events: read them back from the ring.
    try {
      const missed = await s.get(`/v1/events?after=${s.timeline.lastSeq()}&limit=4096`);
      for (const record of missed.events ?? []) s.timeline.add(record, { live: true, receivedAt: Date.now() });
    } catch {
      // The next reconnect resumes from the last seq anyway.
    }
    render(s);
    return;
  }
  const record = read.record;
  if (s.timeline.add(record, { live: true, receivedAt: Date.now() })) {
    // A health change: the status (binds, trunks, sites) changed too.
    if (record.state || record.kind === "health") s.wakePoll();
    render(s);
  }
}

// ---- drawing -------------------------------------------------------------------------

function setIndicator(id, state, text) {
  const element = $(id);
  element.dataset.state = state;
  $(`${id}-text`).textContent = text;
}

/** Draws at the next frame, once however many changes came in. */
function render(s) {
  if (s.renderQueued) return;
  s.renderQueued = true;
  requestAnimationFrame(() => {
    s.renderQueued = false;
    if (session === s) draw(s);
  });
}

function draw(s) {
  const view = statusView(s.status ?? {}, s.timeline.records());
  document.title = view.site ? `${view.site.name} · hotsite console` : `hotsite console · ${location.host}`;
  $("site-name").textContent = view.site?.name ?? location.host;
  const mode = $("site-mode");
  mode.hidden = !view.site;
  if (view.site) {
    mode.className = `pill ${view.site.modeClass}`;
    mode.textContent = view.site.mode;
  }
  const streamText = {
    live: "live",
    connecting: "connecting…",
    reconnecting: `reconnecting${s.reconnectAt ? ` (in ${Math.max(0, Math.ceil((s.reconnectAt - Date.now()) / 1000))} s)` : ""}`,
  }[s.streamState];
  setIndicator("stream", s.streamState === "live" ? "live" : "reconnecting", streamText);
  const live = s.pollOk && s.streamState === "live";
  setIndicator("live", live ? "live" : s.pollOk ? "reconnecting" : "error", live ? "live" : s.pollOk ? streamText : "status unreachable");
  $("updated").textContent = s.updatedAt ? `updated ${formatClock(s.updatedAt).slice(0, 8)}` : "";
  const error = $("error");
  error.hidden = !s.pollError;
  error.textContent = s.pollError ?? "";

  $("site").replaceChildren(drawSite(view));
  $("binds").replaceChildren(drawBinds(view.binds));
  $("channels").replaceChildren(drawChannels(view.channels, s.status));
  $("trunks").replaceChildren(drawTrunks(view.trunks));
  $("agents").replaceChildren(drawAgents(view.agents, view.desktop));
  drawQueue(s, view.queue);
  drawTimeline(s, view.systems);
}

const notConfigured = (what) => h("p", { class: "muted", text: `${what} not configured on this site.` });

function drawSite(view) {
  const facts = h("dl", { class: "facts" });
  const fact = (term, ...value) => facts.append(h("dt", { text: term }), h("dd", {}, ...value));
  if (view.site) {
    fact("Site", h("strong", { text: view.site.name }));
    fact("Mode", h("span", { class: `pill ${view.site.modeClass}`, text: view.site.mode, testid: "mode" }));
    if (view.site.peer) {
      fact(
        "Peer link",
        h("span", { testid: "peer", data: { state: view.site.peer.state } }, badge(view.site.peer.state)),
        " ",
        h("code", { text: view.site.peer.address }),
        h("span", { class: "muted", text: ` probes answered ${view.site.peer.probes}` }),
      );
    } else {
      fact("Peer link", h("span", { class: "muted", text: "no peer (single site)" }));
    }
    fact("DNs in service", `${view.site.dnsInService} of ${view.site.dnsTotal}`);
    if (view.site.drainDeadlineMs) fact("Draining until", formatClock(view.site.drainDeadlineMs));
  } else {
    fact("Site", h("span", { class: "muted", text: "business continuity (site) not configured" }));
  }
  fact("Systems", view.systems.join(", ") || "—");
  return facts;
}

function drawBinds(groups) {
  if (!groups) return notConfigured("SMPP");
  if (groups.length === 0) return h("p", { class: "muted", text: "No SMSC configured." });
  return h(
    "div",
    {},
    groups.map(({ key, items }) => {
      const up = items.filter((bind) => bind.state === "up").length;
      const groupState = up === items.length ? "up" : up === 0 ? "down" : "probing";
      return [
        h("h3", { class: "group-head" }, `Provider site ${key} `, badge(groupState, `${up}/${items.length} in service`)),
        h(
          "table",
          {},
          h("thead", {}, h("tr", {}, ["SMSC", "Address", "State", "Since", "In flight", "Attempts", "Cause / last failure"].map((t) => h("th", { text: t, class: ["In flight", "Attempts"].includes(t) ? "num" : null })))),
          h(
            "tbody",
            {},
            items.map((bind) =>
              h(
                "tr",
                { class: bind.state, testid: `bind-${bind.smsc}`, data: { state: bind.state } },
                h("td", { text: bind.smsc, class: "mono" }),
                h("td", { text: bind.address, class: "mono" }),
                h("td", {}, badge(bind.state)),
                h("td", { class: "nowrap" }, since(bind.sinceMs)),
                h("td", { class: "num", text: bind.inFlight }),
                h("td", { class: "num", text: bind.attempts }),
                h("td", { class: bind.cause ? "wrap" : "wrap muted", testid: `bind-cause-${bind.smsc}`, text: bind.cause || bind.lastFailure }),
              ),
            ),
          ),
        ),
      ];
    }),
  );
}

function drawChannels(channels, status) {
  const routes = Array.isArray(status?.routes) ? status.routes : null;
  const parts = [];
  if (routes) {
    parts.push(
      h("p", { class: "muted small" }, `Routes: ${routes.map((r) => (r === status.default_route ? `${r} (default)` : r)).join(", ")}`),
    );
  }
  if (!channels) return parts.length ? h("div", {}, parts) : notConfigured("Messaging");
  if (channels.length === 0) parts.push(h("p", { class: "muted", text: "No HTTP aggregator or digital channel configured; SMPP binds above." }));
  const endpoints = channels.filter((channel) => channel.endpoint);
  if (endpoints.length > 0) {
    parts.push(
      h("h3", { class: "group-head" }, "Digital and e-mail channels"),
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, ["Channel", "Kind", "Endpoint", "State", "Since", "Sends", "Cause / last failure"].map((t) => h("th", { text: t, class: t === "Sends" ? "num" : null })))),
        h(
          "tbody",
          {},
          endpoints.map(({ name, kind, endpoint }) =>
            h(
              "tr",
              { class: endpoint.state, testid: `channel-${name}`, data: { state: endpoint.state } },
              h("td", { text: name }),
              h("td", { text: kind }),
              h("td", { text: endpoint.url, class: "mono url" }),
              h("td", {}, badge(endpoint.state)),
              h("td", { class: "nowrap" }, since(endpoint.sinceMs)),
              h("td", { class: "num", text: String(endpoint.sends) }),
              h("td", { class: endpoint.state === "up" ? "wrap muted" : "wrap", text: endpoint.cause }),
            ),
          ),
        ),
      ),
    );
  }
  for (const channel of channels.filter((channel) => !channel.endpoint)) {
    parts.push(
      h(
        "h3",
        { class: "group-head" },
        `${channel.name} `,
        channel.alert ? badge("down", "every site down") : badge(channel.sites.some((s) => s.state === "up") ? "up" : "down", `${channel.sites.filter((s) => s.state === "up").length}/${channel.sites.length} in service`),
      ),
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, ["Site", "URL", "State", "Since", "Cause / last probe"].map((t) => h("th", { text: t })))),
        h(
          "tbody",
          {},
          channel.sites.map((site) =>
            h(
              "tr",
              { class: site.state, testid: `channel-${channel.name}-${site.site}`, data: { state: site.state } },
              h("td", { text: site.site }),
              h("td", { text: site.url, class: "mono url" }),
              h("td", {}, badge(site.state)),
              h("td", { class: "nowrap" }, since(site.sinceMs)),
              // One column for both: the cause of a site out of service
              // needs the width, and a site in service mostly has neither.
              h(
                "td",
                { class: "wrap", testid: `channel-cause-${channel.name}-${site.site}` },
                site.cause,
                site.probe ? h("div", { class: "muted small", text: `last probe ${site.probe}` }) : null,
              ),
            ),
          ),
        ),
      ),
    );
  }
  return h("div", {}, parts);
}

function drawTrunks(trunks) {
  if (!trunks) return notConfigured("Voice");
  if (trunks.length === 0) return h("p", { class: "muted", text: "No trunk configured." });
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, ["Trunk", "Carrier", "Address", "State", "Since", "Cause"].map((t) => h("th", { text: t })))),
    h(
      "tbody",
      {},
      trunks.map((trunk) =>
        h(
          "tr",
          { class: trunk.state, testid: `trunk-${trunk.name}`, data: { state: trunk.state } },
          h("td", { text: trunk.name, class: "mono" }),
          h("td", { class: "nowrap", text: trunk.carrier }),
          h("td", { class: "mono", text: `${trunk.address} ${trunk.transport}` }),
          h("td", {}, badge(trunk.state)),
          h("td", { class: "nowrap" }, since(trunk.sinceMs)),
          // In service, the cause is the last change's (e.g. "configured"): history.
          h("td", { class: trunk.state === "up" ? "wrap muted" : "wrap", testid: `trunk-cause-${trunk.name}`, text: trunk.cause }),
        ),
      ),
    ),
  );
}

function drawAgents(agents, desktop) {
  if (!agents) return notConfigured("Business continuity (agents)");
  const parts = [];
  if (desktop) parts.push(h("p", { class: "muted small", text: `Desktops connected: ${desktop.connections}; telephony ${desktop.telephony}` }));
  if (agents.length === 0) parts.push(h("p", { class: "muted", text: "No agent configured." }));
  else {
    parts.push(
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, ["Site", "Agent", "DN", "State"].map((t) => h("th", { text: t })))),
        h(
          "tbody",
          {},
          agents.map((agent) =>
            h(
              "tr",
              { testid: `agent-${agent.id}` },
              h("td", { text: agent.site }),
              h("td", { text: agent.id }),
              h("td", { class: "mono", text: agent.dn || "—" }),
              h("td", {}, badge(agent.stateClass, agent.state.replaceAll("_", " "))),
            ),
          ),
        ),
      ),
    );
  }
  return h("div", {}, parts);
}

function drawQueue(s, queue) {
  const figures = $("queue");
  if (!queue) {
    figures.replaceChildren(notConfigured("Messaging"));
    $("queue-chart").hidden = true;
    return;
  }
  const rates = s.series.latestRates();
  const figure = (label, value, testid) => h("div", { class: "figure" }, h("b", { text: value ?? "—", testid }), h("span", { text: label }));
  figures.replaceChildren(
    figure("queued", queue.queued, "queued"),
    figure("in", formatRate(rates.in), "rate-in"),
    figure("out (sent)", formatRate(rates.out), "rate-out"),
    figure("awaiting receipt", queue.submitted),
    figure("final", queue.final),
    figure("failed", queue.failed),
    figure("inbound pending", queue.inboundPending),
    h("div", { class: "figure" }, h("b", {}, badge(queue.storeState, queue.store || "?")), h("span", { text: "store" })),
  );
  if (s.queueError) figures.append(h("p", { class: "error small", text: s.queueError }));
  const container = $("queue-chart");
  container.hidden = false;
  if (typeof uPlot !== "function") {
    container.replaceChildren(h("p", { class: "muted", text: "Chart library not loaded." }));
    return;
  }
  const data = s.series.columns();
  if (!s.chart) {
    s.chart = new uPlot(chartOptions(container.clientWidth || 600), data, container);
    // Kept (not `observe`'s undefined) so that sign-out can disconnect it.
    s.chartResize = new ResizeObserver(() => {
      if (s.chart && container.clientWidth > 0) s.chart.setSize({ width: container.clientWidth, height: 180 });
    });
    s.chartResize.observe(container);
  } else {
    s.chart.setData(data);
  }
}

function chartOptions(width) {
  const count = (u, v) => (v === null || v === undefined ? "—" : String(v));
  const perSecond = (u, v) => (v === null || v === undefined ? "—" : v.toFixed(1));
  return {
    width,
    height: 180,
    cursor: { drag: { x: false, y: false } },
    scales: {
      x: { time: true },
      n: { range: (u, min, max) => [0, Math.max(5, max ?? 0)] },
      rate: { range: (u, min, max) => [0, Math.max(1, max ?? 0)] },
    },
    series: [
      {},
      { label: "queued", scale: "n", stroke: "#0b5cad", width: 2, fill: "rgba(11, 92, 173, 0.08)", value: count },
      { label: "in msg/s", scale: "rate", stroke: "#8250df", width: 1.5, dash: [5, 4], value: perSecond },
      { label: "out msg/s", scale: "rate", stroke: "#1a7f37", width: 1.5, value: perSecond },
    ],
    axes: [
      {},
      { scale: "n", label: "queued", size: 50 },
      { scale: "rate", side: 1, label: "msg/s", grid: { show: false }, size: 50 },
    ],
  };
}

function drawTimeline(s, statusSystems) {
  const systems = [...new Set([...statusSystems, ...s.timeline.systems()])].sort();
  const filters = $("filters");
  const known = new Set([...filters.querySelectorAll("input")].map((input) => input.value));
  for (const system of systems) {
    if (known.has(system)) continue;
    const input = h("input", { type: "checkbox", value: system, testid: `filter-${system}` });
    input.checked = !s.hiddenSystems.has(system);
    input.addEventListener("change", () => {
      if (input.checked) s.hiddenSystems.delete(system);
      else s.hiddenSystems.add(system);
      render(s);
    });
    filters.append(h("label", {}, input, ` ${system}`));
  }
  if (!filters.querySelector('[data-testid="filter-attempts"]')) {
    const input = h("input", { type: "checkbox", value: "attempts", testid: "filter-attempts" });
    input.checked = s.showAttempts;
    input.addEventListener("change", () => {
      s.showAttempts = input.checked;
      render(s);
    });
    filters.append(h("label", { class: "muted", title: "connect_attempt and retry_scheduled events" }, input, " connection attempts"));
  }
  const shown = new Set(systems.filter((system) => !s.hiddenSystems.has(system)));
  const entries = s.timeline.entries(shown, TIMELINE_ROWS, s.showAttempts ? null : QUIET_KINDS);
  $("timeline-empty").hidden = entries.length > 0;
  $("timeline").replaceChildren(
    ...entries.map((entry) =>
      h(
        "tr",
        {
          class: entry.live ? "live" : null,
          testid: "timeline-entry",
          title: entry.text,
          data: { seq: entry.seq, epoch: entry.epoch, system: entry.system, target: entry.target, kind: entry.kind, live: entry.live ? "true" : "false", receivedAt: entry.receivedAt ?? "" },
        },
        h("td", { class: "time", text: formatClock(entry.atMs) }),
        h("td", { class: "target" }, h("span", { class: "system", text: entry.system }), h("code", { text: entry.target })),
        h("td", {}, entry.state ? badge(entry.state, entry.what) : entry.what),
        h("td", { class: "wrap", text: entry.cause || entry.text }),
      ),
    ),
  );
}

// ---- start -----------------------------------------------------------------------------

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  if (token) signIn(token);
});
$("sign-out").addEventListener("click", () => {
  if (session) signOut(session, "Token forgotten. Enter it again to continue.");
});
// "4 s ago" stays true between polls.
setInterval(() => {
  if (session) render(session);
}, 1000);
showTokenForm();
