"""Hosts: added by URI, probed, prepared, put into maintenance, reported on."""

from __future__ import annotations

import builtins
from typing import Any

import attrs

from virtplane import drivers, model
from virtplane import options as _options
from virtplane.capabilities import HostCapabilities
from virtplane.errors import HostUnreachable, InvalidInput, InvalidState
from virtplane.events import Code
from virtplane.names import check_name
from virtplane.payloads import JsonPayload
from virtplane.secrets import refuse_password_in_uri
from virtplane.services._vdsm import host_caps
from virtplane.services.context import Context
from virtplane.services.storage import ADMIN_DEACTIVATED

#: how the reason of a host that cannot reach its storage begins
STORAGE_UNREACHABLE = "storage unreachable: storage domain "


class Hosts:
    """Hosts of the clusters, each reached through its hypervisor driver."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def get(self, name: str) -> model.Host:
        """A host by name or id."""
        return self.ctx.store.find(model.Host, name)

    def list(self) -> builtins.list[model.Host]:
        return self.ctx.store.list(model.Host)

    def connection(self, host: model.Host) -> drivers.HypervisorConnection:
        """The host's hypervisor connection (opened on first use)."""
        return self.ctx.connections.get(host)

    def add(self, name: str, cluster: str, uri: str, driver: str = "kvm") -> model.Host:
        """Add a host by URI; it is contacted and its capabilities recorded.

        A host that cannot run the cluster's architecture or CPU model is added
        NonOperational with the reason (as oVirt does), not refused.
        """
        check_name("host", name)
        refuse_password_in_uri(uri, "host URI", f"[plugin.{driver}] password_file or the "
                               "environment variable its password_env setting names "
                               "(docs/security.md, Secrets)")
        cl = self.ctx.store.find(model.Cluster, cluster)
        self.ctx.store.require_free(model.Host, name, "host")
        host = model.Host(name=name, cluster_id=cl.id, driver=driver, uri=uri)
        self.privileged_uri_parts(uri, driver)  # an unknown driver, a malformed URI
        conn = self.connection(host)
        try:
            payload = self.capabilities(host, conn)
        except BaseException:
            self.ctx.connections.drop(host.id)
            raise
        reason = self._unservable(cl, conn, payload)
        if reason:
            host.status, host.status_reason = model.HostStatus.NON_OPERATIONAL, reason
        host.capabilities = payload
        self.ctx.store.add(host)
        if reason:
            self.ctx.event(host.id, f"host {name} is NonOperational: {reason}",
                           code=Code.HOST_NON_OPERATIONAL)
        return host

    def privileged_uri_parts(self, uri: str, driver: str = "kvm") -> builtins.list[str]:
        """The parts of a host URI only a system administrator may give (files or
        sockets of this machine, weaker host authentication: ``?keyfile=``,
        ``?no_verify=1`` ...), as the driver declares them
        (:class:`~virtplane.drivers.SupportsUriPolicy`); [] when it declares nothing.
        The REST API refuses them to anyone but a SuperUser on System; the CLI and
        the Python API, used by whoever runs virtplane, take them.

        :raises NotFound: no such hypervisor driver.
        :raises InvalidInput: a URI the driver never opens.
        """
        factory = self.ctx.drivers.hypervisor(driver)
        if isinstance(factory, drivers.SupportsUriPolicy):
            return factory.privileged_uri_parts(uri)
        return []

    def _unservable(self, cl: model.Cluster, conn: drivers.HypervisorConnection,
                    payload: dict[str, Any]) -> str:
        """Why the host cannot serve its cluster (architecture, CPU model), "" when it
        can; adds the CPU models it serves to ``payload`` (its capabilities)."""
        caps = HostCapabilities.of(payload)
        archs = caps.guest_arches
        if archs and cl.architecture not in archs and not caps.any_guest_arch:
            return (f"host runs no {cl.architecture} guests (it offers "
                    f"{', '.join(archs)})")
        reason = ""
        if isinstance(conn, drivers.SupportsCpuModels):
            usable = conn.usable_cpu_models(cl.architecture)
            payload["usable_cpu_models"] = usable
            if cl.cpu_model and usable and cl.cpu_model not in usable:
                reason = (f"host cannot give {cl.architecture} guests the cluster's CPU "
                          f"model {cl.cpu_model}; usable here: {', '.join(usable)}")
            if not caps.any_guest_arch:
                # map the host onto the cluster CPU list: which cluster models it serves
                arch_models = self.ctx.drivers.architecture(cl.architecture).cpu_models()
                payload["cluster_cpu_models"] = [c for c in arch_models if c in usable]
        return reason

    def remove(self, name: str) -> None:
        """Forget a host that runs no VM (its connection is closed)."""
        host = self.get(name)
        running = [v.name for v in self.ctx.store.list(model.Vm) if v.host_id == host.id]
        if running:
            raise InvalidState(f"host {name!r} still runs {', '.join(running)}; migrate or "
                               "stop them first")
        self.ctx.connections.drop(host.id)
        self.ctx.store.remove(model.Host, host.id)

    def check(self, name: str) -> model.Host:
        """Contact a host and record its status: Up, or NonResponsive with the reason.

        A host in Maintenance stays there. A dropped connection (libvirtd
        restarted) is reopened on next use.
        """
        host = self.get(name)
        try:
            self.connection(host).ping()
        except HostUnreachable as exc:
            self.ctx.connections.drop(host.id)
            if host.status != model.HostStatus.MAINTENANCE:
                host.status = model.HostStatus.NON_RESPONSIVE
            host.status_reason = str(exc)
        else:
            if host.status == model.HostStatus.NON_RESPONSIVE:
                host.status = model.HostStatus.UP
                host.status_reason = ""
        self.ctx.store.update(host)
        return host

    def setup(self, name: str, **options: Any) -> builtins.list[str]:
        """Prepare a host with its driver's own setup (OVM3: roles, ownership, repository,
        server pool, VLAN bridges); returns what was done, one line per step.

        As oVirt's host deploy: the host is Installing while it runs, then Up (or
        NonOperational with the reason when it cannot serve its cluster or reach its
        data center's storage), or InstallFailed with the reason when a step fails.
        Options are checked before anything changes.
        """
        host = self.get(name)
        conn = self.connection(host)
        if not isinstance(conn, drivers.SupportsHostSetup):
            raise InvalidInput(f"the {host.driver} driver has no host setup")
        declared = _options.declared(self.ctx.drivers.hypervisor(host.driver),
                                     "VIRTPLANE_SETUP_OPTIONS")
        if declared is not None:
            parsed = _options.parse(declared, options, f"the {host.driver} host setup")
            options = {f.name: getattr(parsed, f.name) for f in attrs.fields(declared)}
        else:
            options = _options.plain(options)
        host = self._set_status(host, model.HostStatus.INSTALLING, "host setup running",
                                Code.HOST_INSTALLING, f"host {name}: setup started")
        try:
            done = conn.setup(**options)
            payload = self.capabilities(host, conn)
            reason = self._unservable(self.ctx.store.get(model.Cluster, host.cluster_id),
                                      conn, payload)
        except BaseException as exc:  # any failure, Ctrl-C too: never Installing for good
            why = str(exc) or f"interrupted ({type(exc).__name__})"
            self._set_status(self.get(name), model.HostStatus.INSTALL_FAILED, why,
                             Code.HOST_INSTALL_FAILED, f"host {name}: setup failed: {why}")
            raise
        for line in done:
            self.ctx.event(host.id, f"setup: {line}", code=Code.HOST_INSTALLING)

        def installed(h: model.Host) -> None:
            h.capabilities = payload
            h.status = model.HostStatus.NON_OPERATIONAL if reason else model.HostStatus.UP
            h.status_reason = reason

        host = self.ctx.store.modify(model.Host, host.id, installed)
        self.ctx.event(host.id, f"host {name}: setup finished"
                       + (f"; NonOperational: {reason}" if reason else "; status set to Up"),
                       code=Code.HOST_INSTALLED)
        if reason:
            self.ctx.event(host.id, f"host {name} is NonOperational: {reason}",
                           code=Code.HOST_NON_OPERATIONAL)
        else:
            self.check_storage(name)
        return done

    def _set_status(self, host: model.Host, status: model.HostStatus, reason: str,
                    code: Code, message: str) -> model.Host:
        def change(h: model.Host) -> None:
            h.status, h.status_reason = status, reason

        written = self.ctx.store.modify(model.Host, host.id, change)
        self.ctx.event(host.id, message, code=code)
        return written

    def _unreachable_storage(self, host: model.Host) -> str:
        """Why ``host`` cannot reach a data domain its data center uses, "" when it
        reaches them all.

        A domain the administrator deactivated (maintenance) or never attached does
        not count; one whose probe failed (``storage refresh``, the engine's storage
        monitoring) does: its probe runs where the hosts' storage is (a mount, a
        path, a volume server) and its reason is the host's.
        """
        cl = self.ctx.store.get(model.Cluster, host.cluster_id)
        for dom in self.ctx.store.list(model.StorageDomain):
            if dom.datacenter_id != cl.datacenter_id or \
                    dom.domain_class != model.DomainClass.DATA:
                continue
            if dom.status == model.DomainStatus.INACTIVE and \
                    dom.status_reason != ADMIN_DEACTIVATED:
                return f"{STORAGE_UNREACHABLE}{dom.name}: {dom.status_reason}"
        return ""

    def check_storage(self, name: str) -> model.Host:
        """Record whether a host reaches its data center's data domains (oVirt's
        VDS_SET_NONOPERATIONAL_DOMAIN): an Up host that cannot reach one goes
        NonOperational with the reason; a host NonOperational for that reason goes back
        Up when it can again. Other statuses (Maintenance, NonResponsive, a CPU reason
        ...) are left alone."""
        host = self.get(name)
        storage_reason = host.status_reason.startswith(STORAGE_UNREACHABLE)
        if host.status == model.HostStatus.UP:
            pass
        elif not (host.status == model.HostStatus.NON_OPERATIONAL and storage_reason):
            return host
        reason = self._unreachable_storage(host)
        if reason and reason != host.status_reason:
            return self._set_status(host, model.HostStatus.NON_OPERATIONAL, reason,
                                    Code.HOST_NON_OPERATIONAL_STORAGE,
                                    f"host {name} is NonOperational: {reason}")
        if not reason and host.status == model.HostStatus.NON_OPERATIONAL:
            return self._set_status(host, model.HostStatus.UP, "", Code.HOST_UP,
                                    f"host {name} reaches its storage again; status set "
                                    "to Up")
        return host

    def maintenance(self, name: str, on: bool = True) -> model.Host:
        """Put a host into Maintenance (no VM may run on it) or bring it back Up."""
        host = self.get(name)
        if on:
            running = [v.name for v in self.ctx.store.list(model.Vm)
                       if v.host_id == host.id and v.status != model.VmStatus.DOWN]
            if running:
                raise InvalidState(f"host {name!r} still runs {', '.join(running)}; migrate "
                                   "or stop them first")
            host.status = model.HostStatus.MAINTENANCE
            host.status_reason = "maintenance requested"
            self.ctx.store.update(host)
            return host
        host.status = model.HostStatus.UP
        host.status_reason = ""
        self.ctx.store.update(host)
        return self.check(name)

    def capabilities(self, host: model.Host,
                     conn: drivers.HypervisorConnection | None = None) -> dict[str, Any]:
        """Capabilities as the driver reports them, extended by hooks (VDSM's get_caps).

        A 2.0 driver returns :class:`~virtplane.capabilities.HostCapabilities`; a 1.x
        dict is read through :meth:`HostCapabilities.from_legacy`, so the typed
        fields (``memory_mib`` ...) are always present in what is stored. VDSM's keys
        (``cpuFlags``, ``kvmEnabled``, ``memSize`` ...: :mod:`._vdsm`) are added beside
        them before the hooks run, so VDSM-era ``after_get_caps`` scripts find them.
        """
        conn = conn or self.connection(host)
        self.ctx.hooks.fire("before_get_caps", host=host, payload=JsonPayload({"host": host.id}))
        reported: Any = conn.capabilities()
        caps = dict(reported) if not isinstance(reported, HostCapabilities) else {}
        caps.update(HostCapabilities.of(reported).to_payload())
        host_caps(caps, host.uri, host.driver)  # VDSM's keys beside virtplane's
        self.ctx.hooks.fire("extend_host_capabilities", host=host, caps=caps)
        payload = JsonPayload(caps)
        self.ctx.hooks.fire("after_get_caps", on_error=self.ctx.hook_error_sink(host.id),
                            host=host, payload=payload)
        result: dict[str, Any] = payload.data
        return result

    def setup_options(self, driver: str) -> builtins.list[dict[str, str]]:
        """What ``setup`` takes on hosts of a driver (name, type, default, help)."""
        declared = _options.declared(self.ctx.drivers.hypervisor(driver),
                                     "VIRTPLANE_SETUP_OPTIONS")
        return _options.describe(declared) if declared is not None else []

    def typed_capabilities(self, name: str) -> HostCapabilities:
        """The recorded capabilities of a host, typed."""
        return HostCapabilities.of(self.get(name).capabilities)

    def stats(self, name: str) -> dict[str, Any]:
        """Host statistics (VDSM's getStats), through ``before/after_get_stats``."""
        host = self.get(name)
        self.ctx.hooks.fire("before_get_stats", host=host,
                            payload=JsonPayload({"host": host.id}))
        payload = JsonPayload(self.connection(host).host_stats())
        self.ctx.hooks.fire("after_get_stats", on_error=self.ctx.hook_error_sink(host.id),
                            host=host, payload=payload)
        stats: dict[str, Any] = payload.data
        return stats
