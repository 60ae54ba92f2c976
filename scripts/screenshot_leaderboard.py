"""Open a leaderboard ``index.html`` in headless Chromium and save a screenshot (PNG).

Usage: ``python scripts/screenshot_leaderboard.py results/digits/index.html [-o OUT.png]
[--size 1400,2000]``. Exits 2 with a message when Chromium is not installed (``apt-get install
chromium``) or the page does not exist; otherwise exits with Chromium's status, and 1 if no
screenshot was written.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--hide-scrollbars")
TIMEOUT_S = 120


def find_browser() -> str | None:
    """The first Chromium-family executable on PATH, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot_command(browser: str, page: Path, out: Path, size: str, profile: Path) -> list[str]:
    return [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
            f"--screenshot={out}", page.resolve().as_uri()]


def take_screenshot(page: Path, out: Path, size: str = "1400,2000") -> int:
    """Render ``page`` to ``out``; returns 0 on success (the PNG exists and is not empty)."""
    browser = find_browser()
    if browser is None:
        print("screenshot_leaderboard: Chromium is not installed (apt-get install chromium).",
              file=sys.stderr)
        return 2
    if not page.is_file():
        print(f"screenshot_leaderboard: no such page: {page}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kdbench-chromium-") as profile:
        completed = subprocess.run(screenshot_command(browser, page, out, size, Path(profile)),
                                   capture_output=True, text=True, timeout=TIMEOUT_S,
                                   check=False)
    if completed.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        print(f"screenshot_leaderboard: Chromium failed (exit {completed.returncode}):\n"
              f"{completed.stderr[-2000:]}", file=sys.stderr)
        return completed.returncode or 1
    print(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path, help="the leaderboard's index.html")
    parser.add_argument("-o", "--out", type=Path, default=None,
                        help="screenshot path (default: screenshot.png next to the page)")
    parser.add_argument("--size", default="1400,2000", help="window size WIDTH,HEIGHT")
    args = parser.parse_args(argv)
    out = args.out or args.page.with_name("screenshot.png")
    return take_screenshot(args.page, out, args.size)


if __name__ == "__main__":
    raise SystemExit(main())
