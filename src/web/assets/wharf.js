// Wharf's pages (customer portal and operator dashboard): the little JavaScript they have. Served
// from each one's /assets (the CSP forbids inline scripts). Every page works without it.
/* global document, window, navigator, setTimeout */
'use strict';
document.addEventListener('DOMContentLoaded', function () {
  // Times are shown in UTC, like the filters take them; hovering one shows the reader's local time.
  document.querySelectorAll('time[datetime]').forEach(function (el) {
    var d = new Date(el.getAttribute('datetime'));
    if (!isNaN(d.getTime())) el.title = d.toLocaleString();
  });
  // Forms that do something hard to undo ask first.
  document.querySelectorAll('form[data-confirm]').forEach(function (form) {
    form.addEventListener('submit', function (e) {
      if (!window.confirm(form.getAttribute('data-confirm'))) e.preventDefault();
    });
  });
  // Filters leave empty fields out of the URL, so it stays short enough to share.
  document.querySelectorAll('form.filters').forEach(function (form) {
    form.addEventListener('submit', function () {
      form.querySelectorAll('input, select').forEach(function (field) {
        if (field.name && field.value === '') field.disabled = true;
      });
    });
  });
  // Copy buttons (a new secret).
  document.querySelectorAll('button[data-copy]').forEach(function (button) {
    button.addEventListener('click', function () {
      var el = document.getElementById(button.getAttribute('data-copy'));
      if (!el || !navigator.clipboard) return;
      navigator.clipboard.writeText(el.textContent).then(function () {
        button.textContent = 'Copied';
      });
    });
  });
  // A delivery on its way: look again shortly, so a retry's outcome shows without a reload.
  var waiting = document.querySelector('[data-refresh]');
  if (waiting) {
    var seconds = Number(waiting.getAttribute('data-refresh')) || 2;
    setTimeout(function () {
      window.location.replace(window.location.pathname);
    }, seconds * 1000);
  }
});
