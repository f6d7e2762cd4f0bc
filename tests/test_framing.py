"""Framing, byte by byte and without sockets (walletd_wire.framing is sans-IO)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from walletd_wire.framing import (
    DEFAULT_MAX_FRAME_BYTES,
    PREFIX_BYTES,
    FrameDecoder,
    FrameTooLargeError,
    encode_frame,
)

from .support import length_prefix as prefix


def feed_all(decoder: FrameDecoder, chunks: list[bytes]) -> list[bytes]:
    """Feed ``chunks`` one at a time, collecting every frame as soon as it completes."""
    out: list[bytes] = []
    for chunk in chunks:
        decoder.feed(chunk)
        out.extend(decoder.frames())
    return out


# --------------------------------------------------------------------------- encoding


def test_encode_frame_is_big_endian_length_then_payload() -> None:
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"") == b"\x00\x00\x00\x00"
    assert encode_frame(b"x" * 0x01020304)[:4] == b"\x01\x02\x03\x04"


@given(st.binary(max_size=4096))
def test_round_trip(payload: bytes) -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(payload))
    assert decoder.next_frame() == payload
    assert decoder.next_frame() is None
    assert not decoder.in_frame
    assert decoder.buffered == 0


# --------------------------------------------------------------------------- splitting


@settings(max_examples=200)
@given(
    frames=st.lists(st.binary(max_size=64), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
)
def test_any_split_yields_the_same_frames(frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(f) for f in frames)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(points)]
    decoder = FrameDecoder()
    assert feed_all(decoder, chunks) == frames
    assert not decoder.in_frame


@settings(max_examples=200)
@given(
    frames=st.lists(st.binary(max_size=300), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
    initial=st.sampled_from([8, 64, 1 << 16]),
)
def test_any_split_received_in_place_yields_the_same_views(
    frames: list[bytes], cuts: list[int], initial: int
) -> None:
    """The daemon's zero-copy path: recv_buffer / received / complete_views, as the connection
    uses them, with buffers small enough to grow and shrink mid-stream."""
    stream = b"".join(encode_frame(f) for f in frames)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder(initial_bytes=initial)
    got: list[bytes] = []
    for a, b in itertools.pairwise(points):
        chunk = stream[a:b]
        while chunk:
            space = decoder.recv_buffer()
            n = min(len(space), len(chunk))
            space[:n] = chunk[:n]
            decoder.received(n)
            chunk = chunk[n:]
            got.extend(bytes(view) for view in decoder.complete_views())  # before the next read
    assert got == frames
    assert not decoder.in_frame
    assert decoder.oversized is None


def test_split_at_every_byte_boundary() -> None:
    # Deterministic companion to the property: every single cut point, and one byte at a time.
    frames = [b"", b"a", b"hello world", bytes(range(256)), b""]
    stream = b"".join(encode_frame(f) for f in frames)
    for cut in range(len(stream) + 1):
        assert feed_all(FrameDecoder(), [stream[:cut], stream[cut:]]) == frames, cut
    one_by_one = [stream[i : i + 1] for i in range(len(stream))]
    assert feed_all(FrameDecoder(), one_by_one) == frames


def test_frames_returns_every_buffered_frame_in_order() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(b"1") + encode_frame(b"22") + encode_frame(b"333")[:5])
    assert decoder.frames() == [b"1", b"22"]
    assert decoder.in_frame
    decoder.feed(b"33")
    assert decoder.frames() == [b"333"]
    assert decoder.frames() == []


# --------------------------------------------------------------------------- limits


def test_oversized_length_is_refused_as_soon_as_the_prefix_arrives() -> None:
    decoder = FrameDecoder(max_frame_bytes=1024)
    announced = prefix(2 << 20)
    for i in range(PREFIX_BYTES - 1):
        decoder.feed(announced[i : i + 1])
        assert decoder.next_frame() is None  # not yet a whole prefix: nothing to judge
    decoder.feed(announced[-1:])
    with pytest.raises(FrameTooLargeError) as info:
        decoder.next_frame()  # no payload byte has been fed
    assert info.value.announced == 2 << 20
    assert info.value.limit == 1024
    assert "2097152" in str(info.value) and "1024" in str(info.value)


def test_maximum_length_is_inclusive() -> None:
    limit = 1024
    decoder = FrameDecoder(max_frame_bytes=limit)
    decoder.feed(encode_frame(b"x" * limit))
    assert decoder.next_frame() == b"x" * limit

    decoder = FrameDecoder(max_frame_bytes=limit)
    decoder.feed(prefix(limit + 1))
    with pytest.raises(FrameTooLargeError):
        decoder.next_frame()


def test_default_limit_is_one_mebibyte() -> None:
    assert DEFAULT_MAX_FRAME_BYTES == 1 << 20
    decoder = FrameDecoder()
    assert decoder.max_frame_bytes == 1 << 20
    decoder.feed(encode_frame(b"\0" * (1 << 20)))
    assert decoder.next_frame() == b"\0" * (1 << 20)
    decoder.feed(prefix((1 << 20) + 1))
    with pytest.raises(FrameTooLargeError):
        decoder.next_frame()


def test_oversized_frame_after_good_ones_is_refused_in_turn() -> None:
    decoder = FrameDecoder(max_frame_bytes=8)
    decoder.feed(encode_frame(b"ok") + prefix(9) + b"junk")
    assert decoder.next_frame() == b"ok"
    with pytest.raises(FrameTooLargeError):
        decoder.next_frame()


def test_largest_announceable_length_is_refused_without_buffering() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\xff\xff\xff\xff")
    with pytest.raises(FrameTooLargeError) as info:
        decoder.next_frame()
    assert info.value.announced == 2**32 - 1


# --------------------------------------------------------------------------- edge cases


def test_zero_length_frame_yields_empty_bytes() -> None:
    decoder = FrameDecoder()
    decoder.feed(prefix(0))
    assert decoder.next_frame() == b""
    assert decoder.next_frame() is None
    assert not decoder.in_frame


def test_truncated_frame_yields_nothing() -> None:
    frame = encode_frame(b"payload")
    for cut in range(len(frame)):
        decoder = FrameDecoder()
        decoder.feed(frame[:cut])
        assert decoder.next_frame() is None
        assert decoder.frames() == []
        assert decoder.buffered == cut


def test_in_frame_tracks_a_started_frame() -> None:
    decoder = FrameDecoder()
    assert not decoder.in_frame  # nothing buffered
    decoder.feed(b"\x00")
    assert decoder.in_frame  # one prefix byte is a started frame
    decoder.feed(b"\x00\x00")
    assert decoder.next_frame() is None
    assert decoder.in_frame
    decoder.feed(b"\x03")
    assert decoder.next_frame() is None  # prefix complete, payload missing
    assert decoder.in_frame
    decoder.feed(b"ab")
    assert decoder.next_frame() is None
    assert decoder.in_frame
    decoder.feed(b"c")
    assert decoder.next_frame() == b"abc"
    assert not decoder.in_frame  # exactly one frame consumed: back to idle
    decoder.feed(encode_frame(b"x") + b"\x00")
    assert decoder.next_frame() == b"x"
    assert decoder.in_frame  # the next frame's first byte is buffered


def test_feeding_nothing_changes_nothing() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"")
    assert decoder.next_frame() is None
    assert not decoder.in_frame
    decoder.feed(encode_frame(b"a")[:2])
    decoder.feed(b"")
    assert decoder.next_frame() is None
    assert decoder.buffered == 2


def test_consumed_bytes_are_released() -> None:
    # The buffer must not grow with the number of frames a long-lived connection has read.
    decoder = FrameDecoder()
    for i in range(1000):
        decoder.feed(encode_frame(b"%d" % i) + b"\x00")
        assert decoder.next_frame() == b"%d" % i
        assert decoder.next_frame() is None
        assert decoder.buffered == 1
        decoder.feed(b"\x00\x00\x00")
        assert decoder.next_frame() == b""
    assert decoder.buffered == 0


def test_decoder_accepts_bytearray_and_memoryview() -> None:
    decoder = FrameDecoder()
    frame = encode_frame(b"hello")
    decoder.feed(bytearray(frame[:3]))
    decoder.feed(memoryview(frame)[3:])
    payload = decoder.next_frame()
    assert payload == b"hello"
    assert type(payload) is bytes


def test_complete_views_answers_frames_before_an_oversized_prefix() -> None:
    decoder = FrameDecoder(max_frame_bytes=16)
    decoder.feed(encode_frame(b"one") + encode_frame(b"two") + (1000).to_bytes(4, "big"))
    assert decoder.oversized is None
    assert [bytes(v) for v in decoder.complete_views()] == [b"one", b"two"]
    assert isinstance(decoder.oversized, FrameTooLargeError)
    assert decoder.oversized.announced == 1000
    with pytest.raises(FrameTooLargeError):
        decoder.next_view()


def test_complete_views_waits_for_a_partial_frame() -> None:
    decoder = FrameDecoder()
    frame = encode_frame(b"payload")
    decoder.feed(frame[:5])
    assert decoder.complete_views() == []
    decoder.feed(frame[5:])
    assert [bytes(v) for v in decoder.complete_views()] == [b"payload"]
    assert not decoder.in_frame


def test_recv_buffer_grows_for_a_large_frame_and_shrinks_after() -> None:
    decoder = FrameDecoder(max_frame_bytes=1 << 20, initial_bytes=64)
    frame = encode_frame(b"x" * 5000)
    decoder.feed(frame[:10])
    space = decoder.recv_buffer()
    assert len(space) >= len(frame) - 10  # room for the whole announced frame
    space[: len(frame) - 10] = frame[10:]
    decoder.received(len(frame) - 10)
    assert decoder.next_frame() == b"x" * 5000
    assert len(decoder.recv_buffer()) == 64  # back to its initial size once empty
