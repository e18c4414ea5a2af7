// The login page of the tokenguard examples. It logs in with `mode: "session"`: the server
// sets an HttpOnly session cookie, so no token ever reaches this script (or an injected one).
// Every request stays on this origin and lets the browser attach that cookie by itself.
"use strict";

const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    // JSON, never a form encoding: tokenguard refuses any other body on /auth/*, and a
    // cross-site form cannot send it.
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    return { status: 0, ok: false, data: null };
  }
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  return { status: response.status, ok: response.ok, data };
}

// Directus errors look like {"errors": [{"message": …, "extensions": {"code": …}}]}.
function errorMessage(result) {
  const errors = result.data && result.data.errors;
  if (Array.isArray(errors) && errors.length > 0 && typeof errors[0].message === "string") {
    return errors[0].message;
  }
  return result.status === 0 ? "The server cannot be reached." : `Request failed (HTTP ${result.status}).`;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

// textContent only: values from the server are never parsed as HTML.
function showUser(user) {
  $("user-email").textContent = user.email || "";
  const name = [user.first_name, user.last_name].filter(Boolean).join(" ");
  $("user-name").textContent = name;
  $("user-name-row").hidden = !name;
  $("user-role").textContent = user.role || "—";
  $("action-result").textContent = "";
  $("status").textContent = "Logged in.";
  $("password").value = ""; // no password left lying in the hidden form
  $("login-form").hidden = true;
  $("account").hidden = false;
}

function showLogin(status) {
  $("account").hidden = true;
  $("login-form").hidden = false;
  $("status").textContent = status;
  $("password").value = "";
}

async function loadUser(statusWhenAnonymous) {
  const result = await api("GET", "/users/me");
  if (result.ok && result.data && result.data.data) {
    showUser(result.data.data);
  } else {
    showLogin(statusWhenAnonymous);
  }
}

async function logIn(event) {
  event.preventDefault();
  const button = $("login-button");
  button.disabled = true;
  showError("");
  try {
    const result = await api("POST", "/auth/login", {
      email: $("email").value,
      password: $("password").value,
      mode: "session",
    });
    if (!result.ok) {
      showError(errorMessage(result));
      $("password").value = "";
      $("password").focus();
      return;
    }
    await loadUser("Not logged in.");
  } finally {
    button.disabled = false;
  }
}

async function logOut() {
  showError("");
  const result = await api("POST", "/auth/logout", { mode: "session" });
  if (!result.ok) {
    showError(errorMessage(result));
  }
  await loadUser("Logged out.");
}

async function protectedPost() {
  const result = await api("POST", "/private", { hello: "from the login page" });
  $("action-result").textContent = result.ok
    ? JSON.stringify(result.data)
    : `HTTP ${result.status}: ${errorMessage(result)}`;
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", logIn);
  $("logout-button").addEventListener("click", logOut);
  $("action-button").addEventListener("click", protectedPost);
  $("login-button").disabled = false;
  loadUser("Not logged in.");
});
