"""Regular expressions for policy rules, on a linear-time engine (RE2).

Why RE2 (``google-re2``): a rule's pattern is written by a wallet's owner, who may be the very
agent the policy restrains, and it is matched on the daemon's event loop. A backtracking
engine (the stdlib ``re``) can take exponential time on patterns like ``(a+)+$``, stalling
every connection; a timeout would need a thread per match. RE2 matches in time linear in the
message, refuses the constructs that need backtracking (back-references, look-around), and
bounds the memory of each compiled pattern (``MAX_PROGRAM_MEMORY``); a pattern that does not
fit is refused when the rule is set, not when it is used. Patterns are also limited in length.

Matching is a full match over the message bytes as UTF-8; a message that is not valid UTF-8
matches no pattern (checked explicitly, so no pattern construct can reach raw bytes). RE2 runs
first, and the check only after a match: RE2 itself never matches bytes that are not UTF-8
(only its any-byte escape could, and ``compile_pattern`` refuses it), so most messages need one
call, not two. Both cost about 0.5 µs here while the CPU's caches hold their code, and 5-6 µs
when 1 MB of other memory was touched between calls: on a busy daemon every call counts.

Cost (measured on the development machine): the public ``re2.Set.Match`` wrapper costs
~1.3 µs per call; the pybind11 object it wraps costs ~0.7 µs, so ``compile_pattern`` returns
that object's bound ``Match`` when it is there (google-re2 1.x) and the public method
otherwise. Both take bytes and return a list (or ``None``) that is truthy on a match.
"""

from __future__ import annotations

from collections.abc import Callable

import re2

MAX_PATTERN_CHARS = 1024
MAX_PROGRAM_MEMORY = 1 << 20  # bytes per compiled pattern; RE2 falls back to NFA past its cache


class PatternError(ValueError):
    """A pattern RE2 refuses; the message says why (it never holds message content)."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # errors come back as PatternError, not on stderr
    options.never_capture = True  # only match / no match is needed: cheaper
    options.max_mem = MAX_PROGRAM_MEMORY
    options.dot_nl = True  # "." also matches newlines: a message is one text, not lines
    return options


def compile_pattern(pattern: str) -> Callable[[bytes], object]:
    """Compile ``pattern`` for full matches over UTF-8 bytes; raise ``PatternError``."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"longer than {MAX_PATTERN_CHARS} characters")
    if "\\C" in pattern:
        raise PatternError("\\C (any byte) is not allowed")
    encoded = pattern.encode("utf-8", "surrogatepass")
    options = _options()
    matcher = re2.Set.FullMatchSet(options)
    try:
        matcher.Add(encoded)
        matcher.Compile()
    except re2.error:
        # Set.Add only says "failed"; compiling alone gives RE2's reason.
        try:
            re2.compile(encoded, options)
        except re2.error as exc:
            raise PatternError(_reason(exc)) from None
        raise PatternError("too large to compile") from None
    inner = getattr(matcher, "_set", None)
    match: Callable[[bytes], object] | None = getattr(inner, "Match", None)
    if not callable(match):
        match = matcher.Match
    return match


def _reason(exc: Exception) -> str:
    text = exc.args[0] if exc.args else ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text)[:200] or "not a valid RE2 pattern"


def is_utf8(data: bytes) -> bool:
    """True when ``data`` is valid UTF-8, without raising.

    ASCII is answered at once. Otherwise the message is decoded with ``replace``, which puts
    one U+FFFD for each invalid run: the message is valid exactly when every U+FFFD decoded
    is a real one, spelled ``EF BF BD`` in the bytes (``EF`` is never a continuation byte,
    so each such spelling decodes as itself). The strict decoder would raise on a message
    that is not UTF-8, and the exception costs more than the whole check (673 against
    404 ns for 64 random bytes).
    """
    if data.isascii():
        return True
    return data.decode("utf-8", "replace").count("\ufffd") == data.count(b"\xef\xbf\xbd")
