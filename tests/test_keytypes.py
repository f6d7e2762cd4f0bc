"""Ed25519 and secp256k1 keys: published vectors, independent implementations, tampering."""

from __future__ import annotations

import copy
import hashlib
import pickle
import subprocess
import sys

import pytest
from eth_account import Account
from eth_account.messages import defunct_hash_message, encode_defunct, encode_typed_data
from eth_utils.address import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey, VerifyKey

from wallet_client import verify
from walletd.model.keys import (
    Ed25519Signer,
    Secp256k1Signer,
    address_of,
    generate_private_key,
    public_key_of,
    signer_for,
)
from walletd_wire.eip712 import TypedDataError, parse_typed_data
from walletd_wire.ethereum import SECP256K1_HALF_N, SECP256K1_N
from walletd_wire.schemes import (
    KeyType,
    b58decode,
    b58encode,
    checksum_address,
    ed25519_address,
    ed25519_public_key_from_address,
    eip191_digest,
    eth_address,
    keccak256,
    recover_eth_address,
)

from .test_eip712 import mail

# --- RFC 8032 section 7.1 -----------------------------------------------------------------

RFC8032_TEST_1024_MESSAGE = bytes.fromhex(
    "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f54e9f77b1"
    "e355f6c50544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d"
    "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efcb8550ee3a5e1998bd177e93a"
    "7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e"
    "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbefefd75499da96bd68a8a97b928a8bbc10"
    "3b6621fcde2beca1231d206be6cd9ec7aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1"
    "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d"
    "502f1a8c6eb6f1ce22b3de1a1f40cc24554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270"
    "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc2732e69485bbc9c90bfbd62481d9089b"
    "eccf80cfe2df16a2cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba"
    "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae0784504df543af8969b"
    "e3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7"
    "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb038dda0847dd988d"
    "cda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df"
    "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08d78ff4ef5d63653a65040cf9bfd4aca7"
    "984a74d37145986780fc0b16ac451649de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4"
    "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac09"
    "43bf6686b64b2579376504ccc493d97e6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f"
    "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f161"
    "0e4eafe595f6d9d90d11faa933a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d"
    "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8ca"
    "c60c905c15fc910840b94c00a0b9d0"
)

RFC8032 = [  # name, secret key (seed), public key, message, signature
    (
        "TEST 1",
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        b"",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e"
        "39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "TEST 2",
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        bytes.fromhex("72"),
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f"
        "3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "TEST 3",
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        bytes.fromhex("af82"),
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67"
        "f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    (
        "TEST 1024",
        "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
        "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
        RFC8032_TEST_1024_MESSAGE,
        "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350aa5371b1508f9f4528ec"
        "ea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03",
    ),
    (
        "TEST SHA(abc)",
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        hashlib.sha512(b"abc").digest(),
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfb"
        "c7c66431e0303dca179c138ac17ad9bef1177331a704",
    ),
]


@pytest.mark.parametrize(
    ("seed", "public_key", "message", "signature"),
    [pytest.param(*vector[1:], id=vector[0]) for vector in RFC8032],
)
def test_rfc8032_vectors(seed: str, public_key: str, message: bytes, signature: str) -> None:
    assert len(RFC8032_TEST_1024_MESSAGE) == 1023
    signer = Ed25519Signer(bytearray.fromhex(seed))
    assert signer.public_key.hex() == public_key
    assert public_key_of("ed25519", bytes.fromhex(seed)).hex() == public_key
    assert signer.sign_message(message).hex() == signature
    sig = bytes.fromhex(signature)
    assert verify(bytes.fromhex(public_key), message, sig, key_type="ed25519")
    assert verify(signer.address, message, sig, key_type="ed25519")
    assert signer.verify_message(message, sig)
    assert not verify(bytes.fromhex(public_key), message + b"!", sig, key_type="ed25519")


# --- base58, keccak, EIP-55, EIP-191 --------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"", ""),
        (b"\0", "1"),
        (b"\0\0\x01", "112"),
        (b"hello world", "StV1DL6CwTryKyV"),
        (
            bytes.fromhex("00eb15231dfceb60925886b67d065299925915aeb172c06647"),
            "1NS17iag9jJgTHD1VXjvLCEnZuQ3rJDE9L",
        ),
    ],
)
def test_base58_vectors(data: bytes, text: str) -> None:
    assert b58encode(data) == text
    assert b58decode(text) == data


