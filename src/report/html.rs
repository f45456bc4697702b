//! One call's QA report as a self-contained HTML page: headline numbers, the timeline SVG, the
//! alerts with their evidence, the transcript, the empathy section (opportunities, journey,
//! scorecard; `empathy_html`) and the call summary. Inline CSS only; no
//! script, no external resource, so the file opens offline and can be mailed as is.

use std::fmt::Write;

use super::svg::{severity_colour, severity_name, speaker_colour, timeline};
use super::{clock, escape_html, evidence_text, kind_label, CallReport, StressLevels};
use crate::audio::Speaker;

/// Styles shared by the report and the index page.
pub(crate) const CSS: &str = r#"
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #212529; background: #f8f9fa; }
main { max-width: 1000px; margin: 0 auto; padding: 16px; }
h1 { font-size: 1.5rem; margin: 8px 0 2px; word-break: break-all; }
h2 { font-size: 1.1rem; margin: 24px 0 8px; }
.sub { color: #495057; margin: 0 0 12px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; }
.card { background: #fff; border: 1px solid #dee2e6; border-radius: 8px; padding: 10px 12px; }
.card .k { color: #495057; font-size: .8rem; text-transform: uppercase; letter-spacing: .04em; }
.card .v { font-size: 1.6rem; font-weight: 700; }
.calm { color: #2b8a3e; } .raised { color: #e67700; } .high { color: #c92a2a; }
.panel { background: #fff; border: 1px solid #dee2e6; border-radius: 8px; padding: 8px; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; font-size: .85rem; color: #495057; margin: 4px 4px 0; }
.legend i { display: inline-block; width: 18px; height: 0; border-top: 3px solid; vertical-align: middle; margin-right: 4px; }
.legend i.dash { border-top-style: dashed; }
.legend b { display: inline-block; width: 12px; height: 12px; vertical-align: middle; margin-right: 4px; }
table { width: 100%; border-collapse: collapse; background: #fff; font-size: .9rem; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #e9ecef; vertical-align: top; }
th { background: #f1f3f5; font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.sev { display: inline-block; color: #fff; border-radius: 4px; padding: 1px 6px; font-size: .8rem; font-weight: 700; text-transform: uppercase; }
.spk { font-weight: 600; }
code { font-size: .8rem; overflow-wrap: anywhere; color: #495057; }
.empty { color: #868e96; font-style: italic; }
.scroll { overflow-x: auto; }
/* Phones: table rows become small blocks; short cells share a line, long ones get their own. */
@media (max-width: 600px) {
  table.stack thead { display: none; }
  table.stack tr { display: block; border-bottom: 1px solid #dee2e6; padding: 6px 0; }
  table.stack td { display: inline-block; border: 0; padding: 2px 8px; text-align: left; }
  table.stack td.wide { display: block; }
  table.stack td[data-label]::before { content: attr(data-label) " "; color: #868e96; font-size: .75rem; }
}
"#;

fn fmt_opt(v: Option<f32>, digits: usize) -> String {
    match v {
        Some(v) => format!("{v:.digits$}"),
        None => "–".into(),
    }
}

/// The report page of one call.
pub fn report_page(r: &CallReport, levels: StressLevels) -> String {
    let id = escape_html(&r.call_id);
    let mut s = String::with_capacity(64 * 1024);
    // Writing to a String cannot fail; results are ignored for that reason.
    let _ = write!(
        s,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>calltone report: {id}</title><style>{CSS}</style></head>
<body><main>
<h1>{id}</h1>
<p class="sub">source {source}{agent} · {speakers} · {dur} · {n_utt} utterances · {ended}</p>
"#,
        source = escape_html(&r.source),
        agent = r
            .agent
            .as_deref()
            .map(|a| format!(" · agent {}", escape_html(a)))
            .unwrap_or_default(),
        speakers = escape_html(
            &r.speakers
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        dur = clock(r.duration),
        n_utt = r.utterances.len(),
        ended = match &r.ended {
            Some(e) => format!("ended: {}", escape_html(&e.reason)),
            None => "no call_ended event".into(),
        },
    );

    // Headline numbers.
    s.push_str(r#"<section class="cards" id="headline">"#);
    let _ = write!(
        s,
        r#"<div class="card"><div class="k">duration</div><div class="v">{}</div></div>"#,
        clock(r.duration)
    );
    let peak = r.peak_stress(Speaker::Customer);
    let _ = write!(
        s,
        r#"<div class="card"><div class="k">peak customer stress</div><div class="v {}">{}</div></div>"#,
        peak.map_or("", |p| levels.class(p)),
        fmt_opt(peak, 2)
    );
    let alert_class = if r.alerts.is_empty() { "calm" } else { "high" };
    let _ = write!(
        s,
        r#"<div class="card"><div class="k">alerts</div><div class="v {alert_class}">{}</div></div>"#,
        r.alerts.len()
    );
    for sp in &r.speakers {
        let ratio = r
            .ended
            .as_ref()
            .and_then(|e| e.summary.speakers.get(sp))
            .map(|x| x.talk_ratio)
            .or_else(|| r.readings.get(sp)?.last().map(|x| x.state.talk_ratio));
        let _ = write!(
            s,
            r#"<div class="card"><div class="k">{sp} talk ratio</div><div class="v">{}</div></div>"#,
            ratio.map_or("–".into(), |v| format!("{:.0}%", v * 100.0))
        );
    }
    s.push_str("</section>\n");

    // Timeline.
    s.push_str(r#"<h2>Timeline</h2><div class="panel">"#);
    s.push_str(&timeline(r, levels));
    s.push_str(r#"<div class="legend">"#);
    for sp in &r.speakers {
        let c = speaker_colour(*sp);
        let readings = r.readings.get(sp).map(Vec::as_slice).unwrap_or_default();
        if readings.iter().any(|x| x.state.stress.is_some()) {
            let _ = write!(
                s,
                r#"<span><i style="border-color:{c}"></i>{sp} stress</span>"#
            );
        }
        if readings.iter().any(|x| x.state.arousal.is_some()) {
            let _ = write!(
                s,
                r#"<span><i class="dash" style="border-color:{c}"></i>{sp} arousal</span>"#
            );
        }
    }
    let _ = write!(
        s,
        r#"<span><b style="background:#f08c00;opacity:.35"></b>raised ≥ {:.2}</span><span><b style="background:#e03131;opacity:.35"></b>high ≥ {:.2}</span><span>bars: utterances · ▼ alerts</span></div></div>"#,
        levels.amber, levels.red
    );
    s.push('\n');

    // Alerts.
    s.push_str(r#"<h2>Alerts</h2>"#);
    if r.alerts.is_empty() {
        s.push_str(r#"<p class="empty">No alerts.</p>"#);
    } else {
        s.push_str(r#"<div class="scroll"><table id="alerts" class="stack"><thead><tr><th>time</th><th>severity</th><th>kind</th><th>speaker</th><th>message</th><th>evidence</th></tr></thead><tbody>"#);
        for a in &r.alerts {
            let al = &a.alert;
            let _ = write!(
                s,
                r#"<tr class="alert"><td class="num">{}–{}</td><td><span class="sev" style="background:{}">{}</span></td><td>{}</td><td data-label="speaker">{}</td><td class="wide">{}</td><td class="wide"><code>{}</code></td></tr>"#,
                clock(al.start),
                clock(al.end),
                severity_colour(al.severity),
                severity_name(al.severity),
                kind_label(al.kind),
                al.speaker.map_or("call", |s| s.as_str()),
                escape_html(&al.message),
                escape_html(&evidence_text(&al.evidence)),
            );
        }
        s.push_str("</tbody></table></div>\n");
    }

    // Transcript.
    s.push_str(r#"<h2>Transcript</h2>"#);
    if r.utterances.is_empty() {
        s.push_str(r#"<p class="empty">No utterances.</p>"#);
    } else {
        s.push_str(r#"<div class="scroll"><table id="transcript" class="stack"><thead><tr><th>speaker</th><th class="num">start</th><th class="num">end</th><th>text</th><th class="num">sentiment</th><th>emotion</th><th class="num">arousal</th></tr></thead><tbody>"#);
        for u in &r.utterances {
            let text = match (&u.not_transcribed, u.text.is_empty()) {
                (Some(why), _) => format!(
                    r#"<span class="empty">not transcribed ({})</span>"#,
                    escape_html(why)
                ),
                (None, true) => r#"<span class="empty">(no words)</span>"#.into(),
                (None, false) => escape_html(&u.text),
            };
            let _ = write!(
                s,
                r#"<tr class="utterance"><td class="spk" style="color:{}">{}</td><td class="num" data-label="from">{:.1}</td><td class="num" data-label="to">{:.1}</td><td class="wide">{}</td><td class="num" data-label="sentiment">{:+.2}</td><td data-label="emotion">{}</td><td class="num" data-label="arousal">{}</td></tr>"#,
                speaker_colour(u.speaker),
                u.speaker,
                u.start,
                u.end,
                text,
                u.sentiment,
                escape_html(u.emotion.as_deref().unwrap_or("–")),
                fmt_opt(u.arousal, 2),
            );
        }
        s.push_str("</tbody></table></div>\n");
    }

    s.push_str(&super::empathy_html::empathy_section(r));
    s.push_str(&super::empathy_html::assist_section(r));

    // Summary.
    s.push_str(r#"<h2>Call summary</h2>"#);
    match &r.ended {
        Some(e) if !e.summary.speakers.is_empty() => {
            s.push_str(r#"<div class="scroll"><table id="summary"><thead><tr><th>speaker</th><th class="num">mean stress</th><th class="num">max stress</th><th class="num">talk ratio</th><th class="num">talk s</th><th class="num">over-talk s</th><th class="num">silence s</th><th class="num">utterances</th></tr></thead><tbody>"#);
            for (sp, x) in &e.summary.speakers {
                let _ = write!(
                    s,
                    r#"<tr><td class="spk" style="color:{}">{sp}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{:.0}%</td><td class="num">{:.1}</td><td class="num">{:.1}</td><td class="num">{:.1}</td><td class="num">{}</td></tr>"#,
                    speaker_colour(*sp),
                    fmt_opt(x.mean_stress, 2),
                    fmt_opt(x.max_stress, 2),
                    x.talk_ratio * 100.0,
                    x.talk_s,
                    x.overtalk_s,
                    x.silence_s,
                    x.utterances,
                );
            }
            s.push_str("</tbody></table></div>");
        }
        _ => s.push_str(r#"<p class="empty">No summary (the call has no call_ended event).</p>"#),
    }
    let by_kind = r.alerts_by_kind();
    if !by_kind.is_empty() {
        s.push_str(r#"<p>Alerts by kind: "#);
        let parts: Vec<String> = by_kind
            .iter()
            .map(|(k, n)| format!("{} {n}", kind_label(*k)))
            .collect();
        s.push_str(&parts.join(" · "));
        s.push_str("</p>");
    }
    s.push_str("\n</main></body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures;

    fn page() -> String {
        report_page(
            &CallReport::from_events(&fixtures::call()),
            StressLevels::default(),
        )
    }

    #[test]
    fn page_has_every_part() {
        let p = page();
        assert!(p.starts_with("<!DOCTYPE html>"));
        assert!(p.contains("<svg class=\"timeline\""));
        assert_eq!(p.matches(r#"<tr class="alert">"#).count(), 2);
        assert_eq!(p.matches(r#"<tr class="utterance">"#).count(), 2);
        assert!(p.contains(r#"<table id="summary">"#));
        assert!(p.contains("customer stress 1 · escalation phrase 1"));
        // Peak 0.9 ≥ 0.7 is high.
        assert!(p.contains(r#"<div class="v high">0.90</div>"#));
    }

    #[test]
    fn transcripts_and_evidence_are_escaped() {
        let p = page();
        assert!(!p.contains("<script>"), "a transcript became markup");
        assert!(!p.contains("<b>cancel</b>"), "evidence became markup");
        assert!(p.contains("I want &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; cancel"));
    }

    #[test]
    fn self_contained() {
        let p = page();
        for external in ["http://", "https://", "src=", "<link", "@import"] {
            // The SVG namespace URI is an identifier, not a fetch.
            let n = p.matches(external).count()
                - p.matches("http://www.w3.org/2000/svg").count()
                    * usize::from(external == "http://");
            assert_eq!(n, 0, "{external} in a self-contained page");
        }
    }

    #[test]
    fn a_call_without_events_still_renders() {
        let p = report_page(&CallReport::default(), StressLevels::default());
        assert!(p.contains("No alerts.") && p.contains("No utterances."));
    }
}
