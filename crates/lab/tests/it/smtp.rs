//! The SMTP sink, through a real mail client (lettre) and raw conversations.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hotsite_lab::{Lab, LabConfig, LabHandle, SmtpConfig, SmtpFault, SmtpMail};
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(2);

async fn smtp_lab() -> LabHandle {
    let mut config = LabConfig::loopback(&[]);
    config.smtp = Some(SmtpConfig::loopback());
    Lab::start(config).await.expect("lab starts")
}

fn transport(addr: SocketAddr) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
        .port(addr.port())
        .timeout(Some(WAIT))
        .build()
}

fn fallback_mail(id: &str) -> Message {
    Message::builder()
        .from("hotsite <hotsite@lab.test>".parse().expect("from"))
        .to("ops@example.test".parse().expect("to"))
        .cc("audit@example.test".parse().expect("cc"))
        .subject(format!("SMS fallback for {id}"))
        .header(HotsiteMessageId(id.to_owned()))
        .header(ContentType::TEXT_PLAIN)
        .body(".leading dot\nVotre code: 1234\n".to_owned())
        .expect("message")
}

/// The `X-Hotsite-Message-Id` header hotsite's mails carry.
#[derive(Clone)]
struct HotsiteMessageId(String);

impl lettre::message::header::Header for HotsiteMessageId {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("X-Hotsite-Message-Id")
    }

    fn parse(text: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(HotsiteMessageId(text.to_owned()))
    }

    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// SPEC M11: the fallback channel's mail arrives whole, envelope and headers
/// recorded, dot-unstuffed.
#[tokio::test]
async fn a_mail_from_a_real_client_is_recorded() {
    let lab = smtp_lab().await;
    let addr = lab.smtp_addr().expect("smtp");
    let response = transport(addr)
        .send(fallback_mail("4711"))
        .await
        .expect("sent");
    assert!(response.is_positive());

    let mails = lab.smtp_mails();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let mail = &mails[0];
    assert_eq!(mail.from, "hotsite@lab.test");
    assert_eq!(mail.recipients, ["ops@example.test", "audit@example.test"]);
    assert_eq!(mail.subject.as_deref(), Some("SMS fallback for 4711"));
    assert_eq!(mail.message_id.as_deref(), Some("4711"));
    assert!(
        mail.data
            .contains("\r\n\r\n.leading dot\r\nVotre code: 1234\r\n"),
        "{}",
        mail.data
    );
    assert!(mail.received_unix_ms > 1_600_000_000_000);

    let control = format!("http://{}/v1/smtp/mails?limit=1", lab.control_addr());
    let listed: Vec<SmtpMail> = reqwest::get(&control)
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(listed, mails);
    let stats = lab.stats().smtp.expect("smtp stats");
    assert_eq!((stats.accepted, stats.rejected), (1, 0));
    lab.shutdown().await;
}

/// SPEC M10, M11: `status` answers MAIL FROM with its code (a client sees a
/// transient or permanent error); `die` refuses connections; `recover` heals.
#[tokio::test]
async fn faults_refuse_mail_until_recover() {
    let lab = smtp_lab().await;
    let addr = lab.smtp_addr().expect("smtp");
    lab.set_smtp_fault(SmtpFault::Status { code: 451 })
        .expect("status");
    let error = transport(addr)
        .send(fallback_mail("1"))
        .await
        .expect_err("451");
    assert!(error.is_transient(), "{error:?}");
    lab.set_smtp_fault(SmtpFault::Status { code: 554 })
        .expect("status");
    let error = transport(addr)
        .send(fallback_mail("2"))
        .await
        .expect_err("554");
    assert!(error.is_permanent(), "{error:?}");

    let control = format!("http://{}/v1/smtp/fault", lab.control_addr());
    let http = reqwest::Client::new();
    let response = http
        .post(&control)
        .json(&json!({"fault": "die"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    let refused = TcpStream::connect(addr).await.expect_err("refused");
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    let invalid = http
        .post(&control)
        .json(&json!({"fault": "status", "code": 250}))
        .send()
        .await
        .expect("POST");
    assert_eq!(invalid.status(), 400);
    let body: Value = invalid.json().await.expect("JSON");
    assert!(body["error"].is_string());

    lab.set_smtp_fault(SmtpFault::Recover).expect("recover");
    transport(addr)
        .send(fallback_mail("3"))
        .await
        .expect("sent after recovery");
    let mails = lab.smtp_mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].message_id.as_deref(), Some("3"));
    let stats = lab.stats().smtp.expect("smtp stats");
    assert_eq!((stats.rejected, stats.fault), (2, None));
    lab.shutdown().await;
}

async fn next_line(lines: &mut Lines<BufReader<OwnedReadHalf>>) -> String {
    tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("a reply in time")
        .expect("read")
        .expect("a line")
}

/// RFC 5321 by hand: unknown commands, overlong lines, RSET and QUIT.
#[tokio::test]
async fn a_raw_conversation() {
    let lab = smtp_lab().await;
    let stream = TcpStream::connect(lab.smtp_addr().expect("smtp"))
        .await
        .expect("connect");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    assert!(next_line(&mut lines).await.starts_with("220 "));
    let script: &[(&str, &str)] = &[
        ("HELO raw.test\r\n", "250 "),
        ("FROB\r\n", "500 "),
        ("MAIL FROM:<a@b.test>\r\n", "250 "),
        ("RSET\r\n", "250 "),
        ("RCPT TO:<c@d.test>\r\n", "503 "),
        ("NOOP\r\n", "250 "),
    ];
    for (command, reply) in script {
        write.write_all(command.as_bytes()).await.expect("write");
        let line = next_line(&mut lines).await;
        assert!(line.starts_with(reply), "{command:?} → {line}");
    }
    let long = format!("NOOP {}\r\n", "x".repeat(600));
    write.write_all(long.as_bytes()).await.expect("write");
    assert!(
        next_line(&mut lines).await.starts_with("500 "),
        "line too long"
    );
    write.write_all(b"QUIT\r\n").await.expect("write");
    assert!(next_line(&mut lines).await.starts_with("221 "));
    let end = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("closed in time")
        .expect("read");
    assert_eq!(end, None, "the sink closes after QUIT");
    assert!(lab.smtp_mails().is_empty());
    lab.shutdown().await;
}
