// clerk-sync dashboard: pause/resume and trimming for the live feed. Everything else is plain
// HTML (and htmx attributes); the pages work without this file.
(function () {
  "use strict";
  var KEEP = 200;
  var paused = false;
  var missed = 0;

  function feed() { return document.getElementById("feed"); }
  function say(id, text) { var el = document.getElementById(id); if (el) { el.textContent = text; } }

  function trim() {
    var list = feed();
    if (!list) { return; }
    var seen = {};
    Array.prototype.slice.call(list.children).forEach(function (item) {
      if (item.id && seen[item.id]) { item.remove(); } else if (item.id) { seen[item.id] = true; }
    });
    while (list.children.length > KEEP) { list.lastElementChild.remove(); }
    var empty = document.getElementById("feed-empty");
    if (empty && list.children.length) { empty.hidden = true; }
  }

  function reload() {
    var list = feed();
    if (list && window.htmx) {
      htmx.ajax("GET", list.getAttribute("data-rows"), { target: "#feed", swap: "innerHTML" });
    }
  }

  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    if (paused && event.detail && event.detail.type === "delivery") {
      event.preventDefault();
      missed += 1;
      say("feed-state", "paused — " + missed + " update" + (missed === 1 ? "" : "s") + " waiting");
    }
  });
  document.addEventListener("htmx:sseMessage", function (event) {
    var type = event.detail && event.detail.type;
    if (type === "delivery") { trim(); }
    if (type === "reset" && !paused) { reload(); }
    if (type === "busy") { say("feed-note", "Busy: showing the newest deliveries of each moment."); }
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.target && event.target.id === "feed") { trim(); }
  });
  document.addEventListener("htmx:sseOpen", function () { if (!paused) { say("feed-state", "live"); } });
  document.addEventListener("htmx:sseError", function () { say("feed-state", "reconnecting…"); });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("#feed-toggle");
    if (!button) { return; }
    paused = !paused;
    button.textContent = paused ? "Resume" : "Pause";
    button.setAttribute("aria-pressed", paused ? "true" : "false");
    if (paused) {
      say("feed-state", "paused");
    } else {
      say("feed-state", "live");
      if (missed) { missed = 0; reload(); }
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("feed-toggle");
    if (button) { button.hidden = false; }
  });
})();
