"""Secrets on the device: exchange API keys in the OS keyring (never a file, never a log line)."""

from services.secrets.keyring_store import ExchangeKeyStore, NoSecureStore, SecretSlot, mask

__all__ = ["ExchangeKeyStore", "NoSecureStore", "SecretSlot", "mask"]
