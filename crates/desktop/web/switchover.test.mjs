// The shared transcripts through the JavaScript twin, with the same rules as
// the Rust runner (crates/desktop/tests/it/transcripts.rs).
// Run: node --test crates/desktop/web/

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import {
  INPUT_KINDS,
  REASONS,
  ShapeError,
  SplitMix64,
  Switchover,
  parseInput,
  parseOptions,
} from "./switchover.js";

const here = dirname(fileURLToPath(import.meta.url));
const transcriptDir = join(here, "..", "transcripts");
const SPEC_IDS = ["D1", "D2", "D3", "D4", "D5", "D6", "D7", "D8"];

function checkKeys(what, object, required, optional) {
  for (const key of Object.keys(object)) {
    if (!required.includes(key) && !optional.includes(key)) {
      throw new ShapeError(`${what}: unknown field \`${key}\``);
    }
  }
  for (const key of required) {
    if (!(key in object)) throw new ShapeError(`${what}: missing field \`${key}\``);
  }
}

/** A transcript checked as strictly as serde checks it on the Rust side. */
function parseTranscript(text) {
  const json = JSON.parse(text);
  checkKeys("transcript", json, ["name", "spec", "options", "seed", "steps"], ["description"]);
  if (!Array.isArray(json.spec) || json.spec.length === 0) {
    throw new ShapeError("spec: lists no SPEC item");
  }
  for (const id of json.spec) {
    if (!SPEC_IDS.includes(id)) throw new ShapeError(`spec: ${JSON.stringify(id)} is not one of D1..D8`);
  }
  if (!Number.isSafeInteger(json.seed) || json.seed < 0) throw new ShapeError("seed: expected a safe integer");
  const options = parseOptions(json.options);
  const steps = json.steps.map((step, index) => {
    checkKeys(`step ${index}`, step, ["at", "expect"], ["input", "timeout", "late", "error", "note"]);
    if (!Number.isSafeInteger(step.at) || step.at < 0) throw new ShapeError(`step ${index}: at must be a safe integer`);
    if (!Array.isArray(step.expect)) throw new ShapeError(`step ${index}: expect must be a list`);
    const timeout = step.timeout === true;
    // As serde reads it: a null input is no input.
    const hasInput = step.input !== undefined && step.input !== null;
    if (hasInput === timeout) {
      throw new ShapeError(`step ${index}: needs exactly one of "input" and "timeout": true`);
    }
    if ("late" in step && (step.late !== true || !timeout)) {
      throw new ShapeError(`step ${index}: only a timeout step can be late`);
    }
    if ("error" in step && step.expect.length > 0) {
      throw new ShapeError(`step ${index}: an error step expects no output`);
    }
    return {
      at: step.at,
      input: timeout ? null : parseInput(step.input),
      late: step.late === true,
      expect: step.expect,
      error: step.error ?? null,
    };
  });
  return { name: json.name, spec: json.spec, options, seed: json.seed, steps };
}

/** Runs one transcript; returns the reason codes it produced. */
function run(file, transcript) {
  const reasons = new Set();
  const machine = new Switchover(transcript.options, transcript.seed);
  let lastAt = 0;
  transcript.steps.forEach((step, index) => {
    const place = `${file}: step ${index} (at ${step.at})`;
    assert.ok(step.at >= lastAt, `${place}: time goes back from ${lastAt}`);
    lastAt = step.at;
    const deadline = machine.pollTimeout();
    let gotError = null;
    if (step.input !== null) {
      assert.ok(
        deadline === null || deadline >= step.at,
        `${place}: skips the deadline at ${deadline}: add a timeout step before it`,
      );
      try {
        machine.handleInput(step.at, step.input);
      } catch (error) {
        if (error.code === undefined || error instanceof ShapeError) throw error;
        gotError = error.code;
      }
    } else {
      assert.ok(
        deadline !== null && (deadline === step.at || (step.late && deadline < step.at)),
        `${place}: timeout step, but the next deadline is ${deadline}`,
      );
      machine.handleTimeout(step.at);
      const next = machine.pollTimeout();
      assert.ok(next === null || next > step.at, `${place}: after handleTimeout the next deadline is ${next}: busy loop`);
    }
    const got = [];
    for (let output; (output = machine.pollOutput()) !== null; ) {
      reasons.add(output.reason);
      got.push(output);
    }
    assert.equal(gotError, step.error, `${place}: expected error ${step.error}, got ${gotError}`);
    assert.deepStrictEqual(got, step.expect, `${place}: outputs differ`);
  });
  return reasons;
}

const files = readdirSync(transcriptDir)
  .filter((file) => file.endsWith(".json"))
  .sort();

test("there are transcripts", () => {
  assert.ok(files.length >= 15, `only ${files.length} transcripts`);
});

const seenReasons = new Set();
const seenSpec = new Set();
const seenNames = new Set();

