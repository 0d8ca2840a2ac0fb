// End-to-end test of the web agent desktop in headless Chromium (issue 13,
// SPEC D4, D7, D8): log in at site a, Ready, kill site a (SIGKILL by PID),
// the page shows the telephony warning, then the agent logged in at site b
// within site_timeout + 2 s. A screenshot of each state goes to
// target/desktop-e2e/.
//
//   node e2e.mjs          two `hotsite run` sites peered through the lab's
//                         link, the lab's phone registered at both (S8)
//   node e2e.mjs --mock   two mock sites (mock-site.mjs): the page alone
//
// Environment: CHROMIUM (default /usr/bin/chromium), HOTSITE_BIN (default
// $CARGO_TARGET_DIR or <repo>/target, then debug/hotsite), DESKTOP_E2E_OUT
// (default <repo>/target/desktop-e2e). Every process it starts is killed by
// PID on the way out; the whole run is bounded (DESKTOP_E2E_TIMEOUT_S, 180).

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { createSocket } from "node:dgram";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import puppeteer from "puppeteer-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../../../..");
const mock = process.argv.includes("--mock");
const chromium = process.env.CHROMIUM ?? "/usr/bin/chromium";
const out = resolve(process.env.DESKTOP_E2E_OUT ?? join(repo, "target", "desktop-e2e"), mock ? "mock" : "sites");
const limitS = Number(process.env.DESKTOP_E2E_TIMEOUT_S ?? 180);

// The page's options (query string): a short site timeout for the test (D4).
const SITE_TIMEOUT_MS = 3_000;
const PAGE_OPTIONS = `site_timeout_ms=${SITE_TIMEOUT_MS}&retry_delay_ms=1000&retry_jitter_ms=500`;
const USER = "alice";
const PASSWORD = "alice-pw";
const DN = "1001";
const PHONE_PASSWORD = "phone-secret-1";

