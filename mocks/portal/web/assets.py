"""The portal's stylesheet, script and emblem, served by the app itself (the machine has no internet).

The script is language-neutral: localized messages come from ``data-msg-*`` attributes in the page.
"""

from __future__ import annotations

import math


def _emblem() -> str:
    """A simple emblem mark: a golden sun with a shanyrak-like crown of rays on the portal's blue."""
    rays = []
    for index in range(16):
        angle = index * math.pi / 8
        x1, y1 = 24 + 9 * math.cos(angle), 24 + 9 * math.sin(angle)
        x2, y2 = 24 + 16 * math.cos(angle), 24 + 16 * math.sin(angle)
        rays.append(f'<line x1="{x1:.2f}" y1="{y1:.2f}" x2="{x2:.2f}" y2="{y2:.2f}"/>')
    return ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 48 48" width="44" height="44" role="img" '
            'aria-label="egov.kz">'
            '<circle cx="24" cy="24" r="23" fill="#f5c542"/><circle cx="24" cy="24" r="19.5" fill="#17508f"/>'
            f'<g stroke="#f5c542" stroke-width="1.6" stroke-linecap="round">{"".join(rays)}</g>'
            '<circle cx="24" cy="24" r="6.5" fill="#f5c542"/><circle cx="24" cy="24" r="3" fill="#17508f"/></svg>')


EMBLEM_SVG = _emblem()

