"""Runs one generation on the engine, for both endpoints, and logs it exactly once.

Endpoint services supply a :class:`Formatter` that turns engine outputs into their wire format;
everything else (admission, engine errors, client disconnects, usage, the log row) lives here.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from vllm import SamplingParams
from vllm.outputs import CompletionOutput, RequestOutput

from gateway.engine.admission import AdmissionController
from gateway.engine.protocol import EngineClient
from gateway.error_responses import error_payload
from gateway.exceptions import ClientDisconnected
from gateway.generation.protocol import Usage
from gateway.generation.record import RequestRecord
from gateway.routing import RouteTarget
from monitoring.tracing import NOOP_TRACER, GenerationTracer

logger = logging.getLogger(__name__)
DONE = "data: [DONE]\n\n"
LogSink = Callable[[dict[str, Any]], Awaitable[None] | None]
"""Takes a finished request's row; what it returns resolves once the row is durable."""
Disconnected = Callable[[], Awaitable[None]]
"""Returns when the client has gone away (see :func:`gateway.generation.http.client_disconnected`)."""


@dataclass
class GenerationJob:
    record: RequestRecord
    target: RouteTarget
    prompt_token_ids: list[int]
    params: SamplingParams
    include_usage: bool = False
    admitted: bool = field(default=False, init=False)
    """Holds ``params.n`` admission slots."""
    done: bool = field(default=False, init=False)
    """Its version is no longer counted in flight."""

    @property
    def request_id(self) -> str:
        return self.record.request_id

    @property
    def usage(self) -> Usage:
        prompt = len(self.prompt_token_ids)
        completion = self.record.completion_tokens
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


class InFlightTracker(Protocol):
    """Counts requests per adapter version (the hot-swap protocol unloads only idle versions).
    Routing counts a request in when it resolves its version; the job counts it out, once."""

    def leave(self, target: RouteTarget) -> None: ...


class Formatter(Protocol):
    def final(self, job: GenerationJob, outputs: list[CompletionOutput]) -> Any:
        """The non-stream response body."""

    def chunks(self, job: GenerationJob, output: CompletionOutput, *, first: bool) -> list[dict[str, Any]]:
        """Stream chunks for one choice's delta (``first`` marks that choice's first delta)."""

    def usage_chunk(self, job: GenerationJob) -> dict[str, Any]:
        """The closing chunk that carries ``usage`` when ``stream_options.include_usage`` is set."""


def sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'), ensure_ascii=False)}\n\n"


@dataclass
class Completion:
    """A finished non-stream response body and the target that produced it."""

    body: Any
    target: RouteTarget


class GenerationStream:
    """An admitted, started stream. Whatever happens to the HTTP response, :meth:`aclose`
    releases the slot, aborts the engine request and writes the log row, exactly once."""

    def __init__(
        self,
        service: GenerationService,
        job: GenerationJob,
        formatter: Formatter,
        outputs: AsyncGenerator[RequestOutput, None],
        first: RequestOutput,
    ) -> None:
        self.job = job
        self._service = service
        self._formatter = formatter
        self._outputs = outputs
        self._first: RequestOutput | None = first
        self._closed = False

    @property
    def target(self) -> RouteTarget:
        return self.job.target

    def _chunks(self, output: RequestOutput, seen: set[int]) -> list[str]:
        events = []
        for choice in output.outputs:
            self.job.record.on_tokens(choice.index, choice.text, len(choice.token_ids), choice.finish_reason)
            events.extend(sse(c) for c in self._formatter.chunks(self.job, choice, first=choice.index not in seen))
            seen.add(choice.index)
        return events

    async def body(self) -> AsyncIterator[str]:
        record = self.job.record
        seen: set[int] = set()
        try:
            assert self._first is not None
            first, self._first = self._first, None
            for event in self._chunks(first, seen):
                yield event
            async for output in self._outputs:
                for event in self._chunks(output, seen):
                    yield event
            if self.job.include_usage:
                yield sse(self._formatter.usage_chunk(self.job))
            record.succeed()
        except Exception as exc:  # the engine failed mid-stream: say so in-band, as OpenAI does
            logger.warning("stream %s failed: %s", self.job.request_id, exc)
            record.fail(exc)
            yield sse(error_payload(exc)[1])
        except BaseException as exc:  # cancelled or closed: the client went away
            record.fail(exc)
            raise
        finally:
            # Logged before the closing event, so a client that saw [DONE] has its row.
            await self.aclose()
        yield DONE

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._outputs.aclose()
            if self.job.record.status != 200:
                # Closing our generator does not close vLLM's inner one at once (``async for``
                # never calls ``aclose``), so the engine is told explicitly to free the sequence.
                await self._service.engine.abort(self.job.request_id)
        finally:
            # Released only once the engine is done with the sequence: a version whose count
            # reaches zero may be unloaded and its files deleted. Logged whatever happened.
            self._service.release(self.job)
            await self._service.write_log(self.job.record)


