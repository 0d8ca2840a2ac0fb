//! Runs every shared transcript (`transcripts/*.json`) through the machine.
//! `web/switchover.test.mjs` runs the same files through the JavaScript twin
//! with the same rules, so the two cannot drift.
//!
//! A transcript is `{name, spec, description?, options, seed, steps}`; a step
//! is `{at, input, expect}` or `{at, timeout: true, expect}`, with an optional
//! `note`, and `error` (an input error code) in place of outputs. `expect` is
//! the exact list of decisions the step produces. The runner also holds the
//! transcript to what a real driver would do: time never goes back, no step
//! passes over a deadline that was due before it, a timeout step is at the
//! machine's next deadline exactly (after it with `late: true`, a slow
//! driver), and after it the next deadline is later. So every deadline,
//! jittered ones included, is pinned by the transcript.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hotsite_desktop::{Input, Millis, Options, Reason, Switchover};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Transcript {
    name: String,
    spec: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)] // For readers of the file.
    description: String,
    options: Options,
    seed: u64,
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    at: Millis,
    #[serde(default)]
    input: Option<Input>,
    #[serde(default)]
    timeout: bool,
    #[serde(default)]
    late: bool,
    expect: Vec<Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    #[allow(dead_code)] // For readers of the file.
    note: String,
}

fn transcript_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("transcripts")
}

fn transcript_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(transcript_dir())
        .expect("transcripts/ exists")
        .map(|entry| entry.expect("readable directory").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Result<Transcript, String> {
    let text = std::fs::read_to_string(path).map_err(|error| error.to_string())?;
    parse(&text)
}

fn parse(text: &str) -> Result<Transcript, String> {
    let transcript: Transcript = serde_json::from_str(text).map_err(|error| error.to_string())?;
    if transcript.spec.is_empty() {
        return Err("spec: lists no SPEC item".to_owned());
    }
    for id in &transcript.spec {
        if !["D1", "D2", "D3", "D4", "D5", "D6", "D7", "D8"].contains(&id.as_str()) {
            return Err(format!("spec: {id:?} is not one of D1..D8"));
        }
    }
    for (index, step) in transcript.steps.iter().enumerate() {
        if step.input.is_some() == step.timeout {
            return Err(format!(
                "step {index}: needs exactly one of \"input\" and \"timeout\": true"
            ));
        }
        if step.late && !step.timeout {
            return Err(format!("step {index}: only a timeout step can be late"));
        }
        if step.error.is_some() && !step.expect.is_empty() {
            return Err(format!("step {index}: an error step expects no output"));
        }
    }
    Ok(transcript)
}

/// Runs one transcript; the error says where and how it went wrong.
fn run(file: &str, transcript: Transcript) -> Result<BTreeSet<String>, String> {
    let mut reasons = BTreeSet::new();
    let mut machine = Switchover::new(transcript.options, transcript.seed)
        .map_err(|error| format!("{file}: options: {error}"))?;
    let mut last_at = 0;
    for (index, step) in transcript.steps.into_iter().enumerate() {
        let at = step.at;
        let place = format!("{file}: step {index} (at {at})");
        if at < last_at {
            return Err(format!("{place}: time goes back from {last_at}"));
        }
        last_at = at;
        let deadline = machine.poll_timeout();
        let result = match step.input {
            Some(input) => {
                if let Some(deadline) = deadline.filter(|deadline| *deadline < at) {
                    return Err(format!(
                        "{place}: skips the deadline at {deadline}: add a timeout step before it"
                    ));
                }
                machine.handle_input(at, input.clone())
            }
            None => {
                match deadline {
                    Some(deadline) if deadline == at || (step.late && deadline < at) => {}
                    _ => {
                        return Err(format!(
                            "{place}: timeout step, but the next deadline is {deadline:?}"
                        ))
                    }
                }
                machine.handle_timeout(at);
                if let Some(next) = machine.poll_timeout().filter(|next| *next <= at) {
                    return Err(format!(
                        "{place}: after handle_timeout the next deadline is {next}: busy loop"
                    ));
                }
                Ok(())
            }
        };
        let mut got = Vec::new();
        while let Some(output) = machine.poll_output() {
            reasons.insert(output.reason().as_str().to_owned());
            got.push(serde_json::to_value(output).expect("outputs serialize"));
        }
        let got_error = result.err().map(|error| error.code().to_owned());
        if got_error != step.error {
            return Err(format!(
                "{place}: expected error {:?}, got {got_error:?}",
                step.error
            ));
        }
        if got != step.expect {
            return Err(format!(
                "{place}: outputs differ\n  expected: {}\n  got:      {}",
                pretty(&step.expect),
                pretty(&got)
            ));
        }
    }
    Ok(reasons)
}

fn pretty(outputs: &[Value]) -> String {
    if outputs.is_empty() {
        return "[]".to_owned();
    }
    let lines: Vec<String> = outputs.iter().map(Value::to_string).collect();
    format!("[\n    {}\n  ]", lines.join(",\n    "))
}

#[test]
fn every_transcript_passes() {
    let files = transcript_files();
    assert!(files.len() >= 15, "only {} transcripts", files.len());
    let mut failures = Vec::new();
    let mut names = BTreeSet::new();
    let mut reasons = BTreeSet::new();
    let mut spec_ids = BTreeSet::new();
    for path in &files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let transcript = match load(path) {
            Ok(transcript) => transcript,
            Err(error) => {
                failures.push(format!("{file}: not a valid transcript: {error}"));
                continue;
            }
        };
        if !names.insert(transcript.name.clone()) {
            failures.push(format!("{file}: name {:?} used twice", transcript.name));
        }
        spec_ids.extend(transcript.spec.iter().cloned());
        match run(&file, transcript) {
            Ok(seen) => reasons.extend(seen),
            Err(error) => failures.push(error),
        }
    }
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n\n"));
    // Every reason code is exercised by some transcript, and every SPEC item
    // is claimed by one: a new decision comes with its transcript.
    let missing: Vec<&str> = Reason::ALL
        .iter()
        .map(|reason| reason.as_str())
        .filter(|code| !reasons.contains(*code))
        .collect();
    assert!(missing.is_empty(), "no transcript shows {missing:?}");
    for id in ["D1", "D2", "D3", "D4", "D5", "D6", "D7", "D8"] {
        assert!(spec_ids.contains(id), "no transcript covers {id}");
    }
}

