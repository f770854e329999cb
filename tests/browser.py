"""Snakemake's HTML report opened in headless Chromium (Debian's `chromium`), as a reader's browser shows it.

The report is a single-page JavaScript app: its text exists only after its scripts ran. A copy of the report gets
two scripts of ours: one first in <head>, which records every uncaught error, unhandled rejection and
console.error; one last in <body>, which after loading shows the view the URL's query names (`view=table` or
`view=plot` with the item's `path`, through the app's own `app.setView`, as a click on the item does), then writes
what it sees (the app's visible text, the shown element's size, whether an image decoded, the errors) into a
hidden <pre id="fmtbench-probe"> that --dump-dom returns."""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlencode

PROBE = """<script>window.__fmtbenchErrors = [];
window.addEventListener('error', function (e) { window.__fmtbenchErrors.push('error: ' + e.message); });
window.addEventListener('unhandledrejection', function (e) { window.__fmtbenchErrors.push('rejection: ' + e.reason); });
(function () { var original = console.error; console.error = function () {
  window.__fmtbenchErrors.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
  original.apply(console, arguments); }; })();
</script>"""
DRIVER = """<script>
window.addEventListener('load', function () { setTimeout(function () {
  var params = new URLSearchParams(location.search), view = params.get('view'), path = params.get('path');
  function done(seen) {
    var app_element = document.querySelector('#app');
    seen.text = app_element ? app_element.innerText : null;
    seen.errors = window.__fmtbenchErrors;
    var out = document.createElement('pre');
    out.id = 'fmtbench-probe'; out.style.display = 'none'; out.textContent = JSON.stringify(seen);
    document.body.appendChild(out);
  }
  if (!view) { done({}); return; }
  if (!results[path]) { done({missing: path}); return; }
  app.setView({content: view === 'plot' ? 'img' : 'html', contentPath: results[path].data_uri, resultPath: path});
  setTimeout(function () {
    var shown = Array.prototype.slice.call(document.querySelectorAll(view === 'plot' ? '#app img' : '#app iframe'));
    var element = shown.filter(function (el) { return el.src === results[path].data_uri; })[0];
    var box = element && element.getBoundingClientRect();
    done({shown: shown.length > 0, shows_item: !!element,
          natural_width: element ? element.naturalWidth || null : null, complete: element ? !!element.complete : null,
          box: box ? [box.x, box.y, box.width, box.height] : null});
  }, 1500);
}, 1000); });
</script>"""
# Console lines Chromium logs for every page of this report that are no script error.
HARMLESS = ("cdn.tailwindcss.com should not be used in production",)
WINDOW = (1400, 1000)


def chromium() -> str | None:
    return next((path for name in ("chromium", "chromium-browser", "google-chrome")
                 if (path := shutil.which(name))), None)


def instrumented(report: Path, directory: Path) -> Path:
    """A copy of the report with the probe and the driver in it."""
    text = report.read_text(encoding="utf-8")
    text = text.replace("<head>", "<head>" + PROBE, 1)
    end = text.rindex("</body>")
    copy = directory / "probed-report.html"
    copy.write_text(text[:end] + DRIVER + text[end:], encoding="utf-8")
    return copy


def _run(page: str, mode: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="fmtbench-chromium-") as profile:
        return subprocess.run(
            [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=10000", f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--user-data-dir={profile}",
             "--hide-scrollbars", mode, page],
            capture_output=True, text=True, timeout=180)


def console_messages(stderr: str) -> list[str]:
    """What the page wrote to its console (Chromium logs it as CONSOLE lines), less the known harmless notes."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line and not any(h in line for h in HARMLESS)]


def open_view(copy: Path, screenshot: Path | None = None, **query) -> dict:
    """The probe's record of one view (front page without `query`), with the console messages, and a screenshot
    of it where asked."""
    page = copy.as_uri() + (("?" + urlencode(query)) if query else "")
    dumped = _run(page, "--dump-dom")
    found = re.search(r'<pre id="fmtbench-probe"[^>]*>(.*?)</pre>', dumped.stdout, re.S)
    seen = json.loads(html.unescape(found.group(1))) if found else {"probe": "missing: the scripts did not run"}
    seen["console"] = console_messages(dumped.stderr)
    seen["returncode"] = dumped.returncode
    if screenshot is not None:
        shot = _run(page, f"--screenshot={screenshot}")
        seen["console"] += console_messages(shot.stderr)
    return seen


def dark_pixels(screenshot: Path, box) -> int:
    """Pixels darker than mid-grey inside `box` (x, y, width, height in CSS pixels) of the screenshot: text."""
    from PIL import Image
    x, y, width, height = (int(v) for v in box)
    with Image.open(screenshot) as image:
        region = image.convert("L").crop((x, y, min(x + width, image.width), min(y + height, image.height)))
        return sum(region.point(lambda value: 255 if value < 128 else 0).histogram()[255:])
