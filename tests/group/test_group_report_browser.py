"""``group_report.html`` in a real browser: headless Chromium (Debian's ``chromium``
package; ``.ci/run`` installs it when missing) loads the page, every figure must be
decoded (``naturalWidth > 0``) and no error may reach the console."""

import json
import re
import shutil
import subprocess

import pytest
from group_data import write_derivatives

from bidsapp.cli.run import main

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (.ci/run installs Debian's chromium)")
#: collects errors and console.error calls, then checks every image once the page has loaded
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || (e.target && e.target.src))), \
true);
const __consoleError = console.error;
console.error = (...a) => { window.__errors.push(a.join(' ')); __consoleError(...a); };
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0)).map(i => i.alt);
  document.body.setAttribute('data-probe', JSON.stringify({images: imgs.length, bad: bad, \
errors: window.__errors}));
});
</script>"""


def _chromium(tmp_path, *args):
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    write_derivatives(root, n_subjects=6, sites=["A", "B"])
    (root / "g.json").write_text(
        json.dumps(
            {
                "label": {"column": "grade", "positive": "high"},
                "compare": [["cnn_Ktrans", "extendedtofts_Ktrans"]],
            }
        )
    )
    assert (
        main(
            [
                str(root / "bids"),
                str(root / "out"),
                "group",
                "--roi",
                str(root / "rois"),
                "--group-config",
                str(root / "g.json"),
            ]
        )
        == 0
    )
    return root / "out" / "group_report.html"


def test_every_figure_renders_without_console_errors(report, tmp_path):
    text = report.read_text()
    n_figures = text.count('src="data:image/png;base64,')
    for kind in ("distribution", "Bland-Altman", "ROC"):
        assert f'alt="{kind} extendedtofts_Ktrans"' in text
    probed = tmp_path / "probed.html"
    probed.write_text(text.replace("<head>", "<head>" + PROBE, 1))
    run = _chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    match = re.search(r'data-probe="([^"]*)"', run.stdout)
    assert match, f"the page did not finish loading: {run.stderr[-2000:]}"
    result = json.loads(match.group(1).replace("&quot;", '"'))
    assert result == {"images": n_figures, "bad": [], "errors": []} and n_figures >= 12
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line]
    assert console == []


def test_screenshot_is_not_blank(report, tmp_path):
    np = pytest.importorskip("numpy")
    from matplotlib.image import imread

    shot = tmp_path / "report.png"
    _chromium(tmp_path, "--window-size=1200,1600", f"--screenshot={shot}", report.as_uri())
    pixels = imread(str(shot))
    assert pixels.shape[:2] == (1600, 1200) and np.std(pixels[..., :3]) > 0.05
