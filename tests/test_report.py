"""`scaling report`: one self-contained HTML page, opened in headless Chromium.

The page is built on the shipped default law, written by the CLI, loaded by Debian's
`chromium` (installed by .ci/run) from a file URL, with no network. The test reads back the
DOM after load (every plotly figure drew its SVG, the page's error hook caught nothing), the
browser's console log (empty) and a screenshot (not blank). A missing chromium is a failure,
not a skip: the report is part of the product.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from scaling.app.cli import main

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--virtual-time-budget=15000",
                  "--enable-logging=stderr", "--v=0"]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is missing: install Debian's `chromium` (apt-get install -y chromium; "
                ".ci/run does it) - the report test needs a real browser")


def _run_chromium(tmp: Path, page: Path, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp / f"chrome-profile-{len(list(tmp.glob('chrome-profile-*')))}"
    cmd = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, timeout=120)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-2000:]}"
    return proc


def _console_lines(stderr: bytes) -> list[str]:
    return [line for line in stderr.decode(errors="replace").splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert main(["report", "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    meta = json.loads(re.search(r"<script type='application/json' id='report-meta'>(.*?)</script>", html, re.S).group(1))
    return out, html, meta


def test_report_holds_every_section(report):
    _, html, meta = report
    kinds = [f["kind"] for f in meta["figures"]]
    assert kinds[0] == "breakdown" and kinds[-1] == "tradeoff" and "gpus" in kinds
    modalities = {f["modality"] for f in meta["figures"] if f["kind"] == "curves"}
    assert modalities == {"video", "image", "audio"}, f"scaling curves missing for some modality; skipped: {meta['skipped']}"
    axes = {a for f in meta["figures"] if f["kind"] == "curves" for a in f["axes"]}
    assert axes == {"resolution", "frames", "steps", "seconds"}
    gpus = next(f for f in meta["figures"] if f["kind"] == "gpus")
    assert len(gpus["gpus"]) >= 10 and gpus["never_measured"], "the GPU comparison marks never-measured GPUs"
    assert gpus["not_fitting"], "Wan2.1 at 480p does not fit some 16 GiB boards: they are shown, not ranked"
    assert "never measured" in html
    assert meta["law"] and meta["law"] in html
    assert "90% interval" in html
    assert meta["skipped"] == [], "every default model of the report can be predicted"


def test_report_shows_the_time_energy_trade_off_over_gpu_counts(report):
    _, html, meta = report
    trade = [f for f in meta["figures"] if f["kind"] == "tradeoff"]
    assert {f["model"] for f in trade} == {"Wan-AI/Wan2.1-T2V-14B-Diffusers", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"}
    assert all(f["gpu_counts"] == [1, 2, 4, 8] for f in trade)
    assert all(any("time per call" in t for t in f["axis_titles"]) and any("energy per output" in t for t in f["axis_titles"])
               for f in trade)
    assert "Several GPUs: time against energy" in html


def test_every_energy_and_time_axis_names_its_unit_and_whether_per_output_or_per_call(report):
    _, html, meta = report
    for fig in meta["figures"]:
        titles = fig["axis_titles"]
        assert titles, f"figure {fig['id']} has untitled axes"
        measured = [t for t in titles if t.startswith(("energy", "time"))]
        assert measured, f"figure {fig['id']}: no energy or time axis among {titles}"
        for t in measured:
            assert re.search(r"\((Wh|J|kWh|s)\b", t), f"{fig['id']}: axis title {t!r} names no unit"
            assert "per output" in t or "per call" in t, f"{fig['id']}: axis title {t!r} says neither per output nor per call"
        if fig["kind"] == "curves":
            from scaling.app.report import AXIS_TITLES

            assert {AXIS_TITLES[a] for a in fig["axes"]} <= set(titles), "every x axis of the curves is titled"
    assert "Energy and CO2e are per output" in html


def test_breakdown_uses_a_readable_log_axis_and_the_gpu_figure_marks_what_does_not_fit():
    import scaling
    from scaling.app.report import breakdown_figure, gpu_figure

    ests = [scaling.predict("sd2.1"), scaling.predict("audioldm2")]
    fig = breakdown_figure(ests)
    for name in ("yaxis", "yaxis2"):
        axis = getattr(fig.layout, name)
        assert axis.type == "log" and axis.dtick == 1 and axis.tickformat == ",~r", "one labelled tick per decade"
    assert all(getattr(fig.layout, n).automargin for n in ("xaxis", "xaxis2")), "x labels are never clipped"
    assert fig.layout.barmode == "group", "components side by side on the log axis, not a linear stack"
    roles = {t.name for t in fig.data if t.type == "bar"}
    assert {"text_encoder", "denoiser", "decoder", "vocoder"} <= roles
    frame = scaling.compare("flux-dev", gpus=["t4", "h100"]).to_frame()
    names = {t.name for t in gpu_figure(frame).data}
    assert "does not fit in memory (not ranked)" in names, "a GPU the pipeline does not fit is shown apart"


def test_gpu_figure_tells_offload_from_does_not_fit():
    import scaling
    from scaling.app.report_figures import gpu_figure

    frame = scaling.compare("sdxl", gpus=["t4", "h100"], precision="fp32").to_frame()
    t4 = frame.set_index("gpu").loc["t4"]
    assert t4["memory_fit"] == "with model CPU offload" and not t4["fits_memory"], "sdxl fp32 fits a T4 only offloaded"
    traces = {t.name: t for t in gpu_figure(frame).data if t.name}
    assert "needs CPU offload (not ranked)" in traces and "does not fit in memory (not ranked)" not in traces
    hover = traces["needs CPU offload (not ranked)"].hovertext[0]
    assert "needs CPU offload" in hover and "resident" in hover and "does not fit" not in hover


def test_report_is_self_contained(report):
    _, html, _ = report
    assert not re.search(r"<script[^>]+src=", html), "every script is inlined (the page opens offline)"
    assert not re.search(r"<link[^>]+href=", html)
    assert "Plotly" in html and len(html) > 1_000_000, "plotly.js is inlined"


@pytest.mark.slow  # starts chromium (which .ci/run installs)
def test_report_renders_in_headless_chromium(report, tmp_path):
    page, _, meta = report
    proc = _run_chromium(tmp_path, page, "--dump-dom")
    dom = proc.stdout.decode(errors="replace")
    status = re.search(r"<div id=\"report-status\"[^>]*>", dom)
    assert status, "the page's status node is missing from the DOM"
    attrs = dict(re.findall(r'(data-[a-z]+)="([^"]*)"', status.group(0)))
    assert attrs.get("data-ready") == "1", f"the page never finished loading: {attrs}"
    errors = json.loads(attrs["data-errors"].replace("&quot;", '"').replace("&amp;", "&"))
    assert errors == [], f"the page logged errors: {errors}"
    n = len(meta["figures"])
    assert int(attrs["data-charts"]) == n, f"{attrs['data-charts']} of {n} plotly figures drew their SVG"
    for fid in (f["id"] for f in meta["figures"]):
        m = re.search(rf'<div id="{re.escape(fid)}" class="[^"]*js-plotly-plot[^"]*"', dom)
        assert m, f"figure {fid} was not rendered by plotly"
    assert dom.count('class="main-svg"') >= n
    assert len(re.findall(r'class="point"', dom)) > 20, "the bar charts drew no bars"
    assert _console_lines(proc.stderr) == [], "the browser console logged messages"


@pytest.mark.slow  # starts chromium (which .ci/run installs)
def test_report_screenshot_is_not_blank(report, tmp_path):
    page, _, _ = report
    shot = tmp_path / "report.png"
    proc = _run_chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1400,3000")
    assert shot.is_file(), proc.stderr.decode(errors="replace")[-2000:]
    width, height, pixels = _read_png(shot)
    assert (width, height) == (1400, 3000)
    non_white = sum(1 for p in pixels if min(p[:3]) < 235)
    colours = {tuple(c // 32 for c in p[:3]) for p in pixels}
    assert non_white / len(pixels) > 0.05, f"the screenshot is nearly blank ({non_white} non-white pixels)"
    assert len(colours) >= 12, f"the screenshot has only {len(colours)} colour classes: no charts drawn"
    assert _console_lines(proc.stderr) == []


def test_report_cli_errors_and_lazy_plotly(tmp_path, capsys):
    assert main(["report", "--model", "no-such-model", "--out", str(tmp_path / "x.html")]) == 2
    assert "no-such-model" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()
    code = ("import sys; from scaling.app.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('plotly', 'torch', 'diffusers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"building the CLI imported {out.stdout.strip()}"


def test_report_for_named_models(tmp_path):
    from scaling.app.report import build_report

    rep = build_report(["sd2.1"], gpus=["a100", "h100", "l4"], precision="fp16", intensity=50.0)
    assert [f["kind"] for f in rep.meta["figures"]] == ["breakdown", "curves", "gpus"]
    assert rep.meta["figures"][2]["gpus"] and len(rep.meta["figures"][2]["gpus"]) == 3
    assert rep.skipped == []


# -- a small PNG reader (Pillow when installed, else zlib and the PNG filters by hand) ---------

def _read_png(path: Path):
    """(width, height, list of RGB(A) tuples), sampled every 4th pixel of every 4th row."""
    try:
        from PIL import Image
    except ImportError:
        return _read_png_zlib(path)
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        px = im.load()
        return w, h, [px[x, y] for y in range(0, h, 4) for x in range(0, w, 4)]


def _read_png_zlib(path: Path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, bytearray(), None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    w, h, depth, ctype, _, _, interlace = header
    assert depth == 8 and ctype in (2, 6) and interlace == 0, f"unsupported PNG layout {header}"
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(bytes(idat))
    stride = w * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(h):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(line)
        prev = line
    pixels = [tuple(rows[y][x * bpp:(x + 1) * bpp]) for y in range(0, h, 4) for x in range(0, w, 4)]
    return w, h, pixels
