"""Private scratch folders for the runner's files (the job's units file, its endpoint file).

``tempfile`` would do this, at the price of importing it (with ``random``, ``shutil`` and the
compression modules ``shutil`` pulls in) before every job's command; the runner needs only a
folder no one else can enter, with a name no one can guess ahead.
"""

from __future__ import annotations

import contextlib
import os

_TRIES = 100


def temp_root(env: dict[str, str] | None = None) -> str:
    """``$TMPDIR``, ``$TEMP`` or ``$TMP`` (the first set), else ``/tmp``, as ``tempfile``
    chooses on POSIX."""
    environ = os.environ if env is None else env
    for name in ("TMPDIR", "TEMP", "TMP"):
        if environ.get(name):
            return environ[name]
    return "/tmp"


def private_folder(prefix: str, root: str | None = None) -> str:
    """A new folder, readable by this user only, named ``prefix`` + 12 random hex digits
    under ``root`` (default :func:`temp_root`). ``mkdir`` refuses an existing name, so a
    folder or link planted ahead is never used."""
    base = temp_root() if root is None else root
    for _ in range(_TRIES):
        path = os.path.join(base, prefix + os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free name for a scratch folder under {base}")


def remove_folder(path: str) -> None:
    """Remove ``path`` and what is in it; what cannot be removed is left (never raises)."""
    with contextlib.suppress(OSError):
        with os.scandir(path) as entries:
            subfolders = False
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    subfolders = True
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
        if subfolders:  # not the runner's own: the rare case pays for shutil
            import shutil

            shutil.rmtree(path, ignore_errors=True)
        else:
            os.rmdir(path)
