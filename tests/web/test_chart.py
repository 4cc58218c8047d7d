"""The 24 h chart (web.chart), pure: the SVG it draws for points, a band and a window, read back with an
XML parser: the band, the line and its gaps, the red marks on readings out of range (as the rules count
them), the hour labels in clinic time, the text alternative, and the size a slow link must carry."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from web.chart import HEIGHT, LEFT, RIGHT, TOP, WIDTH, Band, Point, chart_svg, summarize

NS = {"s": "http://www.w3.org/2000/svg"}
END = 1_795_633_920.0  # 2026-11-26 03:12 clinic time
START = END - 86400
FRIDGE = Band(2.0, 8.0)


def _day(celsius_at: dict[int, float] | None = None, skip: range = range(0)) -> list[Point]:
    """144 ten-minute buckets at 5.0 °C (min 4.8, max 5.2), bucket i at ``celsius_at[i]`` instead."""
    out = []
    for i in range(144):
        if i in skip:
            continue
        c = (celsius_at or {}).get(i, 5.0)
        out.append(Point(START + 300 + i * 600, c, c - 0.2 if c == 5.0 else c, c + 0.2 if c == 5.0 else c))
    return out


def _svg(points: list[Point], band: Band | None = FRIDGE, title: str = "fridge") -> ET.Element:
    return ET.fromstring(chart_svg(points, band, START, END, title=title))


def _marks(root: ET.Element) -> list[tuple[float, float]]:
    path = root.find("s:path[@class='out']", NS)
    if path is None:
        return []
    return [(float(x), float(y)) for x, y in re.findall(r"M([\d.]+) ([\d.]+)h0", path.get("d", ""))]


def _y_of(root: ET.Element, celsius: float) -> float:
    """The y of ``celsius`` from the chart's own grid labels (two of them give the scale)."""
    labels = [
        (float(t.text.replace("\u2212", "-")), float(t.get("y", "0")))
        for t in root.iterfind(".//s:text", NS)
        if t.text and ":" not in t.text
    ]
    (c0, y0), (c1, y1) = labels[0], labels[-1]
    return y0 + (celsius - c0) / (c1 - c0) * (y1 - y0)


def test_the_band_the_line_and_a_title_for_screen_readers():
    root = _svg(_day(), title="疫苗冷藏冰箱 1 过去 24 小时")
    assert root.get("role") == "img"
    title = root.find("s:title", NS)
    assert title is not None and title.text == "疫苗冷藏冰箱 1 过去 24 小时"
    assert root.get("aria-labelledby") == title.get("id")
    band = root.find("s:rect[@class='band']", NS)
    assert band is not None
    top, height = float(band.get("y", "0")), float(band.get("height", "0"))
    assert top == pytest.approx(_y_of(root, 8.0), abs=0.2)
    assert top + height == pytest.approx(_y_of(root, 2.0), abs=0.2)
    line = root.find("s:path[@class='line']", NS)
    assert line is not None and line.get("d", "").count("M") == 1  # one unbroken line
    assert line.get("d", "").count("L") == 143
    assert _marks(root) == []  # all in range: no red


def test_readings_out_of_range_are_red_as_the_rules_count_them():
    # 8.0 is in range (the rules: strictly above); 8.1 and 9.5 above; 1.9 below
    root = _svg(_day({10: 8.0, 20: 8.1, 21: 9.5, 100: 1.9}))
    marks = _marks(root)
    assert len(marks) == 3
    xs = [x for x, _ in marks]
    assert xs == sorted(xs)
    width = WIDTH - LEFT - RIGHT
    assert xs[0] == pytest.approx(LEFT + (20 * 600 + 300) / 86400 * width, abs=0.1)
    assert marks[1][1] == pytest.approx(_y_of(root, 9.5), abs=0.2)  # drawn at the reading
    assert marks[2][1] == pytest.approx(_y_of(root, 1.9), abs=0.2)
    assert summarize(_day({10: 8.0, 20: 8.1, 21: 9.5, 100: 1.9}), FRIDGE).out == 3


def test_a_bucket_whose_peak_is_out_is_red_even_if_its_mean_is_in():
    p = Point(START + 3600, 7.5, 7.0, 8.6)  # a door opened: the mean stays in range
    root = _svg([p])
    ((_, y),) = _marks(root)
    assert y == pytest.approx(_y_of(root, 8.6), abs=0.2)


def test_the_scale_takes_in_an_excursion_far_out():
    root = _svg(_day({50: 25.0}))
    ((_, y),) = _marks(root)
    assert TOP <= y <= HEIGHT  # on the chart, not off its top


def test_a_gap_in_the_readings_breaks_the_line():
    root = _svg(_day(skip=range(60, 80)))  # 200 min without readings
    line = root.find("s:path[@class='line']", NS)
    assert line is not None and line.get("d", "").count("M") == 2


def test_hour_labels_in_clinic_time():
    root = _svg(_day())
    labels = {t.text: float(t.get("x", "0")) for t in root.iterfind(".//s:text", NS) if ":" in (t.text or "")}
    assert set(labels) == {"06:00", "12:00", "18:00", "00:00"}
    width = WIDTH - LEFT - RIGHT
    # the window starts at 03:12 the day before: 00:00 comes 20 h 48 min later
    assert labels["00:00"] == pytest.approx(LEFT + (20 * 60 + 48) / 1440 * width, abs=0.1)
    assert labels["06:00"] < labels["12:00"] < labels["18:00"] < labels["00:00"]


def test_a_freezer_band_below_zero_and_no_band():
    freezer = [Point(START + 300 + i * 600, -18.0, -18.5, -17.5) for i in range(144)]
    root = _svg(freezer, Band(-25.0, -15.0))
    assert _marks(root) == []
    assert any(t.text == "\u221220" for t in root.iterfind(".//s:text", NS))  # a real minus sign
    root = _svg(_day({5: 30.0}), band=None)  # a waste store: no band, nothing is "out"
    assert root.find("s:rect[@class='band']", NS) is None and _marks(root) == []


def test_the_title_is_escaped():
    svg = chart_svg(_day(), FRIDGE, START, END, title='<script>alert("x")</script> & co')
    assert "<script>" not in svg
    assert ET.fromstring(svg).find("s:title", NS).text == '<script>alert("x")</script> & co'  # type: ignore[union-attr]


def test_a_day_of_readings_is_a_few_kb():
    svg = chart_svg(_day({i: 9.0 for i in range(30, 90)}), FRIDGE, START, END, title="x")
    assert len(svg.encode()) < 6000


def test_no_points_and_a_bad_window():
    root = _svg([])
    assert root.find("s:path[@class='line']", NS) is None and _marks(root) == []
    with pytest.raises(ValueError):
        chart_svg([], FRIDGE, END, START, title="x")
