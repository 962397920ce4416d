"""virtplane's engine: a long-running process that watches hosts, VMs and storage,
runs long operations as jobs, logs coded events and serves the ``virtplane`` CLI.

Modules, one duty each:

==================  ==========================================================
``settings``        the ``[engine]`` configuration keys, checked
``codes``           the one table of event codes (oVirt's audit-log codes)
``hoststate``       oVirt's host state machine (Up/Connecting/NonResponsive)
``locks``           one operation per object at a time
``storewatch``      cheap change detection and event reads on the state file
``monitoring``      host polls, VM reconciliation, storage probes
``jobs``            jobs: queued, started, progress, finished/failed/aborted
``streams``         per-thread stdout/stderr for commands run in the engine
``commands``        running a CLI command line inside the engine
``server``          the loopback HTTP API (token from the endpoint file)
``endpoint``        the endpoint file and the single-engine lock
``client``          the CLI's side: forwarding a command line to the engine
``engine``          the process: asyncio loops, thread pool, signals
``logs``            JSON-lines logging on stderr
``cli``             ``virtplane engine``, ``virtplane job``, ``virtplane events``
==================  ==========================================================
"""

from __future__ import annotations

__version__ = "0.1.0"
