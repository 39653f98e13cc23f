"""Secrets planted in a repository in the forms real codebases hide them, with fresh random
values on every run, so no scanner can pass by knowing the values: each plant is the text to
commit (in a file, a commit message, a diff or a notebook) and the values that must never reach
a dataset."""

from __future__ import annotations

import base64
import json
import secrets
import string
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.repos import commit, git

CORPUS_SECRETS = [
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "c2VjcmV0IG1lc3NhZ2Ugc28geW91J2xsIG5ldmVyIGd1ZXNzIG15IHBhc3N3b3Jk",
    "8b1118b376c313ed420e5133ba91307817ed52c2",
    "whywouldyouusehttpforpasswords",
    "gX69YO4CvBsVjzAwYxdGyDd30t5+9ez31gKATtj4",
    "123456789a1234",
    "vh987tyw9ehy8ghis7vwyhiwbwitefy7w3ASDGYDGUASDG",
    "somethingSuperRandomAndSecretHereThatShouldNeverBeShared",
    "c3VwZXIgbG9uZyBzdHJpbmcgc2hvdWxkIGNhdXNlIGVub3VnaCBlbnRyb3B5",
    "f6CGV4aMM9zedoh3OUNbSakBymo7yplB",
    "AKIATESTTESTTESTTEST",
    "ToCynx5Se4e2PtoZxEhW7lUJcOX15c54",
    "MmIwMDA0MmY3NDgxYzdiMDU2YzRiNDEwZDI4ZjMzY2Y=",
]
"""Secret values of detect-secrets' test data (`tests/data`), one per kind of place it hides
them: the corpus's true positives."""


@dataclass
class Plant:
    form: str
    values: list[str]
    """What must not appear in any dataset file: the secret, or pieces of it that identify it."""
    files: dict[str, str | bytes] = field(default_factory=dict)
    message: str = "Update"
    then: dict[str, str | bytes] | None = None
    """A second commit's files (a diff that shows only part of what the first added)."""


def _b64(n: int) -> str:
    return base64.b64encode(secrets.token_bytes(n)).decode()


def pem_key() -> tuple[str, list[str]]:
    """A private key in PEM form (random body: its shape is what scanners see) and body lines."""
    body = textwrap.wrap(_b64(1190), 64)
    pem = (
        "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(body) + "\n-----END RSA PRIVATE KEY-----\n"
    )
    return pem, body


def pieces(pem: str, size: int = 20) -> list[str]:
    """The key as short string pieces (its header cut too), line breaks written `\\n`."""
    text = pem.replace("\n", "\\n")
    return [text[i : i + size] for i in range(0, len(text), size)]


