"""The sign path's admission: one wallet's two layers, for one op and key type, compiled into
one Python function.

Why. ``policy_eval`` walks rule objects: per rule it reads their attributes and calls their
closures, then the layers' verdicts are combined and ``charge_verdicts`` finds and charges the
deciding rule's window, each a call of its own. For the bench's 10-rule owner layer that was
651 Python bytecodes per ``sign_message`` against 169 with no policy, and 1.47 times the server
time per request end to end (caches are cold between requests, so every attribute and frame
costs more than in a loop). Compiled, each rule is one ``if`` over local names; a message that
starts with none of a layer's prefixes skips all the prefixed rules after one ``startswith``;
and when only one layer has rules for the request (the common case: an owner layer, or an
admin layer, on a default ``allow`` daemon) the window of a limited ``allow`` rule is checked
and charged in one call (``RateWindow.take``). The same request: 371 bytecodes, and the bench
row went from 0.70-0.82 to 0.93 of the plain rate.

Safety. The generated text depends only on the *shape* of the rules: which conditions each has,
whether it has a limit, whether it admits. Every value (prefix bytes, sizes, rule ids,
verdicts, predicates) is bound by a generated name (``_p3``, ``_v3``, ...) in the function's
namespace; no text of a policy document reaches the source. The interpreted evaluator stays
the reference: ``evaluate`` (``explain_signing``) and the durable slow path use it, and
tests/test_policy_compiled.py checks on random layers, windows and requests that the compiled
admission returns the same verdicts and charges the same windows.

A compiled admission is ``admission(subject, now, windows)``, where the subject is the message
bytes for the message ops (``sign_message``, ``sign_batch``: the sign path builds no request
object for them) and the ``SigningRequest`` for ``sign_typed_data``. It returns ``None`` when
both layers allow (the deciding rules' windows charged), otherwise the ``Decision`` (without its
list of limits, which only ``explain_signing`` shows) with nothing charged; every such Decision
is built at compile time. It raises ``ReservationNeeded``, with nothing charged, when an allowed
use is not yet covered by a durable reservation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .policy_eval import Decision, Windows, charge_verdicts
from .policy_pattern import is_utf8
from .policy_request import SigningRequest
from .policy_rules import DEFAULT_VERDICTS, Action, Layer, Rule, Verdict

# The subject: the message bytes for a message op, the request for sign_typed_data.
Admission = Callable[[bytes | SigningRequest, float, Windows], Decision | None]

_ADMIN, _OWNER = "admin", "owner"
_TYPED_OP = "sign_typed_data"


class Admissions:
    """One wallet's compiled admissions, by op and key type.

    An entry remembers the two layers and the default it was compiled from and is used only
    while they are the very same objects, so replacing a layer or reloading ``[signing]``
    needs no invalidation: the next request compiles afresh, once (0.3 ms for the bench's
    10 rules, 1.5 ms for 64).
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], tuple[Layer, Layer, Action, Admission]] = {}

    def get(self, admin: Layer, owner: Layer, default: Action, op: str, key_type: str) -> Admission:
        entry = self._entries.get((op, key_type))
        if entry is not None and entry[0] is admin and entry[1] is owner and entry[2] is default:
            return entry[3]
        admission = compile_admission(
            admin.candidates(op, key_type), owner.candidates(op, key_type), default, op
        )
        self._entries[op, key_type] = (admin, owner, default, admission)
        return admission


def compile_admission(
    admin: tuple[Rule, ...], owner: tuple[Rule, ...], default: Action, op: str
) -> Admission:
    """The admission for requests of ``op`` that these rule lists (already filtered by op
    and key type, as ``Layer.candidates`` gives them) decide, under the daemon's default."""
    fallback = DEFAULT_VERDICTS[default]
    if not admin and not owner:
        refusal = None if fallback.allows else Decision(fallback, fallback)
        return lambda subject, now, windows: refusal
    if admin and owner:
        return _both(
            _compile(admin, _ADMIN, op, fallback, None),
            _compile(owner, _OWNER, op, fallback, None),
        )
    layer, rules = (_ADMIN, admin) if admin else (_OWNER, owner)
    # The other layer has no rule for this request: it yields the default. When that allows,
    # this layer alone decides, and its deciding window can be charged as it is found.
    return _compile(rules, layer, op, fallback, fallback)


def _both(decide_admin: Callable[..., Verdict], decide_owner: Callable[..., Verdict]) -> Admission:
    def admission(subject: bytes | SigningRequest, now: float, windows: Windows) -> Decision | None:
        a = decide_admin(subject, now, windows)
        o = decide_owner(subject, now, windows)
        if not (a.allows and o.allows):
            return Decision(a, o)
        if a.limit is not None or o.limit is not None:
            charge_verdicts(a, o, windows, now)
        return None

    return admission


def _compile(
    rules: tuple[Rule, ...], layer: str, op: str, fallback: Verdict, other: Verdict | None
) -> Callable[..., Any]:
    """One layer's rules as one function.

    ``other`` given (the other layer's verdict, fixed because it has no rule here): the
    function is an admission of the whole request; when ``other`` allows, it charges the
    deciding window as it finds it. ``other`` None: it returns this layer's verdict and
    charges nothing.
    """
    code = _Source(layer, op, fallback, other)
    for i, rule in enumerate(rules):
        code.bind_rule(i, rule)
    # Typed conditions never hold for a message op: such rules are left out of its code.
    every = [(i, r) for i, r in enumerate(rules) if code.typed or not r.typed_tests]
    prefixed = [r.prefix for _, r in every if r.prefix is not None]
    if code.typed or len(prefixed) < 2:
        code.emit_rules(every, "    ")
    else:
        # A message that starts with none of the rules' prefixes (most of them: prefixes
        # name what to refuse or single out) skips every prefixed rule after one C call.
        code.names["_prefixes"] = tuple(prefixed)
        code.uses_message = True
        code.lines.append("    if message.startswith(_prefixes):")
        code.emit_rules(every, "        ")
        code.emit_rules([(i, r) for i, r in every if r.prefix is None], "    ")
    return code.function()


