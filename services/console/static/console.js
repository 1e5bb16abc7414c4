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
      types.forEach(function (t) {
        es.addEventListener(t, function (e) {
          var data;
          try { data = JSON.parse(e.data); } catch (_) { data = e.data; }
          onEvent(t, data, e);
        });
      });
      return es;
    },

    // onReady runs fn once the document is parsed.
    onReady: function (fn) {
      if (document.readyState !== "loading") fn();
      else document.addEventListener("DOMContentLoaded", fn);
    }
  };

  window.slipway = slipway;

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
      [row.time ? row.time.replace("T", " ").replace(/\.\d+/, "").replace(/\+00:00$/, "Z") : "", row.environment, row.type, row.summary]
        .forEach(function (text) {
          var td = document.createElement("td");
          td.textContent = text || "";
          tr.appendChild(td);
        });
      body.insertBefore(tr, body.firstChild);
      while (body.rows.length > 500) body.deleteRow(body.rows.length - 1);
    });
  });
})();
