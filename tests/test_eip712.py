"""EIP-712: the specification's Mail example, refusals, and eth-account as an oracle."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from walletd.model.keys import Secp256k1Signer
from walletd_wire.eip712 import (
    MAX_PAYLOAD_BYTES,
    MAX_STRING_BYTES,
    MAX_VALUES,
    TypedDataError,
    parse_typed_data,
)
from walletd_wire.eip712_types import MAX_ARRAY_LENGTH, MAX_DEPTH, MAX_TYPES, parse_schema
from walletd_wire.schemes import keccak256

Doc = dict[str, Any]

DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def mail() -> Doc:
    """The EIP-712 specification's example (assets/eip-712/Example.js), as a fresh copy."""
    return {
        "types": {
            "EIP712Domain": copy.deepcopy(DOMAIN_FIELDS),
            "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
            "Mail": [
                {"name": "from", "type": "Person"},
                {"name": "to", "type": "Person"},
                {"name": "contents", "type": "string"},
            ],
        },
        "primaryType": "Mail",
        "domain": {
            "name": "Ether Mail",
            "version": "1",
            "chainId": 1,
            "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
        },
        "message": {
            "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
            "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
            "contents": "Hello, Bob!",
        },
    }


COW = keccak256(b"cow")  # the specification's private key


# --- the specification's vectors -----------------------------------------------------------


def test_mail_example_hashes_match_the_specification() -> None:
    typed = parse_typed_data(mail())
    mail_type_hash = parse_schema(mail()["types"]).type_hashes["Mail"]
    assert mail_type_hash == keccak256(
        b"Mail(Person from,Person to,string contents)Person(string name,address wallet)"
    )
    assert mail_type_hash.hex() == (
        "a0cedeb2dc280ba39b857546d74f5549c3a1d7bdc2dd96bf881f76108e23dac2"
    )
    assert typed.domain_separator().hex() == (
        "f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f"
    )
    assert typed.struct_hash().hex() == (
        "c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e"
    )
    assert typed.digest().hex() == (
        "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
    )


def test_mail_example_signature_matches_the_specification() -> None:
    signer = Secp256k1Signer(COW)
    assert signer.address == "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"
    signature = signer.sign_typed_data(parse_typed_data(mail()))
    assert signature[:32].hex() == (
        "4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d"
    )
    assert signature[32:64].hex() == (
        "07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562"
    )
    assert signature[64] == 28


def test_current_specification_example_with_a_custom_domain_field() -> None:
    # The specification's example now adds ``httpOrigin`` to the domain: extra domain fields
    # are allowed, and the standard ones keep their types.
    doc = mail()
    doc["types"]["EIP712Domain"].insert(3, {"name": "httpOrigin", "type": "string"})
    doc["domain"]["httpOrigin"] = "https://ether-mail.eth"
    typed = parse_typed_data(doc)
    assert typed.digest().hex() == (
        "a5f5fa6b05af38f2e9d2889ac36f5a4ba31e20646781d23739de458d86d6593e"
    )
    signature = Secp256k1Signer(COW).sign_typed_data(typed)
    assert signature.hex() == (
        "24040eda35064d96c51f3308b5fae290edae563327348886a366ed604e0c0480"
        "42bbabf2fae4b00598596a99d577dde56ff9d013e861f611cfe7b0728e1cd057"
        "1b"
    )


def test_policy_facts_are_normalised() -> None:
    doc = mail()
    doc["domain"]["chainId"] = "0x89"
    doc["domain"]["verifyingContract"] = doc["domain"]["verifyingContract"].lower()
    doc["message"]["to"]["wallet"] = doc["message"]["to"]["wallet"].upper().replace("0X", "0x")
    typed = parse_typed_data(doc)
    assert typed.chain_id == 137
    assert typed.verifying_contract == "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"
    assert typed.domain_name == "Ether Mail"
    assert typed.domain_version == "1"
    assert typed.primary_type == "Mail"
    assert typed.message["to"]["wallet"] == "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"
    with pytest.raises(TypeError):
        typed.message["contents"] = "changed"  # type: ignore[index]


def test_integer_spellings_hash_alike() -> None:
    digests = set()
    for chain_id in (1, "1", "0x1", "0x01"):
        doc = mail()
        doc["domain"]["chainId"] = chain_id
        digests.add(parse_typed_data(doc).digest())
    assert len(digests) == 1


def test_repr_leaves_out_the_message() -> None:
    assert "Hello, Bob!" not in repr(parse_typed_data(mail()))


def test_domain_without_optional_fields() -> None:
    doc = mail()
    doc["types"]["EIP712Domain"] = [{"name": "name", "type": "string"}]
    doc["domain"] = {"name": "Ether Mail"}
    typed = parse_typed_data(doc)
    assert typed.chain_id is None and typed.verifying_contract is None
    assert typed.digest() == _eth_account_digest(doc)


