"""``[plugin.api_ovirt]`` and its directories: values of the wrong type are a
ConfigError naming the key (found by tests/security/test_config_fuzz.py)."""

from __future__ import annotations

import pytest

from virtplane import config
from virtplane.errors import ConfigError


def _settings(tmp_path, text: str):
    from virtplane_api_ovirt.authz import Settings

    path = tmp_path / "virtplane.toml"
    path.write_text(text)
    return Settings.from_config(config.load(path, env={}))


_DIR = '[plugin.api_ovirt.directories.corp]\nurl = "ldap://x"\nbase_dn = "dc=x"\n'


@pytest.mark.parametrize(("text", "message"), [
    # was: ValueError / TypeError from float()
    (_DIR + 'timeout = "soon"', "directories.corp.timeout = 'soon' is not allowed; it must "
                                "be a number of seconds above 0"),
    (_DIR + "timeout = [1]", "directories.corp.timeout = [1] is not allowed"),
    (_DIR + "timeout = -1", "directories.corp.timeout = -1 is not allowed"),  # was: loaded
    (_DIR + "bind_dn = 5", "directories.corp.bind_dn = 5 is not allowed; it must be a string"),
    # was: loaded as 5, 1 and 1 (int("5"), int(1.9), int(True))
    ('[plugin.api_ovirt]\nmax_failed_logins = "5"', "plugin.api_ovirt.max_failed_logins = '5'"
                                                    " is not allowed; it must be an integer"),
    ("[plugin.api_ovirt]\nmax_failed_logins = 1.9", "max_failed_logins = 1.9 is not allowed"),
    ("[plugin.api_ovirt]\nmax_failed_logins = true", "max_failed_logins = True is not allowed"),
    # was: "[plugin.api_ovirt]: could not convert string to float: 'abc'" (no key named)
    ('[plugin.api_ovirt]\nlockout_seconds = "abc"', "plugin.api_ovirt.lockout_seconds = 'abc'"
                                                    " is not allowed"),
])
def test_wrong_types_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        _settings(tmp_path, text)
    assert str(info.value).startswith(str(tmp_path / "virtplane.toml") + ": ")
    assert message in str(info.value)


def test_right_types_load(tmp_path):
    s = _settings(tmp_path, "[plugin.api_ovirt]\nmax_failed_logins = 3\nlockout_seconds = 60\n"
                  + _DIR + "timeout = 2\n")
    assert (s.max_failed_logins, s.lockout_seconds) == (3, 60.0)
    assert s.directories is not None and s.directories["corp"].timeout == 2.0
