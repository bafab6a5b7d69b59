/* Workflows admin: show only the inputs of the kind chosen, and show a step form again when a
   choice changes what it asks for. Without this script every input shows, and a button does
   the same. */
(function () {
  "use strict";
  function showFor(select) {
    var box = select.closest("fieldset") || document;
    box.querySelectorAll("[data-for]").forEach(function (label) {
      var kinds = label.getAttribute("data-for").split(" ");
      label.hidden = kinds.indexOf(select.value) < 0;
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("select[data-shows]").forEach(function (select) {
      showFor(select);
      select.addEventListener("change", function () { showFor(select); });
    });
    var refresh = document.getElementById("refresh");
    if (!refresh) return;
    refresh.closest("form").addEventListener("change", function (event) {
      var target = event.target;
      if (target.matches("select[data-refresh], .wf-conditions select[hx-post]")) refresh.click();
    });
  });
})();
