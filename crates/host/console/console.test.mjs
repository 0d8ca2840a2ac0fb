// The operator console's logic (console-model.js) without a browser: the SSE
// parser on chunked streams, /v1/status → view, the timeline and its filter,
// the queue series, the backoff.
// Run: node --test crates/host/console/

import { test } from "node:test";
import assert from "node:assert/strict";

import {
  QUIET_KINDS,
  SSE_MAX_CHARS,
  BACKOFF_MAX_MS,
  QUEUE_MAX_POINTS,
  QUEUE_WINDOW_MS,
  QueueSeries,
  SseParser,
  Timeline,
  authProblem,
  backoffMs,
  formatAgo,
  formatRate,
  readStreamEvent,
  sameHostQuery,
  stateClass,
  stillHolds,
  statusView,
} from "./console-model.js";

// ---- SSE ----------------------------------------------------------------------------

// What the host writes for one record (axum's Sse: id, event, data, blank line).
const RECORD = { seq: 7, at_ms: 1_700_000_000_000, system: "messaging", site: "a", target: "a/a1", kind: "health", state: "down", cause: "connection reset", text: "a/a1: up → down (connection reset)" };
const WIRE = `id: 7\nevent: health\ndata: ${JSON.stringify(RECORD)}\n\n`;

test("an event split anywhere across chunks is parsed whole, once", () => {
  for (let cut = 0; cut <= WIRE.length; cut++) {
    const parser = new SseParser();
    const events = [...parser.push(WIRE.slice(0, cut)), ...parser.push(WIRE.slice(cut))];
    assert.equal(events.length, 1, `cut at ${cut}`);
    assert.deepEqual(events[0], { id: "7", event: "health", data: JSON.stringify(RECORD) });
    assert.equal(parser.lastEventId, "7");
  }
});

test("CRLF, CR and LF all end lines, even with CRLF split across chunks", () => {
  const crlf = WIRE.replaceAll("\n", "\r\n");
  const cr = WIRE.replaceAll("\n", "\r");
  for (const wire of [crlf, cr]) {
    for (let cut = 0; cut <= wire.length; cut++) {
      const parser = new SseParser();
      const events = [...parser.push(wire.slice(0, cut)), ...parser.push(wire.slice(cut))];
      assert.equal(events.length, 1, `${JSON.stringify(wire.slice(cut - 1, cut + 1))} at ${cut}`);
      assert.equal(events[0].id, "7");
    }
  }
  // Byte by byte.
  const parser = new SseParser();
  const events = [...crlf].flatMap((c) => parser.push(c));
  assert.equal(events.length, 1);
});

test("comments (keep-alives), empty events and unknown fields dispatch nothing", () => {
  const parser = new SseParser();
  assert.deepEqual(parser.push(":\n\n: keep-alive\n\nfoo: bar\n\n"), []);
  // `id` persists to the next event (the reconnect's Last-Event-ID).
  const events = parser.push("id: 9\n\ndata: a\ndata: b\n\n");
  assert.deepEqual(events, [{ id: "9", event: "message", data: "a\nb" }]);
  assert.equal(parser.lastEventId, "9");
  parser.push("retry: 3000\n\n");
  assert.equal(parser.retryMs, 3000);
});

test("stream events: records, lagged notices, junk", () => {
  assert.deepEqual(readStreamEvent({ event: "health", data: JSON.stringify(RECORD) }), { record: RECORD });
  assert.deepEqual(readStreamEvent({ event: "lagged", data: '{"missed":12}' }), { lagged: 12 });
  assert.equal(readStreamEvent({ event: "health", data: "{oops" }), null);
  assert.equal(readStreamEvent({ event: "health", data: '{"no":"seq"}' }), null);
});

