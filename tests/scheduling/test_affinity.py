"""Affinity groups: VM-to-VM and VM-to-host, positive and negative, enforcing or not."""

from __future__ import annotations

from virtplane_engine.scheduling.affinity import (
    VmAffinityFilter,
    VmAffinityWeight,
    VmToHostsAffinityFilter,
    VmToHostsAffinityWeight,
)
from virtplane_engine.scheduling.facts import AffinityGroup, AffinityRule
from virtplane_engine.scheduling.params import NoParams
from virtplane_engine.scheduling.units import Mode, UnitContext

from .conftest import NOW, cluster, host, vm

HARD_APART = AffinityRule(positive=False, enforcing=True)
HARD_TOGETHER = AffinityRule(positive=True, enforcing=True)
SOFT_APART = AffinityRule(positive=False, enforcing=False)
SOFT_TOGETHER = AffinityRule(positive=True, enforcing=False)
HOSTS = [host("a"), host("b"), host("c")]


def ctx(groups, vms=(), pending=None, mode=Mode.START, source=None):
    return UnitContext(cluster(HOSTS, list(vms), affinity_groups=groups), NOW, mode, source,
                       pending)


def test_enforcing_negative_keeps_members_apart():
    g = AffinityGroup("apart", ["db1", "db2", "new"], vm_rule=HARD_APART)
    c = ctx([g], [vm("db1", "a"), vm("db2", "b")])
    out = VmAffinityFilter().filter(c, NoParams(), vm("new"), HOSTS)
    assert set(out) == {"a", "b"}
    assert out["a"] == "enforcing negative affinity group apart: db1 runs there"


def test_enforcing_positive_follows_the_members_or_refuses_a_split_group():
    g = AffinityGroup("together", ["web", "new"], vm_rule=HARD_TOGETHER)
    out = VmAffinityFilter().filter(ctx([g], [vm("web", "b")]), NoParams(), vm("new"), HOSTS)
    assert set(out) == {"a", "c"} and "its VMs run on b" in out["a"]
    # nobody running yet: anywhere
    assert VmAffinityFilter().filter(ctx([g]), NoParams(), vm("new"), HOSTS) == {}
    split = AffinityGroup("together", ["w1", "w2", "new"], vm_rule=HARD_TOGETHER)
    out = VmAffinityFilter().filter(ctx([split], [vm("w1", "a"), vm("w2", "b")]),
                                    NoParams(), vm("new"), HOSTS)
    assert set(out) == {"a", "b", "c"} and "already split over a, b" in out["c"]


def test_pending_members_count_as_placed():
    g = AffinityGroup("apart", ["x", "new"], vm_rule=HARD_APART)
    out = VmAffinityFilter().filter(ctx([g], pending={"x": "c"}), NoParams(), vm("new"), HOSTS)
    assert set(out) == {"c"}


def test_a_vm_is_not_its_own_neighbour_when_migrating():
    g = AffinityGroup("apart", ["me", "other"], vm_rule=HARD_APART)
    c = ctx([g], [vm("me", "a"), vm("other", "b")], mode=Mode.MIGRATE, source="a")
    out = VmAffinityFilter().filter(c, NoParams(), vm("me", "a"), HOSTS)
    assert set(out) == {"b"}


def test_groups_without_the_vm_do_not_apply():
    g = AffinityGroup("apart", ["db1", "db2"], vm_rule=HARD_APART)
    assert VmAffinityFilter().filter(ctx([g], [vm("db1", "a")]), NoParams(), vm("new"),
                                     HOSTS) == {}


def test_vm_to_host_enforcing_positive_and_negative():
    pos = AffinityGroup("rack1", ["new"], host_ids=["a", "b"], host_rule=HARD_TOGETHER)
    out = VmToHostsAffinityFilter().filter(ctx([pos]), NoParams(), vm("new"), HOSTS)
    assert list(out) == ["c"] and "its hosts are a, b" in out["c"]
    neg = AffinityGroup("not-a", ["new"], host_ids=["a"], host_rule=HARD_APART)
    out = VmToHostsAffinityFilter().filter(ctx([neg]), NoParams(), vm("new"), HOSTS)
    assert list(out) == ["a"]


def test_soft_rules_are_weights_not_filters():
    groups = [AffinityGroup("apart", ["db1", "new"], vm_rule=SOFT_APART),
              AffinityGroup("near", ["web", "new"], vm_rule=SOFT_TOGETHER),
              AffinityGroup("rack", ["new"], host_ids=["c"], host_rule=SOFT_TOGETHER)]
    c = ctx(groups, [vm("db1", "a"), vm("web", "a")])
    assert VmAffinityFilter().filter(c, NoParams(), vm("new"), HOSTS) == {}
    assert VmToHostsAffinityFilter().filter(c, NoParams(), vm("new"), HOSTS) == {}
    # a: breaks "apart" (db1 there); b and c: break "near" (web on a)
    assert VmAffinityWeight().score(c, NoParams(), vm("new"), HOSTS) == {
        "a": 1.0, "b": 1.0, "c": 1.0}
    assert VmToHostsAffinityWeight().score(c, NoParams(), vm("new"), HOSTS) == {
        "a": 1.0, "b": 1.0, "c": 0.0}
    # without soft groups the weights say nothing (every host counts as 0)
    assert VmAffinityWeight().score(ctx([]), NoParams(), vm("new"), HOSTS) == {}
