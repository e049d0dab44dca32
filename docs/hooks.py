"""mkdocs hooks: the committed sample report (``reports/sample/``) is part of the site, and so are the scripts
that draw its charts.

The pages link to the sample as ``../reports/sample/...``, the path that works when the Markdown is read in the
repository; in the site the sample sits at ``reports/sample/`` beside the pages, so those links are rewritten
to it and checked like any other (``strict: true``).

The charts need Vega, Vega-Lite and vega-embed in the browser. The site ships them, so that it draws its charts
offline (a CDN left them as raw JSON): the bundle report.html carries, which vl-convert builds from the copies in
its own wheel (``bench.report.bundle``, cached), written into the site as one script beside its licence. All
three are BSD-3-Clause, Copyright (c) 2015 University of Washington Interactive Data Lab, and vl-convert is
BSD-3-Clause too; the licence file the site ships says so in full, as the licences ask.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

REPO = Path(__file__).resolve().parent.parent
SAMPLE = "reports/sample"
VEGA_SCRIPT = "assets/javascripts/vega-vega-lite-vega-embed.js"
"""One script that defines ``vega``, ``vegaLite`` and ``vegaEmbed``; mkdocs-charts-plugin checks that
``extra_javascript`` names each library, and this one name does."""
VEGA_LICENSE = "assets/javascripts/vega-LICENSE.txt"

_BSD3 = """\
Redistribution and use in source and binary forms, with or without modification, are permitted provided that
the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this list of conditions and the
   following disclaimer.
2. Redistributions in binary form must reproduce the above copyright notice, this list of conditions and the
   following disclaimer in the documentation and/or other materials provided with the distribution.
3. Neither the name of the copyright holder nor the names of its contributors may be used to endorse or
   promote products derived from this software without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS OR IMPLIED
WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A
PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY
DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO,
PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR
OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH
DAMAGE.
"""


def _vega_files(config: Any) -> list[File]:
    import importlib.metadata

    import vl_convert

    from bench.report.bundle import vega_bundle
    from bench.report.theme import vl_convert_version

    versions = (
        f"Vega {vl_convert.get_vega_version()}, Vega-Lite {vl_convert_version()}, vega-embed "
        f"{vl_convert.get_vega_embed_version()}, bundled by vl-convert "
        f"{importlib.metadata.version('vl-convert-python')}"
    )
    license_text = (
        f"The script {Path(VEGA_SCRIPT).name} holds {versions}.\n\n"
        "Vega, Vega-Lite and vega-embed: BSD-3-Clause.\n"
        "Copyright (c) 2015, University of Washington Interactive Data Lab. All rights reserved.\n\n"
        f"{_BSD3}\n"
        "vl-convert: BSD-3-Clause. Copyright 2023 Jon Mease.\n\n"
        f"{_BSD3}"
    )
    header = f"/*! {versions}. BSD-3-Clause: see {Path(VEGA_LICENSE).name} beside this file. */\n"
    return [
        File.generated(config, VEGA_SCRIPT, content=header + vega_bundle(vl_convert_version())),
        File.generated(config, VEGA_LICENSE, content=license_text),
    ]


def on_files(files: Files, config: Any) -> Files:
    for path in sorted((REPO / SAMPLE).rglob("*")):
        if path.is_file():
            src_uri = path.relative_to(REPO).as_posix()
            files.append(File(src_uri, str(REPO), config["site_dir"], config["use_directory_urls"]))
    for generated in _vega_files(config):
        files.append(generated)
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    if page.file.src_uri == f"{SAMPLE}/report.md":
        # The charts plugin loads a chart's data from the site's root (its data_path), and the sample's charts
        # name theirs as report.md's neighbours (charts/<name>.csv): seen from the root they are in the sample.
        return markdown.replace('"url": "charts/', f'"url": "{SAMPLE}/charts/')
    if "/" in page.file.src_uri:  # only the top-level pages link up to the repository
        return markdown
    return markdown.replace(f"](../{SAMPLE}/", f"]({SAMPLE}/")