# --- refusals ------------------------------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    """A mutation that sets doc[a][b]... (path "a.b") to value, or deletes it if value is ..."""

    def mutate(doc: Doc) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if value is ...:
            del target[last]
        else:
            target[last] = value

    return mutate


def _field_type(type_name: str, field_index: int, new_type: str) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        doc["types"][type_name][field_index]["type"] = new_type

    return mutate


def _add_field(type_name: str, name: str, type_string: str, value: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        doc["types"][type_name].append({"name": name, "type": type_string})
        doc["message"][name] = value

    return mutate


def _cycle(doc: Doc) -> None:
    doc["types"]["Person"].append({"name": "friends", "type": "Person[]"})
    doc["message"]["from"]["friends"] = []
    doc["message"]["to"]["friends"] = []


def _indirect_cycle(doc: Doc) -> None:
    doc["types"]["A"] = [{"name": "b", "type": "B"}]
    doc["types"]["B"] = [{"name": "a", "type": "A[2]"}]


def _many_types(doc: Doc) -> None:
    for index in range(MAX_TYPES):
        doc["types"][f"T{index}"] = [{"name": "x", "type": "bool"}]


def _deep(doc: Doc) -> None:
    for index in range(MAX_DEPTH + 1):
        inner = f"N{index + 1}" if index < MAX_DEPTH else "bool"
        doc["types"][f"N{index}"] = [{"name": "x", "type": inner}]


def _too_many_values(doc: Doc) -> None:
    side = MAX_ARRAY_LENGTH  # 1024 * 1024 values, well over MAX_VALUES
    doc["types"]["Mail"].append({"name": "grid", "type": "uint8[][]"})
    doc["message"]["grid"] = [[0] * side for _ in range(side)]


def _too_much_payload(doc: Doc) -> None:
    count = MAX_PAYLOAD_BYTES // MAX_STRING_BYTES + 1
    doc["types"]["Mail"].append({"name": "notes", "type": "string[]"})
    doc["message"]["notes"] = ["x" * MAX_STRING_BYTES] * count


FIVE_MB = 5 * 1024 * 1024
SECRET = "0xdeadbeefcafe"  # a value that must never be echoed in a message

REFUSALS: list[tuple[str, Callable[[Doc], None], str]] = [
    ("no types", _set("types", ...), "missing 'types'"),
    ("no primaryType", _set("primaryType", ...), "missing 'primaryType'"),
    ("no domain", _set("domain", ...), "missing 'domain'"),
    ("no message", _set("message", ...), "missing 'message'"),
    ("unknown top-level key", _set("extra", 1), "keys other than"),
    ("types not a map", _set("types", []), "'types' must be a map"),
    ("no EIP712Domain", _set("types.EIP712Domain", ...), "must define EIP712Domain"),
    ("unknown type", _field_type("Mail", 0, "Persn"), "Mail.from: unknown type 'Persn'"),
    ("cycle through an array", _cycle, "Person -> Person is a cycle"),
    ("indirect cycle", _indirect_cycle, "A -> B -> A is a cycle"),
    ("missing field", _set("message.to.wallet", ...), "message.to: field 'wallet' of type"),
    ("extra field", _set("message.from.age", 3), "message.from: field 'age' is not in type"),
    ("int width not a multiple of 8", _add_field("Mail", "n", "uint7", 1), "uint7"),
    ("int width too large", _add_field("Mail", "n", "int264", 1), "8 to 256"),
    ("int without width", _add_field("Mail", "n", "uint", 1), "write uint256"),
    ("int width leading zero", _add_field("Mail", "n", "uint08", 1), "uint08"),
    ("bytes width", _add_field("Mail", "n", "bytes33", "0x00"), "1 to 32"),
    ("uint8 out of range", _add_field("Mail", "n", "uint8", 256), "out of range for uint8"),
    ("int8 out of range", _add_field("Mail", "n", "int8", -129), "out of range for int8"),
    ("negative uint", _add_field("Mail", "n", "uint256", "-1"), "out of range for uint256"),
    ("hex too wide", _add_field("Mail", "n", "uint16", "0x10000"), "out of range"),
    ("underscore number", _add_field("Mail", "n", "uint32", "1_000"), "not a decimal"),
    ("plus sign", _add_field("Mail", "n", "int32", "+1"), "not a decimal"),
    ("non-ASCII digit", _add_field("Mail", "n", "uint32", "\u0663"), "not a decimal"),
    ("float", _add_field("Mail", "n", "uint32", 1.0), "expected an integer"),
    ("bool as int", _add_field("Mail", "n", "uint32", True), "expected an integer"),
    ("int as bool", _add_field("Mail", "n", "bool", 1), "expected true or false"),
    ("short address", _set("message.to.wallet", SECRET), "40 hexadecimal digits"),
    (
        "bad checksum",
        _set("message.to.wallet", "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbb"),
        "checksum is wrong",
    ),
    ("address not a string", _set("message.to.wallet", 5), "expected an address"),
    ("bytes32 too short", _add_field("Mail", "n", "bytes32", SECRET), "exactly 32 bytes"),
    ("odd hex", _add_field("Mail", "n", "bytes", "0xabc"), "even number of hex digits"),
    ("duplicate field", _add_field("Person", "name", "string", "x"), "declared twice"),
    ("chainId retyped", _field_type("EIP712Domain", 2, "string"), "chainId must have type"),
    ("primaryType unknown", _set("primaryType", "Letter"), "primaryType 'Letter' is not"),
    ("primaryType domain", _set("primaryType", "EIP712Domain"), "not EIP712Domain"),
    ("atomic name as struct", _set("types.uint256", []), "atomic type's name"),
    ("fixed array too long", _add_field("Mail", "n", "uint8[2000]", []), "fixed array length"),
    ("fixed array wrong size", _add_field("Mail", "n", "uint8[2]", [1]), "exactly 2 elements"),
    ("too many types", _many_types, f"more than {MAX_TYPES} types"),
    ("too deep", _deep, f"deeper than {MAX_DEPTH}"),
    ("surrogate", _set("message.contents", "\ud800"), "not valid Unicode"),
    ("5 MB string", _set("message.contents", "x" * FIVE_MB), "at most 65536 bytes"),
    (
        "5 MB bytes",
        _add_field("Mail", "n", "bytes", "0x" + "00" * FIVE_MB),
        "at most 65536 bytes",
    ),
    (
        "million-element array",
        _add_field("Mail", "n", "uint8[]", [0] * 1_000_000),
        f"at most {MAX_ARRAY_LENGTH} elements",
    ),
    ("too many values", _too_many_values, f"more than {MAX_VALUES} values"),
    ("too much text", _too_much_payload, f"exceed {MAX_PAYLOAD_BYTES} bytes"),
]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(m, e, id=name) for name, m, e in REFUSALS],
)
def test_refusals_name_the_problem(mutate: Callable[[Doc], None], expected: str) -> None:
    doc = mail()
    mutate(doc)
    with pytest.raises(TypedDataError) as caught:
        parse_typed_data(doc)
    message = str(caught.value)
    assert expected in message
    assert len(message) < 300  # names the place and the rule, never echoes a big value
    assert SECRET not in message
    assert isinstance(caught.value, ValueError)


