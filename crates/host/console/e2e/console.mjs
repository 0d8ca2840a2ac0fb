// End-to-end test of the operator console in headless Chromium (issue 16),
// against a site running every system: the lab (the aggregator's two SMPP
// provider sites with two SMSCs each, its HTTP API on two sites, a webhook
// receiver for a digital channel, an SMTP sink, two cloud media servers as
// SIP trunks) and a `hotsite run` gateway using all of them (SMPP binds, an
// HTTP aggregator channel, a digital channel falling back to e-mail, a voice
// trunk group, the site with an agent). Open the console, type the token, and:
//
// - every section shows its rows in service (binds, aggregator sites,
//   digital and e-mail channels, trunks, the agent);
// - an SMSC killed through the lab's control API: within 2 s the page shows
//   that bind out of service AND a new timeline entry with its cause;
// - the digital channel's webhook answering 503, three messages on its
//   route: within 2 s of the third failure the page shows the channel out of
//   service with "3 sends in a row failed: answered 503" and its timeline
//   entry; it comes back with the webhook;
// - the aggregator's primary HTTP site killed, messages on its route: within
//   2 s the page shows that site out of service with its cause and an entry;
//   the probes bring it back once it recovers;
// - the gateway killed and restarted: the page follows.
//
// The token must be in no storage, cookie or URL. Screenshots of each state
// go to target/console-e2e/, the measured latencies to latency.json there.
//
//   node console.mjs
//
// Environment: CHROMIUM (default /usr/bin/chromium), HOTSITE_BIN (default
// $CARGO_TARGET_DIR or <repo>/target, then debug/hotsite), CONSOLE_E2E_OUT
// (default <repo>/target/console-e2e), CONSOLE_E2E_TIMEOUT_S (120). Every
// process it starts is killed by PID on the way out. Processes, ports, the
// bound and the screenshots: the harness shared with the web desktop's e2e
// (tests/e2e/harness.mjs).

import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

import puppeteer from "puppeteer-core";

import {
  e2eRun,
  fail,
  freeTcpPort,
  freeUdpPort,
  freshDir,
  hotsiteBin,
  hotsiteEnv,
  needChromium,
  repo,
  sleep,
  waitFetched,
  waitOutput,
  writePageLog,
} from "../../../../tests/e2e/harness.mjs";

const out = resolve(process.env.CONSOLE_E2E_OUT ?? join(repo, "target", "console-e2e"));
const limitS = Number(process.env.CONSOLE_E2E_TIMEOUT_S ?? 120);

const TOKEN = "console-e2e-token-0001";
/** The issue's budget: kill → bind out of service and timeline entry shown. */
const BUDGET_MS = 2_000;
const KILLED = { site: "a", name: "a1" };
const KILLED_TARGET = `${KILLED.site}/${KILLED.name}`;
const SMSCS = ["a/a1", "a/a2", "b/b1", "b/b2"];

const { say, start, launchChromium, keepPageLog, screenshots, main } = e2eRun("console-e2e");

// ---- the lab and the gateway ----------------------------------------------------------

/** Everything besides the binds, named as the page's test ids name them. */
const AGGREGATOR = "agg";
const AGG_SITES = ["a", "b"];
/** The aggregator site killed (the primary: new traffic goes to it first). */
const AGG_KILLED = "a";
const DIGITAL = "chat";
const EMAIL = "mail";
const TRUNKS = ["t1", "t2"];
const CALLBACK_SECRET = "console-e2e-callback-secret-01";
const CHAT_SECRET = "console-e2e-chat-secret-0001";

/** A `name … on ADDR` line of `hotsite lab`'s start-up output. */
function labAddr(lab, pattern) {
  const match = lab.output.match(pattern);
  if (!match) fail(`the lab did not print ${pattern}:\n${lab.output}`);
  return match[1];
}

