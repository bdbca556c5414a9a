"""CurveZMQ for the server, the broker and the workers.

Policy (``plan_security``):

- keys given (a secret key and an allow-list folder): CurveZMQ on, whatever
  the address. A client must know the server's public key, and its own public
  key must be in the allow-list folder (``*.key`` files as written by
  ``earshot keys``); any other client fails the handshake and gets nothing.
- no keys, loopback address (127.0.0.0/8, ::1, localhost, ipc://, inproc://):
  plain ZeroMQ for development, and the log says so at WARNING level.
- no keys, any other address: refused (``UserError``) unless ``insecure=true``
  forces it, which is logged as an error-level warning.

Authentication runs in pyzmq's ``ThreadAuthenticator`` (a ZAP handler thread
on the socket's context). Each socket gets its own ZAP domain, so the
frontend's allow-list (clients) and the broker backend's (workers) are
separate: a client key cannot register as a worker. The allow-list folder is
re-read when its modification time changes (checked at most once a second),
so adding or removing a key file takes effect without a restart.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from shared.config import UserError

__all__ = ["is_loopback", "CurveKeys", "plan_security", "load_keypair", "load_public_key",
           "AllowList", "start_authenticator", "make_server_curve", "make_client_curve", "create_keypair"]

log = logging.getLogger("earshot.server.security")

#: How often (s) at most the allow-list folder's mtime is checked during handshakes.
ALLOWLIST_RECHECK_S = 1.0

_TCP = re.compile(r"^tcp://(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:/]+)):(?P<port>\*|\d+)$")


def is_loopback(endpoint: str) -> bool:
    """True when ``endpoint`` can only be reached from this machine."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    m = _TCP.match(endpoint)
    if not m:
        return False
    host = m.group("v6") or m.group("host")
    if host in ("localhost", "lo"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', an interface name, a DNS name: reachable from outside


@dataclass(frozen=True)
class CurveKeys:
    """A server's CurveZMQ identity and who may talk to it.

    ``public``/``secret``: z85 keys (40 bytes each). ``allowed_dir``: folder of
    ``*.key`` public key files allowed to connect.
    """

    public: bytes
    secret: bytes
    allowed_dir: Path


def load_keypair(path: str | os.PathLike) -> tuple[bytes, bytes]:
    """(public, secret) z85 keys from a ``*.key_secret`` file.

    Raises:
        UserError: no such file, or it holds no secret key.
    """
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read a CurveZMQ key pair ({exc})") from None
    if not secret:
        raise UserError(f"{path}: holds only a public key; give the '.key_secret' file")
    return public, secret


def load_public_key(key: str | bytes | os.PathLike) -> bytes:
    """A z85 public key: given as the 40-character key itself or as a ``*.key`` file.

    Raises:
        UserError: neither a 40-character z85 key nor a readable key file.
    """
    if isinstance(key, bytes) and len(key) == 40:
        return key
    text = os.fspath(key) if not isinstance(key, bytes) else key.decode("ascii", "replace")
    if len(text) == 40 and not Path(text).exists():
        return text.encode("ascii")
    try:
        public, _ = zmq.auth.load_certificate(text)
    except (OSError, ValueError) as exc:
        raise UserError(f"{text}: not a z85 public key or a key file ({exc})") from None
    return public


def create_keypair(folder: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """Write ``<folder>/<name>.key`` (public) and ``<name>.key_secret``; returns both paths."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(str(folder), name)
    os.chmod(secret, 0o600)  # the secret never needs to be readable by others
    return Path(public), Path(secret)


def plan_security(endpoint: str, secret_key: str | None, allowed_dir: str | None, insecure: bool,
                  what: str = "server") -> CurveKeys | None:
    """Decide CurveZMQ or plain for a socket bound to ``endpoint`` (policy above).

    Returns the keys to use, or None for plain ZeroMQ (after logging why).

    Raises:
        UserError: only one of ``secret_key`` / ``allowed_dir`` is given, a key
            file or folder is missing, or a non-loopback bind has no keys and
            ``insecure`` is not set.
    """
    if (secret_key is None) != (allowed_dir is None):
        raise UserError(f"{what}: give both a secret key and an allow-list folder for CurveZMQ, or neither")
    if secret_key is not None:
        public, secret = load_keypair(secret_key)
        if not Path(allowed_dir).is_dir():
            raise UserError(f"{allowed_dir}: allow-list folder of client public keys does not exist")
        n = len(list(Path(allowed_dir).glob("*.key")))
        log.info("%s %s: CurveZMQ on, public key %s, %d allowed key(s) in %s",
                 what, endpoint, public.decode(), n, allowed_dir)
        if n == 0:
            log.warning("%s: the allow-list folder %s is empty: nobody can connect until a key is added",
                        what, allowed_dir)
        return CurveKeys(public, secret, Path(allowed_dir))
    if is_loopback(endpoint):
        log.warning("%s %s: loopback WITHOUT CurveZMQ (development only: no encryption, no authentication)",
                    what, endpoint)
        return None
    if not insecure:
        raise UserError(f"{what}: refusing to bind {endpoint} (not loopback) without CurveZMQ keys; "
                        f"make keys with 'earshot keys' or set insecure=true on a trusted network")
    log.error("%s %s: bound beyond loopback WITHOUT CurveZMQ because insecure=true: "
              "anyone who can reach this address can use it and read the traffic", what, endpoint)
    return None


class AllowList:
    """A ZAP credentials provider: is this z85 public key in the folder?

    pyzmq's ``configure_curve_callback`` calls ``callback(domain, key)`` in the
    authenticator thread for every CURVE handshake.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._keys: frozenset[bytes] = frozenset()
        self._mtime: float | None = None
        self._checked = 0.0
        self._reload()

    def _reload(self) -> None:
        try:
            mtime = self.folder.stat().st_mtime
        except OSError:
            self._keys, self._mtime = frozenset(), None
            return
        if mtime != self._mtime:
            keys = set()
            for path in self.folder.glob("*.key"):
                try:
                    keys.add(zmq.auth.load_certificate(str(path))[0])
                except (OSError, ValueError):
                    log.warning("allow-list: skipping unreadable key file %s", path)
            self._keys, self._mtime = frozenset(keys), mtime
            log.info("allow-list %s: %d key(s)", self.folder, len(keys))

    def callback(self, domain: str, key: bytes) -> bool:
        now = time.monotonic()
        if now - self._checked > ALLOWLIST_RECHECK_S:
            self._checked = now
            self._reload()
        allowed = key in self._keys
        if not allowed:
            log.warning("refused CurveZMQ client key %s (domain %s): not in %s", key.decode("ascii", "replace"),
                        domain, self.folder)
        return allowed


def start_authenticator(ctx: zmq.Context, domains: dict[str, Path]) -> ThreadAuthenticator:
    """Start a ZAP handler on ``ctx`` checking each ZAP domain against its folder."""
    auth = ThreadAuthenticator(ctx, log=logging.getLogger("earshot.server.zap"))
    auth.start()
    for domain, folder in domains.items():
        auth.configure_curve_callback(domain=domain, credentials_provider=AllowList(folder))
    return auth


def make_server_curve(sock: zmq.Socket, keys: CurveKeys, domain: str) -> None:
    """Make ``sock`` (before bind) a CurveZMQ server checked in ZAP ``domain``."""
    sock.zap_domain = domain.encode()
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_server = True


def make_client_curve(sock: zmq.Socket, server_public: bytes, public: bytes, secret: bytes) -> None:
    """Make ``sock`` (before connect) a CurveZMQ client of the server with key ``server_public``."""
    sock.curve_serverkey = server_public
    sock.curve_publickey = public
    sock.curve_secretkey = secret
