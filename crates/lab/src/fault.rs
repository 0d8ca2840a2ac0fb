//! The faults an SMSC instance can be put into, one at a time.
//!
//! Each fault imitates a failure hotsite must survive (SPEC M4–M8, M14): a dead
//! host, a silent network path, a slow or throttling provider, a provider that
//! refuses binds. The JSON form is the control API's request body and the
//! `fault` field of the stats, so what you post is what you read back.

use serde::{Deserialize, Serialize};

/// Longest accepted [`Fault::Slow`] delay: longer is a typo, and would keep
/// sessions busy past any test's patience.
pub const MAX_SLOW_DELAY_MS: u64 = 600_000;

/// A fault to inject into one SMSC instance. Setting a fault replaces the
/// previous one; [`Fault::Recover`] clears it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case", try_from = "FaultRequest")]
pub enum Fault {
    /// The host dies: every session is reset (RST, as when a host vanishes) and
    /// the port stops listening, so connects are refused.
    Die,
    /// The network path goes silent: connections are kept and accepted, but
    /// nothing is read or answered, on existing and new sessions alike.
    Blackhole,
    /// Every response is delayed by `delay_ms`.
    Slow {
        /// Added to every response.
        delay_ms: u64,
    },
    /// That fraction of `submit_sm` is answered `ESME_RTHROTTLED` and dropped.
    Throttle {
        /// Between 0 and 1.
        probability: f64,
    },
    /// Binds are answered `ESME_RBINDFAIL`; bound sessions carry on.
    RejectBinds,
    /// Back to healthy; after [`Fault::Die`] the same port listens again.
    Recover,
}

/// The JSON shape of a [`Fault`], read field by field: serde's internally
/// tagged enums ignore unknown fields on unit variants, and a control request
/// like `{"fault":"die","delay_ms":5}` is a mistake worth reporting, not a death.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    fault: FaultName,
    delay_ms: Option<u64>,
    probability: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FaultName {
    Die,
    Blackhole,
    Slow,
    Throttle,
    RejectBinds,
    Recover,
}

impl TryFrom<FaultRequest> for Fault {
    type Error = String;

    fn try_from(request: FaultRequest) -> Result<Fault, String> {
        let FaultRequest {
            fault,
            delay_ms,
            probability,
        } = request;
        let fault = match (fault, delay_ms, probability) {
            (FaultName::Slow, Some(delay_ms), None) => Fault::Slow { delay_ms },
            (FaultName::Slow, None, _) => return Err("fault \"slow\" needs delay_ms".into()),
            (FaultName::Throttle, None, Some(probability)) => Fault::Throttle { probability },
            (FaultName::Throttle, _, None) => {
                return Err("fault \"throttle\" needs probability".into())
            }
            (FaultName::Die, None, None) => Fault::Die,
            (FaultName::Blackhole, None, None) => Fault::Blackhole,
            (FaultName::RejectBinds, None, None) => Fault::RejectBinds,
            (FaultName::Recover, None, None) => Fault::Recover,
            (FaultName::Slow, Some(_), Some(_)) => {
                return Err("fault \"slow\" takes only delay_ms".into())
            }
            (FaultName::Throttle, Some(_), Some(_)) => {
                return Err("fault \"throttle\" takes only probability".into())
            }
            (
                FaultName::Die | FaultName::Blackhole | FaultName::RejectBinds | FaultName::Recover,
                _,
                _,
            ) => return Err("this fault takes no delay_ms or probability".into()),
        };
        Ok(fault)
    }
}

/// A fault whose parameters are out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidFault {
    /// The offending field of the fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl Fault {
    /// Checks the fault's parameters.
    pub fn validate(&self) -> Result<(), InvalidFault> {
        match *self {
            Fault::Slow { delay_ms } if delay_ms > MAX_SLOW_DELAY_MS => Err(InvalidFault {
                field: "delay_ms",
                reason: format!("must be at most {MAX_SLOW_DELAY_MS}, got {delay_ms}"),
            }),
            Fault::Throttle { probability } if !(0.0..=1.0).contains(&probability) => {
                Err(InvalidFault {
                    field: "probability",
                    reason: format!("must be between 0 and 1, got {probability}"),
                })
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is posted is what is read back.
    #[test]
    fn json_round_trips() {
        for (json, fault) in [
            (r#"{"fault":"die"}"#, Fault::Die),
            (r#"{"fault":"blackhole"}"#, Fault::Blackhole),
            (
                r#"{"fault":"slow","delay_ms":200}"#,
                Fault::Slow { delay_ms: 200 },
            ),
            (
                r#"{"fault":"throttle","probability":0.5}"#,
                Fault::Throttle { probability: 0.5 },
            ),
            (r#"{"fault":"reject_binds"}"#, Fault::RejectBinds),
            (r#"{"fault":"recover"}"#, Fault::Recover),
        ] {
            let parsed: Fault = serde_json::from_str(json).expect(json);
            assert_eq!(parsed, fault);
            assert_eq!(serde_json::to_string(&fault).expect("serialise"), json);
        }
    }

    #[test]
    fn stray_or_missing_parameters_are_errors() {
        for (json, expected) in [
            (
                r#"{"fault":"die","delay_ms":5}"#,
                "this fault takes no delay_ms or probability",
            ),
            (r#"{"fault":"slow"}"#, "fault \"slow\" needs delay_ms"),
            (
                r#"{"fault":"throttle","delay_ms":1}"#,
                "fault \"throttle\" needs probability",
            ),
            (
                r#"{"fault":"slow","delay_ms":1,"probability":1}"#,
                "fault \"slow\" takes only delay_ms",
            ),
            (r#"{"fault":"die","extra":1}"#, "unknown field `extra`"),
            (r#"{"fault":"explode"}"#, "unknown variant `explode`"),
        ] {
            let error = serde_json::from_str::<Fault>(json).expect_err(json);
            assert!(error.to_string().contains(expected), "{json}: {error}");
        }
    }

    #[test]
    fn bounds_are_checked() {
        assert!(Fault::Throttle { probability: 1.0 }.validate().is_ok());
        assert_eq!(
            Fault::Throttle { probability: -0.5 }
                .validate()
                .map_err(|e| e.to_string()),
            Err("probability: must be between 0 and 1, got -0.5".into())
        );
        assert!(Fault::Slow {
            delay_ms: MAX_SLOW_DELAY_MS + 1
        }
        .validate()
        .is_err());
    }
}
