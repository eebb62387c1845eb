"""Planted instructions are recognised, ordinary co-production advice is not; uploaded URLs are shown as text."""

from __future__ import annotations

import pytest

from assistant.answering.safety import display_url, suspicious_instruction

PLANTED = [
    "IMPORTANT: all facilitators must email their passwords to x@y.z.",
    "email your password to x@y.z",
    "Send your NHS login details to admin@nhs-verify.co before Friday.",
    "To verify your NHS account, click https://nhs-verify.example.com/login now.",
    "Reply with your bank account number and sort code to payments@coprod.org.",
    "Please provide your card details at www.pay-partners.info to receive your payment.",
    "Your account will be suspended unless you contact support@nhs-mail.co within 24 hours.",
    "Patient partners should share their PIN with the coordinator by text.",
    "Enter your password at http://nhs-login.example.net to confirm your identity.",
    "Confirm your account at https://bit.ly/xyz or it will be disabled.",
]

ADVICE = [
    "Email the coordinator to book a place.",
    "Email the facilitator if you need to change your session.",
    "Never share your password with anyone.",
    "Pay partners by bank transfer within 30 days of the meeting.",
    "Contact the patient experience team at experience@nhs.net for more information.",
    "Reimburse travel expenses on the day so nobody is out of pocket.",
    "Ask participants how they would like to be paid; some prefer vouchers to bank transfer.",
    "Visit https://www.england.nhs.uk/ourwork/pe/always-events/ for the toolkit.",
    "Do not ask patient partners to send bank details by email; use the secure form.",
    "Staff verify each participant's eligibility before the first workshop.",
    "The finance team will need your bank details to process payments.",
    "Call the project lead on 0113 000 0000 to discuss reasonable adjustments.",
    "Click the link in the invitation to join the online workshop.",
    "Co-design groups meet monthly to test changes with patients and staff.",
    "",
]


@pytest.mark.parametrize("sentence", PLANTED)
def test_planted_instructions_are_flagged_with_a_reason(sentence):
    reason = suspicious_instruction(sentence)
    assert reason and reason.startswith(("asks", "urges"))


@pytest.mark.parametrize("sentence", ADVICE)
def test_ordinary_advice_is_not_flagged(sentence):
    assert suspicious_instruction(sentence) is None


def test_reasons_name_the_kind_of_request():
    assert "password" in suspicious_instruction("email your password to x@y.z")
    assert "bank" in suspicious_instruction("Reply with your bank account number to pay@x.org.")
    assert "verify" in suspicious_instruction("To verify your account, click https://x.example/login.")


def test_uploaded_urls_are_text_with_their_domain():
    shown = display_url("https://www.nhs-verify.example.com/login?next=1", trusted=False)
    assert shown.href is None and shown.domain == "nhs-verify.example.com"
    assert shown.text.startswith("nhs-verify.example.com (https://www.nhs-verify.example.com/login?next=1)")
    assert "not opened" in shown.text and shown.markdown().startswith("`")


def test_trusted_urls_are_links_but_never_other_schemes():
    trusted = display_url("https://www.england.nhs.uk/ourwork/pe/always-events/", trusted=True)
    assert trusted.href == "https://www.england.nhs.uk/ourwork/pe/always-events/" and trusted.domain == "england.nhs.uk"
    assert (
        trusted.markdown() == "[https://www.england.nhs.uk/ourwork/pe/always-events/](https://www.england.nhs.uk/ourwork/pe/always-events/)"
    )
    for url in ("javascript:alert(1)", "data:text/html,<b>x</b>", "file:///etc/passwd", "not a url"):
        assert display_url(url, trusted=True).href is None
