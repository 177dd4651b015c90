"""The h2load cross-check reads h2load's summary correctly and frames the request as gRPC does."""

from __future__ import annotations

import pytest

from loadtest.h2load_check import grpc_frame, parse_h2load
from loadtest.stack import BenchError
from zentra.cards.v1 import authorization_pb2

# What h2load 1.52 (Debian's nghttp2-client) printed for 100 calls to the null server.
SUMMARY = """\
finished in 18.13ms, 5514.81 req/s, 594.08KB/s
requests: 100 total, 100 started, 100 done, 98 succeeded, 2 failed, 0 errored, 0 timeout
status codes: 98 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 10.77KB (11031) total, 375B (375) headers (space savings 95.37%), 4.98KB (5100) data
                     min         max         mean         sd        +/- sd
time for request:      374us      4.84ms       679us       720us    95.00%
time for connect:      471us       471us       471us         0us   100.00%
time to 1st byte:     1.77ms      1.77ms      1.77ms         0us   100.00%
req/s           :    5620.46     5620.46     5620.46        0.00   100.00%
"""


def test_summary_numbers_are_read_with_their_units() -> None:
    assert parse_h2load(SUMMARY) == {
        "requests": 100,
        "done": 100,
        "succeeded": 98,
        "failed": 2,
        "status_2xx": 98,
        "per_s": 5514.81,
        "min_ms": pytest.approx(0.374),
        "max_ms": pytest.approx(4.84),
        "mean_ms": pytest.approx(0.679),
    }


def test_output_without_a_summary_is_an_error() -> None:
    with pytest.raises(BenchError, match="no summary"):
        parse_h2load("starting benchmark...\nconnect to 127.0.0.1 port 1 failed\n")


def test_frame_is_an_uncompressed_length_prefixed_message() -> None:
    message = authorization_pb2.AuthorizeRequest(authorization_id="a" * 300, card_id="card_1").SerializeToString()
    framed = grpc_frame(message)
    assert framed[0] == 0 and int.from_bytes(framed[1:5], "big") == len(message) > 255
    assert authorization_pb2.AuthorizeRequest.FromString(framed[5:]).card_id == "card_1"
