//! The faults an HTTP server (an HTTP API site or a webhook receiver) can be
//! put into, one at a time.
//!
//! They imitate what hotsite's HTTP clients must survive (SPEC M3, M10, M14): a
//! dead host, a server that never answers, a slow one, one that answers with
//! an error status, one that resets connections, and, for the HTTP API's
//! sites, a provider that throttles or fails internally. The JSON form is the
//! control API's request body and the `fault` field of the stats.

use serde::{Deserialize, Serialize};

use crate::fault::{InvalidFault, MAX_SLOW_DELAY_MS};

/// Longest accepted `Retry-After`: a day.
pub const MAX_RETRY_AFTER_S: u64 = 86_400;

/// A fault to inject into one HTTP server. Setting a fault replaces the
/// previous one and applies to the next request; [`HttpFault::Recover`] clears it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "fault",
    rename_all = "snake_case",
    try_from = "HttpFaultRequest"
)]
pub enum HttpFault {
    /// The host dies: the port stops listening (connects are refused) and
    /// every open connection is reset.
    Die,
    /// Requests are accepted and read, and never answered. When the fault
    /// changes, hung connections are closed unanswered (reset by `die`).
    Hang,
    /// Every answer is delayed by `delay_ms`.
    Slow {
        /// Added before each answer.
        delay_ms: u64,
    },
    /// Every request is answered with this HTTP status, and `Retry-After` when
    /// given (503, 408, 429 with `Retry-After`, 500, …).
    Status {
        /// The status, 200 to 599.
        code: u16,
        /// Sent as `Retry-After: <seconds>`.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_s: Option<u64>,
    },
    /// Each request is read, then its connection is reset (RST).
    Reset,
    /// HTTP API sites only: that fraction of submits is answered code 20
    /// (throttled) and not taken.
    Throttle {
        /// Between 0 and 1.
        probability: f64,
    },
    /// HTTP API sites only: that fraction of submits is answered code 21
    /// (internal error) and not taken.
    InternalError {
        /// Between 0 and 1.
        probability: f64,
    },
    /// Back to healthy; after [`HttpFault::Die`] the same address listens again.
    Recover,
}

/// The JSON shape of an [`HttpFault`], read field by field, so that stray
/// parameters are reported (see `Fault`'s request type for why).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFaultRequest {
    fault: HttpFaultName,
    delay_ms: Option<u64>,
    code: Option<u16>,
    retry_after_s: Option<u64>,
    probability: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum HttpFaultName {
    Die,
    Hang,
    Slow,
    Status,
    Reset,
    Throttle,
    InternalError,
    Recover,
}

impl TryFrom<HttpFaultRequest> for HttpFault {
    type Error = String;

    fn try_from(request: HttpFaultRequest) -> Result<HttpFault, String> {
        let HttpFaultRequest {
            fault: request_name,
            delay_ms,
            code,
            retry_after_s,
            probability,
        } = request;
        // Which parameters each fault takes; any other one is a mistake.
        let (takes, fault) = match request_name {
            HttpFaultName::Die => ("no parameters", Some(HttpFault::Die)),
            HttpFaultName::Hang => ("no parameters", Some(HttpFault::Hang)),
            HttpFaultName::Reset => ("no parameters", Some(HttpFault::Reset)),
            HttpFaultName::Recover => ("no parameters", Some(HttpFault::Recover)),
            HttpFaultName::Slow => (
                "delay_ms",
                delay_ms.map(|delay_ms| HttpFault::Slow { delay_ms }),
            ),
            HttpFaultName::Status => (
                "code and optionally retry_after_s",
                code.map(|code| HttpFault::Status {
                    code,
                    retry_after_s,
                }),
            ),
            HttpFaultName::Throttle => (
                "probability",
                probability.map(|probability| HttpFault::Throttle { probability }),
            ),
            HttpFaultName::InternalError => (
                "probability",
                probability.map(|probability| HttpFault::InternalError { probability }),
            ),
        };
        let name = fault_name(request_name);
        let Some(fault) = fault else {
            return Err(format!("fault {name} needs {takes}"));
        };
        let stray = match fault {
            HttpFault::Die | HttpFault::Hang | HttpFault::Reset | HttpFault::Recover => {
                delay_ms.is_some()
                    || code.is_some()
                    || retry_after_s.is_some()
                    || probability.is_some()
            }
            HttpFault::Slow { .. } => {
                code.is_some() || retry_after_s.is_some() || probability.is_some()
            }
            HttpFault::Status { .. } => delay_ms.is_some() || probability.is_some(),
            HttpFault::Throttle { .. } | HttpFault::InternalError { .. } => {
                delay_ms.is_some() || code.is_some() || retry_after_s.is_some()
            }
        };
        if stray {
            return Err(format!("fault {name} takes {takes}"));
        }
        Ok(fault)
    }
}

