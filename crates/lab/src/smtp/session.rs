//! One SMTP session as a state machine: lines in, replies and mails out. No
//! I/O: the driver in `smtp` splits the stream into lines (and reports lines
//! that were too long), this decides what they mean (RFC 5321, the subset a
//! sink needs).

use crate::smtp::SmtpFault;

/// Longest command line, CRLF included (RFC 5321, 4.5.3.1.4).
pub(crate) const MAX_COMMAND_LINE: usize = 512;
/// Longest text line of DATA, CRLF included (RFC 5321, 4.5.3.1.6).
pub(crate) const MAX_TEXT_LINE: usize = 1000;
/// Most recipients of one mail (RFC 5321, 4.5.3.1.8 asks for at least 100).
const MAX_RECIPIENTS: usize = 100;

/// The sink's name in its greeting and EHLO answer.
const HOSTNAME: &str = "hotsite-lab";

/// A mail whose final dot was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Accepted {
    pub(crate) helo: String,
    pub(crate) from: String,
    pub(crate) recipients: Vec<String>,
    /// After dot-unstuffing, every line ending in CRLF.
    pub(crate) data: Vec<u8>,
}

/// What one line produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Output {
    /// The reply to write, CRLF-terminated lines; empty inside DATA.
    pub(crate) reply: String,
    /// A mail, when the line was DATA's final dot and the mail was accepted.
    pub(crate) mail: Option<Accepted>,
    /// A mail was refused at its final dot (too big, a line too long).
    pub(crate) rejected: bool,
    /// Close the connection after the reply (QUIT).
    pub(crate) close: bool,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Session {
    max_message_bytes: usize,
    helo: Option<String>,
    from: Option<String>,
    recipients: Vec<String>,
    /// In DATA: collecting the message.
    data: Option<Data>,
}

#[derive(Debug, Default)]
struct Data {
    bytes: Vec<u8>,
    /// Why the message will be refused at its final dot, once known.
    refusal: Option<&'static str>,
}

impl Session {
    /// A new session; `max_message_bytes` bounds DATA.
    pub(crate) fn new(max_message_bytes: usize) -> Session {
        Session {
            max_message_bytes,
            helo: None,
            from: None,
            recipients: Vec::new(),
            data: None,
        }
    }

    /// The greeting, written when a connection opens.
    pub(crate) fn greeting() -> String {
        format!("220 {HOSTNAME} ESMTP hotsite-lab sink ready\r\n")
    }

    /// The longest line acceptable now, CRLF included.
    pub(crate) fn max_line(&self) -> usize {
        if self.data.is_some() {
            MAX_TEXT_LINE
        } else {
            MAX_COMMAND_LINE
        }
    }

    /// Handles one line without its line ending; `fault` is the sink's fault
    /// in force.
    pub(crate) fn line(&mut self, line: &[u8], fault: Option<SmtpFault>) -> Output {
        if let Some(data) = &mut self.data {
            if line == b"." {
                return self.end_data();
            }
            // Dot-unstuffing (RFC 5321, 4.5.2): a leading dot was doubled.
            let text = line.strip_prefix(b".").unwrap_or(line);
            if data.refusal.is_none() {
                if data.bytes.len() + text.len() + 2 > self.max_message_bytes {
                    data.refusal = Some("552 5.3.4 message too big");
                    data.bytes = Vec::new();
                } else {
                    data.bytes.extend_from_slice(text);
                    data.bytes.extend_from_slice(b"\r\n");
                }
            }
            return Output::default();
        }
        let text = String::from_utf8_lossy(line);
        let (verb, argument) = match text.split_once(' ') {
            Some((verb, argument)) => (verb.to_ascii_uppercase(), argument.trim()),
            None => (text.trim().to_ascii_uppercase(), ""),
        };
        let reply = |text: &str| Output {
            reply: format!("{text}\r\n"),
            ..Output::default()
        };
        match verb.as_str() {
            "EHLO" | "HELO" if argument.is_empty() => reply("501 5.5.4 a domain is needed"),
            "EHLO" => {
                self.greet(argument);
                Output {
                    reply: format!(
                        "250-{HOSTNAME} greets {argument}\r\n250-8BITMIME\r\n\
                         250-SIZE {}\r\n250 HELP\r\n",
                        self.max_message_bytes
                    ),
                    ..Output::default()
                }
            }
            "HELO" => {
                self.greet(argument);
                reply(&format!("250 {HOSTNAME} greets {argument}"))
            }
            "MAIL" => self.mail_from(argument, fault),
            "RCPT" => self.rcpt_to(argument),
            "DATA" if self.helo.is_none() || self.from.is_none() || self.recipients.is_empty() => {
                reply("503 5.5.1 MAIL FROM and RCPT TO first")
            }
            "DATA" => {
                self.data = Some(Data::default());
                reply("354 end data with <CR><LF>.<CR><LF>")
            }
            "RSET" => {
                self.reset();
                reply("250 2.0.0 OK")
            }
            "NOOP" => reply("250 2.0.0 OK"),
            "VRFY" => reply("252 2.1.5 cannot verify, will accept"),
            "HELP" => reply("214 2.0.0 EHLO HELO MAIL RCPT DATA RSET NOOP QUIT"),
            "QUIT" => Output {
                reply: format!("221 2.0.0 {HOSTNAME} closing\r\n"),
                close: true,
                ..Output::default()
            },
            _ => reply("500 5.5.2 command not recognized"),
        }
    }

