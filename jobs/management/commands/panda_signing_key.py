"""Job signing keys (docs/job-signing.md): create one, show what pilots must be given."""

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from jobs import signing

KEY_SIZES = (2048, 3072, 4096)


class Command(BaseCommand):
    help = (
        "generate PATH: write a new private key (mode 0600) and print its public key. "
        "public [FILE ...]: print the public keys of PEM files, or without files the keys this server publishes "
        "(the file to install at sites for `python -m pilot --signing-key`)."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        generate = actions.add_parser("generate", help="write a new private key and print its public key")
        generate.add_argument("path", help="where to write the private key (must not exist)")
        generate.add_argument("--bits", type=int, choices=KEY_SIZES, default=signing.DEFAULT_KEY_BITS)
        public = actions.add_parser("public", help="print public keys as PEM (or JSON)")
        public.add_argument("files", nargs="*", help="PEM key files (private or public); default: this server's")
        public.add_argument("--json", action="store_true", help="the JSON of /api/v1/pilot/public_keys instead")

    def handle(self, *args, action, **options):
        if action == "generate":
            self._generate(options["path"], options["bits"])
        else:
            self._public(options["files"], options["json"])

    def _generate(self, path, bits):
        try:
            private_key = signing.write_new_key(path, bits)
        except FileExistsError:
            raise CommandError(f"{path} exists: refusing to overwrite a key") from None
        public_key = private_key.public_key()
        self.stderr.write(f"wrote a {bits}-bit private key to {Path(path).resolve()} (mode 0600); key id "
                          f"{signing.key_id(public_key)}. Its public key (give it to the sites' pilots):")  # fmt: skip
        self.stdout.write(_pem_with_id(signing.key_id(public_key), signing.public_pem(public_key)))

    def _public(self, files, as_json):
        if files:
            keys = [_public_entry(path) for path in files]
        else:
            keys = signing.published_keys()
            if not keys:
                raise CommandError("this server signs nothing: PANDA_SIGNING_KEY is not set")
        if as_json:
            self.stdout.write(json.dumps({"algorithm": signing.ALGORITHM, "keys": keys}, indent=1))
        else:
            self.stdout.write("".join(_pem_with_id(entry["key_id"], entry["pem"]) for entry in keys))


def _public_entry(path):
    try:
        key = signing.read_key_file(path)
    except ImproperlyConfigured as exc:
        raise CommandError(str(exc)) from None
    public_key = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    kid = signing.key_id(public_key)
    return {"key_id": kid, "algorithm": signing.ALGORITHM, "active": False, "pem": signing.public_pem(public_key)}


def _pem_with_id(kid, pem):
    # Text outside the PEM blocks is ignored by pilots: the id line is for the people installing the file.
    return f"# job signing key {kid}\n{pem}"