class _Source:
    """The text of one compiled layer and the values its names stand for."""

    def __init__(self, layer: str, op: str, fallback: Verdict, other: Verdict | None) -> None:
        self.layer, self.op, self.other = layer, op, other
        # Message ops always carry the message and never typed facts.
        self.typed = op == _TYPED_OP
        self.names: dict[str, object] = {"_fallback": fallback, "_layer": layer, "_utf8": is_utf8}
        if other is None:
            self.end = "_fallback"
        elif fallback.allows and other.allows:
            self.end = "None"
        else:
            self.names["_end"] = _pair(layer, fallback, other)
            self.end = "_end"
        self.lines: list[str] = []
        self.uses_message = self.uses_size = self.uses_table = False

    def bind_rule(self, i: int, rule: Rule) -> None:
        names = self.names
        names[f"_v{i}"] = verdict = rule.verdict
        if self.other is not None:
            names[f"_r{i}"] = _pair(self.layer, verdict, self.other)
        for name, value in (
            (f"_p{i}", rule.prefix),
            (f"_m{i}", rule.max_bytes),
            (f"_a{i}", rule.active),
            (f"_re{i}", rule.pattern),
        ):
            if value is not None:
                names[name] = value
        for j, test in enumerate(rule.typed_tests):
            names[f"_t{i}_{j}"] = test
        if rule.limit is not None:
            names[f"_k{i}"], names[f"_l{i}"] = rule.id, rule.limit

    def emit_rules(self, rules: list[tuple[int, Rule]], indent: str) -> None:
        """The rules in order, then the layer's end (every path returns)."""
        for i, rule in rules:
            conditions = self._conditions(i, rule)
            self._emit_rule(i, rule, conditions, indent)
            if not conditions and rule.limit is None:
                return  # it always decides: the rules after it are never reached
        self.lines.append(f"{indent}return {self.end}")

    def _conditions(self, i: int, rule: Rule) -> list[str]:
        """The rule's conditions, cheapest first, as the interpreter checks them."""
        typed, out = self.typed, []
        if rule.prefix is not None:
            self.uses_message = True
            check = f"message.startswith(_p{i})"
            out.append(f"(message is not None and {check})" if typed else check)
        if rule.max_bytes is not None:
            self.uses_message = self.uses_size = True
            out.append(f"0 <= size <= _m{i}" if typed else f"size <= _m{i}")
        if rule.active is not None:
            out.append(f"_a{i}(now)")
        out.extend(f"_t{i}_{j}(request)" for j in range(len(rule.typed_tests)))
        if rule.pattern is not None:
            self.uses_message = True
            # RE2 first, then the UTF-8 check only on a match, as the interpreter does
            # (policy_match, policy_pattern).
            if typed:
                out.append(f"(message is not None and _re{i}(message) and request.utf8())")
            else:
                out.append(f"_re{i}(message) and _utf8(message)")
        return out

    def _emit_rule(self, i: int, rule: Rule, conditions: list[str], indent: str) -> None:
        lines = self.lines
        if conditions:
            lines.append(f"{indent}if {' and '.join(conditions)}:")
            indent += "    "
        verdict, other = rule.verdict, self.other
        if other is None:
            outcome = f"_v{i}"
        else:
            outcome = "None" if verdict.allows and other.allows else f"_r{i}"
        if rule.limit is None:
            lines.append(f"{indent}return {outcome}")
            return
        self.uses_table = True
        lines.append(f"{indent}w = table.get(_k{i})")
        if outcome == "None":
            # Checked and charged at once: full means this rule does not match.
            lines.append(f"{indent}if w is None:")
            lines.append(f"{indent}    w = windows.window(_layer, _k{i}, _l{i})")
            lines.append(f"{indent}if w.take(now):")
        else:
            lines.append(f"{indent}if w is None or w.remaining(now) > 0:")
        lines.append(f"{indent}    return {outcome}")

    def function(self) -> Callable[..., Any]:
        if self.typed:
            head = ["def compiled(request, now, windows):"]
            if self.uses_message:
                head.append("    message = request.message")
        else:
            head = ["def compiled(message, now, windows):"]
        if self.uses_size:
            size = "-1 if message is None else len(message)" if self.typed else "len(message)"
            head.append(f"    size = {size}")
        if self.uses_table:
            head.append(f"    table = windows.{self.layer}")
        source = "\n".join(head + self.lines) + "\n"
        namespace: dict[str, object] = dict(self.names)
        # The source is built from the rule shapes only; every value is a name in
        # ``namespace`` (see the module docstring), so nothing from a policy is executed.
        code = compile(source, f"<signing policy: {self.layer} layer, {self.op}>", "exec")
        exec(code, namespace)  # noqa: S102
        function: Callable[..., Any] = namespace["compiled"]  # type: ignore[assignment]
        return function


def _pair(layer: str, verdict: Verdict, other: Verdict) -> Decision:
    """The decision of this layer's verdict and the other's, built once at compile time:
    a refusal allocates nothing, and a Decision is never changed once made."""
    return Decision(verdict, other) if layer == _ADMIN else Decision(other, verdict)
