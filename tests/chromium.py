"""Debian's Chromium, driven by Playwright for Python (never a browser Playwright downloads:
`playwright install` fetches one, which cannot work here). One browser per test session."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def ensure_chromium() -> Path:
    """Install Debian's `chromium` when it is missing (idempotent; needs root and the archive)."""
    if not CHROMIUM.exists() and shutil.which("apt-get"):
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]
        if subprocess.run(install, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
            subprocess.run(install, capture_output=True)
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed and could not be", pytrace=False)
    return CHROMIUM


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Any]:
    """A headless Chromium for the whole session (Playwright's async API, on the session's
    event loop: its sync API would hold a loop of its own, which pytest-asyncio's fixtures
    cannot share); tests open their own contexts."""
    from playwright.async_api import async_playwright

    executable = ensure_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(executable), args=FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


async def watched_page(context: Any) -> tuple[Any, list[str]]:
    """A page whose script errors and CSP refusals (console errors) are collected; a form
    answered 422 (its errors shown next to the fields) is no problem."""
    page = await context.new_page()
    problems: list[str] = []

    def console(message: Any) -> None:
        if message.type == "error" and "status of 422" not in message.text:
            problems.append(message.text)

    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", console)
    return page, problems


def screenshots(page: Any, folder: Path) -> Any:
    count = iter(range(1, 100))

    async def shot(step: str) -> None:
        await page.screenshot(path=str(folder / f"{next(count):02d}-{step}.png"), full_page=True)

    return shot
