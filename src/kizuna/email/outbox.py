"""The local email backend: each message as an .eml file in the outbox directory, written atomically."""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import email.policy
import functools
import hashlib
import json
import os
import re
import tempfile
import threading
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path

from kizuna.email.headers import POLICY as _POLICY
from kizuna.email.headers import WRITE_POLICY as _WRITE_POLICY
from kizuna.email.headers import eml_bytes
from kizuna.email.message import OutgoingMessage

_SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,150}")


def message_id(message: OutgoingMessage) -> str:
    """A Message-ID derived from the message_key: the same key always names the same message."""
    digest = hashlib.sha256(message.message_key.encode("utf-8")).hexdigest()[:32]
    domain = message.from_email.rpartition("@")[2] or "kizuna.invalid"
    return f"<{digest}.kizuna@{domain}>"


def safe_filename(message_key: str) -> str:
    """A file name for a key: the key itself when harmless, else a readable prefix plus its hash."""
    if _SAFE_KEY.fullmatch(message_key):
        return f"{message_key}.eml"
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", message_key).strip("._")[:80]
    digest = hashlib.sha256(message_key.encode("utf-8")).hexdigest()[:16]
    return f"{readable}-{digest}.eml" if readable else f"{digest}.eml"


def to_mime(
    message: OutgoingMessage, *, now: dt.datetime | None = None, policy: email.policy.EmailPolicy | None = None
) -> EmailMessage:
    """The message as multipart/alternative (text, then HTML), UTF-8, with its headers."""
    mime = EmailMessage(policy=policy or _POLICY)
    mime["Message-ID"] = message_id(message)
    mime["Date"] = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    mime["From"] = Address(display_name=message.from_name, addr_spec=message.from_email)
    mime["To"] = Address(display_name=message.to_name, addr_spec=message.to_email)
    if message.cc:
        mime["Cc"] = [Address(addr_spec=cc) for cc in message.cc]
    if message.reply_to:
        mime["Reply-To"] = message.reply_to
    mime["Subject"] = message.subject
    for name, value in message.headers.items():
        mime[name] = value
    # What a provider would receive besides the MIME message; kept for debugging the outbox.
    mime["X-Kizuna-Message-Key"] = message.message_key
    if message.categories:
        mime["X-Kizuna-Categories"] = ", ".join(message.categories)
    if message.custom_args:
        mime["X-Kizuna-Custom-Args"] = json.dumps(message.custom_args, ensure_ascii=True, sort_keys=True)
    mime.set_content(message.text, subtype="plain", charset="utf-8")
    mime.add_alternative(message.html, subtype="html", charset="utf-8")
    return mime


class OutboxBackend:
    """Writes <outbox_dir>/<message_key>.eml; sending a key again returns the first file's Message-ID."""

    name = "outbox"
    # Re-sending a key after a crash cannot make a second copy, so unfinished ledger claims may be retried.
    idempotent_per_key = True

    def __init__(self, outbox_dir: Path) -> None:
        self.outbox_dir = Path(outbox_dir)
        self._lock = threading.Lock()
        self._unsynced: list[Path] = []

    def close(self) -> None:
        pass

    def path_for(self, message: OutgoingMessage) -> Path:
        return self.outbox_dir / safe_filename(message.message_key)

    def send(self, message: OutgoingMessage) -> str:
        """Write the message's file (unless its key has one) and make it durable before returning."""
        path, message_id_, written = self._write(message)
        if written:
            _fsync_file(path)
            _fsync_dir(self.outbox_dir)
        return message_id_

    def send_unsynced(self, message: OutgoingMessage) -> str:
        """As send, but the file is durable only after the next sync(): a batch pays one barrier, not two
        fsyncs per file. The caller must not record the message as sent before sync() returns."""
        path, message_id_, written = self._write(message)
        if written:
            with self._lock:
                self._unsynced.append(path)
        return message_id_

    def sync(self) -> None:
        """Make every file send_unsynced wrote so far durable (docs/delivery.md, "The outbox's batches").

        One syncfs(2) of the outbox's file system where the C library has it (Linux), else an fsync of each
        file; then the directory, so the renames are durable too. Raises OSError if the disk reported an error.
        """
        with self._lock:
            paths, self._unsynced = self._unsynced, []
        if not paths:
            return
        if not _syncfs(self.outbox_dir):
            for path in paths:
                _fsync_file(path)
        _fsync_dir(self.outbox_dir)

    def _write(self, message: OutgoingMessage) -> tuple[Path, str, bool]:
        """(path, Message-ID, whether this call wrote the file): a complete file of the key is kept as it is."""
        path = self.path_for(message)
        existing = written_message_id(path)
        if existing:
            return path, existing, False
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        message_id_ = message_id(message)
        data = eml_bytes(message, message_id_, dt.datetime.now(dt.UTC))
        if data is None:  # what the direct writer is not sure of: the email package builds it
            mime = to_mime(message)
            data, message_id_ = mime.as_bytes(policy=_WRITE_POLICY), str(mime["Message-ID"])
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".eml", dir=self.outbox_dir)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            # Two writers racing on one key both write the same Message-ID; either file is right.
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return path, message_id_, True


def written_message_id(path: Path) -> str | None:
    """The Message-ID of a complete file for the key, else None (no file, or one torn by a machine crash)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    headers = BytesHeaderParser(policy=_POLICY).parsebytes(data)
    value = headers.get("Message-ID")
    boundary = headers.get_boundary()
    # A file renamed into place but not yet synced when the machine lost power can come back empty or cut
    # short; only a file that ends with its closing boundary was written whole, any other is written again.
    if not value or not boundary or not data.rstrip(b"\r\n").endswith(f"--{boundary}--".encode("ascii")):
        return None
    return str(value)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs(directory: Path) -> bool:
    """syncfs(2) on the file system holding ``directory``: False where the C library lacks it."""
    syncfs = getattr(_libc(), "syncfs", None)
    if syncfs is None:
        return False
    fd = os.open(directory, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"syncfs of the outbox {directory} failed: {os.strerror(errno)}")
    finally:
        os.close(fd)
    return True


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # no C library to load by name (Windows): fall back to one fsync per file
        return None


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
