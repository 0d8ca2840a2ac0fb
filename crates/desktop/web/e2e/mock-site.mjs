// A tiny stand-in for one site's desktop service (PROTOCOL.md), for checking
// the web page without the Rust sites: serves ../ at /desktop/ and the
// protocol at /v1/desktop. Used by `node e2e.mjs --mock` only; the real
// end-to-end test runs against `hotsite run` sites.
//
// node mock-site.mjs NAME PORT PEER_PORT   (prints "listening NAME PORT")

import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { dirname, extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { WebSocketServer } from "ws";

const [name, port, peerPort] = process.argv.slice(2);
const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const FILES = new Set(["index.html", "desktop.js", "desktop.css", "switchover.js"]);
const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css" };
const USER = { user: "alice", password: "alice-pw", agent: "alice", dn: "1001" };
const names = name === "a" ? ["a", "b"] : ["b", "a"];
const ports = name === "a" ? [port, peerPort] : [peerPort, port];

const server = createServer(async (req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  if (path === "/desktop") {
    res.writeHead(308, { location: "/desktop/" }).end();
    return;
  }
  const file = path === "/desktop/" ? "index.html" : path.replace(/^\/desktop\//, "");
  if (!path.startsWith("/desktop/") || !FILES.has(normalize(file))) {
    res.writeHead(404).end("not found");
    return;
  }
  res.writeHead(200, { "content-type": TYPES[extname(file)] });
  res.end(await readFile(join(web, file)));
});

const agent = { id: USER.agent, dn: null, state: "logged_out" };
const wss = new WebSocketServer({ server, path: "/v1/desktop", maxPayload: 16 * 1024 });
wss.on("connection", (ws, req) => {
  const host = req.headers.host.split(":")[0];
  let hello = false;
  const send = (m) => ws.send(JSON.stringify(m));
  const stats = setInterval(() => {
    if (hello) {
      const ready = agent.state === "ready" ? 1 : 0;
      send({ type: "stats", agents_logged_in: agent.dn ? 1 : 0, agents_ready: ready, calls_waiting: 0, calls_active: 0 });
    }
  }, 1000);
  ws.on("close", () => clearInterval(stats));
  ws.on("message", (data) => {
    let m;
    try {
      m = JSON.parse(data);
    } catch {
      send({ type: "error", code: "bad_request", message: "bad JSON" });
      return;
    }
    const result = (fields = {}) => send({ type: "result", id: m.id, ...fields });
    const error = (code, message) => send({ type: "error", id: m.id, code, message });
    if (!hello && m.type !== "hello") return error("hello_expected", "hello first");
    switch (m.type) {
      case "hello":
        if (m.application !== "hotsite-web-desktop") return error("unknown_application", "unknown application");
        if (m.user !== USER.user || m.password !== USER.password) return error("bad_credentials", "bad credentials");
        hello = true;
        return result({
          protocol: 1,
          site: name,
          person: { user: USER.user, agent: USER.agent, dn: USER.dn, preferred_site: "a", secondary_site: "b" },
          sites: names.map((n, i) => ({ name: n, url: `ws://${host}:${ports[i]}/v1/desktop` })).sort((x, y) => (x.name === name ? -1 : y.name === name ? 1 : 0)),
          services: { configuration: "on", telephony: "on", statistics: "on" },
          agent,
          dn: { dn: USER.dn, in_service: true },
        });
      case "login":
        if (agent.dn) return error("already_logged_in", "already logged in");
        Object.assign(agent, { dn: USER.dn, state: "not_ready" });
        send({ type: "agent", agent, cause: "login" });
        return result({ agent });
      case "ready":
      case "not_ready":
        if (!agent.dn) return error("not_logged_in", "not logged in");
        agent.state = m.type;
        send({ type: "agent", agent, cause: m.type });
        return result({ agent });
      case "logout":
        if (!agent.dn) return error("not_logged_in", "not logged in");
        Object.assign(agent, { dn: null, state: "logged_out" });
        send({ type: "logged_out", agent, reason: "manual" });
        return result({ agent });
      case "ping":
        return result();
      case "decisions":
        return result({ accepted: (m.decisions ?? []).length });
      default:
        return error("bad_request", `unknown type ${m.type}`);
    }
  });
});
server.listen(Number(port), "127.0.0.1", () => console.log(`listening ${name} ${server.address().port}`));
