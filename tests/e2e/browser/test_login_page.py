"""The examples' login page in headless Chromium, against real servers on 127.0.0.1.

Session mode end to end: log in, stay logged in across a reload, a session cookie that page
script cannot read, a real logout (the old cookie is dead on the server, not just deleted),
Directus's message on a wrong password, and forms and fetches from another origin refused.
"""

from __future__ import annotations

import html
import json
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.static import HEADERS
from tests.e2e.browser.other_origin import other_origin
from tests.e2e.browser.support import ADMIN_EMAIL, ADMIN_PASSWORD, Example

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips, or fails in CI, with the reason
    if os.environ.get("CI"):
        raise
    pytest.skip("the playwright package is not installed", allow_module_level=True)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[3]
SCREENSHOT = ROOT / "docs" / "login-page.png"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SESSION_COOKIE = "directus_session_token"
INVALID_CREDENTIALS = {
    "errors": [
        {"message": "Invalid user credentials.", "extensions": {"code": "INVALID_CREDENTIALS"}}
    ]
}
CROSS_ORIGIN_REFUSED = (
    "Cross-site request refused: the Origin of a request authenticated by cookie is not trusted"
)


# -- helpers -----------------------------------------------------------------------------------


def open_login_page(context: Any, example: Example) -> Any:
    """A tab on ``/login``, once the page has asked who is logged in (nobody yet)."""
    page = context.new_page()
    page.script_errors = []  # uncaught exceptions and Content-Security-Policy violations
    page.on("pageerror", lambda error: page.script_errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            page.script_errors.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )
    response = page.goto(example.url + "/login")
    assert response.status == 200
    assert response.headers["content-security-policy"] == HEADERS["content-security-policy"]
    expect(page.locator("#status")).to_have_text("Not logged in.")
    expect(page.locator("#login-form")).to_be_visible()
    return page


def log_in(page: Any, email: str, password: str) -> None:
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#login-button")


def expect_logged_in_as_admin(page: Any) -> None:
    expect(page.locator("#status")).to_have_text("Logged in.")
    expect(page.locator("#account")).to_be_visible()
    expect(page.locator("#login-form")).to_be_hidden()
    expect(page.locator("#user-email")).to_have_text(ADMIN_EMAIL)
    expect(page.locator("#user-role")).to_have_text("administrator")
    expect(page.locator("#user-name-row")).to_be_hidden()  # the seeded admin has no name


def session_cookie(context: Any, example: Example) -> dict[str, Any] | None:
    for cookie in context.cookies(example.url):
        if cookie["name"] == SESSION_COOKIE:
            return dict(cookie)
    return None


def auto_submit_form(action: str, enctype: str, fields: dict[str, str]) -> str:
    """An attacker's page: a form that posts itself to ``action`` as soon as it loads."""
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in fields.items()
    )
    return (
        f'<!doctype html><form method="post" action="{html.escape(action)}" '
        f'enctype="{enctype}">{inputs}</form><script>document.forms[0].submit()</script>'
    )


def post_from(site_page: Any, page_url: str, target: str) -> Any:
    """Open ``page_url`` (an auto-submitting form) and return the response to its POST."""
    with site_page.expect_response(
        lambda r: r.url == target and r.request.method == "POST"
    ) as info:
        site_page.goto(page_url)
    return info.value


def error_code(response: Any) -> tuple[int, str]:
    return response.status, response.json()["errors"][0]["extensions"]["code"]


# A text/plain form can carry a valid JSON body: the field name holds its start.
def json_in_text_plain(body: dict[str, Any]) -> dict[str, str]:
    text = json.dumps(body)
    return {text[:-1] + ', "x": "': '"}'}


# -- the page itself ----------------------------------------------------------------------------


def test_page_files_are_served_from_the_allowlist_only(example: Example) -> None:
    for path, content_type in [
        ("/login", "text/html; charset=utf-8"),
        ("/static/app.js", "text/javascript; charset=utf-8"),
        ("/static/style.css", "text/css; charset=utf-8"),
    ]:
        r = httpx.get(example.url + path)
        assert r.status_code == 200, path
        assert r.headers["content-type"] == content_type
        for name, value in HEADERS.items():
            assert r.headers[name] == value
    # Server values reach the page as text only (textContent), never parsed as HTML.
    script = httpx.get(example.url + "/static/app.js").text
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script
    for path in ["/static/__init__.py", "/static/login.html.bak", "/static/..%2F__init__.py"]:
        r = httpx.get(example.url + path)
        assert r.status_code == 404, path
        assert "__future__" not in r.text


