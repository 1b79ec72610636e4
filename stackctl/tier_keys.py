"""A vLLM tier's API key across `suiqa up` and `suiqa restart ROLE`, never written to the run state.

`suiqa up` records for each tier whether it requires a key, the variable a restart reads it from
(``SUIQA_<ROLE>_API_KEY``, the documented source) and a salted, slow hash of it (PBKDF2-SHA256, 600,000
iterations, OWASP's 2023 figure: 0.14 s on this 2-core machine, once per `up` and per `restart`); the key
itself stays in the environment. `suiqa restart ROLE` brings the tier back with the key from that variable
only when it is the same key, and refuses in one line otherwise. Before (issue #25), a restart from a shell
without the variable brought the agent tier back with no key at all, silently (it answered without one while
the domain tier still refused); a different key would have locked the pipeline out (its replicas keep sending
the key they started with).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from suiqa.errors import SuiqaError

ITERATIONS = 600_000
SALT_BYTES = 16


def env_name(role: str) -> str:
    return f"SUIQA_{role.upper()}_API_KEY"


def _digest(key: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", key.encode("utf-8"), salt, iterations)


def record(role: str, api_key: SecretStr | None) -> dict[str, Any] | None:
    """What the run state keeps of a tier's key: None for a tier without one (an empty key is none: vLLM then
    requires nothing), else the variable a restart reads and ``pbkdf2_sha256$iterations$salt$digest``."""
    key = api_key.get_secret_value() if api_key is not None else ""
    if not key:
        return None
    salt = os.urandom(SALT_BYTES)
    return {"env": env_name(role),
            "pbkdf2_sha256": f"{ITERATIONS}${salt.hex()}${_digest(key, salt, ITERATIONS).hex()}"}


def matches(key: str, recorded: Mapping[str, Any]) -> bool:
    try:
        iterations, salt, digest = str(recorded["pbkdf2_sha256"]).split("$")
        expected, salt_bytes, rounds = bytes.fromhex(digest), bytes.fromhex(salt), int(iterations)
    except (KeyError, ValueError):
        return False
    return hmac.compare_digest(_digest(key, salt_bytes, rounds), expected)


def key_for_restart(role: str, recorded: Mapping[str, Any] | None,
                    environ: Mapping[str, str] = os.environ) -> SecretStr | None:
    """The key to restart ``role`` with (None: the tier ran without one), or a one-line SuiqaError when this
    environment would bring it back less secure than it was, or with a key the pipeline does not send."""
    name = env_name(role)
    given = environ.get(name, "")
    if recorded is None:
        if given:
            raise SuiqaError(f"the {role} tier was started without an API key, but this shell sets {name}: "
                             "the pipeline sends none and would be locked out (unset it, or `suiqa down` and "
                             "`suiqa up`)")
        return None
    if not given:
        raise SuiqaError(f"the {role} tier was started with an API key: set {name} to that key in this shell "
                         "(a restart without it would bring the tier back open)")
    if not matches(given, recorded):
        raise SuiqaError(f"{name} is not the key the {role} tier was started with: the pipeline sends that "
                         "one (set the same key, or `suiqa down` and `suiqa up` with the new one)")
    return SecretStr(given)
