//! The timeline picture: the SVG is well-formed and names every milestone (escaped), the PNG has the right size
//! and is really drawn (with text, from the vendored font), and odd inputs (no milestones, one day, dates
//! outside the axis, Chinese names) still make a picture.

use chrono::NaiveDate;
use ordertrail_notify::timeline::{HEIGHT, Timeline, TimelineMilestone, WIDTH, timeline_png, timeline_svg};
use resvg::{tiny_skia, usvg};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

fn milestone(name: &str, phase: &str, planned: &str, completed: Option<&str>) -> TimelineMilestone {
    TimelineMilestone {
        name: name.to_string(),
        phase: Some(phase.to_string()),
        planned_on: d(planned),
        completed_on: completed.map(d),
    }
}

fn costume_order() -> Timeline {
    Timeline {
        title: "ORD-20250106-007 · Cinderella ball gown & cape".to_string(),
        today: d("2025-02-12"),
        start: d("2025-01-06"),
        promised: d("2025-03-07"),
        current_phase: Some("Construction".to_string()),
        milestones: vec![
            milestone("Design approval", "Design", "2025-01-20", Some("2025-01-20")),
            milestone("Fabric approval", "Design", "2025-02-03", Some("2025-02-05")),
            milestone("Pattern <sign-off>", "Pattern", "2025-02-07", None),
            milestone("First fitting", "Construction", "2025-02-11", None),
            milestone("Embellishment", "Construction", "2025-02-14", None),
            milestone("Final fitting", "Fitting", "2025-03-03", None),
            milestone("Delivery", "Final", "2025-03-07", None),
        ],
    }
}

/// Parses with usvg's default options (no fonts needed): the SVG must be well-formed on its own.
fn parse(svg: &str) -> usvg::Tree {
    usvg::Tree::from_str(svg, &usvg::Options::default())
        .unwrap_or_else(|err| panic!("SVG does not parse: {err}\n{svg}"))
}

#[test]
fn the_svg_is_well_formed_and_names_every_milestone() {
    let t = costume_order();
    let svg = timeline_svg(&t);
    let tree = parse(&svg);
    assert_eq!(tree.size().width(), WIDTH as f32);
    assert_eq!(tree.size().height(), HEIGHT as f32);
    // The XML is also parsed strictly by roxmltree (what usvg uses) to catch escaping mistakes.
    let doc = usvg::roxmltree::Document::parse(&svg).expect("well-formed XML");
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(str::to_string))
        .collect();
    for m in &t.milestones {
        assert!(
            texts.iter().any(|s| s == &m.name),
            "{} is not on the timeline: {texts:?}",
            m.name
        );
    }
    assert!(svg.contains("Pattern &lt;sign-off&gt;"), "names are not XML-escaped");
    assert!(svg.contains("Cinderella ball gown &amp; cape"));
    assert!(texts.iter().any(|s| s.starts_with("Today")), "{texts:?}");
    assert!(texts.iter().any(|s| s == "Promised 2025-03-07"), "{texts:?}");
    assert!(
        texts.iter().any(|s| s == "Construction"),
        "the current phase is not labelled: {texts:?}"
    );
    // Done late shows the actual date; open and past its date is late (red).
    assert!(texts.iter().any(|s| s == "02-03 → done 02-05"), "{texts:?}");
    assert!(texts.iter().any(|s| s == "02-07 · late"), "{texts:?}");
    assert!(svg.contains("#c62828"), "no red for the late milestone");
    // The current phase's milestones are bold.
    let bold: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text") && n.attribute("font-weight") == Some("bold"))
        .filter_map(|n| n.text())
        .collect();
    assert!(
        bold.contains(&"First fitting") && bold.contains(&"Embellishment"),
        "{bold:?}"
    );
    assert!(!bold.contains(&"Final fitting"), "{bold:?}");
}

#[test]
fn odd_timelines_still_draw() {
    let mut empty = costume_order();
    empty.milestones.clear();
    empty.current_phase = None;
    parse(&timeline_svg(&empty));

    let mut one_day = costume_order();
    one_day.start = d("2025-03-07");
    one_day.today = d("2025-03-07");
    one_day.milestones = vec![milestone("Delivery", "Final", "2025-03-07", None)];
    parse(&timeline_svg(&one_day));

    // Today after everything, a milestone before the start, a long Chinese name and control characters.
    let mut odd = costume_order();
    odd.today = d("2025-04-20");
    odd.milestones.push(milestone(
        "合同签署与定金确认（客户需亲自到店签字）",
        "Design",
        "2024-12-20",
        Some("2024-12-21"),
    ));
    odd.title = "Title with \u{1} control\tcharacters \"quoted\" 'single'".to_string();
    let svg = timeline_svg(&odd);
    parse(&svg);
    assert!(svg.contains("…"), "a long name is not shortened");
    assert!(!svg.contains('\u{1}'));
    let png = timeline_png(&odd).expect("png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

fn ihdr_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&png[12..16], b"IHDR", "the first chunk is not IHDR");
    let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    let height = u32::from_be_bytes([png[20], png[21], png[22], png[23]]);
    (width, height)
}

#[test]
fn the_png_has_the_right_size_and_is_drawn() {
    let png = timeline_png(&costume_order()).expect("png");
    assert_eq!(ihdr_size(&png), (WIDTH, HEIGHT));

    let pixmap = tiny_skia::Pixmap::decode_png(&png).expect("decodes");
    assert_eq!((pixmap.width(), pixmap.height()), (WIDTH, HEIGHT));
    let pixels = pixmap.pixels();
    let first = pixels[0];
    assert!(pixels.iter().any(|p| *p != first), "the picture is blank");
    // Opaque on white: no transparent pixels (dark-mode mail clients would show black).
    assert!(pixels.iter().all(|p| p.alpha() == 255), "the background is not opaque");
    // Red for the late milestone, green for the done ones.
    let has = |r: u8, g: u8, b: u8| pixels.iter().any(|p| p.red() == r && p.green() == g && p.blue() == b);
    assert!(has(0xc6, 0x28, 0x28), "no red marker");
    assert!(has(0x1e, 0x7b, 0x4f), "no green marker");
}

#[test]
fn the_png_draws_text_with_the_vendored_font() {
    // The same timeline with and without its texts: if no font were found, text would draw nothing and the two
    // pictures would be identical.
    let t = costume_order();
    let with_text = tiny_skia::Pixmap::decode_png(&timeline_png(&t).expect("png")).expect("decodes");
    let mut blank_names = t.clone();
    blank_names.title = String::new();
    for m in &mut blank_names.milestones {
        m.name = String::new();
    }
    let without = tiny_skia::Pixmap::decode_png(&timeline_png(&blank_names).expect("png")).expect("decodes");
    let differing = with_text
        .pixels()
        .iter()
        .zip(without.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!(differing > 500, "the names did not render ({differing} pixels differ)");
}
