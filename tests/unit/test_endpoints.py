"""What an endpoint's rate limits are said to mean at the start of a run."""

import pytest

from ray_apps.config import EndpointConfig
from ray_apps.endpoints import rate_limits
from ray_apps.tables import duration


def test_no_limit_says_nothing():
    assert rate_limits(EndpointConfig(model="m")) is None


def test_a_request_limit_spaces_requests_by_its_minute_share():
    said = rate_limits(EndpointConfig(model="m", requests_per_minute=240))
    assert said == "rate limited (requests_per_minute=240): requests at least 0.25 s apart, 1,000 in at least 4 min"


def test_a_token_limit_counts_each_requests_max_tokens_and_the_stricter_limit_wins():
    tokens = EndpointConfig(model="m", tokens_per_minute=6000, max_tokens=100)  # 100 tokens: 1 s of the minute's 6000
    assert "at least 1 s apart" in rate_limits(tokens)
    both = EndpointConfig(model="m", requests_per_minute=30, tokens_per_minute=6000, max_tokens=100)
    assert "(requests_per_minute=30, tokens_per_minute=6000): requests at least 2 s apart" in rate_limits(both)


def test_a_limit_the_schema_accepts_but_no_run_can_wait_for_is_said_in_years():
    said = rate_limits(EndpointConfig(model="m", requests_per_minute=1e-06))
    assert said.endswith("requests at least 1.9 years apart, 1,000 in at least 1,902.6 years")


@pytest.mark.parametrize(
    "seconds, text",
    [(0.25, "0.25 s"), (59.4, "59 s"), (600, "10 min"), (7199, "120 min"), (9000, "2.5 h"), (3 * 86400, "3.0 days")],
)
def test_durations_read_in_one_unit(seconds, text):
    assert duration(seconds) == text
