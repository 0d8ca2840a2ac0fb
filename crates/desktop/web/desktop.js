// The web agent desktop (issue 13, SPEC D1–D8): an ES module with no build
// step and no dependency but switchover.js.
//
// Two parts:
// - `DesktopCore`: the glue between the desktop protocol (PROTOCOL.md) and the
//   switchover machine, exactly as PROTOCOL.md's last two tables say. It owns
//   no DOM and no clock: the WebSocket class, the clock, the timers and the
//   storage are passed in, so node tests drive it with fakes
//   (desktop.test.mjs). It reports every change through `onChange`.
// - `mountDesktop`: the page (index.html), a thin view of the core's state.
//   It runs only in a browser (when this module is loaded by index.html).

import { LOGOUT_REASONS, REASONS, Switchover, parseInput } from "./switchover.js";

/** The application name this desktop gives in `hello` (D1). */
export const APPLICATION = "hotsite-web-desktop";
/** The heartbeat period (PROTOCOL.md: clients ping every 5 s). */
export const PING_INTERVAL_MS = 5_000;
/** Pings unanswered in a row that count as a lost connection. */
export const PINGS_MISSED = 3;
/** Decisions kept for the site while disconnected, and sent per request (D7). */
export const OUTBOX = 256;
export const DECISIONS_PER_REQUEST = 64;

/** Storage keys (D3). The password is never stored. */
export const STORAGE_PREFERRED = "hotsite-desktop.preferred-site";
export const STORAGE_SITES = "hotsite-desktop.sites";

/** The three listeners the protocol reports. */
export const SERVICES = ["telephony", "configuration", "statistics"];

/** Readable text for every reason code of the machine (D7). */
export const REASON_TEXT = Object.freeze({
  startup: "Starting: connecting to the first site",
  config_unreachable_try_other: "The configuration service did not answer: trying the other site",
  config_unreachable_retry: "Neither site answers: retrying after a delay",
  login_refused: "The site refused the login: staying (log in by hand)",
  on_preferred_site: "On the preferred site: logging in",
  not_on_preferred_site: "Not on the preferred site: switching over to it",
  preferred_site_unavailable: "The preferred site is unavailable: logging in here",
  cached_preferred_site: "Connecting to the cached preferred site first",
  preferred_site_read: "Preferred site read: remembering it for the next start",
  telephony_off: "Telephony is OFF: neither server of the site answers",
  telephony_on: "Telephony is ON again",
  telephony_off_timeout: "Telephony stayed OFF past the site timeout: switching over",
  configuration_off: "Configuration service is OFF (warning only)",
  configuration_on: "Configuration service is ON again",
  statistics_off: "Statistics service is OFF (warning only)",
  statistics_on: "Statistics service is ON again",
  manual_logout: "Logged out by the agent: no action",
  supervisor_logout: "Logged out by a supervisor: no action",
  peer_login: "Logged in at the peer site from another desktop: no action",
  dr_force_logout: "The phone lost its registration: waiting for it to come back",
  dn_out_of_service: "The phone (DN) is out of service",
  dn_back_in_service: "The phone (DN) is back in service",
  dr_force_logout_register_timeout: "The phone did not come back in time: switching over",
  graceful_shutdown_logout: "The site is shutting down: switching over",
});

/** Readable text for a decision kind. */
export const DECISION_TEXT = Object.freeze({
  connect: "connect",
  cache_preferred_site: "remember site",
  log_in: "log in",
  switch_over: "switch over",
  reconnect: "reconnect",
  warn: "warn",
  clear_warning: "clear warning",
  wait: "wait",
  stay: "stay",
});

/** One line of text for a decision, for the list and for logs (D7). */
export function describeDecision(decision, now = 0) {
  const parts = [DECISION_TEXT[decision.kind] ?? decision.kind];
  if (decision.site) parts.push(`site ${decision.site}`);
  if (decision.listener) parts.push(decision.listener);
  if (decision.kind === "wait") {
    parts.push(decision.until === null ? "no deadline" : `for ${((decision.until - now) / 1000).toFixed(1)} s`);
  }
  const text = REASON_TEXT[decision.reason] ?? decision.reason;
  return `${parts.join(" · ")} — ${text} (${decision.reason}, ${REASONS[decision.reason] ?? "?"})`;
}

/**
 * The site's logout reasons, mapped to the machine's (D6). `peer_login` (the
 * agent logged in at the peer site, SPEC S1) means its desktop is over there:
 * nothing to follow. A machine that does not know it yet takes it as a
 * supervisor's logout (the same `stay`).
 */
