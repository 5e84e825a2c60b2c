// Behaviour kept out of the templates so the Content-Security-Policy needs no inline scripts.
document.querySelectorAll("[data-autosubmit]").forEach((el) => {
  el.addEventListener("change", () => el.form.submit());
});
