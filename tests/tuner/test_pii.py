"""PII redaction with Presidio's pattern recognizers, offline (no spaCy model, no network)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tuner import pii
from tuner.pii import PiiRedactor, shannon_entropy

# (entity, text holding it, the sensitive part that must disappear)
FOUND = [
    ("EMAIL_ADDRESS", "write to jane.doe@example.com today", "jane.doe@example.com"),
    ("PHONE_NUMBER", "call me on +1 415-555-0132 please", "415-555-0132"),
    ("PHONE_NUMBER", "my number is (212) 555-0199", "555-0199"),
    ("CREDIT_CARD", "card 4111 1111 1111 1111 expires 12/29", "4111 1111 1111 1111"),
    ("CREDIT_CARD", "card 5500-0000-0000-0004 please", "5500-0000-0000-0004"),
    ("IP_ADDRESS", "the server at 192.168.10.4 is down", "192.168.10.4"),
    ("IP_ADDRESS", "ipv6 2001:db8:85a3::8a2e:370:7334 fails", "2001:db8:85a3::8a2e:370:7334"),
    ("IBAN_CODE", "pay to DE89370400440532013000 now", "DE89370400440532013000"),
    ("IBAN_CODE", "pay to GB82 WEST 1234 5698 7654 32 now", "GB82 WEST 1234 5698 7654 32"),
    ("API_KEY", "my key is sk-proj-4fX9kQ2mZ7bT1wL8rY3vN6pD and it fails", "sk-proj-4fX9kQ2mZ7bT1wL8rY3vN6pD"),
    ("API_KEY", "aws AKIAIOSFODNN7EXAMPLE is mine", "AKIAIOSFODNN7EXAMPLE"),
    ("API_KEY", "token ghp_aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5 ok", "ghp_aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5"),
    ("API_KEY", "secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY here", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("API_KEY", "token Xk9pQ2vL7mN4rT8wZ1bY6cF3hJ5dG0sA", "Xk9pQ2vL7mN4rT8wZ1bY6cF3hJ5dG0sA"),
    (
        "API_KEY",
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
    ),
    (
        "API_KEY",
        "hex 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 leaked",
        "9f86d081884c7d659a2feaa0c55ad015",
    ),
]

# Look-alikes that must stay: redacting them would teach the adapter to garble ordinary text.
KEPT = [
    "card 4111 1111 1111 1112 (fails the Luhn check)",
    "IBAN DE89370400440532013001 (wrong check digits)",
    "request id 123e4567-e89b-12d3-a456-426614174000",
    "a state-of-the-art-approach-for-routing-tickets-quickly",
    "padding aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "version 3.11 and order 12345",
    "call getUserAccountSettingsForTenant2024Version first",
    "class AbstractSingletonProxyFactoryBean2Impl",
    "see org/apache/commons/lang3/StringUtils/isBlank",
    "POST https://api.example.com/v1/chat/completions",
    "set HTTP_PROXY_CONFIGURATION_FOR_SERVICE_V2",
    "an sk-learn-compatible-estimator-wrapper",
]


@pytest.fixture(scope="module")
def redactor() -> PiiRedactor:
    return PiiRedactor()


@pytest.mark.parametrize(("entity", "text", "secret"), FOUND)
def test_each_entity_is_replaced_and_counted(redactor: PiiRedactor, entity: str, text: str, secret: str) -> None:
    redacted, counts = redactor.redact(text)
    assert secret not in redacted
    assert f"<{entity}>" in redacted
    assert counts == {entity: 1}


@pytest.mark.parametrize("text", KEPT)
def test_look_alikes_are_kept(redactor: PiiRedactor, text: str) -> None:
    assert redactor.redact(text) == (text, {})


def test_every_message_is_redacted_and_counts_add_up(redactor: PiiRedactor) -> None:
    messages = [
        {"role": "system", "content": "Escalate to ops@example.com."},
        {"role": "user", "content": "I am at 10.0.0.7, mail me at bob@example.org or ops@example.com"},
        {"role": "assistant", "content": "Your key sk-live-7Hq2Lx9Pw4Zr8Tn3Vb6M is exposed"},
    ]
    redacted, counts = redactor.redact_messages(messages)
    assert [m["role"] for m in redacted] == ["system", "user", "assistant"]
    assert redacted[0]["content"] == "Escalate to <EMAIL_ADDRESS>."
    assert "example" not in " ".join(m["content"] for m in redacted)
    assert counts == {"EMAIL_ADDRESS": 3, "IP_ADDRESS": 1, "API_KEY": 1}


def test_overlapping_findings_leave_nothing_half_redacted(redactor: PiiRedactor) -> None:
    # The IBAN's digits also read as a phone number to ``phonenumbers``.
    text = "IBAN DE89 3704 0044 0532 0130 00, card 4111-1111-1111-1111."
    redacted, _ = redactor.redact(text)
    assert not any(char.isdigit() for char in redacted.replace("IBAN", "")), redacted


def test_only_the_configured_entities_are_redacted() -> None:
    redactor = PiiRedactor(["EMAIL_ADDRESS"])
    redacted, counts = redactor.redact("mail a@example.com or call +1 415-555-0132")
    assert redacted == "mail <EMAIL_ADDRESS> or call +1 415-555-0132"
    assert counts == {"EMAIL_ADDRESS": 1}


def test_entropy() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == pytest.approx(2.0)


# Network access, recorded through Python's audit events (real sockets, nothing replaced).
_network: list[tuple[str, Any]] | None = None


def _audit(event: str, args: Any) -> None:
    if _network is not None and event in ("socket.connect", "socket.getaddrinfo", "http.client.connect"):
        _network.append((event, args))


sys.addaudithook(_audit)


@pytest.fixture
def network_calls() -> Iterator[list[tuple[str, Any]]]:
    global _network
    _network = []
    try:
        yield _network
    finally:
        _network = None


def test_email_recognizer_uses_the_bundled_suffix_list_silently(
    network_calls: list[tuple[str, Any]], caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    pii._offline_tld_extractor.cache_clear()  # load the public-suffix list again, under watch
    with caplog.at_level(logging.DEBUG, logger="tldextract"):
        redacted, _ = PiiRedactor(["EMAIL_ADDRESS"]).redact("mail jane@mail.example.co.uk now")
    assert redacted == "mail <EMAIL_ADDRESS> now"
    assert network_calls == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    captured = capfd.readouterr()
    assert "ConnectionError" not in captured.out + captured.err
