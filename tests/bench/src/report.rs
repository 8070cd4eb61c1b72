//! The result of a run: rows of figures, printed as a Markdown table and saved as JSON.

use serde::Serialize;

use secretcache_tests::stats::Summary;

/// One cell of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    /// Measured: median, min, max of the repeats.
    Measured(Summary),
    /// Not a measurement: "pending", "not built", "n/a".
    Text(String),
    /// Not part of this run (e.g. the peer column without `BENCH_PEER_CMD`).
    Absent,
}

impl Cell {
    /// A measured cell, or [`Cell::Absent`] when there were no samples.
    pub fn of(samples: &[f64]) -> Cell {
        Summary::of(samples).map_or(Cell::Absent, Cell::Measured)
    }

    /// A text cell.
    pub fn text(s: &str) -> Cell {
        Cell::Text(s.to_owned())
    }

    fn samples(&self) -> &[f64] {
        match self {
            Cell::Measured(s) => &s.samples,
            _ => &[],
        }
    }
}

/// One measured quantity for every target.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Issue item: 1–7.
    pub item: u8,
    /// What is measured, e.g. "hit, 8 conns: p99".
    pub metric: String,
    /// Unit of every cell in the row.
    pub unit: String,
    /// The baseline (minimal hyper server, or the stated ideal).
    pub baseline: Cell,
    /// secretcache.
    pub ours: Cell,
    /// `ours / baseline`, per paired repeat.
    pub ratio: Cell,
    /// The peer, when `BENCH_PEER_CMD` was set.
    pub peer: Cell,
    /// `peer / baseline`, per paired repeat.
    pub peer_ratio: Cell,
    /// What the baseline is for this row, or anything a reader must know.
    pub note: String,
}

impl Row {
    /// A row whose ratios are computed from paired repeats of `baseline`.
    pub fn new(item: u8, metric: &str, unit: &str, baseline: Cell, ours: Cell, peer: Cell) -> Row {
        let ratio_of = |c: &Cell| match (c, &baseline) {
            (Cell::Measured(_), Cell::Measured(_)) => {
                Summary::paired_ratio(c.samples(), baseline.samples())
                    .map_or(Cell::Absent, Cell::Measured)
            }
            (Cell::Absent, _) => Cell::Absent,
            _ => Cell::text("n/a"),
        };
        let (ratio, peer_ratio) = (ratio_of(&ours), ratio_of(&peer));
        Row {
            item,
            metric: metric.to_owned(),
            unit: unit.to_owned(),
            baseline,
            ours,
            ratio,
            peer,
            peer_ratio,
            note: String::new(),
        }
    }

    /// Adds a note.
    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }
}

/// Everything one run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Seconds since the epoch when the run started.
    pub started_unix: u64,
    /// The machine and pinning.
    pub machine: crate::host::Machine,
    /// The settings used.
    pub settings: crate::Settings,
    /// The peer's command line, if any.
    pub peer_cmd: Option<String>,
    /// Lines printed above the table (what was measured, and how).
    pub header: Vec<String>,
    /// The figures.
    pub rows: Vec<Row>,
    /// Wall time of the whole run, seconds.
    pub wall_seconds: f64,
}

/// A number with about three significant digits.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    let a = v.abs();
    if a >= 100.0 || v == v.trunc() && a < 1e15 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn cell(c: &Cell) -> String {
    match c {
        Cell::Measured(s) if s.samples.len() > 1 && s.min != s.max => {
            format!("{} ({}–{})", num(s.median), num(s.min), num(s.max))
        }
        Cell::Measured(s) => num(s.median),
        Cell::Text(t) => t.clone(),
        Cell::Absent => "–".to_owned(),
    }
}

fn ratio_cell(c: &Cell) -> String {
    match c {
        Cell::Measured(s) if s.samples.len() > 1 && s.min != s.max => {
            format!("{:.2} ({:.2}–{:.2})", s.median, s.min, s.max)
        }
        Cell::Measured(s) => format!("{:.2}", s.median),
        other => cell(other),
    }
}

impl Report {
    /// The Markdown table with its header lines.
    pub fn markdown(&self) -> String {
        let with_peer = self.peer_cmd.is_some();
        let mut out = String::new();
        for line in &self.header {
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
        out.push_str("| # | measurement | unit | baseline | secretcache | × baseline |");
        if with_peer {
            out.push_str(" peer | peer × baseline |");
        }
        out.push_str(" notes |\n|---|---|---|---:|---:|---:|");
        if with_peer {
            out.push_str("---:|---:|");
        }
        out.push_str("---|\n");
        for r in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |",
                r.item,
                r.metric,
                r.unit,
                cell(&r.baseline),
                cell(&r.ours),
                ratio_cell(&r.ratio)
            ));
            if with_peer {
                out.push_str(&format!(
                    " {} | {} |",
                    cell(&r.peer),
                    ratio_cell(&r.peer_ratio)
                ));
            }
            out.push_str(&format!(" {} |\n", r.note));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_about_three_digits() {
        assert_eq!(num(12345.6), "12346");
        assert_eq!(num(42.0), "42");
        assert_eq!(num(42.37), "42.4");
        assert_eq!(num(4.237), "4.24");
        assert_eq!(num(0.4237), "0.424");
        assert_eq!(num(f64::NAN), "–");
    }

    #[test]
    fn rows_pair_repeats_for_ratios() {
        let r = Row::new(
            1,
            "x",
            "req/s",
            Cell::of(&[100.0, 200.0]),
            Cell::of(&[90.0, 200.0]),
            Cell::Absent,
        );
        assert_eq!(r.ratio, Cell::of(&[0.9, 1.0]));
        assert_eq!(r.peer_ratio, Cell::Absent);
        let r = Row::new(
            7,
            "y",
            "ms",
            Cell::text("pending"),
            Cell::text("pending"),
            Cell::Absent,
        );
        assert_eq!(r.ratio, Cell::text("n/a"));
    }

    #[test]
    fn cells_show_median_and_range() {
        assert_eq!(cell(&Cell::of(&[1.0, 3.0, 2.0])), "2 (1–3)");
        assert_eq!(cell(&Cell::of(&[1.5, 3.25, 2.5])), "2.50 (1.50–3.25)");
        assert_eq!(cell(&Cell::of(&[5.0, 5.0])), "5");
        assert_eq!(ratio_cell(&Cell::of(&[0.9, 1.1])), "1.00 (0.90–1.10)");
    }
}
