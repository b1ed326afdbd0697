"""End-to-end suite of browser mode in a real Chromium (Debian's, driven by Playwright).

Run by scripts/browser-tests.sh, which starts the app; this file starts its own
small servers (the "evil" pages and a recording upstream for the proxy).

Host names (all on 127.0.0.1):
  app.localhost      the BFF and its demo page
  sub.app.localhost  a same-site sibling (less trusted)
  evil.test          a cross-site attacker (--host-resolver-rules maps *.test)

Why app.localhost and not app.test: the session cookie is `__Host-Http-bff`
(Secure, a prefix). Chromium keeps a `__Host-` cookie over plain http only on
loopback names (127.0.0.1, localhost, *.localhost); with
--unsafely-treat-insecure-origin-as-secure=http://app.test:PORT the page is a
secure context and plain Secure cookies are kept, but the prefixed one is
silently dropped (checked with Chromium 156). `*.localhost` keeps the real
cookie, and `app.localhost` / `sub.app.localhost` are same-site (no public
suffix), so the sibling case stays real.

Every test raises on failure; the script exits non-zero if any failed.
"""

import argparse
import base64
import faulthandler
import http.server
import json
import os
import re
import sys
import threading
import time
import traceback

from playwright.sync_api import expect, sync_playwright

COOKIE = "__Host-Http-bff"
# A cookie value: the session tag (8 characters) and 256 bits, base64url.
COOKIE_VALUE_LEN = 8 + 43
JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.")
TOKEN_FIELD = re.compile(r'"(access_token|refresh_token|id_token)"')

args = None
APP = ""  # http://app.localhost:PORT


# --- helper servers -------------------------------------------------------------------------

class Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass


class EvilHandler(Quiet):
    """Serves /forge: auto-submits a form POST to logout-all and fetches /api/v1/me with credentials."""

    def do_GET(self):
        if not self.path.startswith("/forge"):
            self.send_response(404)
            self.end_headers()
            return
        page = f"""<!doctype html><html><body>
<form id="f" method="POST" action="{APP}/bff/logout-all" target="sink">
  <input name="x" value="1"></form>
<iframe name="sink"></iframe>
<pre id="result">pending</pre>
<script>
window.fetchResult = fetch("{APP}/api/v1/me", {{credentials: "include"}})
  .then(r => r.text().then(t => "read:" + r.status + ":" + t))
  .catch(e => "blocked:" + e);
window.fetchResult.then(v => document.getElementById("result").textContent = v);
document.getElementById("f").submit();
</script></body></html>"""
        body = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


UPSTREAM_SEEN = []


