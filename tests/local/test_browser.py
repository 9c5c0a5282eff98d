"""The embedded default in a real browser: Debian's chromium, driven by Playwright, against the repository's
``jupyterhub -f jupyterhub_config.py``.

Nothing leaves this machine, in two layers: chromium itself resolves no name but localhost, sends everything
not to 127.0.0.1/localhost to a proxy that refuses every connection (IP literals, link-local addresses and
websockets included) and runs none of its background services; and Playwright aborts any page request off
this machine. Every request and websocket a page attempts is recorded, and a test that saw one off this
machine fails (test_nothing_leaves_this_machine shows both layers stop what a page tries).

One hub for the module (per-user accounts when the tests run as root); each test sets up what it needs and
saves a screenshot per step under artifacts/browser/.

Without /usr/bin/chromium the module is skipped, unless $REQUIRE_BROWSER=1 (scripts/test sets it where it
installs chromium): then it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from .helpers import ROOT
from .localhub import start_local_hub

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "artifacts" / "browser"
NOTEBOOK = "week1/01-weather-with-python.ipynb"
EDIT = "# my answer: the windiest day"
LAB_TIMEOUT = 90_000  # ms; a first JupyterLab load on a busy 2-core machine is slow

LOCAL_HOSTS = ("127.0.0.1", "localhost")
REQUIRED = os.environ.get("REQUIRE_BROWSER") == "1"

if not os.access(CHROMIUM, os.X_OK):
    message = (f"no {CHROMIUM}: install Debian's chromium (apt-get install chromium; scripts/test does it as "
               f"root) to run the browser tests")
    if REQUIRED:
        pytest.fail(f"REQUIRE_BROWSER=1 but {message}", pytrace=False)
    pytest.skip(message, allow_module_level=True)
try:
    from playwright import sync_api
except ImportError:  # in the test extras: without it these tests cannot run at all
    if REQUIRED:
        raise
    pytest.skip("playwright is in the test extras", allow_module_level=True)


# -- fixtures ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser-course")
    os.chmod(root, 0o755)
    target = root / "course"
    shutil.copytree(ROOT / "images" / "singleuser" / "course", target)
    return target


@pytest.fixture(scope="module")
def hub(tmp_path_factory, course):
    data_dir = tmp_path_factory.mktemp("browser-data") / "data"
    os.chmod(data_dir.parent, 0o755)
    h = start_local_hub(data_dir, course=course, name="browser")
    # a handout the instructor put in the shared folder earlier
    shared = data_dir / "shared"
    shared.mkdir(exist_ok=True)
    (shared / "handout.md").write_text("# Handout\n\nRead before class.\n")
    yield h
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "hub.log").write_text(h.log())  # the hub's side of every step, next to the screenshots
    h.stop()


@pytest.fixture(scope="module")
def refusing_proxy():
    """host:port of a TCP port bound but never listening: every connection to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield "127.0.0.1:%d" % sock.getsockname()[1]


def chromium_args(proxy: str) -> list[str]:
    """Chromium flags that keep all of its traffic on this machine, pages and the browser's own services."""
    return [
        "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
        # names and addresses: only localhost and 127.0.0.1 resolve (no DNS query ever leaves; IP literals
        # fail too); and everything else goes to a proxy that refuses it. <-loopback> drops Chromium's implicit
        # bypass list, which would let link-local addresses such as 169.254.169.254 go direct; it must come
        # first, the explicit entries after it bypass the proxy for this machine.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
        f"--proxy-server=http://{proxy}", "--proxy-bypass-list=<-loopback>;127.0.0.1;localhost",
        # the browser's background traffic: updates, sync, safe browsing, metrics, prefetching
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--disable-default-apps",
        "--disable-extensions", "--disable-breakpad", "--metrics-recording-only", "--no-pings",
        "--dns-prefetch-disable", "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
    ]


@pytest.fixture(scope="module")
def browser(refusing_proxy):
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=chromium_args(refusing_proxy))
        yield b
        b.close()


def is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("data", "blob", "about") or parsed.hostname in LOCAL_HOSTS


class Offsite(list):
    """Every request or websocket off this machine that a test's pages attempted (each one was aborted)."""

    def route(self, route) -> None:
        if is_local(route.request.url):
            route.continue_()
        else:
            route.abort("blockedbyclient")

    def watch(self, page) -> None:
        page.on("websocket", lambda ws: None if is_local(ws.url) else self.append(ws.url))


