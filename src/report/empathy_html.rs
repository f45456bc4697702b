//! The report's empathy section: each opportunity as distress → response → recovery with the
//! words, the customer's journey, and the scorecard with its evidence.

use std::fmt::Write;

use super::{clock, escape_html, evidence_text, kind_label, CallReport};
use crate::audio::Speaker;
use crate::events::{AlertKind, Empathy, EmpathyOutcome};

fn outcome_colour(o: EmpathyOutcome) -> &'static str {
    match o {
        EmpathyOutcome::Met => "#2b8a3e",
        EmpathyOutcome::Missed => "#e67700",
        EmpathyOutcome::Harmed => "#c92a2a",
    }
}

/// The latest report of each opportunity (an opportunity is sent again once its recovery is
/// known), in call-time order.
pub fn opportunities(r: &CallReport) -> Vec<&Empathy> {
    let mut out: Vec<&Empathy> = Vec::new();
    for e in r.empathy.iter().map(|x| &x.empathy) {
        let same = |o: &&Empathy| {
            o.opportunity.start == e.opportunity.start && o.opportunity.kind == e.opportunity.kind
        };
        match out.iter().position(same) {
            Some(i) => out[i] = e,
            None => out.push(e),
        }
    }
    out.sort_by(|a, b| a.opportunity.start.total_cmp(&b.opportunity.start));
    out
}

/// `<h2>Agent assist</h2>`: each nudge the agent was shown, when, for how long and why;
/// empty when there was none.
pub fn assist_section(r: &CallReport) -> String {
    let raised: Vec<_> = r.assists.iter().filter(|a| a.assist.active).collect();
    if raised.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        r#"<h2>Agent assist</h2><div class="scroll"><table id="assist" class="stack"><thead><tr><th>shown</th><th>nudge</th><th>for</th><th>why</th></tr></thead><tbody>"#,
    );
    for a in raised {
        let gone = r
            .assists
            .iter()
            .find(|w| !w.assist.active && w.assist.assist_id == a.assist.assist_id);
        let lasted = gone.map_or("–".to_string(), |w| {
            format!(
                "{:.1} s ({})",
                w.t - a.t,
                escape_html(w.assist.evidence["reason"].as_str().unwrap_or(""))
            )
        });
        let _ = write!(
            s,
            "<tr><td>{}</td><td><b>{}</b> {}</td><td>{}</td><td>{}</td></tr>",
            clock(a.t),
            a.assist.kind.as_str(),
            escape_html(&a.assist.message),
            lasted,
            escape_html(&evidence_text(&a.assist.evidence)),
        );
    }
    s.push_str("</tbody></table></div>\n");
    s
}

