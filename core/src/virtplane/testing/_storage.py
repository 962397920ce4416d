"""Contract of a storage driver (entry-point group ``virtplane.storage``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from virtplane.testing._base import PluginContract

if TYPE_CHECKING:
    from virtplane.manager import Manager
    from virtplane.model import Image, StorageDomain, Volume

MIB = 1 << 20


class StorageContract(PluginContract):
    """Domain and image lifecycle, snapshot, merge, clone, ``volume_source``, cleanup on failure.

    Provide the ``storage_connection`` fixture: the ``connection`` dict of a
    new domain (what ``virtplane storage add --conn`` takes). Override
    :meth:`volume_exists` when your volumes are not files or block devices on
    this machine (a LUN on an array, an object in a cluster).
    """

    kind = "storage"
    #: Size of the disks the kit creates.
    disk_size: ClassVar[int] = 16 * MIB

    @pytest.fixture
    def storage_connection(self) -> dict[str, Any]:
        """The ``connection`` of a fresh domain; override in your test class."""
        pytest.fail(f"{type(self).__name__}: define a `storage_connection` fixture returning "
                    "the connection dict of a new, empty storage domain")

    @pytest.fixture
    def domain(self, manager: Manager, storage_connection: dict[str, Any]
               ) -> Iterator[StorageDomain]:
        """A data domain of this type, active in data center ``kit-dc``; deactivated
        afterwards, so the host lets go of it (a mount is unmounted), unless the test
        removed it."""
        self.record(manager)
        manager.datacenters.add("kit-dc")
        yield manager.storage.add("kit-sd", self.plugin, "kit-dc", storage_connection)
        # a domain the test removed was disconnected by the removal
        if any(d.name == "kit-sd" for d in manager.storage.list()):
            manager.storage.deactivate("kit-sd")

    # ------------------------------------------------------------- helpers

    def volume_exists(self, manager: Manager, domain: StorageDomain, image: Image,
                      volume: Volume) -> bool | None:
        """Whether the volume is on the storage; None when the kit cannot tell.

        The default follows ``volume_source``: the file or device must exist.
        """
        src = self.driver(manager).volume_source(domain, image, volume)
        if src.get("type") == "file":
            return os.path.exists(src["source"]["@file"])
        if src.get("type") == "block":
            return os.path.exists(src["source"]["@dev"])
        return None

    def driver(self, manager: Manager) -> Any:
        return manager.context.drivers.storage(self.plugin)

    def image(self, manager: Manager, disk: str) -> Image:
        from virtplane.model import Image

        return manager.store.find(Image, disk)

    def assert_exists(self, manager: Manager, domain: StorageDomain, image: Image,
                      volume: Volume, expected: bool) -> None:
        found = self.volume_exists(manager, domain, image, volume)
        if found is not None:
            state = "missing" if expected else "still there"
            assert found is expected, f"volume {volume.id} of image {image.id} is {state}"

    def assert_clean(self, manager: Manager) -> None:
        problems = manager.storage.verify("kit-sd")
        assert problems == [], f"storage verify reports: {problems}"

    # ------------------------------------------------------------ the tests

    def test_implements_the_protocol(self, manager: Manager) -> None:
        from virtplane.drivers import StorageDriver

        self.record(manager)
        drv = self.driver(manager)
        missing = [m for m in ("connect", "create_domain", "remove_domain", "create_volume",
                               "delete_image", "delete_volume", "merge_volume", "volume_source")
                   if not callable(getattr(drv, m, None))]
        assert not missing, f"the driver lacks StorageDriver members: {', '.join(missing)}"
        assert isinstance(drv, StorageDriver)

    def test_domain_lifecycle(self, manager: Manager, domain: StorageDomain,
                              storage_connection: dict[str, Any]) -> None:
        from virtplane.model import DomainStatus

        assert domain.status == DomainStatus.ACTIVE
        info = manager.storage.info("kit-sd")
        assert info["name"] == "kit-sd" and info["status"] == DomainStatus.ACTIVE, info
        self.assert_clean(manager)
        manager.storage.remove("kit-sd")
        assert [d.name for d in manager.store.list(type(domain))] == []
        # whatever the domain left on its storage is gone: the same connection takes a new one
        manager.storage.add("kit-sd2", self.plugin, "kit-dc", storage_connection)
        manager.storage.remove("kit-sd2")

    def test_disk_lifecycle_and_volume_source(self, manager: Manager,
                                              domain: StorageDomain) -> None:
        manager.disks.create("kit-d0", "kit-sd", self.disk_size)
        image = self.image(manager, "kit-d0")
        assert [v.size_bytes for v in image.volumes] == [self.disk_size]
        assert all(v.legal for v in image.volumes)
        vol = image.volumes[0]
        src = self.driver(manager).volume_source(domain, image, vol)
        assert src.get("type") in ("file", "block", "network"), (
            f"volume_source() type must be file, block or network; got {src!r}")
        key = {"file": "@file", "block": "@dev", "network": "@name"}[src["type"]]
        assert src.get("source", {}).get(key), f"volume_source() lacks source/{key}: {src!r}"
        if src["type"] == "network":
            assert src["source"].get("@protocol"), f"network source without @protocol: {src!r}"
        self.assert_exists(manager, domain, image, vol, True)
        assert "kit-d0" in [d["name"] for d in manager.disks.list()]
        self.assert_clean(manager)
        manager.disks.remove("kit-d0")
        self.assert_exists(manager, domain, image, vol, False)
        assert "kit-d0" not in [d["name"] for d in manager.disks.list()]
        self.assert_clean(manager)

    def test_snapshot_then_merge(self, manager: Manager, domain: StorageDomain) -> None:
        drv = self.driver(manager)
        manager.disks.create("kit-d0", "kit-sd", self.disk_size)
        top = manager.disks.snapshot("kit-d0")
        image = self.image(manager, "kit-d0")
        base = image.volumes[0]
        assert [v.id for v in image.volumes] == [base.id, top.id] and top.parent_id == base.id
        assert drv.volume_source(domain, image, top) != drv.volume_source(domain, image, base)
        self.assert_exists(manager, domain, image, top, True)
        self.assert_clean(manager)
        leaf = manager.disks.merge("kit-d0")
        image = self.image(manager, "kit-d0")
        assert leaf.id == base.id and [v.id for v in image.volumes] == [base.id]
        self.assert_exists(manager, domain, image, top, False)
        self.assert_exists(manager, domain, image, base, True)
        self.assert_clean(manager)

    def test_clone_outlives_its_source(self, manager: Manager, domain: StorageDomain) -> None:
        from virtplane.errors import VirtplaneError

        manager.disks.create("kit-d0", "kit-sd", self.disk_size)
        manager.disks.snapshot("kit-d0")
        try:
            clone = manager.disks.clone("kit-d0", "kit-copy")
        except VirtplaneError as exc:
            self._refused_clearly(exc, "copy volumes")
            return
        assert len(clone.volumes) == 1 and clone.volumes[0].parent_id is None
        manager.disks.remove("kit-d0")
        clone = self.image(manager, "kit-copy")
        self.assert_exists(manager, domain, clone, clone.volumes[0], True)
        self.assert_clean(manager)

    def test_extend_or_refuse_clearly(self, manager: Manager, domain: StorageDomain) -> None:
        from virtplane.errors import VirtplaneError

        manager.disks.create("kit-d0", "kit-sd", self.disk_size)
        try:
            vol = manager.disks.extend("kit-d0", 2 * self.disk_size)
        except VirtplaneError as exc:
            self._refused_clearly(exc, "resize volumes")
            assert self.image(manager, "kit-d0").volumes[0].size_bytes == self.disk_size
            return
        assert vol.size_bytes == 2 * self.disk_size
        self.assert_clean(manager)

    def failing_create(self, manager: Manager,
                       monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
        """Make the driver's next ``create_volume`` create the volume, then raise (the
        operation failed after the storage did its part); returns what it made."""
        drv = self.driver(manager)
        real = drv.create_volume
        made: list[tuple[Any, Any]] = []

        def create_then_fail(dom: Any, image: Any, volume: Any) -> None:
            monkeypatch.setattr(drv, "create_volume", real)
            real(dom, image, volume)
            made.append((image, volume))
            raise RuntimeError("kit: injected failure after create_volume")

        monkeypatch.setattr(drv, "create_volume", create_then_fail)
        return made

    def test_failed_create_leaves_nothing(self, manager: Manager, domain: StorageDomain,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
        """The driver made the volume, then the operation failed: the core asks the driver
        to delete it, and neither storage nor state keep anything of it."""
        made = self.failing_create(manager, monkeypatch)
        with pytest.raises(RuntimeError, match="kit: injected"):
            manager.disks.create("kit-d0", "kit-sd", self.disk_size)
        assert made, "create_disk did not reach the driver's create_volume"
        assert "kit-d0" not in [d["name"] for d in manager.disks.list()]
        self.assert_exists(manager, domain, made[0][0], made[0][1], False)
        self.assert_clean(manager)
        # and the name is free again
        manager.disks.create("kit-d0", "kit-sd", self.disk_size)

    def test_failed_snapshot_leaves_the_chain_as_it_was(
            self, manager: Manager, domain: StorageDomain,
            monkeypatch: pytest.MonkeyPatch) -> None:
        manager.disks.create("kit-d0", "kit-sd", self.disk_size)
        before = [v.id for v in self.image(manager, "kit-d0").volumes]
        made = self.failing_create(manager, monkeypatch)
        with pytest.raises(RuntimeError, match="kit: injected"):
            manager.disks.snapshot("kit-d0")
        assert made, "snapshot_disk did not reach the driver's create_volume"
        image = self.image(manager, "kit-d0")
        assert [v.id for v in image.volumes] == before
        self.assert_exists(manager, domain, made[0][0], made[0][1], False)
        self.assert_exists(manager, domain, image, image.volumes[0], True)
        self.assert_clean(manager)

    def test_domain_with_disks_is_not_removed(self, manager: Manager,
                                              domain: StorageDomain) -> None:
        from virtplane.errors import InvalidState

        manager.disks.create("kit-d0", "kit-sd", self.disk_size)
        with pytest.raises(InvalidState, match="kit-sd"):
            manager.storage.remove("kit-sd")
        image = self.image(manager, "kit-d0")
        self.assert_exists(manager, domain, image, image.volumes[0], True)
        self.assert_clean(manager)

    def _refused_clearly(self, exc: BaseException, what: str) -> None:
        from virtplane.errors import InvalidInput

        if not isinstance(exc, InvalidInput) or what not in str(exc):
            raise AssertionError(
                f"the operation failed with {type(exc).__name__}: {exc}; a driver without "
                f"the optional member must be refused with InvalidInput ('cannot {what}')"
            ) from exc
