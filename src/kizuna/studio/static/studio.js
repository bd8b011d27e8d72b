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
  const data = await getJSON("/api/samples?template=" + encodeURIComponent(name));
  if ($("template").value !== name) return; // another template was picked meanwhile: its answer wins
  setOptions($("sample"), data.samples.map((s) => [s.key, s.label]), "sample");
  $("status").textContent = data.note || "";
  await render();
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
    const url = "/api/render?" + new URLSearchParams(q).toString();
    const data = await getJSON(url);
    version = data.version;
    $("subject").textContent = data.subject;
    $("html").srcdoc = data.html; // shown in a sandboxed iframe: no scripts, no forms, no top navigation
    $("text").textContent = data.text;
    const problems = [...new Set([data.error, ...(data.lint || [])].filter(Boolean))];
    $("lint").replaceChildren(
      ...(problems.length
        ? problems.map((p) => {
            const li = document.createElement("li");
            li.textContent = p;
            return li;
          })
        : [Object.assign(document.createElement("li"), { className: "ok", textContent: "lint: no problems" })]),
    );
    $("lint").dataset.count = String(problems.length);
    document.body.dataset.rendered = version + ":" + q.template + ":" + q.locale + ":" + q.sample;
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
