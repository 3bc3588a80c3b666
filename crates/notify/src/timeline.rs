//! The order's timeline picture: this module owns drawing an order's milestones on a date axis, as SVG (for web
//! pages) and as PNG (attached to the weekly update and shown inline through a `cid:` link). The picture has the
//! order's title, an axis from the start (or the earliest milestone) to the promised date (or the last planned
//! milestone, or today when the order runs past both), one marker per milestone at its planned date (done:
//! filled green, with the actual date when it differs; open: outlined; open and past its date: red), today as a
//! dashed line, the promised date as a diamond, and the current phase's milestones on a highlighted band with
//! bold names. The PNG is rendered with resvg using the DejaVu Sans fonts vendored in `assets/` (so text renders
//! on a server without fonts); system fonts are loaded after them as a fallback for scripts DejaVu lacks, such
//! as Chinese. Labels are in English; titles and names come from the order as they are.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use chrono::{Datelike, Months, NaiveDate};
use resvg::{tiny_skia, usvg};
use serde::{Deserialize, Serialize};

/// Width of the picture in pixels.
pub const WIDTH: u32 = 800;
/// Height of the picture in pixels.
pub const HEIGHT: u32 = 220;

/// What the timeline shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    pub title: String,
    pub today: NaiveDate,
    /// Where the axis starts (the order date or contract signature).
    pub start: NaiveDate,
    /// The delivery date promised to the customer.
    pub promised: NaiveDate,
    /// The phase the order is in; its milestones are highlighted.
    pub current_phase: Option<String>,
    pub milestones: Vec<TimelineMilestone>,
}

/// One milestone on the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineMilestone {
    pub name: String,
    pub phase: Option<String>,
    pub planned_on: NaiveDate,
    pub completed_on: Option<NaiveDate>,
}

/// Why the PNG could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    #[error("the timeline SVG does not parse: {0}")]
    Svg(#[from] usvg::Error),
    #[error("cannot allocate a {width}x{height} canvas")]
    Canvas { width: u32, height: u32 },
    #[error("cannot encode the timeline PNG: {0}")]
    Png(String),
}

const FONT_REGULAR: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FONT_BOLD: &[u8] = include_bytes!("../assets/DejaVuSans-Bold.ttf");
const FONT_FAMILY: &str = "DejaVu Sans";

// Layout, in pixels.
const PLOT_LEFT: f64 = 50.0;
const PLOT_RIGHT: f64 = 750.0;
const MARGIN: f64 = 8.0;
const AXIS_Y: f64 = 124.0;
const BAND_TOP: f64 = 32.0;
const BAND_BOTTOM: f64 = 198.0;
const BOTTOM_LABEL_Y: f64 = 213.0;
const TITLE_Y: f64 = 22.0;
const LABEL_SIZE: f64 = 11.0;
const DATE_SIZE: f64 = 10.0;
const MAX_LABEL_WIDTH: f64 = 150.0;

const INK: &str = "#1f2933";
const MUTED: &str = "#6b7280";
const AXIS: &str = "#c5ccd6";
const PROGRESS: &str = "#1f4e79";
const DONE: &str = "#1e7b4f";
const OPEN: &str = "#1f4e79";
const LATE: &str = "#c62828";
const LATE_FILL: &str = "#fdecec";
const TODAY: &str = "#e8590c";
const BAND: &str = "#fff3c4";
const BAND_TEXT: &str = "#8a6d00";

/// Rows for milestone labels: (y of the name's baseline, y of the date's baseline), nearest the axis first,
/// alternating above and below.
const ROWS: [(f64, f64); 4] = [(96.0, 108.0), (146.0, 158.0), (66.0, 78.0), (176.0, 188.0)];

