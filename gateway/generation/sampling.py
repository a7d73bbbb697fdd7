"""OpenAI request fields → vLLM ``SamplingParams``, with the context-window check."""

from __future__ import annotations

from vllm import SamplingParams
from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

from gateway.exceptions import ContextLengthExceeded, InvalidRequest
from gateway.generation.protocol import ResponseFormat, SamplingRequest

MAX_STOP_SEQUENCES = 4


def completion_budget(*, requested: int | None, prompt_tokens: int, max_model_len: int, prompt_param: str) -> int:
    """Tokens the completion may use; refuse what cannot fit, as OpenAI does."""
    room = max_model_len - prompt_tokens
    if room <= 0:
        raise ContextLengthExceeded(
            f"This model's maximum context length is {max_model_len} tokens. However, your "
            f"{prompt_param} resulted in {prompt_tokens} tokens. Please reduce the length of the {prompt_param}.",
            param=prompt_param,
        )
    if requested is not None and requested > room:
        raise ContextLengthExceeded(
            f"This model's maximum context length is {max_model_len} tokens. However, you requested "
            f"{prompt_tokens + requested} tokens ({prompt_tokens} in the {prompt_param}, {requested} in "
            f"the completion). Please reduce the length of the {prompt_param} or completion.",
            param="max_tokens",
        )
    return requested if requested is not None else room


def structured_outputs(response_format: ResponseFormat | None) -> StructuredOutputsParams | None:
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return StructuredOutputsParams(json_object=True)
    if response_format.json_schema is None or not response_format.json_schema.schema_:
        raise InvalidRequest("response_format.json_schema.schema is required", param="response_format.json_schema")
    return StructuredOutputsParams(json=response_format.json_schema.schema_)


def sampling_params(
    request: SamplingRequest,
    *,
    max_tokens: int,
    logprobs: int | None,
    stream: bool,
) -> SamplingParams:
    stop = [request.stop] if isinstance(request.stop, str) else request.stop
    if stop is not None and len(stop) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(f"stop accepts at most {MAX_STOP_SEQUENCES} sequences", param="stop")
    try:
        return SamplingParams(
            n=request.n,
            temperature=1.0 if request.temperature is None else request.temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            seed=request.seed,
            stop=stop,
            presence_penalty=request.presence_penalty or 0.0,
            frequency_penalty=request.frequency_penalty or 0.0,
            max_tokens=max_tokens,
            logprobs=logprobs,
            structured_outputs=structured_outputs(request.response_format),
            output_kind=RequestOutputKind.DELTA if stream else RequestOutputKind.FINAL_ONLY,
        )
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
