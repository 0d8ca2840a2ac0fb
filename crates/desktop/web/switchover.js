// The switchover machine (SPEC D1–D8) in JavaScript: the twin of
// crates/desktop/src/switchover/ for the web desktop.
//
// An ES module with no dependencies and no build step, for a browser page and
// for node. Inputs, outputs, options, reasons, timer order and the jitter
// generator are the Rust machine's, exactly: both run the transcripts in
// crates/desktop/transcripts/ (node --test crates/desktop/web/). Change one,
// change the other, and the transcripts tell you if they disagree.
//
// Use:
//   const machine = new Switchover({ sites: ["a", "b"] }, seed);
//   machine.handleInput(now, parseInput({ kind: "start", site: "a" }));
//   for (let out; (out = machine.pollOutput()) !== null; ) act(out);
//   const deadline = machine.pollTimeout(); // null: none
//   ... at the deadline: machine.handleTimeout(now), then drain again.
// Times are integer milliseconds from an origin the caller picks.

/** Default site_timeout_ms (D4). */
export const DEFAULT_SITE_TIMEOUT_MS = 30_000;
/** Default retry_delay_ms. */
export const DEFAULT_RETRY_DELAY_MS = 2_000;
/** Default retry_jitter_ms. */
export const DEFAULT_RETRY_JITTER_MS = 1_000;
/** No duration option may exceed one day. */
export const MAX_DURATION_MS = 86_400_000;

/** Every reason code with its SPEC item, in the Rust `Reason::ALL` order. */
export const REASONS = Object.freeze({
  startup: "D1",
  config_unreachable_try_other: "D1",
  config_unreachable_retry: "D1",
  login_refused: "D1",
  on_preferred_site: "D2",
  not_on_preferred_site: "D2",
  preferred_site_unavailable: "D2",
  cached_preferred_site: "D3",
  preferred_site_read: "D3",
  telephony_off: "D4",
  telephony_on: "D4",
  telephony_off_timeout: "D4",
  configuration_off: "D5",
  configuration_on: "D5",
  statistics_off: "D5",
  statistics_on: "D5",
  manual_logout: "D6",
  supervisor_logout: "D6",
  peer_login: "D6",
  dr_force_logout: "D6",
  dn_out_of_service: "D6",
  dn_back_in_service: "D6",
  dr_force_logout_register_timeout: "D6",
  graceful_shutdown_logout: "D6",
});

/** The listeners; inputs name the first three (the watched ones). */
export const LISTENERS = Object.freeze(["telephony", "configuration", "statistics", "dn"]);
/** Watched listeners, in the order their retries fire when due together. */
const WATCHED = ["telephony", "configuration", "statistics"];
/** Logout reasons as the site spells them (D6). */
export const LOGOUT_REASONS = Object.freeze([
  "manual",
  "supervisor",
  "dr-force_logout",
  "graceful_shutdown_logout",
  "peer_login",
]);

/** A JSON shape the Rust side's serde would refuse. */
export class ShapeError extends Error {
  constructor(message) {
    super(message);
    this.name = "ShapeError";
    this.code = "bad_shape";
  }
}

/** Options refused by validation; `code` is the Rust `OptionsError::code`. */
export class OptionsError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "OptionsError";
    this.code = code;
  }
}

/** A misuse of the machine; `code` is the Rust `InputError::code`. */
export class InputError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "InputError";
    this.code = code;
  }
}

// ---- shapes --------------------------------------------------------------

function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isMillis(value) {
  return Number.isSafeInteger(value) && value >= 0;
}

function checkFields(what, object, required, optional) {
  for (const key of Object.keys(object)) {
    if (!required.includes(key) && !optional.includes(key)) {
      throw new ShapeError(`${what}: unknown field \`${key}\``);
    }
  }
  for (const key of required) {
    if (!(key in object)) throw new ShapeError(`${what}: missing field \`${key}\``);
  }
}

function checkString(what, value) {
  if (typeof value !== "string") throw new ShapeError(`${what}: expected a string`);
  return value;
}

function checkOneOf(what, value, allowed) {
  if (!allowed.includes(value)) {
    throw new ShapeError(`${what}: unknown variant \`${value}\`, expected one of ${allowed.join(", ")}`);
  }
  return value;
}

