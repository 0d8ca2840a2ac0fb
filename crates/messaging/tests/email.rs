//! The e-mail channel, the last-resort hop of a route (SPEC M11), against a
//! real SMTP server: **aiosmtpd** (PyPI), run by `tests/interop/smtp_server.py`
//! (pinned in `tests/interop/requirements.txt`: `pip install -r
//! tests/interop/requirements.txt`, as `scripts/test` does). The interpreter
//! is `python3`, or `$HOTSITE_PYTHON` when set; a missing interpreter or
//! package fails the test, as in the SMPP interop tests, rather than skipping
//! it. The servers that misbehave in ways aiosmtpd will not (never greets,
//! hangs up after the content) are small tokio listeners here.
//!
//! Every child process is killed when its handle drops, and every wait is
//! bounded.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hotsite_messaging::channel::email::{EmailChannel, EmailConfig, Security};
use hotsite_messaging::channel::{RetryKind, SendOutcome};
use hotsite_store::{MessageId, QueuedMessage};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Upper bound on any single wait on a peer.
const WAIT: Duration = Duration::from_secs(10);

const FROM: &str = "Hotsite <hotsite@example.com>";
const USER: &str = "hotsite";
const PASSWORD: &str = "s3cret";

/// `tests/interop/smtp_server.py` running aiosmtpd on 127.0.0.1.
struct SmtpServer {
    port: u16,
    /// The test CA, written to a file for `ca_file` (with `--starttls`/`--tls`).
    ca_file: Option<TempFile>,
    events: mpsc::UnboundedReceiver<Value>,
    stderr: Arc<Mutex<String>>,
    _child: Child,
}

impl SmtpServer {
    async fn start(options: &[&str]) -> SmtpServer {
        let interpreter = std::env::var("HOTSITE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/smtp_server.py");
        let mut child = Command::new(interpreter)
            .arg(script)
            .arg("0")
            .args(options)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start smtp_server.py: {error} (needs python3 with the packages of \
                     tests/interop/requirements.txt)"
                )
            });
        let (sender, mut events) = mpsc::unbounded_channel();
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let event = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "event": "garbage", "line": line }));
                if sender.send(event).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut child_stderr = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = child_stderr.read(&mut buffer).await {
                sink.lock()
                    .expect("stderr lock")
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        let ready = match timeout(WAIT, events.recv()).await {
            Ok(Some(ready)) if ready["event"] == "ready" => ready,
            other => panic!(
                "smtp_server.py did not start: {other:?}\nstderr: {} (needs python3 with the \
                 packages of tests/interop/requirements.txt)",
                stderr.lock().expect("stderr lock")
            ),
        };
        let port = u16::try_from(ready["port"].as_u64().expect("port")).expect("a port");
        let ca_file = ready["ca_pem"].as_str().map(|pem| {
            let path = std::env::temp_dir().join(format!(
                "hotsite-email-test-ca-{}-{port}.pem",
                std::process::id()
            ));
            std::fs::write(&path, pem).expect("CA file written");
            TempFile(path)
        });
        SmtpServer {
            port,
            ca_file,
            events,
            stderr,
            _child: child,
        }
    }

    /// A configuration for this server: `security`, its CA trusted.
    fn config(&self, security: Security) -> EmailConfig {
        let mut config = EmailConfig::new("127.0.0.1", FROM);
        config.port = Some(self.port);
        config.security = security;
        config.ca_file = self.ca_file.as_ref().map(|file| file.0.clone());
        config.timeout = Duration::from_secs(5);
        config
    }

    /// The next event of `kind`, skipping others.
    async fn next(&mut self, kind: &str) -> Value {
        loop {
            match timeout(WAIT, self.events.recv()).await {
                Ok(Some(event)) if event["event"] == kind => return event,
                Ok(Some(_)) => {}
                other => panic!("no {kind} event: {other:?}\nstderr: {}", self.stderr()),
            }
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }
}

/// A file removed when the test ends, however it ends.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn message(id: i64, text: &str, email: Option<&str>) -> QueuedMessage {
    QueuedMessage {
        id: MessageId(id),
        source: "ACME".to_owned(),
        destination: "+447700900123".to_owned(),
        body: text.as_bytes().to_vec(),
        data_coding: 0,
        reference: Some((id & 0xFFFF) as u16),
        attempts: 0,
        route: "chat".to_owned(),
        hop: 2,
        email: email.map(str::to_owned),
    }
}

fn channel(config: EmailConfig) -> EmailChannel {
    EmailChannel::new(config).expect("valid e-mail config")
}

