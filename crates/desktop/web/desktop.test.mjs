// The web desktop's protocol ↔ machine glue (desktop.js `DesktopCore`) with a
// fake WebSocket and fake time: no browser, no network, no sleep.
// Run: node --test crates/desktop/web/

import { test } from "node:test";
import assert from "node:assert/strict";

import {
  APPLICATION,
  DesktopCore,
  PINGS_MISSED,
  PING_INTERVAL_MS,
  REASON_TEXT,
  STORAGE_PREFERRED,
  STORAGE_SITES,
  describeDecision,
  machineLogoutReason,
  optionsFromQuery,
} from "./desktop.js";
import { LOGOUT_REASONS, REASONS } from "./switchover.js";

const URL_A = "ws://a.example:8080/v1/desktop";
const URL_B = "ws://b.example:8080/v1/desktop";

/** Fake time: timers fire in order when the clock is advanced. */
class Clock {
  constructor() {
    this.time = 0;
    this.timers = new Map();
    this.nextId = 1;
  }
  now = () => this.time;
  setTimeout = (f, ms) => {
    const id = this.nextId++;
    this.timers.set(id, { at: this.time + Math.max(0, ms), f });
    return id;
  };
  clearTimeout = (id) => {
    this.timers.delete(id);
  };
  advance(ms) {
    const end = this.time + ms;
    for (;;) {
      let best = null;
      for (const [id, timer] of this.timers) {
        if (timer.at <= end && (best === null || timer.at < best[1].at)) best = [id, timer];
      }
      if (best === null) break;
      this.timers.delete(best[0]);
      this.time = Math.max(this.time, best[1].at);
      best[1].f();
    }
    this.time = end;
  }
}

/** A fake WebSocket class that records every socket it makes. */
function fakeSockets() {
  const sockets = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.closed = false;
      sockets.push(this);
    }
    send(text) {
      assert.ok(!this.closed, "send on a closed socket");
      this.sent.push(JSON.parse(text));
    }
    close() {
      this.closed = true;
    }
    // The server side, for the test.
    open() {
      this.onopen?.();
    }
    receive(message) {
      this.onmessage?.({ data: JSON.stringify(message) });
    }
    drop() {
      this.closed = true;
      this.onclose?.();
    }
    last(type) {
      return [...this.sent].reverse().find((m) => m.type === type);
    }
  }
  return { FakeSocket, sockets };
}

function memoryStorage(initial = {}) {
  const map = new Map(Object.entries(initial));
  return {
    map,
    getItem: (key) => (map.has(key) ? map.get(key) : null),
    setItem: (key, value) => map.set(key, String(value)),
  };
}

function helloAnswer(id, site, { preferred = "a", services, agentState = "logged_out", inService = true } = {}) {
  return {
    type: "result",
    id,
    protocol: 1,
    site,
    person: { user: "alice", agent: "alice", dn: "1001", preferred_site: preferred, secondary_site: preferred === "a" ? "b" : "a" },
    sites: [
      { name: "a", url: URL_A },
      { name: "b", url: URL_B },
    ],
    services: services ?? { configuration: "on", telephony: "on", statistics: "on" },
    agent: { id: "alice", dn: null, state: agentState },
    dn: { dn: "1001", in_service: inService },
  };
}

function desktop({ storage = memoryStorage(), options = {} } = {}) {
  const clock = new Clock();
  const { FakeSocket, sockets } = fakeSockets();
  const core = new DesktopCore({
    url: URL_A,
    options: { retry_jitter_ms: 0, site_timeout_ms: 3000, ...options },
    WebSocket: FakeSocket,
    now: clock.now,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    storage,
    seed: 7,
  });
  return { core, clock, sockets, storage };
}

/** Opens socket `s`, answers its hello for `site`; returns the hello. */
function answerHello(s, site, answer = {}) {
  s.open();
  const hello = s.last("hello");
  s.receive(helloAnswer(hello.id, site, answer));
  return hello;
}

function kinds(core) {
  return core.decisions.map(({ decision }) => `${decision.kind}:${decision.reason}`);
}

/** Started at a, logged in at a. */
function loggedInAtA(setup = {}) {
  const d = desktop(setup);
  d.core.start({ user: "alice", password: "pw" });
  answerHello(d.sockets[0], "a");
  const login = d.sockets[0].last("login");
  d.sockets[0].receive({ type: "result", id: login.id, agent: { id: "alice", dn: "1001", state: "not_ready" } });
  return d;
}

