#!/usr/bin/env bash
# Start a throw-away OpenLDAP slapd (Debian's package) on loopback, for tests.
#
#   tools/start-slapd.sh DIR PORT PASSWORD_FILE [SEED.ldif]
#
# Everything lives in DIR: a cn=config made with slapadd (DIR/config), an mdb
# database (DIR/db), the pid file (DIR/slapd.pid) and the log (DIR/slapd.log).
# The suffix is dc=example,dc=org, its root DN cn=admin,dc=example,dc=org with
# the password in PASSWORD_FILE (never on a command line). No systemd, no
# /etc/ldap changes; listens on ldap://127.0.0.1:PORT only. A SEED file is
# loaded with ldapadd once slapd answers. Stop it with: kill "$(cat DIR/slapd.pid)".
set -euo pipefail

dir=${1:?usage: start-slapd.sh DIR PORT PASSWORD_FILE [SEED.ldif]}
port=${2:?port}
pwfile=${3:?password file}
seed=${4:-}
SLAPD=${SLAPD:-/usr/sbin/slapd}
SUFFIX="dc=example,dc=org"
ROOTDN="cn=admin,$SUFFIX"

if [[ ! -x $SLAPD ]]; then
    echo "start-slapd: $SLAPD missing (apt-get install slapd ldap-utils)" >&2
    exit 3
fi
mkdir -p "$dir/config" "$dir/db"
chmod 0700 "$dir"
schema=/etc/ldap/schema
password=$(<"$pwfile")
cat >"$dir/config.ldif" <<LDIF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $dir/slapd.pid

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file://$schema/core.ldif
include: file://$schema/cosine.ldif
include: file://$schema/inetorgperson.ldif

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: $SUFFIX
olcDbDirectory: $dir/db
olcDbMaxSize: 67108864
olcRootDN: $ROOTDN
olcRootPW: $password
olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {1}to * by * read
LDIF
chmod 0600 "$dir/config.ldif"
if [[ ! -e $dir/config/cn=config.ldif ]]; then
    slapadd -n0 -F "$dir/config" -l "$dir/config.ldif" >"$dir/slapadd.log" 2>&1 || {
        cat "$dir/slapadd.log" >&2; exit 1; }
fi
rm -f "$dir/config.ldif"
# -d 0: stay in the foreground of this background job (no fork, no syslog)
"$SLAPD" -h "ldap://127.0.0.1:$port/" -F "$dir/config" -d 0 >"$dir/slapd.log" 2>&1 &
for _ in $(seq 100); do
    if ldapsearch -x -H "ldap://127.0.0.1:$port" -b "" -s base -LLL >/dev/null 2>&1; then
        break
    fi
    sleep 0.05
done
if [[ ! -s $dir/slapd.pid ]]; then
    echo "start-slapd: slapd did not start; its log:" >&2
    cat "$dir/slapd.log" >&2
    exit 1
fi
if [[ -n $seed ]]; then
    ldapadd -x -H "ldap://127.0.0.1:$port" -D "$ROOTDN" -y "$pwfile" -f "$seed" >/dev/null
fi
echo "start-slapd: ldap://127.0.0.1:$port ($SUFFIX), pid $(cat "$dir/slapd.pid")"
