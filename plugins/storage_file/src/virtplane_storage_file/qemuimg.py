"""Running ``qemu-img``: its errors as StorageError, a full storage as NoSpace."""

from __future__ import annotations

from virtplane.errors import NoSpace
from virtplane_storage_file.errors import StorageError


def qemu_img(*args: str, timeout: float = 600) -> str:
    import shutil
    import subprocess

    exe = shutil.which("qemu-img")
    if exe is None:
        raise StorageError("qemu-img is not installed (Debian package qemu-utils)")
    try:
        proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise StorageError(f"qemu-img {args[0]} timed out after {timeout:g} s") from None
    if proc.returncode != 0:
        # one line: qemu-img says "...\nCould not open backing image." (messages are
        # one line everywhere, docs/storage.md)
        message = "; ".join(line.strip() for line in proc.stderr.splitlines() if line.strip())
        if "No space left on device" in message:
            raise NoSpace(f"qemu-img {args[0]}: no space left on the storage ({message})")
        raise StorageError(f"qemu-img {' '.join(args[:2])} failed: {message}")
    return proc.stdout
