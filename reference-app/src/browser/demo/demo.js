// Browser mode's demo: every call goes through `api`, which sends the session
// cookie (same origin) and the `X-CSRF: 1` header the BFF requires of every
// cookie request. No token is ever seen here.
"use strict";

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  headers.set("X-CSRF", "1");
  if (options.body && !headers.has("Content-Type")) {
    headers.set("Content-Type", "application/json");
  }
  return fetch(path, { ...options, headers, credentials: "same-origin" });
}

const $ = (id) => document.getElementById(id);

function show(value) {
  $("output").textContent = typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

async function refresh() {
  const response = await api("/bff/user");
  if (!response.ok) {
    $("signed-in").hidden = true;
    $("signed-out").hidden = false;
    return;
  }
  const { user, session } = await response.json();
  $("who").textContent = `${user.name || user.email || user.phone} (${user.role})`;
  $("expires").textContent = new Date(session.expires_at).toLocaleString();
  $("idle").textContent = new Date(session.idle_expires_at).toLocaleString();
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const response = await api("/bff/login", {
    method: "POST",
    body: JSON.stringify({ identifier: form.get("identifier"), password: form.get("password") }),
  });
  if (response.ok) {
    $("login-error").textContent = "";
    event.target.reset();
    await refresh();
  } else {
    const problem = await response.json().catch(() => ({}));
    $("login-error").textContent = problem.detail || problem.title || `Login failed (${response.status})`;
  }
});

$("dashboard").addEventListener("click", async () => {
  const response = await api("/api/v1/dashboard");
  show(await response.json().catch(() => `HTTP ${response.status}`));
  await refresh();
});

$("proxy").addEventListener("submit", async (event) => {
  event.preventDefault();
  const path = new FormData(event.target).get("path");
  const response = await api(String(path));
  const text = await response.text();
  show(`HTTP ${response.status}\n${text}`);
});

$("logout").addEventListener("click", async () => {
  await api("/bff/logout", { method: "POST" });
  show("");
  await refresh();
});

const params = new URLSearchParams(window.location.search);
if (params.get("error")) {
  $("login-error").textContent = `Social login failed: ${params.get("error")}`;
}
refresh();