#[track_caller]
fn assert_retry(outcome: &SendOutcome, expected: RetryKind, reason_has: &str) {
    match outcome {
        SendOutcome::Retry {
            kind,
            reason,
            retry_after,
            ..
        } => {
            assert_eq!(*kind, expected, "{outcome:?}");
            assert!(reason.contains(reason_has), "{outcome:?}");
            assert_eq!(*retry_after, None, "{outcome:?}");
        }
        other => panic!("expected Retry {{ {expected:?} }}, got {other:?}"),
    }
}

#[track_caller]
fn assert_permanent(outcome: &SendOutcome, reason_has: &[&str]) {
    match outcome {
        SendOutcome::Permanent { reason, .. } => {
            for part in reason_has {
                assert!(reason.contains(part), "{part:?} not in {outcome:?}");
            }
        }
        other => panic!("expected Permanent, got {other:?}"),
    }
}

/// SPEC M11 (the fallback hop delivers), M8 (every send of a message carries
/// the same Message-ID and X-Hotsite-Message-Id, so a resend can be dropped):
/// a plain session to aiosmtpd; the text and who it was for arrive.
#[tokio::test]
async fn plain_delivery_carries_stable_ids_and_text() {
    let mut server = SmtpServer::start(&[]).await;
    let channel = channel(server.config(Security::None));
    let message = message(
        42,
        "Your table is ready.",
        Some("Alice <alice@example.org>"),
    );

    let outcome = channel.send(&message).await;
    assert_eq!(
        outcome,
        SendOutcome::Accepted {
            site: "email".to_owned(),
            endpoint: format!("127.0.0.1:{}", server.port),
            provider_id: "<hotsite-42@example.com>".to_owned(),
        },
        "stderr: {}",
        server.stderr()
    );
    let mail = server.next("mail").await;
    assert_eq!(mail["mail_from"], "hotsite@example.com", "{mail:#}");
    assert_eq!(
        mail["rcpt_tos"],
        serde_json::json!(["alice@example.org"]),
        "{mail:#}"
    );
    assert_eq!(mail["tls"], false, "{mail:#}");
    assert_eq!(mail["message_id"], "<hotsite-42@example.com>", "{mail:#}");
    assert_eq!(mail["x_hotsite_message_id"], "42", "{mail:#}");
    assert_eq!(mail["subject"], "Message from ACME", "{mail:#}");
    assert_eq!(mail["from"], "Hotsite <hotsite@example.com>", "{mail:#}");
    assert_eq!(mail["to"], "Alice <alice@example.org>", "{mail:#}");
    assert_eq!(mail["content_type"], "text/plain", "{mail:#}");
    let text = mail["text"].as_str().expect("a text body");
    assert!(text.starts_with("Your table is ready.\n"), "{text:?}");
    assert!(
        text.contains("For +447700900123 (hotsite message 42)"),
        "{text:?}"
    );

    // A resend (after an unknown outcome) is the same e-mail, same ids.
    let again = channel.send(&message).await;
    assert!(matches!(again, SendOutcome::Accepted { .. }), "{again:?}");
    let repeat = server.next("mail").await;
    assert_eq!(repeat["message_id"], mail["message_id"], "{repeat:#}");
    assert_eq!(repeat["x_hotsite_message_id"], "42", "{repeat:#}");
}

