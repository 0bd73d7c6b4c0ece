# -*- test-case-name: tests.test_web_page -*-
"""
Real-browser test support: Debian's Chromium driven by Selenium (in a
thread, so the reactor keeps serving the child processes meanwhile), a
C{twistd chat --web} server (L{tests.support.processes.ChatServer}); the
frame client of these tests is L{tests.support.frameclient.FrameClient}.

    server, web = yield start_web_server(self, "--psk", DEMO_KEY, "--encrypted")
    browser = yield Browser.start(self)
    yield browser.call(browser.open, web)

The browser is never downloaded: without C{/usr/bin/chromium} and
C{/usr/bin/chromedriver} (apt-get install chromium chromium-driver) or the
C{selenium} package (pip install -e ".[test]"), the tests fail saying so.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import Any, Callable, List, Optional, Tuple

from twisted.internet import defer, threads

from .processes import DEMO_KEY, REPO, ChatServer

CHROMIUM = os.environ.get("CHATSVC_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHATSVC_CHROMEDRIVER", "/usr/bin/chromedriver")
DOCS = os.path.join(REPO, "docs")
WAIT = 20.0

# The demo key as its file writes it: what a user pastes in the page.
with open(DEMO_KEY) as _f:
    DEMO_KEY_LINE = [line.strip() for line in _f if line.strip() and not line.startswith("#")][0]

CHROME_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-extensions", "--disable-default-apps",
]


def _missing() -> Optional[str]:
    problems = []
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            problems.append(f"{path} is missing (apt-get install {package})")
    try:
        import selenium  # noqa: F401
    except ImportError:
        problems.append('the selenium package is missing (pip install -e ".[test]")')
    return "; ".join(problems) or None


class Browser:
    """One headless Chromium with a fresh profile; every call runs in a thread."""

    def __init__(self, driver: Any, profile: str) -> None:
        self.driver = driver
        self.profile = profile

    @classmethod
    @defer.inlineCallbacks
    def start(cls, test: Any, width: int = 1200, height: int = 800, flags: Tuple[str, ...] = ()):
        problem = _missing()
        if problem:
            raise AssertionError(f"the browser tests need a real browser: {problem}")
        os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download
        profile = tempfile.mkdtemp(prefix="chatsvc-chromium-")
        driver = yield threads.deferToThread(cls._launch, profile, width, height, flags)
        browser = cls(driver, profile)
        test.addCleanup(browser.quit)
        return browser

    @staticmethod
    def _launch(profile: str, width: int, height: int, flags: Tuple[str, ...]) -> Any:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in CHROME_FLAGS + list(flags) + [f"--user-data-dir={profile}",
                                                  f"--window-size={width},{height}"]:
            options.add_argument(flag)
        return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)

    def quit(self) -> defer.Deferred:
        def stop() -> None:
            try:
                self.driver.quit()
            finally:
                shutil.rmtree(self.profile, ignore_errors=True)

        return threads.deferToThread(stop)

    def call(self, function: Callable[..., Any], *args: Any) -> defer.Deferred:
        """Run a blocking Selenium step in a thread."""
        return threads.deferToThread(function, *args)

    # -- blocking steps (run them through call) ------------------------------

    def open(self, url: str) -> None:
        self.driver.get(url)
        self.wait_until(lambda d: d.execute_script("return document.body.dataset.state") == "login",
                   "the page to load")

    def login(self, name: str, key: str = "", click_remember: bool = False) -> None:
        """Fill in the form and connect; C{click_remember} toggles "remember the key"."""
        from selenium.webdriver.common.by import By

        d = self.driver
        d.find_element(By.ID, "name").clear()
        d.find_element(By.ID, "name").send_keys(name)
        key_box = d.find_element(By.ID, "key")
        if key_box.is_enabled():  # disabled where the page cannot encrypt
            key_box.clear()
            if key:
                key_box.send_keys(key)
        if click_remember:
            d.find_element(By.ID, "remember").click()
        d.find_element(By.ID, "connect").click()

    def wait_open(self) -> None:
        self.wait_until(lambda d: d.execute_script("return document.body.dataset.state") == "open",
                   "the chat to open")

    def type(self, line: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        box = self.driver.find_element(By.ID, "input")
        box.send_keys(line + Keys.ENTER)

    def text_of(self, element_id: str) -> str:
        return self.driver.execute_script(
            "return document.getElementById(arguments[0]).innerText", element_id)

    def wait_text(self, element_id: str, pattern: str, what: str = "") -> str:
        regex = re.compile(pattern)
        found: List[str] = []

        def ready(d: Any) -> bool:
            text = self.text_of(element_id)
            if regex.search(text):
                found.append(text)
                return True
            return False

        self.wait_until(ready, what or f"{pattern!r} in #{element_id}",
                   lambda: self.text_of(element_id))
        return found[0]

    def click_view(self, key: str) -> None:
        self.driver.execute_script(
            "for (const li of document.querySelectorAll('#view-list li'))"
            " if (li.dataset.key === arguments[0]) li.click();", key)

    def screenshot(self, name: str, width: int, height: int) -> str:
        self.driver.set_window_size(width, height)
        path = os.path.join(DOCS, name)
        self.driver.save_screenshot(path)
        return path

    def run_async(self, script: str, *args: Any) -> Any:
        self.driver.set_script_timeout(WAIT)
        return self.driver.execute_async_script(script, *args)

    def wait_until(self, ready: Callable[[Any], bool], what: str,
              show: Optional[Callable[[], str]] = None) -> None:
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            WebDriverWait(self.driver, WAIT, poll_frequency=0.05).until(ready)
        except TimeoutException:
            seen = show() if show else self.text_of("lines") + "\n" + self.text_of("login-error")
            raise AssertionError(f"timed out after {WAIT} s waiting for {what}; the page shows:\n{seen}")


@defer.inlineCallbacks
def start_web_server(test: Any, *options: str, port: int = 0, web_port: int = 0,
                     web: Optional[str] = None, url: str = "http://127.0.0.1:{port}/"):
    """
    A C{twistd chat} child with C{--web} (by default C{tcp:WEB_PORT} on
    127.0.0.1; C{web} is another endpoint with C{{port}} for the port);
    fires with (server, page URL).
    """
    endpoint = (web or "tcp:{port}:interface=127.0.0.1").format(port=web_port)
    server = yield ChatServer.start(test, "--web", endpoint, *options, port=port)
    started = re.compile(r"ChatSite(?: \(TLS\))? starting on (\d+)")
    line = yield server.wait_for(started)
    found = int(started.search(line).group(1))
    return server, url.format(port=found)


def non_loopback_address() -> str:
    """An IPv4 address of this machine that is not loopback (no packet is sent)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.254", 9))
            address = s.getsockname()[0]
        except OSError:
            address = "127.0.0.1"
    if address.startswith("127."):
        raise AssertionError("this test needs an IPv4 address other than loopback")
    return address


