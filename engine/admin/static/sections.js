/* The section editor of a landing page (admin/_sections_editor.html): add a section of a chosen
   type, move one up or down, remove one, add or remove an entry of a list. The form posts the
   sections in the order they stand, so moving an element is all a move needs. Each change fires
   "sections-changed", which refreshes the live preview. */
(function () {
  "use strict";
  var editor = document.querySelector("[data-sections]");
  if (!editor || editor.getAttribute("data-sections-ready")) return;
  editor.setAttribute("data-sections-ready", "1");
  var list = editor.querySelector("[data-section-list]");
  var status = editor.querySelector("[data-section-status]");
  var counter = 0;
  // The page text's own preview posts only the text; with sections the preview shows them.
  var body = document.getElementById("body");
  if (body) body.setAttribute("hx-include", "#editor");

  function freshKey() {
    counter += 1;
    return "n" + Date.now().toString(36).slice(-6) + counter.toString(36);
  }

  function changed(message) {
    if (status && message) status.textContent = message;
    editor.dispatchEvent(new Event("sections-changed", { bubbles: true }));
    editor.closest("form").dispatchEvent(new Event("input", { bubbles: true }));  // autosave
  }

  function fromTemplate(template, placeholder) {
    var html = template.innerHTML.split(placeholder).join(freshKey());
    var holder = document.createElement("div");
    holder.innerHTML = html;
    return holder.firstElementChild;
  }

  function labelOf(card) { return card.getAttribute("data-section-label") || "Section"; }

  editor.addEventListener("click", function (event) {
    var button = event.target.closest("button");
    if (!button || !editor.contains(button)) return;
    var card = button.closest("[data-section]");
    if (button.hasAttribute("data-section-add")) {
      var type = editor.querySelector("[data-section-new]").value;
      var template = editor.querySelector('template[data-section-template="' + type + '"]');
      if (!template) return;
      var added = fromTemplate(template, "__key__");
      // A list (benefits, questions...) starts with one empty entry to fill in.
      added.querySelectorAll(".section-items").forEach(function (group) {
        group.querySelector("[data-item-list]").appendChild(
          fromTemplate(group.querySelector("template[data-item-template]"), "__row__"));
      });
      list.appendChild(added);
      var first = added.querySelector("input[type=text], textarea, select");
      if (first) first.focus();
      changed(labelOf(added) + " section added at the end.");
    } else if (button.hasAttribute("data-section-move") && card) {
      var up = button.getAttribute("data-section-move") === "up";
      var other = up ? card.previousElementSibling : card.nextElementSibling;
      if (!other) return;
      list.insertBefore(card, up ? other : other.nextElementSibling);
      button.focus();
      var position = Array.prototype.indexOf.call(list.children, card) + 1;
      changed(labelOf(card) + " section moved to position " + position + ".");
    } else if (button.hasAttribute("data-section-remove") && card) {
      var next = card.nextElementSibling || card.previousElementSibling;
      card.remove();
      var target = next && next.querySelector("button");
      (target || editor.querySelector("[data-section-add]")).focus();
      changed(labelOf(card) + " section removed (until you save, the page keeps it).");
    } else if (button.hasAttribute("data-item-add")) {
      var group = button.closest(".section-items");
      var row = fromTemplate(group.querySelector("template[data-item-template]"), "__row__");
      group.querySelector("[data-item-list]").appendChild(row);
      var field = row.querySelector("input[type=text], textarea");
      if (field) field.focus();
      changed("Entry added.");
    } else if (button.hasAttribute("data-item-remove")) {
      var entry = button.closest("[data-item]");
      var holder = entry.closest(".section-items");
      entry.remove();
      holder.querySelector("[data-item-add]").focus();
      changed("Entry removed.");
    }
  });
})();
