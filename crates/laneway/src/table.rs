//! Plain-text tables for the CLI, as readable as `postqueue -p`: a header
//! of one-word labels, each value aligned under its label (numbers to the
//! right, text to the left), columns as wide as their widest cell.

/// How a column's cells are aligned under its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A table being filled.
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns.
    pub fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            columns: columns.iter().map(|(h, a)| (h.to_string(), *a)).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are empty, extra ones dropped).
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.columns.len(), String::new());
        self.rows.push(cells);
    }

    /// The table as lines, two spaces between columns, no trailing blanks.
    pub fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (h, _))| {
                self.rows
                    .iter()
                    .map(|r| width(&r[i]))
                    .chain(std::iter::once(width(h)))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            let mut out = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i > 0 {
                    out.push_str("  ");
                }
                let pad = widths[i] - width(c);
                match self.columns[i].1 {
                    Align::Right => {
                        out.extend(std::iter::repeat_n(' ', pad));
                        out.push_str(c);
                    }
                    Align::Left => {
                        out.push_str(c);
                        out.extend(std::iter::repeat_n(' ', pad));
                    }
                }
            }
            out.trim_end().to_string()
        };
        let mut out = line(self.columns.iter().map(|(h, _)| h.as_str()).collect());
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r.iter().map(String::as_str).collect()));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_line_up_under_their_labels() {
        let mut t = Table::new(&[
            ("lane", Align::Right),
            ("site", Align::Left),
            ("n", Align::Right),
        ]);
        t.row(vec!["9".into(), "mx.example.com".into(), "12345".into()]);
        t.row(vec!["10".into(), "a".into(), "7".into()]);
        let out = t.render();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "lane  site                n");
        assert_eq!(lines[1], "   9  mx.example.com  12345");
        assert_eq!(lines[2], "  10  a                   7");
    }
}
