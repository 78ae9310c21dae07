"""What the engine keeps beside its compiled programs: derived data that is
the same every time it is made (the models' random draws, the perturbation
references), in the compiled-program folder's subfolders, as ``.npz`` files.

A file is read back only whole and of the expected form; anything else is
made again and the file replaced (atomically: a kill never leaves half a
file). A folder that cannot be written is skipped, and the data is made
again next time. The folder can be deleted at any time.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile

import numpy as np

from .. import atomic
from . import config


def file(folder: str, key: str) -> str | None:
    """Where the data named by ``key`` is kept in ``folder`` (None: no folder in use)."""
    cache = config.cache_folder()
    if not cache:
        return None
    return os.path.join(cache, folder, hashlib.sha256(key.encode()).hexdigest()[:24] + ".npz")


def load(where: str | None, names: tuple[str, ...]) -> dict | None:
    """The arrays ``names`` of the file at ``where``, or None when it is
    absent, unreadable or lacks one of them."""
    if where is None:
        return None
    try:
        with np.load(where, allow_pickle=False) as f:
            return {k: f[k] for k in names}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def save(where: str | None, arrays: dict) -> None:
    """Keep ``arrays`` at ``where`` (nothing when None or not writable)."""
    if where is None:
        return
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        os.makedirs(os.path.dirname(where), exist_ok=True)
        atomic.write_bytes(where, buf.getvalue(), owned=True)  # our own folder: replace whatever sits at the name
    except OSError:
        pass
