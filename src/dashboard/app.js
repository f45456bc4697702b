// calltone dashboard: follows /api/events (Server-Sent Events) and draws active calls and
// the alert feed. Read-only. Every piece of call text is put in the page with textContent,
// never parsed as markup.
'use strict';

(function () {
  var SVG = 'http://www.w3.org/2000/svg';
  var HISTORY_S = 180;      // sparkline window, seconds of call time
  var MAX_ALERTS = 50;
  var ENDED_KEEP_MS = 30000; // an ended call stays (dimmed) this long

  var levels = { amber: 0.5, red: 0.7 };
  var calls = new Map();   // call_id -> call
  var alerts = [];         // newest first
  var seen = new Set();    // alert event_ids

  var $ = function (id) { return document.getElementById(id); };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function clock(t) {
    var s = Math.max(0, Math.round(t || 0));
    var h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, r = s % 60;
    var mm = h ? String(m).padStart(2, '0') : String(m);
    return (h ? h + ':' : '') + mm + ':' + String(r).padStart(2, '0');
  }

  function level(v) {
    if (v === null || v === undefined) return 'none';
    return v >= levels.red ? 'high' : v >= levels.amber ? 'raised' : 'calm';
  }

  function label(kind) { return String(kind || '').replace(/_/g, ' '); }

  // Mirrors report::evidence_text: numbers to two decimals, lists joined, word lists as phrases.
  function evidenceValue(v) {
    if (v === null || v === undefined) return '–';
    if (typeof v === 'number') return String(Math.round(v * 100) / 100);
    if (Array.isArray(v)) {
      if (v.length && v.every(Array.isArray)) {
        return v.map(function (w) { return w.map(evidenceValue).join(' '); }).join('; ');
      }
      return v.map(evidenceValue).join(', ');
    }
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }

  function evidenceText(ev) {
    if (ev === null || ev === undefined) return '';
    if (typeof ev !== 'object' || Array.isArray(ev)) return evidenceValue(ev);
    return Object.keys(ev).map(function (k) {
      return k.replace(/_/g, ' ') + ': ' + evidenceValue(ev[k]);
    }).join(' · ');
  }

  function wallTime(ts) {
    var d = new Date(ts);
    return isNaN(d) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  // ---- model -------------------------------------------------------------------------

  function newCall(id) {
    return { id: id, source: '', speakers: [], t: 0, tAt: Date.now(), state: null,
             history: {}, utterance: null, lastAlert: null, ended: false, endedAt: 0, node: null };
  }

  function getCall(id) {
    var c = calls.get(id);
    if (!c) { c = newCall(id); calls.set(id, c); }
    return c;
  }

  function setTime(c, t) {
    if (t >= c.t) { c.t = t; c.tAt = Date.now(); }
  }

  function pushHistory(c, t, state) {
    if (!state || !state.speakers) return;
    Object.keys(state.speakers).forEach(function (sp) {
      var s = state.speakers[sp].stress;
      if (s === null || s === undefined) return;
      var h = c.history[sp] || (c.history[sp] = []);
      if (h.length && h[h.length - 1][0] >= t) return; // replayed by a snapshot overlap
      h.push([t, s]);
      while (h.length && h[0][0] < t - HISTORY_S) h.shift();
    });
  }

  function addAlert(a, fresh) {
    var key = a.event_id || a.alert_id;
    if (seen.has(key)) return false;
    seen.add(key);
    a.fresh = !!fresh;
    alerts.unshift(a);
    alerts.sort(function (x, y) { return (y.ts || '').localeCompare(x.ts || ''); });
    while (alerts.length > MAX_ALERTS) seen.delete(alerts.pop().event_id);
    return true;
  }

  function applySnapshot(s) {
    if (s.levels) levels = s.levels;
    var live = new Set();
    (s.calls || []).forEach(function (info) {
      live.add(info.call_id);
      var c = getCall(info.call_id);
      c.ended = false;
      c.source = info.source;
      c.speakers = info.speakers || [];
      setTime(c, info.t);
      c.state = info.state;
      c.history = {};
      Object.keys(info.history || {}).forEach(function (sp) { c.history[sp] = info.history[sp].slice(); });
      if (info.last_utterance) c.utterance = { text: info.last_utterance };
      if (info.last_alert) c.lastAlert = info.last_alert;
    });
    // Calls the server no longer has ended while we were away.
    calls.forEach(function (c, id) { if (!live.has(id)) removeCall(id); });
    alerts = []; seen.clear();
    (s.alerts || []).slice().reverse().forEach(function (a) { addAlert(a, false); });
    renderAll();
  }

  function applyEvent(e) {
    var c;
    switch (e.type) {
      case 'call_started':
        c = getCall(e.call_id);
        c.ended = false; c.source = e.source; c.speakers = e.speakers || [];
        setTime(c, e.t);
        break;
      case 'state':
        c = getCall(e.call_id);
        setTime(c, e.t);
        c.state = { speakers: e.speakers };
        pushHistory(c, e.t, c.state);
        break;
      case 'utterance':
        c = getCall(e.call_id);
        setTime(c, e.t);
        if (e.text) c.utterance = { speaker: e.speaker, text: e.text };
        break;
      case 'alert':
        c = getCall(e.call_id);
        setTime(c, e.t);
        c.lastAlert = e;
        if (addAlert(e, true)) renderAlerts();
        break;
      case 'empathy':
        // One entry per opportunity; its second report (recovery known) replaces the first.
        c = getCall(e.call_id);
        setTime(c, e.t);
        c.empathy = c.empathy || {};
        c.empathy[e.opportunity.kind + '@' + e.opportunity.start] = e.outcome;
        break;
      case 'call_ended':
        c = calls.get(e.call_id);
        if (!c) return;
        setTime(c, e.duration || e.t);
        c.ended = true; c.endedAt = Date.now();
        setTimeout(function () {
          var x = calls.get(e.call_id);
          if (x && x.ended && Date.now() - x.endedAt >= ENDED_KEEP_MS - 50) { removeCall(e.call_id); renderCounts(); }
        }, ENDED_KEEP_MS);
        break;
      default:
        return;
    }
    if (c) renderCall(c);
    renderCounts();
  }

  function removeCall(id) {
    var c = calls.get(id);
    if (c && c.node) c.node.remove();
    calls.delete(id);
  }

  // ---- rendering ---------------------------------------------------------------------

  function sparkline(points, now, colourVar) {
    var w = 160, h = 26;
    var svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', 'spark');
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
    svg.setAttribute('preserveAspectRatio', 'none');
    var y = function (v) { return (h - 2) - Math.max(0, Math.min(1, v)) * (h - 4); };
    var line = document.createElementNS(SVG, 'line');
    line.setAttribute('x1', 0); line.setAttribute('x2', w);
    line.setAttribute('y1', y(levels.red)); line.setAttribute('y2', y(levels.red));
    line.setAttribute('stroke', 'rgba(248,81,73,.6)'); line.setAttribute('stroke-dasharray', '3 3');
    line.setAttribute('vector-effect', 'non-scaling-stroke');
    svg.appendChild(line);
    if (points && points.length) {
      // The last HISTORY_S seconds; a young call fills the width from its start.
      var t0 = Math.max(0, now - HISTORY_S);
      var span = Math.max(now - t0, 20);
      var d = points.filter(function (p) { return p[0] >= t0; }).map(function (p, i) {
        return (i ? 'L' : 'M') + ((p[0] - t0) / span * w).toFixed(1) + ',' + y(p[1]).toFixed(1);
      }).join(' ');
      var path = document.createElementNS(SVG, 'path');
      path.setAttribute('d', d);
      path.setAttribute('fill', 'none');
      path.setAttribute('stroke', 'var(' + colourVar + ')');
      path.setAttribute('stroke-width', '2');
      path.setAttribute('vector-effect', 'non-scaling-stroke');
      svg.appendChild(path);
    }
    return svg;
  }

  function speakerRow(c, sp) {
    var st = (c.state && c.state.speakers && c.state.speakers[sp]) || {};
    var stress = st.stress === undefined ? null : st.stress;
    var lv = level(stress);
    var row = el('div', 'speaker ' + sp);
    row.appendChild(el('span', 'who ' + sp, sp));
    if (stress === null) {
      // No stress inference for this speaker (agents by default): behaviour only.
      var rate = st.speaking_rate_wps;
      row.appendChild(el('div', 'behaviour',
        (rate ? rate.toFixed(1) + ' words/s' : 'no speech yet') + (sp === 'agent' ? ' · no emotion inference' : '')));
      row.appendChild(el('span', 'value none', ''));
      return row;
    }
    var gauge = el('div', 'gauge');
    gauge.setAttribute('role', 'meter');
    gauge.setAttribute('aria-label', sp + ' stress');
    gauge.setAttribute('aria-valuemin', '0');
    gauge.setAttribute('aria-valuemax', '1');
    gauge.setAttribute('aria-valuenow', stress.toFixed(2));
    var fill = el('div', 'fill ' + lv);
    fill.style.width = Math.max(2, Math.min(100, stress * 100)) + '%';
    gauge.appendChild(fill);
    [levels.amber, levels.red].forEach(function (v) {
      var tick = el('div', 'tick'); tick.style.left = (v * 100) + '%'; gauge.appendChild(tick);
    });
    row.appendChild(gauge);
    row.appendChild(el('span', 'value ' + lv, Math.round(stress * 100)));
    var meta = el('div', 'meta');
    meta.appendChild(el('span', 'emotion', st.emotion || '–'));
    meta.appendChild(sparkline(c.history[sp], c.t, sp === 'agent' ? '--agent' : '--customer'));
    row.appendChild(meta);
    return row;
  }

  function worstLevel(c) {
    var worst = 'calm';
    var sp = (c.state && c.state.speakers) || {};
    Object.keys(sp).forEach(function (k) {
      var l = level(sp[k].stress);
      if (l === 'high' || (l === 'raised' && worst !== 'high')) worst = l;
    });
    // A warning or critical alert in the last minute of the call keeps the card marked.
    var a = c.lastAlert;
    if (a && a.severity !== 'info' && c.t - (a.end || 0) < 60) worst = a.severity === 'critical' ? 'high' : (worst === 'high' ? 'high' : 'raised');
    return worst;
  }

  function renderCall(c) {
    var card = el('article', 'card lvl-' + worstLevel(c) + (c.ended ? ' ended' : ''));
    card.dataset.callId = c.id;
    var head = el('div', 'card-head');
    var id = el('span', 'call-id', c.id); id.title = c.id;
    head.appendChild(id);
    if (c.source) head.appendChild(el('span', 'source', c.source));
    if (c.ended) head.appendChild(el('span', 'badge ended', 'ended'));
    var dur = el('span', 'duration', clock(c.t));
    dur.dataset.role = 'duration';
    head.appendChild(dur);
    card.appendChild(head);

    var speakers = c.speakers.length ? c.speakers : Object.keys((c.state && c.state.speakers) || {});
    speakers.forEach(function (sp) { card.appendChild(speakerRow(c, sp)); });

    var sps = (c.state && c.state.speakers) || {};
    if (Object.keys(sps).length) {
      var talk = el('div', 'talk');
      talk.appendChild(el('span', null, 'talk'));
      var bar = el('div', 'talkbar');
      var parts = [];
      Object.keys(sps).forEach(function (sp) {
        var r = sps[sp].talk_ratio || 0;
        var seg = el('div', sp); seg.style.width = (r * 100) + '%';
        bar.appendChild(seg);
        parts.push(sp + ' ' + Math.round(r * 100) + '%');
      });
      talk.appendChild(bar);
      talk.appendChild(el('span', null, parts.join(' · ')));
      card.appendChild(talk);
    }
    var journey = sps.customer && sps.customer.journey;
    var outcomes = c.empathy ? Object.keys(c.empathy).map(function (k) { return c.empathy[k]; }) : [];
    if (journey || outcomes.length) {
      var em = el('div', 'empathy');
      em.dataset.role = 'empathy';
      var arrows = { improving: '↗ improving', steady: '→ steady', worsening: '↘ worsening' };
      if (journey) em.appendChild(el('span', 'journey ' + journey, 'journey ' + (arrows[journey] || journey)));
      if (outcomes.length) {
        var met = outcomes.filter(function (o) { return o === 'met'; }).length;
        var bad = outcomes.length - met;
        em.appendChild(el('span', 'opps' + (bad ? ' missed' : ''),
          'empathy met ' + met + '/' + outcomes.length + (bad ? ' · missed/harmed ' + bad : '')));
      }
      card.appendChild(em);
    }
    if (c.utterance) {
      var u = el('div', 'utt');
      if (c.utterance.speaker) {
        u.appendChild(el('span', 'who ' + c.utterance.speaker, c.utterance.speaker));
      }
      u.appendChild(document.createTextNode(c.utterance.text));
      card.appendChild(u);
    }
    if (c.lastAlert) {
      var la = el('div', 'last-alert');
      la.appendChild(el('span', 'sev ' + c.lastAlert.severity, c.lastAlert.severity));
      la.appendChild(el('span', null, c.lastAlert.message));
      card.appendChild(la);
    }
    if (c.node) c.node.replaceWith(card); else insertSorted(card);
    c.node = card;
  }

  function insertSorted(card) {
    var list = $('calls');
    var after = Array.prototype.find.call(list.children, function (n) { return n.dataset.callId > card.dataset.callId; });
    list.insertBefore(card, after || null);
  }

  function renderAlerts() {
    var ol = $('alerts');
    var items = alerts.map(function (a) {
      var li = el('li', 'alert sev-' + a.severity + (a.fresh ? ' fresh' : ''));
      a.fresh = false;
      li.dataset.eventId = a.event_id || '';
      var head = el('div', 'alert-head');
      head.appendChild(el('span', 'sev ' + a.severity, a.severity));
      head.appendChild(el('span', 'kind', label(a.kind)));
      head.appendChild(el('span', 'call', a.call_id));
      head.appendChild(el('span', null, 'at ' + clock(a.end !== undefined ? a.end : a.t)));
      head.appendChild(el('span', 'when', wallTime(a.ts)));
      li.appendChild(head);
      li.appendChild(el('div', 'msg', a.message));
      var ev = evidenceText(a.evidence);
      if (ev) li.appendChild(el('div', 'evidence', ev));
      return li;
    });
    ol.replaceChildren.apply(ol, items);
    $('no-alerts').classList.toggle('hidden', alerts.length > 0);
    renderCounts();
  }

  function renderCounts() {
    var n = 0;
    calls.forEach(function (c) { if (!c.ended) n++; });
    setStat('n-calls', n, n === 1 ? 'call' : 'calls');
    setStat('n-alerts', alerts.length, alerts.length === 1 ? 'alert' : 'alerts');
    $('no-calls').classList.toggle('hidden', calls.size > 0);
  }

  function setStat(id, n, word) {
    var s = $(id);
    s.replaceChildren(el('b', null, n), document.createTextNode(' ' + word));
  }

  function renderAll() {
    $('calls').replaceChildren();
    calls.forEach(function (c) { c.node = null; renderCall(c); });
    renderAlerts();
  }

  // Durations run between state ticks (capped: a stalled call must not look alive).
  setInterval(function () {
    calls.forEach(function (c) {
      if (c.ended || !c.node) return;
      var extra = Math.min(3, (Date.now() - c.tAt) / 1000);
      var d = c.node.querySelector('[data-role=duration]');
      if (d) d.textContent = clock(c.t + extra);
    });
  }, 1000);

  // ---- connection --------------------------------------------------------------------

  function setConn(ok) {
    var c = $('conn');
    c.className = 'conn ' + (ok ? 'live' : 'connecting');
    c.textContent = ok ? 'live' : 'reconnecting…';
  }

  var source = null;
  function connect() {
    source = new EventSource('api/events');
    source.addEventListener('open', function () { setConn(true); });
    // Every (re)connect starts with a snapshot, so nothing missed while away stays missing.
    source.addEventListener('snapshot', function (m) {
      try { applySnapshot(JSON.parse(m.data)); } catch (err) { console.error(err); }
      setConn(true);
    });
    source.addEventListener('message', function (m) {
      try { applyEvent(JSON.parse(m.data)); } catch (err) { console.error(err); }
    });
    source.addEventListener('error', function () {
      setConn(false);
      // The browser retries by itself unless the server answered with an error; then we do.
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(connect, 3000);
      }
    });
  }

  renderCounts();
  try {
    var initial = JSON.parse($('snapshot').textContent);
    if (initial) applySnapshot(initial);
  } catch (err) { console.error('no initial snapshot', err); }
  connect();
})();
