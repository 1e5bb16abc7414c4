// Slipway console: the release matrix and the image pages follow the event
// stream. The page says where its live part is (#live, data- attributes:
// the pages run no inline script): on an event that may change it, the
// script fetches that part again as the server renders it (same template,
// same permissions) and swaps it in. Without the script the page is the
// same, as of when it was loaded.
(function () {
  "use strict";

  var region = document.getElementById("live");
  var state = document.querySelector("[data-live-state]");
  if (!region || !window.EventSource || !window.fetch) return;

  var fragmentURL = region.getAttribute("data-fragment");
  var streamURL = region.getAttribute("data-stream");
  var types = (region.getAttribute("data-types") || "").split(/\s+/).filter(Boolean);
  var digest = region.getAttribute("data-digest") || "";

  // At most one fetch a second; an event during a fetch or the second
  // after it schedules one more, so that the last event of a burst is
  // always shown.
  var minInterval = 1000;
  // How long a changed cell stays highlighted (the stylesheet's animation).
  var highlightFor = 2500;
  // How long to wait before opening a stream the server closed for good
  // (EventSource reconnects by itself otherwise).
  var reopenAfter = 5000;

  // show says whether the stream is connected: "live", else "connecting"
  // (the first time) or "reconnecting".
  function show(connected) {
    if (!state) return;
    state.hidden = false;
    state.textContent = connected ? "live" : opened ? "reconnecting" : "connecting";
    state.className = "live-state " + (connected ? "on" : "off");
    state.title = connected ? "The page follows the event stream" : "Not connected to the event stream: the page may be behind";
  }

  // wanted: an event that may change the live part. A type ending in ".*"
  // is every type of that prefix. On an image page, also an event that
  // names the image or follows one already on its timeline.
  function wanted(row) {
    if (!row || typeof row !== "object") return false;
    var t = row.type || "";
    for (var i = 0; i < types.length; i++) {
      var want = types[i];
      if (want === t || (want.slice(-2) === ".*" && t.indexOf(want.slice(0, -1)) === 0)) return true;
    }
    if (digest && row.digests && row.digests.indexOf(digest) >= 0) return true;
    return !!(digest && row.causationId && document.getElementById("ev-" + row.causationId));
  }

  var last = 0, timer = null, busy = false, again = false, lastHTML = null, opened = false, leaving = false;
  document.addEventListener("submit", function (e) { if (!e.defaultPrevented) leaving = true; });

  function schedule() {
    if (busy) { again = true; return; }
    if (timer) return; // the fetch already scheduled will show this event too
    timer = setTimeout(refresh, Math.max(0, last + minInterval - Date.now()));
  }

  function refresh() {
    timer = null;
    busy = true;
    last = Date.now();
    fetch(fragmentURL, { credentials: "same-origin", headers: { "Accept": "text/html", "X-Requested-With": "slipway" } })
      .then(function (res) {
        if (res.status === 401) {
          // The session ended: a navigation takes the browser to the login
          // (unless it is already leaving, say by the logout form).
          if (!leaving) location.reload();
          return null;
        }
        if (!res.ok) throw new Error("fragment: " + res.status);
        return res.text();
      })
      .then(function (html) { if (html != null) swap(html); })
      .catch(function () {
        // The console did not answer: try again later, leaving the page as
        // it is (it still shows what it showed).
        lastHTML = null;
        setTimeout(schedule, reopenAfter);
      })
      .then(function () {
        busy = false;
        if (again) { again = false; schedule(); }
      });
  }

  // key names a part that can change: a matrix cell or a run
  // (data-cell="cluster app"), or a timeline entry (its id).
  function parts(root) {
    var out = {};
    root.querySelectorAll("[data-cell], li[id]").forEach(function (el) {
      out[el.getAttribute("data-cell") || el.id] = el;
    });
    return out;
  }

  function swap(html) {
    if (html === lastHTML) return; // nothing changed: leave selection and focus be
    lastHTML = html;
    var before = parts(region);
    var seen = {};
    Object.keys(before).forEach(function (k) { seen[k] = before[k].innerHTML; });

    // Keep where the user is: the window's scroll, each wide table's, and
    // the focused link.
    var x = window.scrollX, y = window.scrollY;
    var wraps = [].map.call(region.querySelectorAll(".table-wrap"), function (w) { return [w.scrollLeft, w.scrollTop]; });
    var focused = document.activeElement && region.contains(document.activeElement) ? document.activeElement.getAttribute("href") : null;

    // And the actions a user is about to take: an open menu of a cell and
    // the reasons typed into its forms.
    var openMenus = {}, typed = {};
    Object.keys(before).forEach(function (k) {
      var d = before[k].querySelector("details[open]");
      if (d) openMenus[k] = true;
      before[k].querySelectorAll("form.action input[name=reason]").forEach(function (i) {
        if (i.value) typed[k + " " + i.form.getAttribute("action")] = i.value;
      });
    });

    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    region.replaceChildren(tpl.content);

    var now = parts(region);
    Object.keys(now).forEach(function (k) {
      var d = now[k].querySelector("details");
      if (d && openMenus[k]) d.open = true;
      now[k].querySelectorAll("form.action input[name=reason]").forEach(function (i) {
        var v = typed[k + " " + i.form.getAttribute("action")];
        if (v) i.value = v;
      });
    });

    region.querySelectorAll(".table-wrap").forEach(function (w, i) {
      if (wraps[i]) { w.scrollLeft = wraps[i][0]; w.scrollTop = wraps[i][1]; }
    });
    window.scrollTo(x, y);
    if (focused) {
      var link = [].find.call(region.querySelectorAll("a[href]"), function (a) { return a.getAttribute("href") === focused; });
      if (link) link.focus({ preventScroll: true });
    }

    var after = parts(region);
    Object.keys(after).forEach(function (k) {
      if (seen[k] === after[k].innerHTML) return;
      var el = after[k];
      el.classList.add("changed");
      setTimeout(function () { el.classList.remove("changed"); }, highlightFor);
    });
  }

  function open() {
    var es = new EventSource(streamURL, { withCredentials: true });
    es.onopen = function () {
      show(true);
      // After a reconnection without an event id the stream cannot
      // replay what was missed: fetch the part once to catch up.
      if (opened) schedule();
      opened = true;
    };
    es.onmessage = function (e) {
      var row;
      try { row = JSON.parse(e.data); } catch (_) { return; }
      if (wanted(row)) schedule();
    };
    es.onerror = function () {
      show(false);
      if (es.readyState === EventSource.CLOSED) {
        // Refused (the session ended, the console is stopping): try again
        // later; the fetch sends an ended session to the login.
        es.close();
        setTimeout(function () { schedule(); open(); }, reopenAfter);
      }
    };
  }

  show(false);
  open();
})();
