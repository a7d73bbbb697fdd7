"""PII redaction with Presidio's pattern recognizers, offline.

Presidio's ``AnalyzerEngine`` wants a spaCy model, which cannot be downloaded here and is not
needed: the entities curation redacts are all found by patterns plus checksums (Luhn for cards,
the IBAN check digits, ``phonenumbers`` for phones, ``ipaddress`` for IPs). So the recognizers
are called directly with ``nlp_artifacts=None`` and ``AnonymizerEngine`` replaces what they find
with ``<ENTITY_TYPE>``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING

from switchyard.config import PII_ENTITIES, PiiEntity

if TYPE_CHECKING:
    from presidio_analyzer import EntityRecognizer
    from tldextract import TLDExtract

Message = dict[str, str]

# Secrets with a recognisable shape: OpenAI/Anthropic/Stripe-style keys, AWS access key ids,
# GitHub, Slack and Google API tokens.
KNOWN_SECRET_PATTERNS = (
    ("prefixed key", r"\b(?:sk|rk|pk)[-_][A-Za-z0-9_\-]{16,}"),
    ("aws access key id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("github token", r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),
    ("slack token", r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),
    ("google api key", r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    ("json web token", r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
)
# Anything else long and random-looking: hex digests of secrets, base64 or base64url tokens.
# They are kept only if their characters look random enough (see ``_looks_random``).
RANDOM_TOKEN_PATTERNS = (
    ("long hex", r"\b[A-Fa-f0-9]{32,}\b"),
    ("long base64", r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{32,}={0,2}(?![A-Za-z0-9+/_\-])"),
)
MIN_HEX_ENTROPY = 3.0
"""Bits per character; random hex has about 3.7 over 32 characters, ``deadbeef``-style filler less."""
MIN_BASE64_ENTROPY = 4.0
"""Bits per character; random base64 has about 4.6 over 32 characters."""
MAX_WORD_COVERAGE = 0.7
"""Share of a token's characters inside word-like runs (``Word``, ``word``, ``WORD``, three letters
or more) above which it is an identifier or a path, not a secret: ``getUserSettingsForTenant2024``
and ``org/apache/commons/lang3/StringUtils`` score above 0.8. Random base64 of 32 characters scores
below 0.66 in 99 cases out of 100, so about one such token in 200 is taken for an identifier; at 40
characters about one in 1000. Tokens with a known prefix (above) are not subject to it."""
WORD_RUN = re.compile(r"[A-Z]?[a-z]{3,}|[A-Z]{3,}")


def shannon_entropy(text: str) -> float:
    """Bits per character of ``text``'s own character distribution."""
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values()) if text else 0.0


def word_coverage(token: str) -> float:
    return sum(len(run) for run in WORD_RUN.findall(token)) / len(token) if token else 0.0


def _looks_random(token: str) -> bool:
    body = token.rstrip("=")
    if re.fullmatch(r"[A-Fa-f0-9]+", body):
        has_both = any(c.isdigit() for c in body) and any(c.isalpha() for c in body)
        return has_both and shannon_entropy(body) >= MIN_HEX_ENTROPY
    # Long identifiers, slugs and paths are long too; random base64 has digits and both cases,
    # a high entropy, and few runs that read like words.
    classes = (str.isdigit, str.islower, str.isupper)
    return (
        all(any(test(c) for c in body) for test in classes)
        and shannon_entropy(body) >= MIN_BASE64_ENTROPY
        and word_coverage(body) < MAX_WORD_COVERAGE
    )


@cache
def _offline_tld_extractor() -> TLDExtract:
    import tldextract

    # The bundled public-suffix snapshot, with no fetch and no cache folder: the default
    # extractor tries the network first and prints a ConnectionError where there is none.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