test("reconnects back off, doubling to a cap, with bounded jitter", () => {
  assert.equal(backoffMs(0), 500);
  assert.equal(backoffMs(1), 1000);
  assert.equal(backoffMs(3), 4000);
  assert.equal(backoffMs(50), BACKOFF_MAX_MS);
  assert.equal(backoffMs(0, 0.999), Math.round(500 * 1.24975));
  assert.ok(backoffMs(50, 0.999) <= BACKOFF_MAX_MS * 1.25);
});

// ---- status → view ----------------------------------------------------------------------

/** A /v1/status of a site running everything, as the systems write it. */
const STATUS = {
  systems: ["voice", "site", "messaging"],
  site: {
    name: "dc-east",
    mode: "peered",
    peer: { address: "127.0.0.1:5071", in_service: true, probes_sent: 10, probes_answered: 9 },
    dns: [
      { dn: "1001", in_service: true },
      { dn: "1002", in_service: false },
    ],
    agents: [
      { id: "alice", dn: "1001", state: "ready" },
      { id: "bob", dn: null, state: "logged_out" },
    ],
  },
  binds: [
    { smsc: "a/a1", address: "127.0.0.1:2775", health: "Up", in_flight: 2, bind_attempts: 1, last_failure: null },
    { smsc: "a/a2", address: "127.0.0.1:2776", health: "Down", in_flight: 0, bind_attempts: 3, last_failure: "connection refused" },
    { smsc: "b/b1", address: "127.0.0.1:2777", health: "Probing", in_flight: 0, bind_attempts: 2, last_failure: null },
  ],
  channels: {
    "sms-http": {
      name: "sms-http",
      all_down_alert: false,
      urls: [
        { site: "a", url: "http://a/sms", up: true, state: "up", since_ms: 5, cause: null, last_probe: { at_ms: 6, alive: true, detail: "200" } },
        { site: "b", url: "http://b/sms", up: false, state: "probing", since_ms: 7, cause: "timeout", last_probe: null },
      ],
    },
    "primary-chat": {
      kind: "digital",
      url: "https://chat.example",
      health: "down",
      since_ms: 40,
      sends: 7,
      failures_in_a_row: 3,
      last_ok_ms: 20,
      last_failure: { at_ms: 40, cause: "cannot reach it: connection refused" },
    },
  },
  routes: ["sms"],
  default_route: "sms",
  queue: { queued: 12, submitted: 3, final: 100, failed: 1 },
  inbound: { pending: 0, total: 4 },
  store: "ok",
  trunks: [{ name: "t1", carrier: "c", address: "10.0.0.1:5060", transport: "udp", in_service: false, since_ms: 99, causes: ["options_timeout"], detail: "no reply" }],
};

