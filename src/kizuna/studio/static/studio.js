// The studio page: pick template, locale and customer; re-render when a template file changes on disk.
"use strict";

const $ = (id) => document.getElementById(id);
let templates = [];
let version = null;
let rendering = false;
let again = false; // a change arrived during a render: render once more with the latest choices

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  return response.json();
}

function setOptions(select, items, selected) {
  select.replaceChildren(
    ...items.map(([value, label]) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label; // text, never markup: customer names come from the CRM
      option.selected = value === selected;
      return option;
    }),
  );
}

function current() {
  return { template: $("template").value, locale: $("locale").value, sample: $("sample").value };
}

async function loadTemplates() {
  const data = await getJSON("/api/templates");
  templates = data.templates;
  setOptions($("template"), templates.map((t) => [t.name, t.name]), templates.length ? templates[0].name : "");
  const seeds = data.seed_addresses || [];
  setOptions($("seed"), seeds.map((a) => [a, a]));
  $("send").disabled = seeds.length === 0;
  if (seeds.length === 0) $("send-result").textContent = "set KIZUNA_SEED_ADDRESSES to send test copies";
  await templateChanged();
}

async function templateChanged() {
  const name = $("template").value;
  const t = templates.find((x) => x.name === name);
  setOptions($("locale"), (t ? t.locales : []).map((l) => [l, l]), t ? t.default_locale : "");
  // Until this template's answer arrives, show nothing rather than the previous template's email.
  show(current(), { pending: true });
  let data;
  try {
    data = await getJSON("/api/samples?template=" + encodeURIComponent(name));
  } catch (e) {
    data = { samples: [{ key: "sample", label: "sample_context (meta.yml)" }], note: "samples not available: " + e };
  }
  if ($("template").value !== name) return; // another template was picked meanwhile: its answer wins
  setOptions($("sample"), data.samples.map((s) => [s.key, s.label]), "sample");
  $("status").textContent = data.note || (t && t.error) || "";
  await render();
}

function same(a, b) {
  return a.template === b.template && a.locale === b.locale && a.sample === b.sample;
}

async function fetchRender(q) {
  // Always an answer for q: the server's, or an error naming q's template (never the previous render).
  try {
    const response = await fetch("/api/render?" + new URLSearchParams(q).toString(), {
      headers: { Accept: "application/json" },
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok && !data.error) data.error = q.template + ": the studio answered HTTP " + response.status;
    if (data.template !== q.template) data.error = data.error || q.template + ": the studio answered for another template";
    return data;
  } catch (e) {
    return { error: q.template + ": studio not reachable (" + e + ")" };
  }
}

function show(q, data) {
  if (data.version) version = data.version;
  const failed = Boolean(data.error) || Boolean(data.pending);
  // A failed render shows nothing but its error: an empty preview, not the last good (or another) email.
  $("subject").textContent = failed ? "" : data.subject || "";
  $("html").srcdoc = failed ? "" : data.html || ""; // a sandboxed iframe: no scripts, no forms, no navigation
  $("text").textContent = failed ? "" : data.text || "";
  const problems = [...new Set([data.error, ...(data.lint || [])].filter(Boolean))];
  const warnings = failed ? [] : data.warnings || [];
  const item = (className, text) => Object.assign(document.createElement("li"), { className, textContent: text });
  $("lint").replaceChildren(
    ...problems.map((p) => item("", p)),
    ...warnings.map((w) => item("warn", "warning: " + w)),
    ...(data.pending ? [item("pending", q.template + ": rendering…")] : []),
    ...(problems.length || warnings.length || data.pending ? [] : [item("ok", "lint: no problems")]),
  );
  $("lint").dataset.count = String(problems.length);
  $("lint").dataset.template = q.template;
  document.body.dataset.rendered = version + ":" + q.template + ":" + q.locale + ":" + q.sample;
}

async function render() {
  if (rendering) {
    again = true;
    return;
  }
  rendering = true;
  again = false;
  try {
    const q = current();
    const data = await fetchRender(q);
    if (same(q, current())) show(q, data);
    else again = true; // the choice changed while this answer was on its way: render the current one
  } finally {
    rendering = false;
  }
  if (again) await render();
}

async function poll() {
  try {
    const data = await getJSON("/api/version");
    if (version !== null && data.version !== version) await render();
  } catch (e) {
    $("status").textContent = "studio not reachable: " + e;
  }
}

async function sendTest() {
  $("send-result").textContent = "sending…";
  const body = JSON.stringify({ ...current(), to: $("seed").value });
  const response = await fetch("/api/send-test", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body,
  });
  const data = await response.json();
  $("send-result").textContent = response.ok
    ? "sent to " + data.sent_to + " via " + data.backend
    : "not sent: " + data.error;
}

$("template").addEventListener("change", templateChanged);
$("locale").addEventListener("change", render);
$("sample").addEventListener("change", render);
$("send").addEventListener("click", sendTest);
loadTemplates();
setInterval(poll, 1000);
