//! `POST /v1/messages` bodies: parsing and validation, before anything is stored.
//!
//! A batch is all or nothing: if any message is invalid, nothing is stored and
//! every invalid message is reported with its index, field and reason.

use serde::Serialize;
use serde_json::Value;

/// The most messages one request may carry.
pub const MAX_BATCH: usize = 1_000;
/// The longest encoded body accepted. Bodies over 254 octets travel in
/// `message_payload` (SMPP 3.4); segmentation is the SMSC's job.
pub const MAX_BODY_OCTETS: usize = 4_096;
/// The longest idempotency key.
pub const MAX_KEY_LEN: usize = 128;

/// How a body is put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 03.38 default alphabet (`data_coding` 0); only its characters allowed.
    Gsm7,
    /// ISO-8859-1 (`data_coding` 3).
    Latin1,
    /// UCS-2, UTF-16 big endian (`data_coding` 8).
    Ucs2,
}

impl Encoding {
    /// The SMPP `data_coding` value.
    pub fn data_coding(self) -> u8 {
        match self {
            Encoding::Gsm7 => 0,
            Encoding::Latin1 => 3,
            Encoding::Ucs2 => 8,
        }
    }
}

/// One validated message, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidMessage {
    /// The idempotency key, if the client gave one.
    pub key: Option<String>,
    /// Sender.
    pub from: String,
    /// Recipient, digits only (a leading `+` removed).
    pub to: String,
    /// The body, encoded.
    pub body: Vec<u8>,
    /// How it is encoded.
    pub encoding: Encoding,
    /// The route it asks for (SPEC M11); `None`: the default route. Whether the
    /// route exists is the caller's to check (it knows the configuration).
    pub route: Option<String>,
    /// The recipient's e-mail address, for an e-mail hop of the route.
    pub email: Option<String>,
}

/// One problem with one message of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Position in the batch (0 for a single message).
    pub index: usize,
    /// The field: `to`, `from`, `text`, `encoding`, `id`, or `body` for the whole.
    pub field: String,
    /// What is wrong, in words.
    pub error: String,
}

/// Parses a request body: one message object, or `{"messages": [...]}`.
/// `idempotency_key` is the `Idempotency-Key` header: the key of a single
/// message, or the prefix of per-message keys (`KEY:INDEX`) in a batch whose
/// messages carry no `id`.
pub fn parse(
    body: &[u8],
    idempotency_key: Option<&str>,
    default_from: &str,
) -> Result<Vec<ValidMessage>, Vec<FieldError>> {
    let whole = |error: String| {
        vec![FieldError {
            index: 0,
            field: "body".into(),
            error,
        }]
    };
    let value: Value =
        serde_json::from_slice(body).map_err(|e| whole(format!("not valid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(whole(
            "must be a JSON object: one message, or {\"messages\": [...]}".into(),
        ));
    };
    if let Some(key) = idempotency_key {
        if let Err(error) = check_key(key) {
            return Err(vec![FieldError {
                index: 0,
                field: "Idempotency-Key".into(),
                error,
            }]);
        }
    }
    let (items, batch) = match object.get("messages") {
        Some(Value::Array(items)) => {
            if object.len() > 1 {
                return Err(whole(
                    "a batch object has only the \"messages\" field".into(),
                ));
            }
            (items.clone(), true)
        }
        Some(_) => return Err(whole("\"messages\" must be an array".into())),
        None => (vec![Value::Object(object)], false),
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(whole(format!(
            "a batch holds 1 to {MAX_BATCH} messages, got {}",
            items.len()
        )));
    }
    let mut valid = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let header_key = idempotency_key.map(|key| {
            if batch {
                format!("{key}:{index}")
            } else {
                key.to_owned()
            }
        });
        match parse_one(index, item, header_key, default_from) {
            Ok(message) => valid.push(message),
            Err(mut problems) => errors.append(&mut problems),
        }
    }
    if errors.is_empty() {
        Ok(valid)
    } else {
        Err(errors)
    }
}

