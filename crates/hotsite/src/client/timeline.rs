//! The failover timeline: events of `GET /v1/events` and the live stream, as
//! the client keeps them (newest last, bounded, filtered by system) and as
//! it prints them, one line each.

use std::collections::{HashMap, VecDeque};

use serde::Deserialize;
use serde_json::Value;

use super::picture::{time_of_day, Cell, Style};
use super::sse::SseEvent;

/// Kinds left out of the timeline: a bind that stays down adds a connect
/// attempt and a scheduled retry every rebind interval (SPEC M5), which
/// would push the decisions out of a screen-sized timeline within minutes.
/// The binds' `attempts` counts them; the status is still read again.
const QUIET_KINDS: [&str; 2] = ["connect_attempt", "retry_scheduled"];

/// One event as the host publishes it (`crates/host/src/events.rs` `Record`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Entry {
    /// Position in the site's stream, from 1.
    pub(crate) seq: u64,
    /// When it was published, ms since the Unix epoch.
    pub(crate) at_ms: i64,
    /// The deciding system (`messaging`, `voice`, `site`, …).
    pub(crate) system: String,
    /// `site/name` of what the decision is about.
    pub(crate) target: String,
    /// `health`, `rerouted`, `site_mode`, …
    pub(crate) kind: String,
    /// For a health change, the state it went to: `up`, `down`, `probing`.
    #[serde(default)]
    pub(crate) state: Option<String>,
    /// Why, when the event has a cause.
    #[serde(default)]
    pub(crate) cause: Option<String>,
    /// The whole event in words (`target: …`).
    pub(crate) text: String,
}

impl Entry {
    /// The event's columns: time, system, target, what (kind and state),
    /// why (the cause, or the event's own words when it has no state).
    pub(crate) fn cells(&self) -> [Cell; 5] {
        let what = match &self.state {
            Some(state) => (format!("{} {state}", self.kind), Style::of_state(state)),
            None => (self.kind.clone(), Style::Plain),
        };
        // Handed-back counts, throttling pauses, retries: the event's words
        // say more than the bare cause; the target is in its own column.
        let why = match &self.cause {
            Some(cause) if self.state.is_some() => cause.clone(),
            _ => self
                .text
                .strip_prefix(&format!("{}: ", self.target))
                .unwrap_or(&self.text)
                .to_owned(),
        };
        [
            (format!("{} UTC", time_of_day(self.at_ms)), Style::Plain),
            (self.system.clone(), Style::Plain),
            (self.target.clone(), Style::Plain),
            what,
            (why, Style::Plain),
        ]
    }

    /// The event as one line of its own (a pipe's `event …` lines), in
    /// columns of fixed width.
    pub(crate) fn line(&self) -> String {
        let [time, system, target, what, why] = self.cells();
        format!(
            "{}  {:<9}  {:<16}  {:<18}  {}",
            time.0, system.0, target.0, what.0, why.0
        )
        .trim_end()
        .to_owned()
    }
}

/// What one event of the stream means to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamItem {
    /// A published event.
    Event(Entry),
    /// The host dropped this many events for this client (it read too
    /// slowly); they are still in the ring, from which a resume reads them.
    Lagged { missed: u64 },
    /// Something this client does not understand, named for the operator.
    Unknown(String),
}

impl StreamItem {
    /// Interprets one dispatched server-sent event.
    pub(crate) fn from_sse(event: &SseEvent) -> StreamItem {
        if event.kind == "lagged" {
            #[derive(Deserialize)]
            struct Lagged {
                missed: u64,
            }
            return match serde_json::from_str::<Lagged>(&event.data) {
                Ok(lagged) => StreamItem::Lagged {
                    missed: lagged.missed,
                },
                Err(error) => StreamItem::Unknown(format!("lagged notice unreadable ({error})")),
            };
        }
        let entry = serde_json::from_str::<Value>(&event.data).and_then(|mut value| {
            super::untrusted::clean(&mut value);
            serde_json::from_value::<Entry>(value)
        });
        match entry {
            Ok(entry) => StreamItem::Event(entry),
            Err(error) => StreamItem::Unknown(format!(
                "event {:?} unreadable ({error}): {}",
                super::untrusted::printable(&event.kind),
                super::untrusted::printable(&event.data)
            )),
        }
    }
}

