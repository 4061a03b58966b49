"""Headless Debian chromium for the browser tests: one launch, one skip rule, one network gate."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")


def need_chromium() -> None:
    """Skip the calling test when Debian's chromium is not installed."""
    if not CHROMIUM.is_file():
        pytest.skip(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
        )


@contextmanager
def chromium_page(
    *, allow: Callable[[str], bool] | None = None, **page_options: Any
) -> Iterator[tuple[Any, list[str]]]:
    """A page of a headless chromium (closed on exit) and the URLs it was refused: with
    `allow`, every request whose URL it rejects is aborted, as a firewall would."""
    need_chromium()
    from playwright.sync_api import Route, sync_playwright

    refused: list[str] = []

    def gate(route: Route) -> None:
        if allow is not None and allow(route.request.url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(**page_options)
            if allow is not None:
                page.route("**/*", gate)
            yield page, refused
        finally:
            browser.close()
