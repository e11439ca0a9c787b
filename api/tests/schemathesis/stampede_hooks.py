"""Schemathesis hooks for api/tests/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

Two things the tool cannot know from the document alone:

- `no_leaked_internals`, an extra check: no error reply carries what only the server
  should see (SQL, a Redis reply, a panic, a source path, a stack trace). Replies that
  succeed are left alone: they echo client text (a campaign's name) and `/readyz`
  names its dependencies.
- `filter_failure` drops a claim's "schema-valid request rejected" whose 422 is the
  documented "quantity is more than you may still take" (it depends on what the user
  holds). And the rules across fields of `POST /v1/campaigns` that a JSON Schema
  cannot state (`ends_at` after `starts_at` and in the future; a red packet's
  `total_cents` at least `count * min_cents`) are described in the document and answer
  422. A "schema-valid request rejected" failure is dropped only when the body really
  breaks one of them and the 422's message names that rule; any other is kept.
- `POST /v1/events`: an event's `at` must lie within the last 24 hours (a window that
  moves with the clock) and its `props` fit 1 KiB serialized, and the whole body 16 KiB:
  rules the document states in words. A "schema-valid request rejected" is dropped only
  when the body really breaks one and the reply says so (the 422 names it, or 413).
- Every route: a body over 16 KiB gets 413 before it is read (the contract's limit, which
  a JSON Schema cannot state). A schema-breaking body that is also over the limit (101
  events break `maxItems`, and they are over 16 KiB) is rejected by that 413, which the
  tool's list of rejecting statuses lacks. A "schema-violating request accepted" is
  dropped only when the reply is our 413 and the body as sent really was over 16 KiB.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import schemathesis

# Words that only an internal detail would put in a reply.
LEAK = re.compile(
    r"sqlx|sqlite|postgres|mysql|mariadb|syntax error|SELECT |INSERT |UPDATE |"
    r"redis|WRONGTYPE|NOSCRIPT|ERR |panicked|stack backtrace|Traceback|"
    r"/src/|\.rs:\d|thread '|RUST_BACKTRACE|Connection refused|os error",
    re.IGNORECASE,
)


@schemathesis.check
def no_leaked_internals(ctx, response, case):
    """Fail on an error reply whose text names an internal detail."""
    if response.status_code < 400:
        return None
    text = response.text or ""
    found = LEAK.search(text)
    if found:
        raise AssertionError(f"The reply leaks an internal detail ({found.group(0)!r}): {text[:300]}")
    return None


def _time(value):
    """Milliseconds since the epoch of an RFC 3339 time, or None."""
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        return None
    return int(t.timestamp() * 1000)


DAY_MS = 24 * 3600 * 1000


def _cross_field_rule(body):
    """The message fragment of the cross-field rule `body` breaks, or None."""
    if not isinstance(body, dict):
        return None
    now = int(datetime.now(timezone.utc).timestamp() * 1000)
    starts = _time(body.get("starts_at")) if "starts_at" in body else now
    ends = _time(body.get("ends_at")) if "ends_at" in body else (starts + DAY_MS if starts is not None else None)
    if starts is not None and ends is not None:
        if ends <= starts:
            return "ends_at must be after starts_at"
        # A few seconds of slack either way: the request took time to arrive.
        if ends <= now + 5_000:
            return "ends_at must be in the future"
    if body.get("kind") == "red_packet":
        count, floor, total = body.get("count"), body.get("min_cents", 1), body.get("total_cents")
        if all(isinstance(v, int) for v in (count, floor, total)):
            if count * floor > 10**12:
                return "count * min_cents must not exceed"
            if total < count * floor:
                return "total_cents must be between"
    return None


# The claim's documented 422 that depends on state, not on the body: a quantity above
# what the user may still take (the contract's `422 invalid_request`).
OVER_LIMIT = "quantity is more than you may still take"


def _message(response):
    try:
        return json.loads(response.text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return None


MAX_AGE_MS = DAY_MS
MAX_AHEAD_MS = 5 * 60 * 1000
MAX_PROPS = 1024
MAX_BODY = 16 * 1024


def _events_rule(body, status, message):
    """Whether a schema-valid POST /v1/events body really breaks a rule stated in words
    and the reply (`status`, `message`) names that rule."""
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        return False
    if status == 413:
        # However the client spaced or escaped it, the body was over the limit.
        sizes = [len(json.dumps(body, ensure_ascii=a).encode()) for a in (True, False)]
        return max(sizes) > MAX_BODY
    if status != 422 or message is None:
        return False
    now = int(datetime.now(timezone.utc).timestamp() * 1000)
    for i, e in enumerate(body["events"]):
        if not isinstance(e, dict):
            continue
        at = _time(e.get("at")) if "at" in e else now
        # A few seconds of slack: the request took time to arrive.
        if at is not None and (at < now - MAX_AGE_MS + 5_000 or at > now + MAX_AHEAD_MS - 5_000):
            if f"events[{i}].at must be within" in message:
                return True
        props = e.get("props")
        if isinstance(props, dict):
            size = len(json.dumps(props, separators=(",", ":"), ensure_ascii=False).encode())
            if size > MAX_PROPS - 16 and f"events[{i}].props must be at most" in message:
                return True
    return False


def _sent_bytes(response):
    """The size of the body as it was sent, or 0."""
    body = getattr(response.request, "body", None)
    if isinstance(body, str):
        return len(body.encode())
    return len(body) if isinstance(body, bytes) else 0


def _too_large(response):
    """Whether the reply is the contract's 413 to a body that really was over 16 KiB."""
    if response.status_code != 413 or _sent_bytes(response) <= MAX_BODY:
        return False
    try:
        return json.loads(response.text)["error"]["code"] == "payload_too_large"
    except (ValueError, KeyError, TypeError):
        return False


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keep every failure but a documented cross-field 422 on POST /v1/campaigns, the
    claim's documented over-the-limit 422, the events' rules stated in words, and the
    413 that rejects a schema-breaking body over the size limit."""
    if failure.code == "ST201" and _too_large(response):
        return False
    if (
        failure.code == "ST202"
        and case.operation.method.upper() == "POST"
        and case.operation.path == "/v1/events"
    ):
        return not _events_rule(case.body, response.status_code, _message(response))
    if failure.code != "ST202" or response.status_code != 422:
        return True
    if case.operation.method.upper() != "POST":
        return True
    if case.operation.path == "/v1/campaigns/{id}/claims":
        message = _message(response)
        return message is None or OVER_LIMIT not in message
    if case.operation.path != "/v1/campaigns":
        return True
    rule = _cross_field_rule(case.body)
    if rule is None:
        return True
    try:
        message = json.loads(response.text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return True
    return rule not in message