test("D1, D2: the hello answer becomes config_connected then config_answer, and log_in sends login", () => {
  const { core, sockets, storage } = desktop();
  core.start({ user: "alice", password: "secret" });
  assert.equal(sockets.length, 1);
  assert.equal(sockets[0].url, URL_A, "the first connection is the page's own site");
  sockets[0].open();
  const hello = sockets[0].sent[0];
  assert.deepEqual(hello, { type: "hello", id: hello.id, application: APPLICATION, user: "alice", password: "secret" });
  sockets[0].receive(helloAnswer(hello.id, "a"));
  // The first connection is reused: no second socket for the same site.
  assert.equal(sockets.length, 1);
  assert.deepEqual(kinds(core), ["connect:startup", "cache_preferred_site:preferred_site_read", "log_in:on_preferred_site"]);
  assert.equal(sockets[0].last("login").type, "login");
  assert.equal(core.site, "a");
  assert.deepEqual(core.listeners, { telephony: "on", configuration: "on", statistics: "on" });
  assert.equal(storage.map.get(STORAGE_PREFERRED), "a");
  assert.ok(storage.map.get(STORAGE_SITES).includes(URL_B), "the pair is remembered");
  for (const value of storage.map.values()) assert.ok(!value.includes("secret"), "the password is never stored");
});

test("D2, D8: at the secondary site the desktop switches over to the preferred site's url", () => {
  const { core, sockets } = desktop();
  core.start({ user: "alice", password: "pw" });
  answerHello(sockets[0], "a", { preferred: "b" });
  assert.ok(sockets[0].closed, "the old connection is closed");
  assert.equal(sockets.length, 2);
  assert.equal(sockets[1].url, URL_B);
  answerHello(sockets[1], "b", { preferred: "b" });
  assert.deepEqual(kinds(core).slice(-3), ["switch_over:not_on_preferred_site", "connect:not_on_preferred_site", "log_in:on_preferred_site"]);
  assert.equal(core.site, "b");
});

test("D3: a cached preferred site is tried first; hot seating ignores and writes no cache", () => {
  const sites = JSON.stringify([
    { name: "a", url: URL_A },
    { name: "b", url: URL_B },
  ]);
  const cached = desktop({ storage: memoryStorage({ [STORAGE_SITES]: sites, [STORAGE_PREFERRED]: "b" }) });
  cached.core.start({ user: "alice", password: "pw" });
  assert.equal(cached.sockets[0].url, URL_B);
  assert.deepEqual(kinds(cached.core), ["connect:cached_preferred_site"]);

  const shared = desktop({ storage: memoryStorage({ [STORAGE_SITES]: sites, [STORAGE_PREFERRED]: "b" }) });
  shared.core.start({ user: "alice", password: "pw", hotSeating: true });
  assert.equal(shared.sockets[0].url, URL_A);
  answerHello(shared.sockets[0], "a");
  assert.deepEqual(kinds(shared.core), ["connect:startup", "log_in:on_preferred_site"]);
  assert.equal(shared.storage.map.get(STORAGE_PREFERRED), "b", "hot seating writes nothing");
});

test("D1: a failed connection tries the other site", () => {
  const sites = JSON.stringify([
    { name: "a", url: URL_A },
    { name: "b", url: URL_B },
  ]);
  const { core, sockets } = desktop({ storage: memoryStorage({ [STORAGE_SITES]: sites }) });
  core.start({ user: "alice", password: "pw" });
  sockets[0].drop();
  assert.equal(sockets[1].url, URL_B);
  assert.deepEqual(kinds(core), ["connect:startup", "connect:config_unreachable_try_other"]);
});

test("D4: connection loss turns the three listeners OFF, warns, reconnects, then switches over at site_timeout", () => {
  const { core, sockets, clock } = loggedInAtA();
  sockets[0].drop();
  assert.deepEqual(core.listeners, { telephony: "off", configuration: "off", statistics: "off" });
  assert.deepEqual(Object.keys(core.warnings).sort(), ["configuration", "statistics", "telephony"]);
  assert.ok(kinds(core).includes("wait:telephony_off"));
  // retry_delay 2000 (no jitter): a reconnect opens a new socket to a.
  clock.advance(2000);
  assert.equal(sockets.length, 2);
  assert.equal(sockets[1].url, URL_A);
  sockets[1].drop();
  // site_timeout 3000: switch over to b.
  clock.advance(1000);
  assert.ok(kinds(core).includes("switch_over:telephony_off_timeout"));
  const last = sockets[sockets.length - 1];
  assert.equal(last.url, URL_B);
  answerHello(last, "b");
  assert.deepEqual(kinds(core).slice(-1), ["log_in:preferred_site_unavailable"]);
  assert.equal(core.site, "b");
  assert.deepEqual(core.warnings, {}, "warnings go with the old site");
  last.receive({ type: "result", id: last.last("login").id, agent: { id: "alice", dn: "1001", state: "not_ready" } });
  assert.equal(core.agent.state, "not_ready");
});

