"""Data centers and clusters."""

from __future__ import annotations

from virtplane import model
from virtplane.errors import InvalidInput, InvalidState
from virtplane.names import check_name
from virtplane.services.context import Context


def compat_key(version: str) -> tuple[int, ...]:
    """A compatibility version as numbers, for ordering (``4.10`` after ``4.9``)."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        raise InvalidInput(f"compatibility version {version!r} is not MAJOR.MINOR "
                           "(e.g. 4.8)") from None


def check_description(what: str, text: str) -> None:
    """Refuse a data center's or cluster's description that is not text, is longer
    than :data:`~virtplane.model.MAX_DESCRIPTION` characters or holds a control
    character other than tab and newline (descriptions are printed on terminals)."""
    allowed = (f"a {what} description is text of at most {model.MAX_DESCRIPTION} "
               "characters, without control characters other than tab and newline")
    if not isinstance(text, str):
        raise InvalidInput(f"{what} description must be text, not {type(text).__name__}; "
                           f"{allowed}")
    if len(text) > model.MAX_DESCRIPTION:
        raise InvalidInput(f"{what} description is {len(text)} characters long; {allowed}")
    for ch in text:
        code = ord(ch)
        if ch not in "\t\n" and (code < 0x20 or 0x7F <= code <= 0x9F):
            raise InvalidInput(f"{what} description contains a control character "
                               f"U+{code:04X}; {allowed}")


class DataCenters:
    """Data centers: the top of the object tree.

    A data center's ``compat_version`` is oVirt's data center compatibility level: one
    of the versions the loaded architectures know (:meth:`supported_versions`). The
    core reads the clusters' own versions, never the data center's; as in oVirt it is
    only ever raised and kept at most its clusters' (:meth:`update`, which follows
    :meth:`check_new_version` and :meth:`lowest_cluster_version`), and
    :meth:`Clusters.add` refuses a cluster older than it (:meth:`check_cluster_version`).
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def supported_versions(self) -> list[str]:
        """The compatibility versions any loaded architecture knows, oldest first
        (:data:`virtplane.services.arch.KNOWN_COMPAT` when none is loaded)."""
        from virtplane.services.arch import KNOWN_COMPAT, compat_versions

        found: set[str] = set()
        for arch in self.ctx.loaded("architecture"):
            found.update(compat_versions(self.ctx.drivers.architecture(arch)))
        return sorted(found or KNOWN_COMPAT, key=_sort_key)

    def check_version(self, version: str) -> None:
        """Refuse a data center compatibility version no loaded architecture knows."""
        known = self.supported_versions()
        if version not in known:
            raise InvalidInput(f"data center compatibility version {version!r} is not "
                               f"supported; supported: {', '.join(known)}")

    def lowest_cluster_version(self, dc: model.DataCenter) -> tuple[str, str] | None:
        """(cluster name, version) of the data center's oldest cluster; None: no cluster."""
        found = [(c.name, c.compat_version) for c in self.ctx.store.list(model.Cluster)
                 if c.datacenter_id == dc.id]
        return min(found, key=lambda pair: _sort_key(pair[1])) if found else None

    def check_new_version(self, dc: model.DataCenter, version: str) -> None:
        """Refuse moving ``dc`` to ``version``: one no architecture knows (InvalidInput),
        one below its current version (InvalidState: a data center's version can only be
        raised) or one newer than its oldest cluster (InvalidState), as oVirt refuses them."""
        self.check_version(version)
        lowest = self.lowest_cluster_version(dc)
        if _sort_key(version) < _sort_key(dc.compat_version):
            top = _sort_key(lowest[1]) if lowest is not None else (1 << 30,)
            allowed = [v for v in self.supported_versions()
                       if _sort_key(dc.compat_version) <= _sort_key(v) <= top]
            raise InvalidState(
                f"data center {dc.name!r} cannot move to compatibility version {version}: "
                f"it is at {dc.compat_version}, and a data center's version can only be "
                f"raised, never lowered; allowed: {', '.join(allowed) or dc.compat_version}")
        if lowest is not None and _sort_key(version) > _sort_key(lowest[1]):
            raise InvalidState(
                f"data center {dc.name!r} cannot move to compatibility version {version}: "
                f"its cluster {lowest[0]!r} is at {lowest[1]}, and a data center is never "
                "newer than its clusters; raise the clusters' versions first")

    @staticmethod
    def check_cluster_version(dc: model.DataCenter, cluster: str, version: str) -> None:
        """Refuse a cluster (named ``cluster``) at ``version`` older than its data center
        ``dc`` (InvalidState), as oVirt refuses adding or lowering one."""
        if _sort_key(version) < _sort_key(dc.compat_version):
            raise InvalidState(
                f"cluster {cluster!r} cannot be at compatibility version {version}: its data "
                f"center {dc.name!r} is at {dc.compat_version}, and a cluster is never older "
                "than its data center (whose version is never lowered); use a version "
                f"from {dc.compat_version} up")

    def add(self, name: str, description: str = "",
            compat_version: str = model.DEFAULT_COMPAT) -> model.DataCenter:
        """Add a data center at a compatibility version (:meth:`check_version`)."""
        check_name("data center", name)
        check_description("data center", description)
        self.check_version(compat_version)
        dc = model.DataCenter(name=name, description=description,
                              compat_version=compat_version)
        self.ctx.store.require_free(model.DataCenter, name, "data center")
        self.ctx.store.add(dc)
        return dc

    def update(self, name: str, *, new_name: str | None = None, compat: str | None = None,
               description: str | None = None) -> model.DataCenter:
        """Rename a data center (``name``: its name or id), change its description or its
        compatibility version, checked and written in one step: the checks run inside the
        store's ``modify`` (compare-and-set) on the current record, so a cluster added or
        a name taken meanwhile is seen. ``new_name`` follows the naming rule and must be
        free; ``compat`` passes :meth:`check_new_version` (known, never lowered, never
        above the oldest cluster). None (or the current value) leaves a field as it is;
        when a check refuses, nothing changes."""
        dc = self.get(name)
        if new_name is None and compat is None and description is None:
            return dc
        if description is not None:
            check_description("data center", description)

        def apply(current: model.DataCenter) -> None:
            rename = _checked_rename(self.ctx, model.DataCenter, "data center",
                                     current.name, new_name)
            if compat is not None and compat != current.compat_version:
                self.check_new_version(current, compat)  # named as it is now
                current.compat_version = compat
            if rename is not None:
                current.name = rename
            if description is not None:
                current.description = description

        return self.ctx.store.modify(model.DataCenter, dc.id, apply)

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


