//! Where `hotsite status --follow` writes: a terminal gets the picture
//! redrawn in place on the alternate screen (given back on exit, Ctrl-C
//! included); a pipe gets the picture, then one line per event and a fresh
//! picture when the status changed, so the output can be read by a script.

use std::io::{IsTerminal, Write};

/// Switch to the alternate screen, hide the cursor.
const ENTER: &str = "\u{1b}[?1049h\u{1b}[?25l";
/// Show the cursor, back to the normal screen.
const LEAVE: &str = "\u{1b}[?25h\u{1b}[?1049l";
/// Cursor home; each line then clears what is left of the old one, and the
/// rest of the screen is cleared after the last (no blank flash between
/// pictures, as a full clear first would give).
const HOME: &str = "\u{1b}[H";
const CLEAR_LINE_END: &str = "\u{1b}[K";
const CLEAR_BELOW: &str = "\u{1b}[J";

/// Rows and columns of the terminal on stdout; none when it is not one.
pub(crate) fn terminal_size() -> Option<(usize, usize)> {
    let size = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (size.ws_row > 0 && size.ws_col > 0)
        .then_some((usize::from(size.ws_row), usize::from(size.ws_col)))
}

/// Fits `lines` in `rows` × `columns`: long lines are cut (colour codes do
/// not count and a cut colour is ended), and past the last row a line says
/// how many more there are. A redraw that scrolled or wrapped would leave
/// the screen garbled.
pub(crate) fn fit(lines: &[String], rows: usize, columns: usize) -> Vec<String> {
    let rows = rows.max(1);
    let mut fitted: Vec<String> = lines.iter().map(|line| cut(line, columns)).collect();
    if fitted.len() > rows {
        let hidden = fitted.len() - (rows - 1);
        fitted.truncate(rows - 1);
        fitted.push(cut(
            &format!("… {hidden} more lines (a taller terminal shows them)"),
            columns,
        ));
    }
    fitted
}

/// `line` cut to `columns` visible characters.
fn cut(line: &str, columns: usize) -> String {
    let mut out = String::with_capacity(line.len());
    let mut visible = 0;
    let mut chars = line.chars().peekable();
    let mut coloured = false;
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An SGR sequence, ESC [ … m: copied, not counted.
            let mut sequence = String::from(c);
            while let Some(&next) = chars.peek() {
                sequence.push(next);
                chars.next();
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
            coloured = sequence != "\u{1b}[0m";
            out.push_str(&sequence);
            continue;
        }
        if visible == columns {
            if coloured {
                out.push_str("\u{1b}[0m");
            }
            return out;
        }
        out.push(c);
        visible += 1;
    }
    out
}

/// Whether stdout is a terminal, and whether it gets colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Terminal {
    pub(crate) tty: bool,
    pub(crate) colour: bool,
}

impl Terminal {
    /// Colours only on a terminal, and not when `NO_COLOR` is set to
    /// anything (https://no-color.org).
    pub(crate) fn detect() -> Terminal {
        let tty = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
        Terminal {
            tty,
            colour: tty && !no_color,
        }
    }
}

/// The follow mode's output. On a terminal, the alternate screen is left
/// when this is dropped, however the program ends.
pub(crate) struct Screen {
    terminal: Terminal,
    /// A pipe's last printed picture, to print only a changed one.
    last_printed: Option<Vec<String>>,
}

impl Screen {
    /// Takes over the terminal, if stdout is one.
    pub(crate) fn open(terminal: Terminal) -> std::io::Result<Screen> {
        if terminal.tty {
            write_all(ENTER)?;
        }
        Ok(Screen {
            terminal,
            last_printed: None,
        })
    }

    pub(crate) fn terminal(&self) -> Terminal {
        self.terminal
    }

    pub(crate) fn is_tty(&self) -> bool {
        self.terminal.tty
    }

    /// Rows and columns of the terminal; none on a pipe.
    pub(crate) fn size(&self) -> Option<(usize, usize)> {
        self.terminal.tty.then(terminal_size).flatten()
    }

    /// On a terminal: redraws `picture` with `notice` (reconnecting, …)
    /// under its first line. On a pipe: prints `picture` when `changed_key`
    /// differs from the last printed one (the notice is printed as a line of
    /// its own by [`Screen::line`]).
    pub(crate) fn picture(
        &mut self,
        picture: &[String],
        notice: Option<&str>,
        changed_key: Vec<String>,
    ) -> std::io::Result<()> {
        if self.terminal.tty {
            let text = redraw(picture, notice, self.size(), self.terminal.colour);
            return write_all(&text);
        }
        if self.last_printed.as_ref() == Some(&changed_key) {
            return Ok(());
        }
        // A blank line sets each picture apart from the lines before it.
        let mut text = String::from(if self.last_printed.is_some() {
            "\n"
        } else {
            ""
        });
        self.last_printed = Some(changed_key);
        for line in picture {
            text.push_str(line);
            text.push('\n');
        }
        write_all(&text)
    }

    /// On a pipe: one line (an event, a notice). A terminal shows events in
    /// the picture's timeline instead.
    pub(crate) fn line(&mut self, line: &str) -> std::io::Result<()> {
        if self.terminal.tty {
            return Ok(());
        }
        write_all(&format!("{line}\n"))
    }
}

/// What redraws a terminal with `picture`: cursor home, each line over the
/// old one, `notice` under the first, fitted to `size` (rows, columns) with
/// the last row left empty (a line ending there would scroll), the rest of
/// the screen cleared.
fn redraw(
    picture: &[String],
    notice: Option<&str>,
    size: Option<(usize, usize)>,
    colour: bool,
) -> String {
    let mut lines = picture.to_vec();
    if let Some(notice) = notice {
        let notice = super::picture::style(notice, super::picture::Style::Warn, colour);
        lines.insert(1.min(lines.len()), notice);
    }
    if let Some((rows, columns)) = size {
        lines = fit(&lines, rows.saturating_sub(1), columns);
    }
    let mut text = String::from(HOME);
    for line in lines {
        text.push_str(&line);
        text.push_str(CLEAR_LINE_END);
        text.push('\n');
    }
    text.push_str(CLEAR_BELOW);
    text
}

impl Drop for Screen {
    fn drop(&mut self) {
        if self.terminal.tty {
            let _ = write_all(LEAVE);
        }
    }
}

fn write_all(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn a_picture_taller_than_the_terminal_says_what_is_hidden() {
        let picture = lines(&["one", "two", "three", "four", "five"]);
        assert_eq!(fit(&picture, 10, 80), picture);
        assert_eq!(
            fit(&picture, 3, 80),
            lines(&[
                "one",
                "two",
                "… 3 more lines (a taller terminal shows them)"
            ])
        );
    }

    #[test]
    fn a_redraw_overwrites_in_place_with_the_notice_under_the_header() {
        let picture = lines(&["hotsite status", "smsc binds: 3 of 4 up", "a", "b", "c"]);
        let text = redraw(&picture, Some("reconnecting…"), Some((5, 80)), false);
        assert_eq!(
            text,
            "\u{1b}[H\
             hotsite status\u{1b}[K\n\
             reconnecting…\u{1b}[K\n\
             smsc binds: 3 of 4 up\u{1b}[K\n\
             … 3 more lines (a taller terminal shows them)\u{1b}[K\n\
             \u{1b}[J"
        );
        let coloured = redraw(&picture, Some("reconnecting…"), None, true);
        assert!(
            coloured.contains("\u{1b}[33mreconnecting…\u{1b}[0m\u{1b}[K\n"),
            "{coloured:?}"
        );
        assert!(coloured.contains("\nc\u{1b}[K\n\u{1b}[J"), "{coloured:?}");
    }

    /// Colour codes take no columns; a line cut inside a colour ends it.
    #[test]
    fn long_lines_are_cut_to_the_width_counting_visible_characters() {
        let picture = lines(&["abcdef", "a\u{1b}[31mDOWN\u{1b}[0m b", "· · ·"]);
        assert_eq!(
            fit(&picture, 10, 4),
            lines(&["abcd", "a\u{1b}[31mDOW\u{1b}[0m", "· · "])
        );
        assert_eq!(
            fit(&picture, 10, 6),
            lines(&["abcdef", "a\u{1b}[31mDOWN\u{1b}[0m ", "· · ·"])
        );
    }
}
