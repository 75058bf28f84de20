"""MemGovernance, key side: where the vault key comes from.

Two modes, recorded in a small sidecar file next to the vault (never the key itself):
- "keyring": a random 256-bit key in the OS keyring (Keychain, Credential Manager,
  Secret Service). Used only when a keyring backend we trust is present.
- "passphrase": the key is Argon2id(passphrase, stored salt). Used when only an insecure
  keyring exists (plaintext file, null, fail) or when the user chose it by setting
  MEMDESK_PASSPHRASE; the key is then never written anywhere.
The sidecar also holds an HMAC "key check" so a wrong passphrase is told apart from a
damaged vault before the vault file is even opened.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.errors import CorruptStoreError, KeyUnavailableError, WrongKeyError

KEYRING_SERVICE = "MemDesk"
PASSPHRASE_ENV = "MEMDESK_PASSPHRASE"
_CHECK_LABEL = b"memdesk key check v1"
_INSECURE_MODULE_PREFIXES = ("keyring.backends.fail", "keyring.backends.null", "keyrings.alt")

PassphraseProvider = Callable[[bool], str | None]
"""Called with confirm=True when creating a vault; returns None when no one can answer."""


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost. Defaults follow RFC 9106's second recommendation, sized for a laptop."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 2


@dataclass(frozen=True)
class KeyInfo:
    vault_id: str
    mode: str  # "keyring" | "passphrase"
    check: str
    salt: str | None = None
    kdf: KdfParams | None = None

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps({"format": 1, **data}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> "KeyInfo":
        data = json.loads(text)
        data.pop("format", None)
        kdf = data.pop("kdf", None)
        return cls(**data, kdf=KdfParams(**kdf) if kdf else None)


def key_check(key: bytes) -> str:
    return hmac.new(key, _CHECK_LABEL, hashlib.sha256).hexdigest()


def derive_key(passphrase: str, salt: bytes, params: KdfParams) -> bytes:
    from argon2.low_level import Type, hash_secret_raw

    return hash_secret_raw(
        passphrase.encode("utf-8"), salt, time_cost=params.time_cost,
        memory_cost=params.memory_kib, parallelism=params.parallelism, hash_len=32, type=Type.ID,
    )


def secure_keyring():
    """The keyring backend if it keeps secrets safely, else None."""
    try:
        import keyring
        from keyring.backends.chainer import ChainerBackend
    except ImportError:
        return None
    backend = keyring.get_keyring()
    candidates = backend.backends if isinstance(backend, ChainerBackend) else [backend]
    for candidate in candidates:
        module = type(candidate).__module__
        if module.startswith(_INSECURE_MODULE_PREFIXES) or "plaintext" in type(candidate).__name__.lower():
            continue
        if getattr(candidate, "priority", 0) <= 0:
            continue
        return backend
    return None


def env_passphrase_provider(confirm: bool) -> str | None:
    return os.environ.get(PASSPHRASE_ENV) or None


class KeyManager:
    """Loads or creates the key for one vault, given its sidecar path."""

    def __init__(self, sidecar: Path, passphrase: PassphraseProvider = env_passphrase_provider,
                 kdf: KdfParams = KdfParams()):
        self.sidecar = sidecar
        self.passphrase = passphrase
        self.kdf = kdf

    def exists(self) -> bool:
        return self.sidecar.exists()

    def passphrase_request(self) -> str | None:
        """What a GUI must ask before opening: "unlock" (an existing passphrase vault), "create"
        (a new vault and no secure keyring), or None (keyring or $MEMDESK_PASSPHRASE)."""
        if os.environ.get(PASSPHRASE_ENV):
            return None
        if self.exists():
            return "unlock" if self.info().mode == "passphrase" else None
        return "create" if secure_keyring() is None else None

    def info(self) -> KeyInfo:
        try:
            return KeyInfo.from_json(self.sidecar.read_text(encoding="utf-8"))
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
            raise CorruptStoreError(
                f"The key file {self.sidecar} is damaged ({exc}). Restore it from a backup; "
                "without it the vault cannot be opened.") from exc

    def load(self) -> bytes:
        info = self.info()
        if info.mode == "keyring":
            key = self._from_keyring(info)
        else:
            key = self._from_passphrase(info)
        if not hmac.compare_digest(key_check(key), info.check):
            if info.mode == "keyring":
                raise WrongKeyError(
                    f"The key in the OS keyring ({KEYRING_SERVICE}/{info.vault_id}) does not open "
                    f"this vault. Restore the keyring entry or the matching vault backup.")
            raise WrongKeyError(
                f"Wrong passphrase for the vault in {self.sidecar.parent}. "
                f"Try again, or check {PASSPHRASE_ENV}.")
        return key

    def create(self, vault_id: str) -> bytes:
        backend = None if os.environ.get(PASSPHRASE_ENV) else secure_keyring()
        if backend is not None:
            key = secrets.token_bytes(32)
            try:
                backend.set_password(KEYRING_SERVICE, vault_id, key.hex())
            except Exception as exc:  # keyring backends raise many unrelated types when locked
                raise KeyUnavailableError(
                    f"Could not store the vault key in the OS keyring ({exc}). Unlock the keyring, "
                    f"or set {PASSPHRASE_ENV} to protect the vault with a passphrase instead.") from exc
            info = KeyInfo(vault_id=vault_id, mode="keyring", check=key_check(key))
        else:
            passphrase = self.passphrase(True)
            if not passphrase:
                raise KeyUnavailableError(
                    "No secure OS keyring is available, so MemDesk needs a passphrase to encrypt your "
                    f"memories. Set {PASSPHRASE_ENV} (headless use) or run MemDesk in a terminal to be asked.")
            salt = secrets.token_bytes(16)
            key = derive_key(passphrase, salt, self.kdf)
            info = KeyInfo(vault_id=vault_id, mode="passphrase", check=key_check(key),
                           salt=salt.hex(), kdf=self.kdf)
        self._write(info)
        return key

    def _from_keyring(self, info: KeyInfo) -> bytes:
        backend = secure_keyring()
        secret = None
        if backend is not None:
            try:
                secret = backend.get_password(KEYRING_SERVICE, info.vault_id)
            except Exception as exc:  # see create(): backend errors are not a common type
                raise KeyUnavailableError(
                    f"The OS keyring could not be read ({exc}). Unlock it and try again.") from exc
        if not secret:
            raise KeyUnavailableError(
                f"This vault's key is kept in the OS keyring as {KEYRING_SERVICE}/{info.vault_id}, "
                "but that entry is not reachable. Unlock or restore your keyring and try again.")
        return bytes.fromhex(secret)

    def _from_passphrase(self, info: KeyInfo) -> bytes:
        passphrase = self.passphrase(False)
        if not passphrase:
            raise KeyUnavailableError(
                f"This vault is protected by a passphrase. Set {PASSPHRASE_ENV} or run in a terminal.")
        assert info.salt is not None and info.kdf is not None
        return derive_key(passphrase, bytes.fromhex(info.salt), info.kdf)

    def _write(self, info: KeyInfo) -> None:
        tmp = self.sidecar.with_suffix(".tmp")
        tmp.write_text(info.to_json(), encoding="utf-8")
        os.replace(tmp, self.sidecar)
