"""mkdocs hooks: the committed sample report (``reports/sample/``) is part of the site.

The pages link to it as ``../reports/sample/...``, the path that works when the Markdown is read in the
repository; in the site the sample sits at ``reports/sample/`` beside the pages, so those links are rewritten
to it and checked like any other (``strict: true``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

REPO = Path(__file__).resolve().parent.parent
SAMPLE = "reports/sample"


def on_files(files: Files, config: Any) -> Files:
    for path in sorted((REPO / SAMPLE).rglob("*")):
        if path.is_file():
            src_uri = path.relative_to(REPO).as_posix()
            files.append(File(src_uri, str(REPO), config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    if "/" in page.file.src_uri:  # only the top-level pages link up to the repository
        return markdown
    return markdown.replace(f"](../{SAMPLE}/", f"]({SAMPLE}/")