async function startSites() {
  const bin = hotsiteBin();
  const dir = freshDir(join(out, "run"));
  const control = await freeTcpPort();
  const smsc = {};
  for (const target of SMSCS) smsc[target] = await freeTcpPort();
  const api = await freeTcpPort();
  const sip = await freeUdpPort();
  const voice = await freeUdpPort();

  // The lab: the aggregator's SMPP sites, its HTTP API (two sites, receipts
  // signed back to the gateway), the chat channel's webhook receiver, an SMTP
  // sink for the chat route's e-mail hop, and two cloud media servers that
  // answer OPTIONS: the voice trunks. Port 0 for all but the SMSCs; their
  // addresses are read back from the lab.
  const labToml = join(dir, "lab.toml");
  writeFileSync(
    labToml,
    `[lab]
control = "127.0.0.1:${control}"
seed = 1

[[lab.accounts]]
system_id = "hotsite"
password = "secret"

[lab.receipts]
delay_ms = 20

${["a", "b"]
  .map(
    (site) => `[[lab.sites]]
name = "${site}"
${SMSCS.filter((t) => t.startsWith(`${site}/`))
  .map((t) => `[[lab.sites.smsc]]\nname = "${t.split("/")[1]}"\nlisten = "127.0.0.1:${smsc[t]}"`)
  .join("\n")}`,
  )
  .join("\n\n")}

[lab.http]
dr_url = "http://127.0.0.1:${api}/v1/callbacks/${AGGREGATOR}/receipt"
mo_url = "http://127.0.0.1:${api}/v1/callbacks/${AGGREGATOR}/mo"
callback_secret = "${CALLBACK_SECRET}"
callback_retry_ms = 200
callback_max_attempts = 5
${AGG_SITES.map((site) => `[[lab.http.sites]]\nname = "${site}"\nlisten = "127.0.0.1:0"`).join("\n")}

[[lab.webhooks]]
name = "${DIGITAL}"
listen = "127.0.0.1:0"
secret = "${CHAT_SECRET}"

[lab.smtp]
listen = "127.0.0.1:0"

${TRUNKS.map((t) => `[[lab.media_servers]]\nname = "${t}"\nlisten = "127.0.0.1:0"\nrecordings = "${join(dir, `cloud-${t}`)}"`).join("\n\n")}
`,
  );
  const env = hotsiteEnv();
  const lab = start("lab", bin, ["lab", "--config", labToml], { env });
  await waitOutput(lab, /control API on/);
  const controlUrl = `http://127.0.0.1:${control}`;
  const aggUrls = AGG_SITES.map((site) => labAddr(lab, new RegExp(`http site ${site} on (http://\\S+)`)));
  const chatUrl = labAddr(lab, new RegExp(`webhook receiver ${DIGITAL} on (http://\\S+)`));
  const smtp = labAddr(lab, /smtp sink on (\S+)/);
  const media = await (await fetch(`${controlUrl}/v1/media_servers`)).json();
  const trunkAddr = Object.fromEntries(media.map((server) => [server.name, server.addr]));
  for (const trunk of TRUNKS) if (!trunkAddr[trunk]) fail(`the lab runs no media server ${trunk}: ${JSON.stringify(media)}`);

  // The gateway: every system. The aggregator marks a site down on its first
  // failed send (resubmits_per_url = 0) and probes it every 200 ms; the chat
  // channel tries each message once, then hands it to e-mail; the trunks are
  // probed (OPTIONS) every 200 ms.
  const siteToml = join(dir, "hotsite.toml");
  writeFileSync(
    siteToml,
    `[site]
name = "console-e2e"
listen = "127.0.0.1:${sip}"

[[site.dns]]
dn = "1001"
password = "phone-secret-1"

[[site.agents]]
id = "alice"

[api]
listen = "127.0.0.1:${api}"
tokens = ["${TOKEN}"]

[store]
path = "${join(dir, "hotsite.db")}"

[smpp]
system_id = "hotsite"
password = "secret"
window = 10
enquire_link_interval = "10s"
dead_peer_timeout = "30s"

${SMSCS.map((t) => `[[smpp.smsc]]\nsite = "${t.split("/")[0]}"\nname = "${t.split("/")[1]}"\naddress = "127.0.0.1:${smsc[t]}"`).join("\n\n")}

[[channels]]
name = "${AGGREGATOR}"
kind = "http"
login = "hotsite"
password = "secret"
callback_secret = "${CALLBACK_SECRET}"
urls = [${AGG_SITES.map((site, i) => `{ site = "${site}", url = "${aggUrls[i]}" }`).join(", ")}]
request_timeout = "1s"
resubmit_delay = "100ms"
resubmits_per_url = 0
probe_interval = "200ms"
probe_timeout = "200ms"
rise = 2

[[channels]]
name = "${DIGITAL}"
kind = "webhook"
url = "${chatUrl}hotsite"
secret = "${CHAT_SECRET}"
timeout = "1s"
retry_budget = 1
retry_initial = "100ms"
retry_max = "100ms"

[[channels]]
name = "${EMAIL}"
kind = "email"
host = "${smtp.split(":")[0]}"
port = ${smtp.split(":")[1]}
security = "none"
from = "hotsite@console-e2e.test"
default_to = "ops@console-e2e.test"
timeout = "2s"

[[routes]]
name = "sms"
hops = ["smpp"]

[[routes]]
name = "${AGGREGATOR}"
hops = ["${AGGREGATOR}"]

[[routes]]
name = "${DIGITAL}"
hops = ["${DIGITAL}", "${EMAIL}"]

[voice]
listen = "127.0.0.1:${voice}"

${TRUNKS.map(
  (t, i) => `[[voice.trunks]]
name = "${t}"
carrier = "carrier-${i + 1}"
address = "${trunkAddr[t]}"
priority = ${10 * (i + 1)}
media_region = "eu-west"
failover_region = "eu-central"
probe = { interval = "200ms", timeout = "200ms", fall = 2, rise = 2 }`,
).join("\n\n")}

[[voice.groups]]
name = "outbound"
trunks = [${TRUNKS.map((t) => `"${t}"`).join(", ")}]
`,
  );
  const gateway = start("gateway", bin, ["run", "--config", siteToml], { env });
  await waitOutput(gateway, /API on http:\/\//);
  return { lab, gateway, siteToml, env, api: `http://127.0.0.1:${api}`, control: controlUrl, aggUrls };
}

async function apiGet(base, path) {
  const response = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  if (!response.ok) fail(`GET ${path}: HTTP ${response.status}`);
  return response.json();
}

/** Waits (bounded) until the site's `/v1/status` satisfies `done`. */
const waitStatus = (base, what, done) => waitFetched(what, () => apiGet(base, "/v1/status"), done);

/** Posts `n` messages (so the queue chart has something to show), on `route` (default: the site's default, SMPP). */
async function postMessages(base, from, n, route = undefined) {
  const messages = [];
  for (let i = from; i < from + n; i++) messages.push({ id: `console-e2e-${i}`, to: `+4917${String(i).padStart(8, "0")}`, text: `console e2e #${i}`, route });
  const response = await fetch(`${base}/v1/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ messages }),
  });
  if (response.status !== 202) fail(`POST /v1/messages: HTTP ${response.status}: ${await response.text()}`);
}

/** The status says every aggregator site, channel and trunk is in service. */
function fullyInService(status) {
  const urls = status.channels?.[AGGREGATOR]?.urls ?? [];
  const trunks = status.trunks ?? [];
  return (
    urls.length === AGG_SITES.length &&
    urls.every((url) => url.state === "up") &&
    status.channels?.[DIGITAL]?.health === "up" &&
    status.channels?.[EMAIL]?.health === "up" &&
    trunks.length === TRUNKS.length &&
    trunks.every((trunk) => trunk.in_service === true)
  );
}

/** Puts a lab server into a fault (`path` under the control API). */
async function labFault(control, path, fault) {
  const response = await fetch(`${control}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(fault),
  });
  if (!response.ok) fail(`lab fault ${path} ${JSON.stringify(fault)}: HTTP ${response.status}: ${await response.text()}`);
}

