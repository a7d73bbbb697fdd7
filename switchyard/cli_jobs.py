"""``switchyard tune``, ``switchyard jobs …`` and ``switchyard adapters policy``, straight on the
database.

The CLI queues jobs and writes policies; a running ``switchyard serve`` claims the jobs and runs
them (training in a child process, the gate through its engine), and applies a changed refresh
schedule within its sync interval. So the gateway never needs to be reachable from here.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Annotated, Any, Literal

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from sqlmodel import Session

from adapters.registry import require_adapter
from switchyard.cli_settings import run_in_database, settings_of
from switchyard.exceptions import SwitchyardError
from switchyard.schema import open_database
from tuner.jobs.crud import active_job, create_job, events_since, get_job, list_events, list_jobs, request_cancel
from tuner.jobs.models import ENDED, JOB_ID_PATTERN, JobStatus, JobTrigger, TuningJob, TuningJobEvent
from tuner.policies import TuningPolicy, TuningPolicyBase, TuningPolicyPublic, delete_policy, get_policy, upsert_policy
from tuner.scheduling import SYNC_INTERVAL_S, refresh_job

app = typer.Typer(
    help="Fine-tuning jobs: list, inspect, follow, cancel.", no_args_is_help=True, pretty_exceptions_show_locals=False
)

QUEUED_HINT_S = 15.0
"""A job queued this long while followed gets a reminder of who runs jobs."""
SHOWN_EVENTS = 10
DURATION_PART = re.compile(r"(\d+)([smhd])")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
LEVEL_STYLES = {"warn": "yellow", "error": "red"}
OUTCOME_STYLES = {"promoted": "green", "canary": "cyan", "rejected": "yellow", "skipped": "dim"}
DROP = object()
"""``--set KEY=`` (nothing after ``=``): remove the override."""

JobIdArgument = Annotated[str, typer.Argument(help="Job id (ftjob-…).")]
PollOption = Annotated[float, typer.Option(min=0.01, max=60.0, hidden=True, help="Seconds between polls.")]


def _checked_job_id(public_id: str) -> str:
    if not re.fullmatch(JOB_ID_PATTERN, public_id):
        typer.echo(f"error: {public_id!r} is not a job id (ftjob-…)", err=True)
        raise typer.Exit(1)
    return public_id


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _state(job: TuningJob) -> str:
    """What the job is doing, or what came of it: a stage, an outcome, or else its status."""
    if job.status == JobStatus.running:
        return job.stage.value if job.stage else "running"
    if job.status == JobStatus.succeeded and job.outcome:
        return job.outcome.value
    return job.status.value


# -- tune and follow ---------------------------------------------------------------------------


def tune(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Adapter (alias) to train a new version of.")],
    now: Annotated[bool, typer.Option("--now", help="Follow the job until it ends (Ctrl-C stops following).")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Train even with fewer new examples than the policy asks for.")
    ] = False,
    poll_s: PollOption = 1.0,
) -> None:
    """Queue a job that curates the adapter's logged traffic and trains a new version, gated
    against the one serving. A running `switchyard serve` runs it."""
    settings = settings_of(ctx)

    def work(session: Session) -> tuple[TuningJob, TuningJob | None]:
        job_in = refresh_job(
            session=session, adapter=name, trigger=JobTrigger.cli, default_preset=settings.training_preset, force=force
        )
        ahead = active_job(session=session, adapter=name)
        return create_job(session=session, job_in=job_in), ahead

    job, ahead = run_in_database(ctx, work)
    typer.echo(f"queued {job.public_id}: a new version of {name}")
    if ahead is not None:
        typer.echo(f"it starts once {ahead.public_id} ({ahead.status.value}) has ended")
    if not now:
        typer.echo(f"follow it with: switchyard jobs follow {job.public_id}  (a running `switchyard serve` runs it)")
        return
    raise typer.Exit(_follow(ctx, job.public_id, poll_s=poll_s))


@app.command()
def follow(ctx: typer.Context, job_id: JobIdArgument, poll_s: PollOption = 1.0) -> None:
    """Watch a job until it ends: its stage, training progress and messages, then the gate's
    verdict. Exits 0 if it succeeded, 1 otherwise."""
    raise typer.Exit(_follow(ctx, _checked_job_id(job_id), poll_s=poll_s))


class _Display:
    """The live view of one job: a progress line above which events are printed."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.task = self.progress.add_task("queued", total=None, loss="")

    def event(self, event: TuningJobEvent) -> None:
        data: dict[str, Any] = event.data or {}
        if event.type == "metrics":
            step, total = data.get("step"), data.get("total_steps")
            if isinstance(step, int) and isinstance(total, int) and total > 0:
                self.progress.update(self.task, completed=step, total=total)
            if isinstance(data.get("train_loss"), int | float):
                self.progress.update(self.task, loss=f"loss {data['train_loss']:.4f}")
            if data.get("valid_loss") is None:
                return  # a step: the bar shows it; hold-out evaluations are printed
        line = Text.assemble((f"{_when(event.created_at)} ", "dim"), (event.message, LEVEL_STYLES.get(event.level, "")))
        self.console.print(line)

    def state(self, job: TuningJob) -> None:
        self.progress.update(self.task, description=_state(job))