@pytest.fixture
def new_page(browser, request):
    """new_page() -> a page in a new context; new_page.offsite lists what its pages tried off this machine, and
    any entry fails the test (after its own assertions) unless the test empties the list."""
    contexts = []
    offsite = Offsite()

    def make():
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        context.route("**/*", offsite.route)
        context.on("request", lambda r: None if is_local(r.url) else offsite.append(r.url))
        context.on("page", offsite.watch)  # every page of the context, popups included
        context.set_default_timeout(30_000)
        contexts.append(context)
        return context.new_page()

    make.offsite = offsite
    yield make
    for context in contexts:
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            for i, page in enumerate(context.pages):
                shot(page, f"FAILED-{request.node.name}-{i}")
        context.close()
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / f"offsite-{request.node.name}.txt").write_text("".join(url + "\n" for url in offsite))
    assert not offsite, f"pages tried to reach other machines: {sorted(set(offsite))}"


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


# -- steps -----------------------------------------------------------------------------------------------------

def log_in(page, hub, user: str) -> None:
    page.goto(hub.url("hub/login"))
    page.fill("#username_input", user)
    page.fill("#password_input", hub.password(user))
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"/hub/(spawn|home)"))


def profile_radios(page) -> dict[str, bool]:
    """slug -> enabled, of every profile radio button on the spawn form."""
    return {r.get_attribute("value"): r.is_enabled() for r in page.locator("input[type=radio]").all()}


def start_from_form(page, hub, user: str, profile: str) -> None:
    if "/hub/spawn" not in page.url:
        page.goto(hub.url(f"hub/spawn/{user}"))
    page.check(f"#profile-item-{profile}")
    page.click("#spawn_form button[type=submit]")
    wait_for_lab(page)


def wait_for_lab(page) -> None:
    page.wait_for_url(re.compile(r"/user/[^/]+/lab"), timeout=LAB_TIMEOUT)
    page.wait_for_selector(".jp-DirListing-item", timeout=LAB_TIMEOUT)
    no_news = page.locator(".jp-toast-button", has_text="No")  # JupyterLab asks about news once; say no
    try:
        no_news.first.click(timeout=5_000)
    except sync_api.TimeoutError:
        pass


def listing(page) -> list[str]:
    """The names JupyterLab's file browser shows now."""
    return page.locator(".jp-DirListing-item .jp-DirListing-itemText").all_inner_texts()


def open_folder(page, path: str) -> list[str]:
    """Go to ``path`` (from the home) in the file browser, as a user does: home, then double-clicks."""
    page.click(".jp-BreadCrumbs-home")
    for name in [p for p in path.split("/") if p]:
        page.locator(".jp-DirListing-item", has_text=name).first.dblclick()
        page.wait_for_selector(f".jp-BreadCrumbs >> text={name}")
    page.wait_for_function("() => !document.querySelector('.jp-DirListing .jp-Spinner')")
    page.wait_for_timeout(300)  # the listing is replaced in one go once its request returns
    return listing(page)


def open_file(page, path: str) -> None:
    folder, _, name = path.rpartition("/")
    open_folder(page, folder)
    page.locator(".jp-DirListing-item", has_text=name).first.dblclick()


def contents(page, method: str, path: str, body: dict | None = None) -> dict:
    """A request to the user's own server's contents API from inside the page, as JupyterLab makes them."""
    return page.evaluate(
        """async ([method, path, body]) => {
            const base = JSON.parse(document.getElementById('jupyter-config-data').textContent).baseUrl;
            const xsrf = (document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || '';
            const r = await fetch(base + 'api/contents/' + path, {
                method, headers: {'Content-Type': 'application/json', 'X-XSRFToken': decodeURIComponent(xsrf)},
                body: body ? JSON.stringify(body) : undefined});
            let json = null;
            try { json = await r.json(); } catch (e) {}
            return {status: r.status, json};
        }""", [method, path, body])


def restart_from_hub_home(page, hub) -> None:
    page.goto(hub.url("hub/home"), wait_until="networkidle")  # the buttons work once home.js has loaded
    page.click("#stop")
    page.wait_for_selector("#start", state="visible", timeout=60_000)
    page.wait_for_function("() => { const stop = document.querySelector('#stop');"
                           "        return !stop || stop.offsetParent === null; }", timeout=60_000)
    page.click("#start")
    page.wait_for_url(re.compile(r"/hub/spawn"), timeout=30_000)


# -- tests -----------------------------------------------------------------------------------------------------

