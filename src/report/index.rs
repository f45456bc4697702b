//! `DIR/index.html` of a replay run: one row per call (duration, peak customer stress, alerts,
//! scorecard score, empathy met/opportunities, journey, alerts by kind) linking to its report. Sortable by clicking a column head (a few lines of inline
//! script; numbers sort by their `data-v` value, not their text).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::html::CSS;
use super::{clock, escape_html, kind_label, CallReport, StressLevels};
use crate::audio::Speaker;
use crate::events::AlertKind;

/// One call of the index.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRow {
    pub call_id: String,
    /// The report file, relative to the index (`NAME.report.html`).
    pub report: String,
    pub duration: f64,
    pub peak_stress: Option<f32>,
    pub mean_stress: Option<f32>,
    pub alerts: BTreeMap<AlertKind, u32>,
    /// QA scorecard score (0–100), when the call has one with at least one applicable
    /// criterion.
    pub score: Option<f64>,
    /// Empathy opportunities (met, total), when per-agent scoring is on.
    pub empathy: Option<(u32, u32)>,
    pub journey: Option<crate::events::JourneyLabel>,
    /// Harmed opportunities (answered with dismissive words).
    pub harmed: u32,
    /// The agent id from `call_started`, when the ingest named one.
    pub agent: Option<String>,
}

impl IndexRow {
    pub fn new(r: &CallReport, report: impl Into<String>) -> Self {
        let summary = r.ended.as_ref().map(|e| &e.summary);
        Self {
            call_id: r.call_id.clone(),
            report: report.into(),
            duration: r.duration,
            peak_stress: r.peak_stress(Speaker::Customer),
            mean_stress: r.mean_stress(Speaker::Customer),
            alerts: r.alerts_by_kind(),
            // A scorecard with no applicable criterion (a dead line, a customer-only
            // recording) reads 100 by convention; it is no score of the agent, and would be
            // free points in the agent's mean.
            score: summary
                .and_then(|s| s.scorecard.as_ref())
                .filter(|c| c.criteria.iter().any(|k| k.applicable))
                .map(|c| c.score),
            empathy: summary
                .and_then(|s| s.empathy.as_ref())
                .map(|e| (e.met, e.opportunities)),
            journey: summary
                .and_then(|s| s.journey.as_ref())
                .and_then(|j| j.label),
            harmed: summary
                .and_then(|s| s.empathy.as_ref())
                .map_or(0, |e| e.harmed),
            agent: r.agent.clone(),
        }
    }
}

const SORT_JS: &str = r#"
document.querySelectorAll('th[data-col]').forEach(function (th) {
  th.addEventListener('click', function () {
    var tbody = document.querySelector('#calls tbody');
    var col = +th.dataset.col, asc = th.dataset.dir !== 'asc';
    document.querySelectorAll('th[data-col]').forEach(function (h) { delete h.dataset.dir; });
    th.dataset.dir = asc ? 'asc' : 'desc';
    var rows = Array.prototype.slice.call(tbody.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      var c = (x !== undefined && y !== undefined) ? (+x - +y) : a.cells[col].textContent.localeCompare(b.cells[col].textContent);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { tbody.appendChild(r); });
  });
});
"#;

/// The index page of several calls, in the order given.
pub fn index_page(rows: &[IndexRow], levels: StressLevels) -> String {
    index_page_with(rows, &[], levels)
}