test("the status becomes sections; binds grouped by provider site with since and cause from the timeline", () => {
  const down = { ...RECORD, seq: 3, target: "a/a2", state: "down", cause: "connection lost", at_ms: 1000 };
  const b1 = { ...RECORD, seq: 5, target: "b/b1", state: "probing", cause: "1 of 2 binds answered", at_ms: 3000 };
  const older = { ...RECORD, seq: 2, target: "a/a2", state: "up", cause: "bound", at_ms: 500 };
  const voice = { ...RECORD, seq: 4, system: "voice", target: "a/a2", state: "up", at_ms: 2000 };
  const view = statusView(STATUS, [older, down, voice, b1]);
  assert.deepEqual(view.systems, ["voice", "site", "messaging"]);
  assert.equal(view.site.name, "dc-east");
  assert.equal(view.site.modeClass, "up");
  assert.deepEqual(view.site.peer, { address: "127.0.0.1:5071", state: "up", probes: "9/10" });
  assert.equal(view.site.dnsInService, 1);
  assert.deepEqual(
    view.binds.map((g) => [g.key, g.items.map((b) => [b.smsc, b.state])]),
    [
      ["a", [["a/a1", "up"], ["a/a2", "down"]]],
      ["b", [["b/b1", "probing"]]],
    ],
  );
  const a2 = view.binds[0].items[1];
  assert.equal(a2.sinceMs, 1000, "the newest messaging health change of a/a2, not voice's");
  assert.equal(a2.cause, "connection refused", "the bind's own last failure first");
  assert.equal(view.binds[1].items[0].cause, "1 of 2 binds answered", "else the event's cause");
  assert.equal(view.binds[0].items[0].sinceMs, null);
  assert.equal(view.binds[0].items[0].cause, "", "no cause while in service");
  assert.deepEqual(
    view.channels[0].sites.map((s) => [s.site, s.state, s.cause, s.probe]),
    [
      ["a", "up", "", "alive: 200"],
      ["b", "probing", "timeout", ""],
    ],
  );
  // A digital channel (SPEC M10): one endpoint, its health from its sends.
  assert.deepEqual(view.channels[1], {
    name: "primary-chat",
    kind: "digital",
    endpoint: {
      url: "https://chat.example",
      state: "down",
      sinceMs: 40,
      sends: 7,
      failuresInARow: 3,
      lastOkMs: 20,
      cause: "3 sends in a row failed: cannot reach it: connection refused",
    },
    sites: [],
  });
  assert.deepEqual(view.trunks[0], { name: "t1", carrier: "c", address: "10.0.0.1:5060", transport: "udp", state: "down", sinceMs: 99, cause: "options_timeout; no reply", registered: undefined });
  assert.equal(view.queue.queued, 12);
  assert.equal(view.queue.storeState, "up");
  assert.deepEqual(
    view.agents.map((a) => [a.site, a.id, a.stateClass]),
    [
      ["dc-east", "alice", "up"],
      ["dc-east", "bob", "unknown"],
    ],
  );
});

test("a digital or e-mail channel's cause: its failures in a row while out of service, its last failure as history once back", () => {
  const endpoint = (channel) => statusView({ channels: { chat: { kind: "digital", url: "http://x/", ...channel } } }).channels[0].endpoint;
  const failure = { at_ms: 40, cause: "answered 503" };
  // Out of service: the gateway's health event's words.
  assert.equal(endpoint({ health: "down", failures_in_a_row: 3, last_failure: failure }).cause, "3 sends in a row failed: answered 503");
  assert.equal(endpoint({ health: "down", failures_in_a_row: 5, last_failure: failure }).cause, "5 sends in a row failed: answered 503");
  // Back in service (one send got through, the count is 0): history only.
  assert.equal(endpoint({ health: "up", failures_in_a_row: 0, last_failure: failure }).cause, "answered 503");
  // In service with failures not yet enough to take it out: history too.
  assert.equal(endpoint({ health: "up", failures_in_a_row: 2, last_failure: failure }).cause, "answered 503");
  // Never failed.
  assert.equal(endpoint({ health: "up", failures_in_a_row: 0, last_failure: null }).cause, "");
  assert.equal(endpoint({ health: "down", failures_in_a_row: 0 }).cause, "");
});

test("systems a site does not run are null sections, not empty ones", () => {
  const view = statusView({ systems: ["voice"], trunks: [] });
  assert.equal(view.site, null);
  assert.equal(view.binds, null);
  assert.equal(view.channels, null);
  assert.equal(view.queue, null);
  assert.equal(view.agents, null);
  assert.deepEqual(view.trunks, []);
  assert.deepEqual(statusView({}).systems, []);
});

test("state words map to one colour each", () => {
  for (const up of ["Up", "up", true, "peered", "ok"]) assert.equal(stateClass(up), "up", String(up));
  for (const down of ["Down", false, "unavailable: disk", "degraded: storage full"]) assert.equal(stateClass(down), "down", String(down));
  for (const probing of ["Probing", "probing", "single_site", "draining"]) assert.equal(stateClass(probing), "probing", probing);
  assert.equal(stateClass(undefined), "unknown");
});

// ---- the timeline ---------------------------------------------------------------------------

const record = (seq, system, extra = {}) => ({ seq, at_ms: seq * 1000, system, site: "a", target: `a/t${seq}`, kind: "health", state: "down", cause: `cause ${seq}`, text: `t${seq}`, ...extra });