def test_instructor_sees_every_profile_with_the_unavailable_hardware_marked(hub, new_page):
    page = new_page()
    log_in(page, hub, "instructor")
    radios = profile_radios(page)
    assert radios == {"data-engineering": True, "elyra": True, "trainium": False, "inferentia": False,
                      "gpu-timeslice": False, "gpu-mig": False, "gpu": False}
    gpu = page.locator("[data-profile=gpu]")
    assert "Unavailable: needs an NVIDIA GPU" in gpu.inner_text()
    assert gpu.evaluate("e => parseFloat(getComputedStyle(e).opacity)") < 1  # greyed out
    assert "AWS Trainium" in page.locator("[data-profile=trainium]").inner_text()
    shot(page, "01-instructor-spawn-form")


def test_student_sees_only_the_profiles_meant_for_students(hub, new_page):
    page = new_page()
    log_in(page, hub, "student")
    assert profile_radios(page) == {"data-engineering": True, "elyra": True}
    text = page.inner_text("#spawn_form")
    assert "Data Engineering (CPU)" in text and "Elyra (CPU)" in text
    for hidden in ("GPU", "Trainium", "Inferentia", "Not available on this machine"):
        assert hidden not in text
    shot(page, "02-student-spawn-form")


def write_new_text_file(page, folder: str, name: str, text: str) -> None:
    """As a user does it: in ``folder`` of the file browser, a new launcher, Text File, type, save, name it."""
    open_folder(page, folder)
    page.click(".jp-FileBrowser [data-command='launcher:create']")
    page.locator(".jp-Launcher:visible .jp-LauncherCard", has_text="Text File").first.click()
    editor = page.locator(".jp-FileEditor:visible .cm-content")
    editor.wait_for(timeout=LAB_TIMEOUT)
    editor.click()
    page.keyboard.type(text)
    page.keyboard.press("Control+s")
    # JupyterLab asks for a name on the first save of an untitled file
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input[type=text]").fill(name)
    dialog.locator(".jp-mod-accept").click()
    page.wait_for_selector(f".jp-DirListing-item[title*='{name}']", timeout=30_000)


def test_instructor_writes_the_shared_folder(hub, new_page):
    page = new_page()
    log_in(page, hub, "instructor")
    start_from_form(page, hub, "instructor", "data-engineering")
    shot(page, "03-instructor-jupyterlab")
    write_new_text_file(page, "shared", "announcement.md", "Exam on Friday.")
    assert "announcement.md" in open_folder(page, "shared")
    shot(page, "04-instructor-wrote-shared-folder")
    written = hub.data_dir / "shared" / "announcement.md"
    deadline = time.monotonic() + 30
    while not (written.exists() and written.read_text().strip() == "Exam on Friday."):
        assert time.monotonic() < deadline, "the instructor's file never reached the shared folder"
        time.sleep(0.3)


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with the content of its files (None for directories)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else None for p in root.rglob("*")}


def saved_notebook_text(page) -> str:
    return json.dumps(contents(page, "GET", NOTEBOOK)["json"]["content"])


