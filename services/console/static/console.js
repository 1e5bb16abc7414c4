// Slipway console: the small script of our own. Every page works without
// it; it adds live updates (server-sent events) and sends the session's
// CSRF token with the requests it makes.
(function () {
  "use strict";

  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";

  // slipway is what page scripts build on.
  var slipway = {
    csrf: csrf,
    page: document.body ? document.body.getAttribute("data-page") : "",

    // post sends a form-encoded POST with the CSRF token and returns the
    // fetch promise.
    post: function (url, fields) {
      var body = new URLSearchParams(fields || {});
      return fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf, "Content-Type": "application/x-www-form-urlencoded" },
        body: body
      });
    },

    // live opens an EventSource on url and calls onEvent(type, data) for
    // each named event in types; it reconnects as EventSource does.
    live: function (url, types, onEvent) {
      if (!window.EventSource) return null;
      var es = new EventSource(url, { withCredentials: true });
      // A stream ends when the session does, and the browser's reconnect
      // then fails: EventSource does not say why, so ask, and go to the
      // login when the session is over.
      es.addEventListener("error", function () { slipway.checkSession(); });
      types.forEach(function (t) {
        es.addEventListener(t, function (e) {
          var data;
          try { data = JSON.parse(e.data); } catch (_) { data = e.data; }
          onEvent(t, data, e);
        });
      });
      return es;
    },

    // checkSession sends the page to the login when the session has
    // ended (401); other failures are left to EventSource's reconnects.
    checkSession: function () {
      fetch("/api/events?limit=1", { credentials: "same-origin", headers: { "X-Requested-With": "fetch", "Accept": "application/json" } })
        .then(function (r) {
          if (r.status === 401) {
            location.href = "/auth/login?next=" + encodeURIComponent(location.pathname + location.search);
          }
        })
        .catch(function () {});
    },

    // onReady runs fn once the document is parsed.
    onReady: function (fn) {
      if (document.readyState !== "loading") fn();
      else document.addEventListener("DOMContentLoaded", fn);
    }
  };

  window.slipway = slipway;

  // The pages' copy buttons and the like show only with the script.
  document.documentElement.classList.add("js");

  // ref builds what the pages' ref renders from a reference's parts
  // ({full, registry, repository, tag, digest}): for rows the script adds.
  slipway.ref = function (r, nameOnly) {
    var span = document.createElement("span");
    span.className = "ref";
    span.title = r.full || "";
    // A long reference may break after a slash, not inside a name.
    var part = function (cls, text) {
      var el = document.createElement("span");
      el.className = cls;
      text.split("/").forEach(function (seg, i) {
        if (i > 0) {
          el.appendChild(document.createTextNode("/"));
          el.appendChild(document.createElement("wbr"));
        }
        el.appendChild(document.createTextNode(seg));
      });
      span.appendChild(el);
    };
    if (r.registry) part("registry", r.registry + "/");
    part("repo", r.repository || "");
    if (r.tag) part("tag", ":" + r.tag);
    if (r.digest && !nameOnly) {
      var code = document.createElement("code");
      code.className = "digest";
      var hex = r.digest.split(":")[1] || r.digest;
      code.textContent = hex.length > 12 ? hex.slice(0, 12) : hex;
      span.appendChild(document.createTextNode(" "));
      if (/^sha256:[0-9a-f]{64}$/.test(r.digest)) {
        var a = document.createElement("a");
        a.href = "/images/" + r.digest;
        a.appendChild(code);
        span.appendChild(a);
      } else {
        span.appendChild(code);
      }
    }
    var b = document.createElement("button");
    b.type = "button";
    b.className = "copy";
    b.setAttribute("data-copy", r.full || "");
    b.setAttribute("aria-label", "copy the image reference");
    b.textContent = "copy";
    span.appendChild(b);
    return span;
  };

  // time builds what the pages' at renders: the time of day when it is
  // today, else the date and minute (UTC), the full time in the title.
  slipway.time = function (iso) {
    var el = document.createElement("time");
    var d = new Date(iso);
    if (!iso || isNaN(d)) return el;
    var full = d.toISOString().replace(/\.\d+Z$/, "Z");
    el.setAttribute("datetime", full);
    el.title = full.replace("T", " ").replace("Z", " UTC");
    var today = new Date().toISOString().slice(0, 10) === full.slice(0, 10);
    el.textContent = today ? full.slice(11, 19) : full.slice(0, 10) + " " + full.slice(11, 16);
    return el;
  };

  // Copy buttons copy the whole reference (their data-copy).
  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("button.copy[data-copy]");
    if (!b || !navigator.clipboard) return;
    e.preventDefault();
    navigator.clipboard.writeText(b.getAttribute("data-copy")).then(function () {
      b.classList.add("copied");
      b.textContent = "copied";
      setTimeout(function () { b.classList.remove("copied"); b.textContent = "copy"; }, 1500);
    }).catch(function () {});
  });

  // Filter forms submit on change (they work with their button without
  // the script).
  slipway.onReady(function () {
    document.querySelectorAll("form.filters select").forEach(function (el) {
      el.addEventListener("change", function () { el.form.submit(); });
    });
  });
})();

