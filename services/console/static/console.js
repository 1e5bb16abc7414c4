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
