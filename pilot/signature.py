"""Signed job records: check the server's RSA signature of a job before running it (docs/job-signing.md).

The server signs each job's executable fields with its private key; the pilot
checks the signature with the server's public key(s) and refuses a job whose
description was changed on the way. Standard library only: worker nodes may not
have `cryptography`, and verifying RSASSA-PKCS1-v1_5 needs no more than
`pow(signature, e, n)` and a byte comparison (RFC 8017 §8.2.2).

Public keys come as PEM SubjectPublicKeyInfo blocks ("BEGIN PUBLIC KEY"), from
a file the site installs (--signing-key) or from the server's
/api/v1/pilot/public_keys (--fetch-signing-key). A key's id is the first 16 hex
digits of the SHA-256 of its DER encoding, on both sides: an id is never taken
on trust from the job or the key list.
"""

import base64
import binascii
import hashlib
import hmac
import json
import re
import urllib.request
from collections.abc import Mapping
from typing import NamedTuple

# The getJob answer keys the signature covers, in this order. The server signs the
# same strings it puts in the answer, so both sides build the message from them.
SIGNED_KEYS = ("PandaID", "transformation", "jobPars", "inFiles", "GUID", "fsize", "checksum", "outFiles", "logFile")
MESSAGE_PREFIX = b"PanDA job signature v1\n"
SIGNATURE_KEY = "jobSignature"
KEY_ID_KEY = "jobSignatureKeyId"
PUBLIC_KEYS_PATH = "/api/v1/pilot/public_keys"
MIN_KEY_BITS = 2048

# DER of DigestInfo{sha256, NULL} without the digest (RFC 8017 §9.2, note 1).
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
RSA_ENCRYPTION_OID = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1
_PEM_BLOCK = re.compile(r"-----BEGIN PUBLIC KEY-----(.*?)-----END PUBLIC KEY-----", re.DOTALL)


class BadKey(ValueError):
    """A public key that cannot be used (bad PEM/DER, not RSA, too short)."""


class PublicKey(NamedTuple):
    key_id: str
    n: int
    e: int


# -- what is signed ---------------------------------------------------------------------------


def canonical_message(answer: Mapping) -> bytes:
    """The signed bytes of a job: each signed key as `<key>:<length>:<value>\\n` (UTF-8).

    Length-prefixed, so no value can shift bytes into its neighbour; a missing key
    is the empty string (an answer stripped of a key then no longer verifies).
    """
    parts = [MESSAGE_PREFIX]
    for key in SIGNED_KEYS:
        value = answer.get(key)
        data = ("" if value is None else str(value)).encode("utf-8")
        parts.append(f"{key}:{len(data)}:".encode() + data + b"\n")
    return b"".join(parts)


# -- keys -------------------------------------------------------------------------------------


