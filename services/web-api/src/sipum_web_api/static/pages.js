"use strict";
// What the settings, greetings and admin pages share: no framework, no build step.
const $ = (id) => document.getElementById(id);

async function api(path, options = {}) {
  const headers = { ...(options.body instanceof Blob ? {} : { "content-type": "application/json" }), ...(options.headers || {}) };
  const response = await fetch(path, { credentials: "same-origin", ...options, headers });
  if (!response.ok) {
    let detail = response.statusText;
    try { const body = await response.json(); detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail); } catch (e) {}
    const error = new Error(detail); error.status = response.status; throw error;
  }
  return response.status === 204 ? null : response.json();
}

function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }
