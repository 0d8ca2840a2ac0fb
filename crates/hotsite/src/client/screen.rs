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
            let mut text = String::from(HOME);
            for (n, line) in picture.iter().enumerate() {
                text.push_str(line);
                text.push_str(CLEAR_LINE_END);
                text.push('\n');
                if n == 0 {
                    if let Some(notice) = notice {
                        text.push_str(&super::picture::style(
                            notice,
                            super::picture::Style::Warn,
                            self.terminal.colour,
                        ));
                        text.push_str(CLEAR_LINE_END);
                        text.push('\n');
                    }
                }
            }
            text.push_str(CLEAR_BELOW);
            return write_all(&text);
        }
        if self.last_printed.as_ref() == Some(&changed_key) {
            return Ok(());
        }
        self.last_printed = Some(changed_key);
        let mut text = String::from("\n");
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
