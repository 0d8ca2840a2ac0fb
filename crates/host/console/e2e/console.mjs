// End-to-end test of the operator console in headless Chromium (issue 16):
// the lab's simulated aggregator (two provider sites, two SMSCs each) and a
// `hotsite run` gateway bound to all four; open the console, type the token,
// wait until the binds show in service; kill one SMSC through the lab's
// control API and assert that within 2 s the page shows that bind out of
// service AND a new timeline entry with its cause. The token must be in no
// storage, cookie or URL. Screenshots go to target/console-e2e/.
//
//   node console.mjs
//
// Environment: CHROMIUM (default /usr/bin/chromium), HOTSITE_BIN (default
// $CARGO_TARGET_DIR or <repo>/target, then debug/hotsite), CONSOLE_E2E_OUT
// (default <repo>/target/console-e2e), CONSOLE_E2E_TIMEOUT_S (120). Every
// process it starts is killed by PID on the way out.

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { createSocket } from "node:dgram";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import puppeteer from "puppeteer-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../../../..");
const chromium = process.env.CHROMIUM ?? "/usr/bin/chromium";
const out = resolve(process.env.CONSOLE_E2E_OUT ?? join(repo, "target", "console-e2e"));
const limitS = Number(process.env.CONSOLE_E2E_TIMEOUT_S ?? 120);

const TOKEN = "console-e2e-token-0001";
/** The issue's budget: kill → bind out of service and timeline entry shown. */
const BUDGET_MS = 2_000;
const KILLED = { site: "a", name: "a1" };
const KILLED_TARGET = `${KILLED.site}/${KILLED.name}`;
const SMSCS = ["a/a1", "a/a2", "b/b1", "b/b2"];

const children = [];
const started = Date.now();
const stamp = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const say = (line) => console.log(`[console-e2e ${stamp()}] ${line}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function fail(message) {
  throw new Error(message);
}

/** Starts a process, keeps its output (for the failure report) and its PID. */
function start(name, command, args, options = {}) {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
  const entry = { name, child, output: "", exited: null };
  const keep = (chunk) => {
    entry.output += chunk;
    if (entry.output.length > 200_000) entry.output = entry.output.slice(-100_000);
  };
  child.stdout.setEncoding("utf8").on("data", keep);
  child.stderr.setEncoding("utf8").on("data", keep);
  child.on("exit", (code, signal) => {
    entry.exited = signal ?? code;
  });
  child.on("error", (error) => {
    entry.exited = `spawn error: ${error.message}`;
  });
  children.push(entry);
  return entry;
}

/** Waits (bounded) until `entry` printed a line matching `pattern`. */
async function waitOutput(entry, pattern, ms = 30_000) {
  const until = Date.now() + ms;
  for (;;) {
    const match = entry.output.match(pattern);
    if (match) return match;
    if (entry.exited !== null) fail(`${entry.name} exited (${entry.exited}) before printing ${pattern}:\n${entry.output}`);
    if (Date.now() > until) fail(`${entry.name} printed no ${pattern} within ${ms} ms:\n${entry.output}`);
    await sleep(50);
  }
}

function killAll() {
  for (const entry of children) {
    if (entry.exited === null && entry.child?.pid) {
      try {
        process.kill(entry.child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

/** A free loopback TCP port (the OS picks; never a well-known service port). */
async function freeTcpPort() {
  return new Promise((res, rej) => {
    const server = createServer();
    server.once("error", rej);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => res(port));
    });
  });
}

/** A port free for UDP too (the site's SIP listens on UDP). */
async function freeUdpPort() {
  for (let tries = 0; tries < 20; tries++) {
    const port = await freeTcpPort();
    const ok = await new Promise((res) => {
      const socket = createSocket("udp4");
      socket.once("error", () => res(false));
      socket.bind(port, "127.0.0.1", () => socket.close(() => res(true)));
    });
    if (ok) return port;
  }
  fail("no free UDP port");
}

function hotsiteBin() {
  if (process.env.HOTSITE_BIN) return process.env.HOTSITE_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? join(repo, "target");
  return join(target, "debug", "hotsite");
}

// ---- the lab and the gateway ----------------------------------------------------------

async function startSites() {
  const bin = hotsiteBin();
  if (!existsSync(bin)) fail(`no hotsite binary at ${bin}: build it (cargo build -p hotsite) or set HOTSITE_BIN`);
  const dir = join(out, "run");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const control = await freeTcpPort();
  const smsc = {};
  for (const target of SMSCS) smsc[target] = await freeTcpPort();
  const api = await freeTcpPort();
  const sip = await freeUdpPort();

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
`,
  );
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
`,
  );
  const env = { ...process.env, HOTSITE_LOG: process.env.HOTSITE_LOG ?? "info" };
  const lab = start("lab", bin, ["lab", "--config", labToml], { env });
  await waitOutput(lab, /control API on/);
  const gateway = start("gateway", bin, ["run", "--config", siteToml], { env });
  await waitOutput(gateway, /API on http:\/\//);
  return { lab, gateway, siteToml, env, api: `http://127.0.0.1:${api}`, control: `http://127.0.0.1:${control}` };
}

