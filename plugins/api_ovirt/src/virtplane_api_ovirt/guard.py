"""Every API call is checked: which permission each route needs, on which object.

:data:`RULES` maps each route (method, path under the API) to a :class:`Rule`:
an action group and the object it is needed on (from the path, from the body,
or System), "any role on the object" for reading one, *listing* for
collections (the handler keeps only what the user may see, through
``call.visible``), or *login* for catalogues everyone reads (the root, cluster
levels, roles). A route without a rule needs SuperUser (the default is to
refuse, so a route added without thinking about permissions is not open to
everyone); ``tests/api/test_authz_units.py`` checks that every route has one.

A refusal is a 403 ``<fault>`` whose detail names the user, the missing action
group, the object and what the user does hold there; it is also an event
(code 100035). Every change that succeeds is an event naming who made it
(code 100036), on the object, with the request's correlation id.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from virtplane.errors import InvalidInput, NotFound
from virtplane_api_ovirt import parse
from virtplane_api_ovirt.authz import ADMIN, Authz, Decision, Forbidden, codes
from virtplane_api_ovirt.authz.model import SYSTEM, ActionGroup, Kind, ObjectRef
from virtplane_api_ovirt.authz.policy import Visibility
from virtplane_api_ovirt.authz.tree import StoreTree
from virtplane_api_ovirt.base import BLANK_ID

if TYPE_CHECKING:
    from virtplane_api_ovirt.base import Call

A = ActionGroup
Target = Callable[["Call", StoreTree], ObjectRef]


def system(call: Call, tree: StoreTree) -> ObjectRef:
    return SYSTEM


def path(kind: Kind, key: str = "id") -> Target:
    """The object named by a path parameter."""
    def target(call: Call, tree: StoreTree) -> ObjectRef:
        return tree.resolve(kind, call.params[key])
    return target


def template(call: Call, tree: StoreTree) -> ObjectRef:
    """The template of the path; the Blank template (not stored) is System's."""
    if call.params["id"] == BLANK_ID:
        return SYSTEM
    return tree.resolve(Kind.TEMPLATE, call.params["id"])


def body(kind: Kind, tag: str, default: str | None = None) -> Target:
    """The object a request body refers to (``<cluster><name>c1``, by id or name)."""
    def target(call: Call, tree: StoreTree) -> ObjectRef:
        ref = parse.ref(call.body, tag) or default
        if ref is None:
            raise InvalidInput(f"the request needs a <{tag}> (by id or name)")
        return tree.resolve(kind, ref)
    return target


def body_domain(call: Call, tree: StoreTree) -> ObjectRef:
    """A new disk's storage domain (``<storage_domains><storage_domain>``)."""
    domains = parse.items(call.body, "storage_domains")
    first = domains[0] if domains else None
    ref = (parse.text(first, "id") or parse.text(first, "name")) if isinstance(first, dict) \
        else None
    if ref is None:
        raise InvalidInput("a disk needs <storage_domains><storage_domain> (by id or name)")
    return tree.resolve(Kind.STORAGEDOMAIN, ref)


#: body element -> kind, for a permission's object (``<permission><vm id=..>``)
OBJECT_TAGS = {"vm": Kind.VM, "cluster": Kind.CLUSTER, "data_center": Kind.DATACENTER,
               "host": Kind.HOST, "storage_domain": Kind.STORAGEDOMAIN, "disk": Kind.DISK,
               "template": Kind.TEMPLATE, "network": Kind.NETWORK}


def body_object(call: Call, tree: StoreTree) -> ObjectRef:
    """The object a permission posted under a user or group is given on (System
    when the body names none)."""
    for tag, kind in OBJECT_TAGS.items():
        ref = parse.ref(call.body, tag)
        if ref:
            return tree.resolve(kind, ref)
    return SYSTEM


@dataclass(frozen=True)
class Rule:
    """What a route needs. ``action`` None with a ``target``: any role on it."""

    action: ActionGroup | None = None
    target: Target | None = None
    #: a collection: anyone logged in, the handler keeps what the user may see
    listing: bool = False
    #: a path parameter naming a user: that user itself needs nothing more
    self_param: str | None = None

    def describe(self) -> str:
        if self.listing:
            return "listing (filtered)"
        if self.target is None:
            return "login"
        return self.action.name if self.action else "any role on the object"


