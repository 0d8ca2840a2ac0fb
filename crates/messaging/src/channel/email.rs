//! E-mail over SMTP: the last-resort fallback channel of a route (SPEC M11).
//!
//! A message that its providers could not deliver is sent as a plain-text
//! e-mail to the address the application gave with it (`email`), or to the
//! configured `default_to`. One [`EmailChannel::send`] is one SMTP session:
//! connect, greeting and EHLO, STARTTLS (or TLS from the first byte), AUTH when
//! configured, `MAIL FROM`, `RCPT TO`, `DATA`, the content, and the final reply.
//! The whole session is bounded by `timeout`; lettre's tokio connection bounds
//! only the TCP connect, so a server that accepts and never greets would
//! otherwise hold a send forever.
//!
//! # Outcomes
//!
//! The step the session had reached when it stopped decides what a failure
//! means (see [`classify`]):
//!
//! | what happened | outcome |
//! |---|---|
//! | 2xx after the content | `Accepted`, `provider_id` = the server's queue id when its reply names one (`queued as X`, `id=X`), else our `Message-ID` |
//! | 5xx at any step (550 unknown user, 535 bad password, 554…) | `Permanent` with code and text (SPEC M10, M14) |
//! | 4xx at any step (421, 450, 451, 452…) | `Retry { ProviderError }` |
//! | refused, reset, TLS failure, no STARTTLS offered, closed before the content was sent | `Retry { TransportFailure }` |
//! | no answer within `timeout` before the content was sent | `Retry { Timeout }` |
//! | I/O error or timeout once the content was being sent | `Ambiguous` (SPEC M8): the server may have queued it |
//! | no address, or one that is not a mailbox; the server cannot take non-ASCII addresses; no AUTH mechanism in common | `Permanent` |
//!
//! # No duplicates
//!
//! Every send of one message carries the same `Message-ID:
//! <hotsite-{id}@{domain of from}>` and an `X-Hotsite-Message-Id: {id}` header.
//! SMTP has no way to ask a server "did you get this one?", so a resend after
//! an unknown outcome (route policy `resubmit`) may reach the mailbox twice;
//! the stable Message-ID lets mail systems and people recognise and drop the
//! repeat, as `user_message_reference` does over SMPP (SPEC M8).
//!
//! # Why the connection is driven step by step
//!
//! lettre's `AsyncSmtpTransport` runs the whole session in one call and its
//! errors do not say which step failed, so "refused before the content was
//! sent" (safe to retry) and "connection died after the content" (ambiguous)
//! would look the same. It also waits without bound for the reply to its
//! closing `QUIT`, after the message was accepted. So each send opens its own
//! [`AsyncSmtpConnection`] and goes step by step; the TLS settings, roots and
//! credentials are built once, in [`EmailChannel::new`]. There is no
//! connection pool: e-mail is a fallback with little traffic, and a session
//! cut off by the timeout must not leave a half-read connection behind.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hotsite_core::config::Issues;
use hotsite_core::Secret;
use hotsite_store::QueuedMessage;
use lettre::address::Envelope;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use lettre::{Address, Message};
use serde::Deserialize;

use super::{text_of, RetryKind, SendOutcome};

/// The `site` of an accepted e-mail.
pub const SITE: &str = "email";

/// The default `subject`.
pub const DEFAULT_SUBJECT: &str = "Message from {from}";

/// The default `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The bounds of `timeout`.
pub const TIMEOUT_BOUNDS: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(600));

/// How long the closing `QUIT` may take, after the outcome is known.
const QUIT_WAIT: Duration = Duration::from_secs(2);

/// The header naming the hotsite message.
const MESSAGE_ID_HEADER: HeaderName = HeaderName::new_from_ascii_str("X-Hotsite-Message-Id");

/// `[email]`: the SMTP server and the e-mails sent through it. Durations are
/// strings such as `"30s"` or `"500ms"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The SMTP server's host name or IP address. With TLS it is also the name
    /// its certificate must carry.
    pub host: String,
    /// Default: 587 with `starttls`, 465 with `tls`, 25 with `none`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `none`, `starttls` (default) or `tls`.
    #[serde(default)]
    pub security: Security,
    /// AUTH (PLAIN or LOGIN) user; AUTH is used when set.
    #[serde(default)]
    pub username: Option<String>,
    /// AUTH password; required with `username`, refused without it. Never
    /// logged.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Allow AUTH over `security = "none"`, which sends the password in clear.
    /// Default: false.
    #[serde(default)]
    pub allow_plaintext_auth: bool,
    /// The sender mailbox (`hotsite@example.com` or `Name <hotsite@example.com>`);
    /// its domain is the right-hand side of every Message-ID. Required.
    pub from: String,
    /// The recipient of messages that carry no `email`. Default: none, and
    /// such messages fail permanently.
    #[serde(default)]
    pub default_to: Option<String>,
    /// The subject; `{from}` is the message's sender address, `{to}` its
    /// destination (the phone number or chat id). Default: [`DEFAULT_SUBJECT`].
    #[serde(default = "default_subject")]
    pub subject: String,
    /// Bounds one whole send, from connect to the final reply. Default: 30 s,
    /// between 100 ms and 10 min.
    #[serde(
        default = "default_timeout",
        deserialize_with = "hotsite_core::config::duration"
    )]
    pub timeout: Duration,
    /// A PEM file of root certificates trusted in addition to the built-in
    /// webpki (Mozilla) roots: a private CA, or a test server's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The name sent with EHLO. Default: the address literal `[127.0.0.1]`.
    /// Relays that reject that want this machine's fully qualified name.
    #[serde(default)]
    pub hello_name: Option<String>,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain text (port 25). AUTH only with `allow_plaintext_auth`.
    None,
    /// Plain connect, then STARTTLS, required: a server that does not offer it
    /// is a transport failure, never a reason to go on in clear (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

