"""Signed job records, the server's side: the signing key, the published public keys, signatures.

Each job's executable fields (pilot/signature.py's SIGNED_KEYS: PandaID, transformation,
jobPars, the inputs with their GUIDs, sizes and checksums, the output and log names) are
signed with RSASSA-PKCS1-v1_5 / SHA-256. Pilots holding the public key refuse a job whose
signature does not verify (docs/job-signing.md). The signed bytes are built by the pilot's
own function from the strings of the getJob answer, so both sides cannot drift apart.

Keys (settings.PANDA): SIGNING_KEY, the active private key's PEM file; SIGNING_ACCEPTED_KEYS,
more PEM files (public or private) whose public keys stay published and valid, for key
rotation. Without a configured key, a single-host setup (DEBUG or SQLite) gets one generated
under var/ on first use; a production server (several hosts need one shared key) signs
nothing and says so in its log.
"""

import base64
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from pilot.signature import KEY_ID_KEY, MIN_KEY_BITS, SIGNATURE_KEY, canonical_message, key_id_of

logger = logging.getLogger(__name__)

DEFAULT_KEY_BITS = 2048
ALGORITHM = "RSASSA-PKCS1-v1_5-SHA256"
_PADDING = padding.PKCS1v15()
_HASH = hashes.SHA256()


@dataclass(frozen=True)
class Keyring:
    """The active private key (None: jobs go out unsigned) and every published public key."""

    private_key: rsa.RSAPrivateKey | None = None
    active_key_id: str | None = None
    public_pems: dict[str, str] = field(default_factory=dict)  # key id -> PEM, the active key first

    @property
    def signs(self):
        return self.private_key is not None

    def sign(self, message):
        """(key id, base64 signature) of `message` with the active key."""
        signature = self.private_key.sign(message, _PADDING, _HASH)
        return self.active_key_id, base64.b64encode(signature).decode("ascii")


# -- keys and key files ------------------------------------------------------------------------


def public_pem(public_key):
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode("ascii")


def key_id(public_key):
    """The pilot's id of a key: SHA-256 of its DER SubjectPublicKeyInfo, 16 hex digits."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key_id_of(der)


def read_key_file(path):
    """The key in a PEM file: a private key (RSAPrivateKey) or a public one (RSAPublicKey)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImproperlyConfigured(f"cannot read the job signing key {path}: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise ImproperlyConfigured(f"{path}: not an unencrypted PEM RSA key ({exc})") from exc
    if not isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        raise ImproperlyConfigured(f"{path}: not an RSA key")
    if key.key_size < MIN_KEY_BITS:
        raise ImproperlyConfigured(f"{path}: a {key.key_size}-bit key; pilots accept {MIN_KEY_BITS} bits or more")
    return key


def private_pem(private_key):
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_new_key(path, bits=DEFAULT_KEY_BITS):
    """Generate a private key into `path` (mode 0600); FileExistsError if the file exists.

    Written to a temporary file and hard-linked into place: a half-written key is never
    visible, and of two processes generating at once exactly one key wins.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".signing-key-")  # mode 0600
    try:
        with os.fdopen(descriptor, "wb") as key_file:
            key_file.write(private_pem(private_key))
        os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return private_key


# -- the keyring of this process ----------------------------------------------------------------

_keyrings = {}
_lock = threading.Lock()
_warned_unsigned = False


def _config():
    panda = settings.PANDA
    return (panda.get("SIGNING_KEY", ""), bool(panda.get("SIGNING_KEY_GENERATE")),
            tuple(panda.get("SIGNING_ACCEPTED_KEYS", ())))  # fmt: skip


def keyring():
    """This process's keyring, read once per configuration (a new key needs a restart)."""
    config = _config()
    ring = _keyrings.get(config)
    if ring is None:
        with _lock:
            ring = _keyrings.get(config) or _load(*config)
            _keyrings[config] = ring
    return ring


def _load(key_path, generate, accepted_paths):
    private_key = _active_key(key_path, generate) if key_path else None
    pems = {}
    if private_key is not None:
        pems[key_id(private_key.public_key())] = public_pem(private_key.public_key())
    for path in accepted_paths:
        key = read_key_file(path)
        public_key = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
        pems.setdefault(key_id(public_key), public_pem(public_key))
    active = key_id(private_key.public_key()) if private_key is not None else None
    if active:
        logger.info("job signing key %s (%d published keys)", active, len(pems))
    return Keyring(private_key, active, pems)


def _active_key(path, generate):
    if generate and not os.path.exists(path):
        try:
            write_new_key(path)
            logger.warning("generated a job signing key in %s (single-host setup; see docs/job-signing.md)", path)
        except FileExistsError:
            pass  # another process of this host generated it first: use that one
    key = read_key_file(path)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ImproperlyConfigured(f"PANDA_SIGNING_KEY {path}: a public key; the server needs the private key")
    if os.stat(path).st_mode & 0o077:
        logger.warning("job signing key %s is readable by other users: chmod 600 it", path)
    return key


def reset_cache():
    """Forget loaded keyrings (tests that change the key files under the same paths)."""
    global _warned_unsigned
    with _lock:
        _keyrings.clear()
        _warned_unsigned = False


# -- signatures ----------------------------------------------------------------------------------


def sign_fields(fields):
    """(key id, base64 signature) of a job's signed fields, or None when this server signs nothing."""
    ring = keyring()
    if not ring.signs:
        _warn_unsigned()
        return None
    return ring.sign(canonical_message(fields))


def signature_keys(description, key_id=None, signature=None):
    """The getJob keys carrying a job's signature: the stored one while its key is still
    published, else a signature made now (jobs created before signing was configured, by
    bulk SQL, or signed with a key since retired). Empty when this server signs nothing."""
    ring = keyring()
    if not ring.signs:
        _warn_unsigned()
        return {}
    if not signature or key_id not in ring.public_pems:
        key_id, signature = ring.sign(canonical_message(description))
    return {SIGNATURE_KEY: signature, KEY_ID_KEY: key_id}


def _warn_unsigned():
    global _warned_unsigned
    if not _warned_unsigned:
        _warned_unsigned = True
        logger.warning(
            "JOBS ARE DISPATCHED UNSIGNED: PANDA_SIGNING_KEY is not set. Pilots that verify signatures "
            "refuse every job. Create a key with `manage.py panda_signing_key generate` (docs/job-signing.md)."
        )


def published_keys():
    """What /api/v1/pilot/public_keys serves and pilots accept: [{key_id, algorithm, active, pem}]."""
    ring = keyring()
    return [
        {"key_id": kid, "algorithm": ALGORITHM, "active": kid == ring.active_key_id, "pem": pem}
        for kid, pem in ring.public_pems.items()
    ]
