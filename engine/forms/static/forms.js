/* Magnet forms: progressive enhancement of server-rendered forms (they work without this).
 * - personalises forms on cached pages by fetching this visitor's fields (no-store);
 * - inline validation messages tied to their fields;
 * - submission without reload, and never twice. */
(function () {
  "use strict";
  if (window.magnetForms) return;
  window.magnetForms = true;

  function errorBox(form, field) {
    var id = field.getAttribute("aria-describedby") || "";
    var ids = id.split(" ");
    return form.querySelector("#" + CSS.escape(ids[ids.length - 1] || ""));
  }

  function fieldFor(form, name) {
    var base = form.getAttribute("data-magnet-form") + "-" + name;
    return form.querySelector("#" + CSS.escape(base));
  }

  function showError(form, field, message) {
    if (!field) return;
    var box = errorBox(form, field);
    if (box) box.textContent = message || "";
    if (message) field.setAttribute("aria-invalid", "true");
    else field.removeAttribute("aria-invalid");
  }

  function messageFor(input) {
    var v = input.validity;
    if (v.valueMissing) return input.type === "checkbox" ? "Please tick this box to continue." : "This field is required.";
    if (v.typeMismatch && input.type === "email") return "Enter a valid email address.";
    if (v.rangeUnderflow || v.rangeOverflow) return "Enter a number between " + (input.min || "…") + " and " + (input.max || "…") + ".";
    if (v.badInput) return "Enter a number.";
    if (v.tooLong) return "This is too long.";
    return input.validationMessage;
  }

  function checkGroup(form, group) {
    if (!group.hasAttribute("data-required")) return true;
    var ok = !!group.querySelector("input:checked");
    showError(form, group, ok ? "" : "Choose at least one option.");
    return ok;
  }

  function check(form, input) {
    var group = input.closest("fieldset.magnet-field");
    if (group) return checkGroup(form, group);
    var ok = input.checkValidity();
    showError(form, input, ok ? "" : messageFor(input));
    return ok;
  }

  function checkAll(form) {
    var first = null;
    form.querySelectorAll("[data-magnet-fields] input:not([type=hidden]), [data-magnet-fields] select, [data-magnet-fields] textarea").forEach(function (input) {
      if (input.closest(".magnet-form__hp")) return;
      if (!check(form, input) && !first) first = input;
    });
    if (first) first.focus();
    return !first;
  }

  function stamp(form) {
    var page = form.querySelector("input[name=_page]");
    var ref = form.querySelector("input[name=_referrer]");
    if (page) page.value = location.href;
    if (ref) ref.value = document.referrer || "";
  }

  function labelOf(form, field) {
    var legend = field.matches("fieldset") && field.querySelector("legend");
    var label = legend || form.querySelector("label[for='" + CSS.escape(field.id) + "']");
    if (!label) return field.name || "";
    var copy = label.cloneNode(true); /* the text, without the field itself or the "*" mark */
    copy.querySelectorAll("input, select, textarea, [aria-hidden=true]").forEach(function (el) { el.remove(); });
    return copy.textContent.trim();
  }

  /* The message, then (for errors) a link to each field to correct, as the server renders it. */
  function status(form, text, isError) {
    var box = form.querySelector(".magnet-form__status");
    box.textContent = "";
    box.classList.toggle("magnet-form__status--error", !!isError);
    box.setAttribute("role", isError ? "alert" : "status");
    if (text) {
      var p = document.createElement("p");
      p.className = "magnet-form__message";
      p.textContent = text;
      box.appendChild(p);
    }
    if (!isError) return;
    var list = document.createElement("ul");
    list.className = "magnet-form__summary";
    form.querySelectorAll("[data-magnet-fields] [aria-invalid=true]").forEach(function (field) {
      var box = errorBox(form, field);
      var a = document.createElement("a");
      a.href = "#" + field.id;
      a.textContent = labelOf(form, field) + (box && box.textContent ? ": " + box.textContent : "");
      var li = document.createElement("li");
      li.appendChild(a);
      list.appendChild(li);
    });
    if (list.children.length) box.appendChild(list);
  }

  function succeed(form, body) {
    if (body.redirect && !body.download && /^\/(?!\/)/.test(body.redirect) && body.redirect.indexOf("/forms/") !== 0) {
      location.assign(body.redirect);
      return;
    }
    var done = document.createElement("div");
    done.className = "magnet-form__done";
    done.setAttribute("role", "status");
    var p = document.createElement("p");
    p.textContent = body.message || "Thank you!";
    done.appendChild(p);
    if (body.download) {
      var a = document.createElement("a");
      a.href = body.download;
      a.className = "magnet-download";
      a.setAttribute("download", "");
      a.textContent = "Download now";
      done.appendChild(a);
    }
    form.replaceWith(done);
  }

  function submit(form, event) {
    event.preventDefault();
    if (form.dataset.sending) return; /* no double submission */
    if (!checkAll(form)) {
      status(form, "Please correct the highlighted fields.", true);
      return;
    }
    var button = form.querySelector("[type=submit]");
    form.dataset.sending = "1";
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    stamp(form);
    fetch(form.action, {
      method: "POST", credentials: "same-origin",
      headers: {"Accept": "application/json", "X-Requested-With": "fetch"},
      body: new URLSearchParams(new FormData(form))
    }).then(function (response) {
      return response.json().then(function (body) { return {status: response.status, body: body}; });
    }).then(function (result) {
      if (result.body.ok) return succeed(form, result.body);
      var fields = result.body.fields || {};
      Object.keys(fields).forEach(function (name) { showError(form, fieldFor(form, name), fields[name].join(" ")); });
      status(form, result.body.error || "Something went wrong; please try again.", true);
      var firstBad = form.querySelector("[aria-invalid=true]");
      if (firstBad && firstBad.focus) firstBad.focus();
      if (result.status === 400 && !Object.keys(fields).length) refreshToken(form);
    }).catch(function () {
      status(form, "We could not reach the server. Check your connection and try again.", true);
    }).then(function () {
      delete form.dataset.sending;
      button.disabled = false;
      button.removeAttribute("aria-busy");
    });
  }

  function personalise(form, force) {
    var url = form.getAttribute("data-fields-url");
    return fetch(url, {credentials: "same-origin", cache: "no-store"}).then(function (response) {
      if (!response.ok) return;
      return response.text().then(function (html) {
        if (form.dataset.touched && !force) return; /* never wipe what the visitor is typing */
        form.querySelector("[data-magnet-fields]").innerHTML = html;
        stamp(form);
        bindNotMe(form);
      });
    }).catch(function () { /* the server-rendered fields still work */ });
  }

  function bindNotMe(form) {
    var link = form.querySelector("[data-magnet-not-me]");
    if (!link) return;
    link.addEventListener("click", function (event) {
      event.preventDefault();
      form.setAttribute("data-fields-url", form.getAttribute("data-fields-url").split("?")[0] + "?not_me=1");
      personalise(form, true);
    });
  }

  /* An expired or refused token: take a fresh one for the same fields, keeping the answers. */
  function refreshToken(form) {
    fetch(form.getAttribute("data-fields-url"), {credentials: "same-origin", cache: "no-store"})
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("input[name=_token]");
        var current = form.querySelector("input[name=_token]");
        if (fresh && current) current.value = fresh.value;
      }).catch(function () {});
  }

  function enhance(form) {
    form.noValidate = true;
    stamp(form);
    bindNotMe(form);
    if (!form.querySelector(".magnet-form__known") && !form.hasAttribute("data-personal")) personalise(form);
    var touch = function () { form.dataset.touched = "1"; };
    form.addEventListener("input", touch);
    form.addEventListener("change", touch);
    form.addEventListener("submit", function (event) { touch(); submit(form, event); });
    /* Errors clear as soon as the answer is fixed (while typing, so nothing moves under the
     * pointer on the next click); a new error shows when a filled field is left. */
    var recheck = function (event) {
      var t = event.target;
      if (!t.matches || !t.matches("input, select, textarea") || t.closest(".magnet-form__hp")) return;
      var group = t.closest("fieldset.magnet-field");
      if ((group || t).getAttribute("aria-invalid")) check(form, t);
    };
    form.addEventListener("input", recheck);
    form.addEventListener("change", recheck);
    form.addEventListener("focusout", function (event) {
      var t = event.target;
      if (t.matches && t.matches("input:not([type=radio]):not([type=checkbox]), select, textarea") &&
          !t.closest(".magnet-form__hp") && t.value) check(form, t);
    });
  }

  function start() { document.querySelectorAll("form[data-magnet-form]").forEach(enhance); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
