//! Faults of the HTTP servers (HTTP API sites and webhook receivers alike):
//! what hotsite's HTTP clients must survive (SPEC M3, M10).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hotsite_lab::HttpFault;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::http_lab::{sms, HttpLab};

/// How long a test waits for a reset or an answer over a raw connection.
const WAIT: Duration = Duration::from_secs(2);

/// A raw HTTP/1.1 POST of a valid submit, so tests can watch the socket.
async fn raw_submit(addr: SocketAddr) -> TcpStream {
    let body = "login=hotsite&password=secret&phone_number=33612345678&sender=ACME\
                &message=raw&message_id=raw-1";
    let request = format!(
        "POST /sms/send HTTP/1.1\r\nHost: lab\r\nContent-Type: \
         application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    stream
}

/// Reads until the peer closes or fails; the error, or the bytes read.
async fn read_to_end(stream: &mut TcpStream) -> Result<Vec<u8>, io::Error> {
    let mut bytes = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut bytes))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no end"))?
        .map(|_| bytes)
}

/// SPEC M3: a dead site refuses connections; after recovery the same address
/// answers again.
#[tokio::test]
async fn die_refuses_connections_until_recover() {
    let lab = HttpLab::plain().await;
    let addr = lab.site_addr("a");
    lab.lab
        .set_http_site_fault("a", HttpFault::Die)
        .expect("die");
    let refused = TcpStream::connect(addr).await.expect_err("refused");
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    let error = lab
        .http
        .post(lab.send_url("a"))
        .form(&sms("d-1", &[]))
        .send()
        .await
        .expect_err("no server");
    assert!(error.is_connect(), "{error:?}");
    assert_eq!(lab.lab.stats().http_sites[0].fault, Some(HttpFault::Die));

    lab.lab
        .set_http_site_fault("a", HttpFault::Recover)
        .expect("recover");
    let (status, answer) = lab.submit("a", &sms("d-1", &[])).await;
    assert_eq!((status, answer["code"].as_u64()), (200, Some(0)));
    assert_eq!(lab.site_addr("a"), addr, "same address after recovery");
    lab.shutdown().await;
}

/// SPEC M3: dying resets the connections a site has open.
#[tokio::test]
async fn die_resets_open_connections() {
    let lab = HttpLab::plain().await;
    lab.lab
        .set_http_site_fault("a", HttpFault::Hang)
        .expect("hang");
    let mut stream = raw_submit(lab.site_addr("a")).await;
    lab.stats_until("the hung request", |stats| {
        stats.http_sites[0].transport.hung == 1
    })
    .await;
    lab.lab
        .set_http_site_fault("a", HttpFault::Die)
        .expect("die");
    let error = read_to_end(&mut stream).await.expect_err("reset");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}");
    lab.shutdown().await;
}

/// SPEC M3, M10: a hanging server reads the request and never answers, so the
/// client's timeout fires; the message is not taken.
#[tokio::test]
async fn hang_never_answers() {
    let lab = HttpLab::plain().await;
    lab.lab
        .set_http_site_fault("b", HttpFault::Hang)
        .expect("hang");
    let error = lab
        .http
        .post(lab.send_url("b"))
        .form(&sms("h-1", &[]))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("no answer");
    assert!(error.is_timeout(), "{error:?}");
    let stats = lab.lab.stats();
    assert_eq!(stats.http_sites[1].transport.hung, 1);
    assert!(lab.lab.handset_log().is_empty());
    lab.shutdown().await;
}

/// SPEC M3: when a hang ends, the hung connections are closed unanswered, so
/// they do not pile up.
#[tokio::test]
async fn hung_connections_close_when_the_hang_ends() {
    let lab = HttpLab::plain().await;
    lab.lab
        .set_http_site_fault("a", HttpFault::Hang)
        .expect("hang");
    let mut stream = raw_submit(lab.site_addr("a")).await;
    lab.stats_until("the hung request", |stats| {
        stats.http_sites[0].transport.hung == 1
    })
    .await;
    lab.lab
        .set_http_site_fault("a", HttpFault::Recover)
        .expect("recover");
    let bytes = read_to_end(&mut stream).await.expect("closed");
    assert!(bytes.is_empty(), "{}", String::from_utf8_lossy(&bytes));
    assert!(lab.lab.handset_log().is_empty());
    let (_, answer) = lab.submit("a", &sms("h-2", &[])).await;
    assert_eq!(answer["code"], 0);
    lab.shutdown().await;
}

