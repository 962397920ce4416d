"""Fixtures for KVM driver tests: a manager with dc/cluster/host and a recording hook plugin."""

from __future__ import annotations

import inspect
import types
from typing import Any

import pytest

from virtplane import hookimpl, hookspecs


class Recorder:
    """Registers an implementation of every lifecycle hook and records the calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.veto: dict[str, str] = {}
        self.raise_in: dict[str, Exception] = {}
        self.module = types.ModuleType("recorder")
        for name, f in vars(hookspecs).items():
            if not (inspect.isfunction(f) and hasattr(f, "virtplane_spec")):
                continue
            if name.startswith("validate_"):
                continue
            args = [a for a in inspect.signature(f).parameters
                    if a not in hookspecs.DEPRECATED_ARGUMENTS.get(name, {})]
            ns: dict[str, Any] = {"rec": self, "NAME": name}
            exec(f"def {name}({', '.join(args)}):\n    rec.hit(NAME)\n", ns)
            setattr(self.module, name, hookimpl(ns[name]))

    def hit(self, name: str) -> None:
        self.calls.append(name)
        if name in self.raise_in:
            raise self.raise_in[name]
        if name in self.veto:
            from virtplane import HookVeto

            raise HookVeto(self.veto[name])

    def take(self) -> list[str]:
        out, self.calls = self.calls, []
        return out


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def env(manager_factory, recorder, tmp_path):
    """A manager on test:///default with dc1/cl1/h1, localfs domain data1, and the recorder."""
    m = manager_factory()
    m.plugins.pm.register(recorder.module, name="recorder")
    m.datacenters.add("dc1")
    m.clusters.add("cl1", "dc1")
    m.hosts.add("h1", "cl1", "test:///default")
    m.storage.add("data1", "localfs", "dc1", {"path": str(tmp_path / "sd")})
    recorder.take()
    yield m
    # leave the process-wide test:///default clean for the next test
    from virtplane import model

    for vm in m.vms.list():
        if vm.status != model.VmStatus.DOWN and vm.host_id is not None:
            m.vms.destroy(vm.name)