/** The gateway's health events after `seq` for `target` (from its ring). */
async function healthEvents(base, after, target) {
  const ring = await apiGet(base, `/v1/events?after=${after}&limit=1000`);
  return (ring.events ?? []).filter((record) => record.kind === "health" && record.target === target);
}

// ---- the page -------------------------------------------------------------------------------

/** The highest timeline seq the page shows. */
const maxSeq = (page) => page.$$eval('[data-testid="timeline-entry"]', (rows) => Math.max(0, ...rows.map((r) => Number(r.dataset.seq))));

/** A table row's state and the text of its cell `cause` (an index). */
const rowOf = (page, testid, cause) =>
  page.$eval(`[data-testid="${testid}"]`, (r, i) => ({ state: r.dataset.state, cause: r.cells[i].textContent }), cause).catch(() => null);

/** The page's first new "health → down" timeline entry of `target` (after `seq`) with a cause. */
const downEntry = (page, target, seq) =>
  page.$$eval(
    '[data-testid="timeline-entry"]',
    (rows, target, after) =>
      rows
        .filter((r) => Number(r.dataset.seq) > after && r.dataset.target === target && r.dataset.kind === "health")
        .map((r) => ({ seq: Number(r.dataset.seq), live: r.dataset.live, what: r.cells[2].textContent, cause: r.cells[3].textContent }))
        .find((e) => e.what.includes("down") && e.cause.trim() !== ""),
    target,
    seq,
  );