class GenerationService:
    def __init__(
        self,
        *,
        engine: EngineClient,
        admission: AdmissionController,
        tracker: InFlightTracker,
        log: LogSink,
        tracer: GenerationTracer | None = None,
    ) -> None:
        self.engine = engine
        self.admission = admission
        self.tracker = tracker
        self.log = log
        self.tracer = tracer or GenerationTracer(NOOP_TRACER)

    def admit(self, job: GenerationJob) -> None:
        try:
            self.admission.acquire(job.params.n)
        except BaseException:
            self.release(job)
            raise
        job.admitted = True

    def release(self, job: GenerationJob) -> None:
        """Give back the admission slots and the version's in-flight count (idempotent)."""
        if job.admitted:
            job.admitted = False
            self.admission.release(job.params.n)
        if not job.done:
            job.done = True
            self.tracker.leave(job.target)

    async def write_log(self, record: RequestRecord) -> None:
        """Log the row and wait until it is durable: a client that got its answer has its row."""
        row = record.to_row()
        if record.span is not None:
            served = record.served_model if record.target is not None else None
            self.tracer.finish(record.span, row, response_model=served, error_type=record.error_type)
            record.span = None
        appended = self.log(row)
        if appended is not None:
            await asyncio.shield(appended)  # the append goes on even if this request is cancelled

    async def log_failure(self, record: RequestRecord, exc: BaseException) -> None:
        record.fail(exc)
        await self.write_log(record)

    async def execute(
        self,
        record: RequestRecord,
        prepare: Callable[[], Awaitable[GenerationJob]],
        formatter: Formatter,
        *,
        stream: bool,
        disconnected: Disconnected | None = None,
    ) -> Completion | GenerationStream:
        """Prepare the job (routing, prompt, parameters), then run it; every outcome is logged.
        ``prepare`` releases what it resolved if it fails; from the job on, this service does."""
        record.span = self.tracer.start(
            endpoint=record.endpoint,
            model=record.model,
            params=record.params,
            stream=record.stream,
            request_id=record.request_id,
        )
        try:
            job = await prepare()
        except BaseException as exc:
            await self.log_failure(record, exc)
            raise
        if stream:
            return await self.open_stream(job, formatter)
        return await self.complete(job, formatter, disconnected=disconnected)

    def _generate(self, job: GenerationJob) -> AsyncGenerator[RequestOutput, None]:
        job.record.prompt_tokens = len(job.prompt_token_ids)
        return self.engine.generate(job.prompt_token_ids, job.params, job.request_id, job.target.lora_request)

    async def _final(self, job: GenerationJob) -> RequestOutput | None:
        final: RequestOutput | None = None
        async for output in self._generate(job):
            final = output  # FINAL_ONLY: the one output is the whole answer
        return final

    async def _final_unless_disconnected(self, job: GenerationJob, disconnected: Disconnected) -> RequestOutput | None:
        """vLLM's server does the same: a client that leaves must not keep its sequence in the
        engine until ``max_tokens`` (nothing else would stop a non-stream request)."""
        generation = asyncio.ensure_future(self._final(job))
        watcher = asyncio.ensure_future(disconnected())
        try:
            await asyncio.wait({generation, watcher}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # this handler itself was cancelled
            generation.cancel()
            await asyncio.gather(generation, return_exceptions=True)  # out of the engine before release
            raise
        finally:
            watcher.cancel()
        if generation.done():
            return generation.result()
        # Cancelling the generator makes vLLM abort the request; the explicit abort says so
        # plainly and costs nothing if it is already gone.
        generation.cancel()
        await asyncio.gather(generation, return_exceptions=True)
        await self.engine.abort(job.request_id)
        raise ClientDisconnected("The client closed the connection before the answer was ready.")

    async def complete(
        self, job: GenerationJob, formatter: Formatter, *, disconnected: Disconnected | None = None
    ) -> Completion:
        record = job.record
        try:
            self.admit(job)
            try:
                if disconnected is None:
                    final = await self._final(job)
                else:
                    final = await self._final_unless_disconnected(job, disconnected)
            finally:
                self.release(job)
            assert final is not None
            outputs = sorted(final.outputs, key=lambda o: o.index)
            for output in outputs:
                record.on_tokens(output.index, output.text, len(output.token_ids), output.finish_reason)
            body = formatter.final(job, outputs)
        except ClientDisconnected:
            await self.log_failure(record, asyncio.CancelledError())  # logged as 499, client closed
            raise
        except BaseException as exc:
            await self.log_failure(record, exc)
            raise
        record.succeed()
        await self.write_log(record)
        return Completion(body=body, target=job.target)

    async def open_stream(self, job: GenerationJob, formatter: Formatter) -> GenerationStream:
        """Admit the request and wait for its first output, so that refusals (429, 400, 503)
        are real HTTP statuses rather than errors inside a 200 stream."""
        try:
            self.admit(job)
        except BaseException as exc:
            await self.log_failure(job.record, exc)
            raise
        outputs = self._generate(job)
        try:
            first = await anext(outputs)
        except BaseException as exc:
            self.release(job)
            await self.log_failure(job.record, exc)
            raise
        return GenerationStream(self, job, formatter, outputs, first)