LOGIN = Rule()
LISTING = Rule(listing=True)


def read(kind: Kind, key: str = "id") -> Rule:
    return Rule(None, path(kind, key))


def act(action: ActionGroup, target: Target) -> Rule:
    return Rule(action, target)


#: object collections that have a ``permissions`` sub-collection, and their kinds
#: kinds of object the API derives rather than stores (networks): kind -> finder by
#: id (None: none), registered by the resource module that derives them
DERIVED: dict[Kind, Callable[[Call, str], Any]] = {}

PERMISSION_PARENTS = {"vms": Kind.VM, "clusters": Kind.CLUSTER, "datacenters": Kind.DATACENTER,
                      "hosts": Kind.HOST, "storagedomains": Kind.STORAGEDOMAIN,
                      "disks": Kind.DISK, "templates": Kind.TEMPLATE,
                      "networks": Kind.NETWORK}

V, H, C, D = Kind.VM, Kind.HOST, Kind.CLUSTER, Kind.DATACENTER
S, K, T = Kind.STORAGEDOMAIN, Kind.DISK, Kind.TEMPLATE

RULES: dict[tuple[str, str], Rule] = {
    ("GET", ""): LOGIN,
    # data centers
    ("GET", "/datacenters"): LISTING,
    ("POST", "/datacenters"): act(A.CREATE_STORAGE_POOL, system),
    ("GET", "/datacenters/{id}"): read(D),
    ("PUT", "/datacenters/{id}"): act(A.EDIT_STORAGE_POOL_CONFIGURATION, path(D)),
    ("DELETE", "/datacenters/{id}"): act(A.DELETE_STORAGE_POOL, path(D)),
    ("GET", "/datacenters/{id}/clusters"): read(D),
    ("GET", "/datacenters/{id}/networks"): read(D),
    ("GET", "/datacenters/{dc}/storagedomains"): read(D, "dc"),
    ("POST", "/datacenters/{dc}/storagedomains"): act(A.MANIPULATE_STORAGE_DOMAIN,
                                                      path(D, "dc")),
    ("GET", "/datacenters/{dc}/storagedomains/{id}"): read(S),
    ("DELETE", "/datacenters/{dc}/storagedomains/{id}"): act(A.MANIPULATE_STORAGE_DOMAIN,
                                                             path(S)),
    ("PUT", "/datacenters/{dc}/storagedomains/{id}"): act(
        A.EDIT_STORAGE_DOMAIN_CONFIGURATION, path(S)),
    ("POST", "/datacenters/{dc}/storagedomains/{id}/activate"):
        act(A.MANIPULATE_STORAGE_DOMAIN, path(S)),
    ("POST", "/datacenters/{dc}/storagedomains/{id}/deactivate"):
        act(A.MANIPULATE_STORAGE_DOMAIN, path(S)),
    # clusters
    ("GET", "/clusters"): LISTING,
    ("POST", "/clusters"): act(A.CREATE_CLUSTER, body(D, "data_center")),
    ("GET", "/clusters/{id}"): read(C),
    ("PUT", "/clusters/{id}"): act(A.EDIT_CLUSTER_CONFIGURATION, path(C)),
    ("DELETE", "/clusters/{id}"): act(A.DELETE_CLUSTER, path(C)),
    ("GET", "/clusters/{id}/networks"): read(C),
    ("GET", "/clusterlevels"): LOGIN,
    ("GET", "/clusterlevels/{id}"): LOGIN,
    ("GET", "/schedulingpolicies"): LOGIN,
    ("GET", "/schedulingpolicies/{id}"): LOGIN,
    ("GET", "/macpools"): LOGIN,
    ("GET", "/macpools/{id}"): LOGIN,
    # hosts
    ("GET", "/hosts"): LISTING,
    ("POST", "/hosts"): act(A.CREATE_HOST, body(C, "cluster", "Default")),
    ("GET", "/hosts/{id}"): read(H),
    ("PUT", "/hosts/{id}"): act(A.EDIT_HOST_CONFIGURATION, path(H)),
    ("DELETE", "/hosts/{id}"): act(A.DELETE_HOST, path(H)),
    ("POST", "/hosts/{id}/activate"): act(A.MANIPULATE_HOST, path(H)),
    ("POST", "/hosts/{id}/deactivate"): act(A.MANIPULATE_HOST, path(H)),
    ("POST", "/hosts/{id}/refresh"): act(A.MANIPULATE_HOST, path(H)),
    ("GET", "/hosts/{id}/statistics"): read(H),
    # storage domains and disks
    ("GET", "/storagedomains"): LISTING,
    ("POST", "/storagedomains"): act(A.CREATE_STORAGE_DOMAIN, system),
    ("GET", "/storagedomains/{id}"): read(S),
    ("PUT", "/storagedomains/{id}"): act(A.EDIT_STORAGE_DOMAIN_CONFIGURATION, path(S)),
    ("DELETE", "/storagedomains/{id}"): act(A.DELETE_STORAGE_DOMAIN, path(S)),
    ("GET", "/storagedomains/{id}/disks"): read(S),
    ("GET", "/disks"): LISTING,
    ("POST", "/disks"): act(A.CREATE_DISK, body_domain),
    ("GET", "/disks/{id}"): read(K),
    ("PUT", "/disks/{id}"): act(A.EDIT_DISK_PROPERTIES, path(K)),
    ("DELETE", "/disks/{id}"): act(A.DELETE_DISK, path(K)),
    # templates
    ("GET", "/templates"): LISTING,
    ("POST", "/templates"): act(A.CREATE_TEMPLATE, body(V, "vm")),
    ("GET", "/templates/{id}"): LOGIN,  # the Blank template is everyone's
    ("PUT", "/templates/{id}"): act(A.EDIT_TEMPLATE_PROPERTIES, template),
    ("DELETE", "/templates/{id}"): act(A.DELETE_TEMPLATE, path(T)),
    ("GET", "/templates/{id}/diskattachments"): LOGIN,
    ("GET", "/templates/{id}/nics"): LOGIN,
    # VMs
    ("GET", "/vms"): LISTING,
    ("POST", "/vms"): act(A.CREATE_VM, body(C, "cluster")),
    ("GET", "/vms/{id}"): read(V),
    ("PUT", "/vms/{id}"): act(A.EDIT_VM_PROPERTIES, path(V)),
    ("DELETE", "/vms/{id}"): act(A.DELETE_VM, path(V)),
    ("POST", "/vms/{id}/start"): act(A.VM_BASIC_OPERATIONS, path(V)),
    ("POST", "/vms/{id}/stop"): act(A.VM_BASIC_OPERATIONS, path(V)),
    ("POST", "/vms/{id}/shutdown"): act(A.VM_BASIC_OPERATIONS, path(V)),
    ("POST", "/vms/{id}/suspend"): act(A.VM_BASIC_OPERATIONS, path(V)),
    ("POST", "/vms/{id}/reboot"): act(A.VM_BASIC_OPERATIONS, path(V)),
    ("POST", "/vms/{id}/migrate"): act(A.MIGRATE_VM, path(V)),
    ("POST", "/vms/{id}/diskattachments"): act(A.CONFIGURE_VM_STORAGE, path(V)),
    ("PUT", "/vms/{id}/diskattachments/{att}"): act(A.CONFIGURE_VM_STORAGE, path(V)),
    ("DELETE", "/vms/{id}/diskattachments/{att}"): act(A.CONFIGURE_VM_STORAGE, path(V)),
    ("POST", "/vms/{id}/nics"): act(A.CONFIGURE_VM_NETWORK, path(V)),
    ("PUT", "/vms/{id}/nics/{nic}"): act(A.CONFIGURE_VM_NETWORK, path(V)),
    ("DELETE", "/vms/{id}/nics/{nic}"): act(A.CONFIGURE_VM_NETWORK, path(V)),
    ("POST", "/vms/{id}/snapshots"): act(A.MANIPULATE_VM_SNAPSHOTS, path(V)),
    ("DELETE", "/vms/{id}/snapshots/{snap}"): act(A.MANIPULATE_VM_SNAPSHOTS, path(V)),
    ("POST", "/vms/{id}/snapshots/{snap}/restore"): act(A.MANIPULATE_VM_SNAPSHOTS, path(V)),
    # networks, events, jobs
    ("GET", "/networks"): LOGIN,
    ("GET", "/networks/{id}"): LOGIN,
    ("GET", "/networks/{id}/vnicprofiles"): LOGIN,
    ("GET", "/vnicprofiles"): LOGIN,
    ("GET", "/vnicprofiles/{id}"): LOGIN,
    ("GET", "/events"): LISTING,
    ("GET", "/events/{id}"): LISTING,
    ("POST", "/events"): act(A.INJECT_EXTERNAL_EVENTS, system),
    # tags: everyone reads them; making, renaming and removing them is SuperUser's
    # (DEFAULT), as oVirt keeps tag management to administrators
    ("GET", "/tags"): LOGIN,
    ("GET", "/tags/{id}"): LOGIN,
    ("GET", "/jobs"): LISTING,
    ("GET", "/jobs/{id}"): LISTING,
    ("GET", "/jobs/{id}/steps"): LISTING,
    # users, groups, roles, directories, permissions
    ("GET", "/users"): LISTING,
    ("POST", "/users"): act(A.ADD_USERS_AND_GROUPS_FROM_DIRECTORY, system),
    ("GET", "/users/{id}"): Rule(A.MANIPULATE_USERS, system, self_param="id"),
    ("DELETE", "/users/{id}"): act(A.MANIPULATE_USERS, system),
    ("GET", "/users/{id}/groups"): Rule(A.MANIPULATE_USERS, system, self_param="id"),
    ("GET", "/users/{id}/permissions"): Rule(A.MANIPULATE_USERS, system, self_param="id"),
    ("POST", "/users/{id}/permissions"): act(A.MANIPULATE_PERMISSIONS, body_object),
    ("GET", "/users/{id}/permissions/{perm}"): Rule(A.MANIPULATE_USERS, system,
                                                    self_param="id"),
    ("DELETE", "/users/{id}/permissions/{perm}"): LOGIN,  # checked on the permission's object
    # a user keeps its own SSH keys; another's need MANIPULATE_USERS
    **{(method, f"/users/{{id}}/sshpublickeys{tail}"):
       Rule(A.MANIPULATE_USERS, system, self_param="id")
       for method, tail in (("GET", ""), ("POST", ""), ("GET", "/{key}"), ("PUT", "/{key}"),
                            ("DELETE", "/{key}"))},
    ("GET", "/groups"): act(A.MANIPULATE_USERS, system),
    ("POST", "/groups"): act(A.ADD_USERS_AND_GROUPS_FROM_DIRECTORY, system),
    ("GET", "/groups/{id}"): act(A.MANIPULATE_USERS, system),
    ("DELETE", "/groups/{id}"): act(A.MANIPULATE_USERS, system),
    ("GET", "/groups/{id}/permissions"): act(A.MANIPULATE_USERS, system),
    ("POST", "/groups/{id}/permissions"): act(A.MANIPULATE_PERMISSIONS, body_object),
    ("GET", "/groups/{id}/permissions/{perm}"): act(A.MANIPULATE_USERS, system),
    ("DELETE", "/groups/{id}/permissions/{perm}"): LOGIN,  # checked on the object
    ("GET", "/roles"): LOGIN,
    ("POST", "/roles"): act(A.MANIPULATE_ROLES, system),
    ("GET", "/roles/{id}"): LOGIN,
    ("PUT", "/roles/{id}"): act(A.MANIPULATE_ROLES, system),
    ("DELETE", "/roles/{id}"): act(A.MANIPULATE_ROLES, system),
    ("GET", "/roles/{id}/permits"): LOGIN,
    ("POST", "/roles/{id}/permits"): act(A.MANIPULATE_ROLES, system),
    ("GET", "/roles/{id}/permits/{permit}"): LOGIN,
    ("DELETE", "/roles/{id}/permits/{permit}"): act(A.MANIPULATE_ROLES, system),
    ("GET", "/domains"): LOGIN,
    ("GET", "/domains/{id}"): LOGIN,
    ("GET", "/domains/{id}/users"): act(A.ADD_USERS_AND_GROUPS_FROM_DIRECTORY, system),
    ("GET", "/domains/{id}/groups"): act(A.ADD_USERS_AND_GROUPS_FROM_DIRECTORY, system),
    ("GET", "/permissions"): act(A.MANIPULATE_PERMISSIONS, system),
    ("POST", "/permissions"): act(A.MANIPULATE_PERMISSIONS, system),
    ("GET", "/permissions/{perm}"): act(A.MANIPULATE_PERMISSIONS, system),
    ("DELETE", "/permissions/{perm}"): act(A.MANIPULATE_PERMISSIONS, system),
}
for _coll, _kind in PERMISSION_PARENTS.items():
    RULES[("GET", f"/{_coll}/{{id}}/permissions")] = read(_kind)
    RULES[("POST", f"/{_coll}/{{id}}/permissions")] = act(A.MANIPULATE_PERMISSIONS,
                                                          path(_kind))
    RULES[("GET", f"/{_coll}/{{id}}/permissions/{{perm}}")] = read(_kind)
    RULES[("DELETE", f"/{_coll}/{{id}}/permissions/{{perm}}")] = act(
        A.MANIPULATE_PERMISSIONS, path(_kind))