test("the timeline is newest first, once per seq, filtered by system, live entries marked", () => {
  const timeline = new Timeline();
  timeline.add(record(1, "messaging"));
  timeline.add(record(2, "voice"));
  timeline.add(record(3, "messaging", { kind: "throttled", state: undefined, cause: undefined }));
  assert.equal(timeline.add(record(2, "voice")), false, "a record read again (ring, then resumed stream) is kept once");
  assert.equal(timeline.add(record(4, "site"), { live: true, receivedAt: 42 }), true);
  assert.equal(timeline.lastSeq(), 4);
  assert.deepEqual(timeline.systems(), ["messaging", "site", "voice"]);
  const all = timeline.entries();
  assert.deepEqual(all.map((e) => e.seq), [4, 3, 2, 1]);
  assert.deepEqual([all[0].live, all[0].receivedAt, all[1].live], [true, 42, false]);
  assert.deepEqual([all[3].what, all[3].state, all[3].cause], ["health → down", "down", "cause 1"]);
  assert.deepEqual([all[1].what, all[1].state, all[1].cause], ["throttled", null, ""]);
  const messaging = timeline.entries(new Set(["messaging"]));
  assert.deepEqual(messaging.map((e) => e.seq), [3, 1]);
  assert.deepEqual(timeline.entries(new Set()), []);
  assert.deepEqual(timeline.entries(null, 2).map((e) => e.seq), [4, 3]);
});

test("a restarted host numbers from 1 again: a new epoch, ordered after the old one", () => {
  const timeline = new Timeline(5);
  for (let seq = 1; seq <= 3; seq++) timeline.add(record(seq, "messaging"));
  const last = timeline.lastRecord();
  assert.equal(last.seq, 3);
  // The ring of the same host still holds the last record; a new host's does not.
  assert.equal(sameHostQuery(last), "/v1/events?after=2&since_ms=3000&until_ms=3000&limit=4096");
  assert.equal(stillHolds({ events: [record(3, "messaging"), record(4, "messaging", { at_ms: 3000 })] }, last), true);
  assert.equal(stillHolds({ events: [record(3, "messaging", { text: "another host's #3" })] }, last), false);
  assert.equal(stillHolds({ events: [] }, last), false);
  timeline.restarted();
  assert.equal(timeline.lastSeq(), 0, "resume from the start of the new host's ring");
  assert.equal(timeline.add(record(1, "messaging", { target: "a/new" }), { live: true }), true, "seq 1 again is a new record");
  assert.equal(timeline.lastSeq(), 1);
  const entries = timeline.entries();
  assert.deepEqual(entries.map((e) => [e.epoch, e.seq]), [[1, 1], [0, 3], [0, 2], [0, 1]]);
  // Capacity drops the oldest epoch's oldest first.
  timeline.add(record(2, "messaging"));
  timeline.add(record(3, "messaging"));
  assert.deepEqual(timeline.entries().map((e) => [e.epoch, e.seq]), [[1, 3], [1, 2], [1, 1], [0, 3], [0, 2]]);
  // Since-changes follow the order, not the raw seq.
  const view = statusView({ binds: [{ smsc: "a/t1", health: "Up" }] }, [record(5, "messaging", { target: "a/t1", at_ms: 1 }), record(1, "messaging", { target: "a/t1", at_ms: 2, state: "up" })]);
  assert.equal(view.binds[0].items[0].sinceMs, 2);
});

test("the timeline keeps a bounded number of entries, dropping the oldest", () => {
  const timeline = new Timeline(3);
  for (let seq = 1; seq <= 10; seq++) timeline.add(record(seq, "messaging"));
  assert.deepEqual(timeline.records().map((r) => r.seq), [8, 9, 10]);
  assert.equal(new Timeline().lastSeq(), 0);
});

// ---- the queue chart ------------------------------------------------------------------------

const sample = (at_ms, queued, accepted, submitted) => ({ at_ms, queued, accepted, submitted, failed: 0 });

