//! Webhook receivers: the digital channels' endpoints hotsite posts to.

use hotsite_lab::WebhookMessage;
use serde_json::{json, Value};

use crate::callback_sink::expected_signature;
use crate::http_lab::{HttpLab, HOOK_SECRET};

impl HttpLab {
    /// Posts `body` to `receiver` at `path`, signed with `signature` if given.
    async fn hook(
        &self,
        receiver: &str,
        path: &str,
        body: &str,
        signature: Option<&str>,
    ) -> (u16, Value) {
        let url = format!("http://{}{path}", self.webhook_addr(receiver));
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        let response = request.send().await.expect("POST webhook");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON answer"))
    }
}

/// SPEC M8, M10, M15: a signed message is logged once; a repeat of its id is
/// answered 200 with the same receiver id and counted, not logged again.
#[tokio::test]
async fn signed_messages_are_logged_once() {
    let lab = HttpLab::plain().await;
    let body = r#"{"id":"1001","from":"hotsite","to":"user-42","text":"Votre code: 1234"}"#;
    let signature = expected_signature(HOOK_SECRET, body);
    let (status, first) = lab
        .hook("primary-chat", "/v1/messages", body, Some(&signature))
        .await;
    assert_eq!(
        (status, &first),
        (200, &json!({"id": "primary-chat-000001"}))
    );
    let (status, again) = lab
        .hook("primary-chat", "/elsewhere", body, Some(&signature))
        .await;
    assert_eq!((status, again), (200, first));

    let log = lab.lab.webhook_log("primary-chat").expect("log");
    assert_eq!(log.len(), 1, "{log:#?}");
    let message = &log[0];
    assert_eq!(
        (
            message.id.as_str(),
            message.to.as_deref(),
            message.text.as_deref()
        ),
        ("1001", Some("user-42"), Some("Votre code: 1234"))
    );
    assert_eq!(message.from.as_deref(), Some("hotsite"));
    assert_eq!(message.path, "/v1/messages");
    assert!(message.received_unix_ms > 1_600_000_000_000);
    let stats = lab.lab.stats();
    let receiver = &stats.webhooks[0];
    assert_eq!((receiver.accepted, receiver.duplicates), (1, 1));

    let response = lab
        .http
        .get(lab.control_url("/v1/webhooks/primary-chat/messages?limit=5"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    let listed: Vec<WebhookMessage> = response.json().await.expect("JSON");
    assert_eq!(listed, log);
    assert!(lab
        .lab
        .webhook_log("secondary-chat")
        .expect("log")
        .is_empty());
    assert!(lab.lab.webhook_log("nope").is_err());
    lab.shutdown().await;
}

/// SPEC M15: with a secret, a missing or wrong signature is answered 401 and
/// nothing is logged.
#[tokio::test]
async fn bad_or_missing_signatures_are_refused() {
    let lab = HttpLab::plain().await;
    let body = r#"{"id":"7","to":"u","text":"t"}"#;
    let wrong = expected_signature("not-the-secret", body);
    for signature in [None, Some(wrong.as_str()), Some("sha256=garbage")] {
        let (status, answer) = lab.hook("primary-chat", "/", body, signature).await;
        assert_eq!(status, 401, "{signature:?}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    // Signed over another body: still wrong.
    let other = expected_signature(HOOK_SECRET, r#"{"id":"8"}"#);
    let (status, _) = lab.hook("primary-chat", "/", body, Some(&other)).await;
    assert_eq!(status, 401);
    assert!(lab.lab.webhook_log("primary-chat").expect("log").is_empty());
    assert_eq!(lab.lab.stats().webhooks[0].unauthorized, 4);
    lab.shutdown().await;
}

/// SPEC M10: a receiver without a secret takes unsigned bodies; bodies without
/// an id are 400 and other methods 405.
#[tokio::test]
async fn unsigned_receivers_check_the_body() {
    let lab = HttpLab::plain().await;
    let (status, answer) = lab
        .hook("secondary-chat", "/", r#"{"id":55,"to":"x"}"#, None)
        .await;
    assert_eq!(
        (status, answer),
        (200, json!({"id": "secondary-chat-000001"}))
    );
    for body in ["not json", r#"{"text":"no id"}"#, "[]"] {
        let (status, answer) = lab.hook("secondary-chat", "/", body, None).await;
        assert_eq!(status, 400, "{body}");
        assert!(answer["error"].is_string());
    }
    let response = lab
        .http
        .get(format!("http://{}/", lab.webhook_addr("secondary-chat")))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 405);
    let log = lab.lab.webhook_log("secondary-chat").expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].id, "55");
    assert_eq!(lab.lab.stats().webhooks[1].rejected, 4);
    lab.shutdown().await;
}
