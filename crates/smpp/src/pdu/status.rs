//! `command_status` values and what each means for a message (SPEC M14).

use std::fmt;

/// An SMPP `command_status`. Unknown values are kept as they are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandStatus(pub u32);

/// What a submit's answer means for the message (SPEC M14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Accepted by the SMSC.
    Accepted,
    /// The SMSC asks us to slow down: the bind pauses, the message is sent again,
    /// never failed.
    Throttled,
    /// A temporary error on the SMSC side: send again with backoff.
    Retry,
    /// Refused for good (authentication, bad address, too long, duplicate): the
    /// message fails and is not sent again.
    Permanent,
}

macro_rules! statuses {
    ($($name:ident = $value:expr, $outcome:ident, $text:expr;)*) => {
        impl CommandStatus {
            $(
                #[doc = $text]
                pub const $name: CommandStatus = CommandStatus($value);
            )*

            /// The status's name from the specification, if it has one we know.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// What the status means for a submitted message.
            pub fn outcome(self) -> Outcome {
                match self.0 {
                    $($value => Outcome::$outcome,)*
                    // Vendor-specific and reserved codes: assume the SMSC may take the
                    // message later rather than drop it.
                    _ => Outcome::Retry,
                }
            }
        }
    };
}

statuses! {
    ESME_ROK = 0x0000_0000, Accepted, "No error.";
    ESME_RINVMSGLEN = 0x0000_0001, Permanent, "Message length is invalid.";
    ESME_RINVCMDLEN = 0x0000_0002, Permanent, "Command length is invalid.";
    ESME_RINVCMDID = 0x0000_0003, Permanent, "Invalid command id.";
    ESME_RINVBNDSTS = 0x0000_0004, Retry, "Incorrect bind status for the command.";
    ESME_RALYBND = 0x0000_0005, Retry, "Already bound.";
    ESME_RINVPRTFLG = 0x0000_0006, Permanent, "Invalid priority flag.";
    ESME_RINVREGDLVFLG = 0x0000_0007, Permanent, "Invalid registered delivery flag.";
    ESME_RSYSERR = 0x0000_0008, Retry, "System error.";
    ESME_RINVSRCADR = 0x0000_000A, Permanent, "Invalid source address.";
    ESME_RINVDSTADR = 0x0000_000B, Permanent, "Invalid destination address.";
    ESME_RINVMSGID = 0x0000_000C, Permanent, "Message id is invalid.";
    ESME_RBINDFAIL = 0x0000_000D, Permanent, "Bind failed.";
    ESME_RINVPASWD = 0x0000_000E, Permanent, "Invalid password.";
    ESME_RINVSYSID = 0x0000_000F, Permanent, "Invalid system id.";
    ESME_RMSGQFUL = 0x0000_0014, Throttled, "Message queue full.";
    ESME_RINVESMCLASS = 0x0000_0043, Permanent, "Invalid esm_class.";
    ESME_RSUBMITFAIL = 0x0000_0045, Retry, "submit_sm failed.";
    ESME_RINVSRCTON = 0x0000_0048, Permanent, "Invalid source address TON.";
    ESME_RINVSRCNPI = 0x0000_0049, Permanent, "Invalid source address NPI.";
    ESME_RINVDSTTON = 0x0000_0050, Permanent, "Invalid destination address TON.";
    ESME_RINVDSTNPI = 0x0000_0051, Permanent, "Invalid destination address NPI.";
    ESME_RINVSYSTYP = 0x0000_0053, Permanent, "Invalid system_type.";
    ESME_RTHROTTLED = 0x0000_0058, Throttled, "Throttling error: the ESME exceeded its allowed rate.";
    ESME_RINVSCHED = 0x0000_0061, Permanent, "Invalid scheduled delivery time.";
    ESME_RINVEXPIRY = 0x0000_0062, Permanent, "Invalid validity period.";
    ESME_RX_T_APPN = 0x0000_0064, Retry, "Temporary application error: retry later.";
    ESME_RX_P_APPN = 0x0000_0065, Permanent, "Permanent application error: do not retry.";
    ESME_RX_R_APPN = 0x0000_0066, Permanent, "Application error: message rejected.";
    ESME_RINVOPTPARSTREAM = 0x0000_00C0, Permanent, "Error in the optional part of the PDU body.";
    ESME_ROPTPARNOTALLWD = 0x0000_00C1, Permanent, "Optional parameter not allowed.";
    ESME_RINVPARLEN = 0x0000_00C2, Permanent, "Invalid parameter length.";
    ESME_RMISSINGOPTPARAM = 0x0000_00C3, Permanent, "Expected optional parameter missing.";
    ESME_RINVOPTPARAMVAL = 0x0000_00C4, Permanent, "Invalid optional parameter value.";
    ESME_RDELIVERYFAILURE = 0x0000_00FE, Retry, "Delivery failure (data_sm).";
    ESME_RUNKNOWNERR = 0x0000_00FF, Retry, "Unknown error.";
}

impl CommandStatus {
    /// Whether the status is `ESME_ROK`.
    pub fn is_ok(self) -> bool {
        self == CommandStatus::ESME_ROK
    }
}

impl fmt::Debug for CommandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}(0x{:08X})", self.0),
            None => write!(f, "0x{:08X}", self.0),
        }
    }
}

impl fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_slows_down_instead_of_failing() {
        // SPEC M14: ESME_RTHROTTLED / ESME_RMSGQFUL slow the bind down.
        assert_eq!(CommandStatus::ESME_RTHROTTLED.outcome(), Outcome::Throttled);
        assert_eq!(CommandStatus::ESME_RMSGQFUL.outcome(), Outcome::Throttled);
        assert_eq!(CommandStatus::ESME_RSYSERR.outcome(), Outcome::Retry);
        assert_eq!(CommandStatus::ESME_RINVDSTADR.outcome(), Outcome::Permanent);
        assert_eq!(CommandStatus::ESME_RINVPASWD.outcome(), Outcome::Permanent);
        assert_eq!(CommandStatus::ESME_ROK.outcome(), Outcome::Accepted);
        assert_eq!(CommandStatus(0x0400).outcome(), Outcome::Retry);
    }

    #[test]
    fn debug_names_known_codes() {
        assert_eq!(
            format!("{:?}", CommandStatus::ESME_RTHROTTLED),
            "ESME_RTHROTTLED(0x00000058)"
        );
        assert_eq!(format!("{:?}", CommandStatus(0x1234)), "0x00001234");
    }
}
