#!/usr/bin/env bash
# A throwaway OpenLDAP directory for the campus sign-in tests (tests/ldap.rs, bench/login):
#
#   bash tests/slapd.sh start DIR   prints "ldap://127.0.0.1:PORT ldaps://127.0.0.1:PORT2"
#   bash tests/slapd.sh stop DIR
#
# `start` installs Debian's slapd and ldap-utils when slapd is missing, makes a test CA and a
# server certificate with openssl (DIR/ca.pem; the certificate names 127.0.0.1 and
# localhost, or what SLAPD_CERT_NAMES says, e.g. "DNS:other.example"), and starts slapd on
# two free ports of 127.0.0.1: plain LDAP (StartTLS offered) and LDAPS. The directory
# (suffix dc=campus,dc=example) holds, all with the password in DIR/password:
#
#   cn=labbeam,ou=services      the service account: reads people and groups
#   uid=ann   ou=people         in cn=students
#   uid=sam   ou=people         in cn=students
#   uid=tom   ou=people         in cn=staff
#   uid=ted   ou=people         in cn=labtech
#   uid=nina  ou=people         in cn=physics, which is itself a member of cn=staff (nested)
#   uid=solo  ou=people         in no group
#   uid=dora  ou=people         employeeType: disabled (the tests' user_filter leaves her out)
#
# Groups are groupOfNames under ou=groups; slapd's memberof overlay keeps each person's
# memberOf (direct memberships only). The admin DN cn=admin,dc=campus,dc=example with the
# same password may change anything (the tests move people between groups with ldapmodify).
# Signed-in people and the service account read entries (not passwords); anonymous
# clients read nothing. Runs slapd as
# the calling user; nothing listens beyond 127.0.0.1.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/free-port.sh"

die() {
  echo "tests/slapd.sh: $*" >&2
  exit 1
}

