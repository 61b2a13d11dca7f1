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
  // The review form: verdict keys outside the score fields, Enter submits (the form works
  // without this; the keys are shown on the page).
  const review = document.querySelector("form[data-review]");
  if (review !== null) {
    // A pair is judged side by side, a label's one answer good or bad.
    const verdicts = review.dataset.review === "label"
      ? {"1": "good", g: "good", "2": "bad", b: "bad"}
      : {"1": "left", ArrowLeft: "left", "2": "right", ArrowRight: "right",
         "3": "tie", t: "tie", "4": "both_bad", b: "both_bad"};
    document.addEventListener("keydown", (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey) {
        return;
      }
      const field = event.target.closest("input, textarea, select, button");
      if (event.key === "Enter" && (field === null || field.type === "radio")) {
        event.preventDefault();
        review.requestSubmit();
        return;
      }
      if (field !== null && field.type !== "radio") {
        return;
      }
      if (event.key === "s") {
        event.preventDefault();
        review.querySelector("input[data-score]").focus();
        return;
      }
      const verdict = verdicts[event.key];
      if (verdict !== undefined) {
        event.preventDefault();
        const radio = review.querySelector(`input[data-verdict="${verdict}"]`);
        radio.checked = true;
        radio.focus();
      }
    });
    // A digit in a score field replaces its value, so a reviewer types one digit per field.
    for (const score of review.querySelectorAll("input[data-score]")) {
      score.addEventListener("keydown", (event) => {
        if (/^[0-9]$/.test(event.key) && !event.ctrlKey && !event.metaKey) {
          event.preventDefault();
          score.value = event.key;
        }
      });
    }
  }
});