// Timeline: new events, as the page's filters select them, are prepended
// as they happen. The stream resumes after the newest row the server
// listed, and after each event it got (EventSource sends Last-Event-ID).
(function () {
  "use strict";
  var s = window.slipway;
  if (!s) return;
  s.onReady(function () {
    var table = document.getElementById("timeline");
    if (!table || !window.EventSource) return;
    var body = table.tBodies[0];
    var url = table.getAttribute("data-stream");
    var after = table.getAttribute("data-after");
    if (after) url += (url.indexOf("?") < 0 ? "?" : "&") + "after=" + encodeURIComponent(after);
    s.live(url, ["message"], function (_, row) {
      if (!row || !row.seq || document.getElementById("event-" + row.seq)) return;
      var empty = body.querySelector("tr.empty");
      if (empty) empty.remove();
      var tr = document.createElement("tr");
      tr.id = "event-" + row.seq;
      tr.setAttribute("data-seq", row.seq);
      tr.className = "new";
      var cell = function (cls) {
        var td = document.createElement("td");
        if (cls) td.className = cls;
        tr.appendChild(td);
        return td;
      };
      cell().appendChild(s.time(row.time));
      cell().textContent = row.environment || "";
      cell("type").textContent = row.type || "";
      var what = cell("what");
      (row.parts || [{ text: row.summary }]).forEach(function (p) {
        what.appendChild(p.ref ? s.ref(p.ref, p.nameOnly) : document.createTextNode(p.text || ""));
      });
      if (row.id) {
        var a = document.createElement("a");
        a.className = "event-id";
        a.href = "/timeline?id=" + encodeURIComponent(row.id);
        var id = document.createElement("span");
        id.className = "id";
        id.title = row.id;
        id.textContent = row.id.length > 8 ? row.id.slice(0, 8) + "\u2026" : row.id;
        a.appendChild(id);
        what.appendChild(document.createTextNode(" "));
        what.appendChild(a);
      }
      body.insertBefore(tr, body.firstChild);
      while (body.rows.length > 500) body.deleteRow(body.rows.length - 1);
    });
  });
})();

// Bulk forms: a "select all" checkbox in the header of each table marked
// data-select-all (the rows' own checkboxes work without the script).
(function () {
  "use strict";
  var s = window.slipway;
  if (!s) return;
  s.selectAll = function (table) {
    var th = table.tHead && table.tHead.rows[0] && table.tHead.rows[0].cells[0];
    if (!th || th.querySelector("input.select-all")) return;
    var all = document.createElement("input");
    all.type = "checkbox";
    all.className = "select-all";
    all.setAttribute("aria-label", "select all");
    var boxes = function () {
      return Array.prototype.slice.call(table.tBodies[0].querySelectorAll("input[type=checkbox]"));
    };
    all.addEventListener("change", function () {
      boxes().forEach(function (b) { b.checked = all.checked; });
    });
    table.addEventListener("change", function (e) {
      if (e.target === all) return;
      var bs = boxes();
      all.checked = bs.length > 0 && bs.every(function (b) { return b.checked; });
    });
    th.appendChild(all);
  };
  s.onReady(function () {
    document.querySelectorAll("table[data-select-all]").forEach(s.selectAll);
  });
})();

// Approvals: a decision or a new request made anywhere (another browser,
// the API, Slack) shows without a reload: on each approval event the
// queue is fetched again and replaced, keeping what the user has ticked
// and typed.
(function () {
  "use strict";
  var s = window.slipway;
  if (!s) return;
  s.onReady(function () {
    var box = document.getElementById("approvals-live");
    if (!box || !window.EventSource || !window.DOMParser) return;
    var timer = null;
    var replace = function (html) {
      var next = new DOMParser().parseFromString(html, "text/html").getElementById("approvals-live");
      if (!next) return;
      var ticked = {};
      box.querySelectorAll("tbody input[type=checkbox]:checked").forEach(function (b) { ticked[b.value] = true; });
      // The bulk reason and each row's, by the form they belong to.
      var formOf = function (i) { return i.getAttribute("form") || (i.form && i.form.id) || ""; };
      var typed = {};
      box.querySelectorAll("input[name=reason]").forEach(function (i) { if (i.value) typed[formOf(i)] = i.value; });
      box.replaceChildren.apply(box, Array.prototype.map.call(next.childNodes, function (n) { return document.importNode(n, true); }));
      box.querySelectorAll("tbody input[type=checkbox]").forEach(function (b) { b.checked = !!ticked[b.value]; });
      box.querySelectorAll("input[name=reason]").forEach(function (i) {
        if (typed[formOf(i)]) i.value = typed[formOf(i)];
      });
      box.querySelectorAll("table[data-select-all]").forEach(s.selectAll);
      box.setAttribute("data-refreshed", String(Date.now()));
    };
    var refresh = function () {
      if (timer) return;
      // Decisions often come in bursts (a bulk approval): one fetch for
      // the burst.
      timer = setTimeout(function () {
        timer = null;
        fetch(location.pathname + location.search, { credentials: "same-origin", headers: { "Accept": "text/html", "X-Requested-With": "fetch" } })
          .then(function (r) {
            if (r.status === 401) { s.checkSession(); return null; }
            return r.ok ? r.text() : null;
          })
          .then(function (html) { if (html) replace(html); })
          .catch(function () {});
      }, 200);
    };
    var es = s.live(box.getAttribute("data-stream"), ["message"], refresh);
    // After a reconnect the queue may have changed meanwhile.
    var opened = false;
    if (es) es.addEventListener("open", function () { if (opened) refresh(); opened = true; });
  });
})();