def test_bad_field_name_is_refused() -> None:
    doc = mail()
    doc["types"]["Person"][0]["name"] = "first-name"
    with pytest.raises(TypedDataError, match="identifier"):
        parse_typed_data(doc)


def test_fields_need_exactly_name_and_type() -> None:
    doc = mail()
    doc["types"]["Person"][0]["comment"] = "x"
    with pytest.raises(TypedDataError, match="exactly 'name' and 'type'"):
        parse_typed_data(doc)


def test_raw_bytes_are_accepted_like_hex() -> None:
    as_hex, as_raw = mail(), mail()
    for doc, value in ((as_hex, "0x" + "ab" * 32), (as_raw, b"\xab" * 32)):
        _add_field("Mail", "salt", "bytes32", value)(doc)
    assert parse_typed_data(as_hex).digest() == parse_typed_data(as_raw).digest()


def test_largest_accepted_document() -> None:
    """Just under the value limit still parses: the limits refuse abuse, not real documents."""
    doc = mail()
    doc["types"]["Mail"].append({"name": "grid", "type": "uint8[][]"})
    rows = (MAX_VALUES - 20) // (MAX_ARRAY_LENGTH + 1)
    doc["message"]["grid"] = [[7] * MAX_ARRAY_LENGTH for _ in range(rows)]
    assert parse_typed_data(doc).digest() == _eth_account_digest(doc)


# --- eth-account as an oracle --------------------------------------------------------------


def _eth_account_digest(doc: Doc) -> bytes:
    signable = encode_typed_data(full_message=copy.deepcopy(doc))
    return keccak256(b"\x19" + signable.version + signable.header + signable.body)


def _with_arrays_and_nesting() -> Doc:
    doc = mail()
    doc["types"]["Person"] = [
        {"name": "name", "type": "string"},
        {"name": "wallets", "type": "address[]"},
    ]
    doc["types"]["Mail"] = [
        {"name": "from", "type": "Person"},
        {"name": "to", "type": "Person[]"},
        {"name": "contents", "type": "string"},
        {"name": "attachment", "type": "bytes"},
        {"name": "tags", "type": "bytes8[2]"},
        {"name": "scores", "type": "int16[][]"},
        {"name": "urgent", "type": "bool"},
        {"name": "nonce", "type": "uint64"},
    ]
    cow = "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"
    bob = "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"
    doc["message"] = {
        "from": {"name": "Cow", "wallets": [cow, "0xDeaDbeefdEAdbeefdEadbEEFdeadbeEFdEaDbeeF"]},
        "to": [{"name": "Bob", "wallets": [bob]}, {"name": "Eve", "wallets": []}],
        "contents": "Hello, Bob!",
        "attachment": "0x" + "5a" * 40,
        "tags": ["0x0102030405060708", "0x" + "ff" * 8],
        "scores": [[-1, 2, -32768], [], [32767]],
        "urgent": True,
        "nonce": 2**64 - 1,
    }
    return doc


