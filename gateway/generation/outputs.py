"""Reading vLLM's ``CompletionOutput``: finish reasons and per-token log-probabilities."""

from __future__ import annotations

from dataclasses import dataclass

from vllm.outputs import CompletionOutput

OPENAI_FINISH_REASONS = {"stop", "length"}


def finish_reason(output: CompletionOutput) -> str | None:
    if output.finish_reason is None:
        return None
    # vLLM may say "abort"; OpenAI's clients only know stop, length and content_filter.
    return output.finish_reason if output.finish_reason in OPENAI_FINISH_REASONS else "stop"


@dataclass(frozen=True)
class TokenChoice:
    token: str
    logprob: float


@dataclass(frozen=True)
class SampledToken(TokenChoice):
    top: list[TokenChoice]


def sampled_tokens(output: CompletionOutput, top_k: int) -> list[SampledToken] | None:
    """The sampled token at each position with its ``top_k`` alternatives (None if not requested)."""
    if output.logprobs is None:
        return None
    tokens: list[SampledToken] = []
    for token_id, candidates in zip(output.token_ids, output.logprobs, strict=False):
        chosen = candidates.get(token_id)
        ranked = sorted(candidates.values(), key=lambda lp: lp.rank if lp.rank is not None else 1 << 30)
        top = [TokenChoice(lp.decoded_token or "", lp.logprob) for lp in ranked[:top_k]]
        tokens.append(
            SampledToken(
                token=(chosen.decoded_token or "") if chosen else "",
                logprob=chosen.logprob if chosen else float("-inf"),
                top=top,
            )
        )
    return tokens