async function apiGet(base, path) {
  const response = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  if (!response.ok) fail(`GET ${path}: HTTP ${response.status}`);
  return response.json();
}

/** Waits (bounded) until the site's `/v1/status` satisfies `done`. */
async function waitStatus(base, what, done, ms = 20_000) {
  const until = Date.now() + ms;
  let last = null;
  for (;;) {
    try {
      last = await apiGet(base, "/v1/status");
      if (done(last)) return last;
    } catch (error) {
      last = String(error);
    }
    if (Date.now() > until) fail(`${what}: not within ${ms} ms: ${JSON.stringify(last)}`);
    await sleep(100);
  }
}

/** Posts `n` messages (so the queue chart has something to show). */
async function postMessages(base, from, n) {
  const messages = [];
  for (let i = from; i < from + n; i++) messages.push({ id: `console-e2e-${i}`, to: `+4917${String(i).padStart(8, "0")}`, text: `console e2e #${i}` });
  const response = await fetch(`${base}/v1/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ messages }),
  });
  if (response.status !== 202) fail(`POST /v1/messages: HTTP ${response.status}: ${await response.text()}`);
}

// ---- the browser --------------------------------------------------------------------------

async function run() {
  if (!existsSync(chromium)) fail(`no Chromium at ${chromium}: apt-get install -y chromium (or set CHROMIUM)`);
  mkdirSync(out, { recursive: true });
  say(`artefacts in ${out}`);
  const sites = await startSites();
  say(`gateway ${sites.api}, lab control ${sites.control}`);
  await waitStatus(sites.api, "every bind in service", (s) => (s.binds ?? []).length === SMSCS.length && s.binds.every((b) => b.health === "Up"));
  await postMessages(sites.api, 0, 300);

  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    // Root in a container: Chromium's sandbox needs user namespaces.
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
    protocolTimeout: 30_000,
  });
  children.push({ name: "chromium", child: browser.process(), output: "", exited: null });
  const pageLog = [];
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 1000 });
    page.on("console", (m) => pageLog.push(`${stamp()} ${m.type()} ${m.text()}`));
    page.on("pageerror", (e) => pageLog.push(`${stamp()} pageerror ${e.message}`));
    const shot = async (name) => {
      const path = join(out, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      say(`screenshot ${path}`);
    };
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
    for (const target of SMSCS) {
      await waitFor(`bind ${target} in service`, async () => (await state(`bind-${target}`)) === "up", 10_000);
    }
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

    // More traffic after the kill: goes through the three binds left.
    await postMessages(sites.api, 300, 200);
    await sleep(2_500);
    await shot("4-after-traffic");

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
    await shot("5-gateway-down");
    const again = start("gateway-restarted", hotsiteBin(), ["run", "--config", sites.siteToml], { env: sites.env });
    await waitOutput(again, /API on http:\/\//);
    const restartedAt = Date.now();
    await waitFor("stream live again", async () => (await state("stream")) === "live", 15_000);
    await waitFor("the restarted gateway's events", () => page.$('[data-testid="timeline-entry"][data-epoch="1"]'), 15_000);
    for (const target of SMSCS.filter((t) => t !== KILLED_TARGET)) {
      await waitFor(`bind ${target} in service again`, async () => (await state(`bind-${target}`)) === "up", 15_000);
    }
    await waitFor("header live again", async () => (await state("live")) === "live", 5_000);
    say(`gateway restarted: the page was live again ${Date.now() - restartedAt} ms after its API came back`);
    await shot("6-gateway-restarted");

    const cspErrors = pageLog.filter((line) => /Content Security Policy|Refused to/i.test(line));
    if (cspErrors.length) fail(`the page broke its own CSP:\n${cspErrors.join("\n")}`);
    const exceptions = pageLog.filter((line) => / pageerror /.test(line));
    if (exceptions.length) fail(`the page threw:\n${exceptions.join("\n")}`);
    writeFileSync(join(out, "page-log.txt"), pageLog.join("\n") + "\n");
    writeFileSync(join(out, "latency.json"), JSON.stringify({ bind_down_ms: bindDownMs, timeline_entry_ms: entryMs, budget_ms: BUDGET_MS }) + "\n");
    say(`PASS: ${KILLED_TARGET} out of service after ${bindDownMs} ms, timeline entry after ${entryMs} ms (budget ${BUDGET_MS} ms)`);
  } catch (error) {
    writeFileSync(join(out, "page-log.txt"), pageLog.join("\n") + "\n");
    throw error;
  } finally {
    await browser.close().catch(() => {});
  }
}

const watchdog = setTimeout(() => {
  console.error(`[console-e2e] FAIL: not done within ${limitS} s`);
  killAll();
  process.exit(1);
}, limitS * 1000);

let code = 0;
try {
  await run();
} catch (error) {
  code = 1;
  console.error(`[console-e2e] FAIL: ${error.message}`);
  for (const entry of children) {
    if (entry.output) writeFileSync(join(out, `${entry.name.replace(/\W+/g, "-")}.log`), entry.output);
  }
  console.error(`[console-e2e] process logs in ${out}`);
} finally {
  killAll();
  clearTimeout(watchdog);
}
console.log(code === 0 ? "1 passed, 0 failed" : "0 passed, 1 failed");
process.exit(code);
