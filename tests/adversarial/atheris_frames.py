"""Coverage-guided fuzzing (atheris/libFuzzer) of the two parsers hostile bytes reach first:
``walletd_wire.framing.FrameDecoder`` and ``walletd.dispatch.Dispatcher.decode``.

Run: ``python -m tests.adversarial.atheris_frames [libFuzzer flags]`` (``make fuzz`` does, after
installing the ``fuzz`` extra). Without flags it runs ``-runs=2000000 -max_total_time=60``
(whichever ends first).

The documented outcomes are the only ones allowed:

* FrameDecoder, fed the input in fuzzer-chosen chunks: ``next_frame`` returns a payload or
  ``None``, or raises ``FrameTooLargeError`` (after which the stream is abandoned). The frames
  must not depend on how the input was split, and none may exceed the limit.
* Dispatcher.decode: returns a typed request or an error response with code ``bad_request`` or
  ``unknown_op`` that the connection can encode; it never raises.

Anything else is a crash: libFuzzer stops, prints the input and saves it as ``crash-*``. libFuzzer
exits the process when it is done, so the fuzzing runs in a child process and this parent
prints the summary and exits non-zero on a crash.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_FLAGS = ["-runs=2000000", "-max_total_time=60"]
ALLOWED_CODES = {"bad_request", "unknown_op"}
MAX_FRAME = 4096  # small, so oversized prefixes and frames at the limit are both reachable


def seeds() -> list[bytes]:
    """One valid request per op (and a few frames) to start the corpus from."""
    import msgspec

    from walletd_wire.framing import encode_frame

    from .wire import FIELDS

    sample: dict[str, Any] = {
        "user_id": "ålïce-ünïcødé",  # multi-byte UTF-8: one flipped byte makes it invalid
        "message": b"m",
        "signature": b"s" * 32,
        "messages": [b"a"],
        "items": [{"message": b"a", "signature": b"s" * 32}],
        "reason": "r",
        "max_age_days": 5,
        "max_signatures": 5,
        "auto_rotate": True,
        "metadata": {"k": "v"},
        "backup_id": "0" * 32,
        "since": 1.5,
        "limit": 10,
        "steps": [{"prompt": "q", "expected_response_hash": "a" * 64}],
        "responses": ["a" * 64],
    }
    out = []
    for op, fields in FIELDS.items():
        doc = {"op": op, "id": 1, **{f: sample[f] for f in fields if f in sample}}
        payload = msgspec.msgpack.encode(doc)
        out += [b"\x01" + payload, b"\x00" + encode_frame(payload) * 2]
    return out


def child(argv: list[str]) -> None:
    try:
        import atheris
    except ImportError:
        print(
            "atheris_frames: atheris is not installed; install the fuzz extra with\n"
            "  .venv/bin/pip install -e '.[fuzz]'   (or run `make fuzz`)",
            file=sys.stderr,
        )
        sys.exit(2)

    with atheris.instrument_imports(include=["wallet_client", "walletd"]):
        import msgspec

        import walletd_wire as wire
        from walletd.config import Config
        from walletd.logs import configure_logging
        from walletd.ops.daemon import build_daemon
        from walletd_wire.framing import FrameDecoder, FrameTooLargeError

    configure_logging("error")
    dispatcher = build_daemon(Config(ephemeral=True)).dispatcher
    encoder = msgspec.msgpack.Encoder()

    def frames_of(chunks: list[bytes]) -> tuple[list[bytes], bool]:
        decoder = FrameDecoder(MAX_FRAME)
        frames: list[bytes] = []
        for chunk in chunks:
            decoder.feed(chunk)
            try:
                while (frame := decoder.next_frame()) is not None:
                    frames.append(frame)
            except FrameTooLargeError as exc:
                too_large = exc
                break
        else:
            return frames, False
        assert too_large.announced > too_large.limit == MAX_FRAME
        return frames, True

    def test_frames(data: bytes) -> None:
        cuts = sorted({b % (len(data) + 1) for b in data[:16]})
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        split, too_large = frames_of(chunks)
        whole, too_large_whole = frames_of([data])
        assert (split, too_large) == (whole, too_large_whole), "frames depend on the split"
        assert all(len(f) <= MAX_FRAME for f in whole)
        assert sum(len(f) + 4 for f in whole) <= len(data)

    def test_decode(payload: bytes) -> None:
        result = dispatcher.decode(payload)
        if isinstance(result, wire.ErrorResponse):
            assert result.error.code in ALLOWED_CODES, result.error
        else:
            assert isinstance(result, wire.Request), type(result)
        encoder.encode(result)  # the connection must be able to send the answer

    def test_one_input(data: bytes) -> None:
        # The first byte picks the target (odd: the request decoder), the rest is its input.
        if data[:1] and data[0] & 1:
            test_decode(data[1:])
        else:
            test_frames(data[1:])

    atheris.Setup([sys.argv[0], *argv], test_one_input)
    atheris.Fuzz()


def main(argv: list[str]) -> int:
    flags = [a for a in argv if a.startswith("-")] or DEFAULT_FLAGS
    if not any(f.startswith("-artifact_prefix=") for f in flags):
        # Never in the work tree: a crash input is kept where the summary says.
        crashes = Path(tempfile.gettempdir()) / "walletd-atheris-crashes"
        crashes.mkdir(exist_ok=True)
        flags = [*flags, f"-artifact_prefix={crashes}/"]
    with tempfile.TemporaryDirectory(prefix="walletd-atheris-") as corpus:
        for i, seed in enumerate(seeds()):
            Path(corpus, f"seed-{i}").write_bytes(seed)
        proc = subprocess.run(
            [sys.executable, "-m", "tests.adversarial.atheris_frames", "--child", *flags, corpus],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    output = proc.stdout + proc.stderr
    if proc.returncode == 2 and "atheris is not installed" in output:
        print(output.strip(), file=sys.stderr)
        return 2
    done = re.search(r"Done (\d+) runs in (\d+) second", output)
    cov = re.findall(r"cov: (\d+) ft: (\d+)", output)
    crashed = proc.returncode != 0
    print("atheris: FrameDecoder + Dispatcher.decode")
    print(f"  flags        {' '.join(flags)}")
    print(f"  runs         {done.group(1) if done else '?'}")
    print(f"  seconds      {done.group(2) if done else '?'}")
    print(
        f"  coverage     {cov[-1][0] if cov else '?'} edges, {cov[-1][1] if cov else '?'} features"
    )
    print(f"  crashes      {1 if crashed else 0}")
    if crashed:
        start = output.find("=== Uncaught Python exception")
        print(output[start if start >= 0 else -6000 :][-6000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
    else:
        sys.exit(main(sys.argv[1:]))