impl Security {
    /// The usual port of this mode.
    pub fn default_port(self) -> u16 {
        match self {
            Security::None => 25,
            Security::Starttls => 587,
            Security::Tls => 465,
        }
    }
}

/// Everything wrong with an [`EmailConfig`], each naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", join_issues(.issues))]
pub struct EmailConfigError {
    /// The problems, in the order of the keys.
    pub issues: Vec<EmailConfigIssue>,
}

/// One problem: the key (`email.from`) and why.
pub type EmailConfigIssue = hotsite_core::ConfigIssue;

/// The e-mail channel: one SMTP server, one sender.
#[derive(Clone)]
pub struct EmailChannel {
    host: String,
    port: u16,
    endpoint: String,
    security: Security,
    /// Built once: the roots (webpki plus `ca_file`) and the server name.
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    from: Mailbox,
    default_to: Option<Mailbox>,
    subject: String,
    timeout: Duration,
}

impl EmailConfig {
    /// A configuration with every default: `starttls` on port 587, no AUTH.
    pub fn new(host: impl Into<String>, from: impl Into<String>) -> EmailConfig {
        EmailConfig {
            host: host.into(),
            port: None,
            security: Security::default(),
            username: None,
            password: None,
            allow_plaintext_auth: false,
            from: from.into(),
            default_to: None,
            subject: default_subject(),
            timeout: DEFAULT_TIMEOUT,
            ca_file: None,
            hello_name: None,
        }
    }

    /// `port`, or the usual port of `security`.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(self.security.default_port())
    }

    /// Checks every key without touching the network or the disk (the
    /// `ca_file` is read by [`EmailChannel::new`]); lists every problem.
    pub fn validate(&self) -> Result<(), EmailConfigError> {
        let mut issues = Issues::new();
        let host = self.host.trim();
        if host.is_empty() {
            issues.add("email.host", "must not be empty");
        } else if host != self.host
            || host.contains(|c: char| c.is_whitespace() || "/@".contains(c))
        {
            issues.add("email.host", format!("not a host name: {:?}", self.host));
        }
        if self.port == Some(0) {
            issues.add("email.port", "must be between 1 and 65535");
        }
        match (&self.username, &self.password) {
            (Some(username), _) if username.is_empty() => {
                issues.add("email.username", "must not be empty when set");
            }
            (Some(_), None) => issues.add("email.password", "required with email.username"),
            (None, Some(_)) => issues.add(
                "email.password",
                "set without email.username: AUTH needs both",
            ),
            _ => {}
        }
        if self.username.is_some() && self.security == Security::None && !self.allow_plaintext_auth
        {
            issues.add(
                "email.security",
                "AUTH over \"none\" would send the password in clear; use \"starttls\" or \
                 \"tls\", or set email.allow_plaintext_auth = true",
            );
        }
        if self.ca_file.is_some() && self.security == Security::None {
            issues.add(
                "email.ca_file",
                "set with security = \"none\", which uses no TLS; use \"starttls\" or \"tls\"",
            );
        }
        if parse_mailbox(&self.from).is_err() {
            issues.add("email.from", format!("not a mailbox: {:?}", self.from));
        }
        if let Some(default_to) = &self.default_to {
            if parse_mailbox(default_to).is_err() {
                issues.add("email.default_to", format!("not a mailbox: {default_to:?}"));
            }
        }
        if let Err(reason) = check_subject(&self.subject) {
            issues.add("email.subject", reason);
        }
        let (low, high) = TIMEOUT_BOUNDS;
        if self.timeout < low || self.timeout > high {
            issues.add(
                "email.timeout",
                format!(
                    "{} is out of bounds ({} to {})",
                    humantime::format_duration(self.timeout),
                    humantime::format_duration(low),
                    humantime::format_duration(high)
                ),
            );
        }
        if let Some(name) = &self.hello_name {
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c.is_control()) {
                issues.add("email.hello_name", format!("not a host name: {name:?}"));
            }
        }
        issues
            .finish()
            .map_err(|issues| EmailConfigError { issues })
    }
}

