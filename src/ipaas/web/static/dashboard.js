// ipaas dashboard: what htmx does not do. Every page works without this file.
"use strict";

(function () {
  // Controls that only make sense with JavaScript are in the page, hidden, and shown here.
  function showScriptOnly(root) {
    root.querySelectorAll("[data-js-only]").forEach(function (el) { el.hidden = false; });
  }

  // Delete forms: the button stays disabled until the app's name is typed (the server checks
  // it again).
  function guardDeletes(root) {
    root.querySelectorAll("form[data-confirm-name]").forEach(function (form) {
      var input = form.querySelector("input[name=confirm]");
      var button = form.querySelector("button[type=submit]");
      var update = function () { button.disabled = input.value.trim() !== form.dataset.confirmName; };
      input.addEventListener("input", update);
      update();
    });
  }

  // The log viewer: follows the page's Server-Sent Events stream. Lines are queued as they
  // come and drawn once per animation frame (one DOM insertion per batch), each line a block
  // of its own (so a new line lays out alone), and only the newest MAX_LINES stay in the
  // page, so a fast app cannot freeze it nor fill memory.
  var MAX_LINES = 5000;

  function shortTime(iso) {
    // "2026-12-01T10:00:00.123456789Z" -> "10:00:00.123" (UTC, as the server renders it)
    var t = iso.indexOf("T");
    return t < 0 ? iso : iso.slice(t + 1, t + 13);
  }

  function lineNode(entry) {
    var span = document.createElement("span");
    span.className = "l l-" + entry.stream;
    var time = document.createElement("time");
    time.textContent = shortTime(entry.timestamp);
    span.appendChild(time);
    span.appendChild(document.createTextNode(" " + entry.line));
    return span;
  }

  function follow(pre) {
    var state = document.querySelector("[data-log-state]");
    var pauseButton = document.querySelector("[data-log-pause]");
    var queue = [];
    var dropped = 0;
    var paused = false;
    var scheduled = false;
    var url = new URL(pre.dataset.stream, window.location.href);
    if (pre.dataset.skip) {
      url.searchParams.set("from", "now");
    } else if (pre.dataset.cursor) {
      url.searchParams.set("cursor", pre.dataset.cursor);
    }
    var source = new EventSource(url.toString());

    function say(text) { if (state) { state.textContent = text; } }

    // Whether to keep the newest line in view, decided when the reader scrolls (reading the
    // layout in every frame would force it to be computed twice a frame).
    var stick = true;
    pre.addEventListener("scroll", function () {
      stick = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
    }, { passive: true });

    function draw() {
      scheduled = false;
      if (paused || queue.length === 0) { return; }
      var batch = queue;
      queue = [];
      var extra = pre.childNodes.length + batch.length - MAX_LINES;
      if (extra > 0) {  // the oldest lines go first, in one range: one removal per batch
        var last = Math.min(extra, pre.childNodes.length);
        var range = document.createRange();
        range.setStartBefore(pre.firstChild);
        range.setEndAfter(pre.childNodes[last - 1]);
        range.deleteContents();
        dropped += extra;
      }
      var fragment = document.createDocumentFragment();
      for (var i = 0; i < batch.length; i++) { fragment.appendChild(lineNode(batch[i])); }
      pre.appendChild(fragment);
      if (stick) { pre.scrollTop = pre.scrollHeight; }
      say("live" + (dropped ? " · older lines let go: " + dropped : ""));
    }

    function schedule() {
      if (!scheduled) { scheduled = true; window.requestAnimationFrame(draw); }
    }

    source.onopen = function () { say("live"); };
    source.onmessage = function (event) {
      queue.push(JSON.parse(event.data));
      if (queue.length > MAX_LINES) {
        dropped += queue.length - MAX_LINES;
        queue.splice(0, queue.length - MAX_LINES);
      }
      schedule();
    };
    source.onerror = function () {
      if (pre.dataset.ends) {  // a build's log ends with its build: no reconnecting
        source.close();
        say("build finished: reload for its result");
      } else {
        say("reconnecting…");
      }
    };
    if (pauseButton) {
      pauseButton.addEventListener("click", function () {
        paused = !paused;
        pauseButton.textContent = paused ? "Resume" : "Pause";
        say(paused ? "paused" : "live");
        if (!paused) { schedule(); }
      });
    }
    window.addEventListener("pagehide", function () { source.close(); });
    pre.scrollTop = pre.scrollHeight;
  }

  // The repository picker (New app): a branch chosen fills the form's repository and branch
  // in place of the link's page load (which fills them without JavaScript).
  function fillFromPicker(event) {
    var link = event.target.closest ? event.target.closest("a[data-fill-repo]") : null;
    if (!link) { return; }
    var form = document.querySelector("form[action='/new']");
    if (!form) { return; }
    event.preventDefault();
    form.querySelector("input[name=repo]").value = link.dataset.fillRepo;
    form.querySelector("input[name=branch]").value = link.dataset.fillBranch;
    var details = form.querySelector("details");
    if (details) { details.open = true; }
    var picker = document.getElementById("picker");
    if (picker) { picker.textContent = "Chosen: " + link.dataset.fillRepo + " @ " + link.dataset.fillBranch; }
  }

  function start() {
    showScriptOnly(document);
    guardDeletes(document);
    document.addEventListener("click", fillFromPicker);
    document.querySelectorAll("pre.log[data-stream]").forEach(follow);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