/** Polls (bounded) until `done()` is truthy; its value, or null at `ms`. */
async function poll(done, ms, every = 10) {
  const until = Date.now() + ms;
  for (;;) {
    const value = await done();
    if (value) return value;
    if (Date.now() > until) return null;
    await sleep(every);
  }
}

/**
 * (b) The chat channel's webhook answers 503. Three messages on its route
 * fail there once each (retry_budget 1; each then goes to e-mail): the third
 * failure takes the channel out of service (passive health, 3 in a row). The
 * page must show its row out of service with the cause "3 sends in a row
 * failed: answered 503", and the timeline entry of `chat/digital`, within 2 s
 * of the third failure: timed from the gateway's own timestamp of that health
 * event (published as the third failure is recorded; same host clock). Also
 * printed: from the POST, and from when /v1/status first said down (polled
 * every 20 ms beside the page). Then the webhook recovers and one more
 * message brings the channel back.
 */
async function digitalFault(page, sites, state, shot, pageLog) {
  const target = `${DIGITAL}/digital`;
  const cause = "3 sends in a row failed: answered 503";
  const seqBefore = await maxSeq(page);
  await labFault(sites.control, `/v1/webhooks/${DIGITAL}/fault`, { fault: "status", code: 503 });
  say(`webhook receiver ${DIGITAL} answers 503; posting 3 messages on route ${DIGITAL}`);
  const postedAt = Date.now();
  await postMessages(sites.api, 1100, 3, DIGITAL);
  let statusDownAt = null;
  const watching = poll(
    async () => {
      const status = await apiGet(sites.api, "/v1/status").catch(() => null);
      if (status?.channels?.[DIGITAL]?.health === "down") statusDownAt = Date.now();
      return statusDownAt;
    },
    10_000,
    20,
  );
  let rowAt = null;
  let row = null;
  let entryAt = null;
  let entry = null;
  const until = postedAt + 10_000;
  while ((rowAt === null || entryAt === null) && Date.now() < until) {
    if (rowAt === null) {
      row = await rowOf(page, `channel-${DIGITAL}`, 6);
      if (row?.state === "down" && row.cause === cause) rowAt = Date.now();
    }
    if (entryAt === null) {
      entry = await downEntry(page, target, seqBefore);
      if (entry) entryAt = Date.now();
    }
    await sleep(10);
  }
  await watching;
  await shot("4-digital-down");
  if (rowAt === null) fail(`${DIGITAL} not shown out of service with cause ${JSON.stringify(cause)} within 10 s: row ${JSON.stringify(row)}\npage log:\n${pageLog.join("\n")}`);
  if (entryAt === null) fail(`no timeline entry for ${target} within 10 s\npage log:\n${pageLog.join("\n")}`);
  if (entry.cause !== cause) fail(`the ${target} entry's cause is ${JSON.stringify(entry.cause)}, not ${JSON.stringify(cause)}`);
  if (entry.live !== "true") fail(`the ${target} entry is not marked live`);
  const events = await healthEvents(sites.api, seqBefore, target);
  const down = events.find((record) => record.state === "down");
  if (!down) fail(`the gateway published no health → down for ${target}: ${JSON.stringify(events)}`);
  if (down.cause !== cause) fail(`the gateway's ${target} event says ${JSON.stringify(down.cause)}`);
  const result = {
    row_down_after_failure_ms: rowAt - down.at_ms,
    entry_after_failure_ms: entryAt - down.at_ms,
    row_down_after_status_down_ms: statusDownAt === null ? null : rowAt - statusDownAt,
    row_down_after_post_ms: rowAt - postedAt,
    third_failure_after_post_ms: down.at_ms - postedAt,
  };
  say(
    `third failure (gateway's event, seq ${down.seq}) ${result.third_failure_after_post_ms} ms after the POST; → ${DIGITAL} out of service on the page: ${result.row_down_after_failure_ms} ms; ` +
      `→ timeline entry: ${result.entry_after_failure_ms} ms; (page vs /v1/status first down: ${result.row_down_after_status_down_ms} ms; vs the POST: ${result.row_down_after_post_ms} ms)`,
  );
  if (result.row_down_after_failure_ms > BUDGET_MS) fail(`${DIGITAL} shown out of service ${result.row_down_after_failure_ms} ms after its third failure, above ${BUDGET_MS} ms`);
  if (result.entry_after_failure_ms > BUDGET_MS) fail(`${target} timeline entry shown ${result.entry_after_failure_ms} ms after the third failure, above ${BUDGET_MS} ms`);
  if ((await state(`channel-${EMAIL}`)) !== "up") fail(`${EMAIL} is not in service: the chat route's fallback hop`);

  // Back: the webhook answers again, and one send that gets through is proof.
  await labFault(sites.control, `/v1/webhooks/${DIGITAL}/fault`, { fault: "recover" });
  const recoveredAt = Date.now();
  await postMessages(sites.api, 1103, 1, DIGITAL);
  if (!(await poll(async () => (await state(`channel-${DIGITAL}`)) === "up", 5_000))) {
    await shot("failed-digital-recovery");
    fail(`${DIGITAL} not back in service within 5 s of its webhook recovering and one more message`);
  }
  result.back_in_service_ms = Date.now() - recoveredAt;
  say(`${DIGITAL} back in service on the page ${result.back_in_service_ms} ms after the webhook recovered (one more message)`);
  return result;
}

