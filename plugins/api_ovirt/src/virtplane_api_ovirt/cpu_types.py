"""oVirt's CPU type names (``Intel Skylake Server Family``) and the libvirt CPU
models virtplane's architecture drivers list (``Skylake-Server``).

oVirt clients name a cluster's CPU type as the engine spells it (the SDK's
``add_cluster.py``, Ansible's ``cpu_type: Intel SandyBridge Family``); the API takes
either spelling, stores the libvirt model, and shows oVirt's name where there is
one, so a client reads back what it sent. Families oVirt dropped after cluster
level 4.2 (Conroe, Penryn, Opteron G1-G3) have no model here either, and are
refused as oVirt 4.3 and later refuse them.
"""

from __future__ import annotations

from virtplane.errors import InvalidInput

#: oVirt CPU type name -> libvirt CPU model (cluster levels 4.3 to 4.8)
OVIRT_TO_MODEL = {
    "Intel Nehalem Family": "Nehalem",
    "Secure Intel Nehalem Family": "Nehalem-IBRS",
    "Intel Westmere Family": "Westmere",
    "Secure Intel Westmere Family": "Westmere-IBRS",
    "Intel SandyBridge Family": "SandyBridge",
    "Secure Intel SandyBridge Family": "SandyBridge-IBRS",
    "Intel IvyBridge Family": "IvyBridge",
    "Secure Intel IvyBridge Family": "IvyBridge-IBRS",
    "Intel Haswell Family": "Haswell-noTSX",
    "Secure Intel Haswell Family": "Haswell-noTSX-IBRS",
    "Intel Broadwell Family": "Broadwell-noTSX",
    "Secure Intel Broadwell Family": "Broadwell-noTSX-IBRS",
    "Intel Skylake Client Family": "Skylake-Client",
    "Secure Intel Skylake Client Family": "Skylake-Client-IBRS",
    "Intel Skylake Server Family": "Skylake-Server",
    "Secure Intel Skylake Server Family": "Skylake-Server-IBRS",
    "Intel Cascadelake Server Family": "Cascadelake-Server",
    "Intel Icelake Server Family": "Icelake-Server",
    "Intel SapphireRapids Server Family": "SapphireRapids",
    "AMD Opteron G4": "Opteron_G4",
    "AMD Opteron G5": "Opteron_G5",
    "AMD EPYC": "EPYC",
    "Secure AMD EPYC": "EPYC-IBPB",
    "AMD EPYC Rome": "EPYC-Rome",
    "AMD EPYC Milan": "EPYC-Milan",
    "AMD EPYC Genoa": "EPYC-Genoa",
    "IBM POWER8": "POWER8",
    "IBM POWER9": "POWER9",
    "IBM POWER10": "POWER10",
}
MODEL_TO_OVIRT = {v: k for k, v in OVIRT_TO_MODEL.items()}
#: families oVirt removed after cluster level 4.2
DROPPED = ("Intel Conroe Family", "Intel Penryn Family", "AMD Opteron G1", "AMD Opteron G2",
           "AMD Opteron G3")


def ovirt_name(model: str) -> str:
    """How oVirt names a libvirt model (the model itself when oVirt has no name)."""
    return MODEL_TO_OVIRT.get(model, model)


def to_model(name: str, arch: str, models: list[str]) -> str:
    """The libvirt model of a CPU type named either way; 400 when ``arch`` has none."""
    model = OVIRT_TO_MODEL.get(name, name)
    if model in models:
        return model
    known = ", ".join(ovirt_name(m) for m in models)
    if name in DROPPED:
        raise InvalidInput(f"CPU type {name!r} is not supported at cluster levels 4.3 and "
                           f"later (oVirt dropped it); {arch} supports: {known}")
    raise InvalidInput(f"CPU type {name!r} is not supported on {arch}; supported: {known}")