def word(n: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


def plants() -> list[Plant]:
    out: list[Plant] = []
    _pem, body = pem_key()
    # 1. A key in code, then a commit that changes two lines in its middle: the diff shows body
    # lines without the BEGIN line.
    new_body = list(body)
    new_body[10], new_body[11] = textwrap.wrap(_b64(96), 64)
    lines = "\n".join(body)
    changed = "\n".join(new_body)
    out.append(
        Plant(
            "pem-body-in-diff",
            [new_body[10], new_body[11], body[9], body[12]],
            {
                "deploy/keys.py": f'KEY = """-----BEGIN RSA PRIVATE KEY-----\n{lines}\n'
                '-----END RSA PRIVATE KEY-----\n"""\n'
            },
            "Add the deploy key",
            {
                "deploy/keys.py": f'KEY = """-----BEGIN RSA PRIVATE KEY-----\n{changed}\n'
                '-----END RSA PRIVATE KEY-----\n"""\n'
            },
        )
    )
    # 2. A key cut into quoted pieces joined by `+`, and side by side (implicit concatenation).
    pem2, body2 = pem_key()
    joined = " +\n".join(f'    "{piece}"' for piece in pieces(pem2))
    pem_side, body_side = pem_key()
    side = "\n".join(f'    "{piece}"' for piece in pieces(pem_side))
    out.append(
        Plant(
            "pem-in-pieces",
            [body2[3][:20]],
            {"src/signing.js": f"const key =\n{joined};\nmodule.exports = key;\n"},
            "Sign requests",
        )
    )
    out.append(
        Plant(
            "pem-side-by-side",
            [body_side[5][:20]],
            {"app/tls.py": f"PRIVATE = (\n{side}\n)\n"},
            "Serve over TLS",
        )
    )
    # 3. base64 of a PEM key: unquoted in Markdown, and in a YAML block scalar.
    pem3 = pem_key()[0]
    encoded = base64.b64encode(pem3.encode()).decode()
    out.append(
        Plant(
            "pem-base64-markdown",
            [encoded[100:160]],
            {"docs/setup.md": f"# Setup\n\nPut this in the secret store:\n\n{encoded}\n"},
            "Document the setup",
        )
    )
    folded = "\n".join("    " + encoded[i : i + 76] for i in range(0, len(encoded), 76))
    out.append(
        Plant(
            "pem-base64-yaml",
            [encoded[200:260]],
            {"k8s/secret.yml": f"apiVersion: v1\nkind: Secret\ndata:\n  tls.key: |\n{folded}\n"},
            "Add the TLS secret",
        )
    )
    # 4. Webhook URLs the scanner may not know: Discord, in code and in a commit message.
    hook = f"https://discord.com/api/webhooks/{secrets.randbelow(10**18)}/{word(68)}"
    out.append(
        Plant(
            "discord-webhook",
            [hook.rsplit("/", 1)[1]],
            {"bot/notify.py": f'WEBHOOK = "{hook}"\n\n\ndef notify(text):\n    return text\n'},
            "Notify the channel",
        )
    )
    hook2 = f"https://discord.com/api/webhooks/{secrets.randbelow(10**18)}/{word(68)}"
    out.append(
        Plant(
            "webhook-in-message",
            [hook2.rsplit("/", 1)[1]],
            {"bot/README.md": "# Bot\n\nIt posts to the team channel.\n"},
            f"Post releases to the channel\n\nUses {hook2} for now.",
        )
    )
    # 5. A token and an old password in commit messages (they become assistant answers).
    token = "ghp_" + word(36)
    old = word(6) + "!" + word(5)
    out.append(
        Plant(
            "token-in-message",
            [token],
            {"ci/run.sh": "#!/bin/sh\nmake test\n"},
            f"Run CI with the bot's token {token}",
        )
    )
    out.append(
        Plant(
            "old-password-in-message",
            [old],
            {"db/schema.sql": "CREATE TABLE users (id int);\n"},
            f"Rotate the database password\n\nThe old password was {old}; it is revoked.",
        )
    )
    # 6. A password in Markdown prose.
    admin = word(8) + "#" + word(4)
    out.append(
        Plant(
            "password-in-prose",
            [admin],
            {"docs/admin.md": f"# Admin\n\nLog in as admin; the admin password is `{admin}`.\n"},
            "Document the admin login",
        )
    )
    # 7. An unquoted 64-hex session secret in a test fixture.
    session = secrets.token_hex(32)
    out.append(
        Plant(
            "hex-session-secret",
            [session],
            {"tests/fixtures/app.yml": f"debug: true\nsession_secret: {session}\nport: 8080\n"},
            "Add the app fixture",
        )
    )
    # 8. A key in a notebook cell's source (JSON strings, one per line).
    nb_key = "sk_live_" + word(32)
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "source": ["import stripe\n", f'stripe.api_key = "{nb_key}"\n'],
                "metadata": {},
                "outputs": [],
                "execution_count": 1,
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    out.append(
        Plant(
            "key-in-notebook",
            [nb_key],
            {"notebooks/billing.ipynb": json.dumps(notebook, indent=1)},
            "Explore billing",
        )
    )
    # 9. Tokens of providers only a large rule set knows (npm, PyPI, Shopify, DigitalOcean,
    # Linear, Databricks), in Markdown prose, in code, and in a commit message.
    tokens = provider_tokens()
    listed = "\n".join(f"* {name}: {value}" for name, value in tokens.items())
    out.append(
        Plant(
            "provider-tokens",
            list(tokens.values()),
            {
                "docs/release.md": f"# Releasing\n\nThe release job reads these:\n\n{listed}\n",
                "scripts/publish.py": f'NPM = "{tokens["npm"]}"\nDO = "{tokens["digitalocean"]}"\n',
            },
            f"Add the release notes\n\nThe Shopify one for the shop is {tokens['shopify']}.",
        )
    )
    return out


def provider_tokens() -> dict[str, str]:
    """A fresh token of each provider, in the shape the provider issues it."""
    hexdigits = "0123456789abcdef"
    return {
        "npm": "npm_" + word(36),
        "pypi": "pypi-AgEIcHlwaS5vcmc" + word(60),
        "shopify": "shpat_" + "".join(secrets.choice(hexdigits) for _ in range(32)),
        "digitalocean": "dop_v1_" + secrets.token_hex(32),
        "linear": "lin_api_" + word(40),
        "databricks": "dapi" + secrets.token_hex(16),
    }


def planted_repo(root: Path) -> tuple[Path, list[Plant]]:
    """A repository with every plant committed (and ordinary code around them)."""
    repo = root / "planted"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {"README.md": "# Planted\n\nA service.\n"}, "Start the service")
    commit(
        repo,
        {"app/main.py": "def main() -> int:\n    return 0\n"},
        "Add the entry point",
    )
    made = plants()
    for plant in made:
        commit(repo, plant.files, plant.message)
        if plant.then:
            commit(repo, plant.then, f"Change {plant.form}")
    return repo, made
