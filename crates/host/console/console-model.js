// The operator console's logic without a DOM: the server-sent-events parser,
// `/v1/status` → what the page shows, the failover timeline and its filter,
// the queue chart's series, the reconnect backoff. Pure functions and small
// classes, tested with node's test runner (console.test.mjs); console.js
// does the fetching and drawing.

// ---- server-sent events -------------------------------------------------------

/**
 * Parses a `text/event-stream` body fed in chunks, as the HTML standard's
 * "event stream interpretation" says: lines end with CRLF, LF or CR; `data`
 * lines are joined with LF; `id` persists from event to event (the
 * reconnect's Last-Event-ID); comments (`:`) and unknown fields are ignored;
 * an event is dispatched at a blank line, and only when it has data.
 */
/** The longest line or event the SSE parser holds (the host's events are a few hundred bytes). */
export const SSE_MAX_CHARS = 4 * 1024 * 1024;

export class SseParser {
  constructor() {
    this.buffer = "";
    /** The last `id` seen, for `Last-Event-ID` on reconnect. */
    this.lastEventId = "";
    /** The server's `retry` advice in ms, if it gave one. */
    this.retryMs = null;
    this.data = [];
    this.event = "";
    this.pendingCr = false;
  }

  /** Feeds a chunk of text; returns the events it completed, in order. */
  push(chunk) {
    let text = chunk;
    if (text === "") return [];
    // A CR that ended the previous chunk already ended its line: a LF
    // starting this one is the rest of that CRLF, not a blank line.
    if (this.pendingCr && text.startsWith("\n")) text = text.slice(1);
    this.pendingCr = false;
    this.buffer += text;
    const events = [];
    for (;;) {
      const match = /\r\n|\n|\r/.exec(this.buffer);
      if (!match) break;
      if (match[0] === "\r" && match.index === this.buffer.length - 1) this.pendingCr = true;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const event = this.line(line);
      if (event) events.push(event);
    }
    // A line or an event that never ends must not grow without bound: the
    // stream is given up (and reconnected by the caller).
    if (this.buffer.length > SSE_MAX_CHARS) throw new Error(`event stream line over ${SSE_MAX_CHARS} characters`);
    return events;
  }

  line(line) {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        this.dataChars = (this.dataChars ?? 0) + value.length;
        if (this.dataChars > SSE_MAX_CHARS) throw new Error(`event stream event over ${SSE_MAX_CHARS} characters`);
        this.data.push(value);
        break;
      case "event":
        this.event = value;
        break;
      case "id":
        if (!value.includes("\0")) this.lastEventId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
      default:
        break;
    }
    return null;
  }

  dispatch() {
    this.dataChars = 0;
    const data = this.data;
    const type = this.event || "message";
    this.data = [];
    this.event = "";
    if (data.length === 0) return null;
    return { id: this.lastEventId, event: type, data: data.join("\n") };
  }
}

/**
 * What one stream event means: a `record` of the event ring, a `lagged`
 * notice (the stream skipped `missed` events: read them back from the ring),
 * or `null` for something unreadable.
 */
export function readStreamEvent(event) {
  let value;
  try {
    value = JSON.parse(event.data);
  } catch {
    return null;
  }
  if (event.event === "lagged") return { lagged: Number(value?.missed ?? 0) };
  if (!value || typeof value.seq !== "number") return null;
  return { record: value };
}

// ---- reconnecting ---------------------------------------------------------------

export const BACKOFF_FIRST_MS = 500;
export const BACKOFF_MAX_MS = 10_000;

/**
 * The wait before reconnect number `attempt` (0 first): doubling from
 * BACKOFF_FIRST_MS up to BACKOFF_MAX_MS, with up to a quarter added at random
 * (`random` in [0, 1)) so that many consoles do not reconnect in step.
 */
export function backoffMs(attempt, random = 0) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(attempt, 20));
  return Math.round(base * (1 + 0.25 * random));
}

// ---- states -----------------------------------------------------------------------

/**
 * One word for a health-like value, used as the CSS state class:
 * `up` (in service, green), `down` (out of service, red), `probing`
 * (amber), or `unknown`.
 */
export function stateClass(value) {
  if (value === true) return "up";
  if (value === false) return "down";
  const word = String(value ?? "").toLowerCase();
  if (["up", "in_service", "in service", "peered", "ok", "on"].includes(word)) return "up";
  if (["down", "out_of_service", "out of service", "off"].includes(word)) return "down";
  if (["probing", "draining", "single_site", "degraded"].includes(word)) return "probing";
  if (word.startsWith("degraded") || word.startsWith("unavailable")) return "down";
  return "unknown";
}

/** The words shown for a state class. */
export const STATE_TEXT = {
  up: "in service",
  down: "out of service",
  probing: "probing",
  unknown: "unknown",
};

