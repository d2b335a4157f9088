"""`jupyter nbconvert --to llmops-report NB.ipynb`: the report as an nbconvert exporter.

The other doors (`lo.report`, `%llmops report`, `llmops-nb report`) call `build` directly,
without importing nbconvert; all four render through `build.render`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from nbconvert.exporters import Exporter
from traitlets import Bool, Unicode

from .build import render


class LLMOpsReportExporter(Exporter):
    """`jupyter nbconvert --to llmops-report NB.ipynb` -> NB.report.html."""

    export_from_notebook = "llmops_nb report"
    output_mimetype = "text/html"

    no_code = Bool(False, help="Hide the code cells' source (outputs stay).").tag(config=True)
    project = Unicode(
        "", help="The project to read prompts from (default: the panels' or the current one)."
    ).tag(config=True)

    def _file_extension_default(self) -> str:
        return ".report.html"

    def from_notebook_node(
        self, nb: Any, resources: dict[str, Any] | None = None, **kw: Any
    ) -> tuple[str, dict[str, Any]]:
        nb_copy, resources = super().from_notebook_node(copy.deepcopy(nb), resources, **kw)
        meta = resources.get("metadata") or {}
        notebook = None
        if meta.get("name"):
            folder = Path(meta.get("path") or ".")
            candidate = folder / f"{meta['name']}.ipynb"
            notebook = candidate if candidate.exists() else None
        # nbconvert's --no-input sets TemplateExporter.exclude_input: honour it here too
        hide = self.no_code or bool(self.config.get("TemplateExporter", {}).get("exclude_input"))
        output = render(
            nb_copy,
            notebook=notebook,
            name=meta.get("name"),
            show_code=not hide,
            project=self.project or None,
            notes=resources.pop("llmops_notes", None),
        )
        resources["output_extension"] = self.file_extension
        return output, resources