impl EmailChannel {
    /// Validates `config`, reads its `ca_file` and builds the TLS settings.
    /// Opens no connection.
    pub fn new(config: EmailConfig) -> Result<EmailChannel, EmailConfigError> {
        config.validate()?;
        let mut issues = Issues::new();
        let tls = match config.security {
            Security::None => None,
            Security::Starttls | Security::Tls => {
                let mut builder = TlsParameters::builder(config.host.clone());
                if let Some(path) = &config.ca_file {
                    match std::fs::read(path) {
                        Ok(pem) => match Certificate::from_pem(&pem) {
                            Ok(certificate) => builder = builder.add_root_certificate(certificate),
                            Err(error) => issues.add(
                                "email.ca_file",
                                format!("{}: not PEM certificates ({error})", path.display()),
                            ),
                        },
                        Err(error) => issues.add(
                            "email.ca_file",
                            format!("cannot read {}: {error}", path.display()),
                        ),
                    }
                }
                match builder.build_rustls() {
                    Ok(parameters) => Some(parameters),
                    Err(error) => {
                        issues.add("email.ca_file", format!("TLS settings refused: {error}"));
                        None
                    }
                }
            }
        };
        issues
            .finish()
            .map_err(|issues| EmailConfigError { issues })?;
        let port = config.port_or_default();
        let endpoint = if config.host.contains(':') {
            format!("[{}]:{port}", config.host)
        } else {
            format!("{}:{port}", config.host)
        };
        let credentials = match (&config.username, &config.password) {
            (Some(username), Some(password)) => Some(Credentials::new(
                username.clone(),
                password.expose().to_owned(),
            )),
            _ => None,
        };
        // `validate` checked both.
        let from =
            parse_mailbox(&config.from).map_err(|_| single("email.from", "not a mailbox"))?;
        let default_to = match &config.default_to {
            Some(text) => {
                Some(parse_mailbox(text).map_err(|_| single("email.default_to", "not a mailbox"))?)
            }
            None => None,
        };
        Ok(EmailChannel {
            host: config.host,
            port,
            endpoint,
            security: config.security,
            tls,
            credentials,
            hello: config
                .hello_name
                .map_or_else(ClientId::default, ClientId::Domain),
            from,
            default_to,
            subject: config.subject,
            timeout: config.timeout,
        })
    }

    /// `host:port`, as outcomes name it.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends `message` once, as one SMTP session bounded by `timeout`, and says
    /// what came of it (see the module docs for the mapping).
    pub async fn send(&self, message: &QueuedMessage) -> SendOutcome {
        let composed = match self.compose(message, wall_clock()) {
            Ok(composed) => composed,
            Err(reason) => {
                tracing::warn!(message = %message.id, %reason, "e-mail not sent");
                return SendOutcome::Permanent {
                    endpoint: self.endpoint.clone(),
                    reason,
                };
            }
        };
        let mut stage = Stage::Connect;
        let session = tokio::time::timeout(self.timeout, self.session(&composed, &mut stage)).await;
        let outcome = match session {
            Ok(Ok((connection, response))) => {
                // The outcome is known; QUIT is a courtesy that must not hold it up.
                tokio::spawn(quit(connection));
                let provider_id = queue_id(&response.message().collect::<Vec<_>>())
                    .unwrap_or_else(|| composed.message_id.clone());
                SendOutcome::Accepted {
                    site: SITE.to_owned(),
                    endpoint: self.endpoint.clone(),
                    provider_id,
                }
            }
            Ok(Err(failure)) => classify(stage, &failure, &self.endpoint),
            Err(_elapsed) => classify(stage, &Failure::Timeout(self.timeout), &self.endpoint),
        };
        match &outcome {
            SendOutcome::Accepted { provider_id, .. } => tracing::info!(
                message = %message.id,
                endpoint = %self.endpoint,
                %provider_id,
                "e-mail accepted"
            ),
            other => tracing::warn!(
                message = %message.id,
                endpoint = %self.endpoint,
                outcome = ?other,
                "e-mail not accepted"
            ),
        }
        outcome
    }

    /// The envelope and the formatted e-mail, or why there can be none.
    fn compose(&self, message: &QueuedMessage, date: SystemTime) -> Result<Composed, String> {
        let id = message.id;
        let recipient = match message.email.as_deref().map(str::trim) {
            Some(text) if !text.is_empty() => parse_mailbox(text)
                .map_err(|_| format!("message {id}: not an e-mail address: {text:?}"))?,
            _ => self
                .default_to
                .clone()
                .ok_or_else(|| format!("no e-mail address for message {id}"))?,
        };
        // The same on every send of this message: see "No duplicates" above.
        let message_id = format!("<hotsite-{id}@{}>", self.from.email.domain());
        let body = format!(
            "{}\n\n-- \nFor {} (hotsite message {id}), sent by e-mail.\n",
            text_of(message),
            one_line(&message.destination)
        );
        let email = Message::builder()
            .from(self.from.clone())
            .to(recipient.clone())
            .subject(expand_subject(&self.subject, message))
            .date(date)
            .message_id(Some(message_id.clone()))
            .raw_header(HeaderValue::new(MESSAGE_ID_HEADER, id.to_string()))
            .singlepart(SinglePart::plain(body))
            .map_err(|error| format!("message {id}: cannot build the e-mail: {error}"))?;
        let envelope = Envelope::new(Some(self.from.email.clone()), vec![recipient.email])
            .map_err(|error| format!("message {id}: no envelope: {error}"))?;
        Ok(Composed {
            envelope,
            content: email.formatted(),
            message_id,
        })
    }