def _follow(ctx: typer.Context, public_id: str, *, poll_s: float) -> int:
    console = Console()
    display = _Display(console)
    last_event, hinted, started = 0, False, time.monotonic()
    with open_database(settings_of(ctx).resolved_database_url) as session:
        try:
            with display.progress:
                while True:
                    session.rollback()  # a fresh read each time (SQLite keeps a snapshot per transaction)
                    try:
                        job = get_job(session=session, public_id=public_id)
                    except SwitchyardError as exc:
                        console.print(f"error: {exc.message}", markup=False)
                        return 1
                    for event in events_since(session=session, job=job, after_id=last_event):
                        last_event = event.id or last_event
                        display.event(event)
                    display.state(job)
                    if job.status in ENDED:
                        break
                    if job.status == JobStatus.queued and not hinted and time.monotonic() - started > QUEUED_HINT_S:
                        console.print("still queued: a running `switchyard serve` picks jobs up", style="yellow")
                        hinted = True
                    time.sleep(poll_s)
        except KeyboardInterrupt:
            console.print(f"stopped following; the job goes on (switchyard jobs cancel {public_id} stops it)")
            return 130
    _print_outcome(console, job)
    return 0 if job.status == JobStatus.succeeded else 1


def _print_outcome(console: Console, job: TuningJob) -> None:
    if job.status == JobStatus.succeeded:
        outcome = job.outcome.value if job.outcome else "succeeded"
        result = f" ({job.fine_tuned_model})" if job.fine_tuned_model else ""
        console.print(Text.assemble(f"{job.public_id}: ", (outcome, OUTCOME_STYLES.get(outcome, "")), result))
    elif job.status == JobStatus.failed:
        reason = f"{job.error_code}: {job.error_message}" if job.error_code else (job.error_message or "")
        console.print(Text.assemble(f"{job.public_id}: ", ("failed", "red"), f" {reason}".rstrip()))
    else:
        console.print(Text(f"{job.public_id}: {job.status.value}"))
    _print_gate(console, job)


def _print_gate(console: Console, job: TuningJob) -> None:
    if not job.gate:
        return
    console.print(Text(f"gate: {job.gate.get('verdict', '?')}", style="bold"))
    for reason in job.gate.get("reasons") or []:
        console.print(Text(f"  - {reason}"))


# -- jobs --------------------------------------------------------------------------------------


