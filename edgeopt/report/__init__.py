"""Reports from stored results: self-contained HTML, a Markdown summary for PR comments, JSON for machines."""
from __future__ import annotations

from pathlib import Path

from .data import Gain, ReportData, build_report, load_report, report_from_store, save_run
from .html import render_html
from .markdown import render_markdown

FORMATS = ("html", "md", "json")


def render_json(data: ReportData) -> str:
    return data.model_dump_json(indent=2)


RENDERERS = {"html": render_html, "md": render_markdown, "json": render_json}


def write_reports(data: ReportData, out_dir: Path, formats: tuple[str, ...] = FORMATS,
                  stem: str = "report") -> dict[str, Path]:
    """Write report.<fmt> for each format (atomically: a reader never sees half a file); returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        staging = path.with_suffix(path.suffix + ".tmp")
        staging.write_text(RENDERERS[fmt](data), encoding="utf-8")
        staging.replace(path)
        paths[fmt] = path
    return paths


__all__ = ["FORMATS", "Gain", "RENDERERS", "ReportData", "build_report", "load_report", "render_html",
           "render_json", "render_markdown", "report_from_store", "save_run", "write_reports"]
