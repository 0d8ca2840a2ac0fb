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
// Processes, ports, the bound and the screenshots: the harness shared with
// the operator console's e2e (tests/e2e/harness.mjs).

import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

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

const here = dirname(fileURLToPath(import.meta.url));
const mock = process.argv.includes("--mock");
const out = resolve(process.env.DESKTOP_E2E_OUT ?? join(repo, "target", "desktop-e2e"), mock ? "mock" : "sites");
const limitS = Number(process.env.DESKTOP_E2E_TIMEOUT_S ?? 180);

// The page's options (query string): a short site timeout for the test (D4).
const SITE_TIMEOUT_MS = 3_000;
const PAGE_OPTIONS = `site_timeout_ms=${SITE_TIMEOUT_MS}&retry_delay_ms=1000&retry_jitter_ms=500`;
const USER = "alice";
const PASSWORD = "alice-pw";
const DN = "1001";
const PHONE_PASSWORD = "phone-secret-1";

const { say, start, launchChromium, keepPageLog, screenshots, main } = e2eRun("e2e");

/** A port free for both UDP and TCP on 127.0.0.1 (SIP listens on both). */
const freeSipPort = () => freeUdpPort("no free port for SIP");

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
const waitSite = (base, what, done) => waitFetched(what, () => api(base, "/v1/site"), done);

/** Two `hotsite run` sites, the lab's link between them, the phone at both. */
async function realSites() {
  const bin = hotsiteBin();
  const dir = freshDir(join(out, "run"));
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
  const env = hotsiteEnv();
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
  needChromium();
  mkdirSync(out, { recursive: true });
  say(`${mock ? "mock" : "hotsite"} sites; artefacts in ${out}`);
  const sites = mock ? await mockSites() : await realSites();
  say(`site a ${sites.apiA}, site b ${sites.apiB}`);

  const browser = await launchChromium(puppeteer);
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1000, height: 900 });
    const console_ = keepPageLog(page);
    const shot = screenshots(page, out);
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
      writePageLog(out, console_);
      say(`PASS: warning, then logged in at b in ${took} ms`);
    } catch (error) {
      writePageLog(out, console_);
      throw error;
    }
  } finally {
    await browser.close().catch(() => {});
  }
}

await main(run, { out, limitS });