    /// One SMTP session, step by step; `stage` says how far it got.
    async fn session(
        &self,
        composed: &Composed,
        stage: &mut Stage,
    ) -> Result<(AsyncSmtpConnection, Response), Failure> {
        let failed = |error| failure_of(&error, self.timeout);
        *stage = Stage::Connect;
        let implicit_tls = match self.security {
            Security::Tls => self.tls.clone(),
            Security::None | Security::Starttls => None,
        };
        let mut connection = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello,
            implicit_tls,
            None,
        )
        .await
        .map_err(failed)?;
        if let (Security::Starttls, Some(tls)) = (self.security, &self.tls) {
            *stage = Stage::Starttls;
            if !connection.can_starttls() {
                return Err(Failure::Transport(
                    "the server does not offer STARTTLS".to_owned(),
                ));
            }
            connection
                .starttls(tls.clone(), &self.hello)
                .await
                .map_err(failed)?;
        }
        if let Some(credentials) = &self.credentials {
            *stage = Stage::Auth;
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(failed)?;
        }
        *stage = Stage::MailFrom;
        let parameters = mail_parameters(&connection, composed)?;
        connection
            .command(Mail::new(composed.envelope.from().cloned(), parameters))
            .await
            .map_err(failed)?;
        *stage = Stage::RcptTo;
        for recipient in composed.envelope.to() {
            connection
                .command(Rcpt::new(recipient.clone(), vec![]))
                .await
                .map_err(failed)?;
        }
        *stage = Stage::Data;
        connection.command(Data).await.map_err(failed)?;
        *stage = Stage::Content;
        let response = connection
            .message(&composed.content)
            .await
            .map_err(failed)?;
        let code = u16::from(response.code());
        if !(200..300).contains(&code) {
            return Err(Failure::Transport(format!(
                "unexpected reply {code} to the message content"
            )));
        }
        Ok((connection, response))
    }
}

impl fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailChannel")
            .field("endpoint", &self.endpoint)
            .field("security", &self.security)
            .field("auth", &self.credentials.is_some())
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// How far an SMTP session got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// TCP connect, TLS handshake with `tls`, greeting, EHLO.
    Connect,
    /// STARTTLS and the EHLO after it.
    Starttls,
    /// AUTH.
    Auth,
    /// `MAIL FROM`.
    MailFrom,
    /// `RCPT TO`.
    RcptTo,
    /// The `DATA` command, before its 354.
    Data,
    /// The content and its final reply: from here a lost connection is ambiguous.
    Content,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connect and greeting",
            Stage::Starttls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::MailFrom => "MAIL FROM",
            Stage::RcptTo => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Content => "the message content",
        })
    }
}

/// Why a session stopped short, as far as classification cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The server answered 4xx or 5xx.
    Reply {
        /// The reply code.
        code: u16,
        /// The reply text (enhanced status code included).
        text: String,
    },
    /// No answer within the bound.
    Timeout(Duration),
    /// Refused or reset connection, TLS failure, garbled or missing reply.
    Transport(String),
    /// Our side will not go on: no AUTH mechanism in common, an address the
    /// server cannot take.
    Refused(String),
}

/// What a stopped session means for the message (see the table in the module
/// docs). Pure: the whole policy of this channel.
pub(crate) fn classify(stage: Stage, failure: &Failure, endpoint: &str) -> SendOutcome {
    let endpoint = endpoint.to_owned();
    let retry = |kind, reason| SendOutcome::Retry {
        endpoint: endpoint.clone(),
        kind,
        reason,
        retry_after: None,
    };
    match failure {
        Failure::Reply { code, text } if (500..600).contains(code) => SendOutcome::Permanent {
            endpoint: endpoint.clone(),
            reason: format!("SMTP {code} at {stage}: {text}"),
        },
        Failure::Reply { code, text } if (400..500).contains(code) => retry(
            RetryKind::ProviderError,
            format!("SMTP {code} at {stage}: {text}"),
        ),
        Failure::Reply { .. } | Failure::Timeout(_) | Failure::Transport(_)
            if stage == Stage::Content =>
        {
            SendOutcome::Ambiguous {
                endpoint: endpoint.clone(),
                reason: format!(
                    "{} while sending the message content: the server may have queued it \
                     (a resend carries the same Message-ID)",
                    describe(failure)
                ),
            }
        }
        Failure::Timeout(_) => retry(
            RetryKind::Timeout,
            format!("{} (at {stage})", describe(failure)),
        ),
        Failure::Reply { .. } | Failure::Transport(_) => retry(
            RetryKind::TransportFailure,
            format!("{} (at {stage})", describe(failure)),
        ),
        Failure::Refused(reason) => SendOutcome::Permanent {
            endpoint: endpoint.clone(),
            reason: format!("{reason} (at {stage})"),
        },
    }
}