CSS = """
:root { --blue: #17508f; --blue-2: #2470c2; --sky: #e8f1fb; --ink: #1c2733; --muted: #5b6b7c; --line: #d9e2ec;
  --bg: #f3f6fa; --green: #1e7a46; --amber: #9a6700; --red: #b42318; --gold: #f5c542; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--ink); background: var(--bg); }
a { color: var(--blue-2); }
header.site { background: linear-gradient(90deg, var(--blue), var(--blue-2)); color: #fff; }
header.site .bar { max-width: 1120px; margin: 0 auto; padding: 10px 20px; display: flex; align-items: center;
  gap: 16px; flex-wrap: wrap; }
header.site a { color: #fff; text-decoration: none; }
.brand { display: flex; align-items: center; gap: 12px; }
.brand strong { font-size: 1.35rem; letter-spacing: .2px; }
.brand small { display: block; opacity: .85; font-size: .8rem; }
nav.main { display: flex; gap: 14px; margin-left: auto; align-items: center; flex-wrap: wrap; }
nav.main a { padding: 4px 8px; border-radius: 6px; }
nav.main a:hover { background: rgba(255, 255, 255, .15); }
.langs { display: flex; border: 1px solid rgba(255, 255, 255, .5); border-radius: 8px; overflow: hidden; }
.langs a { padding: 3px 10px; font-size: .9rem; }
.langs a.on { background: #fff; color: var(--blue); font-weight: 600; }
.banner { background: #fff8e1; border-bottom: 1px solid #f0dca0; color: #6b5200; font-size: .9rem; }
.banner div { max-width: 1120px; margin: 0 auto; padding: 6px 20px; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 20px 48px; }
footer.site { color: var(--muted); font-size: .85rem; text-align: center; padding: 24px; }
h1 { font-size: 1.6rem; margin: 0 0 8px; color: var(--blue); }
h2 { font-size: 1.2rem; margin: 28px 0 12px; }
h3 { font-size: 1.05rem; margin: 0 0 6px; }
.lead { color: var(--muted); max-width: 820px; }
.grid { display: grid; gap: 14px; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); }
.card { background: #fff; border: 1px solid var(--line); border-radius: 12px; padding: 16px 18px;
  box-shadow: 0 1px 2px rgba(16, 40, 70, .06); }
.card.selected { border-color: var(--blue-2); box-shadow: 0 0 0 3px rgba(36, 112, 194, .2); }
.card.muted { opacity: .65; }
a.card { display: block; color: inherit; text-decoration: none; }
a.card:hover { border-color: var(--blue-2); }
button.card { display: flex; flex-direction: column; justify-content: flex-start; width: 100%; height: 100%;
  text-align: left; color: inherit; border-radius: 12px;
  background: #fff; border: 1px solid var(--line); padding: 16px 18px; }
button.card:hover { filter: none; border-color: var(--blue-2); }
button.card.selected { border-color: var(--blue-2); }
button.card > span { display: block; }
button.card .name { font-size: 1.05rem; font-weight: 600; margin: 0 0 6px; }
button.card .pick { margin-top: 8px; }
form.person { margin: 0; }
form.inline { display: inline; margin: 0; }
nav.main button.link { color: #fff; }
.meta { color: var(--muted); font-size: .9rem; }
.note { color: var(--muted); font-size: .8rem; font-style: italic; }
.button, button { display: inline-block; background: var(--blue-2); color: #fff; border: 0; border-radius: 8px;
  padding: 9px 18px; font: inherit; cursor: pointer; text-decoration: none; }
.button.secondary, button.secondary { background: #fff; color: var(--blue-2); border: 1px solid var(--blue-2); }
button.link { background: none; color: var(--red); padding: 2px 6px; }
.button:hover, button:hover { filter: brightness(1.08); }
.badge { display: inline-block; border-radius: 999px; padding: 2px 10px; font-size: .85rem; font-weight: 600;
  background: #e6ebf1; color: #3b4a5a; white-space: nowrap; }
.badge.accepted, .badge.routed { background: #e3eefb; color: #1c4f8a; }
.badge.in_progress { background: #fff1d6; color: var(--amber); }
.badge.completed, .badge.pass { background: #dcf3e5; color: var(--green); }
.badge.refused, .badge.failed, .badge.fail { background: #fde4e1; color: var(--red); }
.badge.stopped, .badge.indeterminate { background: #ede7f6; color: #4a2d8a; }
.overdue { background: var(--red); color: #fff; border-radius: 4px; padding: 1px 6px; font-size: .75rem;
  font-weight: 700; margin-left: 6px; }
.archived { border: 1px solid #999; color: #555; border-radius: 4px; padding: 0 6px; font-size: .75rem;
  margin-left: 6px; }
form .field { margin: 0 0 14px; }
form label { display: block; font-weight: 600; margin-bottom: 4px; }
form label.inline { display: flex; gap: 8px; align-items: flex-start; font-weight: 400; }
input[type=text], input[type=email], input[type=tel], input[type=number], input[type=date], select, textarea {
  width: 100%; padding: 8px 10px; border: 1px solid #b8c4d2; border-radius: 8px; font: inherit; background: #fff; }
input[readonly] { background: #f1f4f8; color: var(--muted); }
input:focus, select:focus, textarea:focus { outline: 2px solid rgba(36, 112, 194, .35); border-color: var(--blue-2); }
.invalid input, .invalid select, .invalid textarea { border-color: var(--red); }
.field-error { color: var(--red); font-size: .88rem; margin-top: 3px; }
.field-error:empty { display: none; }
.hint { color: var(--muted); font-size: .85rem; margin-top: 3px; }
.row { display: grid; gap: 12px; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); }
fieldset { border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; margin: 0 0 12px; }
legend { font-weight: 600; padding: 0 6px; }
.alert { border-radius: 10px; padding: 12px 16px; margin: 0 0 16px; }
.alert.error { background: #fdecea; border: 1px solid #f5c2bc; color: #7a1a10; }
.alert.ok { background: #e5f6ec; border: 1px solid #b5e2c6; color: #14532d; }
.alert.info { background: var(--sky); border: 1px solid #c5daf2; }
.bad-case { border-style: dashed; border-color: #e0a39b; background: #fffafa; }
table { width: 100%; border-collapse: collapse; background: #fff; border-radius: 12px; overflow: hidden; }
th, td { text-align: left; padding: 10px 12px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--sky); font-size: .9rem; color: #2b3d52; }
/* The label column is capped, so a long label wraps instead of squeezing the values to a letter per line. */
dl.facts { display: grid; grid-template-columns: fit-content(35%) minmax(0, 1fr); gap: 6px 16px; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; min-width: 0; overflow-wrap: anywhere; }
pre.xml { background: #0f1b2a; color: #d6e4f5; padding: 14px; border-radius: 10px; overflow: auto;
  max-height: 480px; font-size: .8rem; white-space: pre-wrap; word-break: break-all; }
ol.timeline { list-style: none; padding: 0; margin: 0; border-left: 3px solid var(--line); }
ol.timeline li { position: relative; padding: 0 0 14px 18px; }
ol.timeline li::before { content: ""; position: absolute; left: -8px; top: 6px; width: 13px; height: 13px;
  border-radius: 50%; background: var(--blue-2); border: 2px solid #fff; }
.cols { display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); }
details summary { cursor: pointer; color: var(--blue-2); margin: 8px 0; }
@media (max-width: 640px) { table.apps thead { display: none; } table.apps td { display: block; border: 0; }
  table.apps tr { display: block; border-bottom: 1px solid var(--line); padding: 6px 0; }
  dl.facts { grid-template-columns: 1fr; } }
"""