/// `<h2>Empathy</h2>` and its tables; empty when the call carries no empathy analytics.
pub fn empathy_section(r: &CallReport) -> String {
    let summary = r.ended.as_ref().map(|e| &e.summary);
    let opps = opportunities(r);
    let journey = summary.and_then(|s| s.journey.as_deref());
    let card = summary.and_then(|s| s.scorecard.as_deref());
    if opps.is_empty() && journey.is_none() && card.is_none() {
        return String::new();
    }
    let mut s = String::new();
    // Writing to a String cannot fail; results are ignored for that reason.
    s.push_str(r#"<h2>Empathy</h2>"#);
    if opps.is_empty() {
        // Distress was alerted but nothing scored: say why, not "no distress" beside the
        // alerts table.
        let distress = r
            .alerts
            .iter()
            .filter(|a| {
                a.alert.speaker != Some(Speaker::Agent)
                    && matches!(
                        a.alert.kind,
                        AlertKind::CustomerStress
                            | AlertKind::NegativeSentiment
                            | AlertKind::EscalationPhrase
                    )
            })
            .count();
        let text = if distress == 0 {
            "No distress moment called for empathy.".to_string()
        } else if !r.speakers.contains(&Speaker::Agent) {
            format!("This recording has no agent track: its {distress} distress alert(s) are not scored for empathy.")
        } else {
            format!("{distress} distress alert(s), none scored for empathy: the agent's line had no audio yet, or the call ended before the agent's response window closed.")
        };
        let _ = write!(s, r#"<p class="empty" id="empathy-none">{text}</p>"#);
    } else {
        s.push_str(r#"<div class="scroll"><table id="empathy" class="stack"><thead><tr><th>distress</th><th>outcome</th><th>response</th><th>recovery</th></tr></thead><tbody>"#);
        for e in &opps {
            let o = &e.opportunity;
            let response = match &e.response {
                Some(r) => format!(
                    "{} {} “{}” (+{:.1} s)",
                    clock(r.start),
                    r.kind.as_str(),
                    escape_html(&r.words),
                    r.latency_s
                ),
                None => r#"<span class="empty">none in the window</span>"#.into(),
            };
            let recovery = match (e.recovered, e.recovery_s) {
                (Some(true), Some(x)) => format!("recovered after {x:.1} s"),
                (Some(true), None) => "recovered".into(),
                (Some(false), _) => "not recovered".into(),
                (None, _) => r#"<span class="empty">unknown</span>"#.into(),
            };
            let _ = write!(
                s,
                r#"<tr class="opportunity"><td class="wide">{}–{} {}: <code>{}</code></td><td><span class="sev" style="background:{}">{}</span></td><td class="wide">{}</td><td>{}</td></tr>"#,
                clock(o.start),
                clock(o.end),
                kind_label(o.kind),
                escape_html(&evidence_text(&o.evidence)),
                outcome_colour(e.outcome),
                e.outcome.as_str(),
                response,
                recovery,
            );
        }
        s.push_str("</tbody></table></div>\n");
    }
    if let Some(j) = journey {
        let arrow = match j.label.map(|l| l.as_str()) {
            Some("improving") => "↗ improving",
            Some("worsening") => "↘ worsening",
            Some(_) => "→ steady",
            None => "–",
        };
        let f = |v: Option<f32>| v.map_or("–".to_string(), |v| format!("{v:+.2}"));
        let _ = write!(
            s,
            r#"<p id="journey">Customer journey: <b>{arrow}</b> (sentiment {} → {}, stress {} → {}, trend {}, swings {})</p>"#,
            f(j.opening_sentiment),
            f(j.closing_sentiment),
            f(j.opening_stress),
            f(j.closing_stress),
            j.trend.map_or("–".into(), |t| format!("{t:+.0}")),
            j.swings,
        );
    }
    if let Some(c) = card {
        let _ = write!(
            s,
            r#"<p>Scorecard: <b id="score">{:.0}</b> / 100</p><div class="scroll"><table id="scorecard" class="stack"><thead><tr><th>criterion</th><th class="num">points</th><th class="num">max</th><th>evidence</th></tr></thead><tbody>"#,
            c.score
        );
        for k in &c.criteria {
            let pts = if k.applicable {
                format!("{:.0}", k.points)
            } else {
                "n/a".into()
            };
            let _ = write!(
                s,
                r#"<tr class="criterion"><td>{}</td><td class="num">{pts}</td><td class="num">{:.0}</td><td class="wide"><code>{}</code></td></tr>"#,
                escape_html(&k.name.replace('_', " ")),
                k.max,
                escape_html(&evidence_text(&k.evidence)),
            );
        }
        s.push_str("</tbody></table></div>\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{
        AlertKind, BehaviourKind, CallEnded, CallSummary, EmpathyResponse, Event, EventBody,
        EventStamper, Opportunity,
    };

    fn empathy(recovered: Option<bool>) -> EventBody {
        EventBody::Empathy(Empathy {
            opportunity: Opportunity {
                kind: AlertKind::EscalationPhrase,
                start: 21.2,
                end: 21.8,
                evidence: serde_json::json!({"text": "this is <b>ridiculous</b>"}),
            },
            outcome: EmpathyOutcome::Harmed,
            response: Some(EmpathyResponse {
                start: 32.3,
                kind: BehaviourKind::Dismiss,
                words: "nothing I can do".into(),
                latency_s: 10.5,
            }),
            recovered,
            recovery_s: None,
        })
    }

    #[test]
    fn one_row_per_opportunity_with_its_latest_recovery_escaped() {
        let mut st = EventStamper::new("c");
        let ev: Vec<Event> = vec![
            st.stamp(33.0, "ts".into(), empathy(None)),
            st.stamp(44.0, "ts".into(), empathy(Some(false))),
            st.stamp(
                45.0,
                "ts".into(),
                EventBody::CallEnded(CallEnded {
                    reason: "end_of_file".into(),
                    duration: 45.0,
                    summary: CallSummary::default(),
                }),
            ),
        ];
        let r = CallReport::from_events(&ev);
        let html = empathy_section(&r);
        assert_eq!(html.matches(r#"class="opportunity""#).count(), 1, "{html}");
        assert!(
            html.contains("not recovered") && html.contains("harmed"),
            "{html}"
        );
        assert!(html.contains("nothing I can do"));
        assert!(!html.contains("<b>ridiculous"), "evidence escaped: {html}");
    }

    #[test]
    fn distress_that_was_not_scored_says_why() {
        use crate::events::Scorecard;
        let mut r = CallReport::from_events(&crate::report::fixtures::call());
        r.empathy.clear();
        if let Some(end) = r.ended.as_mut() {
            end.summary.scorecard = Some(Box::new(Scorecard {
                score: 100.0,
                criteria: vec![],
            }));
        }
        assert_eq!(r.speakers, [Speaker::Customer, Speaker::Agent]);
        let html = empathy_section(&r);
        assert!(html.contains("2 distress alert(s), none scored"), "{html}");
        r.speakers.retain(|&s| s == Speaker::Customer);
        let html = empathy_section(&r);
        assert!(html.contains("no agent track"), "{html}");
        assert!(!html.contains("No distress moment"), "{html}");
        r.alerts.clear();
        assert!(empathy_section(&r).contains("No distress moment called for empathy."));
    }

    #[test]
    fn calls_without_empathy_analytics_have_no_section() {
        assert!(empathy_section(&CallReport::default()).is_empty());
        assert!(assist_section(&CallReport::default()).is_empty());
    }

    #[test]
    fn each_nudge_is_one_row_with_how_long_it_stayed_and_why() {
        use crate::events::{Assist, AssistKind};
        let nudge = |active: bool, evidence: serde_json::Value| {
            EventBody::Assist(Assist {
                assist_id: "c:assist:0".into(),
                kind: AssistKind::DeadAir,
                message: "Long silence: tell the customer <what> you are doing.".into(),
                active,
                evidence,
            })
        };
        let mut st = EventStamper::new("c");
        let ev = vec![
            st.stamp(
                19.4,
                "ts".into(),
                nudge(true, serde_json::json!({"silence_s": 8.0})),
            ),
            st.stamp(
                23.3,
                "ts".into(),
                nudge(false, serde_json::json!({"reason": "speech"})),
            ),
        ];
        let html = assist_section(&CallReport::from_events(&ev));
        assert_eq!(html.matches("<tr><td>").count(), 1, "{html}");
        assert!(
            html.contains("0:19") && html.contains("3.9 s (speech)"),
            "{html}"
        );
        assert!(
            html.contains("silence s: 8") && html.contains("&lt;what&gt;"),
            "{html}"
        );
    }
}