/// The timeline as a standalone SVG document of `WIDTH` x `HEIGHT` pixels.
pub fn timeline_svg(t: &Timeline) -> String {
    let mut milestones: Vec<&TimelineMilestone> = t.milestones.iter().collect();
    milestones.sort_by_key(|m| m.planned_on);

    let first_planned = milestones.first().map(|m| m.planned_on);
    let last_planned = milestones.last().map(|m| m.planned_on);
    let axis_start = first_planned.map_or(t.start, |d| d.min(t.start));
    let mut axis_end = last_planned.map_or(t.promised, |d| d.max(t.promised));
    if t.today > axis_end {
        axis_end = t.today;
    }
    let span_days = (axis_end - axis_start).num_days().max(1) as f64;
    let x_of = |d: NaiveDate| PLOT_LEFT + (d - axis_start).num_days() as f64 / span_days * (PLOT_RIGHT - PLOT_LEFT);
    let in_current_phase =
        |m: &TimelineMilestone| matches!((&m.phase, &t.current_phase), (Some(p), Some(current)) if p == current);

    let mut svg = String::with_capacity(8 * 1024);
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="{FONT_FAMILY}, Helvetica, Arial, sans-serif" role="img" aria-label="{}">"##,
        xml(&format!("Timeline: {}", t.title))
    );
    let _ = write!(svg, r##"<title>{}</title>"##, xml(&t.title));
    let _ = write!(
        svg,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##
    );

    // The current phase's band, behind everything else.
    let phase_xs: Vec<f64> = milestones
        .iter()
        .filter(|m| in_current_phase(m))
        .map(|m| x_of(m.planned_on))
        .collect();
    let band = match (&t.current_phase, phase_xs.first(), phase_xs.last()) {
        (Some(phase), Some(&from), Some(&to)) => {
            Some((phase, (from - 18.0).max(MARGIN), (to + 18.0).min(WIDTH as f64 - MARGIN)))
        }
        _ => None,
    };
    if let Some((phase, from, to)) = band {
        let _ = write!(
            svg,
            r##"<rect x="{from:.1}" y="{BAND_TOP}" width="{:.1}" height="{:.1}" rx="4" fill="{BAND}"/>"##,
            to - from,
            BAND_BOTTOM - BAND_TOP
        );
        // The phase's name at the top of the band, allowed to run past a narrow band but not off the picture.
        let label = fit(phase, 200.0, 10.0, true);
        let label_x = (from + 5.0).min(WIDTH as f64 - MARGIN - text_width(&label, 10.0, true));
        let _ = write!(
            svg,
            r##"<text x="{label_x:.1}" y="{:.1}" font-size="10" font-weight="bold" fill="{BAND_TEXT}">{}</text>"##,
            BAND_TOP + 13.0,
            xml(&label)
        );
    }

    // Title and legend.
    let title = fit(&t.title, 430.0, 15.0, true);
    let _ = write!(
        svg,
        r##"<text x="{MARGIN}" y="{TITLE_Y}" font-size="15" font-weight="bold" fill="{INK}">{}</text>"##,
        xml(&title)
    );
    legend(&mut svg, band.is_some());

    // Axis: month ticks, the whole span, and the part already behind us.
    let mut month = NaiveDate::from_ymd_opt(axis_start.year(), axis_start.month(), 1)
        .and_then(|d| d.checked_add_months(Months::new(1)));
    while let Some(m) = month.filter(|m| *m < axis_end) {
        let x = x_of(m);
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{AXIS}" stroke-width="1"/>"##,
            AXIS_Y - 5.0,
            AXIS_Y + 5.0
        );
        month = m.checked_add_months(Months::new(1));
    }
    let _ = write!(
        svg,
        r##"<line x1="{PLOT_LEFT}" y1="{AXIS_Y}" x2="{PLOT_RIGHT}" y2="{AXIS_Y}" stroke="{AXIS}" stroke-width="3" stroke-linecap="round"/>"##
    );
    let today_x = (t.today >= axis_start && t.today <= axis_end).then(|| x_of(t.today));
    if let Some(x) = today_x.filter(|x| *x > PLOT_LEFT) {
        let _ = write!(
            svg,
            r##"<line x1="{PLOT_LEFT}" y1="{AXIS_Y}" x2="{x:.1}" y2="{AXIS_Y}" stroke="{PROGRESS}" stroke-width="3" stroke-linecap="round"/>"##
        );
    }

    // Today's line.
    if let Some(x) = today_x {
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{BAND_TOP}" x2="{x:.1}" y2="{BAND_BOTTOM}" stroke="{TODAY}" stroke-width="1.5" stroke-dasharray="4 3"/>"##
        );
    }

    // The promised date: a thin solid line (visible even when a milestone's marker covers the diamond) and a
    // diamond on the axis.
    let promised_x = x_of(t.promised);
    let _ = write!(
        svg,
        r##"<line x1="{promised_x:.1}" y1="{:.1}" x2="{promised_x:.1}" y2="{BAND_BOTTOM}" stroke="{INK}" stroke-width="1.2"/>"##,
        BAND_TOP + 18.0
    );
    let _ = write!(
        svg,
        r##"<path d="M {px:.1} {top:.1} L {right:.1} {AXIS_Y} L {px:.1} {bottom:.1} L {left:.1} {AXIS_Y} Z" fill="{INK}"/>"##,
        px = promised_x,
        top = AXIS_Y - 8.0,
        bottom = AXIS_Y + 8.0,
        left = promised_x - 8.0,
        right = promised_x + 8.0
    );

    // Milestones: markers, then labels placed in the first row where they do not overlap the previous one.
    let mut row_ends = [f64::NEG_INFINITY; ROWS.len()];
    for m in &milestones {
        let x = x_of(m.planned_on);
        let late = m.completed_on.is_none() && m.planned_on < t.today;
        let bold = in_current_phase(m);
        let (fill, stroke, text_colour) = match (m.completed_on, late) {
            (Some(_), _) => (DONE, DONE, INK),
            (None, true) => (LATE_FILL, LATE, LATE),
            (None, false) => ("#ffffff", OPEN, INK),
        };
        let radius = if bold { 8.0 } else { 7.0 };
        let _ = write!(
            svg,
            r##"<circle cx="{x:.1}" cy="{AXIS_Y}" r="{radius}" fill="{fill}" stroke="{stroke}" stroke-width="2.5"/>"##
        );
        if m.completed_on.is_some() {
            let _ = write!(
                svg,
                r##"<path d="M {:.1} {:.1} L {:.1} {:.1} L {:.1} {:.1}" fill="none" stroke="#ffffff" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"/>"##,
                x - 3.5,
                AXIS_Y,
                x - 1.0,
                AXIS_Y + 2.5,
                x + 3.5,
                AXIS_Y - 2.5
            );
        }

        let name = fit(&m.name, MAX_LABEL_WIDTH, LABEL_SIZE, bold);
        let date = match m.completed_on {
            Some(done) if done != m.planned_on => format!("{} → done {}", short(m.planned_on), short(done)),
            Some(_) => format!("{} ✓", short(m.planned_on)),
            None if late => format!("{} · late", short(m.planned_on)),
            None => short(m.planned_on),
        };
        let width = text_width(&name, LABEL_SIZE, bold).max(text_width(&date, DATE_SIZE, false));
        let left = (x - width / 2.0).clamp(MARGIN, WIDTH as f64 - MARGIN - width);
        let row = (0..ROWS.len()).find(|&r| left >= row_ends[r] + 6.0).unwrap_or_else(|| {
            (0..ROWS.len())
                .min_by(|&a, &b| row_ends[a].total_cmp(&row_ends[b]))
                .unwrap_or(0)
        });
        row_ends[row] = left + width;
        let (name_y, date_y) = ROWS[row];
        let centre = left + width / 2.0;
        // A thin leader from the marker towards its label.
        let (from_y, to_y) = if name_y < AXIS_Y {
            (AXIS_Y - radius - 2.0, date_y + 4.0)
        } else {
            (AXIS_Y + radius + 2.0, name_y - LABEL_SIZE)
        };
        if (to_y - from_y).abs() > 4.0 {
            let _ = write!(
                svg,
                r##"<line x1="{x:.1}" y1="{from_y:.1}" x2="{x:.1}" y2="{to_y:.1}" stroke="{AXIS}" stroke-width="1"/>"##
            );
        }
        // A white card behind a label that the today or promised line would cut through.
        let crossed = [today_x, Some(promised_x)]
            .into_iter()
            .flatten()
            .any(|line| line >= left - 3.0 && line <= left + width + 3.0);
        if crossed {
            let _ = write!(
                svg,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="3" fill="#ffffff"/>"##,
                left - 3.0,
                name_y - LABEL_SIZE,
                width + 6.0,
                date_y - name_y + LABEL_SIZE + 4.0
            );
        }
        let weight = if bold { "bold" } else { "normal" };
        let _ = write!(
            svg,
            r##"<text x="{centre:.1}" y="{name_y}" font-size="{LABEL_SIZE}" font-weight="{weight}" text-anchor="middle" fill="{text_colour}">{}</text>"##,
            xml(&name)
        );
        let date_colour = if late { LATE } else { MUTED };
        let _ = write!(
            svg,
            r##"<text x="{centre:.1}" y="{date_y}" font-size="{DATE_SIZE}" text-anchor="middle" fill="{date_colour}">{}</text>"##,
            xml(&date)
        );
    }

    // The bottom row: today, the promised date, the axis's ends; a label that would overlap one placed before it
    // (in this order of importance) is left out.
    let mut bottom: Vec<(f64, f64, String, &str, bool)> = Vec::new();
    let mut place = |x: f64, text: String, colour: &'static str, bold: bool| {
        let width = text_width(&text, DATE_SIZE, bold);
        let left = (x - width / 2.0).clamp(MARGIN, WIDTH as f64 - MARGIN - width);
        let right = left + width;
        if bottom.iter().all(|(l, r, ..)| right + 8.0 <= *l || left >= *r + 8.0) {
            bottom.push((left, right, text, colour, bold));
        }
    };
    if let Some(x) = today_x {
        place(x, format!("Today {}", short(t.today)), TODAY, true);
    }
    place(
        promised_x,
        format!("Promised {}", t.promised.format("%Y-%m-%d")),
        INK,
        true,
    );
    place(PLOT_LEFT, axis_start.format("%Y-%m-%d").to_string(), MUTED, false);
    place(PLOT_RIGHT, axis_end.format("%Y-%m-%d").to_string(), MUTED, false);
    for (left, _, text, colour, bold) in &bottom {
        let weight = if *bold { "bold" } else { "normal" };
        let _ = write!(
            svg,
            r##"<text x="{left:.1}" y="{BOTTOM_LABEL_Y}" font-size="{DATE_SIZE}" font-weight="{weight}" fill="{colour}">{}</text>"##,
            xml(text)
        );
    }

    svg.push_str("</svg>\n");
    svg
}

