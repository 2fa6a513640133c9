"""Schemathesis hooks for tests/contract.rs: what a client of the repository project knows
that a JSON Schema cannot say. The document names these formats and schemes; this file
teaches the tester to produce them, as any client has to.

- `x-signature` (the `crm_webhook` scheme): HMAC-SHA256 over "<timestamp>.<raw body>". The
  test sends the placeholder `sign`, which is replaced by the real signature of the body
  actually sent; any other value (a missing header, a generated or an invalid one) goes as
  it is, so the auth checks still see the webhook refuse it.
- `format: inn`: a Russian taxpayer number with valid check digits.
- What the MasterDeal document states in words because JSON Schema cannot: a date range's
  `from` is not after its `to`, and money sent as a JSON number has at most 15 significant
  digits (a float keeps no more). Bodies breaking them are not generated.
"""

import hashlib
import hmac
import os
import time

import requests
import schemathesis
from hypothesis import strategies as st

PLACEHOLDER = "sign"
SECRET = os.environ["CRM_WEBHOOK_SECRET"].encode()
# The webhook refuses a signature it has seen (a replay): one timestamp per body.
_signed: set[tuple[int, bytes]] = set()


class CrmSignature(requests.auth.AuthBase):
    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if request.headers.get("x-signature") != PLACEHOLDER:
            return request
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        timestamp = int(time.time())
        while (timestamp, body) in _signed:
            timestamp += 1
        _signed.add((timestamp, body))
        digest = hmac.new(SECRET, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        request.headers["x-timestamp"] = str(timestamp)
        request.headers["x-signature"] = f"sha256={digest}"
        return request


@schemathesis.hook
def before_call(context, case, kwargs):
    # Applied by `requests` to the prepared request, whose body is the exact bytes sent.
    kwargs["auth"] = CrmSignature()


RANGES = [("from", "to"), ("flight_from", "flight_to")]


def _significant_digits(number: float) -> int:
    mantissa = repr(number).lower().split("e")[0].lstrip("-")
    digits = mantissa.replace(".", "").lstrip("0")
    return len(digits) if "." in mantissa else len(digits.rstrip("0")) or 1


def _keeps_words(value) -> bool:
    if isinstance(value, float):
        return _significant_digits(value) <= 15
    if isinstance(value, list):
        return all(_keeps_words(item) for item in value)
    if isinstance(value, dict):
        for start, end in RANGES:
            first, last = value.get(start), value.get(end)
            if isinstance(first, str) and isinstance(last, str) and first > last:
                return False
        return all(_keeps_words(item) for item in value.values())
    return True


@schemathesis.hook
def filter_body(context, body):
    if context.operation is None or not context.operation.path.startswith("/api/v1/"):
        return True
    return _keeps_words(body)


WEIGHTS_10 = [2, 4, 10, 3, 5, 9, 4, 6, 8]
WEIGHTS_11 = [7, 2, 4, 10, 3, 5, 9, 4, 6, 8]
WEIGHTS_12 = [3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8]


def _check_digit(digits: list[int], weights: list[int]) -> int:
    return sum(d * w for d, w in zip(digits, weights)) % 11 % 10


def _inn(digits: list[int]) -> str:
    if len(digits) == 9:
        digits = digits + [_check_digit(digits, WEIGHTS_10)]
    else:
        digits = digits + [_check_digit(digits, WEIGHTS_11)]
        digits = digits + [_check_digit(digits, WEIGHTS_12)]
    return "".join(map(str, digits))


_digit = st.integers(min_value=0, max_value=9)
schemathesis.openapi.format(
    "inn",
    st.one_of(st.lists(_digit, min_size=9, max_size=9), st.lists(_digit, min_size=10, max_size=10)).map(_inn),
)