/// SPEC M10: injected statuses, 429 with `Retry-After`; the message is not taken.
#[tokio::test]
async fn status_faults_answer_with_that_status() {
    let lab = HttpLab::plain().await;
    for (code, retry_after_s) in [(429, Some(7)), (503, None), (408, None), (500, None)] {
        lab.lab
            .set_http_site_fault(
                "a",
                HttpFault::Status {
                    code,
                    retry_after_s,
                },
            )
            .expect("status");
        let response = lab
            .http
            .post(lab.send_url("a"))
            .form(&sms("s-1", &[]))
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status().as_u16(), code);
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|value| value.to_str().expect("ascii").to_owned());
        assert_eq!(
            retry_after,
            retry_after_s.map(|seconds| seconds.to_string())
        );
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(
            body,
            json!({"error": format!("injected fault: status {code}")})
        );
    }
    let stats = lab.lab.stats();
    let injected = &stats.http_sites[0].transport.injected;
    assert_eq!(injected.get(&429), Some(&1));
    assert_eq!(injected.values().sum::<u64>(), 4);
    assert!(lab.lab.handset_log().is_empty());
    lab.shutdown().await;
}

/// SPEC M3, M8: a reset after the request is read leaves the client with a
/// connection error and the message not taken (an ambiguous submit, to the
/// client).
#[tokio::test]
async fn reset_closes_the_connection_with_an_rst() {
    let lab = HttpLab::plain().await;
    lab.lab
        .set_http_site_fault("a", HttpFault::Reset)
        .expect("reset");
    let mut stream = raw_submit(lab.site_addr("a")).await;
    let error = read_to_end(&mut stream).await.expect_err("reset");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}");
    let error = lab
        .http
        .post(lab.send_url("a"))
        .form(&sms("x-1", &[]))
        .send()
        .await
        .expect_err("reset");
    assert!(!error.is_timeout(), "{error:?}");
    assert_eq!(lab.lab.stats().http_sites[0].transport.reset, 2);
    assert!(lab.lab.handset_log().is_empty());
    lab.shutdown().await;
}

/// SPEC M3: a slow site answers, late.
#[tokio::test]
async fn slow_delays_every_answer() {
    let lab = HttpLab::plain().await;
    lab.lab
        .set_http_site_fault("a", HttpFault::Slow { delay_ms: 150 })
        .expect("slow");
    let started = test_clock();
    let (_, answer) = lab.submit("a", &sms("w-1", &[])).await;
    assert_eq!(answer["code"], 0);
    assert!(test_clock() - started >= Duration::from_millis(150));
    let error = lab
        .http
        .post(lab.send_url("a"))
        .form(&sms("w-2", &[]))
        .timeout(Duration::from_millis(50))
        .send()
        .await
        .expect_err("too slow");
    assert!(error.is_timeout(), "{error:?}");
    lab.shutdown().await;
}

/// SPEC M10: webhook receivers take the same faults, through the control API too.
#[tokio::test]
async fn webhook_faults_and_the_control_api() {
    let lab = HttpLab::plain().await;
    let post_fault =
        |path: &str, body: Value| lab.http.post(lab.control_url(path)).json(&body).send();
    let response = post_fault(
        "/v1/webhooks/secondary-chat/fault",
        json!({"fault": "status", "code": 503}),
    )
    .await
    .expect("POST");
    assert_eq!(response.status(), 200);
    let hook = format!("http://{}/hook", lab.webhook_addr("secondary-chat"));
    let answer = lab
        .http
        .post(&hook)
        .json(&json!({"id": "1"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status(), 503);

    let response = post_fault("/v1/webhooks/secondary-chat/fault", json!({"fault": "die"}))
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    let refused = TcpStream::connect(lab.webhook_addr("secondary-chat"))
        .await
        .expect_err("refused");
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);

    let response = post_fault(
        "/v1/http/sites/b/fault",
        json!({"fault": "status", "code": 429, "retry_after_s": 1}),
    )
    .await
    .expect("POST");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["fault"]["code"], 429);
    assert_eq!(
        lab.lab.stats().http_sites[1].fault,
        Some(HttpFault::Status {
            code: 429,
            retry_after_s: Some(1)
        })
    );

    for (path, body, status) in [
        ("/v1/http/sites/zz/fault", json!({"fault": "die"}), 404),
        ("/v1/webhooks/zz/fault", json!({"fault": "die"}), 404),
        (
            "/v1/http/sites/a/fault",
            json!({"fault": "status", "code": 99}),
            400,
        ),
        ("/v1/http/sites/a/fault", json!({"fault": "slow"}), 400),
        (
            "/v1/webhooks/primary-chat/fault",
            json!({"fault": "throttle", "probability": 1.0}),
            400,
        ),
    ] {
        let response = post_fault(path, body.clone()).await.expect("POST");
        assert_eq!(response.status(), status, "{path} {body}");
        let error: Value = response.json().await.expect("JSON");
        assert!(error["error"].is_string(), "{error}");
    }
    lab.shutdown().await;
}

// The test's stopwatch: real loopback time (clippy.toml allows test clocks).
#[allow(clippy::disallowed_methods)]
fn test_clock() -> std::time::Instant {
    std::time::Instant::now()
}
