"""MemGovernance, key side: where the vault key comes from.

Two modes, recorded in a small sidecar file next to the vault (never the key itself):
- "keyring": a random 256-bit key in the OS keyring (Keychain, Credential Manager,
  Secret Service). Used only when a keyring backend we trust is present.
- "passphrase": the key is Argon2id(passphrase, stored salt). Used when only an insecure
  keyring exists (plaintext file, null, fail) or when the user chose it by setting
  MEMDESK_PASSPHRASE; the key is then never written anywhere.
The sidecar also holds an HMAC "key check" so a wrong passphrase is told apart from a
damaged vault before the vault file is even opened.

Changing the passphrase, or moving between the two modes, never re-encrypts the vault: the
vault key stays the same and only the way it is kept changes. After a change, passphrase
mode keeps the vault key wrapped (ChaCha20-Poly1305 under the key derived from the new
passphrase, `wrapped` in the sidecar); a sidecar without `wrapped` (every vault created in
passphrase mode) uses the derived key itself. Replacing the sidecar is one atomic rename,
so a crash leaves either the old way of unlocking or the new one, never neither.
The sidecar is untrusted input: its KDF cost is bounded before any key is derived.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from memdesk.engine.errors import CorruptStoreError, InvalidInputError, KeyUnavailableError, WrongKeyError
from memdesk.engine.vault.private_files import write_private

KEYRING_SERVICE = "MemDesk"
PASSPHRASE_ENV = "MEMDESK_PASSPHRASE"
_CHECK_LABEL = b"memdesk key check v1"
_INSECURE_MODULE_PREFIXES = ("keyring.backends.fail", "keyring.backends.null", "keyrings.alt")
_WRAP_LABEL = b"memdesk vault key v1"
MIN_PASSPHRASE_CHARS = 8  # asked of new passphrases (the GUI's unlock dialog asks the same)

PassphraseProvider = Callable[[bool], str | None]
"""Called with confirm=True when creating a vault; returns None when no one can answer."""


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost. Defaults follow RFC 9106's second recommendation, sized for a laptop."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 2

    # What a sidecar or backup header may ask for. Read from a file anyone could have edited:
    # unbounded, a tampered cost would hang the machine or exhaust its memory before the
    # passphrase is even checked.
    BOUNDS = {"time_cost": (1, 64), "memory_kib": (8, 4 * 1024 * 1024), "parallelism": (1, 64)}

    @classmethod
    def checked(cls, data: object, where: str) -> KdfParams:
        if not isinstance(data, dict) or set(data) != set(cls.BOUNDS):
            raise CorruptStoreError(f"{where} has unreadable key-derivation settings ({data!r}); "
                                    "restore it from a backup.")
        for name, (low, high) in cls.BOUNDS.items():
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise CorruptStoreError(f"{where} asks for {name}={value!r} (allowed {low}..{high}): it was "
                                        "damaged or tampered with. Restore it from a backup.")
        if data["memory_kib"] < 8 * data["parallelism"]:
            raise CorruptStoreError(f"{where} asks for less Argon2 memory than its parallelism allows; "
                                    "restore it from a backup.")
        return cls(**data)


@dataclass(frozen=True)
class KeyInfo:
    vault_id: str
    mode: str  # "keyring" | "passphrase"
    check: str
    salt: str | None = None
    kdf: KdfParams | None = None
    wrapped: str | None = None  # hex nonce + ChaCha20-Poly1305(vault key); None: the derived key is the vault key

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if not (k == "wrapped" and v is None)}
        return json.dumps({"format": 1, **data}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> KeyInfo:
        data = json.loads(text)
        data.pop("format", None)
        kdf = data.pop("kdf", None)
        return cls(**data, kdf=KdfParams(**kdf) if kdf else None)

    def validate(self, where: str) -> KeyInfo:
        """Check every field before any of it is used; returns self with bounded KDF settings."""
        def hex_field(value: object, low: int, high: int) -> bool:
            try:
                return isinstance(value, str) and low <= len(bytes.fromhex(value)) <= high
            except ValueError:
                return False

        problem = None
        if not isinstance(self.vault_id, str) or not 0 < len(self.vault_id) <= 100:
            problem = "vault_id"
        elif self.mode not in ("keyring", "passphrase"):
            problem = f"mode {self.mode!r}"
        elif not hex_field(self.check, 32, 32):
            problem = "check"
        elif self.mode == "passphrase" and not hex_field(self.salt, 16, 64):
            problem = "salt"
        elif self.wrapped is not None and not hex_field(self.wrapped, 12 + 32 + 16, 12 + 32 + 16):
            problem = "wrapped"
        if problem:
            raise CorruptStoreError(f"{where} is damaged (bad {problem}). Restore it from a backup; "
                                    "without it the vault cannot be opened.")
        if self.mode == "passphrase":
            raw = asdict(self.kdf) if isinstance(self.kdf, KdfParams) else self.kdf
            return replace(self, kdf=KdfParams.checked(raw, where))
        return self


def key_check(key: bytes) -> str:
    return hmac.new(key, _CHECK_LABEL, hashlib.sha256).hexdigest()


def prepare_passphrase(passphrase: str) -> bytes:
    """The bytes a passphrase stands for: NFC-normalised UTF-8, so the same passphrase typed on
    another keyboard or system (composed or decomposed accents) gives the same key."""
    try:
        return unicodedata.normalize("NFC", passphrase).encode("utf-8")
    except UnicodeEncodeError as exc:  # e.g. undecodable bytes in $MEMDESK_PASSPHRASE (surrogate escapes)
        raise InvalidInputError(
            "The passphrase is not valid UTF-8 text (check the terminal's or the variable's encoding) "
            "and cannot be used.") from exc


def check_new_passphrase(passphrase: str | None, what: str = "passphrase") -> str:
    """A passphrase chosen now (a new vault, a change, a backup): long enough, valid text."""
    if not passphrase:
        raise InvalidInputError(f"An empty {what} protects nothing; choose one of at least "
                                f"{MIN_PASSPHRASE_CHARS} characters.")
    prepare_passphrase(passphrase)
    if len(unicodedata.normalize("NFC", passphrase)) < MIN_PASSPHRASE_CHARS:
        raise InvalidInputError(f"The {what} is too short; use at least {MIN_PASSPHRASE_CHARS} characters "
                                "(a few unrelated words are easy to remember and hard to guess).")
    return passphrase


def derive_key(passphrase: str | bytes, salt: bytes, params: KdfParams) -> bytes:
    from argon2.low_level import Type, hash_secret_raw

    secret = passphrase if isinstance(passphrase, bytes) else prepare_passphrase(passphrase)
    return hash_secret_raw(
        secret, salt, time_cost=params.time_cost,
        memory_cost=params.memory_kib, parallelism=params.parallelism, hash_len=32, type=Type.ID,
    )


def _legacy_secret(passphrase: str) -> bytes | None:
    """The UTF-8 of a passphrase as typed, when NFC changes it: vaults created before
    passphrases were normalised were keyed with exactly those bytes."""
    if unicodedata.normalize("NFC", passphrase) == passphrase:
        return None
    try:
        return passphrase.encode("utf-8")
    except UnicodeEncodeError:
        return None


def wrap_key(kek: bytes, key: bytes, vault_id: str) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    nonce = secrets.token_bytes(12)
    return (nonce + ChaCha20Poly1305(kek).encrypt(nonce, key, _WRAP_LABEL + vault_id.encode())).hex()


def unwrap_key(kek: bytes, wrapped: str, vault_id: str) -> bytes | None:
    """The vault key, or None when `kek` is not the one it was wrapped with."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    blob = bytes.fromhex(wrapped)
    try:
        return ChaCha20Poly1305(kek).decrypt(blob[:12], blob[12:], _WRAP_LABEL + vault_id.encode())
    except InvalidTag:
        return None


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
        except (ValueError, TypeError, KeyError, UnicodeDecodeError, AttributeError) as exc:
            raise CorruptStoreError(
                f"The key file {self.sidecar} is damaged ({exc}). Restore it from a backup; "
                "without it the vault cannot be opened.") from exc

    def load(self) -> bytes:
        info = self.info().validate(f"The key file {self.sidecar}")
        key: bytes | None
        if info.mode == "keyring":
            key = self._from_keyring(info)
        else:
            key = self._from_passphrase(info)
        if key is None or not hmac.compare_digest(key_check(key), info.check):
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
            self._store_in_keyring(backend, vault_id, key)
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

    # ------------------------------------------------------- changing how the key is kept
    def use_passphrase(self, key: bytes, passphrase: str) -> KeyInfo:
        """Keep the vault key (already loaded and checked by the caller) under a new passphrase:
        `memdesk passphrase change`, or a move from the keyring to passphrase mode."""
        check_new_passphrase(passphrase)
        old = self.info().validate(f"The key file {self.sidecar}")
        if not hmac.compare_digest(key_check(key), old.check):
            raise WrongKeyError("That key does not open this vault; nothing was changed.")
        salt = secrets.token_bytes(16)
        kek = derive_key(passphrase, salt, self.kdf)
        info = KeyInfo(vault_id=old.vault_id, mode="passphrase", check=old.check, salt=salt.hex(),
                       kdf=self.kdf, wrapped=wrap_key(kek, key, old.vault_id))
        self._write(info)
        if old.mode == "keyring":  # only once the new sidecar is in place: a crash before keeps the old way in
            self._forget_keyring_entry(old.vault_id)
        return info

    def use_keyring(self, key: bytes) -> KeyInfo:
        """Keep the vault key in the OS keyring instead of behind a passphrase."""
        old = self.info().validate(f"The key file {self.sidecar}")
        if not hmac.compare_digest(key_check(key), old.check):
            raise WrongKeyError("That key does not open this vault; nothing was changed.")
        backend = secure_keyring()
        if backend is None:
            raise KeyUnavailableError(
                "No secure OS keyring is available here (only a plaintext or no keyring), so the key "
                "stays behind your passphrase. Nothing was changed.")
        self._store_in_keyring(backend, old.vault_id, key)
        info = KeyInfo(vault_id=old.vault_id, mode="keyring", check=old.check)
        self._write(info)
        return info

    def forget_keyring_entry(self) -> None:
        """Remove this vault's keyring entry (the profile is being removed or replaced)."""
        if not self.exists():
            return
        try:
            info = self.info()
        except CorruptStoreError:
            return
        if info.mode == "keyring":
            self._forget_keyring_entry(info.vault_id)

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _store_in_keyring(backend, vault_id: str, key: bytes) -> None:
        try:
            backend.set_password(KEYRING_SERVICE, vault_id, key.hex())
        except Exception as exc:  # keyring backends raise many unrelated types when locked
            raise KeyUnavailableError(
                f"Could not store the vault key in the OS keyring ({exc}). Unlock the keyring, "
                f"or set {PASSPHRASE_ENV} to protect the vault with a passphrase instead.") from exc

    @staticmethod
    def _forget_keyring_entry(vault_id: str) -> None:
        backend = secure_keyring()
        if backend is None:
            return
        try:
            backend.delete_password(KEYRING_SERVICE, vault_id)
        except Exception:  # noqa: BLE001 - an entry already gone, or a locked keyring: nothing to undo
            pass

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
        try:
            return bytes.fromhex(secret)
        except ValueError as exc:
            raise WrongKeyError(f"The OS keyring entry {KEYRING_SERVICE}/{info.vault_id} does not hold a "
                                "MemDesk key; restore it from a backup of your keyring.") from exc

    def _from_passphrase(self, info: KeyInfo) -> bytes | None:
        passphrase = self.passphrase(False)
        if not passphrase:
            raise KeyUnavailableError(
                f"This vault is protected by a passphrase. Set {PASSPHRASE_ENV} or run in a terminal.")
        assert info.salt is not None and info.kdf is not None
        salt = bytes.fromhex(info.salt)
        key: bytes | None
        for secret in (prepare_passphrase(passphrase), _legacy_secret(passphrase)):
            if secret is None:
                continue
            key = derive_key(secret, salt, info.kdf)
            if info.wrapped is not None:
                key = unwrap_key(key, info.wrapped, info.vault_id)
            if key is not None and hmac.compare_digest(key_check(key), info.check):
                return key
        return None

    def _write(self, info: KeyInfo) -> None:
        # 0600, fsynced, then renamed over the old one and the folder fsynced: the sidecar holds
        # the only copy of the salt, so a power cut must leave the old or the new file, whole.
        write_private(self.sidecar, info.to_json().encode("utf-8"))


def change_key_storage(sidecar: Path, *, current: PassphraseProvider, mode: str, new_passphrase: str | None = None,
                       kdf: KdfParams = KdfParams()) -> KeyInfo:
    """`memdesk passphrase change` / `memdesk key use-keyring|use-passphrase`: unlock with the
    current way (asked through `current`), then keep the same vault key the new way. The vault
    file is not touched, so an open vault stays usable and a large one changes instantly."""
    if mode not in ("keyring", "passphrase"):
        raise InvalidInputError(f"Unknown key storage {mode!r}; use 'keyring' or 'passphrase'.")
    manager = KeyManager(sidecar, current, kdf)
    if not manager.exists():
        raise KeyUnavailableError(f"There is no vault key file at {sidecar}; create the vault first.")
    if mode == "passphrase":
        check_new_passphrase(new_passphrase)
    key = manager.load()
    if mode == "passphrase":
        assert new_passphrase is not None
        return manager.use_passphrase(key, new_passphrase)
    return manager.use_keyring(key)