// Each input kind: [required fields, optional fields with their defaults].
const INPUT_SHAPES = {
  start: [["site"], { cached_preferred_site: null, hot_seating: false }],
  config_connected: [["site"], {}],
  config_failed: [["site"], {}],
  config_answer: [["preferred", "secondary"], {}],
  listener_on: [["listener"], {}],
  listener_off: [["listener"], {}],
  agent_logged_in: [[], {}],
  login_refused: [[], { detail: "" }],
  agent_logged_out: [["reason"], {}],
  dn_out_of_service: [[], {}],
  dn_back_in_service: [[], {}],
};

/** The input kinds, as in JSON. */
export const INPUT_KINDS = Object.freeze(Object.keys(INPUT_SHAPES));

/**
 * Checks a JSON input the way serde does on the Rust side (unknown kind or
 * field, missing field, wrong type: ShapeError) and fills in defaults.
 */
export function parseInput(json) {
  if (!isObject(json)) throw new ShapeError("input: expected an object");
  if (!("kind" in json)) throw new ShapeError("input: missing field `kind`");
  const kind = checkOneOf("input kind", json.kind, INPUT_KINDS);
  const [required, optional] = INPUT_SHAPES[kind];
  const rest = { ...json };
  delete rest.kind;
  checkFields(`input ${kind}`, rest, required, Object.keys(optional));
  const input = { kind, ...optional, ...rest };
  for (const key of ["site", "preferred", "secondary", "detail"]) {
    if (key in input) checkString(`${kind}.${key}`, input[key]);
  }
  if (input.cached_preferred_site !== null && input.cached_preferred_site !== undefined) {
    checkString(`${kind}.cached_preferred_site`, input.cached_preferred_site);
  }
  if ("hot_seating" in input && typeof input.hot_seating !== "boolean") {
    throw new ShapeError(`${kind}.hot_seating: expected a boolean`);
  }
  if ("listener" in input) checkOneOf(`${kind}.listener`, input.listener, LISTENERS);
  if ("reason" in input) checkOneOf(`${kind}.reason`, input.reason, LOGOUT_REASONS);
  return input;
}

const OPTION_DEFAULTS = {
  site_timeout_ms: DEFAULT_SITE_TIMEOUT_MS,
  site_sip_register_timeout_ms: null,
  retry_delay_ms: DEFAULT_RETRY_DELAY_MS,
  retry_jitter_ms: DEFAULT_RETRY_JITTER_MS,
  cache_preferred_site: true,
};

/**
 * Checks JSON options (shape: ShapeError), fills in defaults and validates
 * them (OptionsError, same checks, order and codes as the Rust side).
 */
export function parseOptions(json) {
  if (!isObject(json)) throw new ShapeError("options: expected an object");
  checkFields("options", json, ["sites"], Object.keys(OPTION_DEFAULTS));
  const options = { ...OPTION_DEFAULTS, ...json };
  const { sites } = options;
  if (!Array.isArray(sites) || sites.length !== 2 || !sites.every((s) => typeof s === "string")) {
    throw new ShapeError("options.sites: expected two strings");
  }
  for (const key of ["site_timeout_ms", "site_sip_register_timeout_ms"]) {
    if (options[key] !== null && !isMillis(options[key])) {
      throw new ShapeError(`options.${key}: expected a non-negative integer or null`);
    }
  }
  for (const key of ["retry_delay_ms", "retry_jitter_ms"]) {
    if (!isMillis(options[key])) throw new ShapeError(`options.${key}: expected a non-negative integer`);
  }
  if (typeof options.cache_preferred_site !== "boolean") {
    throw new ShapeError("options.cache_preferred_site: expected a boolean");
  }
  validateOptions(options);
  return options;
}

/** The Rust `Options::validate`, check for check. */
export function validateOptions(options) {
  const { sites } = options;
  if (sites.some((site) => site === "")) {
    throw new OptionsError("empty_site_name", "sites: a site name must not be empty");
  }
  if (sites[0] === sites[1]) {
    throw new OptionsError(
      "same_sites",
      `sites: both sites are named ${JSON.stringify(sites[0])}; the pair needs two different names`,
    );
  }
  if (options.retry_delay_ms === 0) {
    throw new OptionsError(
      "zero_retry_delay",
      "retry_delay_ms must be greater than 0, or a dead site is retried in a tight loop",
    );
  }
  for (const key of ["site_timeout_ms", "site_sip_register_timeout_ms", "retry_delay_ms", "retry_jitter_ms"]) {
    const value = options[key];
    if (value !== null && value > MAX_DURATION_MS) {
      throw new OptionsError(
        "too_long",
        `${key} is ${value} ms, above the maximum of ${MAX_DURATION_MS} ms (one day)`,
      );
    }
  }
  const siteTimeout = options.site_timeout_ms || null;
  if (siteTimeout !== null && siteTimeout < options.retry_delay_ms) {
    throw new OptionsError(
      "site_timeout_below_retry_delay",
      `site_timeout_ms (${siteTimeout}) must be at least retry_delay_ms (${options.retry_delay_ms}), ` +
        "or the site is given up before its first retry",
    );
  }
}