/**
 * (c) The aggregator's primary HTTP site dies (port closed). Messages on the
 * aggregator route fail there (refused) and go to the other site; the first
 * failure marks the site down (resubmits_per_url = 0) and its probes keep it
 * down. The page must show that site out of service with a cause, and a
 * timeline entry, within 2 s of the kill (the messages are posted right
 * after it); the other site stays in service. Then it recovers and the
 * probes (every 200 ms, rise 2) bring it back.
 */
async function aggregatorSiteKill(page, sites, state, shot, pageLog) {
  const row = `channel-${AGGREGATOR}-${AGG_KILLED}`;
  const target = `${AGG_KILLED}/${sites.aggUrls[AGG_SITES.indexOf(AGG_KILLED)]}`;
  const seqBefore = await maxSeq(page);
  await labFault(sites.control, `/v1/http/sites/${AGG_KILLED}/fault`, { fault: "die" });
  const killedAt = Date.now();
  say(`aggregator HTTP site ${AGG_KILLED} killed; posting 3 messages on route ${AGGREGATOR}`);
  await postMessages(sites.api, 1200, 3, AGGREGATOR);
  let rowAt = null;
  let shown = null;
  let entryAt = null;
  let entry = null;
  const until = killedAt + 10_000;
  while ((rowAt === null || entryAt === null) && Date.now() < until) {
    if (rowAt === null) {
      shown = await rowOf(page, row, 4);
      if (shown?.state === "down" && shown.cause.startsWith("a send failed: ")) rowAt = Date.now();
    }
    if (entryAt === null) {
      entry = await downEntry(page, target, seqBefore);
      if (entry) entryAt = Date.now();
    }
    await sleep(10);
  }
  await shot("5-aggregator-site-down");
  if (rowAt === null) fail(`aggregator site ${AGG_KILLED} not shown out of service with a cause within 10 s: row ${JSON.stringify(shown)}\npage log:\n${pageLog.join("\n")}`);
  if (entryAt === null) fail(`no timeline entry for ${target} within 10 s\npage log:\n${pageLog.join("\n")}`);
  const result = { row_down_after_kill_ms: rowAt - killedAt, entry_after_kill_ms: entryAt - killedAt, cause: shown.cause };
  say(`aggregator site kill → ${row} out of service on the page: ${result.row_down_after_kill_ms} ms (cause ${JSON.stringify(shown.cause)}); → timeline entry: ${result.entry_after_kill_ms} ms (${JSON.stringify(entry.cause)})`);
  if (result.row_down_after_kill_ms > BUDGET_MS) fail(`${row} shown out of service ${result.row_down_after_kill_ms} ms after the kill, above ${BUDGET_MS} ms`);
  if (result.entry_after_kill_ms > BUDGET_MS) fail(`${target} timeline entry shown ${result.entry_after_kill_ms} ms after the kill, above ${BUDGET_MS} ms`);
  for (const site of AGG_SITES.filter((s) => s !== AGG_KILLED)) {
    if ((await state(`channel-${AGGREGATOR}-${site}`)) !== "up") fail(`aggregator site ${site} is not in service after ${AGG_KILLED} died`);
  }

  await labFault(sites.control, `/v1/http/sites/${AGG_KILLED}/fault`, { fault: "recover" });
  const recoveredAt = Date.now();
  if (!(await poll(async () => (await state(row)) === "up", 5_000))) {
    await shot("failed-aggregator-recovery");
    fail(`aggregator site ${AGG_KILLED} not back in service within 5 s of recovering`);
  }
  result.back_in_service_ms = Date.now() - recoveredAt;
  say(`aggregator site ${AGG_KILLED} back in service on the page ${result.back_in_service_ms} ms after it recovered (probes)`);
  return result;
}

