"""Privacy: find private data in a request and keep it on the device.

``detect(text)`` returns the data classes found; it looks for (and only for):

- ``email``: ``name@domain.tld``;
- ``phone``: an international number (``+`` country code, 8 to 15 digits in all, in at most 7
  groups split by spaces, dots, dashes or parentheses), a North
  American number with separators (``555-123-4567``, ``(555) 123-4567``, ``555.123.4567``), or a
  European two-digit grouping (``06 12 34 56 78``);
- ``payment_card``: 13 to 19 digits, together or in groups of 3 to 6 split by spaces or dashes,
  that pass the Luhn check;
- ``us_ssn``: a US social security number written ``AAA-GG-SSSS`` (valid area, group and serial);
- ``iban``: an international bank account number in capitals (2 letters, 2 check digits, 11 to 30
  letters or digits, optionally in groups of 4) whose ISO 7064 mod-97 check holds.

It is a guard against the common mistakes, not a data-loss-prevention product: names, addresses
and free-form secrets are not detected. Every detector runs in time linear in the text (no
pattern can backtrack over the ways to split a run of digits), and ``PrivacyPolicy`` scans at
most ``MAX_SCAN_CHARS`` characters: a longer request is not scanned but kept on the device. User labels (``medical``, ``confidential``...) name what a
detector cannot see; every label is treated as a private data class.

``PrivacyPolicy``: remote backends are off unless egress is granted; a grant still keeps any
detected or labelled class on the device unless that class is granted too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.errors import ConfigError
from policies.routing import Candidate, RouteRequest, Verdict

__all__ = ["DATA_CLASSES", "MAX_SCAN_CHARS", "PrivacyPolicy", "check_labels", "detect", "iban_valid", "luhn_valid"]

DATA_CLASSES = ("email", "iban", "payment_card", "phone", "us_ssn")
MAX_SCAN_CHARS = 2_000_000
"""The most text ``PrivacyPolicy`` scans (about 500k tokens, past any remote model's context).
A longer request is never sent to a remote backend: what it holds is unknown."""

# Each pattern starts with its first character class and checks the character before it in a
# lookbehind after that: the regex engine then skips fast to candidate positions. Every
# repetition is either bounded or over a class the next token cannot match, so a failed
# attempt costs a bounded number of steps and the scan stays linear in the text.
# At most 12 labels in the domain: backtracking from a failed top-level domain stays bounded.
_EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,10}\.[A-Za-z]{2,24}\b")
# One digit per repetition, separators optional and distinct from digits: there is one way
# to read a run, so nothing backtracks. (The old ``\d{1,3}(?:[ .-]?\d{1,5}){2,6}(?!\d)`` tried
# every split of a long digit run: " +" and 40 digits, repeated, took seconds per 100 KB.)
# 25 digits at most are read: a longer run is no phone number anyway.
_PHONE_INTL = re.compile(r"\+(?<![\w+]\+)\d(?:[ .-]?\(?\d\)?){0,24}")
_PHONE_GROUP_BREAK = re.compile(r"[ .()-]+")
_PHONE_NANP_PAREN = re.compile(r"\((?<![\d\w]\()\d{3}\) ?\d{3}[ .-]\d{4}(?!\d)")
_PHONE_NANP = re.compile(r"\d(?<![\d\w]\d)\d{2}[ .-]\d{3}[ .-]\d{4}(?!\d)")
_PHONE_EU = re.compile(r"0(?<![\d\w]0)\d(?:[ .]\d{2}){4}(?!\d)")
# 13-19 digits, or 3 to 5 groups of 3-6 digits (4-4-4-4, 4-6-5, 4-4-4-4-3...): bounded, so linear time.
_CARD = re.compile(r"\d(?<![\d\w]\d)(?:\d{12,18}|\d{2,5}(?:[ -]\d{3,6}){2,4})(?![\d\w])")
_SSN = re.compile(r"\d(?<![\d\w-]\d)(\d\d)-(\d\d)-(\d{4})(?![\d\w-])")
_IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d{2}[A-Z0-9]*(?: [A-Z0-9]+)*")
_LABEL = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits (payment card numbers)."""
    if not digits.isdigit():
        return False
    total = 0
    # From the right, double every second digit and subtract 9 when it passes 9.
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """ISO 13616 shape and ISO 7064 mod-97 check of an IBAN (spaces ignored)."""
    s = text.replace(" ", "").upper()
    if not (15 <= len(s) <= 34 and s[:2].isalpha() and s[2:4].isdigit() and s.isalnum() and s.isascii()):
        return False
    # Move the country code and check digits to the end; letters become 10..35.
    moved = s[4:] + s[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _has_card(text: str) -> bool:
    for match in _CARD.finditer(text):
        groups = re.split(r"[ -]", match.group())
        # Any run of consecutive groups with 13..19 digits in all may be a card.
        for start in range(len(groups)):
            digits = ""
            for group in groups[start:]:
                digits += group
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and luhn_valid(digits):
                    return True
    return False


def _has_iban(text: str) -> bool:
    for match in _IBAN.finditer(text):
        # The words after the check digits may run on into ordinary text: try each word boundary.
        account = ""
        for word in match.group().split(" "):
            account += word
            if len(account) > 34:
                break
            if len(account) >= 15 and iban_valid(account):
                return True
    return False


def _ssn_valid(text: str) -> bool:
    area, group, serial = text.split("-")
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def _has_intl_phone(text: str) -> bool:
    for match in _PHONE_INTL.finditer(text):
        number = match.group()
        groups = [g for g in _PHONE_GROUP_BREAK.split(number) if g]
        if 8 <= sum(ch.isdigit() for ch in number) <= 15 and len(groups) <= 7:
            return True
    return False


def detect(text: str) -> frozenset[str]:
    """The data classes found in ``text`` (a subset of ``DATA_CLASSES``)."""
    found = set()
    if "@" in text and _EMAIL.search(text):
        found.add("email")
    if _has_intl_phone(text) or _PHONE_NANP_PAREN.search(text) or _PHONE_NANP.search(text) or _PHONE_EU.search(text):
        found.add("phone")
    if _has_card(text):
        found.add("payment_card")
    if any(_ssn_valid(m.group()) for m in _SSN.finditer(text)):
        found.add("us_ssn")
    if _has_iban(text):
        found.add("iban")
    return frozenset(found)


def check_labels(labels: Iterable[str]) -> frozenset[str]:
    """User labels, checked: lower-case words of letters, digits, ``_ . -`` (up to 64 characters)."""
    out = frozenset(labels)
    bad = sorted(label for label in out if not isinstance(label, str) or not _LABEL.match(label))
    if bad:
        raise ConfigError(f"data labels must be lower-case words like 'medical' or 'client-data', got {bad}")
    return out


@dataclass(frozen=True)
class PrivacyPolicy:
    """Keeps private data on the device. ``allow_egress=False`` (the default) forbids every remote
    backend; with egress granted, remotes are forbidden only when the request holds a detected or
    labelled class outside ``egress_classes``."""

    allow_egress: bool = False
    egress_classes: frozenset[str] = frozenset()
    name: str = "privacy"

    def consult(self, request: RouteRequest, candidates: tuple[Candidate, ...]) -> Verdict:
        # 1. What private data does the request hold (detected or labelled)? Text past the scan
        #    limit is not scanned: it may hold anything, so it stays on the device.
        if len(request.text) > MAX_SCAN_CHARS:
            return self._unscanned(request, candidates)
        classes = detect(request.text) | request.labels
        found = f"found {', '.join(sorted(classes))}" if classes else "no private data found"
        remotes = frozenset(c.name for c in candidates if c.remote)
        # 2. Nothing remote to guard: pass, but report what was found.
        if not remotes:
            return Verdict("pass", f"{found}; every candidate is local", data_classes=classes)
        # 3. Remote needs a grant, and the grant must cover every class found.
        if not self.allow_egress:
            return Verdict("forbid", f"{found}; remote egress is not granted", forbidden=remotes, refuses_egress=True, data_classes=classes)
        kept = classes - self.egress_classes
        if kept:
            return Verdict("forbid", f"private data ({', '.join(sorted(kept))}) must stay on the device", forbidden=remotes,
                           refuses_egress=True, data_classes=classes)
        return Verdict("pass", f"{found}; egress granted", data_classes=classes)

    def _unscanned(self, request: RouteRequest, candidates: tuple[Candidate, ...]) -> Verdict:
        remotes = frozenset(c.name for c in candidates if c.remote)
        reason = f"the request's {len(request.text)} characters are over the {MAX_SCAN_CHARS}-character scan limit"
        if not remotes:
            return Verdict("pass", f"{reason}; every candidate is local", data_classes=request.labels)
        return Verdict("forbid", f"{reason}; it stays on the device", forbidden=remotes, refuses_egress=True,
                       data_classes=request.labels)