#: a route nobody wrote a rule for: SuperUser only
DEFAULT = act(A.CONFIGURE_ENGINE, system)


def rule_for(method: str, route: str) -> Rule:
    """The rule of a route; read-only VM sub-collections (cdroms, statistics ...) need
    any role on the VM; anything else without a rule needs SuperUser."""
    found = RULES.get((method, route))
    if found is not None:
        return found
    if method == "GET" and route.startswith("/vms/{id}/"):
        return read(Kind.VM)
    return DEFAULT


@dataclass
class Checked:
    """What the check of one request found (for the audit record)."""

    target: ObjectRef | None
    decision: Decision | None


def authorize(call: Call, method: str, route: str, authz: Authz) -> Checked:
    """Check one request; raises :class:`Forbidden` (403) when refused."""
    rule = rule_for(method, route)
    tree = StoreTree(call.m.store)
    for kind, by_id in DERIVED.items():
        tree.derive(kind, functools.partial(by_id, call))
    call.tree = tree
    user = authz.store.index().users.get(call.user)
    admin = call.user == ADMIN
    if rule.listing or rule.target is None:
        call.visible = Visibility(authz.store.index(), user, tree, everything=admin)
        return Checked(None, None)
    if rule.self_param and user is not None and call.params.get(rule.self_param) == user.id:
        return Checked(None, None)
    try:
        target = rule.target(call, tree)
    except NotFound:
        raise
    decision = authz.check(call.user, rule.action, target, tree)
    if not decision.granted:
        authz.audit(target.id, f"Refused: {method} {route or '/'} by {call.user}: "
                    f"{decision.message()}", code=codes.DENIED, level="warning",
                    correlation_id=call.query.get("correlation_id"))
        raise Forbidden(decision.message())
    return Checked(target, decision)


def record(call: Call, method: str, route: str, checked: Checked, authz: Authz) -> None:
    """The audit record of a change, written when it was allowed and before it runs
    (so the change's own events, with the same correlation id, follow it); reads
    are not recorded."""
    if method not in ("POST", "PUT", "DELETE"):
        return
    target = checked.target
    obj_id = call.params.get("id") or (target.id if target else SYSTEM.id)
    on = f" on {target}" if target is not None else ""
    how = ""
    if checked.decision is not None and checked.decision.role is not None:
        how = f" (as {checked.decision.role.name} on {checked.decision.via})"
    authz.audit(obj_id, f"{call.user}: {method} {route or '/'}{on}{how}", code=codes.ACTION,
                correlation_id=call.query.get("correlation_id"))


def cleanup(call: Call, method: str, route: str, authz: Authz) -> None:
    """After an object was removed, the permissions on it go too (as in oVirt)."""
    if method == "DELETE" and route.count("/") == 2 and route.endswith("/{id}"):
        authz.store.forget_object(call.params["id"])