@given(data=st.binary(max_size=64))
def test_base58_round_trip(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data


@pytest.mark.parametrize("text", ["0OIl", "abc0", "1 2", "é"])
def test_base58_refuses_characters_outside_the_alphabet(text: str) -> None:
    with pytest.raises(ValueError, match="bitcoin alphabet"):
        b58decode(text)


@given(public_key=st.binary(min_size=32, max_size=32))
def test_ed25519_address_round_trip(public_key: bytes) -> None:
    address = ed25519_address(public_key)
    assert 32 <= len(address) <= 44
    assert ed25519_public_key_from_address(address) == public_key


def test_keccak256_is_not_sha3() -> None:
    empty = "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak256(b"").hex() == empty
    assert hashlib.sha3_256(b"").hexdigest() != empty


EIP55_VECTORS = [  # from EIP-55 itself: all caps, all lower, mixed
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


@pytest.mark.parametrize("address", EIP55_VECTORS)
def test_eip55_vectors(address: str) -> None:
    assert checksum_address("0x" + address[2:].lower()) == address
    assert checksum_address("0x" + address[2:].upper()) == address
    assert checksum_address(address) == address


@given(raw=st.binary(min_size=20, max_size=20))
def test_checksum_matches_eth_utils(raw: bytes) -> None:
    assert checksum_address("0x" + raw.hex()) == to_checksum_address("0x" + raw.hex())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD", "checksum is wrong"),
        ("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beae", "40 hexadecimal digits"),
        ("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", "40 hexadecimal digits"),
        ("0X5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", "40 hexadecimal digits"),
        ("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaeg", "40 hexadecimal digits"),
    ],
)
def test_checksum_address_refusals(text: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected) as caught:
        checksum_address(text)
    assert text[2:] not in str(caught.value)


@given(message=st.binary(max_size=200))
def test_eip191_digest_matches_eth_account(message: bytes) -> None:
    assert eip191_digest(message) == bytes(defunct_hash_message(primitive=message))


# --- secp256k1 ------------------------------------------------------------------------------

secp256k1_keys = st.integers(1, SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))


@settings(max_examples=40, deadline=None)
@given(private=secp256k1_keys)
def test_secp256k1_public_key_and_address_match_eth_account(private: bytes) -> None:
    signer = Secp256k1Signer(private)
    assert len(signer.public_key) == 33 and signer.public_key[0] in (2, 3)
    assert signer.address == Account.from_key(private).address
    assert address_of("secp256k1", signer.public_key) == signer.address
    uncompressed = bytes(Account.from_key(private)._key_obj.public_key.to_bytes())
    assert eth_address(b"\x04" + uncompressed) == signer.address


def _low_s(signature: bytes) -> bool:
    return 0 < int.from_bytes(signature[32:64], "big") <= SECP256K1_HALF_N


@settings(max_examples=60, deadline=None)
@given(private=secp256k1_keys, message=st.binary(max_size=300))
def test_eip191_round_trip_with_eth_account(private: bytes, message: bytes) -> None:
    signer = Secp256k1Signer(private)
    ours = signer.sign_message(message)
    assert len(ours) == 65 and ours[64] in (27, 28) and _low_s(ours)
    assert verify(signer.address, message, ours, key_type="secp256k1")
    assert verify(signer.public_key, message, ours, key_type="secp256k1")
    assert signer.verify_message(message, ours)
    assert Account.recover_message(encode_defunct(primitive=message), signature=ours) == (
        signer.address
    )
    theirs = bytes(Account.sign_message(encode_defunct(primitive=message), private).signature)
    assert verify(signer.address, message, theirs, key_type="secp256k1")
    assert theirs == ours  # both derive the nonce with RFC 6979, so the bytes agree