/// SPEC M11: a UCS-2 body (data_coding 8) arrives as the same text, UTF-8.
#[tokio::test]
async fn ucs2_body_arrives_as_text() {
    let mut server = SmtpServer::start(&[]).await;
    let channel = channel(server.config(Security::None));
    let text = "Привет € 你好 👋";
    let mut message = message(43, "", Some("alice@example.org"));
    message.body = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    message.data_coding = 8;
    message.source = "Кафе".to_owned();

    let outcome = channel.send(&message).await;
    assert!(
        matches!(outcome, SendOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    let mail = server.next("mail").await;
    assert_eq!(mail["charset"], "utf-8", "{mail:#}");
    assert_eq!(mail["subject"], "Message from Кафе", "{mail:#}");
    let received = mail["text"].as_str().expect("a text body");
    assert!(received.starts_with(&format!("{text}\n")), "{received:?}");
    assert_eq!(mail["x_hotsite_message_id"], "43", "{mail:#}");
}

/// The server's queue id from its final `250 … queued as X` is the provider id.
#[tokio::test]
async fn queue_id_of_the_final_reply_is_the_provider_id() {
    let mut server = SmtpServer::start(&["--queue-id", "4BxYz12Q3r"]).await;
    let channel = channel(server.config(Security::None));
    let outcome = channel
        .send(&message(44, "hello", Some("alice@example.org")))
        .await;
    match &outcome {
        SendOutcome::Accepted { provider_id, .. } => assert_eq!(provider_id, "4BxYz12Q3r"),
        other => panic!("not accepted: {other:?}"),
    }
    server.next("mail").await;
}

/// SPEC M11: a message without its own address goes to `default_to`.
#[tokio::test]
async fn default_to_is_used_without_an_address() {
    let mut server = SmtpServer::start(&[]).await;
    let mut config = server.config(Security::None);
    config.default_to = Some("desk@example.com".to_owned());
    let outcome = channel(config).send(&message(45, "hello", None)).await;
    assert!(
        matches!(outcome, SendOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    let mail = server.next("mail").await;
    assert_eq!(
        mail["rcpt_tos"],
        serde_json::json!(["desk@example.com"]),
        "{mail:#}"
    );
}

/// STARTTLS (required, certificate checked against the configured CA) and
/// AUTH deliver; the server saw an encrypted, authenticated session.
#[tokio::test]
async fn starttls_and_auth_deliver() {
    let account = format!("{USER}:{PASSWORD}");
    let mut server = SmtpServer::start(&["--starttls", "--auth", &account]).await;
    let mut config = server.config(Security::Starttls);
    config.username = Some(USER.to_owned());
    config.password = Some(PASSWORD.into());
    let outcome = channel(config)
        .send(&message(46, "over TLS", Some("alice@example.org")))
        .await;
    assert!(
        matches!(outcome, SendOutcome::Accepted { .. }),
        "{outcome:?}\nstderr: {}",
        server.stderr()
    );
    let mail = server.next("mail").await;
    assert_eq!(mail["tls"], true, "{mail:#}");
    assert_eq!(mail["auth_user"], USER, "{mail:#}");
    assert_eq!(mail["message_id"], "<hotsite-46@example.com>", "{mail:#}");
}

/// TLS from the first byte (SMTPS) with AUTH delivers too.
#[tokio::test]
async fn implicit_tls_delivers() {
    let account = format!("{USER}:{PASSWORD}");
    let mut server = SmtpServer::start(&["--tls", "--auth", &account]).await;
    let mut config = server.config(Security::Tls);
    config.username = Some(USER.to_owned());
    config.password = Some(PASSWORD.into());
    let outcome = channel(config)
        .send(&message(47, "over SMTPS", Some("alice@example.org")))
        .await;
    assert!(
        matches!(outcome, SendOutcome::Accepted { .. }),
        "{outcome:?}\nstderr: {}",
        server.stderr()
    );
    let mail = server.next("mail").await;
    assert_eq!(mail["tls"], true, "{mail:#}");
    assert_eq!(mail["auth_user"], USER, "{mail:#}");
}

/// SPEC M14: an authentication failure (535) is permanent, not retried.
#[tokio::test]
async fn wrong_password_is_permanent() {
    let account = format!("{USER}:{PASSWORD}");
    let server = SmtpServer::start(&["--starttls", "--auth", &account]).await;
    let mut config = server.config(Security::Starttls);
    config.username = Some(USER.to_owned());
    config.password = Some("wrong".into());
    let outcome = channel(config)
        .send(&message(48, "hello", Some("alice@example.org")))
        .await;
    assert_permanent(&outcome, &["535", "AUTH"]);
}

/// SPEC M10: a certificate the client does not trust is a transport failure,
/// retried (never a reason to go on in clear).
#[tokio::test]
async fn untrusted_certificate_is_a_transport_failure() {
    let server = SmtpServer::start(&["--starttls"]).await;
    let mut config = server.config(Security::Starttls);
    config.ca_file = None;
    let outcome = channel(config)
        .send(&message(49, "hello", Some("alice@example.org")))
        .await;
    assert_retry(&outcome, RetryKind::TransportFailure, "STARTTLS");
}

/// SPEC M10: STARTTLS required but not offered is a transport failure; the
/// message is not sent in clear.
#[tokio::test]
async fn starttls_not_offered_is_a_transport_failure() {
    let mut server = SmtpServer::start(&[]).await;
    let outcome = channel(server.config(Security::Starttls))
        .send(&message(50, "hello", Some("alice@example.org")))
        .await;
    assert_retry(
        &outcome,
        RetryKind::TransportFailure,
        "does not offer STARTTLS",
    );
    assert!(
        timeout(Duration::from_millis(300), server.next("mail"))
            .await
            .is_err(),
        "sent in clear"
    );
}

/// SPEC M10/M14: 550 to RCPT TO is a permanent refusal, with code and text.
#[tokio::test]
async fn rcpt_550_is_permanent() {
    let server = SmtpServer::start(&["--reject-rcpt", "550"]).await;
    let outcome = channel(server.config(Security::None))
        .send(&message(51, "hello", Some("nobody@example.org")))
        .await;
    assert_permanent(&outcome, &["550", "RCPT TO", "5.1.1 Mailbox unavailable"]);
}

/// SPEC M14: 451 (temporary) at the end of DATA is retried as a provider error.
#[tokio::test]
async fn data_451_is_retried() {
    let server = SmtpServer::start(&["--reject-data", "451"]).await;
    let outcome = channel(server.config(Security::None))
        .send(&message(52, "hello", Some("alice@example.org")))
        .await;
    assert_retry(&outcome, RetryKind::ProviderError, "451");
}

/// SPEC M14: 451 to RCPT TO (greylisting, say) is retried as a provider error.
#[tokio::test]
async fn rcpt_451_is_retried() {
    let server = SmtpServer::start(&["--reject-rcpt", "451"]).await;
    let outcome = channel(server.config(Security::None))
        .send(&message(53, "hello", Some("alice@example.org")))
        .await;
    assert_retry(&outcome, RetryKind::ProviderError, "SMTP 451 at RCPT TO");
}

/// SPEC M10: nothing listening is a transport failure.
#[tokio::test]
async fn nothing_listening_is_a_transport_failure() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let mut config = EmailConfig::new("127.0.0.1", FROM);
    config.port = Some(port);
    config.security = Security::None;
    let outcome = channel(config)
        .send(&message(54, "hello", Some("alice@example.org")))
        .await;
    assert_retry(&outcome, RetryKind::TransportFailure, "connect");
}

/// SPEC M10: a server that takes the connection and never greets is a
/// timeout, reported within the configured bound.
#[tokio::test]
async fn silent_server_times_out_within_the_bound() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut config = EmailConfig::new("127.0.0.1", FROM);
    config.port = Some(port);
    config.security = Security::None;
    config.timeout = Duration::from_millis(500);
    let channel = channel(config);

    #[allow(clippy::disallowed_methods)] // test clock: measures real loopback time
    let start = std::time::Instant::now();
    let outcome = timeout(
        Duration::from_secs(5),
        channel.send(&message(55, "hello", Some("alice@example.org"))),
    )
    .await
    .expect("bounded by the channel, not by the test");
    let elapsed = start.elapsed();
    silent.abort();
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_millis(1500),
        "took {elapsed:?}"
    );
    assert_retry(&outcome, RetryKind::Timeout, "no answer within 500ms");
}

/// SPEC M8: a server that takes the whole content and then hangs up (or goes
/// silent) may or may not have queued the e-mail: ambiguous, not a plain retry.
#[tokio::test]
async fn lost_reply_after_the_content_is_ambiguous() {
    for hang_up in [true, false] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let server = tokio::spawn(fake_server_losing_the_final_reply(listener, hang_up));
        let mut config = EmailConfig::new("127.0.0.1", FROM);
        config.port = Some(port);
        config.security = Security::None;
        config.timeout = Duration::from_millis(800);
        let outcome = timeout(
            Duration::from_secs(5),
            channel(config).send(&message(56, "hello", Some("alice@example.org"))),
        )
        .await
        .expect("bounded");
        server.abort();
        match &outcome {
            SendOutcome::Ambiguous { endpoint, reason } => {
                assert_eq!(endpoint, &format!("127.0.0.1:{port}"));
                assert!(reason.contains("may have queued it"), "{outcome:?}");
            }
            other => panic!("hang_up {hang_up}: expected Ambiguous, got {other:?}"),
        }
    }
}