def test_log_in_reload_protected_pages_and_log_out(context: Any, example: Example) -> None:
    page = open_login_page(context, example)
    assert session_cookie(context, example) is None

    log_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    expect_logged_in_as_admin(page)
    expect(page.locator("#password")).to_have_value("")

    cookie = session_cookie(context, example)
    assert cookie is not None
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Lax", "/")

    # Page script sees its own cookies, never the session's.
    assert page.evaluate("document.cookie") == ""
    page.evaluate("document.cookie = 'probe=visible; path=/'")
    assert page.evaluate("document.cookie") == "probe=visible"
    names = page.evaluate("async () => (await cookieStore.getAll()).map(c => c.name)")
    assert names == ["probe"]

    page.reload()
    expect_logged_in_as_admin(page)
    user_id = page.evaluate("async () => (await (await fetch('/users/me')).json()).data.id")

    # The protected page, through its link, then the administrators' page.
    with page.expect_navigation() as navigation:
        page.click("#private-link")
    private = navigation.value
    assert private.status == 200
    assert private.json() == {"data": {"secret": "for users only", "user": user_id}}
    page.go_back()
    expect_logged_in_as_admin(page)
    with page.expect_navigation() as navigation:
        page.click("#admin-link")
    assert navigation.value.status == 200
    page.go_back()
    expect_logged_in_as_admin(page)

    # A same-origin unsafe request with the session cookie passes the cross-site check.
    page.click("#action-button")
    expect(page.locator("#action-result")).to_have_text(
        json.dumps({"data": {"posted": True, "user": user_id}}, separators=(",", ":"))
    )

    page.click("#logout-button")
    expect(page.locator("#status")).to_have_text("Logged out.")
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#error")).to_be_hidden()
    assert session_cookie(context, example) is None

    refused = page.goto(example.url + "/private")
    assert refused.status == 401
    assert refused.json() == INVALID_CREDENTIALS

    # Logout ended the session on the server: the old cookie, put back, is refused too,
    # and the refusal deletes it again.
    context.add_cookies([{"name": SESSION_COOKIE, "value": cookie["value"], "url": example.url}])
    replayed = page.goto(example.url + "/private")
    assert replayed.status == 401
    assert replayed.json() == INVALID_CREDENTIALS
    assert session_cookie(context, example) is None

    page.goto(example.url + "/login")
    expect(page.locator("#status")).to_have_text("Not logged in.")
    assert page.script_errors == []


def test_without_script_nothing_can_be_submitted(browser: Any, example: Example) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        assert page.goto(example.url + "/login").status == 200
        expect(page.locator("#noscript")).to_have_text("This page needs JavaScript to log in.")
        expect(page.locator("#login-form")).to_be_hidden()
        expect(page.locator("#login-button")).to_be_disabled()
    finally:
        context.close()


def test_wrong_password_shows_directus_message(context: Any, example: Example) -> None:
    page = open_login_page(context, example)
    log_in(page, ADMIN_EMAIL, "not the password")
    expect(page.locator("#error")).to_have_text("Invalid user credentials.")
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#account")).to_be_hidden()
    expect(page.locator("#password")).to_have_value("")
    assert session_cookie(context, example) is None

    # The error goes away with the next, successful, attempt.
    log_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    expect_logged_in_as_admin(page)
    expect(page.locator("#error")).to_be_hidden()
    assert page.script_errors == []


def test_screenshot(browser: Any, example: Example, tmp_path: Path) -> None:
    """The README's picture: the page after logging in. ``TG_UPDATE_SCREENSHOT=1`` writes it
    to docs/login-page.png; otherwise it only lands in the test's temporary directory."""
    if example.name != "starlette-uvicorn":
        pytest.skip("one screenshot is enough; the page is the same file in both examples")
    # Twice the pixels, for sharp text on high-density screens.
    context = browser.new_context(viewport={"width": 720, "height": 600}, device_scale_factor=2)
    context.set_default_timeout(10_000)
    try:
        _take_screenshot(context, example, tmp_path)
    finally:
        context.close()