for (const file of files) {
  test(`transcript ${file}`, () => {
    const transcript = parseTranscript(readFileSync(join(transcriptDir, file), "utf8"));
    assert.ok(!seenNames.has(transcript.name), `${file}: name ${transcript.name} used twice`);
    seenNames.add(transcript.name);
    transcript.spec.forEach((id) => seenSpec.add(id));
    run(file, transcript).forEach((reason) => seenReasons.add(reason));
  });
}

test("every reason and every SPEC item is covered by a transcript", () => {
  const missing = Object.keys(REASONS).filter((reason) => !seenReasons.has(reason));
  assert.deepStrictEqual(missing, [], "no transcript shows these reasons");
  for (const id of SPEC_IDS) assert.ok(seenSpec.has(id), `no transcript covers ${id}`);
});

test("an unknown input kind or field is refused", () => {
  assert.throws(() => parseInput({ kind: "site_exploded" }), /unknown variant `site_exploded`/);
  assert.throws(() => parseInput({ kind: "start", site: "a", hot_seat: true }), /unknown field `hot_seat`/);
  assert.throws(() => parseInput({ kind: "config_failed" }), /missing field `site`/);
  assert.throws(() => parseInput({ kind: "listener_off", listener: "phone" }), /unknown variant `phone`/);
  assert.throws(
    () => parseInput({ kind: "agent_logged_out", reason: "dr_force_logout" }),
    /unknown variant `dr_force_logout`/,
  );
  assert.deepStrictEqual(parseInput({ kind: "start", site: "a" }), {
    kind: "start",
    site: "a",
    cached_preferred_site: null,
    hot_seating: false,
  });
  assert.equal(INPUT_KINDS.length, 11);
  const text = JSON.stringify({
    name: "x",
    spec: ["D1"],
    options: { sites: ["a", "b"] },
    seed: 1,
    steps: [{ at: 0, input: { kind: "site_exploded" }, expect: [] }],
  });
  assert.throws(() => parseTranscript(text), /unknown variant `site_exploded`/);
  assert.throws(() => parseTranscript(text.replace('"expect":[]', '"expected":[]')), /unknown field `expected`/);
});

test("a transcript that skips a deadline is refused", () => {
  const transcript = parseTranscript(
    JSON.stringify({
      name: "x",
      spec: ["D1"],
      options: { sites: ["a", "b"], retry_jitter_ms: 0 },
      seed: 1,
      steps: [
        { at: 0, input: { kind: "start", site: "a" }, expect: [{ kind: "connect", site: "a", reason: "startup" }] },
        {
          at: 1,
          input: { kind: "config_failed", site: "a" },
          expect: [{ kind: "connect", site: "b", reason: "config_unreachable_try_other" }],
        },
        {
          at: 2,
          input: { kind: "config_failed", site: "b" },
          expect: [{ kind: "wait", until: 2002, reason: "config_unreachable_retry" }],
        },
        { at: 3000, input: { kind: "config_connected", site: "a" }, expect: [] },
      ],
    }),
  );
  assert.throws(() => run("x.json", transcript), /step 3 \(at 3000\): skips the deadline at 2002/);
});

test("shared invalid-options cases give the Rust codes", () => {
  const cases = JSON.parse(readFileSync(join(transcriptDir, "options", "invalid.json"), "utf8"));
  assert.ok(cases.length >= 5);
  for (const { note, options, error } of cases) {
    assert.throws(() => parseOptions(options), (thrown) => thrown.code === error, note);
  }
  assert.throws(() => parseOptions({ sites: ["a", "b"], site_timeout: 5 }), /unknown field `site_timeout`/);
});

test("input errors have the Rust codes and change nothing", () => {
  const machine = new Switchover(parseOptions({ sites: ["a", "b"] }), 1);
  assert.throws(() => machine.handleInput(0, parseInput({ kind: "start", site: "c" })), { code: "unknown_site" });
  assert.equal(machine.site(), null);
  assert.equal(machine.pollOutput(), null);
  machine.handleInput(0, parseInput({ kind: "start", site: "b" }));
  assert.throws(() => machine.handleInput(1, parseInput({ kind: "listener_off", listener: "dn" })), {
    code: "dn_is_not_a_listener",
  });
  assert.deepStrictEqual(machine.pollOutput(), { kind: "connect", site: "b", reason: "startup" });
  assert.equal(machine.pollOutput(), null);
});

test("generator matches the SplitMix64 reference values", () => {
  // The same numbers as the Rust unit test, from an independent Python SplitMix64.
  const rng = new SplitMix64(7);
  assert.equal(rng.nextU64(), 7191089600892374487n);
  assert.equal(rng.nextU64(), 309689372594955804n);
  assert.equal(rng.nextU64(), 16616101746815609346n);
  const draws = new SplitMix64(7);
  assert.deepStrictEqual(
    Array.from({ length: 6 }, () => draws.belowOrEqual(1000)),
    [390, 16, 901, 583, 452, 249],
  );
});