def _salted(doc: Doc) -> Doc:
    doc["types"]["EIP712Domain"].append({"name": "salt", "type": "bytes32"})
    doc["domain"]["salt"] = "0x" + "11" * 32
    return doc


@pytest.mark.parametrize(
    "make",
    [mail, _with_arrays_and_nesting, lambda: _salted(mail())],
    ids=["mail", "arrays-and-nesting", "salted-domain"],
)
def test_digest_matches_eth_account(make: Callable[[], Doc]) -> None:
    doc = make()
    typed = parse_typed_data(doc)
    signable = encode_typed_data(full_message=copy.deepcopy(doc))
    assert typed.domain_separator() == signable.header
    assert typed.struct_hash() == signable.body
    signature = Secp256k1Signer(COW).sign_typed_data(typed)
    assert Account.recover_message(signable, signature=signature) == Secp256k1Signer(COW).address


# Generated documents: a random set of struct types, each referring only to earlier ones (so
# no cycles) and always to the one before it, and a value for every field. Domains keep
# EIP-712's field order, as wallets do.

ATOMIC_TYPES = ["uint8", "uint256", "int8", "int128", "bool", "address", "string", "bytes"]
ATOMIC_TYPES += ["bytes1", "bytes20", "bytes32"]


def _atomic_value(type_string: str) -> st.SearchStrategy[Any]:
    if type_string.startswith("uint"):
        return st.integers(0, 2 ** int(type_string[4:]) - 1)
    if type_string.startswith("int"):
        half = 2 ** (int(type_string[3:]) - 1)
        return st.integers(-half, half - 1)
    if type_string == "bool":
        return st.booleans()
    if type_string == "address":
        return st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
    if type_string == "string":
        return st.text(max_size=20)
    if type_string == "bytes":
        return st.binary(max_size=40).map(lambda b: "0x" + b.hex())
    size = int(type_string[5:])
    return st.binary(min_size=size, max_size=size).map(lambda b: "0x" + b.hex())


def _value(type_string: str, structs: dict[str, list[dict[str, str]]]) -> st.SearchStrategy[Any]:
    if type_string.endswith("]"):
        inner, _, length = type_string[:-1].rpartition("[")
        element = _value(inner, structs)
        if length:
            return st.lists(element, min_size=int(length), max_size=int(length))
        return st.lists(element, max_size=3)
    if type_string in structs:
        return st.fixed_dictionaries(
            {f["name"]: _value(f["type"], structs) for f in structs[type_string]}
        )
    return _atomic_value(type_string)


@st.composite
def documents(draw: st.DrawFn) -> Doc:
    structs: dict[str, list[dict[str, str]]] = {}
    for index in range(draw(st.integers(1, 4))):
        choices = ATOMIC_TYPES + list(structs)
        fields = []
        if structs:  # eth-account infers the primary type: every other struct must be reached
            suffix = draw(st.sampled_from(["", "[]", "[2]"]))
            fields.append({"name": "prev", "type": f"S{index - 1}{suffix}"})
        for field_index in range(draw(st.integers(1, 3))):
            base = draw(st.sampled_from(choices))
            suffix = draw(st.sampled_from(["", "", "[]", "[2]", "[][]"]))
            fields.append({"name": f"f{field_index}", "type": base + suffix})
        structs[f"S{index}"] = fields
    primary = f"S{len(structs) - 1}"
    domain_fields = [f for f in DOMAIN_FIELDS if draw(st.booleans())]
    domain_values = {
        "name": st.text(max_size=10),
        "version": st.text(max_size=5),
        "chainId": st.integers(0, 2**64),
        "verifyingContract": _atomic_value("address"),
    }
    domain = draw(
        st.fixed_dictionaries({f["name"]: domain_values[f["name"]] for f in domain_fields})
    )
    message = draw(_value(primary, structs))
    return {
        "types": {"EIP712Domain": domain_fields, **structs},
        "primaryType": primary,
        "domain": domain,
        "message": message,
    }


@settings(max_examples=60, deadline=None)
@given(doc=documents())
def test_generated_documents_match_eth_account(doc: Doc) -> None:
    assert parse_typed_data(doc).digest() == _eth_account_digest(doc)