test("D4: a reconnect before site_timeout clears the warnings and stays", () => {
  const { core, sockets, clock } = loggedInAtA();
  sockets[0].drop();
  clock.advance(2000);
  answerHello(sockets[1], "a", { agentState: "not_ready" });
  assert.deepEqual(core.warnings, {});
  assert.deepEqual(core.listeners, { telephony: "on", configuration: "on", statistics: "on" });
  clock.advance(10_000);
  assert.ok(!kinds(core).some((k) => k.startsWith("switch_over")));
});

test("heartbeat: three unanswered pings turn the listeners OFF", () => {
  const { core, sockets, clock } = loggedInAtA({ options: { site_timeout_ms: 60_000 } });
  clock.advance(PING_INTERVAL_MS);
  const ping = sockets[0].last("ping");
  sockets[0].receive({ type: "result", id: ping.id });
  // Now silence: pings at 10, 15, 20 s go unanswered; the next tick gives up.
  clock.advance(PING_INTERVAL_MS * PINGS_MISSED);
  assert.equal(core.listeners.telephony, "on");
  clock.advance(PING_INTERVAL_MS);
  assert.deepEqual(core.listeners, { telephony: "off", configuration: "off", statistics: "off" });
  assert.ok(sockets[0].closed);
  assert.ok(kinds(core).includes("warn:telephony_off"));
});

test("D5: a service event for statistics only warns", () => {
  const { core, sockets, clock } = loggedInAtA();
  sockets[0].receive({ type: "service", service: "statistics", state: "off" });
  assert.equal(core.listeners.statistics, "off");
  assert.equal(core.warnings.statistics, "statistics_off");
  clock.advance(4000);
  assert.ok(!kinds(core).some((k) => k.startsWith("switch_over")));
  sockets[0].receive({ type: "service", service: "statistics", state: "on" });
  assert.deepEqual(core.warnings, {});
});

test("D6: logged_out reasons are mapped to the machine's decisions", () => {
  const cases = [
    ["manual", "stay:manual_logout"],
    ["supervisor", "stay:supervisor_logout"],
    ["peer_login", LOGOUT_REASONS.includes("peer_login") ? "stay:peer_login" : "stay:supervisor_logout"],
    ["dr-force_logout", "wait:dr_force_logout"],
    ["graceful_shutdown_logout", "switch_over:graceful_shutdown_logout"],
  ];
  for (const [reason, expected] of cases) {
    const { core, sockets } = loggedInAtA();
    sockets[0].receive({ type: "logged_out", agent: { id: "alice", dn: null, state: "logged_out" }, reason });
    assert.equal(kinds(core).at(reason === "graceful_shutdown_logout" ? -2 : -1), expected, reason);
    if (reason === "graceful_shutdown_logout") {
      // D8: the stack restarts against b.
      assert.equal(sockets.at(-1).url, URL_B);
      assert.equal(core.agent, null);
    } else {
      assert.equal(core.agent.state, "logged_out");
    }
  }
  assert.equal(machineLogoutReason("dr-force_logout"), "dr-force_logout");
});

test("D6: the DN back in service after dr-force_logout logs in again", () => {
  const { core, sockets } = loggedInAtA();
  sockets[0].receive({ type: "dn", dn: "1001", in_service: false, cause: "expired" });
  assert.equal(core.warnings.dn, "dn_out_of_service");
  sockets[0].receive({ type: "logged_out", agent: { id: "alice", dn: null, state: "logged_out" }, reason: "dr-force_logout" });
  const logins = sockets[0].sent.filter((m) => m.type === "login").length;
  sockets[0].receive({ type: "dn", dn: "1001", in_service: true, cause: "registered" });
  assert.deepEqual(kinds(core).slice(-2), ["clear_warning:dn_back_in_service", "log_in:dn_back_in_service"]);
  assert.equal(sockets[0].sent.filter((m) => m.type === "login").length, logins + 1);
});

test("D1: a refused login stays; already_logged_in counts as logged in", () => {
  const refused = desktop();
  refused.core.start({ user: "alice", password: "pw" });
  answerHello(refused.sockets[0], "a");
  const login = refused.sockets[0].last("login");
  refused.sockets[0].receive({ type: "error", id: login.id, code: "dn_out_of_service", message: "no phone" });
  assert.deepEqual(kinds(refused.core).slice(-1), ["stay:login_refused"]);

  const again = desktop();
  again.core.start({ user: "alice", password: "pw" });
  answerHello(again.sockets[0], "a", { agentState: "ready" });
  const second = again.sockets[0].last("login");
  again.sockets[0].receive({ type: "error", id: second.id, code: "already_logged_in", message: "already" });
  // Logged in: a telephony OFF now waits for site_timeout (not a stay).
  again.sockets[0].receive({ type: "service", service: "telephony", state: "off" });
  assert.deepEqual(kinds(again.core).slice(-2), ["warn:telephony_off", "wait:telephony_off"]);
});

