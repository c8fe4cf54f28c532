"""Browser test harness: a real ``echodiary serve`` and Debian's Chromium driven by Playwright.

Fixtures:
- ``web_server``: an ``echodiary serve`` subprocess (embedded mode, tiny random models, its own data
  folder, a free port) for the module; ``.url``, ``.cli(*args, token=None)`` runs ``echodiary`` against
  the same data folder, ``.add_member(name, admin=False)`` returns its token and invite link. A test
  module may set ``SERVER_SETTINGS = {"worker_chunk_delay_s": "0.5", ...}`` for its server's environment.
- ``browser_factory(wav_path=None, **context_options)``: a fresh browser context (own cookies and
  storage) of a headless ``/usr/bin/chromium`` with a fake microphone, fed ``wav_path`` when given.
- ``screenshot(page, name)``: saves ``name.png`` under ``$ECHODIARY_SCREENSHOTS`` (default
  ``build/screenshots/``, gitignored) and returns its path.

Tests marked ``@pytest.mark.browser`` are skipped, saying why, only where /usr/bin/chromium is absent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from jobs_fixtures import free_port, tiny_models

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("ECHODIARY_SCREENSHOTS") or REPO / "build" / "screenshots")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    # headless Chromium would otherwise wait for a click before any audio may play
    "--autoplay-policy=no-user-gesture-required",
]
INVITE_LINK = re.compile(r"https?://\S+#\S*invite=\S+")
SERVER_START_S = 120


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing: `apt-get install chromium` (ops/setup does it)")
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(skip)


@dataclass(frozen=True)
class Member:
    name: str
    token: str
    invite_link: str
    admin: bool = False


@dataclass
class WebServer:
    url: str
    data_dir: Path
    models: Path
    env: dict[str, str] = field(repr=False)

    def cli(self, *args: str, token: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        """``echodiary ARGS`` on this server's data folder (as the member of ``token`` when given)."""
        env = dict(self.env)
        if token is not None:
            env["ECHODIARY_API_TOKEN"] = token
        return subprocess.run([sys.executable, "-m", "producer.cli", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=timeout)

    def add_member(self, name: str, admin: bool = False) -> Member:
        made = self.cli("members", "add", name, *(["--admin"] if admin else []))
        assert made.returncode == 0, made.stderr
        link = INVITE_LINK.search(made.stderr)
        assert link, f"no invite link in: {made.stderr}"
        return Member(name, made.stdout.strip(), link.group(0), admin)

    def invite(self, name: str) -> str:
        made = self.cli("members", "invite", name)
        assert made.returncode == 0, made.stderr
        return made.stdout.strip()

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _server_env(data_dir: Path, models: Path, url: str, settings: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHODIARY_")}
    env.update(ECHODIARY_DATA_DIR=str(data_dir), ECHODIARY_MODELS_DIR=str(models), ECHODIARY_DEVICE="cpu",
               ECHODIARY_THREADS="1", ECHODIARY_API_URL=url,
               # the diary tests make their voice by the one-clip upload (enrollment is the wizard's)
               ECHODIARY_ALLOW_LEGACY_VOICES="true",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.update({f"ECHODIARY_{name.upper()}": value for name, value in settings.items()})
    return env


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"echodiary serve exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"echodiary serve did not answer /healthz within {SERVER_START_S} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def web_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models(tmp_path_factory)


@pytest.fixture(scope="module")
def web_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
               web_models: Path) -> Iterator[WebServer]:
    data_dir = tmp_path_factory.mktemp("web-data")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _server_env(data_dir, web_models, url, getattr(request.module, "SERVER_SETTINGS", {}))
    log = data_dir / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "producer.cli", "serve", "--host", "127.0.0.1",
                                    "--port", str(port)], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(url, process, log)
        yield WebServer(url, data_dir, web_models, env)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def _playwright() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture
def browser_factory(_playwright) -> Iterator[Callable[..., object]]:
    """``browser_factory(wav_path=None, **context_options)`` -> a fresh Playwright BrowserContext."""
    browsers: dict[str | None, object] = {}
    contexts: list[object] = []

    def launch(wav_path: str | Path | None = None, **context_options: object) -> object:
        key = str(wav_path) if wav_path else None
        if key not in browsers:
            args = CHROMIUM_ARGS + ([f"--use-file-for-fake-audio-capture={key}"] if key else [])
            browsers[key] = _playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        context_options.setdefault("locale", "en-US")
        context = browsers[key].new_context(**context_options)
        context.set_default_timeout(20_000)
        contexts.append(context)
        return context

    yield launch
    for context in contexts:
        context.close()
    for browser in browsers.values():
        browser.close()


@pytest.fixture
def screenshot() -> Callable[[object, str], Path]:
    def save(page: object, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
