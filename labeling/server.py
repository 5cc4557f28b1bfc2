"""A local Label Studio server configured for mds (headless, offline, one machine).

The server runs from its own virtualenv (default ``<repo>/.venv-ls``) so that
Django and the server's pinned SDK stay out of mds's dependencies.
:func:`install_label_studio` creates that virtualenv (idempotent, locked against
concurrent creation); :class:`LocalLabelStudio` starts and stops the server with
the settings a small team needs on one machine:

* a data directory holding the server's SQLite database and media,
* a predefined admin user and API token (generated once, stored in
  ``<data dir>/mds-labelstudio.json`` with mode 0600),
* local file serving below a document root (videos are served as the original
  files),
* no signup without a link, no telemetry, no version check, no Sentry,
  SQLite (never the PostgreSQL default), the legacy ``Token`` API auth enabled,
  and SSRF protection off so webhooks to loopback receivers work.

``mds labelstudio start`` and the test suite use this same code.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mds.errors import LabelingError

LS_VERSION = "1.23.2"
REPO_DIR = Path(__file__).resolve().parents[1]
DEFAULT_VENV = REPO_DIR / ".venv-ls"
ENV_BIN = "MDS_LABEL_STUDIO_BIN"
CREDENTIALS_FILE = "mds-labelstudio.json"
_MARKER = ".mds-label-studio-version"


def find_label_studio_bin(configured: str | None = None) -> Path:
    """The ``label-studio`` executable: argument/config, ``MDS_LABEL_STUDIO_BIN``, ``.venv-ls``, then PATH."""
    for cand in (configured, os.environ.get(ENV_BIN)):
        if cand:
            p = Path(cand).expanduser()
            if p.is_file() and os.access(p, os.X_OK):
                return p
            raise LabelingError(f"label-studio executable not found at {p}")
    p = DEFAULT_VENV / "bin" / "label-studio"
    installed = (DEFAULT_VENV / _MARKER).is_file() or any(
        DEFAULT_VENV.glob("lib/python*/site-packages/label_studio-*.dist-info")
    )
    if p.is_file() and installed:
        return p
    found = shutil.which("label-studio")
    if found:
        return Path(found)
    raise LabelingError(
        "label-studio is not installed: run `mds labelstudio install` (creates .venv-ls) "
        f"or set {ENV_BIN} to the executable"
    )


def install_label_studio(
    venv_dir: Path | None = None, *, version: str = LS_VERSION, quiet: bool = True
) -> Path:
    """Create ``venv_dir`` (default ``<repo>/.venv-ls``) with label-studio ``version``; returns the executable.

    Idempotent and safe to call from several processes at once: a file lock
    serialises creators, and a marker written last tells a complete install from
    a half-finished one (which is removed and redone).
    """
    venv = Path(venv_dir or DEFAULT_VENV).resolve()
    exe = venv / "bin" / "label-studio"
    marker = venv / _MARKER
    venv.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv.parent / f".{venv.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if exe.is_file() and marker.is_file() and marker.read_text().strip() == version:
            return exe
        if exe.is_file() and list(venv.glob(f"lib/python*/site-packages/label_studio-{version}.dist-info")):
            marker.write_text(version + "\n")  # installed by hand with the documented pip command
            return exe
        if venv.exists():
            shutil.rmtree(venv)
        py = shutil.which("python3") or sys.executable
        out = subprocess.DEVNULL if quiet else None
        try:
            subprocess.run([py, "-m", "venv", str(venv)], check=True, stdout=out)
            subprocess.run(
                [
                    str(venv / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    f"label-studio=={version}",
                ],
                check=True,
                stdout=out,
                stderr=subprocess.PIPE if quiet else None,
                text=True,
            )
        except subprocess.CalledProcessError as e:
            tail = (e.stderr or "").strip().splitlines()[-1:] if quiet else []
            raise LabelingError(
                f"installing label-studio=={version} into {venv} failed: {' '.join(tail)}"
            ) from None
        marker.write_text(version + "\n")
        return exe


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Credentials:
    """The predefined admin user and its API token."""

    username: str
    password: str
    token: str
    created: bool = False  # True when generated by this call (show the token once)


def load_or_create_credentials(data_dir: Path, username: str = "admin@mds.local") -> Credentials:
    """Read the server's admin credentials from ``data_dir``, generating them on first use."""
    path = data_dir / CREDENTIALS_FILE
    if path.is_file():
        d = json.loads(path.read_text())
        return Credentials(d["username"], d["password"], d["token"])
    data_dir.mkdir(parents=True, exist_ok=True)
    cred = Credentials(username, secrets.token_urlsafe(18), secrets.token_hex(20), created=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"username": cred.username, "password": cred.password, "token": cred.token}, f)
    return cred


