"""metrics.Tally: what the hot path counts in plain Python reaches prometheus-client exactly as
if every increment and observation had been written at once."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram

from authz_server.metrics import LATENCY_BUCKETS_S, Tally

SECONDS = st.one_of(
    st.sampled_from([0.0, *LATENCY_BUCKETS_S, 2.0, 1e-9]),
    st.floats(min_value=0.0, max_value=5.0, allow_nan=False),
)


def samples(registry: CollectorRegistry, prefix: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name.removeprefix(prefix), tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


@given(observations=st.lists(SECONDS, max_size=60), increments=st.lists(st.sampled_from("ab"), max_size=30))
def test_flushed_tally_equals_direct_writes(observations: list[float], increments: list[str]) -> None:
    direct, tallied = CollectorRegistry(), CollectorRegistry()
    h_direct = Histogram("d_seconds", "x", buckets=LATENCY_BUCKETS_S, registry=direct)
    h_tallied = Histogram("t_seconds", "x", buckets=LATENCY_BUCKETS_S, registry=tallied)
    c_direct = Counter("d_calls", "x", ["k"], registry=direct)
    c_tallied = Counter("t_calls", "x", ["k"], registry=tallied)
    tally = Tally()
    for seconds in observations:
        h_direct.observe(seconds)
        tally.observe(h_tallied, seconds)
    for label in increments:
        c_direct.labels(label).inc()
        tally.inc(c_tallied.labels(label))
    assert samples(tallied, "t_")["seconds_count", ()] == 0, "nothing is written before the flush"
    tally.flush()
    got, want = samples(tallied, "t_"), samples(direct, "d_")
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert abs(got[key] - value) <= 1e-9 * max(1.0, abs(value)), (key, got[key], value)
    tally.flush()  # a second flush writes nothing more
    assert samples(tallied, "t_") == got