test("queue series: rates between neighbours, repeats ignored, restarts and gaps give null", () => {
  const series = new QueueSeries();
  assert.equal(series.add(sample(0, 5, 0, 0)), true);
  series.add(sample(5_000, 3, 20, 50));
  assert.equal(series.add(sample(5_000, 9, 99, 99)), false, "not newer: a repeat");
  series.add(sample(7_000, null, 24, 54)); // the page's own 2 s poll; store unreadable
  series.add(sample(9_000, 0, 1, 1)); // the gateway restarted
  const [xs, queued, inRate, outRate] = series.columns();
  assert.deepEqual(xs, [0, 5, 7, 9]);
  assert.deepEqual(queued, [5, 3, null, 0]);
  assert.deepEqual(inRate, [null, 4, 2, null]);
  assert.deepEqual(outRate, [null, 10, 2, null]);
  assert.equal(series.lastAt(), 9_000);
  assert.deepEqual(new QueueSeries().latestRates(), { in: null, out: null });
  const rates = new QueueSeries();
  rates.add(sample(0, 0, 0, 0));
  rates.add(sample(2_000, 0, 10, 4));
  assert.deepEqual(rates.latestRates(), { in: 5, out: 2 });
});

test("queue series keep the last 15 minutes, bounded", () => {
  const series = new QueueSeries();
  for (let i = 0; i <= 1000; i++) series.add(sample(i * 2_000, i, i, i));
  const [xs] = series.columns();
  assert.ok(xs.length <= QUEUE_MAX_POINTS);
  assert.ok(xs.at(-1) * 1000 - xs[0] * 1000 <= QUEUE_WINDOW_MS);
  assert.equal(xs.at(-1), 2000);
});

// ---- words ------------------------------------------------------------------------------------

test("ages, rates and the token problem read well", () => {
  assert.equal(formatAgo(0, 4_000), "4 s");
  assert.equal(formatAgo(0, 12 * 60_000), "12 min");
  assert.equal(formatAgo(0, 3 * 3_600_000), "3 h");
  assert.equal(formatAgo(null, 0), "—");
  assert.equal(formatRate(12.345), "12.3 msg/s");
  assert.equal(formatRate(1234.5), "1235 msg/s");
  assert.equal(formatRate(null), "—");
  assert.match(authProblem(401, { error: "unknown bearer token" }), /refused the API token \(unknown bearer token\)/);
  assert.equal(authProblem(503, {}), null);
});

test("connection attempts and scheduled retries stay out of the timeline unless asked for", () => {
  const timeline = new Timeline();
  const at = (seq, kind, state) => ({ ...RECORD, seq, kind, state, at_ms: seq * 1000 });
  timeline.add(at(1, "health", "down"));
  for (let seq = 2; seq < 40; seq += 2) {
    timeline.add(at(seq, "connect_attempt"));
    timeline.add(at(seq + 1, "retry_scheduled"));
  }
  assert.deepEqual(
    timeline.entries(null, 5, QUIET_KINDS).map((e) => [e.seq, e.kind]),
    [[1, "health"]],
    "the failover decision stays in view",
  );
  assert.equal(timeline.entries(null, 5).length, 5, "all kinds when asked for");
  assert.equal(timeline.entries(null, 5)[0].kind, "retry_scheduled");
});

test("an event stream line or event that never ends is refused, not buffered", () => {
  const long = new SseParser();
  assert.throws(() => long.push("data: " + "x".repeat(SSE_MAX_CHARS + 1)), /line over/);
  const endless = new SseParser();
  const line = "data: " + "y".repeat(64 * 1024) + "\n";
  assert.throws(() => {
    for (let i = 0; i < SSE_MAX_CHARS / (64 * 1024) + 2; i++) endless.push(line);
  }, /event over/);
  const fine = new SseParser();
  assert.equal(fine.push("data: a\n\ndata: b\n\n").length, 2);
});
