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
  // come and drawn once per animation frame, one insertion per batch. They sit in chunks of
  // CHUNK_LINES: a new line lays out only its chunk, a chunk out of view is skipped by
  // layout and paint (CSS content-visibility), and the oldest lines are let go a whole chunk
  // at a time once more than MAX_LINES are kept, so a fast app can neither freeze the page
  // nor fill its memory. (Lines one by one in the box made every frame lay out, and move,
  // all 5,000 of them: frames of 100 ms and more at 1,000 lines/s.)
  var MAX_LINES = 5000;
  var CHUNK_LINES = 250;
  var STATE_EVERY_MS = 500;

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

  function follow(log) {
    var state = document.querySelector("[data-log-state]");
    var pauseButton = document.querySelector("[data-log-pause]");
    var queue = [];
    var dropped = 0;
    var paused = false;
    var scheduled = false;
    var kept = log.querySelectorAll(".l").length;
    var last = log.lastElementChild;  // the chunk new lines go to
    var lastCount = last ? last.childElementCount : 0;
    var pending = "";
    var saidAt = 0;
    var timer = 0;
    var url = new URL(log.dataset.stream, window.location.href);
    if (log.dataset.skip) {
      url.searchParams.set("from", "now");
    } else if (log.dataset.cursor) {
      url.searchParams.set("cursor", log.dataset.cursor);
    }
    var source = new EventSource(url.toString());

    // The state line: at once when an event says so (no `now`); from drawing, at most every
    // STATE_EVERY_MS (each change is a layout), the latest text last.
    function flush() {
      timer = 0;
      saidAt = performance.now();
      if (state.textContent !== pending) { state.textContent = pending; }
    }

    function say(text, now) {
      if (!state) { return; }
      pending = text;
      if (!now) {
        window.clearTimeout(timer);
        flush();
      } else if (!timer) {
        timer = window.setTimeout(flush, Math.max(0, STATE_EVERY_MS - (now - saidAt)));
      }
    }

    // Whether to keep the newest line in view, decided when the reader scrolls (reading the
    // layout in every frame would force it to be computed twice a frame).
    var stick = true;
    log.addEventListener("scroll", function () {
      stick = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    }, { passive: true });

    function chunk() {
      if (!last || lastCount >= CHUNK_LINES) {
        last = document.createElement("div");
        last.className = "chunk";
        log.appendChild(last);
        lastCount = 0;
      }
      return last;
    }

    function draw(now) {
      scheduled = false;
      if (paused || queue.length === 0) { return; }
      var batch = queue;
      queue = [];
      var i = 0;
      while (i < batch.length) {
        var into = chunk();
        var fragment = document.createDocumentFragment();
        var room = Math.min(CHUNK_LINES - lastCount, batch.length - i);
        for (var n = 0; n < room; n++) { fragment.appendChild(lineNode(batch[i + n])); }
        into.appendChild(fragment);
        i += room;
        lastCount += room;
        kept += room;
      }
      while (kept > MAX_LINES && log.firstElementChild !== last) {
        var oldest = log.firstElementChild;
        kept -= oldest.childElementCount;
        dropped += oldest.childElementCount;
        log.removeChild(oldest);
      }
      if (stick) { log.scrollTop = log.scrollHeight; }
      say("live" + (dropped ? " · older lines let go: " + dropped : ""), now);
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
      if (log.dataset.ends) {  // a build's log ends with its build: no reconnecting
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
    log.scrollTop = log.scrollHeight;
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
    document.querySelectorAll(".log[data-stream]").forEach(follow);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