fn parse_one(
    index: usize,
    item: &Value,
    header_key: Option<String>,
    default_from: &str,
) -> Result<ValidMessage, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut fail = |field: &str, error: String| {
        errors.push(FieldError {
            index,
            field: field.into(),
            error,
        })
    };
    let Value::Object(fields) = item else {
        fail("body", "each message must be a JSON object".into());
        return Err(errors);
    };
    for name in fields.keys() {
        if !["id", "to", "from", "text", "encoding", "route", "email"].contains(&name.as_str()) {
            fail(
                name,
                "unknown field; known: id, to, from, text, encoding, route, email".into(),
            );
        }
    }
    let text_of = |name: &str| -> Result<Option<&str>, String> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err("must be a string".into()),
        }
    };
    let key = match text_of("id") {
        Ok(Some(id)) => match check_key(id) {
            Ok(()) => Some(id.to_owned()),
            Err(e) => {
                fail("id", e);
                None
            }
        },
        Ok(None) => header_key,
        Err(e) => {
            fail("id", e);
            None
        }
    };
    let to = match text_of("to") {
        Ok(Some(to)) => match check_number(to) {
            Ok(digits) => Some(digits),
            Err(e) => {
                fail("to", e);
                None
            }
        },
        Ok(None) => {
            fail(
                "to",
                "required: the recipient's number, e.g. \"+4917012345678\"".into(),
            );
            None
        }
        Err(e) => {
            fail("to", e);
            None
        }
    };
    let from = match text_of("from") {
        Ok(Some(from)) => match check_sender(from) {
            Ok(()) => Some(from.to_owned()),
            Err(e) => {
                fail("from", e);
                None
            }
        },
        Ok(None) => Some(default_from.to_owned()),
        Err(e) => {
            fail("from", e);
            None
        }
    };
    let route = match text_of("route") {
        Ok(Some(route)) if route.is_empty() || route.len() > 64 => {
            fail("route", "must be a route name of 1 to 64 characters".into());
            None
        }
        Ok(route) => route.map(str::to_owned),
        Err(e) => {
            fail("route", e);
            None
        }
    };
    let email = match text_of("email") {
        Ok(Some(email)) => match check_email(email) {
            Ok(()) => Some(email.to_owned()),
            Err(e) => {
                fail("email", e);
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            fail("email", e);
            None
        }
    };
    let encoding = match text_of("encoding") {
        Ok(None) | Ok(Some("auto")) => Ok(None),
        Ok(Some("gsm7")) => Ok(Some(Encoding::Gsm7)),
        Ok(Some("latin1")) => Ok(Some(Encoding::Latin1)),
        Ok(Some("ucs2")) => Ok(Some(Encoding::Ucs2)),
        Ok(Some(other)) => Err(format!(
            "unknown encoding {other:?}; use auto, gsm7, latin1 or ucs2"
        )),
        Err(e) => Err(e),
    };
    let encoding = match encoding {
        Ok(encoding) => encoding,
        Err(e) => {
            fail("encoding", e);
            None
        }
    };
    let body = match text_of("text") {
        Ok(Some("")) => {
            fail("text", "must not be empty".into());
            None
        }
        Ok(Some(text)) => match encode(text, encoding) {
            Ok(body) => Some(body),
            Err(e) => {
                fail("text", e);
                None
            }
        },
        Ok(None) => {
            fail("text", "required".into());
            None
        }
        Err(e) => {
            fail("text", e);
            None
        }
    };
    match (to, from, body) {
        (Some(to), Some(from), Some((body, encoding))) if errors.is_empty() => Ok(ValidMessage {
            key,
            from,
            to,
            body,
            encoding,
            route,
            email,
        }),
        _ => Err(errors),
    }
}

fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(format!("must be 1 to {MAX_KEY_LEN} characters"));
    }
    if key.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// An international number: optional `+`, then 1 to 15 digits (E.164).
fn check_number(number: &str) -> Result<String, String> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{number:?} is not a phone number: use + and up to 15 digits (E.164), e.g. \"+4917012345678\""));
    }
    Ok(digits.to_owned())
}

