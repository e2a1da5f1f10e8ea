"""`index.html` and `README.md` from one `Page` with jinja2 templates (templates/)."""
from __future__ import annotations

from pathlib import Path

import jinja2

from pipeline_lib.io import atomic_path
from pipeline_lib.reporting.report import Page

TEMPLATES = Path(__file__).with_name("templates")
PAGES = {"index.html": "index.html.j2", "README.md": "README.md.j2"}


def _md_cell(text) -> str:
    """A Markdown table cell: pipes escaped, line breaks as <br>."""
    return str(text).replace("|", "\\|").replace("\n", "<br>")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             autoescape=jinja2.select_autoescape(["html.j2"]), trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters["md_cell"] = _md_cell
    return env


def write_pages(page: Page, out: Path) -> None:
    env = environment()
    for name, template in PAGES.items():
        with atomic_path(out / name) as tmp:
            tmp.write_text(env.get_template(template).render(page=page))
