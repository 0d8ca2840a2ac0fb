//! RFC 8785 JSON Canonicalization Scheme (JCS), for what a manifest holds
//! (SPEC R3): the bytes that are signed and timestamped.
//!
//! - Object members are sorted by their names as UTF-16 code units (§3.2.3),
//!   which differs from byte or code point order for characters above U+FFFF.
//! - No whitespace (§3.2.1).
//! - Strings are escaped as §3.2.2.2 says: `"` and `\` with a backslash,
//!   U+0008, U+0009, U+000A, U+000C, U+000D as `\b \t \n \f \r`, the other
//!   controls below U+0020 as `\u00xx` (lower-case hex); everything else,
//!   U+007F and non-ASCII included, as itself in UTF-8.
//! - Numbers (§3.2.2.3) are ECMAScript's `Number.prototype.toString`. A
//!   manifest holds integers only, so only integers are written, as
//!   ECMAScript writes them: those with |n| ≤ 2^53 − 1 (exactly representable
//!   as an IEEE 754 double), including integral values written as floats in
//!   the input (`1.0` is `1`, `-0` is `0`). Any other number (a fraction, or
//!   an integer beyond 2^53 − 1) is refused with a named error rather than
//!   written in a form another JCS implementation might not produce.

use std::cmp::Ordering;

use serde_json::Value;
use thiserror::Error;

/// The largest integer JCS writes exactly: 2^53 − 1 (ECMAScript's
/// `Number.MAX_SAFE_INTEGER`).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why a value has no canonical form here.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CanonicalError {
    /// A number with a fraction: the manifest holds integers only, and this
    /// writer does not implement ECMAScript's float format.
    #[error("number {number} at {path} is not an integer; the manifest holds integers only (RFC 8785 floats are not written)")]
    NotAnInteger { path: String, number: String },
    /// An integer beyond ±(2^53 − 1): a double cannot hold it exactly, so its
    /// JCS form would not be the integer (RFC 8785 §3.2.2.3).
    #[error(
        "integer {number} at {path} is beyond ±(2^53 − 1), which RFC 8785 cannot write exactly"
    )]
    UnsafeInteger { path: String, number: String },
}

/// The RFC 8785 canonical form of `value`.
pub fn to_canonical(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(1024);
    let mut path = String::new();
    write_value(&mut out, value, &mut path)?;
    Ok(out)
}