[ $# -eq 2 ] || die "usage: bash tests/slapd.sh start|stop DIR"
action=$1
[ -n "$2" ] || die "DIR must not be empty"
if [ "$action" = start ]; then
  mkdir -p "$2" 2>/dev/null || die "cannot create $2"
fi
[ -d "$2" ] || die "$2 is not a folder"
dir=$(cd "$2" && pwd)
SUFFIX="dc=campus,dc=example"
PASSWORD="campus-directory-test-1"

running() {
  [ -f "$dir/slapd.pid" ] && kill -0 "$(cat "$dir/slapd.pid")" 2>/dev/null
}

urls() {
  echo "ldap://127.0.0.1:$(cat "$dir/port") ldaps://127.0.0.1:$(cat "$dir/tls-port")"
}

certificates() {
  local names=${SLAPD_CERT_NAMES:-IP:127.0.0.1,DNS:localhost}
  (
    cd "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=Campus test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout ca.key -out ca.pem
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=ldap.campus.example" \
      -keyout server.key -out server.csr
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$names" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile server.ext \
      -out server.pem
  ) >"$dir/openssl.log" 2>&1 || die "openssl failed; see $dir/openssl.log"
}

config() {
  cat >"$dir/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile $dir/slapd.pid
argsfile $dir/slapd.args
TLSCACertificateFile $dir/ca.pem
TLSCertificateFile $dir/server.pem
TLSCertificateKeyFile $dir/server.key

database mdb
suffix "$SUFFIX"
rootdn "cn=admin,$SUFFIX"
rootpw $PASSWORD
directory $dir/db
maxsize 104857600
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint true
access to attrs=userPassword by self write by anonymous auth by * none
access to * by dn.exact="cn=labbeam,ou=services,$SUFFIX" read by users read by * none
EOF
}

person() {
  local uid=$1 name=$2 extra=${3:-}
  cat <<EOF
dn: uid=$uid,ou=people,$SUFFIX
objectClass: inetOrgPerson
uid: $uid
cn: $name
sn: ${name##* }
mail: $uid@campus.example
userPassword: $PASSWORD
$extra

EOF
}

entries() {
  cat <<EOF
dn: $SUFFIX
objectClass: dcObject
objectClass: organization
dc: campus
o: Campus

dn: ou=people,$SUFFIX
objectClass: organizationalUnit
ou: people

dn: ou=groups,$SUFFIX
objectClass: organizationalUnit
ou: groups

dn: ou=services,$SUFFIX
objectClass: organizationalUnit
ou: services

dn: cn=labbeam,ou=services,$SUFFIX
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: labbeam
userPassword: $PASSWORD

EOF
  person ann "Ann Student"
  person sam "Sam Student"
  person tom "Tom Teacher"
  person ted "Ted Technician"
  person nina "Nina Physicist"
  person solo "Solo Nogroup"
  person dora "Dora Disabled" "employeeType: disabled"
  cat <<EOF
dn: cn=students,ou=groups,$SUFFIX
objectClass: groupOfNames
cn: students
member: uid=ann,ou=people,$SUFFIX
member: uid=sam,ou=people,$SUFFIX

dn: cn=physics,ou=groups,$SUFFIX
objectClass: groupOfNames
cn: physics
member: uid=nina,ou=people,$SUFFIX

dn: cn=staff,ou=groups,$SUFFIX
objectClass: groupOfNames
cn: staff
member: uid=tom,ou=people,$SUFFIX
member: cn=physics,ou=groups,$SUFFIX

dn: cn=labtech,ou=groups,$SUFFIX
objectClass: groupOfNames
cn: labtech
member: uid=ted,ou=people,$SUFFIX
member: uid=dora,ou=people,$SUFFIX
EOF
}

case "$action" in
  start)
    if ! command -v slapd >/dev/null 2>&1 && [ ! -x /usr/sbin/slapd ]; then
      echo "tests/slapd.sh: installing Debian's slapd and ldap-utils" >&2
      sudo=""
      [ "$(id -u)" -eq 0 ] || sudo="sudo"
      export DEBIAN_FRONTEND=noninteractive
      $sudo apt-get update -qq >&2 || die "apt-get update failed"
      $sudo apt-get install -y -qq --no-install-recommends slapd ldap-utils >&2 || die "apt-get install slapd failed"
    fi
    command -v openssl >/dev/null 2>&1 || die "needs openssl"
    if running; then
      urls
      exit 0
    fi
    printf '%s' "$PASSWORD" >"$dir/password"
    [ -f "$dir/ca.pem" ] || certificates
    config
    fresh=""
    if [ ! -d "$dir/db" ]; then
      mkdir -p "$dir/db"
      fresh=yes
    fi
    started=""
    for _ in 1 2 3 4 5; do
      port=$(free_port)
      tls_port=$(free_port)
      [ "$port" != "$tls_port" ] || continue
      if /usr/sbin/slapd -f "$dir/slapd.conf" -h "ldap://127.0.0.1:$port/ ldaps://127.0.0.1:$tls_port/" \
        >"$dir/slapd.log" 2>&1; then
        for _ in $(seq 1 50); do
          running && break
          sleep 0.1
        done
        if running; then
          started=yes
          break
        fi
      fi
    done
    [ -n "$started" ] || die "slapd did not start; see $dir/slapd.log (and run slapd -d 1 -f $dir/slapd.conf)"
    echo "$port" >"$dir/port"
    echo "$tls_port" >"$dir/tls-port"
    for _ in $(seq 1 50); do
      ldapsearch -x -H "ldap://127.0.0.1:$port" -b "" -s base >/dev/null 2>&1 && break
      sleep 0.1
    done
    if [ -n "$fresh" ]; then
      # Added over LDAP, not with slapadd, so the memberof overlay sees the groups.
      entries | ldapadd -x -H "ldap://127.0.0.1:$port" -D "cn=admin,$SUFFIX" -w "$PASSWORD" >"$dir/ldapadd.log" 2>&1 ||
        die "loading the test directory failed; see $dir/ldapadd.log"
    fi
    urls
    ;;
  stop)
    if running; then
      kill "$(cat "$dir/slapd.pid")"
      for _ in $(seq 1 50); do
        running || break
        sleep 0.1
      done
    fi
    ;;
  *)
    die "usage: bash tests/slapd.sh start|stop DIR (not $action)"
    ;;
esac