// ---- /v1/status → view ------------------------------------------------------------

/**
 * When each target's health last changed, from the timeline's `health`
 * records (oldest first): `Map("system target" → record)`, the newest per
 * target. Status shows a bind's health but not since when; the stream knows.
 */
export function lastHealthChanges(records) {
  const changes = new Map();
  for (const record of records) {
    if (record.kind === "health") changes.set(`${record.system} ${record.target}`, record);
  }
  return changes;
}

/** The site part of a target (`a/a1` → `a`). */
export function siteOf(target) {
  const slash = String(target).indexOf("/");
  return slash < 0 ? String(target) : String(target).slice(0, slash);
}

/**
 * What the page shows, from one `/v1/status` body and the timeline's records
 * (for the binds' "since"). Sections a site does not run are `null`.
 */
export function statusView(status, records = []) {
  const systems = Array.isArray(status?.systems) ? status.systems : [];
  const changes = lastHealthChanges(records);
  const site = status?.site
    ? {
        name: status.site.name,
        mode: status.site.mode,
        modeClass: stateClass(status.site.mode),
        peer: status.site.peer
          ? {
              address: status.site.peer.address,
              state: stateClass(status.site.peer.in_service),
              probes: `${status.site.peer.probes_answered ?? 0}/${status.site.peer.probes_sent ?? 0}`,
            }
          : null,
        dnsInService: (status.site.dns ?? []).filter((dn) => dn.in_service).length,
        dnsTotal: (status.site.dns ?? []).length,
        drainDeadlineMs: status.site.drain_deadline_ms ?? null,
      }
    : null;
  const binds = Array.isArray(status?.binds)
    ? groupBy(
        status.binds.map((bind) => {
          const change = changes.get(`messaging ${bind.smsc}`);
          return {
            smsc: bind.smsc,
            site: siteOf(bind.smsc),
            address: bind.address,
            state: stateClass(bind.health),
            inFlight: bind.in_flight ?? 0,
            attempts: bind.bind_attempts ?? 0,
            lastFailure: bind.last_failure ?? "",
            sinceMs: change ? change.at_ms : null,
            // Out of service: why, as the bind says it now, else as its last
            // health event said it.
            cause: stateClass(bind.health) === "up" ? "" : bind.last_failure || (change?.state !== "up" && change?.cause) || "",
          };
        }),
        (bind) => bind.site,
      )
    : null;
  const channels =
    status?.channels && typeof status.channels === "object"
      ? Object.entries(status.channels).map(([name, channel]) => channelView(name, channel))
      : null;
  const trunks = Array.isArray(status?.trunks)
    ? status.trunks.map((trunk) => ({
        name: trunk.name,
        carrier: trunk.carrier ?? "",
        address: trunk.address ?? "",
        transport: trunk.transport ?? "",
        state: stateClass(trunk.in_service),
        sinceMs: trunk.since_ms || null,
        cause: [...(trunk.causes ?? []), trunk.detail].filter(Boolean).join("; "),
        registered: trunk.registered,
      }))
    : null;
  const queue = status?.queue
    ? {
        queued: status.queue.queued,
        submitted: status.queue.submitted,
        final: status.queue.final,
        failed: status.queue.failed,
        inboundPending: status.inbound?.pending ?? null,
        store: status.store ?? "",
        storeState: stateClass(status.store),
      }
    : null;
  const agents = status?.site
    ? (status.site.agents ?? []).map((agent) => ({
        site: status.site.name,
        id: agent.id,
        dn: agent.dn ?? "",
        state: agent.state,
        stateClass: agentClass(agent.state),
      }))
    : null;
  const desktop = status?.desktop
    ? { connections: status.desktop.connections, telephony: status.desktop.telephony }
    : null;
  return { systems, site, binds, channels, trunks, queue, agents, desktop };
}

function channelView(name, channel) {
  // A digital or e-mail channel: one endpoint whose health its sends tell.
  if (typeof channel?.kind === "string") {
    const state = stateClass(channel.health);
    return {
      name,
      kind: channel.kind,
      endpoint: {
        url: channel.url ?? "",
        state,
        sinceMs: channel.since_ms ?? null,
        sends: channel.sends ?? 0,
        failuresInARow: channel.failures_in_a_row ?? 0,
        lastOkMs: channel.last_ok_ms ?? null,
        // Out of service: why, in the words of its health event ("3 sends
        // in a row failed: answered 503"). Back in service: the last failure
        // as history (shown muted), as a bind's.
        cause: endpointCause(state, channel.failures_in_a_row ?? 0, channel.last_failure?.cause ?? ""),
      },
      sites: [],
    };
  }
  const urls = Array.isArray(channel?.urls) ? channel.urls : [];
  return {
    name,
    alert: channel?.all_down_alert === true,
    sites: urls.map((url) => ({
      site: url.site,
      url: url.url,
      state: stateClass(url.state ?? url.up),
      sinceMs: url.since_ms ?? null,
      cause: url.cause ?? "",
      probe: url.last_probe ? `${url.last_probe.alive ? "alive" : "dead"}: ${url.last_probe.detail}` : "",
    })),
  };
}