@settings(max_examples=40, deadline=None)
@given(
    private=secp256k1_keys,
    other=secp256k1_keys,
    message=st.binary(min_size=1, max_size=100),
    flip=st.integers(0, 65 * 8 - 1),
)
def test_secp256k1_tampering_is_false(
    private: bytes, other: bytes, message: bytes, flip: int
) -> None:
    signer = Secp256k1Signer(private)
    signature = signer.sign_message(message)
    tampered = bytearray(signature)
    tampered[flip // 8] ^= 1 << (flip % 8)
    assert not verify(signer.address, message, bytes(tampered), key_type="secp256k1")
    assert not verify(signer.address, message[:-1], signature, key_type="secp256k1")
    if other != private:
        wrong = Secp256k1Signer(other).address
        assert not verify(wrong, message, signature, key_type="secp256k1")


def test_high_s_and_v_forms() -> None:
    signer = Secp256k1Signer(keccak256(b"cow"))
    signature = signer.sign_message(b"hello")
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    # The same signature with v as a raw recovery id (0/1) still verifies.
    assert verify(
        signer.address, b"hello", r + signature[32:64] + bytes((v - 27,)), key_type="secp256k1"
    )
    # The high-s twin is valid ECDSA, but refused: it would give the signature a second form.
    twin = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes((55 - v,))  # 27 <-> 28
    assert Account.recover_message(encode_defunct(b"hello"), signature=twin) == signer.address
    assert not verify(signer.address, b"hello", twin, key_type="secp256k1")
    for bad_v in (26, 29, 2, 255):
        assert not verify(
            signer.address, b"hello", signature[:64] + bytes((bad_v,)), key_type="secp256k1"
        )
    assert recover_eth_address(eip191_digest(b"hello"), bytes(65)) is None
    assert recover_eth_address(eip191_digest(b"hello"), signature[:64]) is None


def test_eip712_verify_offline_with_eth_account_signature() -> None:
    private = keccak256(b"cow")
    address = "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"
    doc = mail()
    theirs = bytes(
        Account.sign_message(encode_typed_data(full_message=copy.deepcopy(doc)), private).signature
    )
    assert verify(address, doc, theirs, key_type="secp256k1")
    signer = Secp256k1Signer(private)
    typed = parse_typed_data(doc)
    assert signer.sign_typed_data(typed) == theirs
    assert signer.verify_typed_data(typed, theirs)
    doc["message"]["contents"] = "Hello, Eve!"
    assert not verify(address, doc, theirs, key_type="secp256k1")
    assert not verify(address, b"Hello, Bob!", theirs, key_type="secp256k1")
    del doc["types"]
    with pytest.raises(TypedDataError, match="missing 'types'"):
        verify(address, doc, theirs, key_type="secp256k1")


# --- Ed25519 against PyNaCl (libsodium) -----------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=300))
def test_ed25519_round_trip_with_pynacl(seed: bytes, message: bytes) -> None:
    signer = signer_for(KeyType.ED25519, bytearray(seed))
    signature = signer.sign_message(message)
    assert verify(signer.public_key, message, signature, key_type="ed25519")
    assert verify(signer.address, message, signature, key_type="ed25519")
    VerifyKey(signer.public_key).verify(message, signature)  # raises if invalid
    sodium = SigningKey(seed)
    assert bytes(sodium.verify_key) == signer.public_key
    assert sodium.sign(message).signature == signature  # Ed25519 is deterministic
    assert verify(signer.public_key, message, sodium.sign(message).signature, key_type="ed25519")


@settings(max_examples=40, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    other=st.binary(min_size=32, max_size=32),
    message=st.binary(min_size=1, max_size=100),
    flip=st.integers(0, 64 * 8 - 1),
)
def test_ed25519_tampering_is_false(seed: bytes, other: bytes, message: bytes, flip: int) -> None:
    signer = Ed25519Signer(seed)
    signature = signer.sign_message(message)
    tampered = bytearray(signature)
    tampered[flip // 8] ^= 1 << (flip % 8)
    assert not verify(signer.public_key, message, bytes(tampered), key_type="ed25519")
    assert not verify(signer.public_key, message[:-1], signature, key_type="ed25519")
    if other != seed:
        wrong = Ed25519Signer(other).public_key
        assert not verify(wrong, message, signature, key_type="ed25519")


# --- the error contract of verify -----------------------------------------------------------


def test_wrong_length_signatures_are_false() -> None:
    ed = Ed25519Signer(bytes(32))
    eth = Secp256k1Signer(keccak256(b"cow"))
    assert not verify(ed.public_key, b"m", ed.sign_message(b"m")[:63], key_type="ed25519")
    assert not verify(ed.public_key, b"m", b"", key_type="ed25519")
    assert not verify(eth.address, b"m", eth.sign_message(b"m") + b"\0", key_type="secp256k1")


@pytest.mark.parametrize(
    ("key", "key_type", "expected"),
    [
        (bytes(31), "ed25519", "32 bytes"),
        ("0OIl", "ed25519", "bitcoin alphabet"),
        ("1" * 45, "ed25519", "at most 44"),
        ("111", "ed25519", "exactly 32 bytes"),
        ("0x1234", "secp256k1", "40 hexadecimal digits"),
        (bytes(33), "secp256k1", "not a valid secp256k1 public key"),
        (bytes(32), "secp256k1", "33 bytes"),
        (bytes(32), "rsa", "unknown key type"),
        (bytes(32), "hmac-sha256", "can be verified only by walletd"),
    ],
)
def test_malformed_keys_raise(key: bytes | str, key_type: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        verify(key, b"m", bytes(64), key_type=key_type)


def test_typed_data_is_for_secp256k1_only() -> None:
    with pytest.raises(ValueError, match="only by secp256k1"):
        verify(bytes(32), mail(), bytes(64), key_type="ed25519")


# --- key generation and secrecy -------------------------------------------------------------


@pytest.mark.parametrize("key_type", list(KeyType))
def test_generate_private_key(key_type: KeyType) -> None:
    keys = {bytes(generate_private_key(key_type)) for _ in range(8)}
    assert len(keys) == 8
    for key in keys:
        assert len(key) == 32
        if key_type is KeyType.SECP256K1:
            assert 0 < int.from_bytes(key, "big") < SECP256K1_N


def test_public_key_forms() -> None:
    ed, eth = generate_private_key("ed25519"), generate_private_key("secp256k1")
    assert len(public_key_of("ed25519", ed)) == 32
    assert (
        public_key_of("secp256k1", eth)[0] in (2, 3) and len(public_key_of("secp256k1", eth)) == 33
    )
    with pytest.raises(ValueError, match="no public key"):
        public_key_of("hmac-sha256", generate_private_key("hmac-sha256"))
    with pytest.raises(ValueError, match="no public key"):
        address_of("hmac-sha256", b"")
    with pytest.raises(ValueError, match="HMAC signer"):
        signer_for("hmac-sha256", bytes(32))


def test_signers_have_no_raw_hash_signing() -> None:
    ed, eth = Ed25519Signer(bytes(32)), Secp256k1Signer(keccak256(b"cow"))
    assert {n for n in dir(ed) if not n.startswith("_")} == {
        "address",
        "key_type",
        "public_key",
        "sign_message",
        "verify_message",
    }
    assert {n for n in dir(eth) if not n.startswith("_")} == {
        "address",
        "key_type",
        "public_key",
        "sign_message",
        "sign_typed_data",
        "verify_message",
        "verify_typed_data",
    }


def _secret_forms(private: bytes) -> list[str]:
    return [private.hex(), private.hex().upper(), repr(private), repr(bytearray(private))[12:-2]]


@pytest.mark.parametrize("key_type", [KeyType.ED25519, KeyType.SECP256K1])
def test_reprs_and_pickling_show_no_key(key_type: KeyType) -> None:
    private = bytes(generate_private_key(key_type))
    signer = signer_for(key_type, bytearray(private))
    shown = repr(signer) + str(signer)
    assert signer.address in shown
    for form in _secret_forms(private):
        assert form not in shown
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError) as caught:
            attempt(signer)
        for form in _secret_forms(private):
            assert form not in str(caught.value)


@pytest.mark.parametrize(
    ("key_type", "private"),
    [
        (KeyType.SECP256K1, SECP256K1_N.to_bytes(32, "big")),
        (KeyType.SECP256K1, (SECP256K1_N + 5).to_bytes(32, "big")),
        (KeyType.SECP256K1, bytes(32)),
        (KeyType.SECP256K1, b"\x7f" * 31),
        (KeyType.ED25519, b"\x7f" * 33),
    ],
)
def test_bad_private_keys_are_refused_without_showing_them(
    key_type: KeyType, private: bytes
) -> None:
    with pytest.raises(ValueError) as caught:
        signer_for(key_type, private)
    for form in _secret_forms(private):
        assert form not in str(caught.value)


# --- import direction -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("walletd_wire.schemes", ("trio", "walletd", "wallet_client")),
        ("walletd.model.keys", ("trio", "sqlite3", "socket", "wallet_client")),
        ("wallet_client.verify", ("walletd",)),
    ],
)
def test_import_direction(module: str, forbidden: tuple[str, ...]) -> None:
    """A fresh interpreter imports the module and loads none of the forbidden packages."""
    check = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        "loaded = {name.split('.')[0] for name in sys.modules}\n"
        f"print(sorted(loaded & set({forbidden!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
