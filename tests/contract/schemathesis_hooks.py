"""schemathesis hooks for the contract run: every authenticated operation gets a device-scoped
access token of a fresh user whose device was created with valid keys, so the fuzzer reaches
the operations' own checks instead of stopping at 401/403.

The keys are made as a libsignal client makes them: the identity key is the Montgomery form
(0x05 ‖ u) of an Ed25519 key, and the signed prekey is signed with that Ed25519 key, which the
server's XEdDSA check (BEHAVIOR.md §6.2) accepts. `cryptography` signs; the Edwards → Montgomery
map u = (1 + y) / (1 - y) mod p is computed here.

A `format: byte` field that has a `pattern` (every key and signature of the served contract)
is drawn from its pattern: the pattern implies the format, and schemathesis would otherwise
draw random base64 and filter it by the pattern, which nearly never matches. The document is
changed for generation only, when it is loaded; the server serves it unchanged.
`application/x-protobuf` bodies are `SendMessageRequest`s of 1 to 5 submissions (random or
16-byte ids, small payloads) or arbitrary bytes: schemathesis has no protobuf generator.

Path parameters that are UUIDs are, half of the time, replaced by an id that exists: the
calling device (devices/{deviceId}), a user with a complete bundle (users/{userId},
keys/{userId}), an uploaded attachment (attachments/{id}). Each device is also given a backup.
So the 200 answers are reached and checked against their schemas too, not only 404s.

The server's base URL comes from OBSCURA_CONTRACT_BASE_URL (run_schemathesis.py sets it).
"""

import base64
import functools
import json
import os
import uuid

import requests
import schemathesis
from hypothesis import strategies as st
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

FIELD_PRIME = 2**255 - 19
PASSWORD = "schemathesis-password"
ONE_TIME_PREKEYS = 5
TIMEOUT_SECS = 10


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def montgomery_public(key: Ed25519PrivateKey) -> bytes:
    """0x05 ‖ the Montgomery u-coordinate of an Ed25519 public key."""
    edwards = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    y = int.from_bytes(edwards, "little") & ((1 << 255) - 1)
    u = (1 + y) * pow(1 - y, FIELD_PRIME - 2, FIELD_PRIME) % FIELD_PRIME
    return b"\x05" + u.to_bytes(32, "little")


def device_request() -> dict:
    """A CreateDeviceRequest with a valid XEdDSA-signed prekey."""
    identity = Ed25519PrivateKey.generate()
    signed_prekey = montgomery_public(Ed25519PrivateKey.generate())
    return {
        "name": "schemathesis",
        "identityKey": b64(montgomery_public(identity)),
        "registrationId": 4242,
        "signedPreKey": {"keyId": 1, "publicKey": b64(signed_prekey), "signature": b64(identity.sign(signed_prekey))},
        "oneTimePreKeys": [
            {"keyId": i, "publicKey": b64(montgomery_public(Ed25519PrivateKey.generate()))}
            for i in range(1, ONE_TIME_PREKEYS + 1)
        ],
    }


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def length_delimited(field: int, data: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(data)) + data


def submission(parts) -> bytes:
    submission_id, device_id, message = parts
    return length_delimited(
        1,
        length_delimited(1, submission_id) + length_delimited(2, device_id) + length_delimited(3, message),
    )


IDS = st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=20))
SEND_MESSAGE_REQUESTS = st.one_of(
    st.lists(st.tuples(IDS, IDS, st.binary(max_size=64)).map(submission), min_size=1, max_size=5).map(b"".join),
    st.binary(min_size=1, max_size=256),
)
schemathesis.openapi.media_type("application/x-protobuf", SEND_MESSAGE_REQUESTS)


def drop_format_under_pattern(node) -> None:
    """Removes `format: byte` wherever a `pattern` says more."""
    if isinstance(node, dict):
        if node.get("format") == "byte" and "pattern" in node:
            del node["format"]
        for value in node.values():
            drop_format_under_pattern(value)
    elif isinstance(node, list):
        for value in node:
            drop_format_under_pattern(value)


@schemathesis.hook
def before_load_schema(context, raw_schema):
    drop_format_under_pattern(raw_schema)


def base_url() -> str:
    return os.environ["OBSCURA_CONTRACT_BASE_URL"]


def post(path: str, token: str = None, **kwargs) -> dict:
    headers = kwargs.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = requests.post(f"{base_url()}{path}", headers=headers, timeout=TIMEOUT_SECS, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else {}


def new_device() -> dict:
    """Registers a fresh user and creates a device with valid keys and a backup; the
    device-scoped AuthResponse plus the user id."""
    username = f"st_{uuid.uuid4().hex[:20]}"
    registered = post("/v1/users", json={"username": username, "password": PASSWORD})
    device = post("/v1/devices", registered["token"], json=device_request())
    post("/v1/backup", device["token"], data=os.urandom(64), headers={"If-None-Match": "*"})
    return device


@functools.lru_cache(maxsize=1)
def witness() -> dict:
    """A user with a complete bundle and an attachment, made once: ids that exist."""
    device = new_device()
    attachment = post("/v1/attachments", device["token"], data=os.urandom(16))
    return {"userId": token_subject(device["token"]), "id": attachment["id"]}


def token_subject(token: str) -> str:
    """The `sub` claim (the user id) of an access token."""
    claims = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["sub"]


# The calling device, kept current by DeviceToken.
CURRENT = {"deviceId": None}


def is_uuid(value) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


@schemathesis.hook
def flatmap_path_parameters(context, path_parameters):
    """Half of the UUID path parameters name something that exists."""
    if not path_parameters:
        return st.just(path_parameters)
    existing = {**witness(), **({"deviceId": CURRENT["deviceId"]} if CURRENT["deviceId"] else {})}
    choices = {
        name: st.sampled_from([value, existing[name]])
        for name, value in path_parameters.items()
        if name in existing and is_uuid(value)
    }
    if not choices:
        return st.just(path_parameters)
    return st.fixed_dictionaries({**{k: st.just(v) for k, v in path_parameters.items()}, **choices})


@schemathesis.auth()
class DeviceToken:
    """A device-scoped bearer token; a new user and device whenever the server answers 401
    (a fuzzed request may delete the device the token names)."""

    def get(self, case, context):
        device = new_device()
        CURRENT["deviceId"] = device["deviceId"]
        return device["token"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
