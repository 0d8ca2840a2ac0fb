//! Text the gateway reports is partly its peers' text: an aggregator's error
//! body, an SMTP server's reply, a SIP reason phrase. Written to a terminal
//! raw, a control character in it could move the cursor, retitle the window
//! or write the clipboard (OSC 52). Every string read from the API is made
//! printable here before anything draws it; our own colour codes are added
//! afterwards.

use std::borrow::Cow;

use serde_json::Value;

/// `text` with every control character replaced: tabs and line breaks by a
/// space (the picture is one line per item), the rest (ESC, BEL, C1 codes…)
/// by U+FFFD, so their presence stays visible.
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| match c {
                '\t' | '\n' | '\r' => ' ',
                c if c.is_control() => '\u{FFFD}',
                c => c,
            })
            .collect(),
    )
}

/// Makes every string in `value` (keys too) printable, in place.
pub(crate) fn clean(value: &mut Value) {
    match value {
        Value::String(text) => {
            if let Cow::Owned(clean) = printable(text) {
                *text = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(clean),
        Value::Object(map) => {
            if map
                .keys()
                .any(|key| matches!(printable(key), Cow::Owned(_)))
            {
                let taken = std::mem::take(map);
                *map = taken
                    .into_iter()
                    .map(|(key, value)| (printable(&key).into_owned(), value))
                    .collect();
            }
            map.values_mut().for_each(clean);
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// An aggregator's error body with an OSC 52 clipboard write, a cursor
    /// move and a line break, in a bind's cause and a channel's name: nothing
    /// of it reaches the terminal as a control character.
    #[test]
    fn control_characters_from_peers_never_reach_the_terminal() {
        let mut status = json!({
            "binds": [{"last_failure": "HTTP 500: \u{1b}]52;c;cm0gLXJmIH4=\u{7}\u{1b}[2J\nretry"}],
            "channels": {"ch\u{1b}[31mat": {"health": "down", "n": 3, "ok": true}},
        });
        clean(&mut status);
        let text = status.to_string();
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text}"
        );
        assert_eq!(
            status["binds"][0]["last_failure"],
            "HTTP 500: \u{FFFD}]52;c;cm0gLXJmIH4=\u{FFFD}\u{FFFD}[2J retry"
        );
        assert!(status["channels"]["ch\u{FFFD}[31mat"]["health"] == "down");
        assert_eq!(status["channels"]["ch\u{FFFD}[31mat"]["n"], 3);
        assert_eq!(
            printable("plain text · ok"),
            Cow::Borrowed("plain text · ok")
        );
        assert_eq!(printable("\u{9b}31m"), "\u{FFFD}31m", "C1 CSI too");
    }
}