// ---- the browser --------------------------------------------------------------------------

async function run() {
  needChromium();
  mkdirSync(out, { recursive: true });
  // Only this run's artefacts: an earlier run's screenshots and logs (other
  // names, or a failure's) would pass for this one's.
  for (const name of readdirSync(out)) {
    if (/\.(png|log)$/.test(name) || name === "page-log.txt" || name === "latency.json") rmSync(join(out, name), { force: true });
  }
  say(`artefacts in ${out}`);
  const sites = await startSites();
  say(`gateway ${sites.api}, lab control ${sites.control}`);
  await waitStatus(sites.api, "every bind in service", (s) => (s.binds ?? []).length === SMSCS.length && s.binds.every((b) => b.health === "Up"));
  await waitStatus(sites.api, "every aggregator site, channel and trunk in service", fullyInService);
  await postMessages(sites.api, 0, 300);
  // A few on the other routes, so their channels have sends to show.
  await postMessages(sites.api, 1000, 4, AGGREGATOR);
  await postMessages(sites.api, 1010, 2, DIGITAL);

  const browser = await launchChromium(puppeteer);
  const pageLog = [];
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 1000 });
    keepPageLog(page, pageLog);
    const shot = screenshots(page, out);
    const state = (testid) => page.$eval(`[data-testid="${testid}"]`, (e) => e.dataset.state).catch(() => null);
    const waitFor = async (what, test, ms) => {
      const until = Date.now() + ms;
      for (;;) {
        const value = await test();
        if (value) return value;
        if (Date.now() > until) {
          await shot(`failed-${what.replace(/\W+/g, "-")}`);
          fail(`${what}: not within ${ms} ms\npage log:\n${pageLog.join("\n")}`);
        }
        await sleep(25);
      }
    };

    // `/` leads to the console, which asks for the token.
    const response = await page.goto(`${sites.api}/`, { waitUntil: "load", timeout: 15_000 });
    if (!page.url().endsWith("/console/")) fail(`/ did not lead to /console/ but to ${page.url()}`);
    const csp = response.headers()["content-security-policy"] ?? "";
    if (!csp.includes("script-src 'self'")) fail(`no strict CSP on the page: ${csp}`);
    await page.waitForSelector('[data-testid="token-form"]', { visible: true, timeout: 10_000 });
    await shot("1-token");

    // A wrong token: refused with a clear message, asked again.
    await page.type('[data-testid="token"]', "not-the-token");
    await page.click('[data-testid="token-submit"]');
    await waitFor("wrong token refused", () => page.$eval('[data-testid="token-error"]', (e) => e.textContent.includes("refused the API token")), 5_000);
    await shot("1b-token-refused");

    await page.type('[data-testid="token"]', TOKEN);
    await page.click('[data-testid="token-submit"]');
    await page.waitForSelector('[data-testid="board"]', { visible: true, timeout: 10_000 });
    const boardAt = Date.now();
    for (const target of SMSCS) {
      await waitFor(`bind ${target} in service`, async () => (await state(`bind-${target}`)) === "up", 10_000);
    }
    // (a) Every section has real rows: the aggregator's sites, the digital
    // and e-mail channels, the trunks and the agent, all in service (the
    // status said so before the page opened).
    const rows = [
      ...AGG_SITES.map((site) => `channel-${AGGREGATOR}-${site}`),
      `channel-${DIGITAL}`,
      `channel-${EMAIL}`,
      ...TRUNKS.map((trunk) => `trunk-${trunk}`),
    ];
    for (const row of rows) await waitFor(`${row} in service`, async () => (await state(row)) === "up", 10_000);
    await waitFor("agent alice listed", () => page.$('[data-testid="agent-alice"]'), 10_000);
    const filledMs = Date.now() - boardAt;
    const unconfigured = await page.$$eval(".card p.muted", (ps) => ps.map((p) => p.textContent).filter((t) => /not configured|No .* configured/.test(t)));
    if (unconfigured.length) fail(`sections left empty: ${JSON.stringify(unconfigured)}`);
    const sends = await page.$eval(`[data-testid="channel-${DIGITAL}"]`, (row) => Number(row.cells[5].textContent));
    if (!(sends >= 1)) fail(`the ${DIGITAL} row shows ${sends} sends, the 2 messages posted on its route are not there`);
    say(`every section filled (${rows.length} aggregator/channel/trunk rows in service) ${filledMs} ms after the board showed`);
    await waitFor("event stream live", async () => (await state("stream")) === "live", 10_000);
    await waitFor("header live", async () => (await state("live")) === "live", 10_000);
    await waitFor("queue chart drawn", () => page.$('[data-testid="queue-chart"] canvas'), 10_000);
    const siteName = await page.$eval('[data-testid="site-name"]', (e) => e.textContent);
    if (siteName !== "console-e2e") fail(`the header shows site ${JSON.stringify(siteName)}`);
    // Let the status poll draw the 300 messages' throughput.
    await sleep(2_500);
    await shot("2-in-service");

    // The token is in no storage, cookie or URL.
    const stored = await page.evaluate(() => JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage }, cookie: document.cookie, url: location.href }));
    const cookies = await page.cookies();
    if (stored.includes(TOKEN) || JSON.stringify(cookies).includes(TOKEN) || page.url().includes(TOKEN)) {
      fail(`the token is stored: ${stored} cookies ${JSON.stringify(cookies)}`);
    }
    if (await page.$eval('[data-testid="token"]', (e) => e.value !== "")) fail("the token is still in the form");

    const seqBefore = await page.$$eval('[data-testid="timeline-entry"]', (rows) => Math.max(0, ...rows.map((r) => Number(r.dataset.seq))));
    say(`binds in service; timeline at seq ${seqBefore}; killing SMSC ${KILLED_TARGET}`);

    // Kill the SMSC: sessions reset, port closed.
    const killedAt = Date.now();
    const kill = await fetch(`${sites.control}/v1/smsc/${KILLED.site}/${KILLED.name}/fault`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ fault: "die" }),
    });
    if (!kill.ok) fail(`lab fault: HTTP ${kill.status}: ${await kill.text()}`);

    let bindDownMs = null;
    let entryMs = null;
    let entry = null;
    const until = killedAt + 10_000;
    while ((bindDownMs === null || entryMs === null) && Date.now() < until) {
      if (bindDownMs === null && (await state(`bind-${KILLED_TARGET}`)) === "down") bindDownMs = Date.now() - killedAt;
      if (entryMs === null) {
        entry = await page.$$eval(
          '[data-testid="timeline-entry"]',
          (rows, target, after) =>
            rows
              .filter((r) => Number(r.dataset.seq) > after && r.dataset.target === target && r.dataset.kind === "health")
              .map((r) => ({ seq: Number(r.dataset.seq), live: r.dataset.live, what: r.cells[2].textContent, cause: r.cells[3].textContent, receivedAt: Number(r.dataset.receivedAt) }))
              .find((e) => e.what.includes("down") && e.cause.trim() !== ""),
          KILLED_TARGET,
          seqBefore,
        );
        if (entry) entryMs = Date.now() - killedAt;
      }
      await sleep(10);
    }
    await shot("3-smsc-killed");
    if (bindDownMs === null) fail(`bind ${KILLED_TARGET} not shown out of service within 10 s\npage log:\n${pageLog.join("\n")}`);
    if (entryMs === null) fail(`no timeline entry for ${KILLED_TARGET} within 10 s\npage log:\n${pageLog.join("\n")}`);
    const cause = await page.$eval(`[data-testid="bind-cause-${KILLED_TARGET}"]`, (e) => e.textContent);
    say(`kill → bind out of service on the page: ${bindDownMs} ms; → timeline entry: ${entryMs} ms (arrived in the page ${entry.receivedAt - killedAt} ms after the kill)`);
    say(`timeline entry: seq ${entry.seq}, ${entry.what}, cause ${JSON.stringify(entry.cause)}; bind row cause ${JSON.stringify(cause)}`);
    if (entry.live !== "true") fail("the new entry is not marked live");
    if (bindDownMs > BUDGET_MS) fail(`bind shown out of service ${bindDownMs} ms after the kill, above ${BUDGET_MS} ms`);
    if (entryMs > BUDGET_MS) fail(`timeline entry shown ${entryMs} ms after the kill, above ${BUDGET_MS} ms`);
    // The other binds are unaffected.
    for (const target of SMSCS.filter((t) => t !== KILLED_TARGET)) {
      if ((await state(`bind-${target}`)) !== "up") fail(`bind ${target} is not in service after ${KILLED_TARGET} died`);
    }

    // The filter: without messaging, its entries go; with it, they come back.
    const count = (system) => page.$$eval(`[data-testid="timeline-entry"][data-system="${system}"]`, (rows) => rows.length);
    await page.click('[data-testid="filter-messaging"]');
    await waitFor("messaging entries filtered out", async () => (await count("messaging")) === 0, 3_000);
    await page.click('[data-testid="filter-messaging"]');
    await waitFor("messaging entries back", async () => (await count("messaging")) > 0, 3_000);

    const digital = await digitalFault(page, sites, state, shot, pageLog);
    const aggregator = await aggregatorSiteKill(page, sites, state, shot, pageLog);

    // More traffic after the kill: goes through the three binds left.
    await postMessages(sites.api, 300, 200);
    await sleep(2_500);
    await shot("6-after-traffic");

    // Until the gateway dies, no error at all (the wrong token's 401 is
    // logged by Chromium itself); after, failed requests are expected.
    const errors = pageLog.filter((line) => / (error|pageerror) /.test(line) && !line.includes("status of 401"));
    if (errors.length) fail(`the page logged errors:\n${errors.join("\n")}`);

    // The gateway dies (SIGKILL): the page says so and keeps retrying; the
    // gateway comes back (same config, port and store) numbering its events
    // from 1 again: the page resumes live and shows the new process's events.
    process.kill(sites.gateway.child.pid, "SIGKILL");
    say(`gateway (pid ${sites.gateway.child.pid}) killed`);
    await waitFor("stream reconnecting", async () => (await state("stream")) === "reconnecting", 5_000);
    await waitFor("header not live", async () => (await state("live")) !== "live", 5_000);
    await shot("7-gateway-down");
    const again = start("gateway-restarted", hotsiteBin(), ["run", "--config", sites.siteToml], { env: sites.env });
    await waitOutput(again, /API on http:\/\//);
    const restartedAt = Date.now();
    await waitFor("stream live again", async () => (await state("stream")) === "live", 15_000);
    await waitFor("the restarted gateway's events", () => page.$('[data-testid="timeline-entry"][data-epoch="1"]'), 15_000);
    for (const target of SMSCS.filter((t) => t !== KILLED_TARGET)) {
      await waitFor(`bind ${target} in service again`, async () => (await state(`bind-${target}`)) === "up", 15_000);
    }
    for (const row of rows) await waitFor(`${row} in service again`, async () => (await state(row)) === "up", 15_000);
    await waitFor("header live again", async () => (await state("live")) === "live", 5_000);
    say(`gateway restarted: the page was live again ${Date.now() - restartedAt} ms after its API came back`);
    await shot("8-gateway-restarted");

    const cspErrors = pageLog.filter((line) => /Content Security Policy|Refused to/i.test(line));
    if (cspErrors.length) fail(`the page broke its own CSP:\n${cspErrors.join("\n")}`);
    const exceptions = pageLog.filter((line) => / pageerror /.test(line));
    if (exceptions.length) fail(`the page threw:\n${exceptions.join("\n")}`);
    writePageLog(out, pageLog);
    const latency = { bind_down_ms: bindDownMs, timeline_entry_ms: entryMs, budget_ms: BUDGET_MS, sections_filled_ms: filledMs, digital, aggregator };
    writeFileSync(join(out, "latency.json"), JSON.stringify(latency, null, 2) + "\n");
    say(`PASS: ${KILLED_TARGET} out of service after ${bindDownMs} ms, timeline entry after ${entryMs} ms (budget ${BUDGET_MS} ms)`);
    say(
      `PASS: ${DIGITAL} out of service on the page ${digital.row_down_after_failure_ms} ms and its timeline entry ${digital.entry_after_failure_ms} ms after its third failure; ` +
        `aggregator site ${AGG_KILLED} out of service ${aggregator.row_down_after_kill_ms} ms after the kill (budget ${BUDGET_MS} ms)`,
    );
  } catch (error) {
    writePageLog(out, pageLog);
    throw error;
  } finally {
    await browser.close().catch(() => {});
  }
}

await main(run, { out, limitS });