#[test]
fn a_transcript_with_an_unknown_input_kind_is_refused() {
    let text = r#"{"name": "x", "spec": ["D1"], "options": {"sites": ["a", "b"]}, "seed": 1,
        "steps": [{"at": 0, "input": {"kind": "site_exploded"}, "expect": []}]}"#;
    let error = parse(text).unwrap_err();
    assert!(error.contains("unknown variant `site_exploded`"), "{error}");
}

#[test]
fn a_transcript_with_an_unknown_field_or_missing_expect_is_refused() {
    let unknown_field = r#"{"name": "x", "spec": ["D1"], "options": {"sites": ["a", "b"]}, "seed": 1,
        "steps": [{"at": 0, "input": {"kind": "start", "site": "a", "hot_seat": true}, "expect": []}]}"#;
    let error = parse(unknown_field).unwrap_err();
    assert!(error.contains("unknown field `hot_seat`"), "{error}");
    let no_expect = r#"{"name": "x", "spec": ["D1"], "options": {"sites": ["a", "b"]}, "seed": 1,
        "steps": [{"at": 0, "input": {"kind": "start", "site": "a"}}]}"#;
    let error = parse(no_expect).unwrap_err();
    assert!(error.contains("missing field `expect`"), "{error}");
    let both = r#"{"name": "x", "spec": ["D9"], "options": {"sites": ["a", "b"]}, "seed": 1,
        "steps": []}"#;
    assert_eq!(
        parse(both).unwrap_err(),
        "spec: \"D9\" is not one of D1..D8"
    );
}

#[test]
fn a_wrong_expectation_fails_with_file_step_and_both_lists() {
    let text = r#"{"name": "x", "spec": ["D1"], "options": {"sites": ["a", "b"]}, "seed": 1,
        "steps": [{"at": 5, "input": {"kind": "start", "site": "a"},
                   "expect": [{"kind": "connect", "site": "b", "reason": "startup"}]}]}"#;
    let error = run("x.json", parse(text).unwrap()).unwrap_err();
    let (head, lists) = error.split_once('\n').unwrap();
    assert_eq!(head, "x.json: step 0 (at 5): outputs differ");
    let (expected, got) = lists.split_once("got:").unwrap();
    assert!(expected.contains(r#""site":"b""#), "{error}");
    assert!(got.contains(r#""site":"a""#), "{error}");
}

#[test]
fn a_transcript_that_skips_a_deadline_is_refused() {
    let text = r#"{"name": "x", "spec": ["D1"], "options": {"sites": ["a", "b"], "retry_jitter_ms": 0}, "seed": 1,
        "steps": [
          {"at": 0, "input": {"kind": "start", "site": "a"}, "expect": [{"kind": "connect", "site": "a", "reason": "startup"}]},
          {"at": 1, "input": {"kind": "config_failed", "site": "a"}, "expect": [{"kind": "connect", "site": "b", "reason": "config_unreachable_try_other"}]},
          {"at": 2, "input": {"kind": "config_failed", "site": "b"}, "expect": [{"kind": "wait", "until": 2002, "reason": "config_unreachable_retry"}]},
          {"at": 3000, "input": {"kind": "config_connected", "site": "a"}, "expect": []}
        ]}"#;
    let error = run("x.json", parse(text).unwrap()).unwrap_err();
    assert_eq!(
        error,
        "x.json: step 3 (at 3000): skips the deadline at 2002: add a timeout step before it"
    );
}

/// The shared invalid-options cases (`transcripts/options/invalid.json`),
/// also run by the JavaScript twin: same options, same error code.
#[test]
fn shared_invalid_options_cases() {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Case {
        note: String,
        options: Options,
        error: String,
    }
    let path = transcript_dir().join("options").join("invalid.json");
    let text = std::fs::read_to_string(path).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&text).unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let got = case.options.validate().map_err(|error| error.code());
        assert_eq!(got, Err(case.error.as_str()), "{}", case.note);
    }
}
