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
    /// QA scorecard score (0–100), when the call has one.
    pub score: Option<f64>,
    /// Empathy opportunities (met, total), when per-agent scoring is on.
    pub empathy: Option<(u32, u32)>,
    pub journey: Option<crate::events::JourneyLabel>,
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
            score: summary.and_then(|s| s.scorecard.as_ref()).map(|c| c.score),
            empathy: summary
                .and_then(|s| s.empathy.as_ref())
                .map(|e| (e.met, e.opportunities)),
            journey: summary
                .and_then(|s| s.journey.as_ref())
                .and_then(|j| j.label),
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
<div class="scroll"><table id="calls"><thead><tr><th data-col="0">call</th><th class="num" data-col="1">duration</th><th class="num" data-col="2">peak stress</th><th class="num" data-col="3">mean stress</th><th class="num" data-col="4">alerts</th><th class="num" data-col="5">score</th><th class="num" data-col="6">empathy met</th><th data-col="7">journey</th>"#,
        n = rows.len()
    );
    for (i, k) in kinds.iter().enumerate() {
        let _ = write!(
            s,
            r#"<th class="num" data-col="{}">{}</th>"#,
            8 + i,
            kind_label(*k)
        );
    }
    s.push_str("</tr></thead><tbody>\n");
    for r in rows {
        let total: u32 = r.alerts.values().sum();
        let _ = write!(
            s,
            r#"<tr class="call"><td><a href="{href}">{id}</a></td><td class="num" data-v="{dur:.1}">{clock}</td>"#,
            href = escape_html(&r.report),
            id = escape_html(&r.call_id),
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
    }
}
