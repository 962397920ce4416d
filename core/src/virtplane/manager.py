"""The embedder API: :class:`Manager`.

One object opens the configuration, loads the plugins and the state store, and
exposes data centers, clusters, hosts, storage domains and VMs. The
``virtplane`` command is a thin layer over it.

    >>> from virtplane import Manager, model
    >>> with Manager.open() as m:                                # doctest: +SKIP
    ...     dc = m.add_datacenter("dc1")
    ...     cl = m.add_cluster("c1", dc.name)
    ...     host = m.add_host("h1", cl.name, "test:///default")
    ...     vm = m.create_vm(model.VmSpec(name="vm1"), cl.name)
    ...     m.start_vm("vm1")
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from virtplane import config as _config
from virtplane._hookrunner import HookRunner, fails_operation
from virtplane._plugins import LOADED, PluginRecord, PluginRegistry
from virtplane.errors import (
    HookError,
    HypervisorError,
    InvalidInput,
    InvalidState,
    NotFound,
)

if TYPE_CHECKING:
    from virtplane import model as _model
    from virtplane.state import StateStore


class Manager:
    """virtplane's entry point for embedders.

    :param cfg: a loaded :class:`virtplane.config.Config`; by default the
        administrator's configuration is read (see docs/config.md).
    :param state_path: override the state store file.
    """

    def __init__(
        self, cfg: _config.Config | None = None, *, state_path: str | os.PathLike[str] | None = None
    ) -> None:
        self.config = cfg if cfg is not None else _config.load()
        self.plugins = PluginRegistry(self.config)
        self.plugins.load()
        self.hooks = HookRunner(self.plugins.pm, trace=self.config.trace_hooks,
                                event_log=self._event)
        self._state_path = Path(state_path) if state_path else self.config.state_path
        self._store: StateStore | None = None
        self._drivers: dict[tuple[str, str], Any] = {}
        self._connections: dict[str, Any] = {}
        self._expected_stops: set[str] = set()
        self._osinfo: Any = None
        self._watching: set[str] = set()
        self.hooks.fire("before_vdsm_start", on_error=self._log_error(None), manager=self)

    @classmethod
    def open(cls, config_path: str | None = None, **kwargs: Any) -> Manager:
        """Open a manager with the configuration at ``config_path`` (or the default search)."""
        return cls(_config.load(config_path), **kwargs)

    def close(self) -> None:
        """Close host connections and the store; fires ``after_vdsm_stop``."""
        self.hooks.fire("after_vdsm_stop", on_error=self._log_error(None), manager=self)
        for conn in self._connections.values():
            try:
                conn.close()
            except Exception as exc:  # noqa: BLE001 - closing is best effort; say so
                print(f"virtplane: closing a host connection failed: {exc}")
        self._connections.clear()
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Manager:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------- plugins

    def plugin_records(self) -> list[PluginRecord]:
        """Every known plugin (loaded, failed or disabled), sorted by name."""
        return sorted(self.plugins.records.values(), key=lambda r: r.name)

    def driver(self, kind: str, name: str) -> Any:
        """An instance of the named driver, created with its validated settings."""
        key = (kind, name)
        if key not in self._drivers:
            cls = self.plugins.driver(kind, name)
            rec = self.plugins.records[name]
            self._drivers[key] = cls(rec.load_settings(self.config))
        return self._drivers[key]

    @property
    def store(self) -> StateStore:
        """The state store (opened on first use)."""
        if self._store is None:
            from virtplane.state import StateStore

            self._store = StateStore(self._state_path)
        return self._store

    def _event(self, object_id: str, message: str, level: str) -> None:
        self.store.add_event(object_id, message, level=level)

    def _log_error(self, object_id: str | None) -> Any:
        def sink(err: HookError) -> None:
            if object_id is not None:
                self.store.add_event(object_id, str(err), level="error")
        return sink

    # ------------------------------------------------------ data centers etc.

    def add_datacenter(self, name: str, description: str = "") -> _model.DataCenter:
        from virtplane import model

        dc = model.DataCenter(name=name, description=description)
        self.store.add(dc)
        return dc

    def add_cluster(
        self, name: str, datacenter: str, architecture: str = "x86_64",
        cpu_model: str | None = None, compat_version: str = "4.8",
    ) -> _model.Cluster:
        """Add a cluster; its architecture must have a loaded architecture driver."""
        from virtplane import model

        dc = self.store.find(model.DataCenter, datacenter)
        arch = self.driver("architecture", architecture)
        if cpu_model is not None and cpu_model not in arch.cpu_models():
            raise InvalidInput(
                f"CPU model {cpu_model!r} is not supported on {architecture}; allowed: "
                + ", ".join(arch.cpu_models())
            )
        cl = model.Cluster(name=name, datacenter_id=dc.id, architecture=architecture,
                           cpu_model=cpu_model, compat_version=compat_version)
        self.store.add(cl)
        return cl

    def connection(self, host: _model.Host) -> Any:
        """The hypervisor driver connection for a host (opened on first use)."""
        conn = self._connections.get(host.id)
        if conn is None:
            driver = self.driver("hypervisor", host.driver)
            conn = driver.connect(host.uri)
            self._connections[host.id] = conn
        return conn

    def add_host(
        self, name: str, cluster: str, uri: str, driver: str = "kvm"
    ) -> _model.Host:
        """Add a host by URI; it is contacted and its capabilities recorded."""
        from virtplane import model

        cl = self.store.find(model.Cluster, cluster)
        host = model.Host(name=name, cluster_id=cl.id, driver=driver, uri=uri)
        self.driver("hypervisor", driver)  # fail early on an unknown driver
        conn = self.connection(host)
        try:
            caps = self.host_capabilities(host, conn)
        except BaseException:
            self._connections.pop(host.id, None)
            conn.close()
            raise
        host.capabilities = caps
        archs = caps.get("guest_arches", [])
        if archs and cl.architecture not in archs and not caps.get("accepts_any_arch"):
            host.status = model.HostStatus.NON_OPERATIONAL
            host.status_reason = (
                f"host runs no {cl.architecture} guests (it offers {', '.join(archs)})"
            )
        elif cl.cpu_model and hasattr(conn, "usable_cpu_models"):
            usable = conn.usable_cpu_models(cl.architecture)
            if usable and cl.cpu_model not in usable:
                host.status = model.HostStatus.NON_OPERATIONAL
                host.status_reason = (
                    f"host cannot give {cl.architecture} guests the cluster's CPU model "
                    f"{cl.cpu_model}; usable here: {', '.join(usable)}")
            host.capabilities["usable_cpu_models"] = usable
        if hasattr(conn, "usable_cpu_models") and not caps.get("accepts_any_arch"):
            # map the host onto the cluster CPU list: which cluster models it can serve
            usable = host.capabilities.get("usable_cpu_models") or conn.usable_cpu_models(
                cl.architecture)
            arch_models = self.driver("architecture", cl.architecture).cpu_models()
            host.capabilities["cluster_cpu_models"] = [c for c in arch_models if c in usable]
        self.store.add(host)
        return host

    def check_host(self, name: str) -> _model.Host:
        """Contact a host and record its status: Up, or NonResponsive with the reason.

        A host in Maintenance stays there. A dropped connection (libvirtd
        restarted) is reopened.
        """
        from virtplane import model
        from virtplane.errors import HostUnreachable

        host = self.store.find(model.Host, name)
        try:
            self.connection(host).ping()
        except HostUnreachable as exc:
            conn = self._connections.pop(host.id, None)
            if conn is not None:
                conn.close()
            self._watching.discard(host.id)
            if host.status != model.HostStatus.MAINTENANCE:
                host.status = model.HostStatus.NON_RESPONSIVE
            host.status_reason = str(exc)
        else:
            if host.status == model.HostStatus.NON_RESPONSIVE:
                host.status = model.HostStatus.UP
                host.status_reason = ""
        self.store.update(host)
        return host

    def setup_host(self, name: str, **options: Any) -> list[str]:
        """Prepare a host with its driver's own setup (OVM3: roles, ownership, repository,
        server pool, VLAN bridges); returns what was done, one line per step."""
        from virtplane import model

        host = self.store.find(model.Host, name)
        conn = self.connection(host)
        setup = getattr(conn, "setup", None)
        if setup is None:
            raise InvalidInput(f"the {host.driver} driver has no host setup")
        done: list[str] = setup(**options)
        host.capabilities = self.host_capabilities(host, conn)
        self.store.update(host)
        for line in done:
            self.store.add_event(host.id, f"setup: {line}")
        return done

    def set_maintenance(self, name: str, on: bool = True) -> _model.Host:
        """Put a host into Maintenance (no VM may run on it) or bring it back Up."""
        from virtplane import model

        host = self.store.find(model.Host, name)
        if on:
            running = [v.name for v in self.store.list(model.Vm)
                       if v.host_id == host.id and v.status != model.VmStatus.DOWN]
            if running:
                raise InvalidState(f"host {name!r} still runs {', '.join(running)}; migrate "
                                   "or stop them first")
            host.status = model.HostStatus.MAINTENANCE
            host.status_reason = "maintenance requested"
            self.store.update(host)
            return host
        host.status = model.HostStatus.UP
        host.status_reason = ""
        self.store.update(host)
        return self.check_host(name)

    def host_capabilities(self, host: _model.Host, conn: Any = None) -> dict[str, Any]:
        """Capabilities as the driver reports them, extended by hooks."""
        from virtplane.payloads import JsonPayload

        conn = conn or self.connection(host)
        self.hooks.fire("before_get_caps", host=host, payload=JsonPayload({"host": host.id}))
        caps = conn.capabilities()
        self.hooks.fire("extend_host_capabilities", host=host, caps=caps)
        payload = JsonPayload(caps)
        self.hooks.fire("after_get_caps", on_error=self._log_error(host.id), host=host,
                        payload=payload)
        result: dict[str, Any] = payload.data
        return result

    def host_stats(self, host_name: str) -> dict[str, Any]:
        from virtplane import model
        from virtplane.payloads import JsonPayload

        host = self.store.find(model.Host, host_name)
        self.hooks.fire("before_get_stats", host=host, payload=JsonPayload({"host": host.id}))
        payload = JsonPayload(self.connection(host).host_stats())
        self.hooks.fire("after_get_stats", on_error=self._log_error(host.id), host=host,
                        payload=payload)
        stats: dict[str, Any] = payload.data
        return stats

    # ------------------------------------------------------------- storage

    def add_storage_domain(
        self, name: str, type: str, datacenter: str | None = None,
        connection: dict[str, Any] | None = None, domain_class: str = "data",
    ) -> _model.StorageDomain:
        """Create a storage domain on its storage and record it.

        On failure nothing is recorded and the driver removes what it made.
        """
        from virtplane import model

        try:
            klass = model.DomainClass(domain_class)
        except ValueError:
            raise InvalidInput(
                f"storage domain class {domain_class!r} is not allowed; allowed: "
                + ", ".join(c.value for c in model.DomainClass)
            ) from None
        dc_id = self.store.find(model.DataCenter, datacenter).id if datacenter else None
        dom = model.StorageDomain(name=name, type=type, datacenter_id=dc_id,
                                  domain_class=klass, connection=dict(connection or {}))
        problems = self.hooks.collect("validate_storage_domain", domain=dom)
        if problems:
            raise InvalidInput("; ".join(f"{m} [{p}]" for p, m in problems))
        drv = self.driver("storage", type)
        self.store.require_free(model.StorageDomain, name, "storage domain")
        drv.connect(dom)
        drv.create_domain(dom)
        dom.status = model.DomainStatus.ACTIVE if dc_id else model.DomainStatus.UNATTACHED
        try:
            self.store.add(dom)
        except BaseException:
            drv.remove_domain(dom)
            raise
        return dom

    def _new_disk(self, vm_id: str, disk: _model.DiskSpec) -> _model.Image | None:
        from virtplane import _storage, model

        if disk.domain_id is None or disk.image_id is not None or disk.path:
            return None
        dom = self.store.get(model.StorageDomain, disk.domain_id)
        _storage.require_active(self, dom)
        image = model.Image(domain_id=dom.id, description=f"{vm_id}/{disk.name}")
        vol = model.Volume(image_id=image.id, format=disk.format,
                           allocation=disk.allocation, size_bytes=disk.size_bytes)
        _storage.add_volume(self, dom, image, vol)
        disk.image_id = image.id
        return image

    def sync_image(self, image: _model.Image, dom: _model.StorageDomain | None = None) -> None:
        """Write an image's metadata to its storage domain (the store is a cache of it)."""
        from virtplane import model

        dom = dom or self.store.get(model.StorageDomain, image.domain_id)
        drv = self.driver("storage", dom.type)
        if hasattr(drv, "write_image_metadata"):
            drv.write_image_metadata(dom, image)

    # storage domains and templates live in virtplane._storage; thin wrappers here

    def attach_storage_domain(self, name: str, type: str, connection: dict[str, Any],
                              datacenter: str | None = None) -> _model.StorageDomain:
        """Attach an existing domain found on its storage, importing its images."""
        from virtplane import _storage

        return _storage.attach(self, name, type, connection, datacenter)

    def verify_storage_domain(self, name: str) -> list[str]:
        """Mismatches between a domain's storage, its metadata and the state store."""
        from virtplane import _storage

        return _storage.verify(self, name)

    def repair_storage_domain(self, name: str) -> list[str]:
        """Remove illegal volumes left by killed operations; returns what was done."""
        from virtplane import _storage

        return _storage.repair(self, name)

    def refresh_storage_domain(self, name: str) -> _model.StorageDomain:
        """Probe a domain's storage (with a timeout) and record Active or Inactive
        with the reason; VMs and disks on an Inactive domain are refused."""
        from virtplane import _storage

        return _storage.refresh(self, name)

    def deactivate_storage_domain(self, name: str) -> _model.StorageDomain:
        """Maintenance: Inactive, the host disconnected (unmounted); refused while running
        VMs use it."""
        from virtplane import _storage

        return _storage.deactivate(self, name)

    def activate_storage_domain(self, name: str) -> _model.StorageDomain:
        """Connect again (mount ...) and probe; Active or Inactive with the reason."""
        from virtplane import _storage

        return _storage.activate(self, name)

    def detach_storage_domain(self, name: str) -> None:
        """Forget a domain (its data stays on the storage, ready to be attached again)."""
        from virtplane import _storage

        _storage.detach(self, name)

    def remove_storage_domain(self, name: str) -> None:
        """Delete an empty domain from its storage and forget it."""
        from virtplane import _storage

        _storage.remove(self, name)

    # standalone disks (virtplane._disks)

    def create_disk(self, name: str, domain: str, size_bytes: int, format: str = "qcow2",
                    allocation: str = "thin") -> _model.Image:
        """A named disk on a data domain, outside any VM."""
        from virtplane import _disks

        return _disks.create(self, name, domain, size_bytes, format, allocation)

    def import_disk(self, name: str, domain: str, path: str,
                    format: str = "qcow2") -> _model.Image:
        """A named disk filled from an image file (anything qemu-img reads)."""
        from virtplane import _disks

        return _disks.import_file(self, name, domain, path, format)

    def list_disks(self) -> list[dict[str, Any]]:
        """Every image (named disks and VM disks) with its domain, size and users."""
        from virtplane import _disks, model

        return [_disks.describe(self, i) for i in self.store.list(model.Image)]

    def snapshot_disk(self, name: str) -> _model.Volume:
        """Freeze a disk's leaf under a new qcow2 layer (not while a running VM uses it)."""
        from virtplane import _disks

        return _disks.snapshot(self, name)

    def merge_disk(self, name: str) -> _model.Volume:
        """Fold a disk's top layer into the one below (offline); returns the new leaf."""
        from virtplane import _disks

        return _disks.merge(self, name)

    def clone_disk(self, name: str, new_name: str) -> _model.Image:
        """A standalone, collapsed copy of a disk."""
        from virtplane import _disks

        return _disks.clone(self, name, new_name)

    def extend_disk(self, name: str, size_bytes: int) -> _model.Volume:
        """Grow a disk (not while a running VM uses it)."""
        from virtplane import _disks

        return _disks.extend(self, name, size_bytes)

    def storage_domain_info(self, name: str) -> dict[str, Any]:
        """A domain, its images and what its driver reports (array capabilities ...)."""
        from virtplane import _storage, model

        d = _storage.refresh(self, name)
        info: dict[str, Any] = model.unstructure(d)
        info["images"] = [model.unstructure(i) for i in self.store.list(model.Image)
                          if i.domain_id == d.id]
        drv = self.driver("storage", d.type)
        if hasattr(drv, "describe") and d.status != model.DomainStatus.INACTIVE:
            info["driver"] = drv.describe(d)
        return info

    def remove_disk(self, name: str) -> None:
        """Delete a disk nothing uses (VMs, templates and thin images are listed if any)."""
        from virtplane import _disks

        _disks.remove(self, name)

    def upload_iso(self, domain: str, path: str, name: str | None = None) -> str:
        """Copy an ISO file onto an iso-class domain; returns its name there."""
        from virtplane import _disks

        return _disks.upload_iso(self, domain, path, name)

    def list_isos(self, domain: str) -> list[str]:
        """The ISO images on an iso-class domain."""
        from virtplane import _disks

        return _disks.list_isos(self, domain)

    def create_template(self, vm_name: str, name: str) -> _model.Template:
        """Make a template from a Down VM: each managed disk copied (collapsed) once."""
        from virtplane import _storage

        return _storage.create_template(self, vm_name, name)

    def create_vm_from_template(self, template: str, name: str, cluster: str,
                                clone: bool = False) -> _model.Vm:
        """A VM from a template: thin (qcow2 overlays on the template's volumes) or a
        full clone (standalone copies)."""
        from virtplane import _storage

        return _storage.vm_from_template(self, template, name, cluster, clone)

    def remove_template(self, name: str) -> None:
        """Remove a template; refused while VMs are based on it (they are listed)."""
        from virtplane import _storage

        _storage.remove_template(self, name)

    def _disk_source(self, disk: _model.DiskSpec) -> dict[str, Any]:
        from virtplane import model

        if disk.path:
            return {"type": "file", "source": {"@file": disk.path}}
        if disk.domain_id is None or disk.image_id is None:
            return {"type": "file", "source": {}}
        dom = self.store.get(model.StorageDomain, disk.domain_id)
        image = self.store.get(model.Image, disk.image_id)
        bad = [v.id for v in image.volumes if not v.legal]
        if bad:
            raise InvalidState(f"disk {disk.name!r}: volume {bad[0]} of image {image.id} is "
                               "illegal (an operation on it did not finish); run `virtplane "
                               f"storage repair {dom.name}` first")
        from virtplane import _storage

        _storage.require_active(self, dom)
        source: dict[str, Any] = self.driver("storage", dom.type).volume_source(
            dom, image, image.volumes[-1])
        return source

    # ----------------------------------------------------------------- VMs

    # ----------------------------------------------------------- OS info

    @property
    def osinfo(self) -> Any:
        """The OS repository: every loaded architecture's entries, then the
        ``osinfo.conf.d`` override folders, then ``VIRTPLANE_OSINFO`` files."""
        if self._osinfo is None:
            from virtplane import osinfo

            files = []
            for name in self.loaded("architecture"):
                files.extend(self.driver("architecture", name).osinfo_files())
            self._osinfo = osinfo.load(files, osinfo.env_files())
        return self._osinfo

    def architectures(self, compat_version: str = "4.8") -> list[dict[str, Any]]:
        """Every loaded architecture driver with what it answers."""
        out = []
        for name in self.loaded("architecture"):
            drv = self.driver("architecture", name)
            rec = self.plugins.records[name]
            out.append({
                "name": name, "distribution": rec.dist, "version": rec.version,
                "default_os": drv.default_os, "cpu_models": drv.cpu_models(),
                "machine_types": drv.machine_types(),
                "memory_granularity_mib": getattr(drv, "memory_granularity_mib", 1),
                "compat_version": compat_version,
                "features": self.arch_features(name, compat_version),
                "oses": len(self.osinfo.list_for(name)),
            })
        return out

    def arch_features(self, arch: str, compat_version: str) -> dict[str, bool]:
        """What an architecture supports at a compatibility version: the driver's answer,
        then the ``extend_architecture_features`` hook (which may switch features off)."""
        features = dict(self.driver("architecture", arch).features(compat_version))
        self.hooks.fire("extend_architecture_features", arch=arch,
                        compat_version=compat_version, features=features)
        return features

    def os_list(self, arch: str | None = None) -> list[dict[str, Any]]:
        """OSes (of one architecture), as an OS chooser shows them."""
        repo = self.osinfo
        return [{"name": n, "id": repo.get_int(n, "id"), "title": repo.get(n, "name"),
                 "arch": repo.arch_of(n), "family": repo.get(n, "family"),
                 "deprecated": repo.get_bool(n, "deprecated")} for n in repo.list_for(arch)]

    def os_info(self, name: str, version: str | None = None,
                chipset: str | None = None) -> dict[str, Any]:
        """Effective values of an OS (at a compatibility version) and where each came from."""
        from virtplane import osrules

        repo = self.osinfo
        values = {k: {"value": v.text, "source": v.source}
                  for k, v in repo.effective(name, version).items()}
        ver = version or "4.8"
        return {"name": name, "version": version, "chain": [e.name for e in repo.chain(name)],
                "values": values,
                "disk_interfaces": osrules.allowed_disk_interfaces(repo, name, ver, chipset),
                "nic_models": osrules.allowed_nic_models(repo, name, ver)}

    def os_name(self, spec: _model.VmSpec, cluster: _model.Cluster) -> str:
        if spec.os:
            return spec.os
        return str(self.driver("architecture", cluster.architecture).default_os)

    def validate_vm_spec(self, spec: _model.VmSpec, cluster: _model.Cluster) -> None:
        """Check a spec: architecture driver, OS info rules, then every validate hook."""
        from virtplane import osrules

        arch = self.driver("architecture", cluster.architecture)
        problems = [(cluster.architecture, m) for m in arch.validate(spec, cluster)]
        problems += [("osinfo", m) for m in osrules.check(
            spec, cluster, self.osinfo, self.os_name(spec, cluster), arch.chipset(spec),
            spec.cpu_model or cluster.cpu_model)]
        problems += self.hooks.collect("validate_vm_spec", spec=spec, cluster=cluster)
        if problems:
            raise InvalidInput(
                f"VM {spec.name!r} is not valid: " + "; ".join(f"{m} [{p}]" for p, m in problems)
            )

    def create_vm(self, spec: _model.VmSpec, cluster: str) -> _model.Vm:
        """Validate a spec, create its disks on their storage domains and record the VM."""
        from virtplane import model

        cl = self.store.find(model.Cluster, cluster)
        self.validate_vm_spec(spec, cl)
        self.store.require_free(model.Vm, spec.name, "VM")
        if spec.cd is not None and spec.cd.path:
            from virtplane import _disks

            spec.cd.path = _disks.media_path(self, spec.cd.path)
        vm = model.Vm(spec=spec, cluster_id=cl.id)
        made: list[_model.Image] = []
        try:
            for disk in spec.disks:
                image = self._new_disk(vm.id, disk)
                if image is not None:
                    made.append(image)
            self.store.add(vm)
        except BaseException:
            from virtplane import _storage

            _storage.drop(self, made, [])
            raise
        return vm

    def get_vm(self, name: str) -> _model.Vm:
        from virtplane import model

        return self.store.find(model.Vm, name)

    def list_vms(self) -> list[_model.Vm]:
        from virtplane import model

        return self.store.list(model.Vm)

    def _vm_host(self, vm: _model.Vm) -> tuple[_model.Host, Any]:
        from virtplane import model

        if vm.host_id is None:
            raise InvalidState(f"VM {vm.name!r} is not running on any host")
        host = self.store.get(model.Host, vm.host_id)
        return host, self.connection(host)

    def _pick_host(self, vm: _model.Vm, host_name: str | None) -> _model.Host:
        from virtplane import model

        if host_name is not None:
            host = self.store.find(model.Host, host_name)
            if host.cluster_id != vm.cluster_id:
                raise InvalidInput(f"host {host.name!r} is not in the VM's cluster")
            return host
        hosts = [h for h in self.store.list(model.Host)
                 if h.cluster_id == vm.cluster_id and h.status == model.HostStatus.UP]
        if not hosts:
            raise InvalidState(f"no host is Up in the cluster of VM {vm.name!r}")
        return hosts[0]

    def domain_xml(self, vm: _model.Vm, host: _model.Host) -> str:
        """The domain XML for a VM on a host, before lifecycle hooks (see docs/lifecycle.md)."""
        from virtplane import domxml, model
        from virtplane.payloads import XmlPayload

        cl = self.store.get(model.Cluster, vm.cluster_id)
        domain = domxml.build(vm.spec, vm.id, [self._disk_source(d) for d in vm.spec.disks])
        self.driver("architecture", cl.architecture).render(vm.spec, cl, domain["domain"])
        self.connection(host).render(domain["domain"], cl.architecture,
                                     vm.spec.custom_properties.get("virt_type"))
        payload = XmlPayload(domxml.to_xml(domain))
        self.hooks.fire("adjust_domain_xml", vm=vm, domxml=payload, host=host)
        return payload.xml

    def start_vm(self, name: str, host: str | None = None) -> _model.Vm:
        """Start a VM (Down -> Powering up/Up). A failed start leaves it Down, nothing defined."""
        from virtplane import domxml, model
        from virtplane.payloads import XmlPayload

        vm = self.get_vm(name)
        if vm.status != model.VmStatus.DOWN:
            raise InvalidState(f"VM {name!r} is {vm.status.value}; only a Down VM can be started")
        if vm.saved_state:
            raise InvalidState(f"VM {name!r} is hibernated; restore it instead of starting it")
        h = self._pick_host(vm, host)
        self._check_memory(vm, h)
        xml = self.domain_xml(vm, h)
        conn = self.connection(h)
        native = getattr(conn, "native_config", None)
        try:
            if native is not None:
                # a hypervisor with its own config format (OVM3 vm.cfg): hooks get that
                xml = native(xml)
            if native is None and self.hooks.implemented("before_device_create"):
                devices = []
                for tag, dev in domxml.devices_xml(xml):
                    payload = XmlPayload(dev)
                    self.hooks.fire("before_device_create", vm=vm, devxml=payload)
                    devices.append((tag, payload.xml))
                xml = domxml.replace_devices(xml, devices)
            dom_payload = self._payload(conn, xml)
            self.hooks.fire("before_vm_start", vm=vm, domxml=dom_payload)
            vm.status = model.VmStatus.WAIT_FOR_LAUNCH
            live = conn.start(vm.name, dom_payload.xml, dom_payload.launch_flags)
        except (HookError, HypervisorError) as exc:
            vm.status = model.VmStatus.DOWN
            vm.status_reason = str(exc)
            self.store.update(vm)
            self.store.add_event(vm.id, f"start failed: {exc}", level="error")
            raise
        # a hook may have asked libvirt to start it paused (launch flags)
        state, _ = conn.state(vm.name)
        vm.status = model.VmStatus.PAUSED if state == "Paused" else model.VmStatus.UP
        vm.status_reason = ""
        vm.host_id = h.id
        vm.started_xml = live
        self.store.update(vm)
        self.store.add_event(vm.id, f"started on {h.name}")
        sink = self._log_error(vm.id)
        if self.hooks.implemented("after_device_create"):
            for _tag, dev in domxml.devices_xml(live):
                self.hooks.fire("after_device_create", on_error=sink, vm=vm,
                                devxml=XmlPayload(dev))
        self.hooks.fire("after_vm_start", on_error=sink, vm=vm,
                        domxml=self._payload(conn, live))
        return vm

    def _check_memory(self, vm: _model.Vm, host: _model.Host) -> None:
        total = host.capabilities.get("memory_mib")
        if total and vm.spec.memory_mib > total:
            raise InvalidInput(
                f"VM {vm.name!r} asks for {vm.spec.memory_mib} MiB but host {host.name!r} "
                f"has {total} MiB"
            )

    def _went_down(self, vm: _model.Vm, reason: str, conn: Any) -> None:
        from virtplane import model

        vm.status = model.VmStatus.DOWN
        vm.status_reason = reason
        vm.host_id = None
        self.store.update(vm)
        self.store.add_event(vm.id, f"down: {reason}")

    def _after_down(self, vm: _model.Vm, xml: str | None, reason: str) -> None:
        from virtplane import domxml
        from virtplane.payloads import XmlPayload

        sink = self._log_error(vm.id)
        if xml and self.hooks.implemented("after_device_destroy"):
            for _tag, dev in domxml.devices_xml(xml):
                self.hooks.fire("after_device_destroy", on_error=sink, vm=vm,
                                devxml=XmlPayload(dev))
        self.hooks.fire("after_vm_destroy", on_error=sink, vm=vm, reason=reason)

    def destroy_vm(self, name: str) -> _model.Vm:
        """Power a VM off at once."""
        from virtplane import domxml
        from virtplane.payloads import XmlPayload

        vm = self.get_vm(name)
        host, conn = self._vm_host(vm)
        sink = self._log_error(vm.id)
        xml = vm.started_xml
        self.hooks.fire("before_vm_destroy", on_error=sink, vm=vm)
        if xml and self.hooks.implemented("before_device_destroy"):
            for _tag, dev in domxml.devices_xml(xml):
                self.hooks.fire("before_device_destroy", on_error=sink, vm=vm,
                                devxml=XmlPayload(dev))
        self._expected_stops.add(vm.name)
        try:
            conn.destroy(vm.name)
            self._went_down(vm, "destroyed", conn)
        finally:
            self._expected_stops.discard(vm.name)
        self._after_down(vm, xml, "destroyed")
        return vm

    def shutdown_vm(self, name: str, timeout: float = 120.0) -> str:
        """ACPI shutdown, then destroy after ``timeout``; returns how it went down."""
        from virtplane import model

        vm = self.get_vm(name)
        host, conn = self._vm_host(vm)
        xml = vm.started_xml
        sink = self._log_error(vm.id)
        self.hooks.fire("before_vm_destroy", on_error=sink, vm=vm)
        vm.status = model.VmStatus.POWERING_DOWN
        self.store.update(vm)
        self._expected_stops.add(vm.name)
        try:
            how = conn.shutdown(vm.name, timeout)
            self._went_down(vm, how, conn)
        finally:
            self._expected_stops.discard(vm.name)
        self._after_down(vm, xml, how)
        return str(how)

    def _simple(self, name: str, point: str, action: str, new_status: Any,
                need: tuple[Any, ...]) -> _model.Vm:
        from virtplane.payloads import XmlPayload

        vm = self.get_vm(name)
        if vm.status not in need:
            raise InvalidState(
                f"VM {name!r} is {vm.status.value}; {point} needs "
                + " or ".join(s.value for s in need)
            )
        host, conn = self._vm_host(vm)
        payload = XmlPayload(conn.live_xml(vm.name))
        self.hooks.fire(f"before_{point}", vm=vm, domxml=payload)
        getattr(conn, action)(vm.name)
        vm.status = new_status
        self.store.update(vm)
        self.store.add_event(vm.id, f"{point.removeprefix('vm_')}")
        self.hooks.fire(f"after_{point}", on_error=self._log_error(vm.id), vm=vm,
                        domxml=XmlPayload(conn.live_xml(vm.name)))
        return vm

    def pause_vm(self, name: str) -> _model.Vm:
        from virtplane import model

        return self._simple(name, "vm_pause", "pause", model.VmStatus.PAUSED,
                            (model.VmStatus.UP,))

    def resume_vm(self, name: str) -> _model.Vm:
        from virtplane import model

        return self._simple(name, "vm_cont", "resume", model.VmStatus.UP,
                            (model.VmStatus.PAUSED,))

    def reboot_vm(self, name: str) -> _model.Vm:
        from virtplane import model

        vm = self.get_vm(name)
        if vm.status != model.VmStatus.UP:
            raise InvalidState(f"VM {name!r} is {vm.status.value}; reboot needs Up")
        _host, conn = self._vm_host(vm)
        conn.reboot(vm.name)
        self.store.add_event(vm.id, "reboot requested")
        return vm

    def hibernate_vm(self, name: str) -> _model.Vm:
        """Save the VM's memory to a file in its state folder and stop it."""
        from virtplane import model
        from virtplane.payloads import XmlPayload

        vm = self.get_vm(name)
        if vm.status not in (model.VmStatus.UP, model.VmStatus.PAUSED):
            raise InvalidState(f"VM {name!r} is {vm.status.value}; hibernate needs Up or Paused")
        _host, conn = self._vm_host(vm)
        payload = XmlPayload(conn.live_xml(vm.name))
        self.hooks.fire("before_vm_hibernate", vm=vm, domxml=payload)
        path = self._state_path.parent / "saved" / f"{vm.id}.save"
        path.parent.mkdir(parents=True, exist_ok=True)
        vm.status = model.VmStatus.SAVING_STATE
        self.store.update(vm)
        self._expected_stops.add(vm.name)
        try:
            conn.save(vm.name, str(path))
        except HypervisorError:
            vm.status = model.VmStatus.UP
            self.store.update(vm)
            raise
        finally:
            self._expected_stops.discard(vm.name)
        vm.saved_state = str(path)
        self._went_down(vm, "hibernated", conn)
        self.hooks.fire("after_vm_hibernate", on_error=self._log_error(vm.id), vm=vm,
                        domxml=payload)
        return vm

    def restore_vm(self, name: str, host: str | None = None) -> _model.Vm:
        from virtplane import model
        from virtplane.payloads import XmlPayload

        vm = self.get_vm(name)
        if not vm.saved_state:
            raise InvalidState(f"VM {name!r} has no saved state to restore")
        h = self._pick_host(vm, host)
        conn = self.connection(h)
        payload = XmlPayload(vm.started_xml or "")
        self.hooks.fire("before_vm_dehibernate", vm=vm, domxml=payload, from_snapshot=False)
        vm.status = model.VmStatus.RESTORING_STATE
        self.store.update(vm)
        try:
            # hand libvirt an XML only when a hook changed it (the saved image has its own)
            changed = payload.xml if payload.xml != (vm.started_xml or "") else None
            live = conn.restore(vm.name, vm.saved_state, changed)
        except HypervisorError:
            vm.status = model.VmStatus.DOWN
            self.store.update(vm)
            raise
        os.unlink(vm.saved_state)
        vm.saved_state = None
        vm.status = model.VmStatus.UP
        vm.host_id = h.id
        vm.started_xml = live
        self.store.update(vm)
        self.store.add_event(vm.id, "restored")
        self.hooks.fire("after_vm_dehibernate", on_error=self._log_error(vm.id), vm=vm,
                        domxml=XmlPayload(live), from_snapshot=False)
        return vm

    def snapshot_vm(self, name: str, snapshot: str, description: str = "",
                    with_memory: bool = False) -> _model.Snapshot:
        """Take a snapshot: a new qcow2 leaf on each managed disk (see docs/lifecycle.md).

        A running VM is switched onto the new leaves atomically, and its memory
        is saved too with ``with_memory`` (where the architecture allows it).
        """
        from virtplane import _snapshots

        return _snapshots.take(self, name, snapshot, description, with_memory)

    def revert_vm(self, name: str, snapshot: str, host: str | None = None) -> _model.Vm:
        """Revert a Down VM's disks (and memory, if saved) to a snapshot.

        Snapshots taken after it are dropped. With memory the VM comes back Up.
        """
        from virtplane import _snapshots

        return _snapshots.revert(self, name, snapshot, host)

    def delete_snapshot(self, name: str, snapshot: str) -> None:
        """Delete a snapshot of a Down VM, merging its layer into the one below."""
        from virtplane import _snapshots

        _snapshots.delete(self, name, snapshot)

    def list_snapshots(self, name: str) -> list[_model.Snapshot]:
        from virtplane import model

        vm = self.get_vm(name)
        return [s for s in self.store.list(model.Snapshot) if s.vm_id == vm.id]

    def vm_stats(self, name: str) -> dict[str, Any]:
        """Stats of one VM (from the host's bulk stats)."""
        from virtplane.payloads import JsonPayload

        vm = self.get_vm(name)
        host, conn = self._vm_host(vm)
        self.hooks.fire("before_get_vm_stats", vm=vm, payload=JsonPayload({"vm": vm.id}))
        stats = [s for s in conn.all_vm_stats() if s.get("name") == vm.name]
        if not stats:
            raise NotFound(f"host {host.name!r} reports no stats for VM {name!r}")
        payload = JsonPayload(stats[0])
        self.hooks.fire("after_get_vm_stats", on_error=self._log_error(vm.id), vm=vm,
                        payload=payload)
        result: dict[str, Any] = payload.data
        return result

    def all_vm_stats(self, host_name: str) -> list[dict[str, Any]]:
        """Bulk stats of every VM on a host: one hypervisor call, never one per VM."""
        from virtplane import model
        from virtplane.payloads import JsonPayload

        host = self.store.find(model.Host, host_name)
        self.hooks.fire("before_get_all_vm_stats", host=host, payload=JsonPayload({"host": host.id}))
        payload = JsonPayload(self.connection(host).all_vm_stats())
        self.hooks.fire("after_get_all_vm_stats", on_error=self._log_error(host.id),
                        host=host, payload=payload)
        result: list[dict[str, Any]] = payload.data
        return result

    def remove_vm(self, name: str) -> None:
        """Remove a Down VM and the disk images made for it; named (standalone) disks
        it used are kept, as floating disks."""
        from virtplane import model

        vm = self.get_vm(name)
        if vm.status != model.VmStatus.DOWN:
            raise InvalidState(f"VM {name!r} is {vm.status.value}; stop it before removing it")
        from virtplane import _storage

        images = [i for i in (self.store.get(model.Image, d.image_id)
                              for d in vm.spec.disks if d.image_id) if not i.alias]
        _storage.drop(self, images, [(model.Snapshot, s.id) for s in self.list_snapshots(name)]
                      + [(model.Vm, vm.id)])

    # ------------------------------------------------------------ migration

    def migrate_vm(
        self, name: str, dest_host: str, *, bandwidth_mib: int | None = None,
        max_downtime_ms: int | None = None, unsafe: bool = False,
        migration_uri: str | None = "tcp://127.0.0.1", progress: Any = None,
        cancel: Any = None,
    ) -> _model.Vm:
        """Live-migrate a running VM to another host of its cluster.

        Fires ``before_vm_migrate_source``/``_destination`` (and the device
        forms when implemented), then ``after_*`` on success. The VM's host
        changes in the store only when the hypervisor reports success; a
        failed or cancelled migration leaves it Up on its source.
        """
        from virtplane import domxml, model
        from virtplane.payloads import XmlPayload

        vm = self.get_vm(name)
        if vm.status != model.VmStatus.UP:
            raise InvalidState(f"VM {name!r} is {vm.status.value}; migration needs Up")
        src, conn = self._vm_host(vm)
        dst = self.store.find(model.Host, dest_host)
        if dst.id == src.id:
            raise InvalidInput(f"VM {name!r} already runs on {dst.name!r}")
        if dst.cluster_id != vm.cluster_id:
            raise InvalidInput(
                f"host {dst.name!r} is not in the VM's cluster; migration stays inside a cluster"
            )
        if dst.driver != src.driver:
            raise InvalidInput(f"cannot migrate from a {src.driver} host to a {dst.driver} host")
        cl = self._cluster(vm)
        if not self.arch_features(cl.architecture, cl.compat_version).get(
                "live_migration", False):
            raise InvalidInput(f"live migration is not supported on {cl.architecture} at "
                               f"compatibility {cl.compat_version}")
        payload = self._payload(conn, conn.live_xml(vm.name))
        self.hooks.fire("before_vm_migrate_source", vm=vm, domxml=payload, destination=dst.uri)
        devices = domxml.devices_xml(payload.xml)
        if self.hooks.implemented("before_device_migrate_source"):
            for _tag, dev in devices:
                self.hooks.fire("before_device_migrate_source", vm=vm, devxml=XmlPayload(dev))
        self.hooks.fire("before_vm_migrate_destination", vm=vm, domxml=payload, source=src.uri)
        if self.hooks.implemented("before_device_migrate_destination"):
            for _tag, dev in devices:
                self.hooks.fire("before_device_migrate_destination", vm=vm,
                                devxml=XmlPayload(dev))
        vm.status = model.VmStatus.MIGRATION_SOURCE
        self.store.update(vm)
        self.store.add_event(vm.id, f"migrating to {dst.name}")
        self._expected_stops.add(vm.name)
        try:
            conn.migrate(vm.name, dst.uri, migration_uri=migration_uri,
                         bandwidth_mib=bandwidth_mib, max_downtime_ms=max_downtime_ms,
                         unsafe=unsafe, progress=progress, cancel=cancel)
        except HypervisorError as exc:
            status, _ = conn.state(vm.name)
            vm.status = model.VmStatus(status) if status != "Down" else model.VmStatus.UP
            vm.status_reason = str(exc)
            self.store.update(vm)
            self.store.add_event(vm.id, f"migration to {dst.name} failed: {exc}", level="error")
            raise
        finally:
            self._expected_stops.discard(vm.name)
        dconn = self.connection(dst)
        vm.host_id = dst.id
        vm.status = model.VmStatus.UP
        vm.status_reason = ""
        vm.started_xml = dconn.live_xml(vm.name)
        self.store.update(vm)
        self.store.add_event(vm.id, f"migrated from {src.name} to {dst.name}")
        sink = self._log_error(vm.id)
        live = self._payload(dconn, vm.started_xml)
        self.hooks.fire("after_vm_migrate_source", on_error=sink, vm=vm, domxml=live,
                        destination=dst.uri)
        self.hooks.fire("after_vm_migrate_destination", on_error=sink, vm=vm, domxml=live,
                        source=src.uri)
        if self.hooks.implemented("after_device_migrate_source") or self.hooks.implemented(
                "after_device_migrate_destination"):
            for _tag, dev in domxml.devices_xml(vm.started_xml):
                self.hooks.fire("after_device_migrate_source", on_error=sink, vm=vm,
                                devxml=XmlPayload(dev))
                self.hooks.fire("after_device_migrate_destination", on_error=sink, vm=vm,
                                devxml=XmlPayload(dev))
        return vm

    # ------------------------------------------------------------ devices

    def _device_op(self, vm: _model.Vm, kind: str, plug: bool, dev_xml: str,
                   apply: Any, on_success: Any) -> None:
        """Run a hot(un)plug with its hooks: before_*, the driver call, then after_* or *_fail."""
        from virtplane.payloads import XmlPayload

        point = f"{kind}_hot{'plug' if plug else 'unplug'}"
        payload = XmlPayload(dev_xml)
        self.hooks.fire(f"before_{point}", vm=vm, devxml=payload)
        sink = self._log_error(vm.id)
        try:
            apply(payload.xml)
        except HypervisorError as exc:
            self.store.add_event(vm.id, f"{point} failed: {exc}", level="error")
            self.hooks.fire(f"after_{point}_fail", on_error=sink, vm=vm, devxml=payload,
                            error=str(exc))
            raise
        on_success()
        self.store.add_event(vm.id, f"{point}: {kind} plugged" if plug
                             else f"{point}: {kind} unplugged")
        self.hooks.fire(f"after_{point}", on_error=sink, vm=vm, devxml=payload)

    def _running(self, name: str) -> tuple[_model.Vm, Any]:
        from virtplane import model

        vm = self.get_vm(name)
        if vm.status not in (model.VmStatus.UP, model.VmStatus.PAUSED):
            raise InvalidState(f"VM {name!r} is {vm.status.value}; hotplug needs Up or Paused")
        _host, conn = self._vm_host(vm)
        return vm, conn

    @staticmethod
    def _payload(conn: Any, text: str) -> Any:
        """The domain payload hooks get: libvirt XML, or the hypervisor's own config."""
        from virtplane.payloads import ConfigPayload, XmlPayload

        fmt = getattr(conn, "config_format", None)
        if fmt is None:
            return XmlPayload(text)
        return ConfigPayload(conn.parse_config(text), fmt, conn.render_config,
                             conn.parse_config)

    def _alias_xml(self, conn: Any, vm: _model.Vm, tag: str, name: str) -> str:
        import xmltodict

        from virtplane import domxml

        for dev_tag, dev in domxml.devices_xml(conn.live_xml(vm.name)):
            if dev_tag == tag and f"ua-{name}" in dev:
                return dev
        if getattr(conn, "config_format", None) is not None and tag == "interface":
            # no live device XML on this hypervisor: the device as the spec renders it
            for nic in vm.spec.nics:
                if nic.name == name:
                    return str(xmltodict.unparse({"interface": domxml.nic_element(nic)},
                                                 full_document=False))
        raise InvalidInput(f"VM {vm.name!r} has no {tag} named {name!r} plugged")

    def hotplug_nic(self, name: str, nic: _model.NicSpec) -> _model.Vm:
        """Plug a NIC into a running VM (``before/after_nic_hotplug``, ``after_nic_hotplug_fail``)."""
        import xmltodict

        from virtplane import domxml

        vm, conn = self._running(name)
        if any(n.name == nic.name for n in vm.spec.nics):
            raise InvalidInput(f"VM {name!r} already has a NIC named {nic.name!r}")
        self.validate_vm_spec(_with(vm.spec, nics=[*vm.spec.nics, nic]),
                              self._cluster(vm))
        xml = xmltodict.unparse({"interface": domxml.nic_element(nic)}, full_document=False)

        def done() -> None:
            vm.spec.nics.append(nic)
            self.store.update(vm)

        self._device_op(vm, "nic", True, xml, lambda x: conn.attach_device(vm.name, x), done)
        return vm

    def hotunplug_nic(self, name: str, nic_name: str) -> _model.Vm:
        vm, conn = self._running(name)
        xml = self._alias_xml(conn, vm, "interface", nic_name)

        def done() -> None:
            vm.spec.nics = [n for n in vm.spec.nics if n.name != nic_name]
            self.store.update(vm)

        self._device_op(vm, "nic", False, xml, lambda x: conn.detach_device(vm.name, x), done)
        return vm

    def hotplug_disk(self, name: str, disk: _model.DiskSpec) -> _model.Vm:
        """Plug a disk (a new volume on its storage domain, or a path) into a running VM."""
        import xmltodict

        from virtplane import domxml, osrules

        vm, conn = self._running(name)
        if any(d.name == disk.name for d in vm.spec.disks):
            raise InvalidInput(f"VM {name!r} already has a disk named {disk.name!r}")
        cl = self._cluster(vm)
        arch = self.driver("architecture", cl.architecture)
        refusal = arch.disk_hotplug_refusal(disk.interface)
        if refusal:
            raise InvalidInput(refusal)
        os_name = self.os_name(vm.spec, cl)
        hot = osrules.hotpluggable_disk_interfaces(self.osinfo, os_name, cl.compat_version,
                                                   arch.chipset(vm.spec))
        if disk.interface not in hot:
            raise InvalidInput(f"disk interface {disk.interface!r} cannot be hot-plugged on "
                               f"{os_name} ({cl.architecture}); hot-pluggable: "
                               f"{', '.join(hot) or 'none'}")
        self.validate_vm_spec(_with(vm.spec, disks=[*vm.spec.disks, disk]), self._cluster(vm))
        used = {t for t in domxml.disk_targets(conn.live_xml(vm.name))}
        index = next(i for i in range(26) if domxml.target_name(disk, i) not in used)
        made = self._new_disk(vm.id, disk)
        elem = domxml.disk_element(disk, index, self._disk_source(disk))
        elem["alias"] = {"@name": "ua-" + disk.name}
        xml = xmltodict.unparse({"disk": elem}, full_document=False)

        def done() -> None:
            vm.spec.disks.append(disk)
            self.store.update(vm)

        try:
            self._device_op(vm, "disk", True, xml, lambda x: conn.attach_device(vm.name, x), done)
        except (HookError, HypervisorError):
            if made is not None:
                from virtplane import _storage

                _storage.drop(self, [made], [])
            raise
        return vm

    def hotunplug_disk(self, name: str, disk_name: str) -> _model.Vm:
        """Unplug a disk; its image stays (remove it with the VM or reattach it)."""
        vm, conn = self._running(name)
        xml = self._alias_xml(conn, vm, "disk", disk_name)

        def done() -> None:
            vm.spec.disks = [d for d in vm.spec.disks if d.name != disk_name]
            self.store.update(vm)

        self._device_op(vm, "disk", False, xml, lambda x: conn.detach_device(vm.name, x), done)
        return vm

    def _update_device(self, vm: _model.Vm, conn: Any, xml: str) -> str:
        """Apply a live device update with ``before/after_update_device(_fail)``."""
        from virtplane.payloads import XmlPayload

        payload = XmlPayload(xml)
        self.hooks.fire("before_update_device", vm=vm, devxml=payload)
        sink = self._log_error(vm.id)
        try:
            conn.update_device(vm.name, payload.xml)
        except HypervisorError as exc:
            self.hooks.fire("after_update_device_fail", on_error=sink, vm=vm, devxml=payload,
                            error=str(exc))
            raise
        self.hooks.fire("after_update_device", on_error=sink, vm=vm, devxml=payload)
        return payload.xml

    def change_cd(self, name: str, path: str | None) -> _model.Vm:
        """Insert media into the VM's CD drive (``None`` ejects); live when the VM runs.

        ``path`` is a file or ``iso:DOMAIN/NAME`` (an ISO on an iso domain)."""
        import xmltodict

        from virtplane import domxml, model

        vm = self.get_vm(name)
        if vm.spec.cd is None:
            raise InvalidInput(f"VM {name!r} has no CD drive (give it one when creating it)")
        if path is not None:
            from virtplane import _disks

            path = _disks.media_path(self, path)
        if path is not None and not os.path.exists(path):
            raise InvalidInput(f"CD image {path!r} does not exist")
        if vm.status in (model.VmStatus.UP, model.VmStatus.PAUSED):
            _host, conn = self._vm_host(vm)
            cdroms = [dev for tag, dev in domxml.devices_xml(conn.live_xml(vm.name))
                      if tag == "disk" and "device=\"cdrom\"" in dev.replace("'", '"')]
            if not cdroms:
                raise InvalidState(f"VM {name!r} runs without a CD drive")
            elem = dict(xmltodict.parse(cdroms[0])["disk"])
            if path is None:
                elem.pop("source", None)
            else:
                elem["source"] = {"@file": path}
            self._update_device(vm, conn, xmltodict.unparse({"disk": elem},
                                                            full_document=False))
        vm.spec.cd.path = path
        self.store.update(vm)
        self.store.add_event(vm.id, f"CD {'ejected' if path is None else 'changed to ' + path}")
        return vm

    def set_ticket(self, name: str, password: str, expiry_seconds: int = 120) -> _model.Vm:
        """Set the console (VNC/SPICE) password, valid for ``expiry_seconds``.

        Fires ``before/after_vm_set_ticket`` with the protocol and expiry, never the
        password; the event log does not record it either.
        """
        import datetime

        import xmltodict

        from virtplane import domxml, model
        from virtplane.payloads import XmlPayload

        vm = self.get_vm(name)
        if vm.status not in (model.VmStatus.UP, model.VmStatus.PAUSED):
            raise InvalidState(f"VM {name!r} is {vm.status.value}; a ticket needs a running VM")
        if expiry_seconds <= 0:
            raise InvalidInput(f"expiry_seconds must be positive (got {expiry_seconds})")
        _host, conn = self._vm_host(vm)
        graphics = [dev for tag, dev in domxml.devices_xml(conn.live_xml(vm.name))
                    if tag == "graphics"]
        if not graphics:
            raise InvalidState(f"VM {name!r} has no graphical console")
        elem = dict(xmltodict.parse(graphics[0])["graphics"])
        protocol = elem.get("@type", "vnc")
        if protocol == "vnc" and len(password) > 8:
            raise InvalidInput(f"a VNC password has at most 8 characters (got {len(password)}); "
                               "SPICE allows longer ones")
        until = (datetime.datetime.now(datetime.UTC)
                 + datetime.timedelta(seconds=expiry_seconds))
        elem["@passwd"] = password
        elem["@passwdValidTo"] = until.strftime("%Y-%m-%dT%H:%M:%S")
        params = {"protocol": protocol, "expiry_seconds": expiry_seconds}
        sink = self._log_error(vm.id)
        self.hooks.fire("before_vm_set_ticket", on_error=sink, vm=vm,
                        domxml=XmlPayload(vm.started_xml or ""), params=params)
        conn.update_device(vm.name, xmltodict.unparse({"graphics": elem}, full_document=False))
        self.store.add_event(vm.id, f"{protocol} ticket set, valid {expiry_seconds} s")
        self.hooks.fire("after_vm_set_ticket", on_error=sink, vm=vm,
                        domxml=XmlPayload(vm.started_xml or ""), params=params)
        return vm

    def _cluster(self, vm: _model.Vm) -> _model.Cluster:
        from virtplane import model

        return self.store.get(model.Cluster, vm.cluster_id)

    def watch_events(self, host_name: str | None = None) -> None:
        """Subscribe to the hypervisor's lifecycle events (all hosts, or one).

        From then on, a VM that stops without virtplane asking (QEMU killed,
        guest crashed, powered off from inside) goes Down with the
        hypervisor's reason and ``after_vm_destroy`` fires, on the event
        thread. Hosts whose driver has no events are left to
        :meth:`refresh_host`.
        """
        from virtplane import model

        hosts = ([self.store.find(model.Host, host_name)] if host_name
                 else self.store.list(model.Host))
        for host in hosts:
            conn = self.connection(host)
            if host.id in self._watching or not hasattr(conn, "watch"):
                continue
            conn.watch(lambda name, reason, h=host: self._on_stopped(h, name, reason))
            self._watching.add(host.id)

    def _on_stopped(self, host: _model.Host, name: str, reason: str) -> None:
        from virtplane import model

        if name in self._expected_stops or reason in ("migrated", "saved", "from snapshot"):
            return  # virtplane's own operation; it updates the store itself
        try:
            vm = self.store.find(model.Vm, name)
        except NotFound:
            return  # not a virtplane VM
        if vm.host_id != host.id or vm.status == model.VmStatus.DOWN:
            return
        why = "crashed" if reason in ("crashed", "failed", "destroyed") else reason
        why = f"{why}: stopped on its own ({reason})"
        xml = vm.started_xml
        self._went_down(vm, why, None)
        self._after_down(vm, xml, why)

    # ------------------------------------------------------------ hooks

    def describe_hooks(self) -> list[dict[str, Any]]:
        """Every hook point with its in-process implementations and installed scripts."""
        import inspect

        from virtplane import hookspecs

        out = []
        for point, spec in vars(hookspecs).items():
            if not (inspect.isfunction(spec) and hasattr(spec, "virtplane_spec")):
                continue
            impls = []
            for impl in self.hooks._impls(point):
                entry: dict[str, Any] = {"plugin": impl.plugin_name}
                describe = getattr(impl.plugin, "describe_hook_point", None)
                if describe is not None:
                    entry["scripts"] = describe(point)
                impls.append(entry)
            out.append({"point": point, "fails_operation": fails_operation(point),
                        "implementations": impls})
        return out

    def dry_run_hook(self, point: str, vm_name: str) -> list[dict[str, Any]]:
        """Run a point's implementations on a VM's XML without doing the operation.

        Returns one step per in-process implementation or script: who, the
        unified diff of what it changed, and its error if it failed. Nothing
        is started and nothing is stored.
        """
        import difflib
        import inspect

        from virtplane import domxml, hookspecs, model
        from virtplane.payloads import XmlPayload

        spec = getattr(hookspecs, point, None)
        if not (inspect.isfunction(spec) and hasattr(spec, "virtplane_spec")):
            raise InvalidInput(f"no hook point named {point!r}; see `virtplane hooks list`")
        args = set(inspect.signature(spec).parameters)
        if not args & {"domxml", "devxml"}:
            raise InvalidInput(f"{point} carries no XML; dry runs work on XML points "
                               "(before_vm_start, before_device_create ...)")
        vm = self.get_vm(vm_name)
        if vm.status != model.VmStatus.DOWN and vm.host_id:
            host = self.store.get(model.Host, vm.host_id)
            xml = self.connection(host).live_xml(vm.name)
        else:
            xml = self.domain_xml(vm, self._pick_host(vm, None))
        payloads = ([XmlPayload(d) for _t, d in domxml.devices_xml(xml)] if "devxml" in args
                    else [XmlPayload(xml)])
        extras = {"from_snapshot": False, "destination": "", "source": "", "vcpus":
                  vm.spec.vcpus, "params": {}, "error": "", "host": None}
        steps: list[dict[str, Any]] = []
        for payload in payloads:
            kwargs = {"vm": vm, ("devxml" if "devxml" in args else "domxml"): payload,
                      **{k: v for k, v in extras.items() if k in args}}
            for impl in self.hooks._impls(point):
                runner = getattr(impl.plugin, "run", None)
                if runner is not None and getattr(impl.plugin, "describe_hook_point", None):
                    result = runner(point, dry_run=True, **kwargs)
                    for res in result.scripts if result else []:
                        steps.append({"by": f"{impl.plugin_name}:{res.path}", "diff": res.diff,
                                      "rc": res.rc, "error": res.stderr if res.rc else ""})
                    if result:
                        payload.xml = result.payload
                    continue
                before = payload.xml
                error = ""
                try:
                    impl.function(*[kwargs[a] for a in impl.argnames])
                except Exception as exc:  # noqa: BLE001 - a dry run reports, never raises
                    error = f"{type(exc).__name__}: {exc}"
                steps.append({"by": impl.plugin_name, "rc": 1 if error else 0, "error": error,
                              "diff": list(difflib.unified_diff(
                                  before.splitlines(), payload.xml.splitlines(), "before",
                                  impl.plugin_name, lineterm=""))})
        return steps

    def refresh_host(self, host_name: str) -> list[_model.Vm]:
        """Reconcile the store with the host: VMs that died on their own go Down.

        A VM the store has as running but the hypervisor reports Down (QEMU
        killed, crashed) is set Down with the hypervisor's reason, and
        ``after_vm_destroy`` fires. Returns the VMs that changed.
        """
        from virtplane import model

        host = self.store.find(model.Host, host_name)
        conn = self.connection(host)
        changed = []
        for vm in self.store.list(model.Vm):
            if vm.host_id != host.id or vm.status == model.VmStatus.DOWN:
                continue
            status, reason = conn.state(vm.name)
            if status == "Down":
                why = f"crashed: {reason}" if reason else "crashed"
                xml = vm.started_xml
                self._went_down(vm, why, conn)
                self._after_down(vm, xml, why)
                changed.append(vm)
            elif status != vm.status.value:
                vm.status = model.VmStatus(status)
                self.store.update(vm)
                changed.append(vm)
        return changed

    def events(self, name: str) -> list[tuple[float, str, str]]:
        return self.store.events(self.get_vm(name).id)

    def loaded(self, kind: str) -> list[str]:
        """Names of loaded plugins of a kind."""
        return sorted(r.name for r in self.plugins.records.values()
                      if kind in r.entries and r.status == LOADED)


def _with(spec: Any, **changes: Any) -> Any:
    import attrs

    return attrs.evolve(spec, **changes)
