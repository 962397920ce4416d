"""Both first-party hypervisor drivers pass the plugin author kit (virtplane.testing).

``kvm`` against libvirt's test driver (``test:///default``, in-process, so
every test gets a fresh host); ``ovm3`` against the fake Oracle VM agent of
tests/ovm3/agent.py over real XML-RPC on loopback.
"""

from __future__ import annotations

import pytest

from tests.ovm3.agent import AgentServer, FakeAgent
from virtplane import model
from virtplane.testing import HypervisorContract


class TestKvm(HypervisorContract):
    plugin = "kvm"

    @pytest.fixture
    def host_uri(self) -> str:
        return "test:///default"


class TestOvm3(HypervisorContract):
    plugin = "ovm3"
    # the agent API has no pause or save calls: the kit checks they are refused clearly
    unsupported = frozenset({"pause", "hibernate"})

    @pytest.fixture
    def host_uri(self, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setenv("VIRTPLANE_OVM3_PASSWORD", "secret")
        with AgentServer(FakeAgent("127.0.0.2", "ovs1")) as srv:
            yield srv.url()

    def prepare_host(self, manager, host):
        manager.hosts.setup(host.name, repository="nfs1:/export/repo", pool_vip="192.0.2.10",
                            pool_alias="pool1", pool_create=True)

    def vm_spec(self, name):
        return model.VmSpec(name=name, memory_mib=256, vcpus=1, disks=[model.DiskSpec(
            name="root", path="/OVS/Repositories/r/VirtualDisks/a.raw")])