/// SPEC M11: a message with no address and no `default_to` fails for good,
/// without a connection.
#[tokio::test]
async fn no_address_is_permanent() {
    // Nothing listens there: a connection attempt would be a transport failure.
    let mut config = EmailConfig::new("127.0.0.1", FROM);
    config.port = Some(9);
    config.security = Security::None;
    let channel = channel(config);
    let outcome = channel.send(&message(57, "hello", None)).await;
    assert_eq!(
        outcome,
        SendOutcome::Permanent {
            endpoint: "127.0.0.1:9".to_owned(),
            reason: "no e-mail address for message 57".to_owned(),
        }
    );
    let outcome = channel
        .send(&message(58, "hello", Some("alice@@example.org")))
        .await;
    assert_permanent(&outcome, &["not an e-mail address", "alice@@example.org"]);
}

/// Greets, answers EHLO, MAIL, RCPT and DATA, reads the content up to its
/// final dot, then hangs up (`hang_up`) or says nothing more.
async fn fake_server_losing_the_final_reply(listener: TcpListener, hang_up: bool) {
    let Ok((socket, _)) = listener.accept().await else {
        return;
    };
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    let _ = write.write_all(b"220 fake ESMTP\r\n").await;
    let mut in_content = false;
    while let Ok(Some(line)) = lines.next_line().await {
        if in_content {
            if line == "." {
                if hang_up {
                    return;
                }
                std::future::pending::<()>().await;
            }
            continue;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-fake\r\n250 8BITMIME\r\n",
            "DATA" => {
                in_content = true;
                b"354 go ahead\r\n"
            }
            _ => b"250 OK\r\n",
        };
        let _ = write.write_all(reply).await;
    }
}
