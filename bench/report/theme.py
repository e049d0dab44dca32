"""railbench's one Altair theme, and the only place charts turn into Vega-Lite dicts.

The theme is registered with ``enable=False`` and applied only inside ``spec_dict`` (a context manager), so
importing railbench never changes Altair's global theme for a notebook that also uses Altair.
"""

from __future__ import annotations

import altair as alt

from bench.jsondoc import JSONObject

THEME_NAME = "railbench"
VEGA_LITE_MAJOR = 5  # Altair 5 writes Vega-Lite v5, the version of the vendor docs' charts
# Status colours shared by bars and heat maps: a failure is red wherever it appears.
STATUS_COLORS = {"pass": "#4c78a8", "fail": "#e45756", "no target": "#9d9d9d"}
TARGET_COLOR = "#222222"
FONT = "Helvetica Neue, Helvetica, Arial, sans-serif"
# Vega's tableau10 scheme, spelled out (the typed theme accepts a colour list, not a scheme name).
TABLEAU10 = [
    "#4c78a8",
    "#f58518",
    "#e45756",
    "#72b7b2",
    "#54a24b",
    "#eeca3b",
    "#b279a2",
    "#ff9da6",
    "#9d755d",
    "#bab0ac",
]


def theme_config() -> alt.theme.ThemeConfig:
    """Quiet axes, left-aligned titles, the same font everywhere."""
    return alt.theme.ThemeConfig(
        config={
            "font": FONT,
            "view": {"stroke": None},
            "title": {"anchor": "start", "fontSize": 15, "subtitleFontSize": 12, "subtitleColor": "#555555"},
            "axis": {"labelFontSize": 11, "titleFontSize": 12, "gridColor": "#e6e6e6", "domainColor": "#888888"},
            "legend": {"labelFontSize": 11, "titleFontSize": 12},
            "header": {"labelFontSize": 12, "titleFontSize": 12},
            "range": {"category": TABLEAU10},
            "bar": {"color": STATUS_COLORS["pass"]},
            "line": {"strokeWidth": 2},
        }
    )


def register() -> None:
    """Register the theme once (idempotent), without enabling it globally."""
    if THEME_NAME not in alt.theme.names():
        alt.theme.register(THEME_NAME, enable=False)(theme_config)


def spec_dict(chart: alt.TopLevelMixin, *, validate: bool = True) -> JSONObject:
    """The chart as a Vega-Lite dict with railbench's theme merged into its ``config``."""
    register()
    with alt.theme.enable(THEME_NAME):
        return chart.to_dict(validate=validate)


def schema_url() -> str:
    """The ``$schema`` URL the emitted specs declare (Vega-Lite v5.x from Altair 5)."""
    return alt.SCHEMA_URL


def vl_convert_version() -> str:
    """The Vega-Lite version for vl-convert, matching the declared schema (``v5.20.1`` -> ``5.20``)."""
    major, minor = alt.SCHEMA_VERSION.lstrip("v").split(".")[:2]
    return f"{major}.{minor}"
