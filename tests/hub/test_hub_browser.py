"""The hub's pages in a real browser (Debian's headless chromium): explore, search, filters, a
package page with its README and run command, keyboard and no-JavaScript use, light and dark
contrast, and hostile READMEs that must stay inert: nothing runs, nothing loads from elsewhere.

Screenshots are saved to build/test-artifacts/hub/ for people to look at.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.hub.browser import (
    browser,
    console_errors,
    network_log,
    requests_made,
    require_browser,
    screenshot,
)
from tests.hub.conftest import hub_serve
from tests.hub.helpers import generate_key, package_config, publish
from tests.registryd import start_registry

pytestmark = pytest.mark.registry

README = """# opensnoop

Trace `open()` syscalls: which process opened which file.

## Build and run

```sh
ebpm run localhost:5000/tools/opensnoop -- --pid 1234
```

| flag | meaning |
| --- | --- |
| `--pid` | one process |
"""

HOSTILE: dict[str, str] = {
    "raw-script": "<script>window.__pwned='script'</script>\n\nplain text after a script\n",
    "event-handlers": (
        '<img src=x onerror="window.__pwned=\'onerror\'">\n\n'
        '<p onmouseover="window.__pwned=1" onclick="window.__pwned=1">hover me</p>\n\n'
        '<details open ontoggle="window.__pwned=\'ontoggle\'"><summary>s</summary>x</details>\n'
        '<body onload="window.__pwned=\'body\'">\n'),
    "javascript-links": (
        "[click](javascript:window.__pwned='md') "
        "<a href=\"javascript:window.__pwned='a'\">a</a> "
        "<a href=\" jAvAsCrIpT:window.__pwned='b'\">b</a> "
        "<a href=\"java&#x09;script:window.__pwned='c'\">c</a>\n"),
    "data-links": (
        "[d](data:text/html;base64,PHNjcmlwdD53aW5kb3cuX19wd25lZD0xPC9zY3JpcHQ+) "
        "![i](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9J3dpbmRvdy5fX3B3bmVkPTEnLz4=) "
        "<a href=\"data:text/html,<script>window.__pwned=1</script>\">c</a>\n"),
    "svg-script": (
        '<svg xmlns="http://www.w3.org/2000/svg"><script>window.__pwned="svg"</script>'
        '<image href="TRACKER/svg-image"/><a href="javascript:window.__pwned=1"><text>x</text>'
        '</a></svg>\n\n<svg onload="window.__pwned=\'svgonload\'"/>\n\n'
        '<math><mtext><table><mglyph><style><img src=x onerror="window.__pwned=\'mxss\'">'
        '</style></mglyph></table></mtext></math>\n'),
    "other-origins": (
        "![pixel](TRACKER/pixel.gif)\n\n<img src=\"TRACKER/img.gif\">\n\n"
        "<link rel=stylesheet href=\"TRACKER/style.css\">\n"
        "<style>@import url(TRACKER/import.css); body{background:url(TRACKER/bg.png)}</style>\n\n"
        "<iframe src=\"TRACKER/frame\"></iframe>\n\n"
        "<video src=\"TRACKER/video\" autoplay></video>\n"
        "<object data=\"TRACKER/object\"></object>\n\n"
        "<meta http-equiv=\"refresh\" content=\"0;url=TRACKER/refresh\">\n\n"
        "<form action=\"TRACKER/form\"><button>go</button></form>\n\n<base href=\"TRACKER/\">\n\n"
        "[a link to another origin](TRACKER/link)\n\n"
        "<p style=\"background:url(TRACKER/inline-style)\">styled</p>\n"),
}
HOSTILE_DESCRIPTION = "<script>window.__pwned='desc'</script><img src=x onerror=alert(1)> & co"


class _Tracker(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        _Tracker.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Hub:
    url: str
    registry: str
    tracker: str
    tracker_hits: list[str]
    env: dict[str, str]
    pages: dict[str, str] = field(default_factory=dict)

    def page(self, repository: str) -> str:
        return f"{self.url}/p/{self.registry.replace(':', '_')}/{repository}/index.html"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    require_browser()
    tmp = tmp_path_factory.mktemp("hub-browser")
    env = dict(os.environ, EBPM_HOME=str(tmp / "home"), EBPM_CONFIG=str(tmp / "config"),
               EBPM_SYSTEM_CONFIG=str(tmp / "system"), EBPM_DATA=str(tmp / "data"),
               DOCKER_CONFIG=str(tmp / "docker"), EBPM_HUB_SECRET="browser-secret")
    for var in ("EBPM_OFFLINE", "EBPM_REGISTRY", "EBPM_CA_FILE", "EBPM_INSECURE_REGISTRIES"):
        env.pop(var, None)
    tracker = ThreadingHTTPServer(("127.0.0.1", 0), _Tracker)
    threading.Thread(target=tracker.serve_forever, daemon=True).start()
    tracker_url = f"http://127.0.0.1:{tracker.server_address[1]}"
    reg = start_registry()
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key in ("EBPM_HOME", "EBPM_CONFIG", "EBPM_SYSTEM_CONFIG", "DOCKER_CONFIG"):
                mp.setenv(key, env[key])
            import ebpm.access

            ebpm.access._clients.clear()
            generate_key("hub", f"{reg.host}/tools/**")
            publish(reg.host, "tools/opensnoop", package_config(
                "opensnoop", "1.0.0", description="Trace open() syscalls"),
                readme=README, sign_key="hub")
            publish(reg.host, "tools/opensnoop", package_config(
                "opensnoop", "1.1.0", description="Trace open() syscalls"),
                readme=README, sign_key="hub")
            publish(reg.host, "net/tcpconnect", package_config(
                "tcpconnect", description="Trace TCP active connections", license="MIT",
                programs=(("tcp_v4", "tracepoint/sock/inet_sock_set_state", "tracepoint",
                           "sock/inet_sock_set_state"),),
                dependencies={"opensnoop": {"ref": f"{reg.host}/tools/opensnoop",
                                            "version": "^1.0"}}),
                readme="# tcpconnect\n\nConnections.\n")
            publish(reg.host, "net/xdpdrop", package_config(
                "xdpdrop", description=HOSTILE_DESCRIPTION, license="MIT",
                programs=(("drop", "xdp", "xdp", ""),)), readme="drops\n")
            for name, text in HOSTILE.items():
                publish(reg.host, f"hostile/{name}", package_config(
                    name, description=f"hostile README: {name}"),
                    readme=text.replace("TRACKER", tracker_url))
        subprocess.run([sys.executable, "-m", "ebpm", "hub", "refresh", reg.host], env=env,
                       check=True, capture_output=True, timeout=120)
        with hub_serve("--port", "0", "--no-refresh", env=env) as served:
            yield Hub(served.url, reg.host, tracker_url, _Tracker.hits, env)
    finally:
        reg.stop()
        tracker.shutdown()
        tracker.server_close()


def _contrast_failures(driver: Any) -> list[str]:
    """Text whose contrast against its background is below WCAG AA (4.5:1)."""
    return driver.execute_script("""
      function rgb(c) { var m = c.match(/[\\d.]+/g).map(Number); return m; }
      function lum(c) { return 0.2126*ch(c[0]) + 0.7152*ch(c[1]) + 0.0722*ch(c[2]); }
      function ch(v) { v /= 255; return v <= 0.03928 ? v/12.92 : Math.pow((v+0.055)/1.055, 2.4); }
      function bg(el) {
        for (; el; el = el.parentElement) {
          var c = rgb(getComputedStyle(el).backgroundColor);
          if (c.length < 4 || c[3] > 0) return c;
        }
        return [255, 255, 255];
      }
      var bad = [];
      var text = "h1,h2,h3,p,a,li,label,td,th,dt,dd,code,button,option";
      document.querySelectorAll(text).forEach(function (el) {
        if (!el.offsetParent && el.tagName !== "OPTION") return;
        var fg = rgb(getComputedStyle(el).color), b = bg(el);
        var l1 = lum(fg), l2 = lum(b);
        var ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
        if (ratio < 4.5) bad.push(el.tagName + "." + el.className + " " + ratio.toFixed(2)
                                  + " " + el.textContent.slice(0, 30));
      });
      return bad;
    """)


def _offsite(hub: Hub, urls: list[str]) -> list[str]:
    """Requests that left the site."""
    return [u for u in urls if not u.startswith(hub.url + "/")]


def test_explore_search_filters_and_open_a_package(hub: Hub) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    with browser() as driver:
        driver.get(hub.url + "/")
        cards = driver.find_elements(By.CSS_SELECTOR, "#packages > li")
        names = [c.find_element(By.CSS_SELECTOR, "h2").text for c in cards]
        assert {"opensnoop", "tcpconnect", "xdpdrop", "raw-script"} <= set(names)
        assert driver.find_element(By.ID, "count").text == f"{len(cards)} packages"
        assert driver.find_element(By.TAG_NAME, "header").get_attribute("role") == "banner"
        assert driver.find_element(By.TAG_NAME, "main") and driver.find_element(By.TAG_NAME,
                                                                                "footer")
        screenshot(driver, "explore")

        # keyboard: "/" focuses the search field; typing filters at once
        driver.find_element(By.TAG_NAME, "body").send_keys("/")
        search = driver.switch_to.active_element
        assert search.get_attribute("id") == "q"
        search.send_keys("tcp")
        visible = [c.find_element(By.CSS_SELECTOR, "h2").text
                   for c in driver.find_elements(By.CSS_SELECTOR, "#packages > li")
                   if c.is_displayed()]
        assert visible == ["tcpconnect"]
        assert driver.find_element(By.ID, "count").text == f"1 of {len(cards)} packages"
        screenshot(driver, "explore-search-tcp", full_page=False)
        search.clear()
        search.send_keys("tracepoint:sock")
        assert [c.find_element(By.CSS_SELECTOR, "h2").text
                for c in driver.find_elements(By.CSS_SELECTOR, "#packages > li")
                if c.is_displayed()] == ["tcpconnect"]
        search.send_keys(Keys.CONTROL, "a", Keys.BACKSPACE)

        # filters: program type, signed only, license; then nothing at all
        Select(driver.find_element(By.ID, "type")).select_by_value("xdp")
        assert [c.find_element(By.CSS_SELECTOR, "h2").text
                for c in driver.find_elements(By.CSS_SELECTOR, "#packages > li")
                if c.is_displayed()] == ["xdpdrop"]
        Select(driver.find_element(By.ID, "type")).select_by_value("")
        driver.find_element(By.ID, "signed").click()
        assert [c.find_element(By.CSS_SELECTOR, "h2").text
                for c in driver.find_elements(By.CSS_SELECTOR, "#packages > li")
                if c.is_displayed()] == ["opensnoop"]
        driver.find_element(By.ID, "signed").click()
        Select(driver.find_element(By.ID, "license")).select_by_value("MIT")
        assert sorted(c.find_element(By.CSS_SELECTOR, "h2").text
                      for c in driver.find_elements(By.CSS_SELECTOR, "#packages > li")
                      if c.is_displayed()) == ["tcpconnect", "xdpdrop"]
        driver.find_element(By.ID, "q").send_keys("no-such-package")
        assert driver.find_element(By.ID, "nomatch").is_displayed()
        Select(driver.find_element(By.ID, "license")).select_by_value("")
        driver.find_element(By.ID, "q").clear()
        driver.find_element(By.ID, "q").send_keys("opensnoop")

        # open the package with the keyboard
        link = driver.find_element(By.LINK_TEXT, "opensnoop")
        link.send_keys(Keys.ENTER)
        assert driver.current_url == hub.page("tools/opensnoop")
        assert driver.find_element(By.TAG_NAME, "h1").text == "opensnoop"
        assert _offsite(hub, requests_made(driver)) == []
        assert console_errors(driver) == []


def test_package_page_readme_run_command_versions_and_signature(hub: Hub) -> None:
    from selenium.webdriver.common.by import By

    with browser() as driver:
        driver.execute_cdp_cmd("Browser.grantPermissions", {
            "origin": hub.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
        driver.get(hub.page("tools/opensnoop"))
        readme = driver.find_element(By.CSS_SELECTOR, ".readme .markdown")
        assert readme.find_element(By.TAG_NAME, "h2").text == "opensnoop"
        assert "which process opened which file" in readme.text
        assert readme.find_element(By.CSS_SELECTOR, "table td code").text == "--pid"
        command = driver.find_element(By.ID, "run-cmd").text
        assert command == f"ebpm run {hub.registry}/tools/opensnoop:1.1.0"
        from selenium.webdriver.support.ui import WebDriverWait

        driver.find_element(By.CSS_SELECTOR, "button.copy").click()
        WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "copied").text)
        assert driver.find_element(By.ID, "copied").text == f"Copied: {command}"
        assert driver.execute_async_script(
            "navigator.clipboard.readText().then(arguments[0])") == command
        rows = driver.find_elements(By.CSS_SELECTOR, "table.versions tbody tr")
        assert [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows] == ["1.1.0", "1.0.0"]
        assert all("sha256:" in r.text for r in rows)
        facts = driver.find_element(By.CSS_SELECTOR, ".facts").text
        assert "verified" in facts and "hub.pub" in facts and f"{hub.registry}/tools/**" in facts
        assert driver.find_element(By.LINK_TEXT, f"{hub.registry}/net/tcpconnect")  # used by
        assert driver.find_element(By.CSS_SELECTOR, "svg.graph")
        programs = driver.find_element(By.CSS_SELECTOR, "#programs-h + .scroll table").text
        assert "handle_openat" in programs and "syscalls/sys_enter_openat" in programs
        assert _contrast_failures(driver) == []
        screenshot(driver, "package-opensnoop")
        assert _offsite(hub, requests_made(driver)) == []
        assert console_errors(driver) == []

        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
            "features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        assert driver.execute_script(
            "return matchMedia('(prefers-color-scheme: dark)').matches") is True
        assert _contrast_failures(driver) == []
        screenshot(driver, "package-opensnoop-dark")
        driver.get(hub.url + "/")
        assert _contrast_failures(driver) == []
        screenshot(driver, "explore-dark")


def test_small_screen(hub: Hub) -> None:
    from selenium.webdriver.common.by import By

    with browser(width=390, height=844) as driver:
        driver.get(hub.url + "/")
        assert driver.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth")
        screenshot(driver, "explore-phone", full_page=False)
        driver.get(hub.page("tools/opensnoop"))
        assert driver.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth")
        assert driver.find_element(By.ID, "run-cmd").is_displayed()
        screenshot(driver, "package-phone", full_page=False)


def test_without_javascript_the_explore_page_is_a_plain_list(hub: Hub) -> None:
    from selenium.webdriver.common.by import By

    with browser(javascript=False) as driver:
        driver.get(hub.url + "/")
        assert not driver.find_element(By.ID, "filters").is_displayed()
        cards = driver.find_elements(By.CSS_SELECTOR, "#packages > li")
        assert len(cards) == 3 + len(HOSTILE) and all(c.is_displayed() for c in cards)
        screenshot(driver, "explore-no-javascript")
        driver.find_element(By.LINK_TEXT, "tcpconnect").click()
        assert driver.find_element(By.TAG_NAME, "h1").text == "tcpconnect"
        assert not driver.find_element(By.CSS_SELECTOR, "button.copy").is_displayed()
        assert driver.find_element(By.ID, "run-cmd").text.startswith("ebpm run ")


_INERT_CHECK = """
  var found = [];
  var md = document.querySelector(".readme .markdown");
  if (md) md.querySelectorAll("script,style,iframe,img,object,embed,video,audio,svg,math,form,"
      + "input,button,link,meta,base").forEach(function (e) { found.push("tag " + e.tagName); });
  document.querySelectorAll("*").forEach(function (e) {
    Array.prototype.forEach.call(e.attributes, function (a) {
      if (/^on/i.test(a.name)) found.push("handler " + e.tagName + " " + a.name);
      if (a.name === "style") found.push("style on " + e.tagName);
      if (/^(href|src|action|data|formaction|xlink:href)$/i.test(a.name)
          && /^\\s*(javascript|data|vbscript):/i.test(a.value)) found.push("url " + a.value);
    });
  });
  document.querySelectorAll(".markdown a").forEach(function (a) {
    if (!/noopener/.test(a.rel) || !/noreferrer/.test(a.rel)) found.push("rel " + a.href);
  });
  return found;
