// Feedback Flywheel console: a little progressive enhancement; every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Filters that are a choice from a list apply at once.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
  // A row of the pairs list opens its pair (the id in the first cell is the real link).
  for (const row of document.querySelectorAll("tr[data-href]")) {
    row.addEventListener("click", (event) => {
      if (event.target.closest("a") === null && getSelection().toString() === "") {
        window.location.assign(row.dataset.href);
      }
    });
  }
});
