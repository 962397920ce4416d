"""A VM's domain XML: built through the architecture and hypervisor plugins, the
payloads hooks get, device hooks matched by alias, disk sources prepared by
``after_disk_prepare``, and the checks on what hooks hand back before libvirt sees it
(:meth:`VmXmlMixin.checked_domain`)."""

from __future__ import annotations

import builtins
import os
from typing import Any, cast
from xml.etree import ElementTree

from virtplane import domxml, drivers, model
from virtplane.errors import HookError, InvalidInput
from virtplane.payloads import ConfigPayload, JsonPayload, XmlPayload
from virtplane.services.arch import Architectures
from virtplane.services.context import Context
from virtplane.services.volumes import Volumes

Payload = XmlPayload | ConfigPayload


def _hotplug_room(domain: domxml.Domain, spec: model.VmSpec) -> None:
    """Room to grow while running, as oVirt's XML builder leaves it: ``<vcpu current=N>M``
    for vCPU hotplug, ``<maxMemory slots=16>`` and one NUMA cell for DIMM hotplug."""
    if spec.max_vcpus and spec.max_vcpus > spec.vcpus:
        domain.vcpu = spec.max_vcpus
        domain.vcpu_current = spec.vcpus
        domain.cpu.sockets = spec.max_vcpus
    if spec.max_memory_mib and spec.max_memory_mib > spec.memory_mib:
        root = domain.element
        limit = root.find("maxMemory")
        if limit is None:
            limit = ElementTree.Element("maxMemory")
            memory = root.find("memory")
            root.insert(0 if memory is None else list(root).index(memory), limit)
        limit.set("slots", "16")
        limit.set("unit", "KiB")
        limit.text = str(spec.max_memory_mib * 1024)
        cpu = domain.cpu.element
        numa = cpu.find("numa")
        if numa is None:
            numa = ElementTree.SubElement(cpu, "numa")
        numa.clear()
        last = (spec.max_vcpus or spec.vcpus) - 1
        ElementTree.SubElement(numa, "cell", {"id": "0", "cpus": f"0-{last}",
                                              "memory": str(spec.memory_mib * 1024),
                                              "unit": "KiB"})


def device_alias(dev_xml: str) -> str | None:
    """The ``<alias name=...>`` of one device's XML (matched exactly, never by substring)."""
    alias = domxml.parse_element(dev_xml, "device XML").find("alias")
    return None if alias is None else alias.get("name")


def _prepared_path(data: Any, given: str) -> str:
    """The disk path an ``after_disk_prepare`` payload holds after the hooks ran: the one
    given, or an absolute path without control characters a hook put there.

    :raises HookError: the payload is no longer an object, or its path is not such a path.
    """
    if not isinstance(data, dict):
        raise HookError("after_disk_prepare", "hook scripts or plugins",
                        f"the payload must stay a JSON object, not {type(data).__name__}")
    new = data.get("path", given)
    if new == given:
        return given
    if not isinstance(new, str) or not os.path.isabs(new) or \
            any(ord(c) < 32 or c == "\x7f" for c in new):
        raise HookError("after_disk_prepare", "hook scripts or plugins",
                        f"the disk path {str(new)[:80]!r} is not allowed; it must be an "
                        "absolute path without control characters")
    return new


