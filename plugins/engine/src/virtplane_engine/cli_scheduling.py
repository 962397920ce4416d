"""``virtplane scheduling ...`` and ``virtplane fencing ...`` (``virtplane.commands`` entry
points of the engine).

``scheduling explain VM``, ``scheduling policy list|show|set`` and the ``fencing``
commands work with or without an engine (they read and write the state store);
``scheduling balance`` runs a cycle in the engine now (``--dry-run``: says what it
would move and why, moves nothing).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

from virtplane.cli._common import emit, leaf, manager
from virtplane.errors import InvalidInput, InvalidState


def _running_engine() -> Any:
    from virtplane_engine import engine as engine_mod

    return engine_mod.current


@contextlib.contextmanager
def _clear_errors() -> Iterator[None]:
    """A policy or agent name or parameter that does not fit is the user's input error
    (exit 2 with the message, no traceback)."""
    from virtplane_engine.scheduling.params import PolicyError

    try:
        yield
    except PolicyError as exc:
        raise InvalidInput(str(exc)) from None


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"{what} {item!r} is not KEY=VALUE")
        out[key.strip()] = value
    return out


# -------------------------------------------------------------- scheduling


def cmd_explain(args: argparse.Namespace) -> int:
    from virtplane.scheduling import SupportsExplain
    from virtplane_engine.placement import stored_explanation

    with manager(args) as m:
        vm = m.vms.get(args.name)
        scheduler = m.vms.scheduler
        text = (scheduler.explain(vm.id) if isinstance(scheduler, SupportsExplain)
                else stored_explanation(m, vm.id))
    print(text)
    return 0


def cmd_balance(args: argparse.Namespace) -> int:
    from virtplane_engine.maintenance import report_text

    engine = _running_engine()
    if engine is None:
        raise InvalidState("balancing runs in the engine: start one with 'virtplane engine "
                           "run' (this command then goes through it)")
    reports = engine.automation.mover.balance(args.cluster, dry_run=args.dry_run, wait=True)
    print(report_text(reports))
    return 0


def cmd_policy_list(args: argparse.Namespace) -> int:
    from virtplane_engine.scheduling.registry import POLICIES, UnitRegistry

    reg = UnitRegistry()
    rows = []
    for name in reg.names(POLICIES):
        p = reg.policy(name)
        rows.append({"name": name, "balancer": p.balancer, "description": p.description})

    def text() -> None:
        for r in rows:
            print(f"{r['name']:24} {r['balancer']:32} {r['description']}")

    emit(args, rows, text)
    return 0


def cmd_policy_show(args: argparse.Namespace) -> int:
    from virtplane import model
    from virtplane_engine.placement import cluster_policy
    from virtplane_engine.scheduling.registry import UnitRegistry

    reg = UnitRegistry()
    cluster = None
    if args.cluster:
        with manager(args) as m:
            cluster = m.context.store.find(model.Cluster, args.cluster)
        policy = cluster_policy(reg, cluster)
    else:
        if not args.name:
            raise InvalidInput("name a policy, or a cluster with --cluster")
        policy = reg.policy(args.name)
    compiled = policy.compile(reg)
    filters = [u.name for u, _p in compiled.filters]
    weights = [(u.name, f) for u, f, _p in compiled.weights]
    params = {k: str(v) for k, v in sorted(policy.parameters.items())}
    data: dict[str, Any] = {"name": policy.name, "description": policy.description,
            "cluster": cluster.name if cluster else None,
            "filters": filters, "weights": [list(w) for w in weights],
            "balancer": policy.balancer, "parameters": params}

    def text() -> None:
        head = f"policy {data['name']}"
        if cluster is not None:
            head += f" (cluster {cluster.name})"
        print(f"{head}: {data['description']}")
        print("  filters:  " + ", ".join(filters))
        print("  weights:  " + ", ".join(f"{n} x{f}" for n, f in weights))
        print(f"  balancer: {policy.balancer}")
        for k, v in params.items():
            print(f"  {k} = {v}")

    emit(args, data, text)
    return 0


def cmd_policy_set(args: argparse.Namespace) -> int:
    from virtplane import model
    from virtplane_engine.placement import cluster_policy
    from virtplane_engine.scheduling.registry import UnitRegistry

    params = _pairs(args.param, "--param")
    reg = UnitRegistry()
    probe = model.Cluster(name="probe", datacenter_id="", scheduling_policy=args.policy,
                          scheduling_parameters=params)
    cluster_policy(reg, probe).compile(reg)  # unknown names and bad values fail here

    def change(c: model.Cluster) -> None:
        c.scheduling_policy, c.scheduling_parameters = args.policy, params

    with manager(args) as m:
        cl = m.context.store.modify(model.Cluster, args.cluster, change)
        m.context.event(cl.id, f"scheduling policy {args.policy}"
                        + (f" with {', '.join(f'{k}={v}' for k, v in params.items())}"
                           if params else ""))
    print(f"cluster {cl.name}: policy {args.policy}"
          + "".join(f", {k}={v}" for k, v in params.items()))
    return 0


def register_scheduling(g: Any) -> None:
    leaf(g, "explain", cmd_explain, "why a VM went to its host: every host's filter or "
         "score in its last scheduling decision").add_argument("name")
    q = leaf(g, "balance", cmd_balance, "run a balancing cycle now in the engine "
             "(--dry-run: what it would move and why)")
    q.add_argument("--cluster", help="only this cluster (default: every cluster with a "
                   "balancer)")
    q.add_argument("--dry-run", action="store_true", help="move nothing")
    q = leaf(g, "policy", _policy_dispatch, "cluster policies: list, show NAME, "
             "show --cluster C, set CLUSTER POLICY [-p K=V ...]", True)
    q.add_argument("action", choices=["list", "show", "set"])
    q.add_argument("name", nargs="?", help="show: a policy; set: the cluster")
    q.add_argument("policy", nargs="?", help="set: the policy")
    q.add_argument("--cluster", help="show: the policy of this cluster")
    q.add_argument("--param", "-p", action="append", metavar="KEY=VALUE",
                   help="set: a parameter override (oVirt's names), repeatable")


def _policy_dispatch(args: argparse.Namespace) -> int:
    with _clear_errors():
        if args.action == "list":
            return cmd_policy_list(args)
        if args.action == "show":
            return cmd_policy_show(args)
        if not args.name or not args.policy:
            raise InvalidInput("usage: virtplane scheduling policy set CLUSTER POLICY "
                               "[-p KEY=VALUE ...]")
        args.cluster = args.name
        return cmd_policy_set(args)


# ----------------------------------------------------------------- fencing


def cmd_fencing_set(args: argparse.Namespace) -> int:
    from virtplane import model
    from virtplane.secrets import check_connection
    from virtplane_engine.scheduling.fencing import FenceAgents

    options = _pairs(args.option, "--option")
    check_connection(dict(options), f"fence options of host {args.name}",
                     "the agent's own password file option (fence_* agents: passwd_script)")
    agents = FenceAgents()
    with _clear_errors():
        for name in (args.agent, args.soft):
            if name:
                agents.agent(name)  # unknown names fail here, with the known ones

    def change(h: model.Host) -> None:
        if args.agent is not None:
            h.fence_agent = args.agent
        if args.soft is not None:
            h.soft_fence_agent = args.soft
        if args.option is not None:
            h.fence_options = options

    with manager(args) as m:
        host = m.context.store.modify(model.Host, args.name, change)
    print(f"host {host.name}: power agent {host.fence_agent or '(none)'}, soft fence "
          f"{host.soft_fence_agent or '(none)'}, options "
          + (", ".join(f"{k}={v}" for k, v in host.fence_options.items()) or "(none)"))
    return 0


def cmd_fencing_status(args: argparse.Namespace) -> int:
    from virtplane_engine.ha import target_of
    from virtplane_engine.scheduling.fencing import FenceAction, FenceAgents, FenceError

    with manager(args) as m:
        host = m.hosts.get(args.name)
    if not host.fence_agent:
        raise InvalidState(f"host {host.name} has no power agent (virtplane fencing set "
                           f"{host.name} --agent NAME)")
    try:
        r = FenceAgents().agent(host.fence_agent).run(target_of(host), FenceAction.STATUS)
    except FenceError as exc:
        raise InvalidState(f"host {host.name}: {exc}") from None
    print(f"host {host.name}: power {r.power.value} ({r.message or 'no message'})")
    return 0 if r.ok else 1


def register_fencing(g: Any) -> None:
    q = leaf(g, "set", cmd_fencing_set, "a host's power agent, soft-fence agent and "
             "their options (virtplane.fence_agents)")
    q.add_argument("name")
    q.add_argument("--agent", help="power agent (fence-agents, namespace-host, test ...); "
                   "'' removes it")
    q.add_argument("--soft", help="soft-fence agent (ssh, namespace-host); '' removes it")
    q.add_argument("--option", "-o", action="append", metavar="KEY=VALUE",
                   help="agent option (replaces them all), repeatable")
    leaf(g, "status", cmd_fencing_status, "ask a host's power agent for its power "
         "status").add_argument("name")