def _take_screenshot(context: Any, example: Example, tmp_path: Path) -> None:
    page = open_login_page(context, example)
    log_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    expect_logged_in_as_admin(page)
    page.click("#action-button")
    expect(page.locator("#action-result")).to_contain_text('"posted":true')
    shot = tmp_path / "login-page.png"
    box = page.locator("main").bounding_box()
    margin = 24
    page.screenshot(
        path=str(shot),
        clip={
            "x": max(0, box["x"] - margin),
            "y": max(0, box["y"] - margin),
            "width": box["width"] + 2 * margin,
            "height": box["height"] + 2 * margin,
        },
    )
    assert shot.read_bytes()[:8] == PNG_MAGIC
    if os.environ.get("TG_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
    assert SCREENSHOT.read_bytes()[:8] == PNG_MAGIC


# -- cross-site requests ------------------------------------------------------------------------


def test_forms_and_fetches_from_another_origin_are_refused(context: Any, example: Example) -> None:
    """Another port of 127.0.0.1 is another origin but the same site: the browser sends the
    SameSite=Lax session cookie with its form posts, so the Origin check must refuse them."""
    victim = open_login_page(context, example)
    log_in(victim, ADMIN_EMAIL, ADMIN_PASSWORD)
    expect_logged_in_as_admin(victim)
    cookie = session_cookie(context, example)
    assert cookie is not None

    with other_origin() as site:
        attacker = context.new_page()
        responses: list[tuple[str, str, int]] = []
        attacker.on("response", lambda r: responses.append((r.request.method, r.url, r.status)))

        # A plain form post to an app route, with the victim's cookie attached.
        site.pages["/app"] = auto_submit_form(
            example.url + "/private", "application/x-www-form-urlencoded", {"hello": "world"}
        )
        r = post_from(attacker, site.url("/app"), example.url + "/private")
        sent = r.request.all_headers()
        assert SESSION_COOKIE + "=" in sent.get("cookie", "")
        assert sent["origin"] == site.url("").rstrip("/")
        assert r.status == 403
        assert r.json()["errors"][0]["message"] == CROSS_ORIGIN_REFUSED
        assert r.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"

        # Logout and login forms smuggling JSON in text/plain: refused, whichever check
        # (the JSON-only body or the Origin) speaks first.
        site.pages["/logout"] = auto_submit_form(
            example.url + "/auth/logout", "text/plain", json_in_text_plain({"mode": "session"})
        )
        r = post_from(attacker, site.url("/logout"), example.url + "/auth/logout")
        # The smuggled body is valid JSON: only its type, or its origin, gets it refused.
        assert json.loads(r.request.post_data) == {"mode": "session", "x": "="}
        assert error_code(r) in {(400, "INVALID_PAYLOAD"), (403, "FORBIDDEN")}
        assert "set-cookie" not in r.headers

        site.pages["/login"] = auto_submit_form(
            example.url + "/auth/login",
            "text/plain",
            json_in_text_plain(
                {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "mode": "session"}
            ),
        )
        r = post_from(attacker, site.url("/login"), example.url + "/auth/login")
        assert json.loads(r.request.post_data)["mode"] == "session"
        assert error_code(r) in {(400, "INVALID_PAYLOAD"), (403, "FORBIDDEN")}
        assert "set-cookie" not in r.headers

        # Script on the other origin: a JSON fetch needs a CORS preflight, which the example
        # does not grant, so the browser never sends it; a no-cors text/plain one is sent
        # but refused like the form.
        site.pages["/fetch"] = _fetch_page(example.url)
        attacker.goto(site.url("/fetch"))
        attacker.wait_for_function("window.results !== undefined")
        results = attacker.evaluate("window.results")
        assert results == {
            "logout-json": "blocked",
            "private-json": "blocked",
            "logout-text": "opaque",
        }
        sent_posts = [(m, u, s) for m, u, s in responses if m == "POST"]
        assert ("POST", example.url + "/private", 200) not in sent_posts
        no_cors = [s for m, u, s in sent_posts if u == example.url + "/auth/logout"]
        assert no_cors and all(s in (400, 403) for s in no_cors)

    # The victim is still logged in, with the same session.
    victim.reload()
    expect_logged_in_as_admin(victim)
    assert session_cookie(context, example) == cookie
    victim.click("#action-button")
    expect(victim.locator("#action-result")).to_contain_text('"posted":true')
    assert victim.script_errors == []


def test_a_cross_site_form_carries_no_session_cookie(context: Any, example: Example) -> None:
    """``localhost`` is another site than ``127.0.0.1``: SameSite=Lax keeps the cookie home."""
    victim = open_login_page(context, example)
    log_in(victim, ADMIN_EMAIL, ADMIN_PASSWORD)
    expect_logged_in_as_admin(victim)

    with other_origin() as site:
        site.pages["/app"] = auto_submit_form(
            example.url + "/private", "application/x-www-form-urlencoded", {"hello": "world"}
        )
        attacker = context.new_page()
        r = post_from(attacker, site.url("/app", host="localhost"), example.url + "/private")
        assert SESSION_COOKIE not in r.request.all_headers().get("cookie", "")
        assert r.status == 401
        assert r.json() == INVALID_CREDENTIALS

    victim.reload()
    expect_logged_in_as_admin(victim)


def _fetch_page(target: str) -> str:
    script = """
const target = __TARGET__;
async function attempt(path, init) {
  try {
    const response = await fetch(target + path, { method: "POST", credentials: "include", ...init });
    return response.type === "opaque" ? "opaque" : String(response.status);
  } catch (error) {
    return "blocked";
  }
}
(async () => {
  const json = { "Content-Type": "application/json" };
  const results = {};
  results["logout-json"] = await attempt("/auth/logout", { headers: json, body: '{"mode":"session"}' });
  results["private-json"] = await attempt("/private", { headers: json, body: "{}" });
  results["logout-text"] = await attempt("/auth/logout", {
    mode: "no-cors", headers: { "Content-Type": "text/plain" }, body: '{"mode":"session"}',
  });
  window.results = results;
})();
""".replace("__TARGET__", json.dumps(target))
    return f"<!doctype html><title>other origin</title><script>{script}</script>"