"""


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_readme_is_inert(hub: Hub, name: str) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with browser() as driver:
        driver.get(hub.page(f"hostile/{name}"))
        time.sleep(0.3)  # let anything that would load or run, load or run
        assert driver.execute_script("return window.__pwned") is None
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018
        assert driver.execute_script(_INERT_CHECK) == []
        assert driver.current_url == hub.page(f"hostile/{name}")  # no meta refresh
        assert _offsite(hub, requests_made(driver)) == []
        assert hub.tracker_hits == []
        assert console_errors(driver) == []
        screenshot(driver, f"hostile-{name}")


def test_hostile_description_is_escaped(hub: Hub) -> None:
    from selenium.webdriver.common.by import By

    with browser() as driver:
        driver.get(hub.url + "/")
        card = next(c for c in driver.find_elements(By.CSS_SELECTOR, "#packages > li")
                    if c.find_element(By.CSS_SELECTOR, "h2").text == "xdpdrop")
        assert card.find_element(By.CSS_SELECTOR, ".desc").text == HOSTILE_DESCRIPTION
        driver.get(hub.page("net/xdpdrop"))
        assert driver.find_element(By.CSS_SELECTOR, ".lead").text == HOSTILE_DESCRIPTION
        assert driver.execute_script("return window.__pwned") is None
        assert console_errors(driver) == []


def test_the_content_security_policy_blocks_what_a_sanitiser_might_miss(hub: Hub) -> None:
    # inject into the live page what a sanitiser bug could let through: the CSP refuses it
    with browser() as driver:
        driver.get(hub.page("tools/opensnoop"))
        requests_made(driver)
        driver.execute_script("""
          var md = document.querySelector('.markdown');
          var s = document.createElement('script');
          s.textContent = "window.__pwned = 'inline'";
          md.appendChild(s);
          var i = document.createElement('img');
          i.src = arguments[0] + '/csp-img';
          md.appendChild(i);
          md.insertAdjacentHTML('beforeend',
            '<img src="' + arguments[0] + '/csp-onerror" onerror="window.__pwned=1">');
          var l = document.createElement('link');
          l.rel = 'stylesheet'; l.href = arguments[0] + '/csp.css';
          document.head.appendChild(l);
        """, hub.tracker)
        time.sleep(0.5)
        assert driver.execute_script("return window.__pwned") is None
        assert hub.tracker_hits == []
        errors = console_errors(driver)
        assert errors and all("Content Security Policy" in e for e in errors), "\n".join(errors)
        offsite = [(url, reason) for url, reason in network_log(driver)
                   if not url.startswith(hub.url + "/")]
        assert offsite and all(reason == "csp" for _, reason in offsite), offsite


def test_static_build_opens_from_disk(hub: Hub, tmp_path: Path) -> None:
    # the published site needs no server: open it from the file system
    from selenium.webdriver.common.by import By

    out = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "ebpm", "hub", "build", "-o", str(out)],
                   env=hub.env, check=True, capture_output=True, timeout=120)
    with browser() as driver:
        driver.get((out / "index.html").as_uri())
        assert driver.find_element(By.ID, "filters").is_displayed()  # the script ran
        driver.find_element(By.ID, "q").send_keys("tcp")
        assert driver.find_element(By.ID, "count").text.startswith("1 of ")
        driver.find_element(By.LINK_TEXT, "tcpconnect").click()
        assert driver.find_element(By.TAG_NAME, "h1").text == "tcpconnect"
        assert [u for u in requests_made(driver) if not u.startswith(out.as_uri())] == []
        assert console_errors(driver) == []
