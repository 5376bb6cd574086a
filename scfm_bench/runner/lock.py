"""One `run` per output folder: an O_EXCL lock file naming the holder's host and PID."""

from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path

from scfm_bench.exceptions import ConfigError
from scfm_bench.records import now_iso

LOCK_NAME = ".scfm-bench.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def unwritable(output_dir: Path, exc: OSError) -> ConfigError:
    return ConfigError(f"output folder {output_dir} is not writable ({exc.strerror or exc}). Nothing was written. "
                       f"Fix: choose another --output-dir, or free space / fix the folder's permissions.")


@contextmanager
def output_lock(output_dir: Path):
    """Hold the folder's lock for the block. A lock left by a dead process on this host is taken over;
    a live holder (or one on another host, which we cannot check) is named in the error."""
    output_dir = Path(output_dir)
    path = output_dir / LOCK_NAME
    me = {"host": socket.gethostname(), "pid": os.getpid(), "since": now_iso()}
    created = not output_dir.exists()
    for _ in range(2):
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text())
            except (OSError, ValueError):
                holder = {}
            if holder.get("host") == me["host"] and isinstance(holder.get("pid"), int) and not _alive(holder["pid"]):
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            raise ConfigError(
                f"output folder {output_dir} is in use by another scfm-bench run (host {holder.get('host', '?')}, "
                f"PID {holder.get('pid', '?')}, since {holder.get('since', '?')}). Wait for it to finish or use another "
                f"--output-dir; if that process is gone, delete {path}.") from None
        except OSError as exc:
            raise unwritable(output_dir, exc) from None
        break
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(me))
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise unwritable(output_dir, exc) from None
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        if created:  # a run that wrote nothing leaves no folder behind
            try:
                output_dir.rmdir()
            except OSError:
                pass
