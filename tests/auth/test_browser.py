"""One login and logout per provider in a real browser (Debian's chromium through Playwright).

The HTTP-client tests cover the cases; this checks that the pages chain up for a person: the hub's login
sends them to the provider's page, they pick themselves, land on their hub home page, and logging out
leaves them signed out of both.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import unique
from .test_cognito import cognito_claims  # noqa: F401  (importing registers the 'cognito' hub)
from .test_keycloak import keycloak_claims  # noqa: F401  (importing registers the 'keycloak' hub)

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (scripts/test installs it)"),
]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is None or report.failed:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{request.node.name}.png"))
    context.close()


def log_in_and_out(page, env, sub: str, username: str) -> None:
    hub = env.hub
    page.goto(hub.url("hub/oauth_login?next=%2Fhub%2Fhome"))
    # The provider's page: pick the identity.
    page.wait_for_selector("text=Authorize Client")
    page.fill("#subject-input", sub)
    page.click("button:has-text('Authorize')")
    page.wait_for_url(re.compile(re.escape(hub.url("hub/home"))))
    assert username in page.content()

    page.goto(hub.url("hub/logout"))
    # Provider logout, then back to the hub, which shows its login page.
    page.wait_for_url(re.compile(re.escape(hub.url("hub/login"))))
    assert env.provider.logout_requests[-1]["client_id"] == env.client_id
    page.goto(hub.url("hub/home"))
    page.wait_for_url(re.compile(re.escape(hub.url("hub/login"))))


def test_cognito_login_and_logout_in_a_browser(page, cognito):
    name = unique("browser-")
    cognito.provider.set_user(f"sub-{name}", cognito_claims(name, ["students"]))
    log_in_and_out(page, cognito, f"sub-{name}", f"{name}@example.com")
    assert cognito.provider.logout_requests[-1]["style"] == "cognito"


def test_keycloak_login_and_logout_in_a_browser(page, keycloak):
    name = unique("kc-browser-")
    keycloak.provider.set_user(f"kc-{name}", keycloak_claims(name, groups=["/courses/ml/students"]))
    log_in_and_out(page, keycloak, f"kc-{name}", name)
    assert keycloak.provider.logout_requests[-1]["style"] == "keycloak"