/// The name a fault request used, quoted, for error messages.
fn fault_name(name: HttpFaultName) -> &'static str {
    match name {
        HttpFaultName::Die => "\"die\"",
        HttpFaultName::Hang => "\"hang\"",
        HttpFaultName::Slow => "\"slow\"",
        HttpFaultName::Status => "\"status\"",
        HttpFaultName::Reset => "\"reset\"",
        HttpFaultName::Throttle => "\"throttle\"",
        HttpFaultName::InternalError => "\"internal_error\"",
        HttpFaultName::Recover => "\"recover\"",
    }
}

impl HttpFault {
    /// Checks the fault's parameters.
    pub fn validate(&self) -> Result<(), InvalidFault> {
        match *self {
            HttpFault::Slow { delay_ms } if delay_ms > MAX_SLOW_DELAY_MS => Err(InvalidFault {
                field: "delay_ms",
                reason: format!("must be at most {MAX_SLOW_DELAY_MS}, got {delay_ms}"),
            }),
            HttpFault::Status { code, .. } if !(200..=599).contains(&code) => Err(InvalidFault {
                field: "code",
                reason: format!("must be an HTTP status between 200 and 599, got {code}"),
            }),
            HttpFault::Status {
                retry_after_s: Some(seconds),
                ..
            } if seconds > MAX_RETRY_AFTER_S => Err(InvalidFault {
                field: "retry_after_s",
                reason: format!("must be at most {MAX_RETRY_AFTER_S}, got {seconds}"),
            }),
            HttpFault::Throttle { probability } | HttpFault::InternalError { probability }
                if !(0.0..=1.0).contains(&probability) =>
            {
                Err(InvalidFault {
                    field: "probability",
                    reason: format!("must be between 0 and 1, got {probability}"),
                })
            }
            _ => Ok(()),
        }
    }

    /// Whether the fault only makes sense for an HTTP API site (it answers
    /// with the API's result codes).
    pub(crate) fn is_aggregator_only(&self) -> bool {
        matches!(
            self,
            HttpFault::Throttle { .. } | HttpFault::InternalError { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is posted is what is read back.
    #[test]
    fn json_round_trips() {
        for (json, fault) in [
            (r#"{"fault":"die"}"#, HttpFault::Die),
            (r#"{"fault":"hang"}"#, HttpFault::Hang),
            (
                r#"{"fault":"slow","delay_ms":200}"#,
                HttpFault::Slow { delay_ms: 200 },
            ),
            (
                r#"{"fault":"status","code":503}"#,
                HttpFault::Status {
                    code: 503,
                    retry_after_s: None,
                },
            ),
            (
                r#"{"fault":"status","code":429,"retry_after_s":2}"#,
                HttpFault::Status {
                    code: 429,
                    retry_after_s: Some(2),
                },
            ),
            (r#"{"fault":"reset"}"#, HttpFault::Reset),
            (
                r#"{"fault":"throttle","probability":0.5}"#,
                HttpFault::Throttle { probability: 0.5 },
            ),
            (
                r#"{"fault":"internal_error","probability":1.0}"#,
                HttpFault::InternalError { probability: 1.0 },
            ),
            (r#"{"fault":"recover"}"#, HttpFault::Recover),
        ] {
            let parsed: HttpFault = serde_json::from_str(json).expect(json);
            assert_eq!(parsed, fault);
            assert_eq!(serde_json::to_string(&fault).expect("serialise"), json);
        }
    }

    #[test]
    fn stray_or_missing_parameters_are_errors() {
        for (json, expected) in [
            (
                r#"{"fault":"die","delay_ms":5}"#,
                "fault \"die\" takes no parameters",
            ),
            (r#"{"fault":"slow"}"#, "fault \"slow\" needs delay_ms"),
            (
                r#"{"fault":"status","retry_after_s":1}"#,
                "fault \"status\" needs code and optionally retry_after_s",
            ),
            (
                r#"{"fault":"status","code":503,"delay_ms":1}"#,
                "fault \"status\" takes code and optionally retry_after_s",
            ),
            (
                r#"{"fault":"throttle","code":1}"#,
                "fault \"throttle\" needs probability",
            ),
            (r#"{"fault":"hang","extra":1}"#, "unknown field `extra`"),
            (r#"{"fault":"explode"}"#, "unknown variant `explode`"),
        ] {
            let error = serde_json::from_str::<HttpFault>(json).expect_err(json);
            assert!(error.to_string().contains(expected), "{json}: {error}");
        }
    }

    #[test]
    fn bounds_are_checked() {
        let status = |code| HttpFault::Status {
            code,
            retry_after_s: None,
        };
        assert!(status(503).validate().is_ok());
        assert_eq!(
            status(99).validate().map_err(|e| e.to_string()),
            Err("code: must be an HTTP status between 200 and 599, got 99".into())
        );
        assert!(HttpFault::Status {
            code: 429,
            retry_after_s: Some(MAX_RETRY_AFTER_S + 1)
        }
        .validate()
        .is_err());
        assert!(HttpFault::Throttle { probability: 1.5 }.validate().is_err());
        assert!(HttpFault::Slow {
            delay_ms: MAX_SLOW_DELAY_MS + 1
        }
        .validate()
        .is_err());
    }
}