/// [`index_page`], listing above the calls the inputs of the run that were not analysed
/// (`(input, reason)`), so that a QA lead who reads only the index sees them.
pub fn index_page_with(
    rows: &[IndexRow],
    refused: &[(String, String)],
    levels: StressLevels,
) -> String {
    let refused_html = if refused.is_empty() {
        String::new()
    } else {
        let mut h = format!(
            r#"<h2>Not analysed ({})</h2><ul id="refused">"#,
            refused.len()
        );
        for (input, reason) in refused {
            let _ = write!(
                h,
                "<li><b>{}</b>: {}</li>",
                escape_html(input),
                escape_html(reason)
            );
        }
        h.push_str("</ul>\n");
        h
    };
    let kinds: BTreeSet<AlertKind> = rows.iter().flat_map(|r| r.alerts.keys().copied()).collect();
    let mut s = String::with_capacity(8 * 1024);
    // Writing to a String cannot fail; results are ignored for that reason.
    let _ = write!(
        s,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>calltone QA: {n} calls</title><style>{CSS}
th[data-col] {{ cursor: pointer; user-select: none; }}
th[data-dir=asc]::after {{ content: " ▲"; }} th[data-dir=desc]::after {{ content: " ▼"; }}
</style></head>
<body><main>
<h1>QA replay: {n} calls</h1>
<p class="sub">Click a column to sort. Stress is the customer's, relative to their own baseline (0–1): the peak may be a moment, the mean is the whole call.</p>
{refused_html}{agents}<div class="scroll"><table id="calls"><thead><tr>"#,
        n = rows.len(),
        agents = agent_table(rows),
    );
    let with_agent = rows.iter().any(|r| r.agent.is_some());
    let mut heads: Vec<(&str, String)> = vec![("", "call".into())];
    if with_agent {
        heads.push(("", "agent".into()));
    }
    for h in [
        "duration",
        "peak stress",
        "mean stress",
        "alerts",
        "score",
        "empathy met",
    ] {
        heads.push(("num", h.into()));
    }
    heads.push(("", "journey".into()));
    for k in &kinds {
        heads.push(("num", kind_label(*k).to_string()));
    }
    for (i, (class, label)) in heads.iter().enumerate() {
        let class = if class.is_empty() {
            String::new()
        } else {
            format!(r#" class="{class}""#)
        };
        let _ = write!(s, r#"<th{class} data-col="{i}">{label}</th>"#);
    }
    s.push_str("</tr></thead><tbody>\n");
    for r in rows {
        let total: u32 = r.alerts.values().sum();
        let _ = write!(
            s,
            r#"<tr class="call"><td><a href="{href}">{id}</a></td>"#,
            href = escape_html(&r.report),
            id = escape_html(&r.call_id),
        );
        if with_agent {
            let agent = escape_html(r.agent.as_deref().unwrap_or("–"));
            let _ = write!(s, "<td>{agent}</td>");
        }
        let _ = write!(
            s,
            r#"<td class="num" data-v="{dur:.1}">{clock}</td>"#,
            dur = r.duration,
            clock = clock(r.duration),
        );
        for v in [r.peak_stress, r.mean_stress] {
            match v {
                Some(p) => {
                    let _ = write!(
                        s,
                        r#"<td class="num {}" data-v="{p:.3}">{p:.2}</td>"#,
                        levels.class(p)
                    );
                }
                None => s.push_str(r#"<td class="num" data-v="-1">–</td>"#),
            }
        }
        let _ = write!(
            s,
            r#"<td class="num {}" data-v="{total}">{total}</td>"#,
            if total > 0 { "high" } else { "calm" }
        );
        match r.score {
            Some(x) => {
                let _ = write!(s, r#"<td class="num" data-v="{x:.1}">{x:.0}</td>"#);
            }
            None => s.push_str(r#"<td class="num" data-v="-1">–</td>"#),
        }
        match r.empathy {
            Some((met, n)) if n > 0 => {
                let _ = write!(
                    s,
                    r#"<td class="num {}" data-v="{:.3}">{met}/{n}</td>"#,
                    if met < n { "high" } else { "calm" },
                    f64::from(met) / f64::from(n)
                );
            }
            _ => s.push_str(r#"<td class="num" data-v="-1">–</td>"#),
        }
        let _ = write!(s, "<td>{}</td>", r.journey.map_or("–", |j| j.as_str()));
        for k in &kinds {
            let n = r.alerts.get(k).copied().unwrap_or(0);
            let _ = write!(s, r#"<td class="num" data-v="{n}">{n}</td>"#);
        }
        s.push_str("</tr>\n");
    }
    let _ = write!(
        s,
        "</tbody></table></div>\n<script>{SORT_JS}</script>\n</main></body></html>\n"
    );
    s
}

/// One agent's calls in the index.
#[derive(Debug, Default)]
struct AgentRow {
    calls: u32,
    score_sum: f64,
    scored: u32,
    met: u32,
    opportunities: u32,
    harmed: u32,
    journeys: [u32; 3],
    alerts: u32,
}

/// `DIR/index.csv`: the index's rows for a spreadsheet, one line per call, the same figures as
/// the HTML (empty cells where the page shows "–"), an alert column per kind seen in the run.
pub fn index_csv(rows: &[IndexRow]) -> String {
    let kinds: BTreeSet<AlertKind> = rows.iter().flat_map(|r| r.alerts.keys().copied()).collect();
    let mut s = String::from(
        "call_id,agent,duration_s,peak_stress,mean_stress,score,empathy_met,empathy_opportunities,harmed,journey,alerts",
    );
    for k in &kinds {
        s.push(',');
        s.push_str(k.as_str());
    }
    s.push('\n');
    let opt = |x: Option<String>| x.unwrap_or_default();
    for r in rows {
        let total: u32 = r.alerts.values().sum();
        let _ = write!(
            s,
            "{},{},{:.2},{},{},{},{},{},{},{},{total}",
            csv_text(&r.call_id),
            csv_text(r.agent.as_deref().unwrap_or("")),
            r.duration,
            opt(r.peak_stress.map(|x| format!("{x:.2}"))),
            opt(r.mean_stress.map(|x| format!("{x:.2}"))),
            opt(r.score.map(|x| format!("{x:.1}"))),
            opt(r.empathy.map(|(met, _)| met.to_string())),
            opt(r.empathy.map(|(_, n)| n.to_string())),
            r.harmed,
            r.journey.map_or("", |j| j.as_str()),
        );
        for k in &kinds {
            let _ = write!(s, ",{}", r.alerts.get(k).copied().unwrap_or(0));
        }
        s.push('\n');
    }
    s
}

/// A CSV cell for text that comes from outside (file names, agent ids): quoted when it holds
/// a comma, quote or line break (RFC 4180), and never read as a formula by a spreadsheet
/// (a leading `=`, `+`, `-`, `@` gets a `'`, as OWASP advises against CSV injection).
fn csv_text(x: &str) -> String {
    let x = if x.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{x}")
    } else {
        x.to_string()
    };
    if x.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", x.replace('"', "\"\""))
    } else {
        x
    }
}

/// The per-agent summary above the call table, when the calls have more than one agent.
fn agent_table(rows: &[IndexRow]) -> String {
    let mut agents: BTreeMap<&str, AgentRow> = BTreeMap::new();
    for r in rows {
        let Some(agent) = r.agent.as_deref() else {
            continue;
        };
        let a = agents.entry(agent).or_default();
        a.calls += 1;
        if let Some(x) = r.score {
            a.score_sum += x;
            a.scored += 1;
        }
        if let Some((met, n)) = r.empathy {
            a.met += met;
            a.opportunities += n;
        }
        a.harmed += r.harmed;
        if let Some(j) = r.journey {
            use crate::events::JourneyLabel as J;
            let i = match j {
                J::Improving => 0,
                J::Steady => 1,
                J::Worsening => 2,
            };
            a.journeys[i] += 1;
        }
        a.alerts += r.alerts.values().sum::<u32>();
    }
    if agents.len() < 2 {
        return String::new();
    }
    let mut s = String::from(
        r#"<h2>Agents</h2>
<p class="sub">Per agent over the calls below. Score: the mean QA scorecard score over the calls that gave the agent something to be scored on ("–" in the call table for the others: a dead line, a customer-only recording). Empathy met: opportunities (customer distress) answered with an acknowledgement or apology in time, of all opportunities; harmed: answered with dismissive words. Journeys: the customer's opening vs closing.</p>
<div class="scroll"><table id="agents"><thead><tr><th>agent</th><th class="num">calls</th><th class="num">mean score</th><th class="num">empathy met</th><th class="num">harmed</th><th class="num">improving</th><th class="num">steady</th><th class="num">worsening</th><th class="num">alerts</th></tr></thead><tbody>
"#,
    );
    for (agent, a) in &agents {
        let score = if a.scored > 0 {
            format!("{:.0}", a.score_sum / f64::from(a.scored))
        } else {
            "–".into()
        };
        let met = if a.opportunities > 0 {
            let class = if a.met < a.opportunities {
                "high"
            } else {
                "calm"
            };
            format!(
                r#"<td class="num {class}">{}/{}</td>"#,
                a.met, a.opportunities
            )
        } else {
            r#"<td class="num">–</td>"#.into()
        };
        let harmed_class = if a.harmed > 0 { "high" } else { "calm" };
        let _ = writeln!(
            s,
            r#"<tr class="agent"><td>{}</td><td class="num">{}</td><td class="num">{score}</td>{met}<td class="num {harmed_class}">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            escape_html(agent),
            a.calls,
            a.harmed,
            a.journeys[0],
            a.journeys[1],
            a.journeys[2],
            a.alerts,
        );
    }
    s.push_str("</tbody></table></div>\n<h2>Calls</h2>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures;

    #[test]
    fn one_row_per_call_with_kind_columns() {
        let r = CallReport::from_events(&fixtures::call());
        let mut quiet = IndexRow::new(&r, "quiet.report.html");
        quiet.call_id = "<quiet>".into();
        quiet.alerts.clear();
        quiet.peak_stress = None;
        quiet.mean_stress = None;
        let rows = [IndexRow::new(&r, "c1.report.html"), quiet];
        let p = index_page(&rows, StressLevels::default());
        assert_eq!(p.matches(r#"<tr class="call">"#).count(), 2);
        assert!(p.contains(r#"<a href="c1.report.html">c1</a>"#));
        assert!(p.contains("&lt;quiet&gt;") && !p.contains("<quiet>"));
        assert!(p.contains(">customer stress</th>") && p.contains(">escalation phrase</th>"));
        assert!(
            !p.contains(">overtalk</th>"),
            "kinds no call has are left out"
        );
        assert!(p.contains(r#"<td class="num high" data-v="0.900">0.90</td>"#));
        assert!(p.contains(r#"<td class="num calm" data-v="0.400">0.40</td>"#));
        assert!(p.contains(r#"<td class="num high" data-v="2">2</td>"#));
        assert!(p.contains("<script>"));
        // Score, empathy and journey columns; "–" for a call without them.
        assert!(p.contains(">score</th>") && p.contains(">empathy met</th>"));
        let mut scored = IndexRow::new(&r, "s.report.html");
        scored.score = Some(35.0);
        scored.empathy = Some((0, 1));
        scored.journey = Some(crate::events::JourneyLabel::Worsening);
        let p = index_page(&[scored], StressLevels::default());
        assert!(
            p.contains(r#"<td class="num" data-v="35.0">35</td>"#),
            "{p}"
        );
        assert!(p.contains(r#"<td class="num high" data-v="0.000">0/1</td>"#));
        assert!(p.contains("<td>worsening</td>"));
        assert!(!p.contains("<th>agent</th>") && !p.contains(">agent</th>"));
    }

    #[test]
    fn a_scorecard_with_nothing_applicable_is_no_score() {
        use crate::events::{Criterion, EventBody, Scorecard};
        let mut events = fixtures::call();
        let Some(EventBody::CallEnded(c)) = events.last_mut().map(|e| &mut e.body) else {
            panic!("the fixture ends with call_ended");
        };
        let criterion = |applicable: bool, points: f64| Criterion {
            name: "empathy_met".into(),
            weight: 40.0,
            points,
            max: 40.0,
            applicable,
            evidence: serde_json::Value::Null,
        };
        c.summary.scorecard = Some(Box::new(Scorecard {
            score: 100.0,
            criteria: vec![criterion(false, 0.0)],
        }));
        let idle = IndexRow::new(&CallReport::from_events(&events), "idle.report.html");
        assert_eq!(idle.score, None, "a dead line is not a perfect call");
        let Some(EventBody::CallEnded(c)) = events.last_mut().map(|e| &mut e.body) else {
            unreachable!()
        };
        c.summary.scorecard = Some(Box::new(Scorecard {
            score: 35.0,
            criteria: vec![criterion(true, 14.0), criterion(false, 0.0)],
        }));
        let scored = IndexRow::new(&CallReport::from_events(&events), "s.report.html");
        assert_eq!(scored.score, Some(35.0));
        // An agent's mean is over the calls that scored them: 35, not (35 + 100) / 2.
        let mut rows = [scored, idle.clone(), idle];
        rows[0].agent = Some("carol".into());
        rows[1].agent = Some("carol".into());
        rows[2].agent = Some("dan".into());
        let p = index_page(&rows, StressLevels::default());
        assert!(
            p.contains(
                r#"<tr class="agent"><td>carol</td><td class="num">2</td><td class="num">35</td>"#
            ),
            "{p}"
        );
    }

    #[test]
    fn inputs_that_were_not_analysed_are_listed_escaped() {
        let refused = [(
            "in/<b>x</b>.wav".to_string(),
            "not an audio file (looks like text)".to_string(),
        )];
        let p = index_page_with(&[], &refused, StressLevels::default());
        assert!(p.contains("QA replay: 0 calls"), "{p}");
        assert!(
            p.contains(
                "<li><b>in/&lt;b&gt;x&lt;/b&gt;.wav</b>: not an audio file (looks like text)</li>"
            ),
            "{p}"
        );
        assert!(!index_page(&[], StressLevels::default()).contains("Not analysed"));
    }

    #[test]
    fn the_csv_has_the_index_figures_and_no_formulas() {
        let r = CallReport::from_events(&fixtures::call());
        let mut a = IndexRow::new(&r, "a.report.html");
        a.call_id = "=HYPERLINK(\"http://x\",\"a, b\")".into();
        a.agent = Some("ann".into());
        a.score = Some(87.5);
        a.empathy = Some((1, 2));
        a.journey = Some(crate::events::JourneyLabel::Improving);
        let mut b = IndexRow::new(&r, "b.report.html");
        b.alerts.clear();
        b.peak_stress = None;
        let csv = index_csv(&[a, b]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3, "{csv}");
        assert_eq!(
            lines[0],
            "call_id,agent,duration_s,peak_stress,mean_stress,score,empathy_met,empathy_opportunities,harmed,journey,alerts,customer_stress,escalation_phrase"
        );
        assert_eq!(
            lines[1],
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"a, b\"\")\",ann,20.00,0.90,0.40,87.5,1,2,0,improving,2,1,1",
            "{csv}"
        );
        assert_eq!(lines[2], "c1,,20.00,,0.40,,,,0,,0,0,0", "{csv}");
    }

    #[test]
    fn calls_of_several_agents_get_a_per_agent_summary() {
        let r = CallReport::from_events(&fixtures::call());
        let row = |agent: Option<&str>, score: f64, empathy: (u32, u32), harmed: u32| {
            let mut x = IndexRow::new(&r, "c.report.html");
            x.agent = agent.map(str::to_string);
            x.score = Some(score);
            x.empathy = Some(empathy);
            x.harmed = harmed;
            x
        };
        let rows = [
            row(Some("ann"), 100.0, (2, 2), 0),
            row(Some("bob"), 40.0, (0, 1), 1),
            row(Some("ann"), 80.0, (1, 1), 0),
            row(None, 10.0, (0, 0), 0),
        ];
        let p = index_page(&rows, StressLevels::default());
        assert!(p.contains(r#"<table id="agents">"#));
        assert_eq!(p.matches(r#"<tr class="agent">"#).count(), 2);
        // ann: two calls, mean score 90, 3 of 3 met, nothing harmed.
        assert!(
            p.contains(r#"<tr class="agent"><td>ann</td><td class="num">2</td><td class="num">90</td><td class="num calm">3/3</td><td class="num calm">0</td>"#),
            "{p}"
        );
        assert!(p.contains(r#"<tr class="agent"><td>bob</td><td class="num">1</td><td class="num">40</td><td class="num high">0/1</td><td class="num high">1</td>"#));
        // The call table names each call's agent ("–" for none), in its own sortable column.
        assert!(p.contains(r#"<th data-col="1">agent</th>"#));
        assert_eq!(p.matches("<td>ann</td>").count(), 3);
        assert!(p.contains(r#"c1</a></td><td>–</td><td class="num" data-v="#));
        // One agent: no summary table (the call table says it all).
        let p = index_page(&rows[..1], StressLevels::default());
        assert!(!p.contains(r#"id="agents""#));
    }
}
