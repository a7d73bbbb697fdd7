"""Where a drift run's Evidently output goes: the snapshot into a local Evidently workspace (one
project per adapter, with drift panels, for ``evidently ui --workspace <dir>``), and the HTML
report into a file of its own, gzipped, that the admin API serves."""

from __future__ import annotations

import gzip
import logging
import os
import tempfile
import threading
import uuid
from pathlib import Path

from evidently.core.report import Snapshot
from evidently.sdk.models import PanelMetric
from evidently.sdk.panels import line_plot_panel, text_panel
from evidently.ui.workspace import Project, Workspace

from monitoring.drift.columns import COLUMNS
from monitoring.drift.models import ColumnKind

logger = logging.getLogger(__name__)
DRIFTED_COLUMNS = "evidently:metric_v2:DriftedColumnsCount"
VALUE_DRIFT = "evidently:metric_v2:ValueDrift"


def _dashboard(project: Project, adapter: str) -> None:
    dashboard = project.dashboard
    dashboard.add_panel(text_panel(title=f"Switchyard drift: {adapter}", description="Recent traffic vs reference"))
    # Line plots only: Evidently 0.7's counter panel shows a last value of 0 (no drift) as "no value".
    share = PanelMetric(legend="share", metric=DRIFTED_COLUMNS, metric_labels={"value_type": "share"})
    count = PanelMetric(legend="count", metric=DRIFTED_COLUMNS, metric_labels={"value_type": "count"})
    dashboard.add_panel(line_plot_panel(title="Share of drifted columns", values=[share], size="half"))
    dashboard.add_panel(line_plot_panel(title="Drifted columns", values=[count], size="half"))

    def drift_scores(kinds: set[ColumnKind]) -> list[PanelMetric]:
        return [
            PanelMetric(legend=c.name, metric=VALUE_DRIFT, metric_labels={"column": c.name})
            for c in COLUMNS
            if c.kind in kinds
        ]

    dashboard.add_panel(
        line_plot_panel(
            title="Text drift (domain classifier ROC AUC; 0.5 is no drift)",
            values=drift_scores({ColumnKind.text}),
        )
    )
    dashboard.add_panel(
        line_plot_panel(
            title="Column drift p-values (low is drift)",
            values=drift_scores({ColumnKind.numerical, ColumnKind.categorical}),
        )
    )


def _checked_name(adapter: str) -> str:
    if not adapter or adapter in {".", ".."} or Path(adapter).name != adapter or "\\" in adapter:
        raise ValueError(f"adapter name {adapter!r} cannot be a folder name")
    return adapter


class DriftWorkspace:
    def __init__(self, workspace_dir: Path, reports_dir: Path) -> None:
        self.workspace_dir = workspace_dir
        self.reports_dir = reports_dir
        self._workspace: Workspace | None = None
        self._projects: dict[str, str] = {}
        self._lock = threading.Lock()  # the local workspace is files without locking of their own

    def _open(self) -> Workspace:
        if self._workspace is None:
            self.workspace_dir.mkdir(parents=True, exist_ok=True)
            self._workspace = Workspace.create(str(self.workspace_dir))
        return self._workspace

    def _project_id(self, workspace: Workspace, adapter: str) -> str:
        if adapter not in self._projects:
            found = workspace.search_project(adapter)
            if found:
                project = found[0]
            else:
                project = workspace.create_project(adapter, description=f"Drift of adapter {adapter}'s traffic")
                _dashboard(project, adapter)
                project.save()
            self._projects[adapter] = str(project.id)
        return self._projects[adapter]

    def add_run(self, adapter: str, snapshot: Snapshot) -> str:
        """Store ``snapshot`` in the adapter's project (created with its dashboard the first
        time); returns the run's id there."""
        with self._lock:
            workspace = self._open()
            reference = workspace.add_run(self._project_id(workspace, adapter), snapshot, include_data=False)
            return str(reference.id)

    def save_report(self, adapter: str, snapshot: Snapshot) -> str:
        """Write the snapshot's HTML report (gzipped, written whole or not at all); returns its
        path relative to the reports folder."""
        relative = f"{_checked_name(adapter)}/{uuid.uuid4().hex}.html.gz"
        target = self.reports_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        payload = gzip.compress(snapshot.get_html_str(as_iframe=False).encode(), compresslevel=6)
        handle, staging = tempfile.mkstemp(prefix=".report-", dir=target.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(payload)
            os.replace(staging, target)
        except BaseException:
            Path(staging).unlink(missing_ok=True)
            raise
        return relative

    def report_path(self, report_file: str) -> Path:
        """The report file's path; ``ValueError`` for a name that leaves the reports folder."""
        root = self.reports_dir.resolve()
        path = (root / report_file).resolve()
        if not path.is_relative_to(root):
            raise ValueError(f"report {report_file!r} is outside the reports folder")
        return path

    def delete_report(self, report_file: str) -> None:
        self.report_path(report_file).unlink(missing_ok=True)