/// The timeline as a PNG of `WIDTH` x `HEIGHT` pixels on a white background.
pub fn timeline_png(t: &Timeline) -> Result<Vec<u8>, TimelineError> {
    let svg = timeline_svg(t);
    let options = usvg::Options {
        font_family: FONT_FAMILY.to_string(),
        fontdb: fonts(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(&svg, &options)?;
    let mut pixmap = tiny_skia::Pixmap::new(WIDTH, HEIGHT).ok_or(TimelineError::Canvas {
        width: WIDTH,
        height: HEIGHT,
    })?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(&tree, tiny_skia::Transform::identity(), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|err| TimelineError::Png(err.to_string()))
}

/// The font database, built once: the vendored DejaVu Sans first (and as the `sans-serif` family), then the
/// system's fonts as a fallback for characters DejaVu does not have.
fn fonts() -> Arc<usvg::fontdb::Database> {
    static FONTS: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let mut db = usvg::fontdb::Database::new();
            db.load_font_data(FONT_REGULAR.to_vec());
            db.load_font_data(FONT_BOLD.to_vec());
            db.load_system_fonts();
            db.set_sans_serif_family(FONT_FAMILY);
            Arc::new(db)
        })
        .clone()
}

fn legend(svg: &mut String, with_band: bool) {
    let mut x = if with_band { 470.0 } else { 560.0 };
    let y = TITLE_Y - 4.0;
    let mut items = vec![
        (format!(r##"fill="{DONE}""##), "Done"),
        (format!(r##"fill="#ffffff" stroke="{OPEN}" stroke-width="2""##), "Open"),
        (
            format!(r##"fill="{LATE_FILL}" stroke="{LATE}" stroke-width="2""##),
            "Late",
        ),
    ];
    if with_band {
        items.push((String::new(), "Current phase"));
    }
    for (paint, label) in items {
        if paint.is_empty() {
            let _ = write!(
                svg,
                r##"<rect x="{:.1}" y="{:.1}" width="9" height="9" rx="2" fill="{BAND}" stroke="{BAND_TEXT}" stroke-width="0.5"/>"##,
                x - 4.5,
                y - 4.5
            );
        } else {
            let _ = write!(svg, r##"<circle cx="{x:.1}" cy="{y}" r="4" {paint}/>"##);
        }
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{TITLE_Y}" font-size="{DATE_SIZE}" fill="{MUTED}">{label}</text>"##,
            x + 9.0
        );
        x += 9.0 + text_width(label, DATE_SIZE, false) + 14.0;
    }
}

/// `03-07`: month and day, short enough for a label.
fn short(d: NaiveDate) -> String {
    d.format("%m-%d").to_string()
}

/// An estimate of the width of `text` in DejaVu Sans at `size` pixels (wide scripts count as a full em).
fn text_width(text: &str, size: f64, bold: bool) -> f64 {
    let ems: f64 = text
        .chars()
        .map(|c| match c {
            _ if is_wide(c) => 1.0,
            'i' | 'l' | 'j' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' | ' ' => 0.32,
            'm' | 'w' | 'M' | 'W' | '@' => 0.9,
            c if c.is_ascii_uppercase() || c.is_ascii_digit() => 0.66,
            _ => 0.58,
        })
        .sum();
    ems * size * if bold { 1.08 } else { 1.0 }
}

fn is_wide(c: char) -> bool {
    matches!(c as u32, 0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x20000..=0x3FFFD)
}

/// `text` cut (with an ellipsis) to fit in `max` pixels.
fn fit(text: &str, max: f64, size: f64, bold: bool) -> String {
    let text = text.trim();
    if text_width(text, size, bold) <= max {
        return text.to_string();
    }
    let budget = max - text_width("…", size, bold);
    let mut out = String::new();
    for c in text.chars() {
        let mut next = out.clone();
        next.push(c);
        if text_width(&next, size, bold) > budget {
            break;
        }
        out = next;
    }
    format!("{}…", out.trim_end())
}

/// `text` escaped for XML text and attribute values, without the control characters XML 1.0 forbids.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}