// ---- the generator -------------------------------------------------------

const MASK64 = (1n << 64n) - 1n;

/** SplitMix64, as the Rust `SplitMix64` (and `hotsite_core::Rng`). */
export class SplitMix64 {
  constructor(seed) {
    this.state = BigInt(seed) & MASK64;
  }

  /** The next 64 random bits, as a BigInt. */
  nextU64() {
    this.state = (this.state + 0x9e3779b97f4a7c15n) & MASK64;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
    return z ^ (z >> 31n);
  }

  /** A uniform integer in 0..=max (a Number), one draw per call. */
  belowOrEqual(max) {
    return Number((this.nextU64() * (BigInt(max) + 1n)) >> 64n);
  }
}

// ---- the machine ---------------------------------------------------------

const other = (site) => 1 - site;
const offReason = (listener) => `${listener}_off`;
const onReason = (listener) => `${listener}_on`;
const AT_SITE = ["logging_in", "logged_in", "awaiting_dn", "stopped"];

function freshWatches() {
  return WATCHED.map(() => ({ off: false, retryAt: null }));
}

/** The switchover machine of one desktop; see the Rust module docs. */
export class Switchover {
  /**
   * `options` as JSON (checked and completed by parseOptions: throws
   * ShapeError or OptionsError); `seed` a safe integer or a BigInt.
   */
  constructor(options, seed) {
    this.options = parseOptions(options);
    this.rng = new SplitMix64(seed);
    // phase: { name, site?, until?, reason? }; names as the Rust `Phase`.
    this.phase = { name: "idle" };
    // Sites whose configuration service failed since they last connected (D1),
    // and the site the last switchover left: D2 switches to neither.
    this.failed = [false, false];
    this.left = null;
    this.caching = false;
    this.cachedPreferred = null;
    this.watches = freshWatches();
    this.telephonySwitchAt = null;
    this.dnWarned = false;
    this.outputs = [];
  }

  /** The site the machine is at or heading to; null before start. */
  site() {
    return this.phase.name === "idle" ? null : this.options.sites[this.phase.site];
  }

  /**
   * Feeds one input (as returned by parseInput). Throws InputError on misuse;
   * the input then changes nothing.
   */
  handleInput(now, input) {
    const phase = this.phase;
    switch (input.kind) {
      case "start": {
        const site = this.siteIndex(input.site);
        const cached =
          input.cached_preferred_site === null || input.cached_preferred_site === undefined
            ? null
            : this.siteIndex(input.cached_preferred_site);
        this.start(site, cached, input.hot_seating === true);
        break;
      }
      case "config_connected": {
        const site = this.siteIndex(input.site);
        if (phase.name === "connecting" && phase.site === site) {
          this.failed[site] = false;
          this.phase = { name: "reading_config", site };
        }
        break;
      }
      case "config_failed": {
        const site = this.siteIndex(input.site);
        if ((phase.name === "connecting" || phase.name === "reading_config") && phase.site === site) {
          this.configFailed(now, site);
        }
        break;
      }
      case "config_answer": {
        const preferred = this.siteIndex(input.preferred);
        const secondary = this.siteIndex(input.secondary);
        if (preferred === secondary) {
          throw new InputError(
            "same_sites_in_config_answer",
            `config answer names ${JSON.stringify(input.preferred)} as both the preferred and the secondary site`,
          );
        }
        if (phase.name === "reading_config") this.configAnswer(now, phase.site, preferred);
        break;
      }
      case "listener_off": {
        const slot = this.watchedSlot(input.listener);
        if (this.atSite() !== null) this.listenerOff(now, slot);
        break;
      }
      case "listener_on": {
        const slot = this.watchedSlot(input.listener);
        const site = this.atSite();
        if (site !== null) this.listenerOn(site, slot);
        break;
      }
      case "agent_logged_in":
        if (["logging_in", "awaiting_dn", "stopped"].includes(phase.name)) {
          this.phase = { name: "logged_in", site: phase.site };
        }
        break;
      case "login_refused":
        if (phase.name === "logging_in") this.stay(phase.site, "login_refused");
        break;
      case "agent_logged_out":
        if (phase.name === "logging_in" || phase.name === "logged_in") {
          this.loggedOut(now, phase.site, input.reason);
        }
        break;
      case "dn_out_of_service":
        if (this.atSite() !== null && !this.dnWarned) {
          this.dnWarned = true;
          this.push({ kind: "warn", listener: "dn", reason: "dn_out_of_service" });
        }
        break;
      case "dn_back_in_service": {
        const site = this.atSite();
        if (site !== null) {
          if (this.dnWarned) {
            this.dnWarned = false;
            this.push({ kind: "clear_warning", listener: "dn", reason: "dn_back_in_service" });
          }
          if (phase.name === "awaiting_dn") this.logIn(site, "dn_back_in_service");
        }
        break;
      }
      default:
        throw new ShapeError(`input kind: unknown variant \`${input.kind}\``);
    }
  }