/** A digital or e-mail channel's cause: the failures in a row while it is not in service. */
function endpointCause(state, failuresInARow, lastFailure) {
  if (state === "up" || failuresInARow === 0 || lastFailure === "") return lastFailure;
  return `${failuresInARow} sends in a row failed: ${lastFailure}`;
}

/** Agents: ready or on a call is green, logged out grey, the rest amber. */
function agentClass(state) {
  if (state === "ready" || state === "busy") return "up";
  if (state === "logged_out") return "unknown";
  return "probing";
}

/** `[{key, items}]` in first-seen order of key. */
function groupBy(items, key) {
  const groups = new Map();
  for (const item of items) {
    const k = key(item);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(item);
  }
  return [...groups].map(([k, list]) => ({ key: k, items: list }));
}

// ---- the failover timeline ----------------------------------------------------------

/** Entries the timeline keeps (oldest dropped first). */
export const TIMELINE_CAPACITY = 1000;

/**
 * The failover timeline: event records by `seq` (a record read twice, from
 * the ring and from a resumed stream, is kept once), newest first, with a
 * mark on those that arrived live (after the page loaded the ring).
 *
 * A restarted host numbers its events from 1 again: after `restarted()` the
 * records are kept under a new epoch, and order is (epoch, seq).
 */
/**
 * Kinds hidden from the timeline unless asked for: a bind that stays down
 * adds a connection attempt and a scheduled retry every ~37 s, which would
 * push the failover decisions out of view (`hotsite status` leaves them out
 * too; a bind's attempts are counted in its row).
 */
export const QUIET_KINDS = new Set(["connect_attempt", "retry_scheduled"]);

export class Timeline {
  constructor(capacity = TIMELINE_CAPACITY) {
    this.capacity = capacity;
    this.epoch = 0;
    this.byKey = new Map();
  }

  /** Adds `record`; `live` marks one that arrived on the stream. Returns whether it was new. */
  add(record, { live = false, receivedAt = null } = {}) {
    const key = `${this.epoch}:${record.seq}`;
    if (this.byKey.has(key)) return false;
    this.byKey.set(key, { record, live, receivedAt, epoch: this.epoch });
    if (this.byKey.size > this.capacity) {
      let oldest = null;
      for (const [k, entry] of this.byKey) {
        if (oldest === null || before(entry, oldest[1])) oldest = [k, entry];
      }
      this.byKey.delete(oldest[0]);
    }
    return true;
  }

  /** The host restarted (its event numbers begin again): a new epoch. */
  restarted() {
    this.epoch += 1;
  }

  /** The newest record of this epoch, or null. */
  lastRecord() {
    let last = null;
    for (const entry of this.byKey.values()) {
      if (entry.epoch === this.epoch && (last === null || entry.record.seq > last.seq)) last = entry.record;
    }
    return last;
  }

  /** The highest seq of this epoch, 0 when none (the stream's Last-Event-ID). */
  lastSeq() {
    return this.lastRecord()?.seq ?? 0;
  }

  /** Every record, oldest first. */
  records() {
    return this.sorted().map((entry) => entry.record);
  }

  /** Systems seen, sorted. */
  systems() {
    return [...new Set([...this.byKey.values()].map((entry) => entry.record.system))].sort();
  }

  /**
   * The entries to show, newest first: those whose system is in `shown`
   * (a Set; every system when null) and whose kind is not in `hiddenKinds`,
   * at most `limit`.
   */
  entries(shown = null, limit = 200, hiddenKinds = null) {
    return this.sorted()
      .reverse()
      .filter((entry) => shown === null || shown.has(entry.record.system))
      .filter((entry) => hiddenKinds === null || !hiddenKinds.has(entry.record.kind))
      .slice(0, limit)
      .map((entry) => entryView(entry));
  }

  sorted() {
    return [...this.byKey.values()].sort((a, b) => a.epoch - b.epoch || a.record.seq - b.record.seq);
  }
}

function before(a, b) {
  return a.epoch < b.epoch || (a.epoch === b.epoch && a.record.seq < b.record.seq);
}

/**
 * Whether `found` (the ring's answer to `sameHostQuery(last)`) still holds
 * `last`: if not, the host restarted (or `last` left its ring long ago) and
 * the stream must not resume after `last.seq`.
 */
export function stillHolds(found, last) {
  return (found?.events ?? []).some((r) => r.seq === last.seq && r.at_ms === last.at_ms && r.text === last.text);
}