    /// What a line too long for [`Session::max_line`] produces.
    pub(crate) fn line_too_long(&mut self) -> Output {
        if let Some(data) = &mut self.data {
            data.refusal = Some("500 5.5.2 line too long");
            data.bytes = Vec::new();
            return Output::default();
        }
        Output {
            reply: "500 5.5.2 line too long\r\n".to_owned(),
            ..Output::default()
        }
    }

    fn greet(&mut self, domain: &str) {
        self.reset();
        self.helo = Some(domain.to_owned());
    }

    fn reset(&mut self) {
        self.from = None;
        self.recipients.clear();
        self.data = None;
    }

    fn mail_from(&mut self, argument: &str, fault: Option<SmtpFault>) -> Output {
        let reply = |text: String| Output {
            reply: format!("{text}\r\n"),
            ..Output::default()
        };
        if self.helo.is_none() {
            return reply("503 5.5.1 EHLO or HELO first".to_owned());
        }
        if self.from.is_some() {
            return reply("503 5.5.1 nested MAIL command".to_owned());
        }
        let Some((path, parameters)) = path_argument(argument, "FROM:") else {
            return reply("501 5.5.4 syntax: MAIL FROM:<address>".to_owned());
        };
        for parameter in parameters.split_whitespace() {
            let Some((key, value)) = parameter.split_once('=') else {
                continue;
            };
            let size = value.parse::<usize>().unwrap_or(0);
            if key.eq_ignore_ascii_case("SIZE") && size > self.max_message_bytes {
                return reply("552 5.3.4 message too big".to_owned());
            }
        }
        if let Some(SmtpFault::Status { code }) = fault {
            let class = code / 100;
            return Output {
                reply: format!("{code} {class}.0.0 injected fault\r\n"),
                rejected: true,
                ..Output::default()
            };
        }
        self.from = Some(path);
        reply("250 2.1.0 OK".to_owned())
    }

    fn rcpt_to(&mut self, argument: &str) -> Output {
        let reply = |text: &str| Output {
            reply: format!("{text}\r\n"),
            ..Output::default()
        };
        if self.from.is_none() {
            return reply("503 5.5.1 MAIL FROM first");
        }
        let Some((path, _)) = path_argument(argument, "TO:") else {
            return reply("501 5.5.4 syntax: RCPT TO:<address>");
        };
        if path.is_empty() {
            return reply("501 5.1.3 a recipient is needed");
        }
        if self.recipients.len() >= MAX_RECIPIENTS {
            return reply("452 4.5.3 too many recipients");
        }
        self.recipients.push(path);
        reply("250 2.1.5 OK")
    }

    fn end_data(&mut self) -> Output {
        let data = self.data.take().unwrap_or_default();
        let from = self.from.take().unwrap_or_default();
        let recipients = std::mem::take(&mut self.recipients);
        if let Some(refusal) = data.refusal {
            return Output {
                reply: format!("{refusal}\r\n"),
                rejected: true,
                ..Output::default()
            };
        }
        Output {
            reply: "250 2.0.0 OK: queued\r\n".to_owned(),
            mail: Some(Accepted {
                helo: self.helo.clone().unwrap_or_default(),
                from,
                recipients,
                data: data.bytes,
            }),
            ..Output::default()
        }
    }
}

/// Reads `FROM:<path> params` (or `TO:`): the path without brackets, and the
/// parameters. Tolerates a space after the colon and a path without brackets.
fn path_argument<'a>(argument: &'a str, keyword: &str) -> Option<(String, &'a str)> {
    let head = argument.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = argument[keyword.len()..].trim_start();
    if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        return Some((inner[..end].to_owned(), inner[end + 1..].trim()));
    }
    let (path, parameters) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((path.to_owned(), parameters.trim()))
}