  /** Fires every timer due at `now`, earliest first. */
  handleTimeout(now) {
    for (;;) {
      const next = this.nextTimer();
      if (next === null || next.at > now) break;
      this.fire(now, next.timer);
    }
  }

  /** The next decision, oldest first; null when there is none. */
  pollOutput() {
    return this.outputs.length === 0 ? null : this.outputs.shift();
  }

  /** When handleTimeout is due next; null: no deadline. */
  pollTimeout() {
    const next = this.nextTimer();
    return next === null ? null : next.at;
  }

  // -- private ---------------------------------------------------------------

  phaseDeadline() {
    const { name } = this.phase;
    if (name === "retry_wait" || name === "switch_spread" || name === "awaiting_dn") {
      return this.phase.until;
    }
    return null;
  }

  nextTimer() {
    // Same order as the Rust `Timer`: ties go to the first.
    const timers = [
      { timer: "phase", at: this.phaseDeadline() },
      { timer: "telephony_switch", at: this.telephonySwitchAt },
      ...this.watches.map((watch, slot) => ({ timer: slot, at: watch.retryAt })),
    ];
    let best = null;
    for (const candidate of timers) {
      if (candidate.at === null) continue;
      if (best === null || candidate.at < best.at) best = candidate;
    }
    return best;
  }

  fire(now, timer) {
    const phase = this.phase;
    if (timer === "phase") {
      if (phase.name === "retry_wait") this.connect(phase.site, "config_unreachable_retry");
      else if (phase.name === "switch_spread") this.connect(phase.site, phase.reason);
      else if (phase.name === "awaiting_dn") {
        this.switchOver(now, phase.site, "dr_force_logout_register_timeout");
      }
    } else if (timer === "telephony_switch") {
      this.telephonySwitchAt = null;
      const site = this.atSite();
      if (site !== null) this.switchOver(now, site, "telephony_off_timeout");
    } else {
      const slot = timer;
      this.watches[slot].retryAt = null;
      const site = this.atSite();
      if (site !== null) {
        const listener = WATCHED[slot];
        this.push({ kind: "reconnect", site: this.name(site), listener, reason: offReason(listener) });
        this.watches[slot].retryAt = now + this.retryDelay();
      }
    }
  }

  start(site, cached, hotSeating) {
    this.phase = { name: "idle" };
    this.failed = [false, false];
    this.left = null;
    this.clearSiteState();
    // D3: no caching under hot seating.
    this.caching = this.options.cache_preferred_site && !hotSeating;
    this.cachedPreferred = this.caching ? cached : null;
    if (this.cachedPreferred !== null) this.connect(this.cachedPreferred, "cached_preferred_site");
    else this.connect(site, "startup");
  }

  connect(site, reason) {
    this.phase = { name: "connecting", site };
    this.push({ kind: "connect", site: this.name(site), reason });
  }

  // D1.
  configFailed(now, site) {
    this.failed[site] = true;
    const next = other(site);
    if (!this.failed[next]) {
      this.connect(next, "config_unreachable_try_other");
      return;
    }
    const until = now + this.retryDelay();
    this.phase = { name: "retry_wait", site: next, until };
    this.push({ kind: "wait", until, reason: "config_unreachable_retry" });
  }