/** The `/v1/events` query that finds `last` again in the ring, if it is there. */
export function sameHostQuery(last) {
  return `/v1/events?after=${last.seq - 1}&since_ms=${last.at_ms}&until_ms=${last.at_ms}&limit=4096`;
}

/** One timeline row: time, system, target, what (kind and state), cause. */
export function entryView({ record, live, receivedAt, epoch = 0 }) {
  return {
    seq: record.seq,
    epoch,
    atMs: record.at_ms,
    system: record.system,
    target: record.target,
    kind: record.kind,
    what: record.state ? `${record.kind} → ${record.state}` : record.kind,
    state: record.state ? stateClass(record.state) : null,
    cause: record.cause ?? "",
    text: record.text ?? "",
    live,
    receivedAt,
  };
}

// ---- the queue chart ----------------------------------------------------------------

/** How far back the chart reaches (the server keeps as much). */
export const QUEUE_WINDOW_MS = 15 * 60 * 1000;
/** Points the chart keeps at most: a day of 2 s polls would be far more. */
export const QUEUE_MAX_POINTS = 1000;

/**
 * Queue depth and throughput over time: the server's 5 s history when the
 * page opens, then the page's own 2 s samples. Each point holds the
 * cumulative counters; rates are computed between neighbours.
 */
export class QueueSeries {
  constructor() {
    this.points = [];
  }

  /**
   * Adds a sample `{at_ms, queued, accepted, submitted, failed}`; one not
   * newer than the last is ignored (a repeat). Keeps the last
   * QUEUE_WINDOW_MS (at most QUEUE_MAX_POINTS).
   */
  add(sample) {
    const last = this.points.at(-1);
    if (last && sample.at_ms <= last.at_ms) return false;
    this.points.push({
      at_ms: sample.at_ms,
      queued: sample.queued ?? null,
      accepted: sample.accepted,
      submitted: sample.submitted,
      failed: sample.failed,
    });
    const from = sample.at_ms - QUEUE_WINDOW_MS;
    while (this.points.length > QUEUE_MAX_POINTS || (this.points.length > 1 && this.points[0].at_ms < from)) {
      this.points.shift();
    }
    return true;
  }

  /** The newest point's time, or null. */
  lastAt() {
    return this.points.at(-1)?.at_ms ?? null;
  }

  /**
   * uPlot's columns: [seconds since the epoch, queued, in msg/s, out msg/s].
   * A rate is null for the first point and where a counter went down (the
   * gateway restarted: its counters begin again).
   */
  columns() {
    const xs = [];
    const queued = [];
    const inRate = [];
    const outRate = [];
    let previous = null;
    for (const point of this.points) {
      xs.push(point.at_ms / 1000);
      queued.push(point.queued);
      inRate.push(rate(previous, point, "accepted"));
      outRate.push(rate(previous, point, "submitted"));
      previous = point;
    }
    return [xs, queued, inRate, outRate];
  }

  /** The newest rates, for the figures next to the chart. */
  latestRates() {
    const n = this.points.length;
    if (n < 2) return { in: null, out: null };
    const [a, b] = [this.points[n - 2], this.points[n - 1]];
    return { in: rate(a, b, "accepted"), out: rate(a, b, "submitted") };
  }
}

function rate(previous, point, counter) {
  if (!previous) return null;
  const spanMs = point.at_ms - previous.at_ms;
  const delta = point[counter] - previous[counter];
  if (!(spanMs > 0) || !(delta >= 0)) return null;
  return (delta * 1000) / spanMs;
}

// ---- formatting -----------------------------------------------------------------------

const pad = (n, width = 2) => String(n).padStart(width, "0");

/** `HH:MM:SS.mmm` in local time, for the timeline. */
export function formatClock(ms) {
  if (ms === null || ms === undefined) return "—";
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** How long ago `ms` was at `now`: `4 s`, `12 min`, `3 h`, `2 d`. */
export function formatAgo(ms, now) {
  if (ms === null || ms === undefined) return "—";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 120) return `${s} s`;
  if (s < 2 * 3600) return `${Math.round(s / 60)} min`;
  if (s < 2 * 86400) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

/** A rate for a figure: `12.5 msg/s`, `—` when unknown. */
export function formatRate(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return `${value >= 100 ? Math.round(value) : Math.round(value * 10) / 10} msg/s`;
}

// ---- the token ----------------------------------------------------------------------------

/**
 * Why a call failed, in words for the token form: a 401 means the token is
 * wrong (ask again), anything else is the site's trouble (keep the token).
 */
export function authProblem(status, body) {
  if (status !== 401) return null;
  const detail = body && typeof body.error === "string" ? ` (${body.error})` : "";
  return `The site refused the API token${detail}. Enter a token from the site's [api] tokens.`;
}
