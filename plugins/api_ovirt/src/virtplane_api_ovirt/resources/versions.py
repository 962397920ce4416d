"""Compatibility versions as the API spells them: the cluster levels virtplane's
architectures know, and ``<version><major>4</major><minor>8</minor></version>``."""

from __future__ import annotations

from virtplane_api_ovirt import parse
from virtplane_api_ovirt.render import Node

#: cluster levels virtplane's architectures know (``/clusterlevels``)
LEVELS = ("4.2", "4.3", "4.4", "4.5", "4.6", "4.7", "4.8")


def version(text: str) -> Node:
    major, _, minor = text.partition(".")
    return {"major": int(major or 4), "minor": int(minor or 0)}


def version_text(node: Node | None, default: str) -> str:
    major, minor = parse.integer(node, "major"), parse.integer(node, "minor")
    if major is None:
        return default
    return f"{major}.{minor or 0}"
