/* Small progressive behaviour for the admin; every page also works without it. */
(function () {
  "use strict";

  // Ask before destructive actions: <form data-confirm="Delete this?">
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  }, true);

  // Autosave: <form data-autosave="URL"> posts its fields every few seconds while they change,
  // and once more when the tab is hidden or closed, so no text is ever lost.
  function setupAutosave(form) {
    var url = form.getAttribute("data-autosave");
    var state = form.querySelector("[data-save-state]");
    var interval = parseInt(form.getAttribute("data-autosave-every") || "3000", 10);
    var last = new URLSearchParams(new FormData(form)).toString();
    var inFlight = false;

    function show(text, failed) {
      if (!state) return;
      state.textContent = text;
      state.classList.toggle("failed", !!failed);
    }
    function snapshot() { return new URLSearchParams(new FormData(form)).toString(); }
    function save() {
      var now = snapshot();
      if (now === last || inFlight) return;
      inFlight = true;
      show("Saving…");
      fetch(url, {method: "POST", body: new FormData(form), credentials: "same-origin",
                  headers: {"X-Requested-With": "fetch"}})
        .then(function (response) {
          if (!response.ok) throw new Error(response.status);
          last = now;
          return response.json();
        })
        .then(function (data) { show(data.message || "Draft saved"); })
        .catch(function (err) {
          show(String(err.message) === "401" ? "Not saved: you are signed out. Sign in in another tab; this text stays here."
                                             : "Not saved yet (will retry)", true);
        })
        .finally(function () { inFlight = false; });
    }
    function flush() {
      var now = snapshot();
      if (now === last) return;
      if (navigator.sendBeacon && navigator.sendBeacon(url, new FormData(form))) last = now;
    }
    form.addEventListener("submit", function () { last = snapshot(); });
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

/* The form builder shows a field's choices box only for the types that have choices. */
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var withChoices = ["select", "radio", "checkboxes"];
  document.querySelectorAll("[data-choices-for]").forEach(function (box) {
    var type = document.getElementById(box.getAttribute("data-choices-for"));
    if (!type) return;
    function sync() { box.hidden = withChoices.indexOf(type.value) < 0; }
    type.addEventListener("change", sync);
    sync();
  });
});
