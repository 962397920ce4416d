"""Fence agents: named plugins that report and switch a host's power.

A fence agent speaks to whatever controls a host's power (a BMC over IPMI, a PDU,
the project's namespace hosts) and answers four actions, the ClusterLabs
fence-agents vocabulary oVirt passes on: ``status``, ``on``, ``off``, ``reboot``.
Agents are classes in the entry-point group ``virtplane.fence_agents``; the engine
ships ``test`` (an in-memory power switch for unit tests) and, in
:mod:`virtplane_engine.fence_agents`, ``fence-agents`` (the ``fence_*`` stdin
protocol), ``ssh`` (soft fencing) and ``namespace-host`` (the test hosts). Whether to
fence at all is decided elsewhere (:mod:`.fencing_rules`); an agent only acts.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping
from typing import Any, ClassVar, Final, Protocol, runtime_checkable

import attrs

from virtplane_engine.scheduling.params import PolicyError
from virtplane_engine.scheduling.registry import UnitRegistry

GROUP: Final = "virtplane.fence_agents"

#: the engine's own agents: name -> ``module:Class`` (its pyproject declares them)
BUILTIN_AGENTS: Final[dict[str, str]] = {
    "test": "virtplane_engine.scheduling.fencing:TestFenceAgent",
    "fence-agents": "virtplane_engine.fence_agents:FenceAgentsProgram",
    "ssh": "virtplane_engine.fence_agents:SshSoftFence",
    "namespace-host": "virtplane_engine.fence_agents:NamespaceHostAgent",
}


class FenceAction(enum.StrEnum):
    STATUS = "status"
    ON = "on"
    OFF = "off"
    REBOOT = "reboot"


class PowerState(enum.StrEnum):
    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"


class FenceError(Exception):
    """The agent could not reach or drive the power device (the message says which)."""


@attrs.frozen
class FenceTarget:
    """The host to act on, as the agent needs it (fence-agents' option names)."""

    host_id: str
    host_name: str
    address: str = ""
    login: str = ""
    password: str = attrs.field(default="", repr=False)
    port: str = ""
    options: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class FenceResult:
    """What one action did: ``ok`` means the device accepted it; ``power`` is the state
    the device reports afterwards (``unknown`` when it does not say)."""

    action: FenceAction
    ok: bool
    power: PowerState = PowerState.UNKNOWN
    message: str = ""


@runtime_checkable
class FenceAgent(Protocol):
    """What a fence agent implements. Raise :class:`FenceError` when the device cannot
    be reached; return ``ok=False`` when it refused the action."""

    name: ClassVar[str]

    def run(self, target: FenceTarget, action: FenceAction) -> FenceResult:
        """Perform ``action`` on ``target``'s power."""


class TestFenceAgent:
    """An in-memory power switch for tests: every host starts powered on.

    Tests script it: :attr:`unreachable` hosts raise :class:`FenceError`,
    :attr:`refuse` actions return ``ok=False``, :attr:`calls` records everything.
    """

    name: ClassVar[str] = "test"
    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self) -> None:
        self.power: dict[str, PowerState] = {}
        self.unreachable: set[str] = set()
        self.refuse: set[FenceAction] = set()
        self.calls: list[tuple[str, FenceAction]] = []
        self._lock = threading.Lock()

    def run(self, target: FenceTarget, action: FenceAction) -> FenceResult:
        with self._lock:
            self.calls.append((target.host_id, action))
            if target.host_id in self.unreachable:
                raise FenceError(f"power device of host {target.host_name} does not answer")
            state = self.power.setdefault(target.host_id, PowerState.ON)
            if action in self.refuse:
                return FenceResult(action, False, state, f"{action.value} refused")
            if action is FenceAction.ON or action is FenceAction.REBOOT:
                state = PowerState.ON
            elif action is FenceAction.OFF:
                state = PowerState.OFF
            self.power[target.host_id] = state
            return FenceResult(action, True, state, f"{action.value}: power {state.value}")


class FenceAgents:
    """Fence agents by name (one instance per name, so state such as the test agent's
    switch is shared by whoever asks)."""

    def __init__(self, registry: UnitRegistry | None = None,
                 extra: Mapping[str, type[Any]] | None = None) -> None:
        self.registry = registry or UnitRegistry()
        self._extra = dict(extra or {})
        self._instances: dict[str, FenceAgent] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        found = set(self.registry.names(GROUP)) | set(BUILTIN_AGENTS) | set(self._extra)
        return sorted(found)

    def agent(self, name: str) -> FenceAgent:
        """The agent called ``name`` (a :class:`PolicyError` names the known ones)."""
        with self._lock:
            if name in self._instances:
                return self._instances[name]
            if name in self._extra:
                cls: Any = self._extra[name]
            elif name in self.registry.names(GROUP):
                cls = self.registry.lookup(GROUP, name, lambda obj: None)[0]
            elif name in BUILTIN_AGENTS:
                from virtplane_engine.scheduling.registry import _load_value

                cls = _load_value(BUILTIN_AGENTS[name])
            else:
                raise PolicyError(f"no fence agent named {name!r} (known: "
                                  f"{', '.join(self.names()) or 'none'})")
            agent = cls() if isinstance(cls, type) else cls
            if not isinstance(agent, FenceAgent) or getattr(agent, "name", None) != name:
                raise PolicyError(f"fence agent {name!r} ({cls!r}) must have name = {name!r} "
                                  "and a run(target, action) method")
            self._instances[name] = agent
            return agent
