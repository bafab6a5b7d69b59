/* The media library in the browser; every page works without it.
   - An upload zone (<div data-dropzone> around a file input) takes files dropped on it.
   - Any <input data-media-picker> gets a "Choose from library" button that opens a dialog
     (the library, searchable, and an upload) and fills the input with the chosen file's
     address; data-media-picker="any" lists PDFs too.
   - A hidden <button data-media-insert="TEXTAREA-ID"> is shown and inserts ![alt](url) at the
     cursor of that textarea. */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }
  function el(tag, attributes, text) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) { node.setAttribute(name, attributes[name]); });
    if (text) node.textContent = text;
    return node;
  }

  function setupDropzone(zone) {
    var input = zone.querySelector("input[type=file]");
    if (!input) return;
    zone.classList.add("dropzone-live");
    function over(event) { event.preventDefault(); zone.classList.add("dragging"); }
    function out() { zone.classList.remove("dragging"); }
    zone.addEventListener("dragenter", over);
    zone.addEventListener("dragover", over);
    zone.addEventListener("dragleave", out);
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      out();
      if (event.dataTransfer && event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        input.dispatchEvent(new Event("change", {bubbles: true}));
      }
    });
  }

  // --- the dialog ---------------------------------------------------------------------------
  var dialog, list, status, search, fileInput, altInput, current;

  function show(text, failed) {
    status.textContent = text;
    status.classList.toggle("error", !!failed);
  }

  function render(items) {
    list.textContent = "";
    if (!items.length) { show(search.value ? "Nothing matches." : "The library is empty: upload a file below."); return; }
    show(items.length + " file" + (items.length === 1 ? "" : "s") + ".");
    items.forEach(function (item) {
      var li = el("li");
      var button = el("button", {type: "button", "class": "media-choice"});
      if (item.kind === "image") button.appendChild(el("img", {src: item.thumbnail, alt: "", loading: "lazy"}));
      else button.appendChild(el("span", {"class": "media-doc", "aria-hidden": "true"}, "PDF"));
      button.appendChild(el("span", {"class": "media-choice-title"}, item.title));
      if (item.kind === "image" && !item.alt) button.appendChild(el("span", {"class": "badge badge-off"}, "No alt text"));
      button.addEventListener("click", function () { choose(item); });
      li.appendChild(button);
      list.appendChild(li);
    });
  }

  function load() {
    var url = dialog.getAttribute("data-library") + "?kind=" + encodeURIComponent(current.kind) +
              "&q=" + encodeURIComponent(search.value);
    show("Loading…");
    fetch(url, {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}})
      .then(function (response) { if (!response.ok) throw new Error(response.status); return response.json(); })
      .then(function (data) { render(data.items); })
      .catch(function () { show("The library could not be loaded. Are you still signed in?", true); });
  }

  function upload() {
    if (!fileInput.files.length) { show("Choose a file to upload first.", true); fileInput.focus(); return; }
    var body = new FormData();
    Array.prototype.forEach.call(fileInput.files, function (file) { body.append("files", file); });
    body.append("alt", altInput.value);
    body.append("csrf_token", csrfToken());
    show("Uploading…");
    fetch(dialog.getAttribute("data-upload"), {method: "POST", body: body, credentials: "same-origin",
                                                headers: {"X-Requested-With": "fetch"}})
      .then(function (response) { return response.json().catch(function () { throw new Error(response.status); }); })
      .then(function (data) {
        fileInput.value = "";
        altInput.value = "";
        var problems = data.errors.map(function (e) { return (e.name ? "“" + e.name + "”: " : "") + e.error; });
        if (data.uploaded.length === 1 && !problems.length && (current.kind === "any" || data.uploaded[0].kind === current.kind)) {
          choose(data.uploaded[0]);
          return;
        }
        search.value = "";
        load();
        if (problems.length) setTimeout(function () { show("Not uploaded: " + problems.join(" "), true); }, 300);
      })
      .catch(function (err) { show("The upload failed (" + err.message + ").", true); });
  }

  function choose(item) {
    var callback = current.onChoose;
    dialog.close();
    callback(item);
  }

  function buildDialog(source) {
    dialog = el("dialog", {"class": "media-dialog", "aria-labelledby": "media-dialog-title",
                           "data-library": source.getAttribute("data-media-library"),
                           "data-upload": source.getAttribute("data-media-upload")});
    var head = el("div", {"class": "media-dialog-head"});
    head.appendChild(el("h2", {id: "media-dialog-title"}, "Choose from the library"));
    var close = el("button", {type: "button", "class": "secondary"}, "Close");
    close.addEventListener("click", function () { dialog.close(); });
    head.appendChild(close);
    dialog.appendChild(head);
    dialog.appendChild(el("label", {"for": "media-dialog-q"}, "Search"));
    search = el("input", {type: "search", id: "media-dialog-q"});
    var timer;
    search.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(load, 250); });
    dialog.appendChild(search);
    status = el("p", {"class": "help", role: "status", "aria-live": "polite"});
    dialog.appendChild(status);
    list = el("ul", {"class": "media-choices"});
    dialog.appendChild(list);
    var box = el("fieldset", {"class": "media-dialog-upload"});
    box.appendChild(el("legend", {}, "Upload new"));
    box.appendChild(el("label", {"for": "media-dialog-files"}, "Files"));
    fileInput = el("input", {type: "file", id: "media-dialog-files", multiple: "",
                             accept: "image/jpeg,image/png,image/gif,image/webp,application/pdf"});
    box.appendChild(fileInput);
    box.appendChild(el("label", {"for": "media-dialog-alt"}, "Alt text (for one image)"));
    altInput = el("input", {type: "text", id: "media-dialog-alt", maxlength: "500"});
    box.appendChild(altInput);
    var send = el("button", {type: "button"}, "Upload");
    send.addEventListener("click", upload);
    box.appendChild(el("p")).appendChild(send);
    dialog.appendChild(box);
    document.body.appendChild(dialog);
  }

  function open(source, kind, onChoose) {
    if (!dialog) buildDialog(source);
    current = {kind: kind, onChoose: onChoose};
    search.value = "";
    dialog.showModal();
    search.focus();
    load();
  }

  // --- what opens it ------------------------------------------------------------------------
  function setupPicker(input, config) {
    if (input.hasAttribute("data-media-picker-ready")) return;
    input.setAttribute("data-media-picker-ready", "1");
    var button = el("button", {type: "button", "class": "secondary media-choose"}, "Choose from library");
    button.setAttribute("aria-label", "Choose from library" + (input.labels && input.labels[0] ? ": " + input.labels[0].textContent.trim() : ""));
    input.insertAdjacentElement("afterend", button);
    button.addEventListener("click", function () {
      var kind = input.getAttribute("data-media-picker") === "any" ? "any" : "image";
      open(config, kind, function (item) {
        input.value = item.url;
        input.dispatchEvent(new Event("input", {bubbles: true}));
        input.dispatchEvent(new Event("change", {bubbles: true}));
        input.focus();
      });
    });
  }

  function setupInsert(button, config) {
    var area = document.getElementById(button.getAttribute("data-media-insert"));
    if (!area) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      open(config, "image", function (item) {
        var alt = (item.alt || "").replace(/[\[\]\\]/g, "\\$&").replace(/\s+/g, " ");
        var text = "![" + alt + "](" + item.url + ")";
        var start = area.selectionStart, end = area.selectionEnd, value = area.value;
        area.value = value.slice(0, start) + text + value.slice(end);
        area.focus();
        area.setSelectionRange(start + text.length, start + text.length);
        area.dispatchEvent(new Event("input", {bubbles: true}));
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-dropzone]").forEach(setupDropzone);
    var config = document.querySelector("[data-media-library]");
    if (!config || typeof HTMLDialogElement === "undefined") return;
    document.querySelectorAll("input[data-media-picker]").forEach(function (input) { setupPicker(input, config); });
    // A section or entry added in the section editor brings image fields of its own.
    document.addEventListener("sections-changed", function (event) {
      event.target.querySelectorAll("input[data-media-picker]").forEach(function (input) { setupPicker(input, config); });
    });
    document.querySelectorAll("button[data-media-insert]").forEach(function (button) { setupInsert(button, config); });
  });
})();