/// A sender: a number as above, or up to 11 letters, digits and spaces.
fn check_sender(sender: &str) -> Result<(), String> {
    if check_number(sender).is_ok() {
        return Ok(());
    }
    let alphanumeric = sender
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == ' ');
    if sender.is_empty() || sender.len() > 11 || !alphanumeric {
        return Err(format!(
            "{sender:?} is not a sender: use a number, or up to 11 letters and digits"
        ));
    }
    Ok(())
}

/// A plausible e-mail address: one `@`, a local part, a dotted domain, no spaces
/// or angle brackets, at most 254 characters (RFC 5321). The SMTP server has the
/// last word; this catches typos at the door.
fn check_email(email: &str) -> Result<(), String> {
    let bad = || Err(format!("{email:?} is not an e-mail address"));
    if email.len() > 254
        || email
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>')
    {
        return bad();
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.') =>
        {
            Ok(())
        }
        _ => bad(),
    }
}

/// Encodes `text`; `None` picks GSM 7-bit when every character is in its basic
/// alphabet, UCS-2 otherwise.
fn encode(text: &str, encoding: Option<Encoding>) -> Result<(Vec<u8>, Encoding), String> {
    let encoding = encoding.unwrap_or(if text.chars().all(is_gsm7_basic) {
        Encoding::Gsm7
    } else {
        Encoding::Ucs2
    });
    let body = match encoding {
        Encoding::Gsm7 => {
            if let Some(c) = text.chars().find(|c| !is_gsm7_basic(*c)) {
                return Err(format!("character {c:?} is not in the GSM 7-bit alphabet; use \"encoding\": \"ucs2\" (or leave it out)"));
            }
            // Sent in the SMSC's default alphabet as IA5/ASCII octets; the
            // characters outside ASCII are mapped by the SMSC.
            text.chars()
                .map(|c| u8::try_from(c as u32).unwrap_or(b'?'))
                .collect()
        }
        Encoding::Latin1 => {
            let mut bytes = Vec::with_capacity(text.len());
            for c in text.chars() {
                match u8::try_from(c as u32) {
                    Ok(byte) => bytes.push(byte),
                    Err(_) => {
                        return Err(format!(
                            "character {c:?} is not in Latin-1; use \"encoding\": \"ucs2\""
                        ))
                    }
                }
            }
            bytes
        }
        Encoding::Ucs2 => {
            if let Some(c) = text.chars().find(|c| (*c as u32) > 0xFFFF) {
                return Err(format!(
                    "character {c:?} is outside UCS-2 (the Basic Multilingual Plane)"
                ));
            }
            text.encode_utf16().flat_map(u16::to_be_bytes).collect()
        }
    };
    if body.len() > MAX_BODY_OCTETS {
        return Err(format!(
            "too long: {} octets as {encoding:?}; at most {MAX_BODY_OCTETS}",
            body.len()
        ));
    }
    Ok((body, encoding))
}

/// The printable ASCII subset of the GSM 03.38 basic alphabet plus its Latin-1
/// letters. Characters that need the escape table (`{`, `}`, `[`, `]`, `~`, `\`,
/// `^`, `|`, `€`) are left to UCS-2 to keep encoding one octet per character.
fn is_gsm7_basic(c: char) -> bool {
    matches!(c,
        'A'..='Z' | 'a'..='z' | '0'..='9' | ' ' | '\n' | '\r'
        | '!' | '"' | '#' | '$' | '%' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | '-' | '.' | '/'
        | ':' | ';' | '<' | '=' | '>' | '?' | '@' | '_'
        | '£' | '¥' | 'è' | 'é' | 'ù' | 'ì' | 'ò' | 'Ç' | 'Ø' | 'ø' | 'Å' | 'å' | 'Æ' | 'æ' | 'ß' | 'É'
        | 'Ä' | 'Ö' | 'Ñ' | 'Ü' | '§' | '¿' | 'ä' | 'ö' | 'ñ' | 'ü' | 'à' | '¡' | '¤')
}

#[cfg(test)]
mod tests;
