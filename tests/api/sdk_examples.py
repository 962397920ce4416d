"""The oVirt SDK's own published examples (``examples/`` of the ovirt-engine-sdk-python
source package), fetched with pip at test time and rewritten only in their connection
arguments.

Nothing from the SDK is kept in this repository: the source package is downloaded once
into a cache folder (pytest's cache, or the temporary folder) and only its
``examples/`` folder is unpacked.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

DIST = "ovirt-engine-sdk-python"
DEFAULT_VERSION = "4.6.3"

#: the one ``sdk.Connection(...)`` call of an example, up to its closing line ``)``
CONNECTION = re.compile(r"^connection = sdk\.Connection\(\n(?P<args>.*?)\n\)\n",
                        re.MULTILINE | re.DOTALL)


class ExampleError(Exception):
    """The source package or its examples cannot be obtained or rewritten."""


def sdk_version() -> str:
    try:
        return importlib.metadata.version(DIST)
    except importlib.metadata.PackageNotFoundError:
        return DEFAULT_VERSION


def fetch_examples(cache: Path, version: str, timeout: float = 600.0) -> Path:
    """``examples/`` of the source package ``version``, downloaded with pip into ``cache``
    on first use (atomically, so parallel sessions do not see half a folder)."""
    target = cache / f"{DIST}-{version}" / "examples"
    if target.is_dir() and any(target.glob("*.py")):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sdk-sdist-", dir=cache))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
             "--disable-pip-version-check", f"{DIST}=={version}", "-d", str(work)],
            capture_output=True, text=True, timeout=timeout)
        sdists = sorted(work.glob("*.tar.gz"))
        if done.returncode != 0 or not sdists:
            raise ExampleError(f"pip download {DIST}=={version} failed "
                               f"(rc {done.returncode}): {done.stderr[-2000:]}")
        unpacked = work / "examples"
        unpacked.mkdir()
        with tarfile.open(sdists[0]) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if len(parts) < 3 or parts[1] != "examples" or not member.isfile() \
                        or ".." in parts:
                    continue
                dest = unpacked.joinpath(*parts[2:])
                dest.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                dest.write_bytes(source.read())
        if not any(unpacked.glob("*.py")):
            raise ExampleError(f"{sdists[0].name} has no examples/*.py")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(unpacked, target)
        except OSError:  # another session was faster
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def rewrite_connection(source: str, url: str, username: str, password: str) -> str:
    """``source`` with the ``url``, ``username`` and ``password`` arguments of its one
    ``sdk.Connection(...)`` replaced; every other byte is kept (``ca_file='ca.pem'`` too:
    the test puts the API's CA there)."""
    blocks = list(CONNECTION.finditer(source))
    if len(blocks) != 1:
        raise ExampleError(f"expected one `connection = sdk.Connection(` block, found "
                           f"{len(blocks)}")
    block = blocks[0]
    args = block.group("args")
    for key, value in (("url", url), ("username", username), ("password", password)):
        args, n = re.subn(rf"^(\s*){key}=(['\"]).*?\2,$", lambda m, k=key, v=value:
                          f"{m.group(1)}{k}={v!r},", args, flags=re.MULTILINE)
        if n != 1:
            raise ExampleError(f"the connection block sets {key}= {n} times, not once")
    start, end = block.span("args")
    return source[:start] + args + source[end:]