class UpstreamHandler(Quiet):
    """Records what reached it; answers JSON and tries to set a cookie."""

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        UPSTREAM_SEEN.append({"method": self.command, "path": self.path,
                              "headers": {k.lower(): v for k, v in self.headers.items()}})
        if self.path == "/base/redirect":
            # Into itself, by its own (internal) address.
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{args.upstream_port}/base/next")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/base/slow":
            time.sleep(3)
        body = json.dumps({"upstream": "echo", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "upstream_cookie=leak; Path=/")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer


def serve(handler, port):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --- helpers ---------------------------------------------------------------------------------

class Recorder:
    """Keeps every response of a page, to scan the bodies for tokens."""

    def __init__(self, page):
        self.responses = []
        self.scanned = 0
        self.finished = []
        page.on("response", lambda r: self.responses.append(r))
        # Only a finished request's body can be read (body() waits for the end otherwise).
        page.on("requestfinished", lambda r: self.finished.append(r))

    def scan(self):
        """Scans the responses not scanned yet. Call it before a logout: after the logout's
        Clear-Site-Data, Chromium no longer answers for earlier bodies (body() hangs)."""
        scanned = 0
        new, self.scanned = self.finished[self.scanned:], len(self.finished)
        for request in new:
            response = request.response()
            if response is None:
                continue
            if response.status in (204, 304) or 300 <= response.status < 400:
                continue
            try:
                body = response.body().decode("utf-8", "replace")
            except Exception as error:  # an evicted or aborted body
                if response.request.resource_type in ("fetch", "xhr", "document"):
                    raise AssertionError(f"could not read the body of {response.url}: {error}")
                continue
            scanned += 1
            assert not TOKEN_FIELD.search(body), f"a token field in {response.url}: {body[:300]}"
            assert not JWT.search(body), f"a JWT in {response.url}: {body[:300]}"
            for name, value in response.headers.items():
                assert not JWT.search(value), f"a JWT in header {name} of {response.url}"
        return scanned


def session_cookies(context):
    return [c for c in context.cookies(APP) if c["name"] == COOKIE]


def who_am_i(page):
    """GET /bff/user from the app's own origin, as the demo does."""
    return page.evaluate(
        """async () => { const r = await fetch('/bff/user', {headers: {'X-CSRF': '1'}});
                         return {status: r.status, body: await r.text()}; }""")


def login_through_demo(page):
    page.goto(APP + "/")
    page.wait_for_selector("#login", state="visible")
    page.fill("#login input[name=identifier]", "customer@example.com")
    page.fill("#login input[name=password]", args.password)
    page.click("#login button[type=submit]")
    page.wait_for_selector("#signed-in", state="visible", timeout=15000)
    # Locators, not wait_for_function: the demo's policy has no 'unsafe-eval'.
    expect(page.locator("#who")).not_to_be_empty()


def new_context(browser):
    return browser.new_context(ignore_https_errors=False)


# --- tests -----------------------------------------------------------------------------------

def test_demo_flow(browser):
    """Login, who am I, dashboard, logout through the demo; no token anywhere; a screenshot."""
    context = new_context(browser)
    page = context.new_page()
    recorder = Recorder(page)
    login_through_demo(page)

    who = page.text_content("#who")
    assert "customer" in who.lower() or "@" in who, f"#who shows {who!r}"
    cookies = session_cookies(context)
    assert len(cookies) == 1, f"the session cookie is not set: {context.cookies()}"
    cookie = cookies[0]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict", cookie
    assert cookie["path"] == "/" and cookie["domain"] == "app.localhost", cookie
    assert len(cookie["value"]) == COOKIE_VALUE_LEN, cookie
    assert COOKIE not in page.evaluate("document.cookie"), "the session cookie is readable by script"

    os.makedirs(args.out, exist_ok=True)
    shot = os.path.join(args.out, "demo-after-login.png")
    page.screenshot(path=shot, full_page=True)
    assert os.path.getsize(shot) > 1000, "empty screenshot"

    page.click("#dashboard")
    expect(page.locator("#output")).to_contain_text('"meta"', timeout=20000)
    dashboard = json.loads(page.text_content("#output"))
    assert "meta" in dashboard, dashboard

    scanned = recorder.scan()
    page.click("#logout")
    page.wait_for_selector("#signed-out", state="visible")
    after = who_am_i(page)
    assert after["status"] == 401, f"/bff/user after logout: {after}"
    assert not session_cookies(context), f"cookie kept after logout: {context.cookies()}"
    assert scanned >= 5, f"only {scanned} responses recorded"
    context.close()
    return f"{scanned} responses scanned, screenshot {shot}"


def forge_from(browser, origin, expect_cookie_sent):
    context = new_context(browser)
    page = context.new_page()
    login_through_demo(page)
    before = who_am_i(page)
    assert before["status"] == 200, before
    session_before = json.loads(before["body"])["session"]["id"]
    cookie_before = session_cookies(context)[0]["value"]

    evil = context.new_page()
    seen = []
    evil.on("response", lambda r: seen.append((r.url, r.status, r.request.headers)))
    evil.goto(f"{origin}/forge")
    fetch_result = evil.evaluate("window.fetchResult")
    # The form's POST lands in the iframe; wait for its answer.
    deadline = time.time() + 10
    while time.time() < deadline and not any("/bff/logout-all" in u for u, _, _ in seen):
        evil.wait_for_timeout(100)
    forged = [(u, s) for u, s, _ in seen if "/bff/logout-all" in u]
    assert forged, f"the forged POST was not sent: {seen}"
    assert all(s in (401, 403) for _, s in forged), f"the forged POST was not refused: {forged}"
    assert fetch_result.startswith("blocked:"), f"the cross-origin fetch was readable: {fetch_result}"
    me = [(u, s) for u, s, _ in seen if "/api/v1/me" in u]
    assert all(s in (401, 403) for _, s in me), f"the forged fetch was answered: {me}"
    # Chromium reports no response for a CORS-failed fetch; the app's log says what it answered.
    if args.app_log:
        evil.wait_for_timeout(200)
        answered = re.findall(r'route="/api/v1/me".*status=(\d+)',
                              open(args.app_log, encoding="utf-8", errors="replace").read())
        assert all(code in ("401", "403") for code in answered), f"/api/v1/me answered {answered}"
        me = me or [("log", ",".join(sorted(set(answered))) or "not reached")]

    # Nothing changed: same session, same cookie.
    after = who_am_i(page)
    assert after["status"] == 200, f"the session was ended from {origin}: {after}"
    assert json.loads(after["body"])["session"]["id"] == session_before
    assert session_cookies(context)[0]["value"] == cookie_before
    context.close()
    return f"logout-all {forged[0][1]}, me {me[0][1] if me else 'not answered'}, fetch {fetch_result[:40]}"


def test_cross_site(browser):
    """A page on evil.test forging a form POST and a credentialed fetch: refused, nothing changed."""
    return forge_from(browser, f"http://evil.test:{args.evil_port}", expect_cookie_sent=False)


def test_same_site_sibling(browser):
    """The same from sub.app.localhost (same-site, so SameSite=Strict does not stop it)."""
    return forge_from(browser, f"http://sub.app.localhost:{args.evil_port}", expect_cookie_sent=True)


def test_cookie_tossing(browser):
    """The sibling cannot set (toss) a session cookie for app.localhost from script."""
    context = new_context(browser)
    page = context.new_page()
    login_through_demo(page)
    mine = session_cookies(context)[0]["value"]
    sibling = context.new_page()
    sibling.goto(f"http://sub.app.localhost:{args.evil_port}/forge-none")
    tossed = "B" * COOKIE_VALUE_LEN
    for attempt in [f"{COOKIE}={tossed}; Path=/; Secure; Domain=app.localhost",
                    f"{COOKIE}={tossed}; Path=/; Secure",
                    f"__Host-bff={tossed}; Path=/; Secure; Domain=app.localhost"]:
        sibling.evaluate("(c) => { document.cookie = c; }", attempt)
    values = [c["value"] for c in context.cookies(APP)]
    assert tossed not in values, f"a tossed cookie reaches app.localhost: {context.cookies()}"
    assert [c["value"] for c in session_cookies(context)] == [mine], context.cookies()
    assert who_am_i(page)["status"] == 200
    context.close()
    return "no tossed cookie reaches the app"


def test_fixation(browser):
    """A cookie planted before login is not the one after login."""
    context = new_context(browser)
    planted = "A" * COOKIE_VALUE_LEN
    page = context.new_page()
    # Chromium refuses a `__Host-` cookie over http through the protocol (add_cookies), but
    # keeps one from a response of a loopback origin: plant it with a routed answer, as an
    # attacker would with a response they control.
    page.route(APP + "/plant", lambda route: route.fulfill(
        status=200, content_type="text/plain", body="planted",
        headers={"Set-Cookie": f"{COOKIE}={planted}; Path=/; Secure; HttpOnly; SameSite=Strict"}))
    page.goto(APP + "/plant")
    assert [c["value"] for c in session_cookies(context)] == [planted], context.cookies()
    login_through_demo(page)
    values = [c["value"] for c in session_cookies(context)]
    assert len(values) == 1 and values[0] != planted and len(values[0]) == COOKIE_VALUE_LEN, values
    assert who_am_i(page)["status"] == 200
    context.close()
    return "planted cookie replaced"


def test_proxy(browser):
    """The demo's proxied call: the upstream sees a minted token for it, nothing of the browser's."""
    context = new_context(browser)
    page = context.new_page()
    recorder = Recorder(page)
    login_through_demo(page)
    UPSTREAM_SEEN.clear()
    page.fill("#proxy input[name=path]", "/bff/api/echo/x?q=1")
    page.click("#proxy button[type=submit]")
    expect(page.locator("#output")).to_contain_text("HTTP", timeout=15000)
    output = page.text_content("#output")
    assert output.startswith("HTTP 200"), output
    assert len(UPSTREAM_SEEN) == 1, UPSTREAM_SEEN
    seen = UPSTREAM_SEEN[0]
    assert seen["path"] == "/base/x?q=1", seen
    headers = seen["headers"]
    auth = headers.get("authorization", "")
    assert auth.startswith("Bearer "), headers
    payload = auth.split()[1].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert aud == ["echo"], claims
    assert claims["exp"] - claims["iat"] <= 60, claims
    for name in ("cookie", "x-csrf", "sec-fetch-site", "origin", "x-forwarded-for"):
        assert name not in headers, f"{name} reached the upstream: {headers}"

    proxied = [r for r in recorder.responses if "/bff/api/echo/" in r.url]
    assert proxied and all("set-cookie" not in r.all_headers() for r in proxied), \
        [r.all_headers() for r in proxied]
    assert not [c for c in context.cookies() if c["name"] == "upstream_cookie"], context.cookies()

    # Traversal and encoded separators never reach the upstream.
    UPSTREAM_SEEN.clear()
    for path in ["/bff/api/echo/..%2F..%2Fetc", "/bff/api/echo/a%2Fb", "/bff/api/echo/a%5Cb",
                 "/bff/api/echo/%252e%252e/x", "/bff/api/nope/x"]:
        status = page.evaluate(
            "async (p) => (await fetch(p, {headers: {'X-CSRF': '1'}})).status", path)
        assert status in (400, 404), f"{path}: {status}"
    assert not UPSTREAM_SEEN, f"reached the upstream: {UPSTREAM_SEEN}"

    # A redirect comes back unfollowed; the one into the upstream points back
    # through the proxy, so a following browser gets there with a new token.
    manual = page.evaluate("""async () => {
        const r = await fetch('/bff/api/echo/redirect', {headers: {'X-CSRF': '1'}, redirect: 'manual'});
        return r.type; }""")
    assert manual == "opaqueredirect", manual
    assert [s["path"] for s in UPSTREAM_SEEN] == ["/base/redirect"], UPSTREAM_SEEN
    UPSTREAM_SEEN.clear()
    followed = page.evaluate("""async () => {
        const r = await fetch('/bff/api/echo/redirect', {headers: {'X-CSRF': '1'}});
        return [r.status, new URL(r.url).pathname]; }""")
    assert followed == [200, "/bff/api/echo/next"], followed
    assert [s["path"] for s in UPSTREAM_SEEN] == ["/base/redirect", "/base/next"], UPSTREAM_SEEN
    # Slower than BFF_PROXY_TIMEOUT: 504; nothing listening: 502.
    for path, expected in [("/bff/api/echo/slow", [504, "gateway_timeout"]),
                           ("/bff/api/gone/x", [502, "bad_gateway"])]:
        answer = page.evaluate("""async (p) => {
            const r = await fetch(p, {headers: {'X-CSRF': '1'}});
            return [r.status, (await r.json()).code]; }""", path)
        assert answer == expected, f"{path}: {answer}"
    recorder.scan()
    context.close()
    return f"aud={aud[0]}, token lifetime {claims['exp'] - claims['iat']} s; redirect, 504, 502"


def test_app_log():
    """No token in the app's log."""
    if not args.app_log:
        return "skipped (no --app-log)"
    text = open(args.app_log, encoding="utf-8", errors="replace").read()
    hit = JWT.search(text)
    assert not hit, f"a JWT in the app's log: ...{text[max(0, hit.start() - 200):hit.end() + 40]}"
    assert "panicked" not in text, "the app panicked"
    return f"{len(text)} bytes scanned"


def main():
    global args, APP
    parser = argparse.ArgumentParser()
    parser.add_argument("--app-port", type=int, required=True)
    parser.add_argument("--evil-port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--app-log")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    faulthandler.dump_traceback_later(150, exit=True)  # a hang fails loudly, with its stack
    APP = f"http://app.localhost:{args.app_port}"
    serve(EvilHandler, args.evil_port)
    serve(UpstreamHandler, args.upstream_port)

    failures = 0
    started = time.time()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=[
            "--host-resolver-rules=MAP *.test 127.0.0.1",
            "--no-sandbox",
        ])
        print(f"chromium {browser.version}")
        tests = [test_demo_flow, test_cross_site, test_same_site_sibling, test_cookie_tossing,
                 test_fixation, test_proxy]
        for test in tests:
            t0 = time.time()
            try:
                note = test(browser)
                print(f"ok    {test.__name__} ({time.time() - t0:.1f}s): {note}")
            except Exception:
                failures += 1
                print(f"FAIL  {test.__name__} ({time.time() - t0:.1f}s)")
                traceback.print_exc()
        browser.close()
    try:
        print(f"ok    test_app_log: {test_app_log()}")
    except Exception:
        failures += 1
        print("FAIL  test_app_log")
        traceback.print_exc()
    print(f"{failures} failed, {time.time() - started:.1f}s")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