def self_signed(directory: str, address: str) -> Tuple[str, str]:
    """A throwaway key and certificate for C{address}; their paths."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    key_path, cert_path = os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


class RecordingWebSocket:
    """
    A client of the WebSocket (Twisted's own WebSocket client protocol):
    says C{hello} as C{name} once connected and records every message.

    @ivar received: the messages, decoded.
    @ivar welcomed: fires once the C{history} after C{welcome} has come.
    @ivar closed: fires when the connection ends.
    """

    transport: Any = None

    def __init__(self, name: str) -> None:
        self.name = name
        self.received: List[Any] = []
        self.welcomed: defer.Deferred = defer.Deferred()
        self.closed: defer.Deferred = defer.Deferred()

    def negotiationStarted(self, transport: Any) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        import json

        self.transport.sendBytesMessage(json.dumps({"type": "hello", "name": self.name}).encode())

    def bytesMessageReceived(self, data: bytes) -> None:
        import json

        self.received.append(json.loads(data))
        if self.received[-1]["type"] == "history" and not self.welcomed.called:
            self.welcomed.callback(None)

    def textMessageReceived(self, text: str) -> None:
        pass

    def pongReceived(self, payload: bytes) -> None:
        pass

    def connectionLost(self, reason: Any) -> None:
        if not self.closed.called:
            self.closed.callback(None)


def connect_websocket(url: str, name: str) -> defer.Deferred:
    """A L{RecordingWebSocket} connected to C{url} (C{ws://host:port/ws}), saying hello as C{name}."""
    from twisted.internet import reactor
    from twisted.web.websocket import WebSocketClientEndpoint

    client = RecordingWebSocket(name)

    class _Factory:
        def buildProtocol(self, url: str) -> RecordingWebSocket:
            return client

    endpoint = WebSocketClientEndpoint.new(reactor, url)
    return defer.ensureDeferred(endpoint.connect(_Factory()))
