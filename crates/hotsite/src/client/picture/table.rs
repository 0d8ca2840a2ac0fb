//! Text columns for the picture: padded to the widest plain text, so colour
//! codes do not shift them.

use super::{style, Style};

/// One cell: its plain text and how it is shown.
pub(crate) type Cell = (String, Style);

/// Columns padded to their widest plain text (styles do not shift them);
/// heading rows go between the rows without taking part in the widths.
pub(super) struct Table {
    rows: Vec<Row>,
}

enum Row {
    Cells(Vec<Cell>),
    Heading(String),
}

impl Table {
    pub(super) fn new() -> Table {
        Table { rows: Vec::new() }
    }

    pub(super) fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(Row::Cells(cells));
    }

    pub(super) fn heading(&mut self, line: String) {
        self.rows.push(Row::Heading(line));
    }

    pub(super) fn render(self, indent: &str, colour: bool, out: &mut Vec<String>) {
        let mut widths: Vec<usize> = Vec::new();
        for row in &self.rows {
            let Row::Cells(cells) = row else { continue };
            for (column, (text, _)) in cells.iter().enumerate() {
                let width = text.chars().count();
                match widths.get_mut(column) {
                    Some(widest) => *widest = (*widest).max(width),
                    None => widths.push(width),
                }
            }
        }
        for row in self.rows {
            let cells = match row {
                Row::Heading(line) => {
                    out.push(line);
                    continue;
                }
                Row::Cells(cells) => cells,
            };
            let mut line = indent.to_owned();
            let last = cells.len().saturating_sub(1);
            for (column, (text, cell_style)) in cells.iter().enumerate() {
                // A column empty in every row (no ages without a clock)
                // takes no room.
                if widths[column] == 0 {
                    continue;
                }
                line.push_str(&style(text, *cell_style, colour));
                if column < last {
                    let pad = widths[column] - text.chars().count() + 2;
                    line.push_str(&" ".repeat(pad));
                }
            }
            out.push(line.trim_end().to_owned());
        }
    }
}