fn describe(failure: &Failure) -> String {
    match failure {
        Failure::Reply { code, text } => format!("unexpected reply {code} {text}"),
        Failure::Timeout(limit) => {
            format!("no answer within {}", humantime::format_duration(*limit))
        }
        Failure::Transport(reason) | Failure::Refused(reason) => reason.clone(),
    }
}

/// A lettre error as a [`Failure`]; `limit` is the connect timeout it may report.
fn failure_of(error: &lettre::transport::smtp::Error, limit: Duration) -> Failure {
    if let Some(code) = error.status() {
        let text = std::error::Error::source(error)
            .map(ToString::to_string)
            .unwrap_or_default();
        return Failure::Reply {
            code: u16::from(code),
            text,
        };
    }
    if error.is_timeout() {
        // The TCP connect's own bound, which is the same `timeout`.
        return Failure::Timeout(limit);
    }
    if error.is_client() {
        return Failure::Refused(error.to_string());
    }
    Failure::Transport(error.to_string())
}

/// The server's queue id in its final reply, when the reply names one the
/// usual ways: Postfix `Ok: queued as 4Bxyz`, Exim `OK id=1abc-000-XY`,
/// Sendmail `u6MJ8f0A012345 Message accepted for delivery`.
pub(crate) fn queue_id(lines: &[&str]) -> Option<String> {
    let token = |text: &str| -> Option<String> {
        let token: String = text
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
            .collect();
        let token = token.trim_end_matches(['.', '-']);
        (!token.is_empty() && token.len() <= 64).then(|| token.to_owned())
    };
    for line in lines {
        let lower = line.to_ascii_lowercase();
        if let Some(at) = lower.find("queued as ") {
            if let Some(id) = token(&line[at + "queued as ".len()..]) {
                return Some(id);
            }
        }
        if let Some(at) = lower.find("id=") {
            let starts_word = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
            if starts_word {
                if let Some(id) = token(&line[at + "id=".len()..]) {
                    return Some(id);
                }
            }
        }
        if lower.contains("message accepted for delivery") {
            // `[2.0.0 ]<queue id> Message accepted for delivery`
            let words: Vec<&str> = line.split_whitespace().collect();
            let first = match words.first() {
                Some(word)
                    if word.starts_with(|c: char| c.is_ascii_digit()) && word.contains('.') =>
                {
                    words.get(1)
                }
                other => other,
            };
            if let Some(word) = first.filter(|word| !word.eq_ignore_ascii_case("message")) {
                if let Some(id) = token(word) {
                    return Some(id);
                }
            }
        }
    }
    None
}

/// What one send transmits.
#[derive(Debug)]
struct Composed {
    envelope: Envelope,
    content: Vec<u8>,
    message_id: String,
}