def key_id_of(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()[:16]


def _read_tlv(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """One DER element at `offset`: (tag, contents, offset after it)."""
    if offset + 2 > len(data):
        raise BadKey("truncated DER")
    tag, length = data[offset], data[offset + 1]
    offset += 2
    if length & 0x80:  # long form: the next (length & 0x7f) bytes hold the length
        size = length & 0x7F
        if not 0 < size <= 4 or offset + size > len(data):
            raise BadKey("bad DER length")
        length = int.from_bytes(data[offset : offset + size], "big")
        offset += size
    if offset + length > len(data):
        raise BadKey("truncated DER")
    return tag, data[offset : offset + length], offset + length


def _expect(data: bytes, offset: int, tag: int) -> tuple[bytes, int]:
    found, contents, offset = _read_tlv(data, offset)
    if found != tag:
        raise BadKey(f"DER tag {found:#x} where {tag:#x} was expected")
    return contents, offset


def parse_der_public_key(der: bytes) -> PublicKey:
    """SubjectPublicKeyInfo{AlgorithmIdentifier{rsaEncryption}, BIT STRING{RSAPublicKey{n, e}}}."""
    spki, _ = _expect(der, 0, 0x30)
    algorithm, offset = _expect(spki, 0, 0x30)
    oid, _ = _expect(algorithm, 0, 0x06)
    if oid != RSA_ENCRYPTION_OID:
        raise BadKey("not an RSA public key")
    bits, _ = _expect(spki, offset, 0x03)
    if not bits or bits[0] != 0:
        raise BadKey("bad BIT STRING")
    rsa_key, _ = _expect(bits[1:], 0, 0x30)
    n_bytes, offset = _expect(rsa_key, 0, 0x02)
    e_bytes, _ = _expect(rsa_key, offset, 0x02)
    n, e = int.from_bytes(n_bytes, "big"), int.from_bytes(e_bytes, "big")
    if n.bit_length() < MIN_KEY_BITS:
        raise BadKey(f"RSA key of {n.bit_length()} bits; at least {MIN_KEY_BITS} are required")
    if e < 3 or e % 2 == 0:
        raise BadKey("bad RSA public exponent")
    return PublicKey(key_id_of(der), n, e)


def parse_pem_keys(text: str) -> dict[str, PublicKey]:
    """Every "BEGIN PUBLIC KEY" block of `text` (other lines are ignored), by key id."""
    keys = {}
    for block in _PEM_BLOCK.findall(text):
        try:
            der = base64.b64decode("".join(block.split()), validate=True)
        except binascii.Error as exc:
            raise BadKey(f"bad base64 in a PEM block: {exc}") from exc
        key = parse_der_public_key(der)
        keys[key.key_id] = key
    if not keys:
        raise BadKey("no '-----BEGIN PUBLIC KEY-----' block found")
    return keys


def parse_key_list(text: str) -> dict[str, PublicKey]:
    """A key file: PEM blocks, or the JSON of /api/v1/pilot/public_keys (its envelope or its data)."""
    if not text.lstrip().startswith("{"):
        return parse_pem_keys(text)
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise BadKey(f"not JSON: {exc}") from exc
    data = document.get("data", document) if isinstance(document, dict) else None
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise BadKey("no key list in the JSON document")
    # The ids listed next to the keys are ignored: each is recomputed from its PEM.
    return parse_pem_keys("\n".join(str(entry.get("pem", "")) for entry in entries if isinstance(entry, dict)))


def load_key_file(path: str) -> dict[str, PublicKey]:
    with open(path, encoding="utf-8") as key_file:
        return parse_key_list(key_file.read())


def fetch_keys(server: str, timeout: float = 60.0) -> dict[str, PublicKey]:
    """The server's public keys. Weaker than a site-installed file: whoever can change the
    jobs on their way (a man in the middle) can change this answer too."""
    request = urllib.request.Request(server.rstrip("/") + PUBLIC_KEYS_PATH, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return parse_key_list(response.read().decode("utf-8"))


# -- verification -----------------------------------------------------------------------------


def verify(message: bytes, signature: bytes, key: PublicKey) -> bool:
    """RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2.2): rebuild the encoded message and compare."""
    size = (key.n.bit_length() + 7) // 8
    if len(signature) != size:
        return False
    value = int.from_bytes(signature, "big")
    if value >= key.n:
        return False
    encoded = pow(value, key.e, key.n).to_bytes(size, "big")
    digest_info = SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    expected = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
    return hmac.compare_digest(encoded, expected)


def check_job(answer: Mapping, keys: Mapping[str, PublicKey]) -> str | None:
    """None when the job carries a valid signature by one of `keys`, else why it does not."""
    signature_text, key_id = answer.get(SIGNATURE_KEY), answer.get(KEY_ID_KEY)
    if not signature_text or signature_text == "NULL":
        return "the job is not signed"
    key = keys.get(str(key_id))
    if key is None:
        return f"the job is signed with unknown key id {str(key_id)[:40]!r} (known: {', '.join(sorted(keys))})"
    try:
        signature = base64.b64decode(str(signature_text), validate=True)
    except binascii.Error:
        return "the job's signature is not valid base64"
    if not verify(canonical_message(answer), signature, key):
        return f"the signature (key {key.key_id}) does not match the job description: it was changed after signing"
    return None
