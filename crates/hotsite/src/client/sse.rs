//! A server-sent events parser (the WHATWG "event stream interpretation"),
//! pure: bytes in, events out, so the stream of `GET /v1/events/stream` can be
//! read from any chunking of the body and tested without a socket.
//!
//! Lines end with CRLF, LF or CR (a CR at the end of one chunk and an LF at
//! the start of the next are one line end); `:` starts a comment (the host's
//! keep-alives); `data` lines of one event are joined with LF; `id` sets the
//! last event id, which outlives the event (a reconnecting client sends it as
//! `Last-Event-ID`); an empty line dispatches the event, unless it has no data.

/// The longest line kept: a longer one is dropped whole (with its event),
/// so a broken or hostile server cannot grow the buffer without bound.
const MAX_LINE: usize = 1 << 20;
/// The longest event kept (all its `data` lines); a longer one is dropped.
const MAX_EVENT: usize = 4 << 20;
/// A UTF-8 byte order mark, which may open the stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event` field; `message` when the event named none.
    pub(crate) kind: String,
    /// The `data` lines joined with LF.
    pub(crate) data: String,
    /// The last event id as of this event (its own `id`, or an earlier one).
    pub(crate) id: Option<String>,
}

/// Reads an event stream chunk by chunk.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// The current line, without its end.
    line: Vec<u8>,
    /// The current line grew past [`MAX_LINE`]: skip to its end.
    skipping: bool,
    /// The last byte was a CR: an LF right after it ends nothing more.
    after_cr: bool,
    /// Past the first line, where a byte order mark may be.
    started: bool,
    /// The event being built.
    kind: String,
    data: String,
    /// The event being built saw a line that was dropped.
    damaged: bool,
    last_id: Option<String>,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub(crate) fn new() -> SseParser {
        SseParser::default()
    }

    /// Feeds the next chunk of the body; returns the events it completed.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &byte in bytes {
            let after_cr = std::mem::replace(&mut self.after_cr, false);
            match byte {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    if let Some(event) = self.end_line() {
                        events.push(event);
                    }
                }
                _ if self.skipping => {}
                _ if self.line.len() == MAX_LINE => {
                    self.skipping = true;
                    self.line.clear();
                }
                _ => self.line.push(byte),
            }
        }
        events
    }

    fn end_line(&mut self) -> Option<SseEvent> {
        if std::mem::take(&mut self.skipping) {
            self.damaged = true;
            return None;
        }
        let mut line = std::mem::take(&mut self.line);
        if !std::mem::replace(&mut self.started, true) && line.starts_with(BOM) {
            line.drain(..BOM.len());
        }
        if line.is_empty() {
            return self.dispatch();
        }
        let line = String::from_utf8_lossy(&line);
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*line, ""),
        };
        match field {
            "event" => self.kind = value.to_owned(),
            // An event past MAX_EVENT is dropped whole (a stream that never
            // ends its event must not grow without bound).
            "data" if self.data.len() + value.len() >= MAX_EVENT => {
                self.damaged = true;
                self.data.clear();
            }
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            // `retry` and unknown fields: this client keeps its own backoff.
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let kind = std::mem::take(&mut self.kind);
        let mut data = std::mem::take(&mut self.data);
        if std::mem::take(&mut self.damaged) || data.is_empty() {
            return None;
        }
        data.pop();
        Some(SseEvent {
            kind: if kind.is_empty() {
                "message".into()
            } else {
                kind
            },
            data,
            id: self.last_id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one after the other; every event dispatched.
    fn parse(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        chunks.iter().flat_map(|chunk| parser.feed(chunk)).collect()
    }

    fn event(kind: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent {
            kind: kind.into(),
            data: data.into(),
            id: id.map(str::to_owned),
        }
    }

    /// What the host writes (axum's `Sse`): id, event, JSON data, a blank
    /// line; keep-alives are comments.
    const HOST_STREAM: &[u8] = b":\n\nevent: health\ndata: {\"seq\":7,\"kind\":\"health\"}\nid: 7\n\n: keep-alive\n\nevent: lagged\ndata: {\"missed\":3}\n\n";

    #[test]
    fn reads_the_hosts_events_ids_and_lagged_notices() {
        assert_eq!(
            parse(&[HOST_STREAM]),
            [
                event("health", r#"{"seq":7,"kind":"health"}"#, Some("7")),
                // A lagged notice has no id of its own: the last one holds.
                event("lagged", r#"{"missed":3}"#, Some("7")),
            ]
        );
    }

    /// The body arrives in whatever pieces the network makes: every split
    /// point, and one byte at a time, give the same events.
    #[test]
    fn any_chunking_gives_the_same_events() {
        let whole = parse(&[HOST_STREAM]);
        for at in 0..=HOST_STREAM.len() {
            let (head, tail) = HOST_STREAM.split_at(at);
            assert_eq!(parse(&[head, tail]), whole, "split at {at}");
        }
        let bytes: Vec<&[u8]> = HOST_STREAM.chunks(1).collect();
        assert_eq!(parse(&bytes), whole);
    }

    #[test]
    fn data_lines_join_with_newlines() {
        assert_eq!(
            parse(&[b"data: one\ndata:two\ndata\ndata:  four\n\n"]),
            [event("message", "one\ntwo\n\n four", None)]
        );
        // An event with an empty data line is still an event.
        assert_eq!(parse(&[b"data:\n\n"]), [event("message", "", None)]);
    }

    #[test]
    fn crlf_cr_and_lf_all_end_lines_even_across_chunks() {
        let expected = [event("a", "x", Some("1")), event("b", "y", Some("2"))];
        assert_eq!(
            parse(&[b"event: a\r\ndata: x\r\nid: 1\r\n\r\nevent: b\r\ndata: y\r\nid: 2\r\n\r\n"]),
            expected
        );
        assert_eq!(
            parse(&[b"event: a\rdata: x\rid: 1\r\revent: b\rdata: y\rid: 2\r\r"]),
            expected
        );
        // A CR ending one chunk and the LF opening the next are one line end,
        // not a line end and an empty line (which would dispatch early).
        assert_eq!(
            parse(&[
                b"event: a\r",
                b"\ndata: x\r",
                b"\nid: 1\r",
                b"\n\r",
                b"\nevent: b\ndata: y\nid: 2\n\n"
            ]),
            expected
        );
    }

    #[test]
    fn comments_and_events_without_data_dispatch_nothing() {
        assert_eq!(parse(&[b": hello\n\n:\n\nevent: empty\n\nid: 4\n\n"]), []);
        // The id of a data-less event still counts for the next ones.
        let mut parser = SseParser::new();
        assert_eq!(parser.feed(b": hello\nid: 4\n\n"), []);
        assert_eq!(
            parser.feed(b"data: x\n\n"),
            [event("message", "x", Some("4"))]
        );
    }

    #[test]
    fn ids_persist_and_an_id_with_nul_is_ignored() {
        assert_eq!(
            parse(&[b"data: z\n\nid: 41\ndata: a\n\nid: 4\x002\ndata: b\n\nid\ndata: c\n\n"]),
            [
                event("message", "z", None),
                event("message", "a", Some("41")),
                // An id with a NUL is ignored: the last one holds.
                event("message", "b", Some("41")),
                // `id` with no value sets it to empty (the spec's "set to the value").
                event("message", "c", Some("")),
            ]
        );
    }

    #[test]
    fn an_incomplete_event_waits_for_its_blank_line() {
        let mut parser = SseParser::new();
        assert_eq!(parser.feed(b"event: health\ndata: {\"seq\":1}\n"), []);
        assert_eq!(parser.feed(b"\n"), [event("health", r#"{"seq":1}"#, None)]);
    }

    #[test]
    fn a_byte_order_mark_opens_the_stream_only() {
        assert_eq!(
            parse(&[b"\xEF\xBB", b"\xBFdata: x\n\n"]),
            [event("message", "x", None)]
        );
        // Later, it is part of the line: an unknown field, ignored.
        assert_eq!(
            parse(&[b"data: x\n\n\xEF\xBB\xBFdata: y\n\n"]),
            [event("message", "x", None)]
        );
    }

    #[test]
    fn an_overlong_line_drops_its_event_and_the_stream_goes_on() {
        let mut parser = SseParser::new();
        let mut long = b"data: ".to_vec();
        long.resize(MAX_LINE + 10, b'x');
        assert_eq!(parser.feed(&long), []);
        assert_eq!(parser.feed(b"\n\n"), []);
        assert_eq!(
            parser.feed(b"data: next\n\n"),
            [event("message", "next", None)]
        );
    }

    /// Many short `data:` lines with no blank line between them: the event
    /// is dropped past MAX_EVENT instead of growing, and the next one comes.
    #[test]
    fn an_event_that_never_ends_is_dropped_at_its_limit() {
        let mut parser = SseParser::new();
        let mut line = b"data: ".to_vec();
        line.resize(64 * 1024, b'y');
        line.push(b'\n');
        for _ in 0..(MAX_EVENT / line.len() + 8) {
            assert_eq!(parser.feed(&line), []);
            assert!(parser.data.len() < MAX_EVENT);
        }
        assert_eq!(parser.feed(b"\n"), [], "the oversized event is dropped");
        assert_eq!(
            parser.feed(b"data: next\n\n"),
            [event("message", "next", None)]
        );
    }

    proptest::proptest! {
        /// The stream's bytes arrive however TCP cuts them: any split of any
        /// input (valid or not, CR/LF/CRLF, BOM, stray bytes) gives the same
        /// events as the whole, and the parser never panics.
        #[test]
        fn any_split_gives_the_same_events(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(b"data: x\nevent: health\nid: 7\n\r:{}".to_vec()),
                    proptest::num::u8::ANY,
                ],
                0..400,
            ),
            cuts in proptest::collection::vec(0usize..400, 0..12),
        ) {
            let whole = parse(&[&bytes]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut from = 0;
            for cut in cuts {
                chunks.push(&bytes[from..cut]);
                from = cut;
            }
            chunks.push(&bytes[from..]);
            proptest::prop_assert_eq!(parse(&chunks), whole);
        }
    }
}