  // D2, D3.
  configAnswer(now, site, preferred) {
    if (this.caching && this.cachedPreferred !== preferred) {
      this.cachedPreferred = preferred;
      this.push({ kind: "cache_preferred_site", site: this.name(preferred), reason: "preferred_site_read" });
    }
    if (preferred === site) this.logIn(site, "on_preferred_site");
    else if (this.failed[preferred] || this.left === preferred) this.logIn(site, "preferred_site_unavailable");
    else this.switchOver(now, site, "not_on_preferred_site");
  }

  logIn(site, reason) {
    this.phase = { name: "logging_in", site };
    this.push({ kind: "log_in", site: this.name(site), reason });
  }

  // D6.
  loggedOut(now, site, reason) {
    switch (reason) {
      case "manual":
        this.stay(site, "manual_logout");
        break;
      case "supervisor":
        this.stay(site, "supervisor_logout");
        break;
      // SPEC S1: the agent is at the peer now, from another desktop.
      case "peer_login":
        this.stay(site, "peer_login");
        break;
      case "dr-force_logout": {
        const timeout = this.options.site_sip_register_timeout_ms || null;
        const until = timeout === null ? null : now + timeout;
        this.phase = { name: "awaiting_dn", site, until };
        this.push({ kind: "wait", until, reason: "dr_force_logout" });
        break;
      }
      case "graceful_shutdown_logout":
        this.switchOver(now, site, "graceful_shutdown_logout");
        break;
      default:
        throw new ShapeError(`logout reason: unknown variant \`${reason}\``);
    }
  }

  stay(site, reason) {
    this.phase = { name: "stopped", site };
    this.telephonySwitchAt = null;
    this.push({ kind: "stay", site: this.name(site), reason });
  }

  listenerOff(now, slot) {
    if (this.watches[slot].off) return;
    this.watches[slot].off = true;
    const listener = WATCHED[slot];
    this.push({ kind: "warn", listener, reason: offReason(listener) });
    // D4: only telephony can move the desktop; D5: the others only warn.
    if (listener === "telephony" && this.phase.name !== "stopped") {
      const timeout = this.options.site_timeout_ms || null;
      const until = timeout === null ? null : now + timeout;
      this.telephonySwitchAt = until;
      this.push({ kind: "wait", until, reason: "telephony_off" });
    }
    this.watches[slot].retryAt = now + this.retryDelay();
  }

  listenerOn(site, slot) {
    if (!this.watches[slot].off) return;
    this.watches[slot] = { off: false, retryAt: null };
    const listener = WATCHED[slot];
    this.push({ kind: "clear_warning", listener, reason: onReason(listener) });
    if (listener === "telephony") {
      this.telephonySwitchAt = null;
      if (this.phase.name === "logging_in") this.logIn(site, "telephony_on");
    }
  }

  // D8.
  switchOver(now, from, reason) {
    const to = other(from);
    this.failed = [false, false];
    this.left = from;
    this.clearSiteState();
    this.push({ kind: "switch_over", site: this.name(to), reason });
    const spread = this.rng.belowOrEqual(this.options.retry_jitter_ms);
    if (spread === 0) this.connect(to, reason);
    else this.phase = { name: "switch_spread", site: to, reason, until: now + spread };
  }

  clearSiteState() {
    this.watches = freshWatches();
    this.telephonySwitchAt = null;
    this.dnWarned = false;
  }

  retryDelay() {
    return this.options.retry_delay_ms + this.rng.belowOrEqual(this.options.retry_jitter_ms);
  }

  atSite() {
    return AT_SITE.includes(this.phase.name) ? this.phase.site : null;
  }

  watchedSlot(listener) {
    const slot = WATCHED.indexOf(listener);
    if (slot < 0) {
      throw new InputError(
        "dn_is_not_a_listener",
        "the dn has no listener_on/listener_off: send dn_back_in_service / dn_out_of_service",
      );
    }
    return slot;
  }

  siteIndex(name) {
    const site = this.options.sites.indexOf(name);
    if (site < 0) {
      throw new InputError("unknown_site", `unknown site ${JSON.stringify(name)}: not one of the two sites in the options`);
    }
    return site;
  }

  name(site) {
    return this.options.sites[site];
  }

  push(output) {
    this.outputs.push(output);
  }
}
