"""The shared reference servers, started for real, driven by the bench's own client.

Starts real processes (``slow``); skipped when ``../shared/bench-references`` is absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import measure
from bench.references import SHARED, TRIO_STREAM, load_reference_key, references_dir, start_shared
from bench.scenarios import SCENARIOS, sign
from bench.servers import Server
from bench.wire import BenchError

pytestmark = pytest.mark.slow

REFERENCES = references_dir()
needs_references = pytest.mark.skipif(
    not (REFERENCES / "wire.py").is_file(), reason=f"no shared references in {REFERENCES}"
)


@pytest.fixture
def trio_stream(tmp_path: Path) -> Iterator[Server]:
    server = start_shared(TRIO_STREAM, tmp_path, REFERENCES)
    try:
        yield server
    finally:
        server.stop()


@needs_references
def test_the_key_is_read_from_the_shared_wire_module() -> None:
    assert load_reference_key(REFERENCES) == bytes(range(0x40, 0x60))


@needs_references
@pytest.mark.parametrize("shape", ["sequential", "pipelined"])
def test_a_shared_reference_answers_the_bench_workload(trio_stream: Server, shape: str) -> None:
    workload = sign(trio_stream)
    assert workload.reference_key is not None  # the warm-up recomputes the first signature
    result = measure(trio_stream, SCENARIOS[shape].shape, workload, 0.2)
    assert result.target == TRIO_STREAM
    assert result.requests > 0 and result.rate > 0
    assert 0 < result.p50_us <= result.p99_us


@needs_references
def test_a_wrong_key_voids_the_measurement(trio_stream: Server) -> None:
    trio_stream.reference_key = b"\x00" * 32
    with pytest.raises(BenchError, match="does not match"):
        measure(trio_stream, SCENARIOS["sequential"].shape, sign(trio_stream), 0.2)


def test_a_missing_folder_is_a_bench_error(tmp_path: Path) -> None:
    for name in SHARED:
        with pytest.raises(BenchError, match="not found"):
            start_shared(name, tmp_path, tmp_path / "absent")