test("bad credentials stop the desktop and forget the password", () => {
  const { core, sockets } = desktop();
  core.start({ user: "alice", password: "wrong" });
  sockets[0].open();
  sockets[0].receive({ type: "error", id: sockets[0].last("hello").id, code: "bad_credentials", message: "no" });
  assert.equal(core.running, false);
  assert.match(core.error, /bad_credentials/);
  assert.equal(core.credentials.password, "");
  assert.ok(sockets[0].closed);
  assert.equal(sockets.length, 1, "no retry with a wrong password");
});

test("the agent's buttons send their requests; stats are kept", () => {
  const { core, sockets } = loggedInAtA();
  core.ready();
  core.notReady();
  core.logout();
  assert.deepEqual(sockets[0].sent.slice(-3).map((m) => m.type), ["ready", "not_ready", "logout"]);
  sockets[0].receive({ type: "stats", agents_logged_in: 1, agents_ready: 1, calls_waiting: 0, calls_active: 0 });
  assert.equal(core.stats.agents_ready, 1);
});

test("every reason has a readable text; decisions describe themselves", () => {
  for (const reason of Object.keys(REASONS)) assert.ok(REASON_TEXT[reason], reason);
  assert.match(describeDecision({ kind: "wait", until: 4000, reason: "telephony_off" }, 1000), /for 3\.0 s.*telephony_off, D4/);
  assert.deepEqual(optionsFromQuery("?site_timeout_ms=3000&site_sip_register_timeout_ms=null"), {
    site_timeout_ms: 3000,
    site_sip_register_timeout_ms: null,
  });
});

test("D8: after a hello the next one (a switchover) says the session token, not the password; bad_session falls back to the password", () => {
  const { core, sockets, storage } = desktop();
  core.start({ user: "alice", password: "pw" });
  sockets[0].open();
  const first = sockets[0].last("hello");
  assert.equal(first.password, "pw");
  assert.equal(first.token, undefined);
  const answer = helloAnswer(first.id, "a", { preferred: "b" });
  answer.session = { token: "v1.99.tag", expires_ms: 99 };
  sockets[0].receive(answer);
  // Not on the preferred site: switch over to b, with the token.
  assert.equal(sockets[1].url, URL_B);
  sockets[1].open();
  const second = sockets[1].last("hello");
  assert.equal(second.token, "v1.99.tag");
  assert.equal(second.password, undefined, "the password is not sent when a token is");
  // b does not take it (another key): the password, on the same connection.
  sockets[1].receive({ type: "error", id: second.id, code: "bad_session", message: "the session token is not valid here" });
  const third = sockets[1].last("hello");
  assert.notEqual(third.id, second.id);
  assert.equal(third.password, "pw");
  assert.equal(third.token, undefined);
  sockets[1].receive(helloAnswer(third.id, "b", { preferred: "b" }));
  assert.equal(core.site, "b");
  for (const value of storage.map.values()) assert.ok(!value.includes("v1.99.tag"), "the token is never stored");
});

test("D7: every decision goes to the site once signed in there, those taken while disconnected included", () => {
  const d = loggedInAtA();
  const sent = (socket) => socket.sent.filter((m) => m.type === "decisions").flatMap((m) => m.decisions);
  const atA = sent(d.sockets[0]).map((x) => `${x.kind}:${x.reason}`);
  assert.deepEqual(atA, ["connect:startup", "cache_preferred_site:preferred_site_read", "log_in:on_preferred_site"]);
  assert.ok(sent(d.sockets[0]).every((x) => Number.isInteger(x.at_ms)));
  assert.equal(sent(d.sockets[0])[2].about, "a");
  // Site a is lost: the warnings and the switchover are decided offline...
  d.sockets[0].drop();
  d.clock.advance(3000);
  const b = d.sockets.at(-1);
  assert.equal(b.url, URL_B);
  assert.equal(sent(b).length, 0, "nothing before the hello answer");
  answerHello(b, "b");
  // ...and reach site b once signed in there.
  const atB = sent(b).map((x) => `${x.kind}:${x.reason}`);
  assert.ok(atB.includes("warn:telephony_off"), atB.join(" "));
  assert.ok(atB.includes("switch_over:telephony_off_timeout"), atB.join(" "));
  assert.equal(sent(b).find((x) => x.kind === "warn" && x.reason === "telephony_off").about, "telephony");
});
