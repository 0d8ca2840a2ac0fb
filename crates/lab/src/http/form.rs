//! `application/x-www-form-urlencoded` bodies, strictly: the HTTP API's submit
//! form in, callbacks out.
//!
//! Written here rather than borrowed because the lab must *report* what is
//! wrong with a body (a bad escape, bytes that are not UTF-8, a field given
//! twice), where lenient decoders replace or pick silently.

use std::fmt::Write;

/// The fields of a form, in the order they came.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Form {
    fields: Vec<(String, String)>,
}

/// Why a body is not a form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FormError {
    /// A `%` not followed by two hex digits.
    #[error("invalid percent-encoding in {0}")]
    BadEscape(String),
    /// The decoded bytes are not UTF-8.
    #[error("{0} is not UTF-8")]
    NotUtf8(String),
    /// A field appears twice: which one counts would be a guess.
    #[error("field {0} appears more than once")]
    Duplicate(String),
}

impl Form {
    /// The value of field `name`, if present.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Parses a form body. Empty pairs (`a=1&&b=2`, a trailing `&`) are skipped; a
/// pair without `=` is a field with an empty value.
pub(crate) fn parse(body: &[u8]) -> Result<Form, FormError> {
    let mut form = Form::default();
    for pair in body.split(|byte| *byte == b'&') {
        if pair.is_empty() {
            continue;
        }
        let (raw_name, raw_value) = match pair.iter().position(|byte| *byte == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        };
        let name = decode(raw_name, || "a field name".to_owned())?;
        let value = decode(raw_value, || format!("field {name}"))?;
        if form.get(&name).is_some() {
            return Err(FormError::Duplicate(name));
        }
        form.fields.push((name, value));
    }
    Ok(form)
}

/// Encodes `fields` as a form body: letters, digits and `*-._` as they are,
/// space as `+`, every other byte of the UTF-8 as `%XX` (the WHATWG serializer).
pub(crate) fn encode(fields: &[(&str, &str)]) -> String {
    let mut body = String::new();
    for (index, (name, value)) in fields.iter().enumerate() {
        if index > 0 {
            body.push('&');
        }
        encode_into(&mut body, name);
        body.push('=');
        encode_into(&mut body, value);
    }
    body
}

fn encode_into(out: &mut String, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            other => {
                // Writing to a String cannot fail.
                let _ = write!(out, "%{other:02X}");
            }
        }
    }
}

/// Decodes `+` and `%XX`; `what` names the part in errors.
fn decode(raw: &[u8], what: impl Fn() -> String) -> Result<String, FormError> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut index = 0;
    while index < raw.len() {
        match raw[index] {
            b'+' => bytes.push(b' '),
            b'%' => {
                let high = raw.get(index + 1).and_then(|digit| hex_value(*digit));
                let low = raw.get(index + 2).and_then(|digit| hex_value(*digit));
                let (Some(high), Some(low)) = (high, low) else {
                    return Err(FormError::BadEscape(what()));
                };
                bytes.push(high << 4 | low);
                index += 2;
            }
            other => bytes.push(other),
        }
        index += 1;
    }
    String::from_utf8(bytes).map_err(|_| FormError::NotUtf8(what()))
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_plus_and_utf8() {
        let form =
            parse(b"message=caf%C3%A9+%26+cr%C3%A8me&sender=ACME&empty=&bare&&").expect("form");
        assert_eq!(form.get("message"), Some("café & crème"));
        assert_eq!(form.get("sender"), Some("ACME"));
        assert_eq!(form.get("empty"), Some(""));
        assert_eq!(form.get("bare"), Some(""));
        assert_eq!(form.get("absent"), None);
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let text = "Zoë says: 1+1=2 & 100% ✓\r\nnext line";
        let body = encode(&[("message", text), ("to", "+33612345678")]);
        assert_eq!(
            &body[body.len() - 18..],
            "&to=%2B33612345678",
            "the + of a number is escaped"
        );
        let form = parse(body.as_bytes()).expect("form");
        assert_eq!(form.get("message"), Some(text));
        assert_eq!(form.get("to"), Some("+33612345678"));
    }

    #[test]
    fn malformed_bodies_name_the_problem() {
        for (body, expected) in [
            (
                &b"message=100%"[..],
                "invalid percent-encoding in field message",
            ),
            (b"message=%zz", "invalid percent-encoding in field message"),
            (b"mess%4=x", "invalid percent-encoding in a field name"),
            (b"message=%FF%FE", "field message is not UTF-8"),
            (b"login=a&login=b", "field login appears more than once"),
        ] {
            let error = parse(body).expect_err(&String::from_utf8_lossy(body));
            assert_eq!(error.to_string(), expected);
        }
    }
}