JS = """
(function () {
  "use strict";
  function messageFor(el) {
    var v = el.validity, form = el.form;
    if (v.valueMissing) return el.dataset.msgRequired || (form && form.dataset.msgRequired) || "";
    if (v.typeMismatch || v.patternMismatch) return el.dataset.msgPattern || "";
    if (v.rangeUnderflow || v.rangeOverflow || v.stepMismatch || v.badInput) return el.dataset.msgRange || "";
    if (v.tooLong) return el.dataset.msgLength || "";
    return "";
  }
  function errorBox(el) {
    var box = el.closest(".field");
    return box ? box.querySelector(".field-error") : null;
  }
  // validity.valid, never checkValidity(): that fires "invalid" again, and the invalid handler calls check().
  function check(el) {
    el.setCustomValidity("");
    var text = el.validity.valid ? "" : (messageFor(el) || el.validationMessage);
    el.setCustomValidity(text);
    var box = errorBox(el);
    if (box) { box.textContent = text; box.closest(".field").classList.toggle("invalid", !!text); }
    return !text;
  }
  function datesLinked(form) {
    var start = form.querySelector("[name=export_from]"), end = form.querySelector("[name=return_by]");
    if (start && end && start.value) { end.min = start.value; }
  }
  function renumber(list) {
    list.querySelectorAll("[data-row]").forEach(function (row, index) {
      var title = row.querySelector("[data-row-title]");
      if (title) { title.textContent = title.dataset.rowTitle.replace("{n}", String(index + 1)); }
    });
  }
  document.querySelectorAll("form[data-validate]").forEach(function (form) {
    var focused = false;
    form.addEventListener("invalid", function (event) {
      event.preventDefault();  // the inline message explains; the browser's bubble would cover it
      check(event.target);
      if (!focused) {  // one submit attempt fires "invalid" per field: focus the first of them
        focused = true;
        event.target.focus();
        setTimeout(function () { focused = false; }, 0);
      }
    }, true);
    form.addEventListener("input", function (event) {
      if (event.target.willValidate) { check(event.target); }
      datesLinked(form);
    });
    form.addEventListener("change", function (event) {
      if (event.target.willValidate) { check(event.target); }
      datesLinked(form);
      var bad = form.querySelector("[name=bad_case]:checked"), other = form.querySelector("[name=other_person]");
      if (other) { other.disabled = !bad || bad.value !== "other"; }
    });
    form.addEventListener("click", function (event) {
      var add = event.target.closest("[data-add]"), remove = event.target.closest("[data-remove]");
      if (add) {
        var list = form.querySelector("[data-repeat='" + add.dataset.add + "']");
        var rows = list.querySelectorAll("[data-row]");
        if (rows.length >= Number(list.dataset.max || 50)) { return; }
        var next = 0;
        rows.forEach(function (row) { next = Math.max(next, Number(row.dataset.row) + 1); });
        var html = form.querySelector("template[data-template='" + add.dataset.add + "']").innerHTML;
        list.insertAdjacentHTML("beforeend", html.split("__i__").join(String(next)));
        renumber(list);
      }
      if (remove) {
        var holder = remove.closest("[data-repeat]");
        if (holder.querySelectorAll("[data-row]").length > 1) { remove.closest("[data-row]").remove(); }
        renumber(holder);
      }
    });
    datesLinked(form);
    var first = form.querySelector("[name=bad_case]:checked"), picker = form.querySelector("[name=other_person]");
    if (picker) { picker.disabled = !first || first.value !== "other"; }
  });
  var live = document.querySelector("[data-live]");
  if (live && window.EventSource && live.dataset.events) {
    var only = live.dataset.messageId, timer = null, updates = 0;
    var refresh = function () {
      fetch(window.location.href, {credentials: "same-origin"}).then(function (r) { return r.text(); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("[data-live]");
          var current = document.querySelector("[data-live]");
          if (fresh && current) {
            current.replaceWith(fresh);
            updates += 1;
            document.body.dataset.liveUpdates = String(updates);
          }
        });
    };
    var source = new EventSource(live.dataset.events);
    source.addEventListener("application", function (event) {
      var data = {};
      try { data = JSON.parse(event.data); } catch (e) { return; }
      if (only && data.messageId !== only) { return; }
      clearTimeout(timer);
      timer = setTimeout(refresh, 150);
    });
    // connected: the gateway listens from now on; a change made after this page was rendered and before
    // that moment was never sent, so read the page once more. resync: changes were missed in an outage.
    var reread = function () { clearTimeout(timer); timer = setTimeout(refresh, 150); };
    source.addEventListener("connected", reread);
    source.addEventListener("resync", reread);
    source.addEventListener("open", function () { document.body.dataset.liveConnected = "1"; });
  }
})();
"""