/// `MAIL FROM` parameters the content needs, or why this server cannot take it.
fn mail_parameters(
    connection: &AsyncSmtpConnection,
    composed: &Composed,
) -> Result<Vec<MailParameter>, Failure> {
    let info = connection.server_info();
    let mut parameters = Vec::new();
    let addresses_ascii = composed
        .envelope
        .from()
        .into_iter()
        .chain(composed.envelope.to())
        .all(|address| AsRef::<str>::as_ref(address).is_ascii());
    if !addresses_ascii {
        if !info.supports_feature(Extension::SmtpUtfEight) {
            return Err(Failure::Refused(
                "the address is not ASCII and the server does not offer SMTPUTF8".to_owned(),
            ));
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    // The body is quoted-printable or base64; only non-ASCII addresses in the
    // headers can make the content 8-bit.
    if !composed.content.is_ascii() {
        if !info.supports_feature(Extension::EightBitMime) {
            return Err(Failure::Refused(
                "the e-mail is not ASCII and the server does not offer 8BITMIME".to_owned(),
            ));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    Ok(parameters)
}

async fn quit(mut connection: AsyncSmtpConnection) {
    if tokio::time::timeout(QUIT_WAIT, connection.quit())
        .await
        .is_err()
    {
        tracing::debug!("no answer to QUIT; closing");
    }
}

/// `Name <user@domain>` or `user@domain`, the whole text and nothing else.
fn parse_mailbox(text: &str) -> Result<Mailbox, ()> {
    let text = text.trim();
    if text.contains(|c: char| c.is_control()) {
        return Err(());
    }
    if text.contains('<') {
        if !text.ends_with('>') || text.matches('<').count() != 1 {
            return Err(());
        }
        let mailbox = Mailbox::from_str(text).map_err(|_| ())?;
        // lettre's parser stops at what it understands; insist that the
        // address between the brackets is the whole of it.
        let inner = &text[text.find('<').map_or(0, |at| at + 1)..text.len() - 1];
        (inner.trim() == AsRef::<str>::as_ref(&mailbox.email))
            .then_some(mailbox)
            .ok_or(())
    } else {
        Address::from_str(text).map(Mailbox::from).map_err(|_| ())
    }
}

const PLACEHOLDERS: [&str; 2] = ["{from}", "{to}"];

fn check_subject(subject: &str) -> Result<(), String> {
    if subject.contains(|c: char| c.is_control()) {
        return Err("must be one line without control characters".to_owned());
    }
    let mut rest = subject;
    while let Some(open) = rest.find('{') {
        let after = &rest[open..];
        match PLACEHOLDERS.iter().find(|name| after.starts_with(**name)) {
            Some(name) => rest = &after[name.len()..],
            None => {
                let shown: String = after.chars().take_while(|&c| c != '}').collect();
                return Err(format!(
                    "unknown placeholder {shown}}}: the known ones are {{from}} and {{to}}"
                ));
            }
        }
    }
    Ok(())
}

fn expand_subject(template: &str, message: &QueuedMessage) -> String {
    // One pass, so a `{to}` inside the sender's address is not expanded again.
    let mut subject = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        subject.push_str(&rest[..open]);
        let after = &rest[open..];
        if let Some(tail) = after.strip_prefix("{from}") {
            subject.push_str(&one_line(&message.source));
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("{to}") {
            subject.push_str(&one_line(&message.destination));
            rest = tail;
        } else {
            subject.push('{');
            rest = &after[1..];
        }
    }
    subject.push_str(rest);
    subject
}

/// `text` with control characters (line breaks) as spaces: it goes into a header.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The `Date:` header's time, from the messaging drivers' one clock.
fn wall_clock() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(crate::clock::now_ms()).unwrap_or(0))
}

fn default_subject() -> String {
    DEFAULT_SUBJECT.to_owned()
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

fn single(key: &str, reason: &str) -> EmailConfigError {
    EmailConfigError {
        issues: vec![EmailConfigIssue::new(key, reason)],
    }
}

fn join_issues(issues: &[EmailConfigIssue]) -> String {
    EmailConfigIssue::join(
        issues, "
",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotsite_store::MessageId;

    fn config() -> EmailConfig {
        EmailConfig::new("smtp.example.com", "Hotsite <hotsite@example.com>")
    }

    #[track_caller]
    fn check_invalid(config: EmailConfig, expected: &[&str]) {
        let error = config.validate().expect_err("invalid");
        let lines: Vec<String> = error.issues.iter().map(ToString::to_string).collect();
        assert_eq!(lines, expected);
        assert_eq!(error.to_string(), expected.join("\n"));
    }

    fn message(id: i64, email: Option<&str>) -> QueuedMessage {
        QueuedMessage {
            id: MessageId(id),
            source: "ACME".to_owned(),
            destination: "+447700900123".to_owned(),
            body: b"Your code is 1234".to_vec(),
            data_coding: 0,
            reference: Some((id & 0xFFFF) as u16),
            attempts: 0,
            route: String::new(),
            hop: 2,
            email: email.map(str::to_owned),
        }
    }

    #[test]
    fn defaults() {
        let config = config();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.port_or_default(), 587);
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert_eq!(config.subject, "Message from {from}");
        let ports: Vec<u16> = [Security::None, Security::Starttls, Security::Tls]
            .into_iter()
            .map(Security::default_port)
            .collect();
        assert_eq!(ports, [25, 587, 465]);
    }

    #[test]
    fn deserializes_with_defaults_and_durations() {
        let config: EmailConfig = serde_json::from_value(serde_json::json!({
            "host": "127.0.0.1",
            "security": "tls",
            "from": "hotsite@example.com",
            "timeout": "500ms",
        }))
        .expect("parses");
        assert_eq!(config.security, Security::Tls);
        assert_eq!(config.port_or_default(), 465);
        assert_eq!(config.timeout, Duration::from_millis(500));
        assert_eq!(config.subject, DEFAULT_SUBJECT);

        let error = serde_json::from_value::<EmailConfig>(serde_json::json!({
            "host": "h", "from": "a@b.c", "timeout": "soon",
        }))
        .expect_err("not a duration");
        assert!(
            error.to_string().contains("\"soon\" is not a duration"),
            "{error}"
        );
        let error = serde_json::from_value::<EmailConfig>(serde_json::json!({
            "host": "h", "from": "a@b.c", "security": "ssl",
        }))
        .expect_err("unknown mode");
        assert!(
            error.to_string().contains("unknown variant `ssl`"),
            "{error}"
        );
        let error = serde_json::from_value::<EmailConfig>(serde_json::json!({
            "host": "h", "from": "a@b.c", "pasword": "x",
        }))
        .expect_err("unknown key");
        assert!(
            error.to_string().contains("unknown field `pasword`"),
            "{error}"
        );
    }

    #[test]
    fn from_must_be_a_mailbox() {
        check_invalid(
            EmailConfig::new("smtp.example.com", "x"),
            &["email.from: not a mailbox: \"x\""],
        );
        check_invalid(
            EmailConfig::new("smtp.example.com", "a@b.c trailing"),
            &["email.from: not a mailbox: \"a@b.c trailing\""],
        );
        assert_eq!(
            EmailConfig::new("h", "Hotsite Alerts <alerts@example.com>").validate(),
            Ok(())
        );
    }

    #[test]
    fn credentials_come_in_pairs_and_never_in_clear() {
        let mut password_only = config();
        password_only.password = Some("secret".into());
        check_invalid(
            password_only,
            &["email.password: set without email.username: AUTH needs both"],
        );

        let mut username_only = config();
        username_only.username = Some("user".to_owned());
        check_invalid(
            username_only,
            &["email.password: required with email.username"],
        );

        let mut clear = config();
        clear.security = Security::None;
        clear.username = Some("user".to_owned());
        clear.password = Some("secret".into());
        check_invalid(
            clear.clone(),
            &[
                "email.security: AUTH over \"none\" would send the password in clear; use \
               \"starttls\" or \"tls\", or set email.allow_plaintext_auth = true",
            ],
        );
        clear.allow_plaintext_auth = true;
        assert_eq!(clear.validate(), Ok(()));
        assert!(!format!("{clear:?}").contains("secret"), "{clear:?}");
    }

    #[test]
    fn every_problem_is_listed_with_its_key() {
        let mut config = EmailConfig::new(" ", "nobody");
        config.port = Some(0);
        config.default_to = Some("not an address".to_owned());
        config.subject = "From {sender}".to_owned();
        config.timeout = Duration::from_millis(10);
        config.hello_name = Some("my host".to_owned());
        check_invalid(
            config,
            &[
                "email.host: must not be empty",
                "email.port: must be between 1 and 65535",
                "email.from: not a mailbox: \"nobody\"",
                "email.default_to: not a mailbox: \"not an address\"",
                "email.subject: unknown placeholder {sender}: the known ones are {from} and {to}",
                "email.timeout: 10ms is out of bounds (100ms to 10m)",
                "email.hello_name: not a host name: \"my host\"",
            ],
        );
        let mut injected = self::config();
        injected.subject = "Hi\r\nBcc: x@y.z".to_owned();
        check_invalid(
            injected,
            &["email.subject: must be one line without control characters"],
        );
    }

    #[test]
    fn ca_file_needs_tls() {
        let mut config = config();
        config.security = Security::None;
        config.ca_file = Some(PathBuf::from("ca.pem"));
        check_invalid(
            config,
            &[
                "email.ca_file: set with security = \"none\", which uses no TLS; use \"starttls\" \
               or \"tls\"",
            ],
        );
    }

    /// The dispatcher runs sends on spawned tasks.
    #[test]
    fn send_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let channel = EmailChannel::new(config()).expect("valid");
        let message = message(1, None);
        let send = channel.send(&message);
        assert_send(&send);
    }

    #[test]
    fn unreadable_ca_file_names_the_key() {
        let mut config = config();
        config.ca_file = Some(PathBuf::from("/nonexistent/hotsite-ca.pem"));
        let error = EmailChannel::new(config).expect_err("no such file");
        assert_eq!(error.issues.len(), 1);
        assert_eq!(error.issues[0].key, "email.ca_file");
        assert!(error
            .to_string()
            .starts_with("email.ca_file: cannot read /nonexistent/hotsite-ca.pem"));
    }

    #[test]
    fn compose_carries_stable_ids_and_the_destination() {
        let mut config = config();
        config.subject = "SMS from {from} to {to}".to_owned();
        let channel = EmailChannel::new(config).expect("valid");
        let date = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let first = channel
            .compose(&message(42, Some("Alice <alice@example.org>")), date)
            .expect("composes");
        let again = channel
            .compose(&message(42, Some("alice@example.org")), date)
            .expect("composes");
        assert_eq!(first.message_id, "<hotsite-42@example.com>");
        assert_eq!(again.message_id, first.message_id);
        let text = String::from_utf8(first.content.clone()).expect("ASCII");
        assert!(
            text.contains("Message-ID: <hotsite-42@example.com>\r\n"),
            "{text}"
        );
        assert!(text.contains("X-Hotsite-Message-Id: 42\r\n"), "{text}");
        assert!(
            text.contains("Subject: SMS from ACME to +447700900123\r\n"),
            "{text}"
        );
        assert!(text.contains("Your code is 1234"), "{text}");
        assert!(
            text.contains("For +447700900123 (hotsite message 42)"),
            "{text}"
        );
        assert_eq!(
            first.envelope.from().map(AsRef::<str>::as_ref),
            Some("hotsite@example.com")
        );
        let to: Vec<&str> = first
            .envelope
            .to()
            .iter()
            .map(AsRef::<str>::as_ref)
            .collect();
        assert_eq!(to, ["alice@example.org"]);
    }

    #[test]
    fn compose_refuses_missing_and_invalid_addresses() {
        let channel = EmailChannel::new(config()).expect("valid");
        let date = UNIX_EPOCH;
        assert_eq!(
            channel.compose(&message(7, None), date).map(|_| ()),
            Err("no e-mail address for message 7".to_owned())
        );
        assert_eq!(
            channel.compose(&message(7, Some("  ")), date).map(|_| ()),
            Err("no e-mail address for message 7".to_owned())
        );
        assert_eq!(
            channel.compose(&message(8, Some("bob@")), date).map(|_| ()),
            Err("message 8: not an e-mail address: \"bob@\"".to_owned())
        );

        let mut config = config();
        config.default_to = Some("desk@example.com".to_owned());
        let channel = EmailChannel::new(config).expect("valid");
        let composed = channel.compose(&message(9, None), date).expect("composes");
        let to: Vec<&str> = composed
            .envelope
            .to()
            .iter()
            .map(AsRef::<str>::as_ref)
            .collect();
        assert_eq!(to, ["desk@example.com"]);
    }

    #[test]
    fn subject_placeholders_expand_once() {
        let mut message = message(1, None);
        message.source = "{to}".to_owned();
        message.destination = "line\nbreak".to_owned();
        assert_eq!(
            expand_subject("{from} -> {to} {other", &message),
            "{to} -> line break {other"
        );
    }

    const ENDPOINT: &str = "smtp.example.com:587";

    fn reply(code: u16, text: &str) -> Failure {
        Failure::Reply {
            code,
            text: text.to_owned(),
        }
    }

    fn retry(kind: RetryKind, reason: &str) -> SendOutcome {
        SendOutcome::Retry {
            endpoint: ENDPOINT.to_owned(),
            kind,
            reason: reason.to_owned(),
            retry_after: None,
        }
    }

    /// SPEC M10/M14: 5xx is permanent, 4xx is retried, transport trouble is
    /// retried as such; SPEC M8: trouble once the content is on its way is
    /// ambiguous.
    #[test]
    fn classification() {
        let permanent = |reason: &str| SendOutcome::Permanent {
            endpoint: ENDPOINT.to_owned(),
            reason: reason.to_owned(),
        };
        let cases = [
            (
                Stage::RcptTo,
                reply(550, "5.1.1 mailbox unavailable"),
                permanent("SMTP 550 at RCPT TO: 5.1.1 mailbox unavailable"),
            ),
            (
                Stage::Auth,
                reply(535, "5.7.8 Authentication credentials invalid"),
                permanent("SMTP 535 at AUTH: 5.7.8 Authentication credentials invalid"),
            ),
            (
                Stage::Content,
                reply(554, "5.6.0 rejected"),
                permanent("SMTP 554 at the message content: 5.6.0 rejected"),
            ),
            (
                Stage::Connect,
                reply(421, "4.3.2 shutting down"),
                retry(
                    RetryKind::ProviderError,
                    "SMTP 421 at connect and greeting: 4.3.2 shutting down",
                ),
            ),
            (
                Stage::MailFrom,
                reply(450, "busy"),
                retry(RetryKind::ProviderError, "SMTP 450 at MAIL FROM: busy"),
            ),
            (
                Stage::Content,
                reply(451, "4.3.0 try later"),
                retry(
                    RetryKind::ProviderError,
                    "SMTP 451 at the message content: 4.3.0 try later",
                ),
            ),
            (
                Stage::RcptTo,
                reply(452, "too many recipients"),
                retry(
                    RetryKind::ProviderError,
                    "SMTP 452 at RCPT TO: too many recipients",
                ),
            ),
            (
                Stage::Connect,
                Failure::Transport("Connection refused".to_owned()),
                retry(
                    RetryKind::TransportFailure,
                    "Connection refused (at connect and greeting)",
                ),
            ),
            (
                Stage::Starttls,
                Failure::Transport("tls error: invalid peer certificate".to_owned()),
                retry(
                    RetryKind::TransportFailure,
                    "tls error: invalid peer certificate (at STARTTLS)",
                ),
            ),
            (
                Stage::Data,
                Failure::Transport("incomplete response".to_owned()),
                retry(RetryKind::TransportFailure, "incomplete response (at DATA)"),
            ),
            (
                Stage::Connect,
                Failure::Timeout(Duration::from_millis(500)),
                retry(
                    RetryKind::Timeout,
                    "no answer within 500ms (at connect and greeting)",
                ),
            ),
            (
                Stage::Auth,
                Failure::Refused("no compatible authentication mechanism".to_owned()),
                permanent("no compatible authentication mechanism (at AUTH)"),
            ),
        ];
        for (stage, failure, expected) in cases {
            assert_eq!(
                classify(stage, &failure, ENDPOINT),
                expected,
                "{stage} {failure:?}"
            );
        }
        for failure in [
            Failure::Timeout(Duration::from_secs(30)),
            Failure::Transport("connection reset".to_owned()),
            reply(250, "odd"),
        ] {
            assert!(
                matches!(
                    classify(Stage::Content, &failure, ENDPOINT),
                    SendOutcome::Ambiguous { .. }
                ),
                "{failure:?}"
            );
        }
    }

    #[test]
    fn queue_ids_from_final_replies() {
        let cases: [(&[&str], Option<&str>); 7] = [
            (&["2.0.0 Ok: queued as 4BxYz12Q3r"], Some("4BxYz12Q3r")),
            (&["OK id=1rAbCd-000Xyz-9Q"], Some("1rAbCd-000Xyz-9Q")),
            (
                &["2.0.0 u6MJ8f0A012345 Message accepted for delivery"],
                Some("u6MJ8f0A012345"),
            ),
            (&["Queued as ABC123."], Some("ABC123")),
            (&["OK"], None),
            (&["2.0.0 Ok"], None),
            (&["message-id=<x@y>"], None),
        ];
        for (lines, expected) in cases {
            assert_eq!(queue_id(lines).as_deref(), expected, "{lines:?}");
        }
    }
}