/// The value of header `name` in `data`'s header section, unfolded, trimmed.
pub(crate) fn header(data: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    let mut found: Option<String> = None;
    let mut collecting = false;
    for line in text.split("\r\n") {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if collecting {
                if let Some(value) = &mut found {
                    value.push(' ');
                    value.push_str(line.trim());
                }
            }
            continue;
        }
        collecting = false;
        if found.is_some() {
            continue;
        }
        if let Some((field, value)) = line.split_once(':') {
            if field.trim().eq_ignore_ascii_case(name) {
                found = Some(value.trim().to_owned());
                collecting = true;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `script` (one client line per line) and returns the transcript of
    /// replies, each reply's lines joined by `|`.
    fn transcript(session: &mut Session, script: &[&str]) -> Vec<String> {
        script
            .iter()
            .map(|line| {
                let output = session.line(line.as_bytes(), None);
                output.reply.trim_end().replace("\r\n", "|")
            })
            .collect()
    }

    #[test]
    fn a_whole_conversation() {
        let mut session = Session::new(4096);
        let replies = transcript(
            &mut session,
            &[
                "EHLO client.test",
                "MAIL FROM:<hotsite@lab.test> SIZE=100",
                "RCPT TO:<ops@example.test>",
                "rcpt to: <second@example.test>",
                "DATA",
                "Subject: fallback",
                "",
                "..starts with a dot",
            ],
        );
        assert_eq!(
            replies,
            [
                "250-hotsite-lab greets client.test|250-8BITMIME|250-SIZE 4096|250 HELP",
                "250 2.1.0 OK",
                "250 2.1.5 OK",
                "250 2.1.5 OK",
                "354 end data with <CR><LF>.<CR><LF>",
                "",
                "",
                "",
            ]
        );
        let end = session.line(b".", None);
        assert_eq!(end.reply, "250 2.0.0 OK: queued\r\n");
        let mail = end.mail.expect("a mail");
        assert_eq!(mail.from, "hotsite@lab.test");
        assert_eq!(mail.recipients, ["ops@example.test", "second@example.test"]);
        assert_eq!(
            mail.data,
            b"Subject: fallback\r\n\r\n.starts with a dot\r\n"
        );
        let quit = session.line(b"QUIT", None);
        assert!(quit.close);
        assert!(quit.reply.starts_with("221 "));
    }

    #[test]
    fn sequence_errors_and_unknown_commands() {
        let mut session = Session::new(4096);
        let replies = transcript(
            &mut session,
            &[
                "MAIL FROM:<a@b>",
                "HELO x",
                "RCPT TO:<c@d>",
                "DATA",
                "MAIL FROM:<a@b>",
                "MAIL FROM:<a@b>",
                "RSET",
                "RCPT TO:<c@d>",
                "NOOP",
                "STARTTLS",
                "MAIL TO:<a@b>",
            ],
        );
        let codes: Vec<&str> = replies.iter().map(|reply| &reply[..3]).collect();
        assert_eq!(
            codes,
            ["503", "250", "503", "503", "250", "503", "250", "503", "250", "500", "501"]
        );
    }

    #[test]
    fn limits_refuse_the_mail_at_its_end() {
        let mut session = Session::new(1024);
        transcript(
            &mut session,
            &["HELO x", "MAIL FROM:<>", "RCPT TO:<a@b>", "DATA"],
        );
        let line = "x".repeat(600);
        session.line(line.as_bytes(), None);
        session.line(line.as_bytes(), None);
        let end = session.line(b".", None);
        assert_eq!(
            (end.reply.as_str(), end.rejected),
            ("552 5.3.4 message too big\r\n", true)
        );
        assert!(end.mail.is_none());
        transcript(&mut session, &["MAIL FROM:<>", "RCPT TO:<a@b>", "DATA"]);
        session.line_too_long();
        assert!(session.line(b".", None).reply.starts_with("500 "));
        let too_big = session.line(b"MAIL FROM:<a@b> SIZE=2048", None);
        assert!(too_big.reply.starts_with("552 "));
        assert!(session.line_too_long().reply.starts_with("500 "));
    }

    #[test]
    fn a_status_fault_answers_mail_from() {
        let mut session = Session::new(1024);
        session.line(b"HELO x", None);
        let refused = session.line(b"MAIL FROM:<a@b>", Some(SmtpFault::Status { code: 451 }));
        assert_eq!(refused.reply, "451 4.0.0 injected fault\r\n");
        assert!(refused.rejected);
        assert_eq!(
            session.line(b"RCPT TO:<c@d>", None).reply,
            "503 5.5.1 MAIL FROM first\r\n"
        );
    }

    #[test]
    fn headers_are_found_case_insensitively_and_unfolded() {
        let data = b"From: a@b\r\nsubject: Fallback for\r\n  message 42\r\n\
                     X-Hotsite-Message-Id:  42 \r\n\r\nSubject: not a header\r\n";
        assert_eq!(
            header(data, "Subject").as_deref(),
            Some("Fallback for message 42")
        );
        assert_eq!(header(data, "x-hotsite-message-id").as_deref(), Some("42"));
        assert_eq!(header(data, "To"), None);
    }
}
