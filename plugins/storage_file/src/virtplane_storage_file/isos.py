"""An ISO domain's files, in VDSM's fixed image folder."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING

from virtplane.errors import NoSpace, NotFound
from virtplane_storage_file.confinement import _fresh, confined
from virtplane_storage_file.errors import StorageError
from virtplane_storage_file.layout import ISO_IMAGE_ID, FileDomainCore

if TYPE_CHECKING:
    from virtplane.model import StorageDomain


class IsosMixin(FileDomainCore):
    """Importing, listing and deleting the ISOs of an ISO domain."""

    def iso_dir(self, domain: StorageDomain) -> Path:
        """An ISO domain keeps its images in VDSM's fixed folder."""
        return confined(self.root(domain), "images", ISO_IMAGE_ID)

    def import_iso(self, domain: StorageDomain, src: Path, name: str) -> Path:
        """Copy ``src`` in as ``name`` (temp file, then rename: never a half ISO).

        The temporary file is created ``O_EXCL | O_NOFOLLOW`` after removing any file of
        that name: a link planted there is never written through.
        """
        import shutil

        folder = self.iso_dir(domain)
        folder.mkdir(parents=True, exist_ok=True)
        target = confined(folder, name)
        if os.path.lexists(target):
            raise StorageError(f"ISO domain {domain.name!r} already has {name!r}")
        self.require_space(domain, src.stat().st_size, f"ISO {name}")
        tmp = target.with_name(f".{target.name}.tmp")  # a link there is removed (_fresh)
        try:
            with open(src, "rb") as fin, os.fdopen(_fresh(tmp), "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
            os.replace(tmp, target)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                tmp.unlink(missing_ok=True)
            if exc.errno == errno.ENOSPC:
                raise NoSpace(f"no space left on {domain.name!r} for ISO {name}") from None
            raise StorageError(f"cannot copy {src} to {target}: {exc.strerror}") from None
        return target

    def list_isos(self, domain: StorageDomain) -> list[str]:
        folder = self.iso_dir(domain)
        return sorted(p.name for p in folder.iterdir()
                      if not p.name.startswith(".")) if folder.is_dir() else []

    def iso_path(self, domain: StorageDomain, name: str) -> Path:
        path = confined(self.iso_dir(domain), name)
        if not path.is_file():
            raise NotFound(f"ISO domain {domain.name!r} has no {name!r} (has: "
                           f"{', '.join(self.list_isos(domain)) or 'nothing'})")
        return path

    def delete_iso(self, domain: StorageDomain, name: str) -> None:
        self.iso_path(domain, name).unlink()
