/* Small progressive behaviour for the admin; every page also works without it. */
(function () {
  "use strict";

  // Signing out forgets the text autosave kept in this browser (it may be shared), and keeps
  // the page's last-moment save from writing it back as the page goes.
  var signingOut = false;
  document.addEventListener("submit", function (event) {
    var action = event.target.getAttribute && event.target.getAttribute("action") || "";
    if (!/\/auth\/logout$/.test(action)) return;
    signingOut = true;
    try {
      for (var i = localStorage.length - 1; i >= 0; i--) {
        var name = localStorage.key(i);
        if (name && name.indexOf(PREFIX) === 0) localStorage.removeItem(name);
      }
    } catch (e) { /* disabled */ }
  });

  // Ask before destructive actions: <form data-confirm="Delete this?">
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  }, true);

  // Autosave: <form data-autosave="URL"> posts its fields every few seconds while they change,
  // and once more when the tab is hidden or closed, so no text is ever lost. Until the server
  // has a change, it is also kept in this browser's localStorage: text typed while offline or
  // signed out survives a closed tab and is put back (and saved) on the next visit. It is kept
  // per person (data-autosave-owner), and signing out of this browser forgets all of it.
  var PREFIX = "magnet:autosave:";
  function setupAutosave(form) {
    var url = form.getAttribute("data-autosave");
    var key = PREFIX + (form.getAttribute("data-autosave-owner") || "") + ":" + url;
    var state = form.querySelector("[data-save-state]");
    var interval = parseInt(form.getAttribute("data-autosave-every") || "3000", 10);
    var last = snapshot();
    var inFlight = false;

    function show(text, failed) {
      if (!state) return;
      state.textContent = text;
      state.classList.toggle("failed", !!failed);
    }
    function snapshot() { return new URLSearchParams(new FormData(form)).toString(); }
    function keepLocally() {
      if (signingOut) return;
      try { localStorage.setItem(key, JSON.stringify(Array.from(new FormData(form)))); } catch (e) { /* full or disabled */ }
    }
    function forgetLocally() { try { localStorage.removeItem(key); } catch (e) { /* disabled */ } }
    function restoreLocal() {
      var saved;
      try { saved = JSON.parse(localStorage.getItem(key) || "null"); } catch (e) { saved = null; }
      if (!saved) return;
      var changed = false;
      saved.forEach(function (pair) {
        var field = form.elements.namedItem(pair[0]);
        if (field && field.type !== "hidden" && typeof field.value === "string" && field.value !== pair[1]) {
          field.value = pair[1];
          changed = true;
        }
      });
      if (changed) show("Restored text that had not reached the server; saving it now.");
      else forgetLocally();
    }
    function save() {
      var now = snapshot();
      if (now === last || inFlight) return;
      inFlight = true;
      keepLocally();
      show("Saving…");
      fetch(url, {method: "POST", body: new FormData(form), credentials: "same-origin",
                  headers: {"X-Requested-With": "fetch"}})
        .then(function (response) {
          if (!response.ok) throw new Error(response.status);
          last = now;
          if (snapshot() === now) forgetLocally();
          return response.json();
        })
        .then(function (data) { show(data.message || "Draft saved"); })
        .catch(function (err) {
          show(String(err.message) === "401" ? "Not saved: you are signed out. Sign in in another tab; this text is kept in this browser."
                                             : "Not saved yet (will retry); this text is kept in this browser.", true);
        })
        .finally(function () { inFlight = false; });
    }
    function flush() {
      var now = snapshot();
      if (now === last) return;
      keepLocally();
      if (navigator.sendBeacon && navigator.sendBeacon(url, new FormData(form))) last = now;
    }
    restoreLocal();
    form.addEventListener("input", keepLocally);
    form.addEventListener("submit", function () { last = snapshot(); forgetLocally(); });
    setInterval(save, interval);
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") flush();
    });
    window.addEventListener("pagehide", flush);
    window.addEventListener("beforeunload", function (event) {
      if (snapshot() !== last) { flush(); event.preventDefault(); event.returnValue = ""; }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-autosave]").forEach(setupAutosave);
  });
})();

/* Times typed in a datetime-local field are the browser's local time: send its offset so the
   server stores UTC, and show a stored UTC time in local time. */
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  document.querySelectorAll("[data-tz-offset]").forEach(function (input) {
    input.value = String(new Date().getTimezoneOffset());
  });
  document.querySelectorAll("input[type=datetime-local][data-utc]").forEach(function (input) {
    var utc = new Date(input.value + ":00Z");
    if (isNaN(utc)) return;
    var local = new Date(utc.getTime() - utc.getTimezoneOffset() * 60000);
    input.value = local.toISOString().slice(0, 16);
  });
});

/* The form builder shows a field's type-specific inputs (choices, default value, minimum and
   maximum) only for the types that use them: <x data-types-for="TYPE-SELECT-ID"
   data-types="select radio">. Hidden inputs are still sent, so nothing stored is lost. */
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  document.querySelectorAll("[data-types-for]").forEach(function (box) {
    var type = document.getElementById(box.getAttribute("data-types-for"));
    if (!type) return;
    var types = box.getAttribute("data-types").split(" ");
    function sync() { box.hidden = types.indexOf(type.value) < 0; }
    type.addEventListener("change", sync);
    sync();
  });
});

/* Copy buttons: <button data-copy="ID" hidden> copies the text of the element with that id (a
   new API key, an example); they show only where a script can copy. */
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  function copied(button) {
    var label = button.textContent;
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = label; }, 2000);
  }
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var text = source.tagName === "INPUT" ? source.value : source.textContent;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () { copied(button); });
        return;
      }
      var range = document.createRange();  // plain http: select it and copy the old way
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      if (source.select) source.select();
      if (document.execCommand("copy")) copied(button);
    });
  });
});
