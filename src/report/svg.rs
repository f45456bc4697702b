//! The call timeline as inline SVG: stress (solid) and arousal (dashed) per speaker over call
//! time, on bands coloured by the stress levels, with utterance spans in one lane per speaker
//! and a marker per alert. A pure function of the report; the markup carries classes
//! (`stress-curve`, `arousal-curve`, `utterance`, `alert-marker`) so tests and CSS can find
//! the parts.

use std::fmt::Write;

use super::{clock, escape_html, kind_label, CallReport, StressLevels};
use crate::audio::Speaker;
use crate::events::Severity;

const WIDTH: f64 = 960.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 16.0;
/// Room above the plot for alert flags.
const TOP: f64 = 30.0;
const PLOT_H: f64 = 200.0;
const LANE_H: f64 = 16.0;
const LANE_GAP: f64 = 6.0;
/// A gap between readings longer than this breaks the curve (no data, not a straight line).
const MAX_GAP_S: f64 = 3.0;

/// The colour of a speaker's curves and utterance spans.
pub fn speaker_colour(sp: Speaker) -> &'static str {
    match sp {
        Speaker::Customer => "#7048e8",
        Speaker::Agent => "#0c8599",
    }
}

/// The colour of an alert severity (also used by the HTML pages).
pub fn severity_colour(s: Severity) -> &'static str {
    match s {
        Severity::Info => "#4c6ef5",
        Severity::Warning => "#f08c00",
        Severity::Critical => "#e03131",
    }
}

pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

struct Scale {
    duration: f64,
}

impl Scale {
    fn x(&self, t: f64) -> f64 {
        LEFT + (t.clamp(0.0, self.duration) / self.duration) * (WIDTH - LEFT - RIGHT)
    }
    fn y(&self, v: f32) -> f64 {
        TOP + (1.0 - v.clamp(0.0, 1.0) as f64) * PLOT_H
    }
}

/// Seconds between x-axis ticks: about 6–12 ticks over the call.
fn tick_step(duration: f64) -> f64 {
    const STEPS: [f64; 10] = [
        1.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| duration / s <= 12.0)
        .unwrap_or(3600.0)
}