export function machineLogoutReason(reason) {
  if (LOGOUT_REASONS.includes(reason)) return reason;
  return reason === "peer_login" ? "supervisor" : reason;
}

/** Options of the page from a query string (`?site_timeout_ms=3000`, ...). */
export function optionsFromQuery(search) {
  const params = new URLSearchParams(search);
  const options = {};
  for (const key of ["site_timeout_ms", "site_sip_register_timeout_ms", "retry_delay_ms", "retry_jitter_ms", "ping_interval_ms"]) {
    if (!params.has(key)) continue;
    const text = params.get(key);
    options[key] = text === "" || text === "null" ? null : Number(text);
  }
  if (params.has("url")) options.url = params.get("url");
  if (params.has("user")) options.user = params.get("user");
  return options;
}

/** The default site URL: the page's own origin (D1). */
export function defaultUrl(location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/v1/desktop`;
}

/**
 * One WebSocket to one site. Its handlers are dropped on close (D8: events of
 * a torn-down stack never reach the machine).
 */
class Link {
  constructor(core, site, url) {
    this.core = core;
    this.site = site; // null until the hello answer for a bootstrap link
    this.url = url;
    this.nextId = 1;
    this.pending = new Map(); // id -> request type
    this.helloId = null;
    this.answered = false; // hello answered with a result
    this.closed = false;
    this.missed = 0;
    this.pingTimer = null;
    this.ws = new core.WebSocket(url);
    this.ws.onopen = () => this.open();
    this.ws.onmessage = (event) => this.message(event.data);
    this.ws.onclose = () => this.lost("closed");
    this.ws.onerror = () => this.lost("error");
  }

  send(type, fields = {}) {
    const id = this.nextId++;
    this.pending.set(id, type);
    this.ws.send(JSON.stringify({ type, id, ...fields }));
    return id;
  }

  open() {
    if (this.closed) return;
    const { user, password } = this.core.credentials;
    // A session token from an earlier hello (either site) spares the site a
    // password check; the password follows if the token is refused.
    const token = this.core.sessionToken;
    this.withToken = Boolean(token);
    this.helloId = this.send("hello", token
      ? { application: APPLICATION, user, token }
      : { application: APPLICATION, user, password });
  }

  message(data) {
    if (this.closed) return;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      this.core.log(`bad frame from ${this.url}`);
      return;
    }
    const core = this.core;
    if (message.type === "result" || message.type === "error") {
      const request = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (request === "ping") {
        this.missed = 0;
        return;
      }
      if (request === "hello") {
        if (message.type === "error" && message.code === "bad_session" && this.withToken) {
          core.sessionToken = null;
          this.withToken = false;
          const { user, password } = core.credentials;
          this.helloId = this.send("hello", { application: APPLICATION, user, password });
          return;
        }
        if (message.type === "result") {
          this.answered = true;
          this.site = message.site;
          // Kept in memory only, like the password.
          core.sessionToken = message.session?.token ?? null;
          this.startPing();
          core.helloAnswered(this, message);
        } else {
          core.helloRefused(this, message);
        }
        return;
      }
      core.answer(this, request, message);
      return;
    }
    if (!this.answered) return;
    core.event(this, message);
  }

  startPing() {
    const tick = () => {
      if (this.closed) return;
      // Three pings in a row without an answer: the site is gone (PROTOCOL.md).
      if (this.missed >= PINGS_MISSED) {
        this.core.log(`${PINGS_MISSED} pings unanswered by site ${this.site}`);
        this.lost("ping");
        return;
      }
      this.missed += 1;
      this.send("ping");
      this.pingTimer = this.core.setTimeout(tick, this.core.pingInterval);
    };
    this.pingTimer = this.core.setTimeout(tick, this.core.pingInterval);
  }

  lost(why) {
    if (this.closed) return;
    this.close();
    this.core.linkLost(this, why);
  }

  /** Closes without telling the core. */
  close() {
    if (this.closed) return;
    this.closed = true;
    if (this.pingTimer !== null) this.core.clearTimeout(this.pingTimer);
    this.pingTimer = null;
    this.ws.onopen = this.ws.onmessage = this.ws.onclose = this.ws.onerror = null;
    try {
      this.ws.close();
    } catch {
      // already closed
    }
  }
}

/**
 * The protocol ↔ machine glue of one desktop. Environment (all injectable):
 * `WebSocket` (a class like the browser's), `now()` (ms), `setTimeout`,
 * `clearTimeout`, `storage` (getItem/setItem, or null), `seed`, `onChange`
 * (called with no argument after every change), `log` (a line of text).
 */
export class DesktopCore {
  constructor({ url, options = {}, WebSocket, now, setTimeout, clearTimeout, storage = null, seed, onChange, log }) {
    this.url = url;
    this.WebSocket = WebSocket;
    this.now = now;
    this.setTimeout = setTimeout;
    this.clearTimeout = clearTimeout;
    this.storage = storage;
    this.seed = seed ?? Math.floor(Math.random() * Number.MAX_SAFE_INTEGER);
    this.onChange = onChange ?? (() => {});
    this.logLine = log ?? (() => {});
    const { ping_interval_ms: pingInterval, url: _url, user: _user, ...machineOptions } = options;
    this.pingInterval = pingInterval ?? PING_INTERVAL_MS;
    this.machineOptions = machineOptions;
    this.origin = now();
    this.reset();
  }

  reset() {
    this.credentials = { user: "", password: "" };
    this.sessionToken = null;
    this.hotSeating = false;
    this.machine = null;
    this.sites = null; // [{name, url}, {name, url}]
    this.link = null;
    this.linkSite = null; // the site `link` talks to (known before its answer)
    this.timer = null;
    this.running = false;
    this.inputs = [];
    this.draining = false;
    this.bootstrap = null;
    // What the page shows.
    this.site = null;
    this.person = null;
    this.agent = null;
    this.dn = null;
    this.listeners = { telephony: "off", configuration: "off", statistics: "off" };
    this.services = { telephony: "on", configuration: "on", statistics: "on" };
    this.warnings = {}; // listener -> reason
    this.decisions = []; // {at, decision, text}
    this.outbox = []; // decisions not yet sent to a site (D7)
    this.status = "signed out";
    this.error = null;
    this.stats = null;
  }

  log(line) {
    this.logLine(line);
  }

  changed() {
    this.onChange();
  }

  // ---- the agent's actions ------------------------------------------------

  /**
   * Starts the desktop (D1): with a known pair of sites (cached) the machine
   * starts at once; otherwise a first connection to the page's own site
   * learns the pair from its hello answer.
   */
  start({ user, password, hotSeating = false }) {
    this.stop();
    this.credentials = { user, password };
    this.sessionToken = null;
    this.hotSeating = hotSeating;
    this.running = true;
    this.status = "connecting";
    const sites = this.loadSites();
    if (sites !== null) {
      this.startMachine(sites, this.siteOfUrl(sites, this.url) ?? sites[0].name);
    } else {
      this.linkSite = null;
      this.link = new Link(this, null, this.url);
    }
    this.changed();
  }

  /** Stops everything: connection, timers; the password is forgotten. */
  stop() {
    if (this.link) this.link.close();
    if (this.timer !== null) this.clearTimeout(this.timer);
    const { decisions } = this;
    this.reset();
    this.decisions = decisions ?? [];
    this.changed();
  }

  login() {
    this.request("login");
  }

  ready() {
    this.request("ready");
  }

  notReady() {
    this.request("not_ready");
  }

  logout() {
    this.request("logout");
  }

  request(type) {
    if (!this.link || !this.link.answered || this.link.closed) {
      this.error = `not connected: cannot send ${type}`;
      this.changed();
      return;
    }
    this.link.send(type);
  }

  // ---- the machine --------------------------------------------------------

  elapsed() {
    return Math.max(0, Math.round(this.now() - this.origin));
  }

  startMachine(sites, startSite) {
    this.sites = sites;
    this.machine = new Switchover({ sites: [sites[0].name, sites[1].name], ...this.machineOptions }, this.seed);
    const cached = this.hotSeating ? null : this.storageGet(STORAGE_PREFERRED);
    const usable = cached !== null && sites.some((s) => s.name === cached) ? cached : null;
    this.feed({ kind: "start", site: startSite, cached_preferred_site: usable, hot_seating: this.hotSeating });
  }

  /**
   * One input into the machine, then every decision and the timer. An input
   * that an action feeds (a connection reused at once) waits its turn, so
   * decisions are acted on in the machine's order.
   */
  feed(input) {
    if (!this.machine) return;
    this.inputs.push(input);
    this.pump(null);
  }

  /** Runs `first` (a timer's work) if any, then every queued input. */
  pump(first) {
    if (this.draining) return;
    this.draining = true;
    try {
      if (first) first();
      this.drainOutputs();
      while (this.inputs.length > 0 && this.machine) {
        const next = this.inputs.shift();
        try {
          this.machine.handleInput(this.elapsed(), parseInput(next));
        } catch (error) {
          this.log(`machine refused ${next.kind}: ${error.message}`);
        }
        this.drainOutputs();
      }
    } finally {
      this.draining = false;
    }
    if (this.machine) this.arm();
    this.sendDecisions();
    this.changed();
  }

  drainOutputs() {
    for (let decision; this.machine && (decision = this.machine.pollOutput()) !== null; ) this.act(decision);
  }

  arm() {
    if (this.timer !== null) this.clearTimeout(this.timer);
    this.timer = null;
    const deadline = this.machine.pollTimeout();
    if (deadline === null) return;
    this.timer = this.setTimeout(() => {
      this.timer = null;
      if (!this.machine) return;
      // The deadline, or later if the timer was late: never before it.
      this.pump(() => this.machine.handleTimeout(Math.max(deadline, this.elapsed())));
    }, Math.max(0, deadline - this.elapsed()));
  }

  /** A machine output → what the client does (PROTOCOL.md's last table). */
  act(decision) {
    const at = this.elapsed();
    const text = describeDecision(decision, at);
    const wall = Date.now();
    this.decisions.push({ at, wall, decision, text });
    // D7: every decision also goes to the site, for monitoring, once connected.
    if (this.outbox.length === OUTBOX) this.outbox.shift();
    this.outbox.push({ kind: decision.kind, reason: decision.reason, about: decision.site ?? decision.listener ?? null, at_ms: wall });
    this.log(text);
    switch (decision.kind) {
      case "connect":
        this.connect(decision.site);
        break;
      case "log_in":
        this.status = `logging in at site ${decision.site}`;
        this.request("login");
        break;
      case "switch_over":
        // D8: the stack restarts against the target, the page stays.
        if (this.link) this.link.close();
        this.link = null;
        this.linkSite = null;
        this.site = null;
        this.agent = null;
        this.dn = null;
        this.stats = null;
        this.setListeners("off");
        this.warnings = {};
        this.status = `switching over to site ${decision.site}`;
        break;
      case "reconnect":
        if (!this.link || this.link.closed) this.connect(decision.site);
        break;
      case "warn":
        this.warnings[decision.listener] = decision.reason;
        break;
      case "clear_warning":
        delete this.warnings[decision.listener];
        break;
      case "wait":
        this.status = REASON_TEXT[decision.reason] ?? decision.reason;
        break;
      case "stay":
        this.status = `staying at site ${decision.site}: ${REASON_TEXT[decision.reason] ?? decision.reason}`;
        break;
      case "cache_preferred_site":
        this.storageSet(STORAGE_PREFERRED, decision.site);
        break;
      default:
        this.log(`unknown decision ${decision.kind}`);
    }
  }

  /** `connect`/`reconnect`: a new WebSocket to the site's url, then `hello`. */
  connect(site) {
    if (this.link && !this.link.closed) {
      // The first connection, already answered for this very site: use it.
      if (this.link.answered && this.link.site === site && this.bootstrap) {
        this.bootstrap = null;
        this.acceptHello(this.link, this.link.hello);
        return;
      }
      this.link.close();
    }
    this.bootstrap = null;
    const entry = this.sites.find((s) => s.name === site);
    this.linkSite = site;
    this.status = `connecting to site ${site}`;
    this.link = new Link(this, site, entry.url);
  }

  setListeners(state) {
    for (const name of SERVICES) this.listeners[name] = state;
  }

  // ---- from the links -----------------------------------------------------

  helloAnswered(link, answer) {
    link.hello = answer;
    this.error = null;
    if (!this.machine) {
      // The first connection (no known pair): learn the sites, start there.
      const sites = answer.sites.map(({ name, url }) => ({ name, url }));
      this.storageSet(STORAGE_SITES, JSON.stringify(sites));
      this.bootstrap = link;
      this.startMachine(sites, answer.site);
      return;
    }
    this.acceptHello(link, answer);
  }

  /** A `hello` result on the current connection → the machine's inputs. */
  acceptHello(link, answer) {
    const site = answer.site;
    this.site = site;
    this.person = answer.person;
    this.agent = answer.agent;
    this.dn = answer.dn;
    this.services = { ...this.services, ...answer.services };
    for (const name of SERVICES) this.listeners[name] = this.services[name] === "on" ? "on" : "off";
    this.status = `connected to site ${site}`;
    this.feed({ kind: "config_connected", site });
    if (this.link !== link) return; // the machine moved on
    this.feed({ kind: "config_answer", preferred: answer.person.preferred_site, secondary: answer.person.secondary_site });
    if (this.link !== link) return;
    // A reconnection: the listeners are back (or still off, as the site says).
    for (const name of SERVICES) {
      this.feed({ kind: this.services[name] === "on" ? "listener_on" : "listener_off", listener: name });
    }
    if (answer.dn && answer.dn.in_service === false) this.feed({ kind: "dn_out_of_service" });
    else this.feed({ kind: "dn_back_in_service" });
  }

  helloRefused(link, error) {
    this.error = `${error.code}: ${error.message ?? ""}`;
    if (error.code === "bad_credentials" || error.code === "unknown_application" || error.code === "too_many_attempts") {
      // The same answer at either site: asking the other one would not help.
      link.close();
      const message = this.error;
      this.stop();
      this.error = message;
      this.status = "signed out";
      this.changed();
      return;
    }
    link.lost("hello refused");
  }

  linkLost(link, why) {
    if (link !== this.link) return;
    this.log(`connection to ${link.url} lost (${why})`);
    this.link = null;
    if (!this.machine) {
      // The first connection failed: nothing known to try instead; retry.
      this.error = `cannot reach ${this.url} (${why}); retrying`;
      this.status = "waiting for the site";
      this.timer = this.setTimeout(() => {
        this.timer = null;
        if (this.running && !this.machine) this.link = new Link(this, null, this.url);
      }, this.machineOptions.retry_delay_ms ?? 2_000);
      this.changed();
      return;
    }
    if (!link.answered) {
      this.feed({ kind: "config_failed", site: this.linkSite });
      return;
    }
    // Connection lost / ping unanswered: all three listeners OFF at once.
    this.setListeners("off");
    for (const name of SERVICES) this.feed({ kind: "listener_off", listener: name });
  }

  answer(link, request, message) {
    if (message.type === "result" && message.agent) this.agent = message.agent;
    if (request === "login") {
      if (message.type === "result") {
        this.status = `logged in at site ${link.site}`;
        this.feed({ kind: "agent_logged_in" });
      } else if (message.code === "already_logged_in") {
        this.feed({ kind: "agent_logged_in" });
      } else {
        this.error = `login: ${message.code}: ${message.message ?? ""}`;
        this.feed({ kind: "login_refused", detail: message.message ?? message.code });
      }
      return;
    }
    if (request === "decisions") return;
    if (message.type === "error") this.error = `${request}: ${message.code}: ${message.message ?? ""}`;
    else this.error = null;
    this.changed();
  }

  /** Sends the kept decisions to the site, if signed in there (D7). */
  sendDecisions() {
    const link = this.link;
    if (!link || !link.answered || link.closed) return;
    while (this.outbox.length > 0) {
      link.send("decisions", { decisions: this.outbox.splice(0, DECISIONS_PER_REQUEST) });
    }
  }

  event(link, message) {
    switch (message.type) {
      case "agent":
        this.agent = message.agent;
        this.changed();
        break;
      case "logged_out":
        this.agent = message.agent;
        this.status = `logged out at site ${link.site} (${message.reason})`;
        this.feed({ kind: "agent_logged_out", reason: machineLogoutReason(message.reason) });
        break;
      case "dn":
        this.dn = { dn: message.dn, in_service: message.in_service, cause: message.cause };
        this.feed({ kind: message.in_service ? "dn_back_in_service" : "dn_out_of_service" });
        break;
      case "service":
        if (!SERVICES.includes(message.service)) break;
        this.services[message.service] = message.state;
        this.listeners[message.service] = message.state === "on" ? "on" : "off";
        this.feed({ kind: message.state === "on" ? "listener_on" : "listener_off", listener: message.service });
        break;
      case "stats":
        this.stats = message;
        this.changed();
        break;
      default:
        this.log(`unknown event ${message.type}`);
    }
  }

  // ---- helpers --------------------------------------------------------------

  siteOfUrl(sites, url) {
    return sites.find((s) => s.url === url)?.name ?? null;
  }

  loadSites() {
    const text = this.storageGet(STORAGE_SITES);
    if (text === null) return null;
    try {
      const sites = JSON.parse(text);
      if (Array.isArray(sites) && sites.length === 2 && sites.every((s) => typeof s.name === "string" && typeof s.url === "string")) {
        // The cache is for this pair only: the page's own site must be in it.
        if (this.siteOfUrl(sites, this.url) !== null) return sites;
      }
    } catch {
      // a bad cache is no cache
    }
    return null;
  }

  storageGet(key) {
    try {
      return this.storage ? this.storage.getItem(key) : null;
    } catch {
      return null;
    }
  }

  storageSet(key, value) {
    // D3: under hot seating nothing about the person is kept.
    if (this.hotSeating && key === STORAGE_PREFERRED) return;
    try {
      if (this.storage) this.storage.setItem(key, value);
    } catch {
      // storage full or forbidden: caching is only an optimisation
    }
  }
}

// ---- the page ---------------------------------------------------------------

function text(element, value) {
  if (element.textContent !== value) element.textContent = value;
}

/** Binds the page's elements to a core; returns the core. */
export function mountDesktop(document, window) {
  const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
  const options = optionsFromQuery(window.location.search);
  const url = options.url ?? defaultUrl(window.location);
  const form = $("login-form");
  const desk = $("desk");
  const list = $("decisions");
  let shown = 0;

  const core = new DesktopCore({
    url,
    options,
    WebSocket: window.WebSocket,
    now: () => window.performance.now(),
    setTimeout: (f, ms) => window.setTimeout(f, ms),
    clearTimeout: (t) => window.clearTimeout(t),
    storage: window.localStorage,
    log: (line) => window.console.info(`[desktop] ${line}`),
    onChange: () => render(),
  });

  function render() {
    form.hidden = core.running;
    desk.hidden = !core.running;
    text($("site"), core.site ?? "—");
    text($("sites"), core.sites ? core.sites.map((s) => s.name).join(" / ") : "—");
    text($("preferred"), core.person ? `${core.person.preferred_site} (secondary ${core.person.secondary_site})` : "—");
    text($("agent-state"), core.agent ? core.agent.state : "—");
    text($("dn-state"), core.dn ? `${core.dn.dn}: ${core.dn.in_service ? "in service" : "out of service"}` : "—");
    for (const name of SERVICES) {
      const element = $(`listener-${name}`);
      const state = core.listeners[name].toUpperCase();
      text(element, state);
      element.dataset.state = core.listeners[name];
    }
    const stats = core.stats;
    text(
      $("stats"),
      stats
        ? `${stats.agents_logged_in} logged in · ${stats.agents_ready} ready · ${stats.calls_waiting} waiting · ${stats.calls_active} active`
        : "—",
    );
    text($("status"), core.status);
    text($("error"), core.error ?? "");
    text($("login-error"), core.running ? "" : core.error ?? "");
    const warnings = $("warnings");
    const items = Object.entries(core.warnings).map(
      ([listener, reason]) => `${listener}: ${REASON_TEXT[reason] ?? reason}`,
    );
    warnings.replaceChildren(
      ...items.map((line) => {
        const li = document.createElement("li");
        li.textContent = line;
        return li;
      }),
    );
    warnings.dataset.count = String(items.length);
    for (; shown < core.decisions.length; shown++) {
      const { wall, decision, text: line } = core.decisions[shown];
      const li = document.createElement("li");
      li.dataset.kind = decision.kind;
      li.dataset.reason = decision.reason;
      if (decision.site) li.dataset.site = decision.site;
      const time = document.createElement("time");
      const date = new Date(wall);
      time.dateTime = date.toISOString();
      time.textContent = date.toLocaleTimeString(undefined, { hour12: false }) + `.${String(date.getMilliseconds()).padStart(3, "0")}`;
      li.append(time, " ", line);
      list.prepend(li);
    }
    if (core.decisions.length < shown) {
      list.replaceChildren();
      shown = 0;
    }
  }

  if (options.user) form.elements.user.value = options.user;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const user = form.elements.user.value.trim();
    const password = form.elements.password.value;
    // The password lives in the core's memory only, never in storage.
    form.elements.password.value = "";
    core.start({ user, password, hotSeating: form.elements.hot_seating.checked });
  });
  $("login").addEventListener("click", () => core.login());
  $("ready").addEventListener("click", () => core.ready());
  $("not-ready").addEventListener("click", () => core.notReady());
  $("logout").addEventListener("click", () => core.logout());
  $("sign-out").addEventListener("click", () => core.stop());
  text($("url"), url);
  render();
  window.hotsiteDesktop = core;
  return core;
}

if (typeof document !== "undefined" && typeof window !== "undefined") {
  mountDesktop(document, window);
}
