"""Where the config file and the control socket are, without the config machinery.

The thin commands (`status`, `add-contact`, `pause`, ...) need only the socket's path, and
bars run `syncd status` every few seconds: this module imports nothing beyond what a bare
interpreter has loaded, and reads only ``[daemon] socket`` from the file (tomllib is
imported only when the file can name one). The full validation stays in
:mod:`sync.config`, for `syncd run` and `syncd config check`; its ``socket_path``,
``resolve_path`` and ``runtime_dir`` give the same answers as the ones here (a test says so).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path


def _environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def resolve_path(explicit: str | Path | None, env: Mapping[str, str] | None = None) -> Path:
    """The config file: ``--config``, else ``$SYNCD_CONFIG``, else the user config dir."""
    env = _environ(env)
    chosen = explicit or env.get("SYNCD_CONFIG", "")
    if chosen:
        return Path(chosen).expanduser().absolute()
    if sys.platform.startswith("linux"):
        # What platformdirs computes on Linux, without importing it on the thin CLI path.
        base = env.get("XDG_CONFIG_HOME", "").strip() or "~/.config"
        return Path(base).expanduser() / "syncd" / "config.toml"
    import platformdirs

    return Path(platformdirs.user_config_dir("syncd")) / "config.toml"


def runtime_dir(env: Mapping[str, str] | None = None) -> Path:
    """syncd's runtime directory: ``$XDG_RUNTIME_DIR/syncd`` or platformdirs' one."""
    base = _environ(env).get("XDG_RUNTIME_DIR", "").strip()
    if base:
        return Path(base) / "syncd"
    import warnings

    import platformdirs

    with warnings.catch_warnings():
        # Without XDG_RUNTIME_DIR platformdirs falls back to /tmp/runtime-UID and warns;
        # ensure_private_dir() refuses that place if another user prepared it.
        warnings.simplefilter("ignore")
        return Path(platformdirs.user_runtime_dir("syncd"))


def _may_name_socket(text: str) -> bool:
    """Whether ``text`` can hold a ``socket`` key at all: the word itself, or a quoted key
    spelled with escapes (``"\\u0073ocket"``), which only a real parse can rule out."""
    return "socket" in text or "\\u" in text or "\\U" in text


def socket_path(explicit_config: str | None, env: Mapping[str, str] | None = None) -> Path:
    """The control socket for thin clients: ``[daemon] socket`` if readable, else the default."""
    daemon: object = None
    try:
        file = resolve_path(explicit_config, env)
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = ""
    if _may_name_socket(text):
        import tomllib

        try:
            daemon = tomllib.loads(text).get("daemon")
        except tomllib.TOMLDecodeError:
            daemon = None
    raw = daemon.get("socket") if isinstance(daemon, dict) else None
    if isinstance(raw, str) and raw.strip():
        path = Path(os.path.expanduser(raw.strip()))
        return path if path.is_absolute() else file.parent / path
    return runtime_dir(env) / "syncd.sock"
