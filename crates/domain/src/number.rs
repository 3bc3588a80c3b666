//! Order numbers: a pattern such as `ORD{yyyy}{mm}{dd}{seq:3}` (the default) renders to `ORD20261121001`.
//! The sequence counts per rendered prefix (so per day by default) and widens past its width (`...1000`).
//! The storage layer hands out sequence numbers atomically; this module only renders.

use chrono::{Datelike, NaiveDate};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Year4,
    Year2,
    Month,
    Day,
    Seq(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberPattern {
    parts: Vec<Part>,
    source: String,
}

pub const DEFAULT_PATTERN: &str = "ORD{yyyy}{mm}{dd}{seq:3}";

impl Default for NumberPattern {
    fn default() -> Self {
        NumberPattern::parse(DEFAULT_PATTERN).unwrap_or_else(|_| unreachable!("the default pattern parses"))
    }
}

impl NumberPattern {
    /// Parses a pattern. Tokens: `{yyyy}` `{yy}` `{mm}` `{dd}` `{seq}` `{seq:N}`; literals are letters, digits, `-`, `_`, `/`.
    pub fn parse(pattern: &str) -> Result<NumberPattern, String> {
        let mut parts = Vec::new();
        let mut rest = pattern;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let end = after
                    .find('}')
                    .ok_or_else(|| format!("order number pattern '{pattern}': a '{{' is not closed"))?;
                let token = &after[..end];
                parts.push(match token {
                    "yyyy" => Part::Year4,
                    "yy" => Part::Year2,
                    "mm" => Part::Month,
                    "dd" => Part::Day,
                    "seq" => Part::Seq(1),
                    t if t.starts_with("seq:") => {
                        let width: usize = t[4..].parse().map_err(|_| format!("order number pattern '{pattern}': bad width in {{{t}}}"))?;
                        if !(1..=9).contains(&width) {
                            return Err(format!("order number pattern '{pattern}': sequence width must be 1 to 9"));
                        }
                        Part::Seq(width)
                    }
                    other => return Err(format!("order number pattern '{pattern}': unknown token {{{other}}} (use yyyy, yy, mm, dd, seq, seq:N)")),
                });
                rest = &after[end + 1..];
            } else {
                let end = rest.find('{').unwrap_or(rest.len());
                let literal = &rest[..end];
                if let Some(bad) = literal
                    .chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || "-_/".contains(*c)))
                {
                    return Err(format!(
                        "order number pattern '{pattern}': character '{bad}' is not allowed"
                    ));
                }
                parts.push(Part::Literal(literal.to_string()));
                rest = &rest[end..];
            }
        }
        let seqs = parts.iter().filter(|p| matches!(p, Part::Seq(_))).count();
        if seqs != 1 {
            return Err(format!(
                "order number pattern '{pattern}' must contain exactly one {{seq}} or {{seq:N}}"
            ));
        }
        Ok(NumberPattern {
            parts,
            source: pattern.to_string(),
        })
    }

    fn render_with(&self, date: NaiveDate, seq: Option<i64>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Year4 => out.push_str(&format!("{:04}", date.year())),
                Part::Year2 => out.push_str(&format!("{:02}", date.year() % 100)),
                Part::Month => out.push_str(&format!("{:02}", date.month())),
                Part::Day => out.push_str(&format!("{:02}", date.day())),
                Part::Seq(width) => match seq {
                    Some(n) => out.push_str(&format!("{n:0width$}")),
                    None => out.push('#'),
                },
            }
        }
        out
    }

    /// The counter a number draws from: the pattern rendered for `date` with the sequence left out.
    pub fn scope(&self, date: NaiveDate) -> String {
        self.render_with(date, None)
    }

    /// The order number for `date` and sequence `seq` (1-based).
    pub fn render(&self, date: NaiveDate, seq: i64) -> String {
        self.render_with(date, Some(seq))
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_numbers_are_ord_date_and_a_daily_sequence_that_widens() {
        let p = NumberPattern::default();
        let day = NaiveDate::from_ymd_opt(2023, 10, 25).unwrap();
        assert_eq!(p.render(day, 1), "ORD20231025001");
        assert_eq!(p.render(day, 999), "ORD20231025999");
        assert_eq!(p.render(day, 1000), "ORD202310251000");
        assert_eq!(p.scope(day), "ORD20231025#");
        assert_ne!(p.scope(day), p.scope(day.succ_opt().unwrap()));
    }

    #[test]
    fn other_patterns_and_bad_patterns() {
        let p = NumberPattern::parse("SO-{yy}{mm}-{seq:5}").unwrap();
        assert_eq!(
            p.render(NaiveDate::from_ymd_opt(2026, 3, 9).unwrap(), 42),
            "SO-2603-00042"
        );
        assert!(NumberPattern::parse("ORD{yyyy}").is_err());
        assert!(NumberPattern::parse("{seq}{seq}").is_err());
        assert!(NumberPattern::parse("ORD {seq}").is_err());
        assert!(NumberPattern::parse("ORD{week}{seq}").is_err());
        assert!(NumberPattern::parse("ORD{seq").is_err());
    }
}
