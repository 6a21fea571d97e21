"""``pyvmalloc map``: one self-contained page, drawn and hovered in a real headless Chromium."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import pyvmalloc as pv
from pyvmalloc.cli.main import main
from pyvmalloc.course.mapping import map_of_ops, ops_arg
from pyvmalloc.course.quiz import QuizConfig
from pyvmalloc.viz.html_map import map_data, render_page

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "vmallocinfo"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _page(arch: str = "x86_64", step: int | None = None) -> str:
    return render_page(map_of_ops(QuizConfig(arch=arch, ram="64M"), ops_arg(None), step))


def test_the_page_is_self_contained_and_every_area_has_its_hover_text() -> None:
    page = _page()
    assert not re.search(r"(src|href)=|https?://(?!www\.w3\.org/2000/svg)", page)   # no network
    tips = re.findall(r'class="area"[^>]*data-tip="([^"]*)"', page)
    assert len(tips) == 7   # the demo's 6 areas (one freed, still unpurged) and a module
    vmalloc = [t for t in tips if t.startswith("vmalloc area")]
    assert vmalloc and all("caller" in t and "pages" in t and "guard page 0x" in t for t in vmalloc)
    assert "unpurged area" in page and "hole 0x" in page and "the module area" in page
    assert "the page-table walk of 0x" in page and "PTE table" in page


def test_a_replay_stops_at_a_step_and_shared_module_ranges_are_said() -> None:
    early = _page("i386", step=1)
    assert "After step 1 of 7: vmalloc(16384);" in early
    assert "modules are loaded in the vmalloc range on this machine" in early and "module area 0x" in early


def test_a_dump_draws_at_its_own_addresses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dump.html"
    name = "arm32-zte-router-mt7615-4.1.25"
    assert main(["map", "--vmallocinfo", str(EXAMPLES / f"{name}.txt"), "--meminfo",
                 str(EXAMPLES / f"{name}.meminfo"), "-o", str(out)]) == 0
    page = out.read_text()
    assert name in page and page.count('class="area"') > 50


def test_a_trace_replays_to_a_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = EXAMPLES.parent / "trace" / "i386-kva.trace"
    pages = []
    for step in ("5", "72"):
        out = tmp_path / f"t{step}.html"
        assert main(["map", "--trace", str(trace), "--arch", "i386", "--step", step, "-o", str(out)]) == 0
        pages.append(out.read_text())
    assert "After vmalloc event 5 of 72 of i386-kva.trace" in pages[0]
    assert pages[0].count('class="area"') < pages[1].count('class="area"')


def test_machine_renders_in_jupyter() -> None:
    m = pv.Machine(arch="arm64", ram="64M")
    a = m.vmalloc(10_000, caller="notebook")
    assert a is not None
    frag = m._repr_html_()
    assert "<svg" in frag and "<script" not in frag and "caller notebook" in frag
    assert "<td>notebook</td><td>16.0 KiB</td><td>3</td>" in frag
    assert f"the page-table walk of {a:#x}" in frag
    assert map_data(m).rows[0].blocks[0].guard == a + 3 * m.PAGE_SIZE


@pytest.mark.parametrize("argv", [["--walk", "zz"], ["--step", "99"], ["--vmallocinfo", "/nonexistent"],
                                  ["-A", "q1"], ["--arch", "vax"], ["--ram", "lots"],
                                  ["--vmallocinfo", "x", "--step", "1"], ["-o", "/nonexistent/dir/x.html"],
                                  ["--trace", "/nonexistent"], ["--trace", "x", "-A", "a4k"]])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["map", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "error" in err


def test_the_page_draws_zooms_and_hovers_in_headless_chromium(tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium when missing)")
    from playwright import sync_api   # in the test extra: missing, the test fails, never skips
    html = tmp_path / "map.html"
    html.write_text(_page())
    shot = tmp_path / "map.png"
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 700})
            page.on("request", lambda r: requests.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(html.as_uri())
            page.screenshot(path=str(shot))
            area = page.locator("#map rect.area").first
            area.hover()
            tip = page.locator("#tip")
            assert tip.is_visible()
            text = tip.inner_text()
            assert text.startswith("vmalloc area 0x") and "caller quiz" in text and "guard page 0x" in text
            box = page.locator("#map").bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + 50, box["y"] + 40)
            page.mouse.wheel(0, -300)
            assert "showing 80" in page.locator("#view").inner_text()
            page.click("#layout")
            assert page.locator("#view").inner_text().startswith("linear layout")
            assert not errors
        finally:
            browser.close()
    assert requests == [html.as_uri()]   # the page asked for nothing but itself
    import matplotlib.image as mpimg
    pixels = (mpimg.imread(str(shot))[:, :, :3] * 255).round().astype(int)
    vmalloc_blue = np.all(pixels == (0x4C, 0x78, 0xA8), axis=-1).sum()
    walk_box = np.all(pixels == (0xE4, 0xEC, 0xF7), axis=-1).sum()
    assert vmalloc_blue > 500 and walk_box > 500   # the map and the walk diagram are drawn
