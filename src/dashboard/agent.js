// calltone agent page: follows /api/agent/events (Server-Sent Events) for one call (or the
// agent's current call) and shows the active nudges. Text goes in with textContent only.
'use strict';

(function () {
  var $ = function (id) { return document.getElementById(id); };
  var params = new URLSearchParams(location.search);
  var parts = location.pathname.split('/').filter(Boolean);
  var callId = parts.length > 1 ? decodeURIComponent(parts[1]) : null;
  var agent = params.get('agent');
  var nudges = new Map(); // assist_id -> {kind, message, t}
  var call = null;        // {call_id, started_ms, t}

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function clock(t) {
    var s = Math.max(0, Math.round(t || 0));
    return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
  }

  function render() {
    $('call').textContent = call ? 'call ' + call.call_id : (agent ? 'agent ' + agent + ': waiting for a call…' : 'waiting for the call…');
    var list = $('nudges');
    while (list.firstChild) list.removeChild(list.firstChild);
    var items = Array.from(nudges.entries()).sort(function (a, b) { return b[1].t - a[1].t; });
    items.forEach(function (e) {
      var li = el('li', 'nudge kind-' + e[1].kind, e[1].message);
      li.dataset.assistId = e[0];
      li.dataset.kind = e[1].kind;
      li.appendChild(el('span', 'since', 'at ' + clock(e[1].t)));
      list.appendChild(li);
    });
    $('all-clear').classList.toggle('hidden', items.length > 0 || !call);
  }

  function applySnapshot(s) {
    nudges.clear();
    call = s.call ? { call_id: s.call.call_id, t: s.call.t } : null;
    (s.nudges || []).forEach(function (n) {
      nudges.set(n.assist_id, { kind: n.kind, message: n.message, t: n.t });
    });
    render();
  }

  function apply(ev) {
    if (ev.type === 'call_started') {
      call = { call_id: ev.call_id, t: 0 };
      nudges.clear();
    } else if (ev.type === 'call_ended') {
      if (call && call.call_id === ev.call_id) { call = null; nudges.clear(); }
    } else if (ev.type === 'assist') {
      if (!call) call = { call_id: ev.call_id, t: ev.t };
      if (ev.active) nudges.set(ev.assist_id, { kind: ev.kind, message: ev.message, t: ev.t });
      else nudges.delete(ev.assist_id);
    } else if (call && ev.call_id === call.call_id) {
      call.t = ev.t;
      $('clock').textContent = clock(ev.t);
      return;
    }
    render();
  }

  try { applySnapshot(JSON.parse($('snapshot').textContent)); } catch (e) { render(); }

  var q = callId ? 'call_id=' + encodeURIComponent(callId) : (agent ? 'agent=' + encodeURIComponent(agent) : '');
  var src = new EventSource('/api/agent/events?' + q);
  src.addEventListener('open', function () {
    $('conn').className = 'conn live'; $('conn').textContent = 'live';
  });
  src.addEventListener('error', function () {
    $('conn').className = 'conn connecting'; $('conn').textContent = 'reconnecting…';
  });
  src.addEventListener('snapshot', function (m) { applySnapshot(JSON.parse(m.data)); });
  src.onmessage = function (m) { apply(JSON.parse(m.data)); };
})();