def _recognizers(entities: Iterable[PiiEntity]) -> list[EntityRecognizer]:
    import regex
    from presidio_analyzer import Pattern, PatternRecognizer
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
    )

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return _offline_tld_extractor()(pattern_text).fqdn != ""

    class SecretRecognizer(PatternRecognizer):
        """API keys and tokens; Presidio has no recognizer for them."""

        def __init__(self) -> None:
            patterns = [Pattern(name, pattern, 0.9) for name, pattern in KNOWN_SECRET_PATTERNS]
            patterns += [Pattern(name, pattern, 0.5) for name, pattern in RANDOM_TOKEN_PATTERNS]
            # Case matters here (``AKIA`` keys, mixed-case tokens): drop Presidio's IGNORECASE.
            super().__init__(
                supported_entity="API_KEY",
                patterns=patterns,
                global_regex_flags=regex.DOTALL | regex.MULTILINE,
            )

        def validate_result(self, pattern_text: str) -> bool:
            if regex.fullmatch(KNOWN_SECRET_PATTERNS[0][1], pattern_text):
                # ``sk-learn-compatible-estimator`` is a prefix and words; real keys have digits.
                return any(c.isdigit() for c in pattern_text)
            known = any(regex.fullmatch(p, pattern_text) for _, p in KNOWN_SECRET_PATTERNS[1:])
            return known or _looks_random(pattern_text)

    factories: dict[PiiEntity, type[EntityRecognizer]] = {
        "EMAIL_ADDRESS": OfflineEmailRecognizer,
        "PHONE_NUMBER": PhoneRecognizer,
        "CREDIT_CARD": CreditCardRecognizer,
        "IP_ADDRESS": IpRecognizer,
        "IBAN_CODE": IbanRecognizer,
        "API_KEY": SecretRecognizer,
    }
    return [factories[entity]() for entity in dict.fromkeys(entities)]


class PiiRedactor:
    """Replaces personal data and secrets in text with ``<ENTITY_TYPE>``, and says what it replaced.

    Meant for one curation run: it remembers the texts it has redacted, since a system prompt is
    usually repeated in every request.
    """

    def __init__(self, entities: Sequence[PiiEntity] = PII_ENTITIES) -> None:
        from presidio_anonymizer import AnonymizerEngine

        self.entities = list(dict.fromkeys(entities))
        self._recognizers = _recognizers(self.entities)
        self._anonymizer = AnonymizerEngine()
        self._seen: dict[str, tuple[str, Counter[str]]] = {}

    def redact(self, text: str) -> tuple[str, Counter[str]]:
        """The redacted text, and the number of replacements per entity type."""
        if not text:
            return text, Counter()
        if text not in self._seen:
            self._seen[text] = self._redact(text)
        redacted, counts = self._seen[text]
        return redacted, counts.copy()

    def redact_messages(self, messages: Sequence[Message]) -> tuple[list[Message], Counter[str]]:
        """Every message, whatever its role: a system prompt or an answer can hold PII as well."""
        redacted: list[Message] = []
        counts: Counter[str] = Counter()
        for message in messages:
            content, found = self.redact(message["content"])
            redacted.append({**message, "content": content})
            counts.update(found)
        return redacted, counts

    def _redact(self, text: str) -> tuple[str, Counter[str]]:
        from presidio_anonymizer.entities import ConflictResolutionStrategy, OperatorConfig

        found = [
            result
            for recognizer in self._recognizers
            for result in recognizer.analyze(text, recognizer.supported_entities, None)
        ]
        if not found:
            return text, Counter()
        # Overlaps (a phone-like run of digits inside an IBAN) are trimmed rather than kept whole,
        # so the surviving spans still cover every character that any recognizer flagged.
        result = self._anonymizer.anonymize(
            text=text,
            analyzer_results=found,
            operators={"DEFAULT": OperatorConfig("replace")},
            conflict_resolution=ConflictResolutionStrategy.REMOVE_INTERSECTIONS,
        )
        return result.text, Counter(item.entity_type for item in result.items)
