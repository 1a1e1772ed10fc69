"""The key that signs admin sessions, CSRF tokens and feedback tokens: never a built-in one.

Why refuse instead of warn: anyone who knows the key can sign a session cookie that opens the
admin pages, and the old built-in value is public in this repository's history. Development
(what ``scripts/demo.sh`` and ``scripts/serve.sh`` run) creates a random key once in the
instance folder, readable by its owner only; production takes ``SECRET_KEY`` or
``SECRET_KEY_FILE`` and never invents one, since workers on several hosts must share it.
"""
from __future__ import annotations

import math
import os
import secrets
from collections import Counter
import time
from pathlib import Path

from flask import Flask

MIN_BYTES = 32
MIN_DISTINCT = 8
MIN_BITS = 80
# Values that were shipped in the code or the docs at some point: public, so never accepted.
BUILT_IN_KEYS = frozenset({"dev-only-not-secret", "testing-secret", "change-me", "changeme",
                           "secret", ""})


class SecretKeyError(RuntimeError):
    pass


def configure_secret_key(app: Flask, config_name: str) -> None:
    """Settle ``SECRET_KEY`` for every config but testing, or refuse to start."""
    if config_name == "testing":
        return
    key = str(app.config.get("SECRET_KEY") or "")
    path = str(app.config.get("SECRET_KEY_FILE") or "")
    if not key and config_name == "development":
        key = read_or_create(Path(path or Path(app.instance_path) / "secret_key"))
    elif not key and path:
        try:
            key = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretKeyError(f"SECRET_KEY_FILE {path} cannot be read: {exc}") from None
    check_key(key)
    app.config["SECRET_KEY"] = key


def check_key(key: str) -> None:
    if not key:
        raise SecretKeyError("no SECRET_KEY: set SECRET_KEY (or SECRET_KEY_FILE) in the "
                             "environment, e.g. python3 -c 'import secrets; "
                             "print(secrets.token_hex(32))'")
    if key in BUILT_IN_KEYS:
        raise SecretKeyError("SECRET_KEY is a built-in, public value; generate a random one")
    if len(key.encode("utf-8")) < MIN_BYTES:
        raise SecretKeyError(f"SECRET_KEY is shorter than {MIN_BYTES} bytes; generate a "
                             "random one (secrets.token_hex(32))")
    weakness = weak_key_reason(key)
    if weakness:
        raise SecretKeyError(f"SECRET_KEY {weakness}: it is not random; generate one with "
                             "python3 -c 'import secrets; print(secrets.token_hex(32))'")


def weak_key_reason(key: str) -> str | None:
    """Why ``key`` is guessable although long enough, or None.

    Length alone accepted "aaaa…" (32 bytes, one distinct byte). A random key's bytes are
    spread over many values (``MIN_DISTINCT``), carry at least ``MIN_BITS`` by their observed
    byte frequencies (Shannon entropy times length: ``token_hex(16)`` gives about 110, 32 equal
    bytes 0), and do not repeat a short pattern (most 3-byte windows differ). These are
    estimates from the key alone: they refuse what is plainly not random, and cannot prove
    that the rest is.
    """
    data = key.encode("utf-8")
    counts = Counter(data)
    if len(counts) < MIN_DISTINCT:
        return f"has only {len(counts)} distinct bytes (at least {MIN_DISTINCT} needed)"
    bits = -sum(n * math.log2(n / len(data)) for n in counts.values())
    if bits < MIN_BITS:
        return f"carries about {bits:.0f} bits (at least {MIN_BITS} needed)"
    windows = [data[i:i + 3] for i in range(len(data) - 2)]
    if len(set(windows)) < 0.75 * len(windows):
        return "repeats a short pattern"
    return None


def read_or_create(path: Path) -> str:
    """The key in ``path``, created first when missing: O_EXCL so that gunicorn workers
    starting together agree on one key, mode 600 from the start (no window where it is
    readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_hex(32) + "\n")
    for _ in range(50):  # a concurrent creator may not have written its line yet
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key
        time.sleep(0.02)
    raise SecretKeyError(f"{path} is empty; delete it to generate a new key")