/// SVG path data through `(t, v)` points; a gap longer than [`MAX_GAP_S`] or a missing value
/// starts a new subpath. Empty when there is no point.
fn path_data(scale: &Scale, points: impl Iterator<Item = (f64, Option<f32>)>) -> String {
    let mut d = String::new();
    let mut prev_t: Option<f64> = None;
    for (t, v) in points {
        let Some(v) = v else {
            prev_t = None;
            continue;
        };
        let cmd = match prev_t {
            Some(p) if t - p <= MAX_GAP_S => 'L',
            _ => 'M',
        };
        if !d.is_empty() {
            d.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = write!(d, "{cmd}{:.1},{:.1}", scale.x(t), scale.y(v));
        prev_t = Some(t);
    }
    d
}

/// The timeline of a call as an `<svg>` element (no XML prolog; meant to be inlined in HTML).
pub fn timeline(r: &CallReport, levels: StressLevels) -> String {
    let scale = Scale {
        duration: r.duration.max(1.0),
    };
    let lanes_top = TOP + PLOT_H + 14.0;
    let lanes_h = r.speakers.len() as f64 * (LANE_H + LANE_GAP);
    let axis_y = lanes_top + lanes_h + 4.0;
    let height = axis_y + 22.0;
    let right = WIDTH - RIGHT;
    let plot_w = right - LEFT;
    let mut s = String::new();
    // Writing to a String cannot fail; the results below are ignored for that reason.
    let _ = write!(
        s,
        r#"<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0}" width="100%" role="img" aria-label="Stress timeline of call {id}" font-family="system-ui, sans-serif" font-size="11">"#,
        id = escape_html(&r.call_id)
    );
    // Stress bands and their thresholds.
    let _ = write!(
        s,
        r##"<rect class="band-high" x="{LEFT}" y="{:.1}" width="{plot_w:.1}" height="{:.1}" fill="#e03131" fill-opacity="0.08"/><rect class="band-raised" x="{LEFT}" y="{:.1}" width="{plot_w:.1}" height="{:.1}" fill="#f08c00" fill-opacity="0.08"/>"##,
        scale.y(1.0),
        scale.y(levels.red) - scale.y(1.0),
        scale.y(levels.red),
        scale.y(levels.amber) - scale.y(levels.red),
    );
    for (v, label) in [(0.0, "0"), (0.5, "0.5"), (1.0, "1")] {
        let y = scale.y(v);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{right}" y1="{y:.1}" y2="{y:.1}" stroke="#adb5bd" stroke-width="0.5"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#495057">{label}</text>"##,
            LEFT - 6.0,
            y + 4.0
        );
    }
    for (v, colour, name) in [
        (levels.red, "#e03131", "alert level"),
        (levels.amber, "#f08c00", "release"),
    ] {
        let y = scale.y(v);
        let _ = write!(
            s,
            r#"<line class="level" x1="{LEFT}" x2="{right}" y1="{y:.1}" y2="{y:.1}" stroke="{colour}" stroke-dasharray="2 3" stroke-width="1"><title>{name} {v:.2}</title></line>"#
        );
    }
    let _ = write!(
        s,
        r##"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle" fill="#495057">stress / arousal</text>"##,
        TOP + PLOT_H / 2.0,
        TOP + PLOT_H / 2.0
    );
    // X axis ticks and grid.
    let step = tick_step(scale.duration);
    let mut t = 0.0;
    while t <= scale.duration + 1e-9 {
        let x = scale.x(t);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{axis_y:.1}" stroke="#dee2e6" stroke-width="0.5"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#495057">{}</text>"##,
            axis_y + 14.0,
            clock(t)
        );
        t += step;
    }
    // Curves: arousal first so stress draws on top.
    for sp in &r.speakers {
        let Some(readings) = r.readings.get(sp) else {
            continue;
        };
        let colour = speaker_colour(*sp);
        let arousal = path_data(&scale, readings.iter().map(|x| (x.t, x.state.arousal)));
        if !arousal.is_empty() {
            let _ = write!(
                s,
                r#"<path class="arousal-curve" data-speaker="{sp}" d="{arousal}" fill="none" stroke="{colour}" stroke-width="1.5" stroke-dasharray="5 3" stroke-opacity="0.6"><title>{sp} arousal</title></path>"#
            );
        }
        let stress = path_data(&scale, readings.iter().map(|x| (x.t, x.state.stress)));
        if !stress.is_empty() {
            let _ = write!(
                s,
                r#"<path class="stress-curve" data-speaker="{sp}" d="{stress}" fill="none" stroke="{colour}" stroke-width="2.5" stroke-linejoin="round"><title>{sp} stress</title></path>"#
            );
        }
    }
    // Utterance lanes.
    for (i, sp) in r.speakers.iter().enumerate() {
        let y = lanes_top + i as f64 * (LANE_H + LANE_GAP);
        let colour = speaker_colour(*sp);
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="{colour}" font-weight="600">{sp}</text><rect x="{LEFT}" y="{y:.1}" width="{plot_w:.1}" height="{LANE_H}" fill="#f1f3f5"/>"##,
            LEFT - 6.0,
            y + LANE_H - 4.0
        );
        for u in r.utterances.iter().filter(|u| u.speaker == *sp) {
            let x0 = scale.x(u.start);
            let w = (scale.x(u.end) - x0).max(1.0);
            let _ = write!(
                s,
                r#"<rect class="utterance" data-speaker="{sp}" x="{x0:.1}" y="{y:.1}" width="{w:.1}" height="{LANE_H}" rx="3" fill="{colour}" fill-opacity="0.75"><title>{} {}–{}: {}</title></rect>"#,
                sp,
                clock(u.start),
                clock(u.end),
                escape_html(&u.text)
            );
        }
    }
    // Alert markers: the span that fired, a line at the moment it fired and a flag on top.
    for a in &r.alerts {
        let al = &a.alert;
        let colour = severity_colour(al.severity);
        let x0 = scale.x(al.start.min(al.end));
        let x1 = scale.x(al.end);
        let flag_y = TOP - 4.0;
        let _ = write!(
            s,
            r#"<g class="alert-marker" data-kind="{kind}" data-severity="{sev}"><title>{time} {sev} {label}: {msg}</title><rect x="{x0:.1}" y="{TOP}" width="{w:.1}" height="{PLOT_H}" fill="{colour}" fill-opacity="0.12"/><line x1="{x1:.1}" x2="{x1:.1}" y1="{TOP}" y2="{bottom:.1}" stroke="{colour}" stroke-width="1.5"/><path d="M{x1:.1},{flag_y:.1} l-6,-12 h12 z" fill="{colour}"/></g>"#,
            kind = al.kind.as_str(),
            sev = severity_name(al.severity),
            time = clock(al.end),
            label = kind_label(al.kind),
            msg = escape_html(&al.message),
            w = (x1 - x0).max(0.0),
            bottom = lanes_top + lanes_h - LANE_GAP,
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures;

    fn svg() -> String {
        timeline(
            &CallReport::from_events(&fixtures::call()),
            StressLevels::default(),
        )
    }

    #[test]
    fn draws_a_stress_curve_per_speaker_and_arousal_where_known() {
        let s = svg();
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert_eq!(s.matches(r#"class="stress-curve""#).count(), 2);
        // The agent has no arousal (no emotion inference for agents).
        assert_eq!(s.matches(r#"class="arousal-curve""#).count(), 1);
        let d = s
            .split(r#"class="stress-curve" data-speaker="customer" d=""#)
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap();
        // One continuous curve of 20 readings.
        assert_eq!(d.matches('M').count(), 1);
        assert_eq!(d.matches('L').count(), 19);
    }

    #[test]
    fn one_marker_per_alert_and_one_span_per_utterance() {
        let s = svg();
        assert_eq!(s.matches(r#"class="alert-marker""#).count(), 2);
        assert!(s.contains(r#"data-kind="escalation_phrase" data-severity="critical""#));
        assert_eq!(s.matches(r#"class="utterance""#).count(), 2);
    }

    #[test]
    fn transcript_text_is_escaped() {
        let s = svg();
        assert!(!s.contains("<script>"), "{s}");
        assert!(s.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; cancel"));
    }

    #[test]
    fn gaps_and_missing_values_break_the_curve() {
        let scale = Scale { duration: 10.0 };
        let d = path_data(
            &scale,
            [
                (0.0, Some(0.1)),
                (1.0, Some(0.2)),
                (2.0, None),
                (3.0, Some(0.3)),
                (9.0, Some(0.4)),
            ]
            .into_iter(),
        );
        assert_eq!(d.matches('M').count(), 3, "{d}");
        assert_eq!(d.matches('L').count(), 1, "{d}");
        assert!(path_data(&scale, std::iter::empty()).is_empty());
    }

    #[test]
    fn ticks_stay_readable() {
        assert_eq!(tick_step(20.0), 5.0);
        assert_eq!(tick_step(58.0), 5.0);
        assert_eq!(tick_step(300.0), 30.0);
        assert_eq!(tick_step(3600.0), 300.0);
    }
}