const children = [];
const started = Date.now();
const stamp = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const say = (line) => console.log(`[e2e ${stamp()}] ${line}`);

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
    if (entry.exited === null && entry.child.pid) {
      try {
        process.kill(entry.child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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

/** A port free for both UDP and TCP on 127.0.0.1 (SIP listens on both). */
async function freeSipPort() {
  for (let tries = 0; tries < 20; tries++) {
    const port = await freeTcpPort();
    const ok = await new Promise((res) => {
      const socket = createSocket("udp4");
      socket.once("error", () => res(false));
      socket.bind(port, "127.0.0.1", () => socket.close(() => res(true)));
    });
    if (ok) return port;
  }
  fail("no free port for SIP");
}

// ---- the two sites ----------------------------------------------------------

/** Two mock sites: the page's logic alone. */
async function mockSites() {
  const [portA, portB] = [await freeTcpPort(), await freeTcpPort()];
  const a = start("mock site a", process.execPath, [join(here, "mock-site.mjs"), "a", String(portA), String(portB)]);
  const b = start("mock site b", process.execPath, [join(here, "mock-site.mjs"), "b", String(portB), String(portA)]);
  await waitOutput(a, /listening a/);
  await waitOutput(b, /listening b/);
  return { a, b, apiA: `http://127.0.0.1:${portA}`, apiB: `http://127.0.0.1:${portB}` };
}

function hotsiteBin() {
  if (process.env.HOTSITE_BIN) return process.env.HOTSITE_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? join(repo, "target");
  return join(target, "debug", "hotsite");
}

/** The site's configuration: peered through the link, alice on DN 1001. */
function siteConfig({ name, sip, peer, api, apis }) {
  return `[site]
name = "${name}"
listen = "127.0.0.1:${sip}"
dr_peer_trunk = "127.0.0.1:${peer}"
dr_forward = "oos"
oos_check = "200ms"
oos_force = "1s"
peer_rise = 2

[[site.dns]]
dn = "${DN}"
password = "${PHONE_PASSWORD}"

[[site.agents]]
id = "alice"

[api]
listen = "127.0.0.1:${api}"
tokens = ["desktop-e2e-token"]

[desktop]
applications = ["hotsite-web-desktop"]
sites = [{ name = "a", url = "ws://127.0.0.1:${apis.a}/v1/desktop" },
         { name = "b", url = "ws://127.0.0.1:${apis.b}/v1/desktop" }]

[[desktop.people]]
user = "${USER}"
password_hash = "${process.env.DESKTOP_E2E_HASH ?? ""}"
agent = "alice"
dn = "${DN}"
preferred_site = "a"
secondary_site = "b"
`;
}

async function api(base, path) {
  const response = await fetch(`${base}${path}`, { headers: { authorization: "Bearer desktop-e2e-token" } });
  return response.json();
}

/** Waits (bounded) until site `base`'s `/v1/site` satisfies `done`. */
async function waitSite(base, what, done, ms = 20_000) {
  const until = Date.now() + ms;
  let last = null;
  for (;;) {
    try {
      last = await api(base, "/v1/site");
      if (done(last)) return last;
    } catch (error) {
      last = String(error);
    }
    if (Date.now() > until) fail(`${what}: not within ${ms} ms: ${JSON.stringify(last)}`);
    await sleep(100);
  }
}

/** Two `hotsite run` sites, the lab's link between them, the phone at both. */
async function realSites() {
  const bin = hotsiteBin();
  if (!existsSync(bin)) fail(`no hotsite binary at ${bin}: build it (cargo build -p hotsite) or set HOTSITE_BIN`);
  const dir = join(out, "run");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const sip = { a: await freeSipPort(), b: await freeSipPort() };
  const link = { a: await freeSipPort(), b: await freeSipPort() };
  const apis = { a: await freeTcpPort(), b: await freeTcpPort() };

  // The password hash (Argon2id PHC string) from the binary itself: the
  // config never holds the password.
  if (!process.env.DESKTOP_E2E_HASH) {
    const hash = start("hash-password", bin, ["desktop", "hash-password"], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    hash.child.stdin.end(`${PASSWORD}\n`);
    const match = await waitOutput(hash, /\$argon2id\$\S+/);
    process.env.DESKTOP_E2E_HASH = match[0];
  }

  // The lab: the inter-site link relay (S4) and alice's phone registered at
  // both sites (dual registration, S8).
  const labToml = join(dir, "lab.toml");
  writeFileSync(
    labToml,
    `[[lab.links]]
name = "ab"
a_listen = "127.0.0.1:${link.a}"
a_target = "127.0.0.1:${sip.a}"
b_listen = "127.0.0.1:${link.b}"
b_target = "127.0.0.1:${sip.b}"

[[lab.phones]]
dn = "${DN}"
password = "${PHONE_PASSWORD}"
domain = "hotsite"
registrars = ["127.0.0.1:${sip.a}", "127.0.0.1:${sip.b}"]
expires_s = 30
`,
  );
  const env = { ...process.env, HOTSITE_LOG: process.env.HOTSITE_LOG ?? "info" };
  const sites = {};
  for (const [name, peer] of [
    ["a", link.a],
    ["b", link.b],
  ]) {
    const path = join(dir, `${name}.toml`);
    writeFileSync(path, siteConfig({ name, sip: sip[name], peer, api: apis[name], apis }));
    sites[name] = start(`site ${name}`, bin, ["run", "--config", path], { env });
  }
  for (const name of ["a", "b"]) await waitOutput(sites[name], /API on http:\/\//);
  const lab = start("lab", bin, ["lab", "--config", labToml], { env });
  await waitOutput(lab, /control API on/);
  const apiA = `http://127.0.0.1:${apis.a}`;
  const apiB = `http://127.0.0.1:${apis.b}`;
  for (const [name, base] of [
    ["a", apiA],
    ["b", apiB],
  ]) {
    await waitSite(base, `site ${name} peered`, (s) => s.mode === "peered");
    await waitSite(base, `DN ${DN} in service at ${name}`, dnInService);
  }
  return { a: sites.a, b: sites.b, apiA, apiB, lab };
}

function dnInService(site) {
  const dns = site.dns ?? [];
  return dns.some((d) => d.dn === DN && d.in_service === true);
}

// ---- the browser --------------------------------------------------------------

async function run() {
  if (!existsSync(chromium)) fail(`no Chromium at ${chromium}: apt-get install -y chromium (or set CHROMIUM)`);
  mkdirSync(out, { recursive: true });
  say(`${mock ? "mock" : "hotsite"} sites; artefacts in ${out}`);
  const sites = mock ? await mockSites() : await realSites();
  say(`site a ${sites.apiA}, site b ${sites.apiB}`);

  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    // Root in a container: Chromium's sandbox needs user namespaces.
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
    protocolTimeout: 30_000,
  });
  children.push({ name: "chromium", child: browser.process(), output: "", exited: null });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1000, height: 900 });
    const console_ = [];
    page.on("console", (m) => console_.push(`${stamp()} ${m.type()} ${m.text()}`));
    page.on("pageerror", (e) => console_.push(`${stamp()} pageerror ${e.message}`));
    const shot = async (name) => {
      const path = join(out, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      say(`screenshot ${path}`);
    };
    const read = (id) => page.$eval(`[data-testid="${id}"]`, (e) => e.textContent.trim());
    const waitText = async (what, id, test, ms) => {
      const until = Date.now() + ms;
      for (;;) {
        const value = await read(id);
        if (test(value)) return value;
        if (Date.now() > until) {
          await shot(`failed-${what.replace(/\W+/g, "-")}`);
          fail(`${what}: [data-testid=${id}] is ${JSON.stringify(value)} after ${ms} ms\npage log:\n${console_.join("\n")}`);
        }
        await sleep(50);
      }
    };

    try {
      await page.goto(`${sites.apiA}/desktop/?${PAGE_OPTIONS}`, { waitUntil: "load", timeout: 15_000 });
      await page.waitForSelector('[data-testid="login-form"]', { visible: true, timeout: 10_000 });
      await shot("1-sign-in");
      await page.type('[data-testid="user"]', USER);
      await page.type('[data-testid="password"]', PASSWORD);
      await page.click('[data-testid="sign-in"]');

      await waitText("at site a", "site", (v) => v === "a", 10_000);
      await waitText("logged in at a", "agent-state", (v) => v === "not_ready", 10_000);
      await page.click('[data-testid="ready"]');
      await waitText("ready at a", "agent-state", (v) => v === "ready", 5_000);
      for (const listener of ["telephony", "configuration", "statistics"]) {
        await waitText(`${listener} ON`, `listener-${listener}`, (v) => v === "ON", 5_000);
      }
      await waitText("DN in service", "dn-state", (v) => v.includes("in service") && !v.includes("out of"), 5_000);
      await waitText("stats line", "stats", (v) => v.includes("ready"), 5_000);
      await shot("2-ready-at-a");
      // The password is nowhere in storage (memory only).
      const stored = await page.evaluate(() => JSON.stringify({ ...localStorage, ...sessionStorage }));
      if (stored.includes(PASSWORD)) fail(`the password is in storage: ${stored}`);

      // Kill site a, hard.
      const killedAt = Date.now();
      process.kill(sites.a.child.pid, "SIGKILL");
      say(`site a (pid ${sites.a.child.pid}) killed`);

      await waitText("telephony warning", "warnings", (v) => v.includes("telephony"), 3_000);
      await waitText("telephony OFF", "listener-telephony", (v) => v === "OFF", 1_000);
      say(`warning shown after ${Date.now() - killedAt} ms`);
      await shot("3-telephony-warning");

      const budget = SITE_TIMEOUT_MS + 2_000;
      await waitText("at site b", "site", (v) => v === "b", budget - (Date.now() - killedAt));
      await waitText(
        "logged in at b",
        "agent-state",
        (v) => ["not_ready", "ready"].includes(v),
        Math.max(0, budget - (Date.now() - killedAt)),
      );
      const took = Date.now() - killedAt;
      if (took > budget) fail(`logged in at b after ${took} ms, above site_timeout + 2 s = ${budget} ms`);
      say(`logged in at site b ${took} ms after the kill (budget ${budget} ms)`);
      const decisions = await read("decisions");
      for (const reason of ["telephony_off", "telephony_off_timeout"]) {
        if (!decisions.includes(reason)) fail(`the decisions list lacks ${reason}: ${decisions}`);
      }
      await shot("4-logged-in-at-b");
      if (!mock) {
        // The site agrees: alice is logged in at b (the page is not lying).
        const agents = await api(sites.apiB, "/v1/agents");
        const alice = (agents.agents ?? []).find((agent) => agent.id === "alice");
        if (!alice || alice.state === "logged_out") fail(`site b does not have alice logged in: ${JSON.stringify(agents)}`);
        say(`site b: alice ${alice.state} on DN ${alice.dn}`);
      }
      // The same page: no reload (D8).
      const navigations = await page.evaluate(() => performance.getEntriesByType("navigation").length);
      if (navigations !== 1) fail(`the page navigated ${navigations} times`);
      writeFileSync(join(out, "page-log.txt"), console_.join("\n") + "\n");
      say(`PASS: warning, then logged in at b in ${took} ms`);
    } catch (error) {
      writeFileSync(join(out, "page-log.txt"), console_.join("\n") + "\n");
      throw error;
    }
  } finally {
    await browser.close().catch(() => {});
  }
}

const watchdog = setTimeout(() => {
  console.error(`[e2e] FAIL: not done within ${limitS} s`);
  killAll();
  process.exit(1);
}, limitS * 1000);

let code = 0;
try {
  await run();
} catch (error) {
  code = 1;
  console.error(`[e2e] FAIL: ${error.message}`);
  for (const entry of children) {
    if (entry.output) writeFileSync(join(out, `${entry.name.replace(/\W+/g, "-")}.log`), entry.output);
  }
  console.error(`[e2e] process logs in ${out}`);
} finally {
  killAll();
  clearTimeout(watchdog);
}
console.log(code === 0 ? "1 passed, 0 failed" : "0 passed, 1 failed");
process.exit(code);
