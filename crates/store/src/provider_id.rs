//! Provider message ids compared as the provider means them (SPEC M13).
//!
//! Real SMSCs do not write the `receipted_message_id` of a receipt the way they
//! wrote the `message_id` of the `submit_sm_resp`: upper vs lower case hex, with or
//! without leading zeros, or decimal in one and hex in the other (Kannel's
//! per-SMSC `msg-id-type` exists for exactly this). The store therefore never
//! compares raw ids: a submit's id is kept in its [`normalize`]d form, and a
//! receipt is looked up under the keys [`receipt_keys`] derives from its id and
//! the SMSC's [`ReceiptIdFormat`].

use std::fmt;
use std::str::FromStr;

/// How an SMSC writes a receipt's id relative to its submit response's id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ReceiptIdFormat {
    /// Written the same way, up to case and leading zeros (the default).
    #[default]
    Same,
    /// The receipt writes in decimal the number the submit response wrote in hex.
    Decimal,
    /// The receipt writes in hex the number the submit response wrote in decimal.
    Hex,
    /// Unknown: try the same form first, then decimal-for-hex, then hex-for-decimal.
    /// A receipt could then match a message whose id is another reading of the
    /// same digits; set the SMSC's format when it is known.
    Auto,
}

impl ReceiptIdFormat {
    /// Every format, as written in configuration.
    pub const NAMES: [&'static str; 4] = ["same", "decimal", "hex", "auto"];

    /// The name written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptIdFormat::Same => "same",
            ReceiptIdFormat::Decimal => "decimal",
            ReceiptIdFormat::Hex => "hex",
            ReceiptIdFormat::Auto => "auto",
        }
    }
}

impl fmt::Display for ReceiptIdFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReceiptIdFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "same" => Ok(ReceiptIdFormat::Same),
            "decimal" => Ok(ReceiptIdFormat::Decimal),
            "hex" => Ok(ReceiptIdFormat::Hex),
            "auto" => Ok(ReceiptIdFormat::Auto),
            other => Err(format!(
                "{other:?} is not a receipt id format; one of {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// The form a provider id is stored and compared in: surrounding blanks dropped,
/// ASCII letters lower-cased, leading zeros dropped (an id of only zeros is `0`).
pub fn normalize(id: &str) -> String {
    let trimmed = id.trim();
    let digits = trimmed.trim_start_matches('0');
    if digits.is_empty() && !trimmed.is_empty() {
        return "0".to_owned();
    }
    digits.to_ascii_lowercase()
}

/// The normalized keys a receipt's id may match a submit's id under, most likely
/// first, without repeats. Empty for an empty id.
pub fn receipt_keys(id: &str, format: ReceiptIdFormat) -> Vec<String> {
    let same = normalize(id);
    if same.is_empty() {
        return Vec::new();
    }
    let decimal_as_hex = || {
        (same.bytes().all(|b| b.is_ascii_digit()))
            .then(|| same.parse::<u128>().ok().map(|value| format!("{value:x}")))
            .flatten()
    };
    let hex_as_decimal = || {
        (same.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u128::from_str_radix(&same, 16).ok().map(|v| v.to_string()))
            .flatten()
    };
    let keys = match format {
        ReceiptIdFormat::Same => vec![Some(same.clone())],
        ReceiptIdFormat::Decimal => vec![decimal_as_hex().or_else(|| Some(same.clone()))],
        ReceiptIdFormat::Hex => vec![hex_as_decimal().or_else(|| Some(same.clone()))],
        ReceiptIdFormat::Auto => vec![Some(same.clone()), decimal_as_hex(), hex_as_decimal()],
    };
    let mut unique: Vec<String> = Vec::with_capacity(keys.len());
    for key in keys.into_iter().flatten() {
        if !unique.contains(&key) {
            unique.push(key);
        }
    }
    unique
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPEC M13: case, blanks and leading zeros do not make another id.
    #[test]
    fn normalize_ignores_case_and_leading_zeros() {
        assert_eq!(normalize("00001A2B"), "1a2b");
        assert_eq!(normalize(" 1a2b "), "1a2b");
        assert_eq!(normalize("0000"), "0");
        assert_eq!(normalize(""), "");
        assert_eq!(normalize("Msg-ID-7"), "msg-id-7");
    }

    /// SPEC M13: a receipt written in decimal, hex, upper case or zero-padded
    /// yields the key of the submit response's id.
    #[test]
    fn receipt_keys_follow_the_format() {
        let submit = "1a2b";
        assert_eq!(normalize("00001a2b"), submit);
        assert_eq!(receipt_keys("00001A2B", ReceiptIdFormat::Same), [submit]);
        // 0x1a2b = 6699.
        assert_eq!(receipt_keys("6699", ReceiptIdFormat::Decimal), [submit]);
        assert_eq!(
            receipt_keys("00000000000000006699", ReceiptIdFormat::Decimal),
            [submit]
        );
        assert_eq!(receipt_keys("1A2B", ReceiptIdFormat::Hex), ["6699"]);
        let auto = receipt_keys("6699", ReceiptIdFormat::Auto);
        assert_eq!(auto, ["6699", "1a2b", "26265"]);
        assert!(auto.iter().any(|key| key == submit));
        // Not a number: the same form is all there is.
        assert_eq!(receipt_keys("ab-12", ReceiptIdFormat::Decimal), ["ab-12"]);
        assert_eq!(receipt_keys("xyz", ReceiptIdFormat::Auto), ["xyz"]);
        assert!(receipt_keys("  ", ReceiptIdFormat::Auto).is_empty());
    }

    proptest::proptest! {
        /// Provider ids come off the network: any text gives keys without a
        /// panic, the normalized form is stable, and a number written in hex by
        /// the submit response and in decimal (or the reverse) by the receipt,
        /// padded or not, in any case, finds its key (SPEC M13).
        #[test]
        fn any_id_gives_keys_and_numbers_round_trip(
            text in "\\PC{0,40}",
            value in proptest::prelude::any::<u64>(),
            pad in 0usize..12,
        ) {
            for format in [ReceiptIdFormat::Same, ReceiptIdFormat::Decimal, ReceiptIdFormat::Hex, ReceiptIdFormat::Auto] {
                let keys = receipt_keys(&text, format);
                proptest::prop_assert!(keys.len() <= 3);
            }
            proptest::prop_assert_eq!(normalize(&normalize(&text)), normalize(&text));
            let hex_submit = normalize(&format!("{value:x}"));
            let decimal_receipt = format!("{}{value}", "0".repeat(pad));
            proptest::prop_assert_eq!(
                &receipt_keys(&decimal_receipt, ReceiptIdFormat::Decimal)[0],
                &hex_submit
            );
            proptest::prop_assert!(receipt_keys(&decimal_receipt, ReceiptIdFormat::Auto).contains(&hex_submit));
            let decimal_submit = normalize(&value.to_string());
            let hex_receipt = format!("{}{value:X}", "0".repeat(pad));
            proptest::prop_assert_eq!(
                &receipt_keys(&hex_receipt, ReceiptIdFormat::Hex)[0],
                &decimal_submit
            );
        }
    }

    #[test]
    fn formats_parse_from_their_names() {
        for name in ReceiptIdFormat::NAMES {
            assert_eq!(name.parse::<ReceiptIdFormat>().unwrap().as_str(), name);
        }
        assert!("HEX"
            .parse::<ReceiptIdFormat>()
            .unwrap_err()
            .contains("same"));
    }
}