/// Compares two member names as RFC 8785 §3.2.3 sorts them: by UTF-16 code
/// units.
pub fn cmp_utf16(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// `path` is a JSON Pointer (RFC 6901) to `value`, for errors.
fn write_value(out: &mut Vec<u8>, value: &Value, path: &mut String) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(out, n, path)?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                write_value(out, item, path)?;
                path.truncate(len);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_by(|a, b| cmp_utf16(a.0, b.0));
            out.push(b'{');
            for (i, (name, member)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, name);
                out.push(b':');
                let len = path.len();
                path.push('/');
                // RFC 6901 escaping, so the pointer names the member.
                path.push_str(&name.replace('~', "~0").replace('/', "~1"));
                write_value(out, member, path)?;
                path.truncate(len);
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_number(
    out: &mut Vec<u8>,
    n: &serde_json::Number,
    path: &str,
) -> Result<(), CanonicalError> {
    let where_ = || {
        if path.is_empty() {
            "/".to_owned()
        } else {
            path.to_owned()
        }
    };
    let unsafe_integer = || CanonicalError::UnsafeInteger {
        path: where_(),
        number: n.to_string(),
    };
    let text = if let Some(u) = n.as_u64() {
        if u > MAX_SAFE_INTEGER {
            return Err(unsafe_integer());
        }
        u.to_string()
    } else if let Some(i) = n.as_i64() {
        if i.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(unsafe_integer());
        }
        i.to_string()
    } else {
        // serde_json parses anything with a fraction or an exponent as a
        // float. An integral one in the safe range is written as
        // ECMAScript does, as the integer (`1.0` and `1e2` are `1` and
        // `100`, `-0` is `0`); any other is refused.
        let f = n.as_f64().unwrap_or(f64::NAN);
        if f.fract() != 0.0 || !f.is_finite() {
            return Err(CanonicalError::NotAnInteger {
                path: where_(),
                number: n.to_string(),
            });
        }
        if f.abs() > MAX_SAFE_INTEGER as f64 {
            return Err(unsafe_integer());
        }
        // Exact: |f| < 2^53 and integral.
        (f as i64).to_string()
    };
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let mut plain_from = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            0x08 => Some(b"\\b"),
            0x09 => Some(b"\\t"),
            0x0a => Some(b"\\n"),
            0x0c => Some(b"\\f"),
            0x0d => Some(b"\\r"),
            0x00..=0x1f => None,
            // Everything else, multi-byte UTF-8 included, is copied as is.
            _ => continue,
        };
        out.extend_from_slice(&s.as_bytes()[plain_from..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        plain_from = i + 1;
    }
    out.extend_from_slice(&s.as_bytes()[plain_from..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn check(input: &str, expected: &str) {
        let value: Value = serde_json::from_str(input).unwrap();
        let out = to_canonical(&value).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    /// RFC 8785 §3.2.2, the example without its floating-point numbers
    /// (which a manifest does not hold): literals and string escaping.
    #[test]
    fn rfc8785_3_2_2_literals_and_strings() {
        check(
            r#"{
              "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
              "literals": [null, true, false]
            }"#,
            r#"{"literals":[null,true,false],"string":"€$\u000f\nA'B\"\\\\\"/"}"#,
        );
    }

    /// RFC 8785 §3.2.3: sorting by UTF-16 code units puts U+1F600 (a
    /// surrogate pair starting 0xD83D) before U+FB33, unlike code point order.
    #[test]
    fn rfc8785_3_2_3_sorting() {
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        check(
            input,
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
             \"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\
             \"😀\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}",
        );
        // The RFC's hex of the first bytes: {"\r":"Carriage Return","1":…
        let out = to_canonical(&serde_json::from_str(input).unwrap()).unwrap();
        assert_eq!(
            &out[..16],
            &[
                0x7b, 0x22, 0x5c, 0x72, 0x22, 0x3a, 0x22, 0x43, 0x61, 0x72, 0x72, 0x69, 0x61, 0x67,
                0x65, 0x20
            ]
        );
    }

    /// RFC 8785 Appendix B's integers, and nested structures without spaces.
    #[test]
    fn integers_and_nesting() {
        check("0", "0");
        check("-0", "0");
        check("9007199254740991", "9007199254740991");
        check("-9007199254740991", "-9007199254740991");
        // Integral values written as floats are integers in ECMAScript.
        check("[1.0, 1e2, -0.0, 4.0e0]", "[1,100,0,4]");
        check(
            r#" { "b" : [ 1 , { "d" : 2 , "c" : [ ] } ] , "a" : { } } "#,
            r#"{"a":{},"b":[1,{"c":[],"d":2}]}"#,
        );
    }

    /// Every control character has one escape; U+007F and U+2028 do not.
    #[test]
    fn control_characters() {
        let all: String = (0u8..0x20).map(char::from).collect();
        let out = to_canonical(&json!(all)).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\
             \\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\
             \\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\""
        );
        let out = to_canonical(&json!("\u{7f}\u{2028}")).unwrap();
        assert_eq!(out, "\"\u{7f}\u{2028}\"".as_bytes());
    }

    /// Floats are refused by name, with where they are (R3: never emit a
    /// non-canonical signed form).
    #[test]
    fn non_integers_are_refused_by_name() {
        let value: Value = serde_json::from_str(r#"{"a":[1,{"b/c":4.5}]}"#).unwrap();
        assert_eq!(
            to_canonical(&value),
            Err(CanonicalError::NotAnInteger {
                path: "/a/1/b~1c".into(),
                number: "4.5".into()
            })
        );
        let value: Value = serde_json::from_str("1e-3").unwrap();
        assert!(matches!(
            to_canonical(&value),
            Err(CanonicalError::NotAnInteger { .. })
        ));
    }

    #[test]
    fn integers_beyond_2_pow_53_are_refused() {
        for n in [
            json!(1u64 << 53),
            json!(-(1i64 << 53)),
            json!(u64::MAX),
            json!(1e300),
        ] {
            assert!(
                matches!(to_canonical(&n), Err(CanonicalError::UnsafeInteger { .. })),
                "{n}"
            );
        }
    }
}