def _checked_rename(ctx: Context, cls: type[model.DataCenter] | type[model.Cluster],
                    what: str, current: str, new_name: str | None) -> str | None:
    """The new name of a data center or cluster being updated, checked (a valid name,
    free for its kind); None when it keeps its name."""
    if new_name is None or new_name == current:
        return None
    check_name(what, new_name)
    ctx.store.require_free(cls, new_name, what)
    return new_name


def _sort_key(version: str) -> tuple[int, ...]:
    """:func:`compat_key`, with versions a driver spells oddly last instead of refused."""
    try:
        return compat_key(version)
    except InvalidInput:
        return (1 << 30,)


class Clusters:
    """Clusters: hosts of one architecture and CPU model, and the VMs that run on them.

    :meth:`add` and :meth:`update` keep a cluster's version one its architecture knows
    and, as in oVirt, never older than its data center's."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def add(self, name: str, datacenter: str, architecture: str = "x86_64",
            cpu_model: str | None = None,
            compat_version: str = model.DEFAULT_COMPAT, *,
            description: str = "") -> model.Cluster:
        """Add a cluster; its architecture must have a loaded architecture driver, and
        its compatibility version be one the architecture knows (InvalidInput) and, as
        in oVirt, never older than its data center's
        (:meth:`DataCenters.check_cluster_version`: InvalidState); ``description``
        passes :func:`check_description` (InvalidInput)."""
        check_name("cluster", name)
        check_description("cluster", description)
        dc = self.ctx.store.find(model.DataCenter, datacenter)
        arch = self.ctx.drivers.architecture(architecture)
        from virtplane.services.arch import check_compat

        check_compat(architecture, arch, compat_version)
        DataCenters.check_cluster_version(dc, name, compat_version)
        if cpu_model is not None and cpu_model not in arch.cpu_models():
            raise InvalidInput(
                f"CPU model {cpu_model!r} is not supported on {architecture}; allowed: "
                + ", ".join(arch.cpu_models()))
        self.ctx.store.require_free(model.Cluster, name, "cluster")
        cl = model.Cluster(name=name, datacenter_id=dc.id, architecture=architecture,
                           cpu_model=cpu_model, compat_version=compat_version,
                           description=description)
        self.ctx.store.add(cl)
        return cl

    def update(self, name: str, *, new_name: str | None = None, compat: str | None = None,
               cpu_model: str | None = None,
               fencing_enabled: bool | None = None,
               description: str | None = None) -> model.Cluster:
        """Rename a cluster (``name``: its name or id), move its compatibility version,
        change its CPU model or description or switch its fencing, checked and written in one step: the
        checks run inside the store's ``modify`` (compare-and-set) on the current record
        (and its data center as it is then), and only the fields given are written, so a
        change made meanwhile by someone else is neither missed nor overwritten.

        ``new_name`` follows the naming rule and must be free (InvalidInput,
        AlreadyExists); ``compat`` is one the cluster's architecture knows (InvalidInput)
        and, as in oVirt, never older than its data center's
        (:meth:`DataCenters.check_cluster_version`: InvalidState), so it may be lowered
        down to the data center's version; ``cpu_model`` is one the architecture lists
        (InvalidInput; ``""`` clears it) and changes only while none of the cluster's VMs
        runs (InvalidState); ``description`` passes :func:`check_description`
        (InvalidInput; ``""`` clears it). None (or the current value) leaves a field as
        it is; when a check refuses, nothing changes. The cluster's comment is not in
        the model (the REST API keeps it itself)."""
        cl = self.get(name)
        if new_name is None and compat is None and cpu_model is None \
                and fencing_enabled is None and description is None:
            return cl
        if description is not None:
            check_description("cluster", description)
        from virtplane.services.arch import check_compat

        def apply(current: model.Cluster) -> None:
            rename = _checked_rename(self.ctx, model.Cluster, "cluster", current.name,
                                     new_name)
            arch = self.ctx.drivers.architecture(current.architecture)
            if compat is not None and compat != current.compat_version:
                check_compat(current.architecture, arch, compat)
                dc = self.ctx.store.get(model.DataCenter, current.datacenter_id)
                DataCenters.check_cluster_version(dc, current.name, compat)  # named as now
                current.compat_version = compat
            wanted = cpu_model or None
            if cpu_model is not None and wanted != current.cpu_model:
                if wanted is not None and wanted not in arch.cpu_models():
                    raise InvalidInput(
                        f"CPU model {wanted!r} is not supported on {current.architecture}; "
                        "allowed: " + ", ".join(arch.cpu_models()))
                running = [v.name for v in self.ctx.store.list(model.Vm)
                           if v.cluster_id == current.id and v.status != model.VmStatus.DOWN]
                if running:
                    raise InvalidState(f"cluster {current.name!r} runs VMs "
                                       f"({', '.join(running)}); stop them before changing "
                                       "its CPU type")
                current.cpu_model = wanted
            if fencing_enabled is not None:
                current.fencing_enabled = fencing_enabled
            if description is not None:
                current.description = description
            if rename is not None:
                current.name = rename

        return self.ctx.store.modify(model.Cluster, cl.id, apply)

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
