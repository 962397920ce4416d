"""Data centers and clusters."""

from __future__ import annotations

from virtplane import model
from virtplane.errors import InvalidInput, InvalidState
from virtplane.names import check_name
from virtplane.services.context import Context


class DataCenters:
    """Data centers: the top of the object tree."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def add(self, name: str, description: str = "") -> model.DataCenter:
        check_name("data center", name)
        dc = model.DataCenter(name=name, description=description)
        self.ctx.store.require_free(model.DataCenter, name, "data center")
        self.ctx.store.add(dc)
        return dc

    def get(self, name: str) -> model.DataCenter:
        """A data center by name or id."""
        return self.ctx.store.find(model.DataCenter, name)

    def list(self) -> list[model.DataCenter]:
        return self.ctx.store.list(model.DataCenter)

    def remove(self, name: str) -> None:
        """Remove a data center that holds no cluster and no storage domain."""
        dc = self.get(name)
        inside = [f"cluster {c.name}" for c in self.ctx.store.list(model.Cluster)
                  if c.datacenter_id == dc.id]
        inside += [f"storage domain {d.name}" for d in self.ctx.store.list(model.StorageDomain)
                   if d.datacenter_id == dc.id]
        if inside:
            raise InvalidState(f"data center {name!r} still holds {', '.join(inside)}; "
                               "remove them first")
        self.ctx.store.remove(model.DataCenter, dc.id)


class Clusters:
    """Clusters: hosts of one architecture and CPU model, and the VMs that run on them."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def add(self, name: str, datacenter: str, architecture: str = "x86_64",
            cpu_model: str | None = None,
            compat_version: str = model.DEFAULT_COMPAT) -> model.Cluster:
        """Add a cluster; its architecture must have a loaded architecture driver."""
        check_name("cluster", name)
        dc = self.ctx.store.find(model.DataCenter, datacenter)
        arch = self.ctx.drivers.architecture(architecture)
        from virtplane.services.arch import check_compat

        check_compat(architecture, arch, compat_version)
        if cpu_model is not None and cpu_model not in arch.cpu_models():
            raise InvalidInput(
                f"CPU model {cpu_model!r} is not supported on {architecture}; allowed: "
                + ", ".join(arch.cpu_models()))
        self.ctx.store.require_free(model.Cluster, name, "cluster")
        cl = model.Cluster(name=name, datacenter_id=dc.id, architecture=architecture,
                           cpu_model=cpu_model, compat_version=compat_version)
        self.ctx.store.add(cl)
        return cl

    def get(self, name: str) -> model.Cluster:
        """A cluster by name or id."""
        return self.ctx.store.find(model.Cluster, name)

    def of(self, vm: model.Vm) -> model.Cluster:
        """The cluster a VM belongs to."""
        return self.ctx.store.get(model.Cluster, vm.cluster_id)

    def list(self) -> list[model.Cluster]:
        return self.ctx.store.list(model.Cluster)

    def remove(self, name: str) -> None:
        """Remove a cluster without hosts and VMs."""
        cl = self.get(name)
        inside = [f"host {h.name}" for h in self.ctx.store.list(model.Host)
                  if h.cluster_id == cl.id]
        inside += [f"VM {v.name}" for v in self.ctx.store.list(model.Vm)
                   if v.cluster_id == cl.id]
        if inside:
            raise InvalidState(f"cluster {name!r} still holds {', '.join(inside)}; "
                               "remove them first")
        self.ctx.store.remove(model.Cluster, cl.id)
