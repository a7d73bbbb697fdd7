"""``switchyard drift run`` and ``switchyard drift show``, straight on the database.

A check from the CLI is the same as one through the API: it is stored, its snapshot goes to the
Evidently workspace and its report to the reports folder, and a drifted verdict alerts (webhook
included) and may queue a refresh, which a running ``switchyard serve`` then trains.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from sqlmodel import Session

from adapters.registry import require_adapter
from monitoring.drift.crud import get_result, list_results
from monitoring.drift.models import ColumnDrift, DriftResult, DriftStatus, DriftTrigger, TimeWindow, Windows, as_utc
from switchyard.cli_settings import run_in_database, settings_of
from switchyard.db import make_engine, session_scope
from switchyard.exceptions import SwitchyardError
from switchyard.schema import create_all_tables

if TYPE_CHECKING:
    from monitoring.drift.monitor import DriftMonitor

app = typer.Typer(help="Drift of each adapter's traffic: check it, show the results.", no_args_is_help=True)

RESULT_HEADERS = ("id", "adapter", "checked (UTC)", "verdict", "share", "reference", "rows ref/cur", "sample")
NameArgument = Annotated[str | None, typer.Argument(help="Adapter (alias) name; omitted: every adapter.")]
MomentOption = Annotated[datetime | None, typer.Option(help="ISO 8601 (UTC unless it has an offset).")]


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _verdict(result: DriftResult) -> Text:
    if result.status is DriftStatus.insufficient_data:
        return Text("insufficient data", style="dim")
    return Text("drifted", style="bold red") if result.drifted else Text("ok", style="green")


def _drifted_columns(result: DriftResult) -> str:
    return ", ".join(c["column"] for c in result.columns if c.get("drifted")) or "-"


def _results_table(results: list[DriftResult]) -> Table:
    table = Table(
        "id", "adapter", "checked (UTC)", "verdict", "share", "reference", "rows ref/cur", "sample", "drifted"
    )
    for result in results:
        share = "-" if result.drift_share is None else f"{result.drift_share:.2f}"
        table.add_row(
            str(result.id),
            result.adapter,
            _when(result.created_at),
            _verdict(result),
            share,
            result.reference_kind.value,
            f"{result.reference_rows}/{result.current_rows}",
            str(result.sample_size or "-"),
            _drifted_columns(result) if result.status is DriftStatus.ok else (result.reason or "-"),
        )
    return table


def _window(start: datetime | None, end: datetime | None, name: str) -> TimeWindow | None:
    if start is None and end is not None:
        raise typer.BadParameter(f"--{name}-end needs --{name}-start")
    if start is None:
        return None
    try:
        return TimeWindow(as_utc(start), as_utc(end) if end is not None else datetime.now(UTC))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"--{name}-start") from None


@app.command()
def run(
    ctx: typer.Context,
    name: NameArgument = None,
    reference_start: MomentOption = None,
    reference_end: MomentOption = None,
    current_start: MomentOption = None,
    current_end: MomentOption = None,
) -> None:
    """Check the adapter's (or every adapter's) current traffic against its reference now, and
    store the result. Without the window options: the latest traffic against the active version's
    training snapshot (or the traffic just before)."""
    # Evidently, pandas and scikit-learn take seconds to import: only this command needs them.
    from monitoring.drift.monitor import build_monitor

    settings = settings_of(ctx)
    windows = Windows(
        reference=_window(reference_start, reference_end, "reference"),
        current=_window(current_start, current_end, "current"),
    )
    engine = make_engine(settings.resolved_database_url)
    console = Console()
    results: list[DriftResult] = []
    try:
        create_all_tables(engine)
        with session_scope(engine) as session:
            try:
                names = [require_adapter(session=session, name=name).name] if name else None
            except SwitchyardError as exc:
                typer.echo(f"error: {exc.message}", err=True)
                raise typer.Exit(1) from None
        monitor = build_monitor(engine, settings)
        try:
            results = _check(console, monitor, names if names is not None else monitor.adapters(), windows)
        finally:
            monitor.close(wait=True)  # deliver the alerts before the process ends
    finally:
        engine.dispose()
    console.print(_results_table(results))
    for result in results:
        if result.report_file:
            console.print(f"{result.adapter}: report {settings.drift_reports_dir / result.report_file}", markup=False)
    console.print(f"Evidently UI: evidently ui --workspace {settings.drift_workspace_dir}", style="dim", markup=False)


def _check(console: Console, monitor: DriftMonitor, names: list[str], windows: Windows) -> list[DriftResult]:
    results = []
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task("checking", total=len(names))
        for adapter in names:
            progress.update(task, description=f"checking {adapter}")
            try:
                results.append(monitor.check(adapter, trigger=DriftTrigger.cli, windows=windows))
            except SwitchyardError as exc:
                console.print(f"{adapter}: {exc.message}", style="red", markup=False)
            progress.advance(task)
    return results


def _columns_table(result: DriftResult) -> Table:
    table = Table("column", "kind", "method", "score", "threshold", "drifted", "values ref/cur", "note")
    for index in (0, 2):  # names people search for: never cut
        table.columns[index].no_wrap = True
    for column in (ColumnDrift.model_validate(c) for c in result.columns):
        drifted = "-" if column.drifted is None else ("yes" if column.drifted else "no")
        table.add_row(
            column.column + ("" if column.decides_verdict else " *"),
            column.kind.value,
            column.method or "-",
            "-" if column.score is None else f"{column.score:.4g}",
            "-" if column.threshold is None else f"{column.threshold:.4g}",
            Text(drifted, style="red" if column.drifted else ""),
            f"{column.reference_values}/{column.current_values}",
            column.reason or "",
        )
    return table


@app.command()
def show(
    ctx: typer.Context,
    name: NameArgument = None,
    result_id: Annotated[int | None, typer.Option("--id", min=1, help="One result, column by column.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 20,
) -> None:
    """Stored drift results, newest first (``--id``: one result's columns)."""
    settings = settings_of(ctx)
    console = Console()
    if result_id is not None:
        result = run_in_database(ctx, lambda s: get_result(session=s, result_id=result_id))
        if result is None:
            typer.echo(f"error: no drift result with id {result_id}", err=True)
            raise typer.Exit(1)
        console.print(_results_table([result]))
        if result.reason:
            console.print(f"reason: {result.reason}", markup=False)
        if result.columns:
            console.print(_columns_table(result))
            console.print("* performance: reported, not part of the verdict", style="dim")
        if result.report_file:
            console.print(f"report: {settings.drift_reports_dir / result.report_file}", markup=False)
        return

    def work(session: Session) -> tuple[list[DriftResult], int]:
        if name is not None:
            require_adapter(session=session, name=name)
        return list_results(session=session, adapter=name, limit=limit)

    results, count = run_in_database(ctx, work)
    console.print(_results_table(results))
    if count > len(results):
        console.print(f"({count - len(results)} older: --limit {min(limit * 2, 500)})", style="dim")