def test_student_course_work_survives_restart_and_course_update_and_shared_is_read_only(hub, new_page, course):
    # what an instructor left in the shared folder, put there by this test (it needs no other test to run)
    shared = hub.data_dir / "shared"
    (shared / "reading-list.md").write_text("# Reading\n\nChapter 1.\n")
    before = tree(shared)
    page = new_page()
    log_in(page, hub, "student")
    start_from_form(page, hub, "student", "data-engineering")
    assert {"week1", "shared", "README.md"} <= set(listing(page)), listing(page)
    assert "01-weather-with-python.ipynb" in open_folder(page, "week1")
    shot(page, "05-student-course-in-file-browser")

    # edit the course notebook in JupyterLab and save it
    open_file(page, NOTEBOOK)
    editor = page.locator(".jp-Notebook .jp-CodeCell .cm-content").first
    editor.wait_for(timeout=LAB_TIMEOUT)
    editor.click()
    page.keyboard.press("Control+End")
    page.keyboard.type("\n" + EDIT)
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while EDIT not in saved_notebook_text(page):
        assert time.monotonic() < deadline, "the edit was not saved"
        time.sleep(0.3)
    shot(page, "06-student-edited-notebook")

    # the shared folder: visible, readable, not writable
    assert {"handout.md", "reading-list.md"} <= set(open_folder(page, "shared"))
    handout = contents(page, "GET", "shared/handout.md")
    assert handout["status"] == 200 and handout["json"]["writable"] is False
    for method, path, body in (
            ("PUT", "shared/handout.md", {"type": "file", "format": "text", "content": "changed"}),
            ("PUT", "shared/mine.md", {"type": "file", "format": "text", "content": "mine"}),
            ("POST", "shared", {"type": "notebook"}),
            ("PATCH", "shared/handout.md", {"path": "handout.md"}),
            ("DELETE", "shared/reading-list.md", None)):
        r = contents(page, method, path, body)
        assert r["status"] == 403, (method, path, r)
        assert "read-only" in r["json"]["message"]
    shot(page, "07-student-shared-folder-read-only")
    assert tree(shared) == before

    # a restart keeps the edit
    restart_from_hub_home(page, hub)
    start_from_form(page, hub, "student", "data-engineering")
    assert EDIT in saved_notebook_text(page)
    shot(page, "08-student-after-restart")

    # a course update adds and changes material, and still keeps the edit
    (course / "week2").mkdir()
    (course / "week2" / "02-more-weather.md").write_text("# Week 2\n\nMore weather.\n")
    original = course / NOTEBOOK
    original.write_text(original.read_text().replace("a month of weather", "a month of weather (updated)"))
    restart_from_hub_home(page, hub)
    start_from_form(page, hub, "student", "data-engineering")
    assert "02-more-weather.md" in open_folder(page, "week2")
    week1 = open_folder(page, "week1")
    # the course's new version of the notebook the student changed is offered beside it, never over it
    offered = [n for n in week1 if n.startswith("01-weather-with-python.") and n != "01-weather-with-python.ipynb"]
    assert len(offered) == 1, week1
    assert "(updated)" in json.dumps(contents(page, "GET", f"week1/{offered[0]}")["json"]["content"])
    shot(page, "09-student-course-update-arrived")
    open_file(page, NOTEBOOK)
    page.wait_for_selector(f".jp-Notebook .jp-CodeCell >> text={EDIT}", timeout=LAB_TIMEOUT)
    page.wait_for_selector(".jp-Notebook .jp-RenderedMarkdown h1", timeout=LAB_TIMEOUT)
    shot(page, "10-student-edit-kept-after-course-update")
    assert EDIT in saved_notebook_text(page)
    assert "Course seeder for student" in hub.log()


# -- the network: nothing leaves this machine ------------------------------------------------------------------

OFFSITE = ["http://example.com/", "https://93.184.215.14/", "http://169.254.169.254/latest/meta-data/"]
OFFSITE_WS = "wss://example.org/socket"

TRY_ALL = """async ([urls, wsUrl]) => {
    const out = {};
    for (const url of urls) {
        try { await fetch(url, {mode: 'no-cors', cache: 'no-store'}); out[url] = 'loaded'; }
        catch (e) { out[url] = 'failed'; }
    }
    out[wsUrl] = await new Promise(done => {
        const ws = new WebSocket(wsUrl);
        ws.onopen = () => { ws.close(); done('open'); };
        ws.onerror = () => done('failed');
    });
    return out;
}"""


def test_nothing_leaves_this_machine(hub, browser, new_page):
    """Both layers stop a page's requests and websockets to names, IP addresses and the cloud metadata
    address: the page's routing (recorded, aborted), and chromium itself when no routing is in place."""
    page = new_page()
    page.goto(hub.url("hub/login"))
    assert page.evaluate(TRY_ALL, [OFFSITE, OFFSITE_WS]) == {url: "failed" for url in [*OFFSITE, OFFSITE_WS]}
    assert sorted(set(new_page.offsite)) == sorted([*OFFSITE, OFFSITE_WS])  # seen, and each one failed
    new_page.offsite.clear()

    bare = browser.new_context()  # no Playwright routing: only chromium's own flags
    try:
        for url in [*OFFSITE, "http://example.org:8080/"]:
            p = bare.new_page()  # one each: a failed navigation's error page would race the next goto
            with pytest.raises(sync_api.Error, match=r"net::ERR_(PROXY_CONNECTION_FAILED|NAME_NOT_RESOLVED)"):
                p.goto(url, timeout=20_000)
            p.close()
        p = bare.new_page()
        p.goto(hub.url("hub/login"))  # while this machine still answers
        p.wait_for_selector("#username_input")
        assert p.evaluate(TRY_ALL, [OFFSITE, OFFSITE_WS]) == {url: "failed" for url in [*OFFSITE, OFFSITE_WS]}
    finally:
        bare.close()
