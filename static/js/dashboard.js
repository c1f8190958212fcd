// The dashboard's small enhancements. Every page works without them: forms post, links link.
// Countdowns, relative times, local times, copy buttons, the tag typeahead, bulk selection and
// confirmations. (Bulk decisions are reviewed on a page of their own, so they need no script.)
(function () {
  "use strict";

  // ---- Countdowns: <time data-countdown datetime="ISO"> ----------------------------------------
  function formatLeft(ms) {
    var total = Math.floor(ms / 1000);
    var d = Math.floor(total / 86400);
    var h = Math.floor((total % 86400) / 3600);
    var m = Math.floor((total % 3600) / 60);
    var s = total % 60;
    if (d > 0) return d + "d " + h + "h left";
    if (h > 0) return h + "h " + m + "m left";
    if (m > 0) return m + "m " + (s < 10 ? "0" : "") + s + "s left";
    return s + "s left";
  }

  // ---- Relative times: <time data-relative datetime="ISO">3 min ago</time> ("in 4 min" ahead) ---
  function formatSpan(seconds) {
    if (seconds < 60) return seconds + " s";
    var m = Math.floor(seconds / 60);
    if (m < 60) return m + " min";
    var h = Math.floor(m / 60);
    if (h < 24) return h + " h" + (m % 60 ? " " + (m % 60) + " min" : "");
    var d = Math.floor(h / 24);
    return d + (d === 1 ? " day" : " days");
  }

  function formatRelative(at, now) {
    var seconds = Math.round(Math.abs(at - now) / 1000);
    if (seconds < 5) return "just now";
    return at > now ? "in " + formatSpan(seconds) : formatSpan(seconds) + " ago";
  }

  // The exact moment on hover: in the viewer's zone, and in UTC as the server writes it.
  var DATE_PARTS = { year: "numeric", month: "short", day: "numeric", hour: "2-digit",
    minute: "2-digit" };
  function exactly(at) {
    var date = new Date(at);
    var utc = date.toLocaleString(undefined, Object.assign({ timeZone: "UTC" }, DATE_PARTS));
    return date.toLocaleString(undefined, DATE_PARTS) + " (" + utc + " UTC)";
  }

  function hoverTitle(el, at) {
    if (el.hasAttribute("data-exact")) return;
    var prefix = el.getAttribute("data-title-prefix") || "";
    el.title = prefix + exactly(at);
    el.setAttribute("data-exact", "");
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-relative]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (isNaN(at)) return;
      hoverTitle(el, at);
      el.textContent = formatRelative(at, now);
    });
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (isNaN(at)) return;
      hoverTitle(el, at);
      var left = at - now;
      if (left <= 0) {
        el.textContent = "Timed out";
        el.classList.add("countdown-over");
        el.classList.remove("countdown-soon");
        return;
      }
      el.textContent = formatLeft(left);
      el.classList.toggle("countdown-soon", left < 5 * 60 * 1000);
    });
    // Decision forms close at their deadline: the server refuses anyway, say so before a click.
    document.querySelectorAll("form[data-deadline]").forEach(function (form) {
      var at = Date.parse(form.getAttribute("data-deadline"));
      if (isNaN(at) || at > now || form.hasAttribute("data-closed")) return;
      form.setAttribute("data-closed", "");
      form.querySelectorAll("button[type=submit]").forEach(function (b) {
        b.disabled = true;
        b.title = "The deadline has passed";
      });
      var note = document.createElement("p");
      note.className = "notice deadline-passed";
      note.setAttribute("role", "status");
      note.textContent = "The deadline has passed: this request can no longer be decided.";
      if (!form.classList.contains("quick-form")) form.appendChild(note);
    });
  }

  // ---- Local times: <time datetime="ISO">… UTC</time> reads in the viewer's zone ----------------
  function localTimes() {
    var plain = "time[datetime]:not([data-countdown]):not([data-relative]):not([data-short])";
    document.querySelectorAll(plain)
      .forEach(function (el) {
        var text = el.textContent.trim();
        if (!/UTC$/.test(text)) return;
        var at = new Date(el.getAttribute("datetime"));
        if (isNaN(at.getTime())) return;
        el.title = text;  // UTC on hover
        el.textContent = at.toLocaleString(undefined, DATE_PARTS);
        el.setAttribute("data-local", "");
      });
    // Compact table cells (<time data-short>3 Mar, 14:05</time>, UTC): the viewer's zone too.
    document.querySelectorAll("time[datetime][data-short]").forEach(function (el) {
      var at = new Date(el.getAttribute("datetime"));
      if (isNaN(at.getTime())) return;
      el.title = exactly(at);
      el.textContent = at.toLocaleString(undefined, { month: "short", day: "numeric",
        hour: "2-digit", minute: "2-digit" });
      el.setAttribute("data-local", "");
    });
  }

  // ---- Copy buttons: <button data-copy="#selector"> -------------------------------------------
  function copyFrom(button) {
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) return;
    var text = "value" in source ? source.value : source.textContent;
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      button.classList.add("copied");
      setTimeout(function () {
        button.textContent = label;
        button.classList.remove("copied");
      }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(source, done); });
    } else {
      fallbackCopy(source, done);
    }
  }

  function fallbackCopy(source, done) {
    // Plain-HTTP deployments have no clipboard API: select the text and use execCommand.
    if ("select" in source) {
      source.select();
    } else {
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }
    try {
      if (document.execCommand("copy")) done();
    } catch (e) { /* the text stays selected for a manual copy */ }
  }

  // ---- Tag typeahead: <input data-typeahead="/…/tags" list="…"> --------------------------------
  function setupTypeahead(input) {
    var list = document.getElementById(input.getAttribute("list"));
    if (!list) return;
    var timer = null;
    var lastQuery = null;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var q = input.value.trim();
        if (q === lastQuery) return;
        lastQuery = q;
        var url = input.getAttribute("data-typeahead") + "?q=" + encodeURIComponent(q);
        fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
          .then(function (r) { return r.ok ? r.json() : { tags: [] }; })
          .then(function (body) {
            list.innerHTML = "";
            (body.tags || []).forEach(function (name) {
              var option = document.createElement("option");
              option.value = name;
              list.appendChild(option);
            });
          })
          .catch(function () { /* keep the server-rendered suggestions */ });
      }, 150);
    });
  }

  // ---- Bulk selection ---------------------------------------------------------------------------
  function setupBulk(form) {
    var boxes = function () {
      return Array.prototype.slice.call(
        document.querySelectorAll('input[type=checkbox][name=ids][form="' + form.id + '"]'));
    };
    var all = form.querySelector("[data-select-all]");
    var count = form.querySelector("[data-bulk-count]");
    var buttons = form.querySelectorAll("[data-bulk-button]");
    function refresh() {
      var selected = boxes().filter(function (b) { return b.checked; }).length;
      count.textContent = selected ? selected + " selected" : "None selected";
      buttons.forEach(function (b) { b.disabled = selected === 0; });
      if (all) {
        all.checked = selected > 0 && selected === boxes().length;
        all.indeterminate = selected > 0 && selected < boxes().length;
      }
      boxes().forEach(function (b) {
        var row = b.closest("tr");
        if (row) row.classList.toggle("selected", b.checked);
      });
    }
    if (all) {
      all.addEventListener("change", function () {
        boxes().forEach(function (b) { b.checked = all.checked; });
        refresh();
      });
    }
    boxes().forEach(function (b) { b.addEventListener("change", refresh); });
    refresh();
  }

  // ---- Confirmations: <form data-confirm="Question?"> -------------------------------------------
  // Once the person has said yes here, the form says so (confirm=yes), so the server does not ask
  // again; without this script the server asks with its own review page (production approvals).
  function setupConfirm(form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
        return;
      }
      if (!form.querySelector("input[name=confirm]")) {
        var answer = document.createElement("input");
        answer.type = "hidden";
        answer.name = "confirm";
        answer.value = "yes";
        form.appendChild(answer);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    // On a phone the filter panel starts folded unless filters are active: the list comes first.
    if (window.matchMedia("(max-width: 720px)").matches) {
      document.querySelectorAll("details[data-collapse-on-phone]:not([data-active])")
        .forEach(function (panel) { panel.open = false; });
    }
    // Every second: countdowns show seconds, "ago" labels move on, forms close on time.
    tick();
    if (document.querySelector("[data-countdown], time[data-relative], form[data-deadline]")) {
      setInterval(tick, 1000);
    }
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () { copyFrom(button); });
    });
    document.querySelectorAll("input[data-typeahead]").forEach(setupTypeahead);
    document.querySelectorAll("form[data-bulk]").forEach(setupBulk);
    document.querySelectorAll("form[data-confirm]").forEach(setupConfirm);
    localTimes();
  });
})();
