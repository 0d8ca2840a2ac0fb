// The harness of the headless-Chromium end-to-end scripts: the web agent
// desktop's (crates/desktop/web/e2e/e2e.mjs, scripts/desktop-e2e) and the
// operator console's (crates/host/console/e2e/console.mjs,
// scripts/console-e2e). Both start `hotsite` processes on free loopback ports,
// wait for their output, drive a page and must leave nothing running: that
// machinery lives here once, so a fix to it (a port check, the kill on the
// way out, the overall bound) reaches both. Each script keeps its own test
// steps, assertions, timeouts and artefact folder.
//
// Node built-ins only. puppeteer-core is installed in each e2e folder (its
// own `npm ci`), so this module never imports it: the scripts pass their
// puppeteer module, page or browser in.

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { createSocket } from "node:dgram";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The workspace's root (this file is `tests/e2e/harness.mjs`). */
export const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Debian's chromium unless `CHROMIUM` says otherwise. */
export const chromium = process.env.CHROMIUM ?? "/usr/bin/chromium";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function fail(message) {
  throw new Error(message);
}

/** Fails at once, with what to do, when there is no Chromium to drive. */
export function needChromium() {
  if (!existsSync(chromium)) fail(`no Chromium at ${chromium}: apt-get install -y chromium (or set CHROMIUM)`);
}

/** The hotsite binary: `HOTSITE_BIN`, else `$CARGO_TARGET_DIR` (or <repo>/target)/debug/hotsite; fails when it is not there. */
export function hotsiteBin() {
  const bin = process.env.HOTSITE_BIN || join(process.env.CARGO_TARGET_DIR ?? join(repo, "target"), "debug", "hotsite");
  if (!existsSync(bin)) fail(`no hotsite binary at ${bin}: build it (cargo build -p hotsite) or set HOTSITE_BIN`);
  return bin;
}

/** The environment of the hotsite processes: this one's, with `HOTSITE_LOG` at info unless set. */
export const hotsiteEnv = () => ({ ...process.env, HOTSITE_LOG: process.env.HOTSITE_LOG ?? "info" });

/** `dir`, emptied of an earlier run's files (configs, stores), then made. */
export function freshDir(dir) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A free loopback TCP port (the OS picks; never a well-known service port). */
export async function freeTcpPort() {
  return new Promise((res, rej) => {
    const server = createServer();
    server.once("error", rej);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => res(port));
    });
  });
}

/** A loopback port free for UDP and TCP both (a site's SIP listens on both); `none` is the failure's message. */
export async function freeUdpPort(none = "no free UDP port") {
  for (let tries = 0; tries < 20; tries++) {
    const port = await freeTcpPort();
    const ok = await new Promise((res) => {
      const socket = createSocket("udp4");
      socket.once("error", () => res(false));
      socket.bind(port, "127.0.0.1", () => socket.close(() => res(true)));
    });
    if (ok) return port;
  }
  fail(none);
}

/** Waits (bounded) until `entry` (from `start`) printed a line matching `pattern`. */
export async function waitOutput(entry, pattern, ms = 30_000) {
  const until = Date.now() + ms;
  for (;;) {
    const match = entry.output.match(pattern);
    if (match) return match;
    if (entry.exited !== null) fail(`${entry.name} exited (${entry.exited}) before printing ${pattern}:\n${entry.output}`);
    if (Date.now() > until) fail(`${entry.name} printed no ${pattern} within ${ms} ms:\n${entry.output}`);
    await sleep(50);
  }
}

/**
 * Waits (bounded) until `get()` gives a value `done` accepts, polling every
 * 100 ms; a throw counts as not yet. Fails with `what` and the last value.
 */
export async function waitFetched(what, get, done, ms = 20_000) {
  const until = Date.now() + ms;
  let last = null;
  for (;;) {
    try {
      last = await get();
      if (done(last)) return last;
    } catch (error) {
      last = String(error);
    }
    if (Date.now() > until) fail(`${what}: not within ${ms} ms: ${JSON.stringify(last)}`);
    await sleep(100);
  }
}

/** Writes the page's log (see `keepPageLog`) to `out`/page-log.txt. */
export function writePageLog(out, lines) {
  writeFileSync(join(out, "page-log.txt"), lines.join("\n") + "\n");
}

/**
 * One e2e run: its clock and log lines (`[tag 1.2s] …`), the processes it
 * started (killed by PID on the way out), and `main`, which bounds the run.
 */
export function e2eRun(tag) {
  const children = [];
  const started = Date.now();
  const stamp = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
  const say = (line) => console.log(`[${tag} ${stamp()}] ${line}`);

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

  /** Headless Chromium through the script's `puppeteer`; its PID joins the ones killed on the way out. */
  async function launchChromium(puppeteer) {
    const browser = await puppeteer.launch({
      executablePath: chromium,
      headless: true,
      // Root in a container: Chromium's sandbox needs user namespaces.
      args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
      protocolTimeout: 30_000,
    });
    children.push({ name: "chromium", child: browser.process(), output: "", exited: null });
    return browser;
  }

  /** Keeps the page's console lines and uncaught errors, stamped, in `lines` as they come. */
  function keepPageLog(page, lines = []) {
    page.on("console", (m) => lines.push(`${stamp()} ${m.type()} ${m.text()}`));
    page.on("pageerror", (e) => lines.push(`${stamp()} pageerror ${e.message}`));
    return lines;
  }

  /** `shot(name)`: a full-page screenshot of `page` to `out`/name.png. */
  function screenshots(page, out) {
    return async (name) => {
      const path = join(out, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      say(`screenshot ${path}`);
    };
  }

  /**
   * Runs `run` within `limitS` seconds, then exits: `1 passed, 0 failed`, or
   * the failure, with every process's output in `out`/<name>.log. Every
   * process started is killed by PID on each way out, the timeout's too.
   */
  async function main(run, { out, limitS }) {
    const watchdog = setTimeout(() => {
      console.error(`[${tag}] FAIL: not done within ${limitS} s`);
      killAll();
      process.exit(1);
    }, limitS * 1000);

    let code = 0;
    try {
      await run();
    } catch (error) {
      code = 1;
      console.error(`[${tag}] FAIL: ${error.message}`);
      for (const entry of children) {
        if (entry.output) writeFileSync(join(out, `${entry.name.replace(/\W+/g, "-")}.log`), entry.output);
      }
      console.error(`[${tag}] process logs in ${out}`);
    } finally {
      killAll();
      clearTimeout(watchdog);
    }
    console.log(code === 0 ? "1 passed, 0 failed" : "0 passed, 1 failed");
    process.exit(code);
  }

  return { stamp, say, start, launchChromium, keepPageLog, screenshots, main };
}
