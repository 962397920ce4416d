"""Storage domains: created, attached, probed, repaired, taken out of use, removed."""

from __future__ import annotations

import builtins
import logging
from typing import Any

from virtplane import drivers, model
from virtplane import options as _options
from virtplane.errors import InvalidInput, InvalidState, NotFound, VirtplaneError
from virtplane.names import check_name
from virtplane.secrets import check_connection, redact_connection
from virtplane.services.context import Context
from virtplane.services.volumes import ADMIN_DEACTIVATED as ADMIN_DEACTIVATED
from virtplane.services.volumes import Volumes, illegal_volumes, unsupported

log = logging.getLogger(__name__)

# ADMIN_DEACTIVATED, the status reason deactivate() records, is defined with
# Volumes.require_active (which tells it apart) and exported here too, where the
# engine's monitor and the hosts service import it

#: where a storage password goes instead of a domain's connection (docs/security.md)
_SECRETS_GO = ("connection.password_file (a file only root can read) or the driver's "
               "password environment variable (libsm: VIRTPLANE_LSM_PASSWORD)")


def absolute_paths(connection: dict[str, Any] | None) -> dict[str, Any]:
    """The connection with a relative local folder (``path``, as localfs takes it) made
    absolute: the domain is recorded once and used from wherever later commands run."""
    import os

    connection = dict(connection or {})
    path = connection.get("path")
    if isinstance(path, str) and path and not os.path.isabs(path):
        return {**connection, "path": os.path.abspath(path)}
    return connection