class VmXmlMixin:
    """The XML half of :class:`~virtplane.services.vms.Vms`."""

    ctx: Context
    arch: Architectures
    volumes: Volumes

    def cluster(self, vm: model.Vm) -> model.Cluster:
        return self.ctx.store.get(model.Cluster, vm.cluster_id)

    def payload(self, conn: drivers.HypervisorConnection, text: str,
                native: bool | None = None) -> Payload:
        """The domain payload hooks get: libvirt XML, or the hypervisor's own config.

        :param native: whether ``conn`` is a :class:`~virtplane.drivers.NativeConfig`,
            when the caller knows (a runtime protocol check costs more than the rest).
        """
        if native is None:
            native = drivers.implements(conn, drivers.NativeConfig)
        if native:
            cfg = cast("drivers.NativeConfig", conn)
            return ConfigPayload(cfg.parse_config(text), cfg.config_format,
                                 cfg.render_config, cfg.parse_config)
        return XmlPayload(text)

    def disk_sources(self, vm: model.Vm) -> builtins.list[dict[str, Any]]:
        """Each disk's source, prepared: ``after_disk_prepare`` may replace a file path
        (as VDSM's hook may), and its failure fails the operation."""
        sources = []
        for disk in vm.spec.disks:
            source = self.volumes.disk_source(disk)
            if disk.image_id and disk.domain_id:
                source = self.prepared(vm, disk, source)
            sources.append(source)
        return sources

    def prepared(self, vm: model.Vm, disk: model.DiskSpec,
                 source: dict[str, Any]) -> dict[str, Any]:
        """Fire ``after_disk_prepare`` for one managed disk; returns its (maybe new) source."""
        if not self.ctx.hooks.implemented("after_disk_prepare"):
            return source
        image = self.ctx.store.get(model.Image, disk.image_id or "")
        leaf = image.volumes[-1]
        path = str((source.get("source") or {}).get("@file", ""))
        payload = JsonPayload({"vmId": vm.id, "domain": disk.domain_id, "image": image.id,
                               "volume": leaf.id, "path": path, "format": leaf.format.value,
                               "disk": disk.name})
        self.ctx.hooks.fire("after_disk_prepare", payload=payload)
        new_path = _prepared_path(payload.data, path)
        if path and new_path and new_path != path:
            source = {**source, "source": {**source.get("source", {}), "@file": str(new_path)}}
        return source

    def domain_xml(self, vm: model.Vm, host: model.Host) -> str:
        """The domain XML for a VM on a host, before lifecycle hooks (docs/lifecycle.md).

        The core builds the generic domain, the architecture driver customises it,
        the hypervisor connection adapts it (plugin API 2.0 typed elements; 1.x
        ``render`` methods still work through an adapter), then ``adjust_domain_xml``.
        """
        cl = self.cluster(vm)
        conn = self.ctx.connections.get(host)
        domain = domxml.build_domain(vm.spec, vm.id, self.disk_sources(vm))
        _hotplug_room(domain, vm.spec)
        drivers.apply_architecture(self.arch.driver(cl.architecture), vm.spec, cl, domain)
        drivers.apply_hypervisor(conn, domain, cl.architecture,
                                vm.spec.custom_properties.get("virt_type"))
        built = domain.to_xml()
        payload = XmlPayload(built)
        self.ctx.hooks.fire("adjust_domain_xml", vm=vm, domxml=payload, host=host)
        return self.checked_domain("adjust_domain_xml", vm, built, payload.xml)

    def _devices_with_properties(self, vm: model.Vm) -> dict[str, str]:
        """Alias -> device name, for the disks and NICs that carry custom properties
        (VDSM runs device hooks only for those)."""
        out = {f"ua-{d.name}": d.name for d in vm.spec.disks if d.custom_properties}
        out.update({f"ua-{n.name}": n.name for n in vm.spec.nics if n.custom_properties})
        return out

    def device_hook(self, point: str, vm: model.Vm, xml: str, *, failing: bool) -> str:
        """Fire a device point once per device with custom properties (matched by its
        alias, exactly); returns the domain XML with the hooks' edits."""
        wanted = self._devices_with_properties(vm)
        if not wanted or not self.ctx.hooks.implemented(point) or not xml.lstrip().startswith(
                "<"):
            return xml
        changed = False
        out = []
        sink = None if failing else self.ctx.hook_error_sink(vm.id)
        for tag, dev in domxml.devices_xml(xml):
            if device_alias(dev) in wanted:
                payload = XmlPayload(dev)
                self.ctx.hooks.fire(point, on_error=sink, vm=vm, devxml=payload)
                changed = changed or payload.xml != dev
                dev = payload.xml
            out.append((tag, dev))
        if not changed:
            return xml
        try:
            return domxml.replace_devices(xml, out)
        except InvalidInput as exc:
            # a hook script wrote something that is not XML: its point's policy decides
            # (a before point fails the operation, an after point is only logged)
            err = HookError(point, "hook scripts or plugins", f"the device XML a hook "
                            f"returned is not usable: {exc}")
            if failing:
                raise err from None
            self.ctx.hook_error_sink(vm.id)(err)
            return xml

    def checked_domain(self, point: str, vm: model.Vm, built: str, given: str) -> str:
        """The domain XML ``given`` back by the ``point`` hooks, when it may go to libvirt:
        unchanged, or well-formed XML (no DOCTYPE) of one ``<domain>`` that keeps the
        VM's name and uuid (a renamed domain would run under a name the store does not
        know). Only a changed text is parsed: the usual start pays nothing.

        :raises HookError: naming the point and what the hooks broke.
        """
        if given == built:
            return given

        def refuse(why: str) -> HookError:
            return HookError(point, "hook scripts or plugins",
                             f"the domain XML the hooks returned is not usable: {why}")
        try:
            root = domxml.parse_element(given, "domain XML")
        except InvalidInput as exc:
            raise refuse(str(exc)) from None
        if root.tag != "domain":
            raise refuse(f"its root element is <{root.tag}>, not <domain>")
        name, uuid = root.findtext("name"), root.findtext("uuid")
        if name != vm.name:
            raise refuse(f"it names the domain {str(name)[:80]!r}, not {vm.name!r} (the "
                         "name may not change)")
        if uuid is not None and uuid.strip().lower() != vm.id.lower():
            raise refuse(f"its uuid is {uuid[:80]!r}, not {vm.id} (the uuid may not change)")
        return given
