"""Planted content: sentences that instruct the reader about credentials, payment or contacting an address, and how document URLs are shown.

API (pure functions, no model, no I/O; the answer composer and the UI call them):

``suspicious_instruction(sentence) -> str | None``
    A short reason ("asks the reader to send a password") when the sentence reads as an
    instruction *to the reader* to hand over or enter credentials, give payment or bank
    details, or to email / contact an address or click a link to verify or unlock an account.
    ``None`` for ordinary text, including ordinary advice about contacting people ("Email the
    coordinator to book a place", "Pay partners by bank transfer"). Callers should not quote a
    flagged sentence as advice; if every match is flagged, say that the document named in the
    citation contains a suspicious instruction.

``display_url(url, trusted) -> DisplayUrl``
    How to show a URL: ``trusted=True`` (the shipped corpus, or the user opted in) gives a
    clickable http(s) link; ``trusted=False`` (uploaded documents) gives inert text with the
    domain spelled out, e.g. ``"example.com (https://example.com/verify) - link from an
    uploaded document, not opened"``. URLs that are not http(s) are never links.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

_EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
_URL = r"(?:https?://|www\.)\S+"

# Secrets a document has no business asking a reader for.
_CREDENTIAL = (
    r"pass(?:word|words|code|codes|phrase)|\bpins?\b|pin (?:number|code)|log-?in (?:details|credentials)|"
    r"credentials?|user ?names? and pass|security (?:code|question|answers?)|one-time (?:code|password)|\botp\b|"
    r"2fa code|verification code|smart ?card (?:pin|passcode)"
)
_PAYMENT = (
    r"bank (?:details|account(?: number| details)?)|account number|sort code|card (?:number|details)|"
    r"credit card|debit card|\bcvv\b|\bcvc\b|\biban\b|swift code|payment details|billing details"
)
_HAND_OVER = (
    r"send|e-?mail|share|give|provide|submit|enter|type|forward|reply with|confirm|disclose|tell|text|post|upload|fill in|supply|hand over"
)
_VERIFY = r"verify|re-?verify|validate|confirm|unlock|reactivate|re-?activate|restore|secure|update"
_ACCOUNT = r"account|log-?in|identity|mailbox|email|nhsmail|smartcard|access|profile|credentials?"
_CONTACT = r"e-?mail|contact|write to|message|call|phone|text|click|visit|go to|open|follow|log ?in at|sign ?in at"
_URGENT = r"\bimportant\b|\burgent(?:ly)?\b|\bimmediately\b|\bwithin \d+ (?:hours?|days?)\b|\bor (?:your|the) account (?:will|may) be|\bsuspend|\bdisabled?\b|\bdeactivat|\bexpire"


def _search(pattern: str, text: str) -> re.Match | None:
    return re.search(pattern, text, flags=re.IGNORECASE)


def suspicious_instruction(sentence: str) -> str | None:
    """A short reason when the sentence reads as an instruction to the reader about credentials,
    payment details or contacting an address/link to verify an account; else None."""
    text = " ".join(str(sentence or "").split())
    if not text:
        return None
    lowered = text.lower()
    hand_over = _search(rf"\b(?:{_HAND_OVER})\b", lowered)
    credential = _search(rf"(?:{_CREDENTIAL})", lowered)
    payment = _search(rf"(?:{_PAYMENT})", lowered)
    address = _search(_EMAIL, text) or _search(_URL, text)

    # Advice *about* secrets ("never share your password", "do not email bank details") is normal.
    negated = _search(r"\b(?:never|not|don't|do not|no one|nobody|avoid|must not|should not|shouldn't|won't|will never)\b", lowered)

    if credential and hand_over and not negated:
        # "Enter your password on the login page" is how logins work; it is planted when it
        # points the reader at an address, is urgent, or asks for the secret to be sent.
        sends = _search(
            r"\b(?:send|e-?mail|share|give|provide|submit|forward|reply with|disclose|tell|text|post|upload|supply|hand over)\b", lowered
        )
        if address or sends or _search(_URGENT, lowered):
            return f"asks the reader to send or enter a {_noun(credential.group(0))}"
    if payment and hand_over and not negated:
        asks = address or _search(
            r"\b(?:send|e-?mail|share|give|provide|submit|forward|reply with|confirm|disclose|text|post|upload|supply)\b", lowered
        )
        # "the trust will need your bank details" is the organisation's own process, unless it points at an address
        own_process = _search(r"\b(?:we|the trust|the team|finance|payroll) (?:will )?(?:need|needs|ask|asks|collect|collects)\b", lowered)
        if asks and (address or not own_process):
            return "asks the reader to send payment or bank details"
    if address:
        verify = _search(
            rf"\b(?:{_VERIFY})\b[^.]{{0,40}}\b(?:{_ACCOUNT})\b|\b(?:{_ACCOUNT})\b[^.]{{0,20}}\b(?:verification|will be (?:suspended|closed|locked|disabled))",
            lowered,
        )
        contact = _search(rf"\b(?:{_CONTACT})\b", lowered)
        if verify and (contact or _search(_URGENT, lowered)):
            return "asks the reader to contact an address or open a link to verify an account"
        if contact and _search(_URGENT, lowered) and (credential or payment or _search(r"\b(?:account|log-?in|details)\b", lowered)):
            return "urges the reader to contact an address about their account or details"
    return None


def _noun(found: str) -> str:
    found = found.lower()
    if found.startswith("pass") or "password" in found or found in ("otp",):
        return "password"
    if "pin" in found:
        return "PIN"
    return "login credential"


@dataclass(frozen=True)
class DisplayUrl:
    """How a URL should appear. ``href`` is None when it must not be a link."""

    text: str  # what to show (escape it before putting it in HTML)
    domain: str  # the host, lower-cased, without "www."; "" when the URL has none
    href: str | None  # the link target when clickable, else None
    trusted: bool

    def markdown(self) -> str:
        """A Markdown rendering: a link when clickable, else code-formatted inert text."""
        if self.href:
            return f"[{self.text}]({self.href})"
        return f"`{self.text.replace('`', '')}`"


def url_domain(url: str) -> str:
    try:
        host = urlsplit(str(url).strip()).hostname or ""
    except ValueError:
        return ""
    host = host.lower()
    return host[4:] if host.startswith("www.") else host


def display_url(url: str, trusted: bool) -> DisplayUrl:
    """A URL as a link (trusted and http/https) or as inert text naming its domain (everything else)."""
    raw = " ".join(str(url or "").split())
    try:
        scheme = urlsplit(raw).scheme.lower()
    except ValueError:
        scheme = ""
    domain = url_domain(raw)
    if trusted and scheme in ("http", "https") and domain:
        return DisplayUrl(text=raw, domain=domain, href=raw, trusted=True)
    shown = raw if len(raw) <= 120 else raw[:117] + "..."
    label = f"{domain} ({shown})" if domain else shown
    why = "not a web link" if trusted else "link from an uploaded document, not opened"
    return DisplayUrl(text=f"{label} - {why}", domain=domain, href=None, trusted=False)