@app.command("list")
def list_(
    ctx: typer.Context,
    adapter: Annotated[str | None, typer.Option(help="Only this adapter's jobs.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 20,
) -> None:
    """Recent jobs, newest first."""
    rows, more = run_in_database(ctx, lambda s: list_jobs(session=s, adapter=adapter, limit=limit))
    table = Table("id", "adapter", "trigger", "status", "stage/outcome", "fine_tuned_model", "created (UTC)")
    table.columns[0].no_wrap = True
    for job in rows:
        table.add_row(
            job.public_id,
            job.adapter,
            job.trigger.value,
            job.status.value,
            _state(job) if job.status in (JobStatus.running, JobStatus.succeeded) else "-",
            job.fine_tuned_model or "-",
            _when(job.created_at),
        )
    console = Console()
    console.print(table)
    if more:
        console.print(f"(more: --limit {min(limit * 2, 1000)})", style="dim")


@app.command()
def show(ctx: typer.Context, job_id: JobIdArgument) -> None:
    """One job: its fields, the gate's decision and its last events."""
    public_id = _checked_job_id(job_id)

    def work(session: Session) -> tuple[TuningJob, list[TuningJobEvent]]:
        job = get_job(session=session, public_id=public_id)
        events, _ = list_events(session=session, job=job, limit=SHOWN_EVENTS)
        return job, events[::-1]

    job, events = run_in_database(ctx, work)
    fields = Table.grid(padding=(0, 2))
    error = f"{job.error_code}: {job.error_message}" if job.error_code else job.error_message
    for label, value in (
        ("id", job.public_id),
        ("adapter", job.adapter),
        ("tenant", job.tenant),
        ("trigger", job.trigger.value),
        ("status", job.status.value + (" (cancel requested)" if job.cancel_requested else "")),
        ("stage", job.stage and job.stage.value),
        ("outcome", job.outcome and job.outcome.value),
        ("fine_tuned_model", job.fine_tuned_model),
        ("parent_version", job.parent_version),
        ("snapshot", job.snapshot_id),
        ("training_file", job.training_file),
        ("trained_tokens", job.trained_tokens),
        ("error", error),
        ("force", job.force),
        ("hyperparameters", json.dumps(job.hyperparameters, sort_keys=True)),
        ("created", _when(job.created_at)),
        ("started", _when(job.started_at)),
        ("finished", _when(job.finished_at)),
        ("attempts", job.attempts),
        ("worker", job.worker),
    ):
        fields.add_row(Text(label, style="bold"), Text("-" if value is None else str(value)))
    console = Console()
    console.print(fields)
    _print_gate(console, job)
    if events:
        console.print(Text("events:", style="bold"))
        for event in events:
            console.print(
                Text.assemble(f"  {_when(event.created_at)} ", (event.message, LEVEL_STYLES.get(event.level, "")))
            )


@app.command()
def cancel(ctx: typer.Context, job_id: JobIdArgument) -> None:
    """Cancel a job: a queued one at once, a running one at its next training step."""
    public_id = _checked_job_id(job_id)
    job = run_in_database(ctx, lambda s: request_cancel(session=s, public_id=public_id))
    if job.status == JobStatus.cancelled:
        typer.echo(f"{public_id} cancelled")
    else:
        typer.echo(f"{public_id}: cancellation requested; its worker stops it at the next step")


# -- adapters policy ---------------------------------------------------------------------------


def _seconds(duration: str) -> int:
    """``30m``, ``6h``, ``1d``, ``1h30m`` in seconds."""
    text = duration.strip().lower()
    parts = DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise typer.BadParameter(f"{duration!r} is not a duration such as 30m, 6h, 1d or 1h30m", param_hint="--every")
    return sum(int(number) * SECONDS[unit] for number, unit in parts)


def _assignment(pair: str) -> tuple[str, Any]:
    key, sep, raw = pair.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--set")
    if not raw:
        return key, DROP
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw  # a bare word, e.g. init_from=fresh


def policy(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Adapter (alias) name.")],
    every: Annotated[str | None, typer.Option(help="Refresh every 30m, 6h, 1d, 1h30m, …")] = None,
    cron: Annotated[str | None, typer.Option(help='Refresh on a crontab, in UTC: "0 3 * * *".')] = None,
    no_schedule: Annotated[bool, typer.Option("--no-schedule", help="Refresh on demand only.")] = False,
    min_new_examples: Annotated[
        int | None, typer.Option(min=1, help="A scheduled refresh trains only with this many new examples.")
    ] = None,
    preset: Annotated[Literal["default", "demo"] | None, typer.Option(help="Hyperparameter preset.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="A hyperparameter override, KEY=VALUE (e.g. learning_rate=1e-4); KEY= drops it."),
    ] = None,
    on_pass: Annotated[
        Literal["promote", "canary"] | None, typer.Option(help="What a candidate that passes the gate becomes.")
    ] = None,
    canary_weight: Annotated[float | None, typer.Option(help="Traffic share of such a canary (0-1).")] = None,
    margin: Annotated[float | None, typer.Option(help="Hold-out improvement the gate asks for (0.02 = 2 %).")] = None,
    enable: Annotated[bool | None, typer.Option("--enable/--disable", help="Run or pause the schedule.")] = None,
    refresh_on_drift: Annotated[
        bool | None,
        typer.Option(
            "--refresh-on-drift/--no-refresh-on-drift", help="Queue a refresh when the drift monitor flags the adapter."
        ),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the policy (back to the defaults).")] = False,
) -> None:
    """Show the adapter's tuning policy, or change it with the options (the rest is kept)."""
    settings = settings_of(ctx)
    changes: dict[str, Any] = {}
    if sum(option is not None for option in (every, cron)) + no_schedule > 1:
        raise typer.BadParameter("give one of --every, --cron and --no-schedule")
    if every is not None:
        changes |= {"schedule_interval_s": _seconds(every), "schedule_cron": None}
    if cron is not None:
        changes |= {"schedule_cron": cron, "schedule_interval_s": None}
    if no_schedule:
        changes |= {"schedule_cron": None, "schedule_interval_s": None}
    for field, value in (
        ("min_new_examples", min_new_examples),
        ("preset", preset),
        ("enabled", enable),
        ("refresh_on_drift", refresh_on_drift),
    ):
        if value is not None:
            changes[field] = value
    gate_options = (("on_pass", on_pass), ("canary_weight", canary_weight), ("margin", margin))
    gate = {field: value for field, value in gate_options if value is not None}
    overrides = dict(_assignment(pair) for pair in set_ or [])
    if clear and (changes or gate or overrides):
        raise typer.BadParameter("--clear takes no other option")

    def work(session: Session) -> None:
        require_adapter(session=session, name=name)
        row = get_policy(session=session, adapter=name)
        if clear:
            delete_policy(session=session, adapter=name)
            removed = "policy removed: it is tuned on demand with the defaults"
            typer.echo(f"{name}: {removed if row else 'it has no policy'}")
            return
        if not (changes or gate or overrides):
            _echo_policy(name, row, settings.training_preset)
            return
        current = TuningPolicyBase.model_validate(row.model_dump()) if row else TuningPolicyBase()
        hyperparameters = {k: v for k, v in (current.hyperparameters | overrides).items() if v is not DROP}
        try:
            policy_in = TuningPolicyBase.model_validate(
                current.model_dump() | changes | {"gate": current.gate | gate, "hyperparameters": hyperparameters}
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            typer.echo(f"error: {'.'.join(map(str, error['loc'])) or 'policy'}: {error['msg']}", err=True)
            raise typer.Exit(1) from None
        _echo_policy(name, upsert_policy(session=session, adapter=name, policy_in=policy_in), settings.training_preset)
        typer.echo(f"(a running `switchyard serve` applies a new schedule within {SYNC_INTERVAL_S:.0f} s)")

    run_in_database(ctx, work)


def _echo_policy(name: str, row: TuningPolicy | None, default_preset: str) -> None:
    if row is None:
        typer.echo(f"{name} has no tuning policy: it is tuned on demand, preset {default_preset!r}, gate defaults")
        return
    typer.echo(json.dumps(TuningPolicyPublic.model_validate(row).model_dump(mode="json"), indent=2))