/// The newest events that pass the system filter, oldest first.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    entries: VecDeque<Entry>,
    capacity: usize,
    /// Shown systems; empty: all.
    systems: Vec<String>,
    /// The newest `seq` seen, shown or not (where a resume starts), and
    /// when that event was published.
    last_seq: u64,
    last_at_ms: i64,
    /// The newest state change of each target, shown or not: where a bind's
    /// "since" comes from (targets are configured things: few).
    changes: HashMap<String, Entry>,
}

impl Timeline {
    /// Keeps `capacity` events of `systems` (every system when empty).
    pub(crate) fn new(capacity: usize, systems: Vec<String>) -> Timeline {
        Timeline {
            entries: VecDeque::with_capacity(capacity),
            capacity,
            systems,
            last_seq: 0,
            last_at_ms: 0,
            changes: HashMap::new(),
        }
    }

    /// Whether events of `system` are shown.
    pub(crate) fn shows(&self, system: &str) -> bool {
        self.systems.is_empty() || self.systems.iter().any(|s| s == system)
    }

    /// Adds `entry` unless it was seen already (a resume replays from the
    /// ring) or its system is filtered out; true when it was added.
    pub(crate) fn push(&mut self, entry: Entry) -> bool {
        if entry.seq <= self.last_seq {
            return false;
        }
        self.last_seq = entry.seq;
        self.last_at_ms = entry.at_ms;
        if entry.state.is_some() {
            self.changes.insert(entry.target.clone(), entry.clone());
        }
        if !self.shows(&entry.system)
            || QUIET_KINDS.contains(&entry.kind.as_str())
            || self.capacity == 0
        {
            return false;
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
        true
    }

    /// Adds a backlog read from `GET /v1/events` (any order, maybe several
    /// answers overlapping), oldest first.
    pub(crate) fn extend(&mut self, mut backlog: Vec<Entry>) {
        backlog.sort_by_key(|entry| entry.seq);
        backlog.dedup_by_key(|entry| entry.seq);
        for entry in backlog {
            self.push(entry);
        }
    }

    /// The newest `seq` seen: a resume asks for what came after it.
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The newest event seen, as (seq, at_ms); none before the first.
    pub(crate) fn last_seen(&self) -> Option<(u64, i64)> {
        (self.last_seq > 0).then_some((self.last_seq, self.last_at_ms))
    }

    /// The newest state change (health event) of `target` seen so far.
    pub(crate) fn last_change(&self, target: &str) -> Option<&Entry> {
        self.changes.get(target)
    }

    /// The kept events, oldest first.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// How many events it keeps.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The systems shown; empty: all.
    pub(crate) fn systems(&self) -> &[String] {
        &self.systems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn entry(
        seq: u64,
        system: &str,
        target: &str,
        state: Option<&str>,
        cause: Option<&str>,
    ) -> Entry {
        Entry {
            seq,
            at_ms: 1_795_609_185_123 + seq as i64 * 1000,
            system: system.into(),
            target: target.into(),
            kind: if state.is_some() {
                "health"
            } else {
                "throttled"
            }
            .into(),
            state: state.map(str::to_owned),
            cause: cause.map(str::to_owned),
            text: format!("{target}: something ({})", cause.unwrap_or("-")),
        }
    }

    /// SPEC M4, V2: a health decision reads as time, system, target, state
    /// and cause.
    #[test]
    fn a_health_event_line_has_time_system_target_state_and_cause() {
        let down = entry(
            1,
            "messaging",
            "a/a1",
            Some("down"),
            Some("connection refused"),
        );
        assert_eq!(
            down.line(),
            "12:19:46.123 UTC  messaging  a/a1              health down         connection refused"
        );
        assert_eq!(down.cells()[3], ("health down".to_owned(), Style::Bad));
    }

    #[test]
    fn an_event_without_state_shows_its_own_words() {
        let mut handed = entry(2, "messaging", "b/b1", None, None);
        handed.kind = "work_handed_back".into();
        handed.text = "b/b1: handed back 0 ambiguous and 3 unsent submits".into();
        assert!(
            handed
                .line()
                .ends_with("work_handed_back    handed back 0 ambiguous and 3 unsent submits"),
            "{}",
            handed.line()
        );
    }

    #[test]
    fn stream_items_are_events_lagged_notices_or_named_unknowns() {
        let data = r#"{"seq":9,"at_ms":5,"system":"voice","site":"carrier-1","target":"carrier-1/t1","kind":"health","state":"down","cause":"no reply to OPTIONS","text":"carrier-1/t1: Up -> Down (no reply to OPTIONS)"}"#;
        let sse = |kind: &str, data: &str| SseEvent {
            kind: kind.into(),
            data: data.into(),
            id: Some("9".into()),
        };
        let StreamItem::Event(event) = StreamItem::from_sse(&sse("health", data)) else {
            panic!("not an event");
        };
        assert_eq!((event.seq, event.system.as_str()), (9, "voice"));
        assert_eq!(event.cause.as_deref(), Some("no reply to OPTIONS"));
        assert_eq!(
            StreamItem::from_sse(&sse("lagged", r#"{"missed":12}"#)),
            StreamItem::Lagged { missed: 12 }
        );
        let StreamItem::Unknown(why) = StreamItem::from_sse(&sse("health", "not json")) else {
            panic!("not unknown");
        };
        assert!(why.contains("not json"), "{why}");
    }

    /// A stream as a real gateway sent it (`curl -N` of
    /// `GET /v1/events/stream` with `Last-Event-ID: 10`), in any chunking:
    /// the events after 10, in order, with their causes.
    #[test]
    fn a_real_stream_reads_as_its_events_in_any_chunking() {
        let bytes = include_bytes!("fixtures/stream.txt");
        let read = |chunks: &[&[u8]]| -> Vec<StreamItem> {
            let mut parser = super::super::sse::SseParser::new();
            chunks
                .iter()
                .flat_map(|chunk| parser.feed(chunk))
                .map(|event| StreamItem::from_sse(&event))
                .collect()
        };
        let whole = read(&[bytes]);
        let seqs: Vec<u64> = whole
            .iter()
            .map(|item| match item {
                StreamItem::Event(entry) => entry.seq,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(seqs, [11, 12, 13, 14, 15, 16]);
        let StreamItem::Event(down) = &whole[1] else {
            unreachable!()
        };
        assert_eq!(
            (
                down.target.as_str(),
                down.state.as_deref(),
                down.cause.as_deref()
            ),
            ("a/a1", Some("down"), Some("connection lost"))
        );
        for size in [1, 2, 7, 64, 333] {
            let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
            assert_eq!(read(&chunks), whole, "chunks of {size}");
        }
    }

    /// A resume replays from the ring: nothing is shown twice; the filter
    /// keeps only the asked systems; the newest `capacity` stay.
    #[test]
    fn the_timeline_is_filtered_bounded_and_free_of_repeats() {
        let mut timeline = Timeline::new(2, vec!["voice".into()]);
        timeline.extend(vec![
            entry(3, "voice", "c/t1", Some("down"), Some("x")),
            entry(1, "voice", "c/t1", Some("up"), Some("x")),
            entry(2, "messaging", "a/a1", Some("down"), Some("x")),
            entry(3, "voice", "c/t1", Some("down"), Some("x")),
        ]);
        assert_eq!(timeline.last_seq(), 3);
        assert!(!timeline.push(entry(3, "voice", "c/t1", Some("down"), Some("x"))));
        assert!(!timeline.push(entry(4, "messaging", "a/a1", Some("up"), Some("x"))));
        assert_eq!(
            timeline.last_seq(),
            4,
            "a hidden event still moves the resume point"
        );
        assert!(timeline.push(entry(5, "voice", "c/t2", Some("down"), Some("x"))));
        let seqs: Vec<u64> = timeline.entries().map(|e| e.seq).collect();
        assert_eq!(seqs, [3, 5]);
        let mut quiet = entry(6, "voice", "c/t2", None, Some("x"));
        quiet.kind = "retry_scheduled".into();
        assert!(!timeline.push(quiet), "retries are not decisions");
        assert_eq!(timeline.last_seq(), 6);
        // Hidden or not, the newest state change of a target is known.
        assert_eq!(timeline.last_change("a/a1").map(|e| e.seq), Some(4));
        assert_eq!(timeline.last_change("c/t1").map(|e| e.seq), Some(3));
        let all = Timeline::new(5, Vec::new());
        assert!(all.shows("recording"));
    }
}
