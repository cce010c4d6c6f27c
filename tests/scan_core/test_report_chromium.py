"""The HTML report opened in a real browser (headless Chromium, Debian's `chromium`, which
.ci/run installs): its sections are in the rendered page and every picture decodes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scan_core.report import render_html
from tests.scan_core.test_report import LABEL_FREE_SECTIONS, synthetic_inputs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (.ci/run installs "
                                                          "Debian's chromium: apt-get install chromium)")

# After the page has loaded, mark each image with whether the browser decoded it.
# A broken image is added as a control, so the check is known to tell the two apart.
PROBE = """<img id="broken-control" src="data:image/png;base64,AAAA">
<script>
window.addEventListener("load", () => {
  for (const img of document.images) img.dataset.decoded = String(img.complete && img.naturalWidth > 0);
  document.body.dataset.checked = "yes";
});
</script>
</body>"""


def chromium(tmp_path: Path, page: Path, *arguments: str) -> str:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", *arguments,
               page.resolve().as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.parametrize("labeled", [True, False], ids=["labeled", "unlabeled"])
def test_report_sections_and_images_render_in_chromium(tmp_path: Path, labeled: bool) -> None:
    text = render_html(synthetic_inputs(labeled=labeled))
    page = tmp_path / "index.html"
    page.write_text(text.replace("</body>", PROBE), encoding="utf-8")

    dom = chromium(tmp_path, page, "--dump-dom")

    assert 'data-checked="yes"' in dom, "the page's load event never ran"
    expected = {*LABEL_FREE_SECTIONS, "confusion", "purity"} if labeled else set(LABEL_FREE_SECTIONS)
    assert set(re.findall(r'<section id="([a-z]+)">', dom)) == expected
    decoded = re.findall(r'<img (?:(?!>).)*?data-decoded="(true|false)"', dom, flags=re.S)
    images = text.count("<img ")
    assert len(decoded) == images + 1
    assert decoded.count("true") == images, "an inlined image did not decode"
    assert re.search(r'id="broken-control"[^>]*data-decoded="false"', dom)


def test_report_screenshot_is_not_blank(tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    page.write_text(render_html(synthetic_inputs()), encoding="utf-8")
    shot = tmp_path / "shot.png"

    chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1000,1400")

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (1400, 1000)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.01  # text, tables and pictures, not a white page