@dataclass
class LocalLabelStudio:
    """One local Label Studio process."""

    data_dir: Path
    document_root: Path
    host: str = "127.0.0.1"
    port: int = 8080
    executable: Path | None = None
    log_level: str = "WARNING"
    extra_env: dict[str, str] = field(default_factory=dict)
    credentials: Credentials | None = None
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self.document_root = Path(self.document_root).resolve()
        if self.credentials is None:
            self.credentials = load_or_create_credentials(self.data_dir)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token(self) -> str:
        assert self.credentials is not None
        return self.credentials.token

    @property
    def log_path(self) -> Path:
        return self.data_dir / "label-studio.log"

    def env(self) -> dict[str, str]:
        """The process environment (see the module docstring for why each setting)."""
        assert self.credentials is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "DJANGO_"))}
        env.update(
            LABEL_STUDIO_BASE_DATA_DIR=str(self.data_dir),
            LABEL_STUDIO_USERNAME=self.credentials.username,
            LABEL_STUDIO_PASSWORD=self.credentials.password,
            LABEL_STUDIO_USER_TOKEN=self.credentials.token,
            LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
            LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
            DJANGO_DB="sqlite",
            SENTRY_DSN="",
            FRONTEND_SENTRY_DSN="",
            LATEST_VERSION_CHECK="false",
            COLLECT_ANALYTICS="false",
            SSRF_PROTECTION_ENABLED="false",
            LOCAL_FILES_SERVING_ENABLED="true",
            LOCAL_FILES_DOCUMENT_ROOT=str(self.document_root),
            LABEL_STUDIO_HOST=self.url,
        )
        env.update(self.extra_env)
        return env

    def command(self) -> list[str]:
        exe = self.executable or find_label_studio_bin()
        return [
            str(exe),
            "start",
            "--no-browser",
            "--internal-host",
            self.host,
            "--port",
            str(self.port),
            "--log-level",
            self.log_level,
        ]

    def start(self, *, wait: bool = True, timeout: float = 120.0) -> LocalLabelStudio:
        """Start the server in the background (returns once ``/health`` is UP when ``wait``)."""
        if self.process is not None and self.process.poll() is None:
            return self
        if _port_open(self.host, self.port):
            raise LabelingError(f"port {self.port} on {self.host} is already in use")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.document_root.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        try:
            self.process = subprocess.Popen(
                cmd,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        (self.data_dir / "label-studio.pid").write_text(str(self.process.pid))
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Poll ``/health`` until it answers UP; fail with the log's tail if the process dies."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise LabelingError(
                    f"label-studio exited with code {self.process.returncode}: {self._log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"{self.url}/health", timeout=2.0)
                if r.status_code == 200 and r.json().get("status") == "UP":
                    return
            time.sleep(0.5)
        raise LabelingError(f"label-studio did not become ready within {timeout:.0f} s: {self._log_tail()}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the server (its whole process group), then SIGKILL after ``timeout``."""
        p = self.process
        if p is None or p.poll() is not None:
            self.process = None
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)
        self.process = None
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / "label-studio.pid").unlink()

    def _log_tail(self, n: int = 3) -> str:
        try:
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except FileNotFoundError:
            return "(no log)"
        return " | ".join(lines[-n:]) or "(empty log)"

    def info(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "data_dir": str(self.data_dir),
            "document_root": str(self.document_root),
            "username": self.credentials.username if self.credentials else None,
            "log": str(self.log_path),
        }


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def stop_by_pidfile(data_dir: Path, timeout: float = 20.0) -> bool:
    """Stop a server started in the background by ``mds labelstudio start --detach``."""
    pidfile = Path(data_dir) / "label-studio.pid"
    if not pidfile.is_file():
        return False
    pid = int(pidfile.read_text().strip())
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pidfile.unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    return True