def _short(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters with "..." (a value read from storage)."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


class StorageDomains:
    """Storage domains of every type (the driver named by the domain's ``type``)."""

    def __init__(self, ctx: Context, volumes: Volumes) -> None:
        self.ctx = ctx
        self.volumes = volumes

    def get(self, name: str) -> model.StorageDomain:
        """A storage domain by name or id."""
        return self.ctx.store.find(model.StorageDomain, name)

    def list(self) -> builtins.list[model.StorageDomain]:
        return self.ctx.store.list(model.StorageDomain)

    def add(self, name: str, type: str, datacenter: str | None = None,
            connection: dict[str, Any] | None = None,
            domain_class: str = "data") -> model.StorageDomain:
        """Create a storage domain on its storage and record it.

        On failure nothing is recorded and the driver removes what it made.
        """
        check_name("storage domain", name)
        # secrets first: a secret-named key gets the message saying where secrets go,
        # rather than the declared fields' "no such option"
        check_connection(dict(connection or {}), f"storage domain {name!r}", _SECRETS_GO)
        connection = self.connection_of(type, connection or {})
        connection = absolute_paths(connection)
        try:
            klass = model.DomainClass(domain_class)
        except ValueError:
            raise InvalidInput(
                f"storage domain class {domain_class!r} is not allowed; allowed: "
                + ", ".join(c.value for c in model.DomainClass)) from None
        store = self.ctx.store
        dc_id = store.find(model.DataCenter, datacenter).id if datacenter else None
        dom = model.StorageDomain(name=name, type=type, datacenter_id=dc_id,
                                  domain_class=klass,
                                  connection=connection)
        problems = self.ctx.hooks.collect("validate_storage_domain", domain=dom)
        if problems:
            raise InvalidInput("; ".join(f"{m} [{p}]" for p, m in problems))
        drv = self.ctx.drivers.storage(type)
        store.require_free(model.StorageDomain, name, "storage domain")
        drv.connect(dom)
        try:
            drv.create_domain(dom)
        except BaseException:
            self._undo_connect(dom)
            raise
        dom.status = model.DomainStatus.ACTIVE if dc_id else model.DomainStatus.UNATTACHED
        try:
            store.add(dom)
        except BaseException:
            drv.remove_domain(dom)
            self._undo_connect(dom)
            raise
        return dom

    def _undo_connect(self, dom: model.StorageDomain) -> None:
        """Disconnect (unmount ...) a domain that could not be added, or the probe of an
        attach: its mount point is its own (named by its new id), so nothing of it stays.
        A failure here is logged: the caller must see why the domain was refused (or
        that it was attached)."""
        try:
            self._disconnect(dom)
        except VirtplaneError as exc:
            log.warning("could not disconnect the refused storage domain %r: %s",
                        dom.name, exc)

    def attach(self, name: str, type: str, connection: dict[str, Any],
               datacenter: str | None = None) -> model.StorageDomain:
        """Attach an existing domain found on its storage, importing its images.

        ``name`` may be the domain's name or uuid; the name recorded is the one on the
        storage, which is untrusted input and must pass the same rule as a new name.

        The storage is looked at through a probe connection (a mount of its own), which
        is disconnected again whatever happens: on success the domain has its own
        connection (its images are read through it); on failure nothing the probe made
        (a mount, the folders of a localfs path that did not exist) is left.
        """
        check_connection(dict(connection), f"storage domain {name!r}", _SECRETS_GO)
        connection = self.connection_of(type, connection)
        connection = absolute_paths(connection)
        store = self.ctx.store
        store.require_free(model.StorageDomain, name, "storage domain")
        drv = self.ctx.drivers.storage(type)
        if not isinstance(drv, drivers.SupportsAttach):
            raise unsupported(type, "attach existing domains", "find_domains(), read_images()")
        probe = model.StorageDomain(name=name, type=type, connection=dict(connection))
        drv.connect(probe)
        try:
            dom, images = self._found(drv, probe, name, datacenter)
        except BaseException:
            self._undo_connect(probe)
            raise
        self._undo_connect(probe)  # the domain was connected on its own (by its id)
        with store.transaction():
            store.add(dom)
            for image in images:
                store.add(image)
        return dom

    def _found(self, drv: drivers.SupportsAttach, probe: model.StorageDomain, name: str,
               datacenter: str | None
               ) -> tuple[model.StorageDomain, builtins.list[model.Image]]:
        """The domain ``name`` (name or uuid) on the storage ``probe`` is connected to,
        connected itself, and its images, checked; for :meth:`attach`."""
        store = self.ctx.store
        type, connection = probe.type, probe.connection
        domains = drv.find_domains(probe)
        found = [d for d in domains if d.get("name") == name or d.get("uuid") == name]
        if not found:
            # names from the storage (untrusted): quoted, so each stays on one line
            names = [_short(n) if isinstance(n, str) and n.isprintable() else _short(repr(n))
                     for n in (d.get("name") for d in domains)]
            raise NotFound(f"no storage domain {name!r} on that {type} storage; found: "
                           + (", ".join(names) or "none"))
        md = found[0]
        where = f"the storage domain metadata of {md.get('uuid')}"
        if not isinstance(md.get("name"), str):
            raise InvalidInput(f"{where}: its name is not text; refusing it")
        check_name("storage domain", md["name"])
        store.require_free(model.StorageDomain, str(md["name"]), "storage domain")
        dc_id = store.find(model.DataCenter, datacenter).id if datacenter else None
        try:
            klass = model.DomainClass(md.get("class", "data"))
        except (ValueError, TypeError):
            raise InvalidInput(f"{where}: class {_short(repr(md.get('class')))} is not one "
                               f"of {', '.join(c.value for c in model.DomainClass)}; "
                               "refusing it") from None
        dom = model.StorageDomain(name=str(md["name"]), type=type, datacenter_id=dc_id,
                                  domain_class=klass,
                                  connection=dict(connection),
                                  status=model.DomainStatus.ACTIVE if dc_id
                                  else model.DomainStatus.UNATTACHED, id=str(md["uuid"]))
        # its own connection (a mount named by its id): the one its images are read
        # through, now and later. Not undone on a failure below: this host may have been
        # connected to it already, for another engine (as after detach).
        self.ctx.drivers.storage(type).connect(dom)
        images = []
        for data in drv.read_images(dom):
            try:
                images.append(model.structure(data, model.Image))
            except InvalidInput as exc:
                raise InvalidInput(f"storage domain {dom.name!r}: image "
                                   f"{_short(repr(data.get('id')))} on the storage: {exc}; "
                                   "refusing its metadata") from None
        for image in images:
            if image.alias:  # a disk name from the storage: it could name a path or an id
                check_name("disk", image.alias)
            # intents are an engine's own journal, never taken from (untrusted) storage
            image.intent = None
        return dom, images

    def connection_of(self, type: str, given: dict[str, Any]) -> dict[str, Any]:
        """A domain's connection as its driver declares it (``VIRTPLANE_CONNECTION``, an
        attrs class: typed, unknown keys refused by name); text values from the CLI
        (``-o KEY=VALUE`` lists) are typed by the class. Without a class: as given."""
        declared = _options.declared(self.ctx.drivers.storage(type), "VIRTPLANE_CONNECTION")
        if declared is None:
            return _options.plain(given)
        return _options.as_dict(_options.parse(declared, given, f"a {type} storage domain"))

    def connection_options(self, type: str) -> builtins.list[dict[str, str]]:
        """What a domain's connection takes on a storage type (name, type, default, help),
        as its driver declares it (``VIRTPLANE_CONNECTION``); empty when it declares none
        (its connection is then taken as given)."""
        declared = _options.declared(self.ctx.drivers.storage(type), "VIRTPLANE_CONNECTION")
        return _options.describe(declared) if declared is not None else []

    def verify(self, name: str) -> builtins.list[str]:
        """Mismatches between a domain's storage, its metadata and the state store."""
        dom = self.get(name)
        drv = self.ctx.drivers.storage(dom.type)
        drv.connect(dom)
        images = self.volumes.images_of(dom)
        problems = drv.verify(dom, images) if isinstance(drv, drivers.SupportsVerify) else []
        problems += self.volumes.pending(dom)
        return problems + illegal_volumes(images)

    def repair(self, name: str) -> builtins.list[str]:
        """Finish or roll back what killed operations left on a domain: unfinished
        intents (removals, merges, reverts, extends) are finished, creations whose owner
        was never recorded are rolled back, illegal volumes are removed, and every image's
        metadata is written again from the store (a kill between a record and its
        metadata write leaves them disagreeing). Run it when no other operation is
        running on the domain.

        This engine's record is the one kept: chains are written back without
        comparing them with the storage's first (another engine's change is
        overwritten; docs/security.md).

        Returns what was done, one line per step.
        """
        dom = self.get(name)
        self.ctx.drivers.storage(dom.type).connect(dom)
        with self.volumes.trusting_store():
            return self._repair(dom)

    def _repair(self, dom: model.StorageDomain) -> builtins.list[str]:
        done = []
        for image in self.volumes.images_of(dom):
            if image.intent is not None:
                done.append(self.volumes.finish(image))
        for image in self.volumes.images_of(dom):
            for vol in [v for v in image.volumes if not v.legal]:
                if any(v.parent_id == vol.id and v.legal for v in image.volumes):
                    done.append(f"image {image.id}: volume {vol.id} is illegal but has a legal "
                                "layer on top; left alone (needs an administrator)")
                    continue
                # a thin image on a template sits on this volume: deleting it would
                # break that chain (the metadata saying "illegal" may be another
                # engine's, or forged)
                users = [other for other in self.volumes.images_of(dom)
                         if other.id != image.id and any(
                             v.base_image_id == image.id and v.parent_id == vol.id
                             for v in other.volumes)]
                if users:
                    done.append(f"image {image.id}: volume {vol.id} is illegal but image(s) "
                                f"{', '.join(sorted(u.id for u in users))} sit on it; left "
                                "alone (needs an administrator)")
                    continue
                self.volumes.remove_leaf(dom, image, vol)
                done.append(f"image {image.id}: removed illegal volume {vol.id}"
                            + ("" if image.volumes else " (and the now empty image)"))
        for image in self.volumes.images_of(dom):
            self.volumes.sync_image(image, dom)
        return done

    def refresh(self, name: str) -> model.StorageDomain:
        """Probe a domain's storage (with a timeout) and record Active or Inactive with the
        reason; VMs and disks on an Inactive domain are refused."""
        dom = self.get(name)
        drv = self.ctx.drivers.storage(dom.type)
        reason = drv.health(dom) if isinstance(drv, drivers.SupportsHealth) else None
        if reason and isinstance(drv, drivers.SupportsHealth):
            # one reconnect (remount, log in again), as VDSM's monitor does
            try:
                drv.connect(dom)
                reason = drv.health(dom)
            except VirtplaneError as exc:
                reason = f"{reason}; reconnecting failed: {exc}"
        if reason:
            status = model.DomainStatus.INACTIVE
        elif dom.datacenter_id:
            status = model.DomainStatus.ACTIVE
        else:
            status = model.DomainStatus.UNATTACHED
        if (status, reason or "") != (dom.status, dom.status_reason):
            dom.status, dom.status_reason = status, reason or ""
            self.ctx.store.update(dom)
            self.ctx.event(dom.id, f"storage domain {dom.name} is {status.value}"
                           + (f": {reason}" if reason else ""), "error" if reason else "info")
        return dom

    def info(self, name: str) -> dict[str, Any]:
        """A domain, its images and what its driver reports (array capabilities ...)."""
        d = self.refresh(name)
        info: dict[str, Any] = model.unstructure(d)
        info["connection"] = redact_connection(info.get("connection") or {})
        info["images"] = [model.unstructure(i) for i in self.volumes.images_of(d)]
        drv = self.ctx.drivers.storage(d.type)
        if isinstance(drv, drivers.SupportsDescribe) and d.status != model.DomainStatus.INACTIVE:
            info["driver"] = drv.describe(d)
        return info

    def deactivate(self, name: str) -> model.StorageDomain:
        """Maintenance: Inactive, the host disconnected (unmounted); refused while running
        VMs use it."""
        dom = self.get(name)
        running = self.volumes.running_users({i.id for i in self.volumes.images_of(dom)})
        if running:
            raise InvalidState(f"storage domain {name!r} is in use by running VMs "
                               f"{', '.join(running)}; stop them first")
        was = dom.status, dom.status_reason
        dom.status = model.DomainStatus.INACTIVE
        dom.status_reason = ADMIN_DEACTIVATED
        # recorded first: nothing starts on the domain while the host lets go of it
        self.ctx.store.update(dom)
        try:
            self._disconnect(dom)
        except VirtplaneError:
            # still connected (a busy mount ...): it stays as it was, the error says why
            dom.status, dom.status_reason = was
            self.ctx.store.update(dom)
            raise
        self.ctx.event(dom.id, f"storage domain {dom.name} deactivated")
        return dom

    def activate(self, name: str) -> model.StorageDomain:
        """Connect again (mount ...) and probe; Active or Inactive with the reason."""
        dom = self.get(name)
        try:
            self.ctx.drivers.storage(dom.type).connect(dom)
        except VirtplaneError as exc:
            dom.status, dom.status_reason = model.DomainStatus.INACTIVE, str(exc)
            self.ctx.store.update(dom)
            raise
        dom.status_reason = ""
        dom.status = (model.DomainStatus.ACTIVE if dom.datacenter_id
                      else model.DomainStatus.UNATTACHED)
        self.ctx.store.update(dom)
        return self.refresh(name)

    def detach(self, name: str) -> None:
        """Forget a domain (its data stays on the storage, ready to be attached again)."""
        dom = self.get(name)
        images = self.volumes.images_of(dom)
        users = self.volumes.users({i.id for i in images})
        if users:
            raise InvalidState(f"storage domain {name!r} holds disks of VMs {', '.join(users)}; "
                               "remove or move them first")
        with self.ctx.store.transaction():
            for image in images:
                self.ctx.store.remove(model.Image, image.id)
            self.ctx.store.remove(model.StorageDomain, dom.id)
        # The host's mount stays: another engine on this host may use the same domain
        # (one mount point per domain); removing the domain unmounts it.

    def remove(self, name: str) -> None:
        """Delete an empty domain from its storage and forget it."""
        dom = self.get(name)
        images = self.volumes.images_of(dom)
        if images:
            raise InvalidState(f"storage domain {name!r} still holds {len(images)} image(s): "
                               + ", ".join(i.description or i.id for i in images))
        drv = self.ctx.drivers.storage(dom.type)
        drv.connect(dom)
        drv.remove_domain(dom)
        self.ctx.store.remove(model.StorageDomain, dom.id)
        # The domain is gone from its storage and from the store: the removal happened.
        # Letting go of the host's connection (unmount) comes last, since the domain is
        # deleted through it; when that fails (a busy mount, a server that stopped
        # answering) the removal is not reported as failed: a warning is logged and an
        # event names what is left and how to release it (docs/storage.md).
        try:
            self._disconnect(dom)
        except VirtplaneError as exc:
            log.warning("storage domain %r was removed, but disconnecting it failed: %s",
                        dom.name, exc)
            self.ctx.event(dom.id, f"storage domain {dom.name} was removed, but the host "
                           f"could not let go of its storage: {exc}; release it by hand "
                           "(e.g. umount the mount point once nothing uses it)", "warning")

    def _disconnect(self, dom: model.StorageDomain) -> None:
        drv = self.ctx.drivers.storage(dom.type)
        if isinstance(drv, drivers.SupportsDisconnect):
            drv.disconnect(dom)
