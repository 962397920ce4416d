"""Event codes of users, logins and permissions (oVirt's AuditLogType where it has
one; virtplane's own are 100030 and up, next to the engine's 1000xx)."""

from __future__ import annotations

USER_LOGIN = 30  # USER_VDC_LOGIN
USER_LOGOUT = 31  # USER_VDC_LOGOUT
USER_LOGIN_FAILED = 114  # USER_VDC_LOGIN_FAILED
USER_ADD = 149  # USER_ADD
PERMISSION_ADD = 850  # PERMISSION_ADD
PERMISSION_DELETE = 851  # PERMISSION_DELETE
USER_LOCKED = 100030
USER_REMOVE = 100031
GROUP_ADD = 100032
ROLE_ADD = 100033
ROLE_REMOVE = 100034
#: a refused call or command (who, what, on what, the missing permission)
DENIED = 100035
#: a change made through the API or a command through the engine (who, what)
ACTION = 100036
