"""The decision step on its own: from one attempt's result (and a look-up's answer) to the next
move, without a client, a clock or a pacer."""

from __future__ import annotations

import httpx
import pytest

from sink.errors import CredentialsError, WaitTooLong
from sink.model import Status
from sink.send.classify import classify
from sink.send.decide import (
    Attempted,
    Looked,
    Purpose,
    Step,
    Tally,
    Tried,
    Wait,
    after_look_up,
    decide,
    throttle_wait,
)
from sink.send.settings import Retry

RETRY = Retry()


class Draws:
    """A ``uniform`` that returns the top of its range and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, low: float, high: float) -> float:
        self.calls += 1
        return high


def answered(status: int, body: object = None, headers: dict[str, str] | None = None) -> Attempted:
    response = httpx.Response(status, json=body or {"message": f"status {status}"}, headers=headers)
    verdict = classify(response)
    delay = verdict.delay
    asked = f"Retry-After: {headers['Retry-After']}" if headers and delay is not None else ""
    return Attempted(Tried.ANSWERED, status, verdict, delay=delay, asked=asked, response=response)


def test_a_2xx_is_done() -> None:
    draws = Draws()
    move = decide(answered(201), Tally(), RETRY, draws)
    assert move.step is Step.DONE
    assert draws.calls == 0


def test_a_5xx_is_retried_after_a_full_jitter_backoff() -> None:
    draws = Draws()
    move = decide(answered(503), Tally(failures=2), RETRY, draws)
    assert move.step is Step.RETRY
    assert move.wait is Wait.OWN and not move.counts_throttle
    assert move.delay == 0.5 * 2**2  # the top of [0, base * 2**failures]
    assert move.error == "HTTP 503: status 503"


def test_the_backoff_is_capped() -> None:
    move = decide(answered(500), Tally(failures=4), Retry(max_attempts=10), Draws())
    assert move.delay == 8.0
    move = decide(answered(500), Tally(failures=9), Retry(max_attempts=20), Draws())
    assert move.delay == RETRY.backoff_cap


def test_the_last_attempt_gives_up() -> None:
    move = decide(answered(502), Tally(failures=RETRY.max_attempts - 1), RETRY, Draws())
    assert move.step is Step.GIVE_UP
    assert move.error == ""  # the attempt's own error says why


def test_a_retry_that_would_pass_the_time_limit_gives_up() -> None:
    tally = Tally(failures=0, elapsed=RETRY.max_elapsed - 0.1)
    assert decide(answered(500), tally, RETRY, Draws()).step is Step.GIVE_UP


def test_a_dropped_connection_is_retried() -> None:
    move = decide(Attempted(Tried.DROPPED, error="ReadTimeout: slow"), Tally(), RETRY, Draws())
    assert move.step is Step.RETRY
    assert move.error == "ReadTimeout: slow"


def test_a_429_waits_what_it_asks_and_counts_as_a_throttle() -> None:
    draws = Draws()
    move = decide(answered(429, headers={"Retry-After": "12"}), Tally(), RETRY, draws)
    assert move.step is Step.RETRY
    assert move.delay == 12.0
    assert move.wait is Wait.SHARED and move.counts_throttle
    assert draws.calls == 0  # a delay Hub gave is not drawn


def test_a_429_waits_at_least_a_second() -> None:
    move = decide(answered(429, headers={"Retry-After": "0"}), Tally(), RETRY, Draws())
    assert move.delay == 1.0


def test_a_429_asking_too_long_gives_up_naming_the_header() -> None:
    attempted = answered(429, headers={"Retry-After": "100000"})
    move = decide(attempted, Tally(), RETRY, Draws())
    assert move.step is Step.GIVE_UP
    assert "Retry-After: 100000" in move.error and "retry.max_seconds (300 s)" in move.error


def test_too_many_429s_give_up() -> None:
    tally = Tally(throttled=RETRY.max_throttled)
    move = decide(answered(429, headers={"Retry-After": "1"}), tally, RETRY, Draws())
    assert move.step is Step.GIVE_UP
    assert f"{RETRY.max_throttled + 1} times" in move.error


def test_the_token_exchange_429_holds_everyone_or_stops_the_run() -> None:
    throttled = Attempted(Tried.TOKEN_THROTTLED, delay=5.0, asked="Retry-After: 5")
    move = decide(throttled, Tally(), RETRY, Draws())
    assert (move.step, move.wait, move.delay) == (Step.RETRY, Wait.HOLD, 5.0)
    forever = Attempted(Tried.TOKEN_THROTTLED, delay=1e9, asked="Retry-After: 1000000000")
    move = decide(forever, Tally(), RETRY, Draws())
    assert move.step is Step.STOP
    assert isinstance(move.stop, WaitTooLong)
    assert "on the token exchange" in str(move.stop)


def test_a_token_exchange_5xx_with_a_delay_holds_without_a_backoff_of_its_own() -> None:
    draws = Draws()
    move = decide(Attempted(Tried.TOKEN_FAILED, delay=7.0), Tally(), RETRY, draws)
    assert (move.step, move.delay, move.hold) == (Step.RETRY, 0.0, 7.0)
    assert draws.calls == 0  # no jitter drawn for a wait that is not taken
    move = decide(Attempted(Tried.TOKEN_FAILED), Tally(), RETRY, draws)
    assert move.step is Step.RETRY and move.hold is None and draws.calls == 1


def test_credentials_refused_stop_the_run() -> None:
    move = decide(answered(401), Tally(), RETRY, Draws())
    assert move.step is Step.STOP
    assert isinstance(move.stop, CredentialsError)


def test_a_conflict_is_looked_up() -> None:
    move = decide(answered(409, {"message": "exists"}), Tally(), RETRY, Draws())
    assert (move.step, move.purpose) == (Step.LOOK_UP, Purpose.CONFLICT)


def test_a_deletes_404_is_looked_up_other_404s_are_rejected() -> None:
    move = decide(answered(404), Tally(delete=True), RETRY, Draws())
    assert (move.step, move.purpose) == (Step.LOOK_UP, Purpose.GONE)
    move = decide(answered(404), Tally(), RETRY, Draws())
    assert (move.step, move.status, move.with_body) == (Step.SETTLE, Status.REJECTED, True)
    assert move.error == "HTTP 404: status 404"


@pytest.mark.parametrize(
    ("tried", "status"),
    [
        (Tried.INVALID, Status.REJECTED),
        (Tried.HOPELESS, Status.FAILED),
        (Tried.BROKEN, Status.FAILED),
    ],
)
def test_failures_that_sending_again_cannot_mend_settle_at_once(
    tried: Tried, status: Status
) -> None:
    move = decide(Attempted(tried, error="why"), Tally(), RETRY, Draws())
    assert (move.step, move.status, move.error) == (Step.SETTLE, status, "why")


@pytest.mark.parametrize(
    ("purpose", "looked", "step", "status"),
    [
        (Purpose.RESEND, Looked.PRESENT, Step.RECOVERED, None),
        (Purpose.RESEND, Looked.ABSENT, Step.SEND, None),
        (Purpose.RESEND, Looked.UNKNOWN, Step.SETTLE, Status.FAILED),
        (Purpose.RESEND, Looked.FAILED, Step.RETRY, None),
        (Purpose.RESEND, Looked.SETTLES, Step.SETTLE, Status.REJECTED),
        (Purpose.CONFLICT, Looked.PRESENT, Step.RECOVERED, None),
        (Purpose.CONFLICT, Looked.ABSENT, Step.SETTLE, Status.REJECTED),
        (Purpose.CONFLICT, Looked.UNKNOWN, Step.SETTLE, Status.REJECTED),
        (Purpose.CONFLICT, Looked.FAILED, Step.SETTLE, Status.REJECTED),
        (Purpose.GONE, Looked.ABSENT, Step.SETTLE, Status.REJECTED),
        (Purpose.GONE, Looked.PRESENT, Step.SETTLE, Status.OK),
        (Purpose.GONE, Looked.UNKNOWN, Step.SETTLE, Status.OK),
        (Purpose.GONE, Looked.SETTLES, Step.SETTLE, Status.REJECTED),
    ],
)
def test_what_a_look_up_answer_leads_to(
    purpose: Purpose, looked: Looked, step: Step, status: Status | None
) -> None:
    move = after_look_up(purpose, looked, Tally(), RETRY, Draws(), error="e", reason="no team")
    assert move.step is step
    if status is not None:
        assert move.status is status


def test_a_resend_that_cannot_be_looked_up_stays_in_doubt_and_is_not_sent() -> None:
    move = after_look_up(Purpose.RESEND, Looked.UNKNOWN, Tally(), RETRY, Draws(), error="503")
    assert move.in_doubt
    assert move.error.startswith("503; the request may have reached Docker Hub")
    assert not move.with_body


def test_a_conflict_found_in_place_already_existed_unless_an_attempt_was_ambiguous() -> None:
    plain = after_look_up(Purpose.CONFLICT, Looked.PRESENT, Tally(), RETRY, Draws())
    assert plain.already_existed
    doubt = Tally(ambiguous=True)
    assert not after_look_up(
        Purpose.CONFLICT, Looked.PRESENT, doubt, RETRY, Draws()
    ).already_existed


def test_a_deletes_target_gone_is_ok_and_says_so() -> None:
    move = after_look_up(Purpose.GONE, Looked.UNKNOWN, Tally(), RETRY, Draws())
    assert move.already_gone and move.with_body


def test_a_settling_look_up_rejects_with_its_reason() -> None:
    move = after_look_up(
        Purpose.CONFLICT, Looked.SETTLES, Tally(), RETRY, Draws(), reason="no team 'devs'"
    )
    assert (move.status, move.error, move.with_body) == (Status.REJECTED, "no team 'devs'", True)


def test_throttle_wait_without_a_retry_after_backs_off_from_a_second() -> None:
    low = throttle_wait(Tally(), RETRY, None, "", lambda a, b: 0.0)
    assert low == (1.0, None)
    high = throttle_wait(Tally(throttled=3), RETRY, None, "", lambda a, b: b)
    assert high == (4.0, None)  # the fourth 429: base * 2**3
