//! Printing: tables that fit an 80-column terminal (Chinese text measured by display width),
//! times in Asia/Shanghai, and proto3 JSON for scripts.

use chrono::{DateTime, Utc};
use chrono_tz::Asia::Shanghai;
use comfy_table::{ContentArrangement, LineStyle, Table, TableStyle, presets};
use prost_types::Timestamp;
use unicode_width::{UnicodeWidthChar as _, UnicodeWidthStr as _};

/// Prints `msg` (whose full proto name is `full_name`) as pretty proto3 JSON.
pub(crate) fn print_json<T: prost::Message>(full_name: &str, msg: &T) -> anyhow::Result<()> {
    let value = tongban_proto::json::to_json_value(full_name, msg)?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

/// `msg` as a proto3 JSON value.
pub(crate) fn json_value<T: prost::Message>(
    full_name: &str,
    msg: &T,
) -> anyhow::Result<serde_json::Value> {
    Ok(tongban_proto::json::to_json_value(full_name, msg)?)
}

/// No borders, one rule under the header: saves the columns that borders would eat.
const HEADER_RULE: TableStyle =
    TableStyle::new().header_separator(LineStyle::none().fill('─').junction('─'));

/// A borderless table with a header, arranged to the terminal (80 columns when not a terminal).
pub(crate) fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(HEADER_RULE)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(headers.iter().copied());
    // No borders: two spaces on the right of each cell separate the columns.
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    if t.width().is_none() {
        let cols = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse::<u16>().ok())
            .unwrap_or(80);
        t.set_width(cols);
    }
    t
}

/// Never wraps column `idx` (ids must stay copy-pasteable); other columns give way.
pub(crate) fn keep_whole(t: &mut Table, idx: usize) {
    if let Some(c) = t.column_mut(idx) {
        c.set_constraint(comfy_table::ColumnConstraint::ContentWidth);
    }
}

/// A two-column "field: value" table.
pub(crate) fn fields(rows: &[(&str, String)]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if t.width().is_none() {
        t.set_width(80);
    }
    for (k, v) in rows {
        if !v.is_empty() {
            t.add_row(vec![format!("{k}:"), v.clone()]);
        }
    }
    t
}

/// `s` cut to at most `max` display columns, ending in "…" when cut.
pub(crate) fn trunc(s: &str, max: usize) -> String {
    if s.width() <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw + 1 > max {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

pub(crate) fn to_utc(ts: Option<&Timestamp>) -> Option<DateTime<Utc>> {
    ts.and_then(tongban_proto::time::from_ts)
}

/// `2026-03-05 17:30` in Asia/Shanghai; empty when unset.
pub(crate) fn local(ts: Option<&Timestamp>) -> String {
    to_utc(ts)
        .map(|t| {
            t.with_timezone(&Shanghai)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

/// `03-05 17:30` in Asia/Shanghai, for narrow columns.
pub(crate) fn local_short(ts: Option<&Timestamp>) -> String {
    to_utc(ts)
        .map(|t| t.with_timezone(&Shanghai).format("%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// Now as `17:30:01.234` in Asia/Shanghai, for step-by-step logs.
pub(crate) fn clock() -> String {
    Utc::now()
        .with_timezone(&Shanghai)
        .format("%H:%M:%S%.3f")
        .to_string()
}

/// `APPLICATION_STATUS_IN_REVIEW` → `IN_REVIEW`.
pub(crate) fn short_enum(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_string()
}

/// "3/4 platforms" (or "3 platforms" when the total is unknown), plus dead letters.
pub(crate) fn platforms(
    d: Option<&tongban_proto::intake::DeliveryProgress>,
    total: Option<usize>,
) -> String {
    let (ok, dead) = d.map(|d| (d.succeeded, d.dead_lettered)).unwrap_or((0, 0));
    let mut s = match total {
        Some(n) => format!("{ok}/{n} platforms"),
        None => format!("{ok} platforms"),
    };
    if dead > 0 {
        s.push_str(&format!(", {dead} dead-lettered"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_by_display_width() {
        assert_eq!(trunc("abc", 5), "abc");
        assert_eq!(trunc("abcdef", 5), "abcd…");
        // Each Han character is two columns wide.
        let t = trunc("年产5万立方米竹木复合板材", 10);
        assert!(t.width() <= 10, "{t}");
        assert!(t.ends_with('…'));
    }

    #[test]
    fn shanghai_time() {
        let ts = Timestamp {
            seconds: 0,
            nanos: 0,
        };
        assert_eq!(local(Some(&ts)), "1970-01-01 08:00");
    }
}
