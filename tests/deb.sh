#!/usr/bin/env bash
# Tests the .deb the way an IT admin meets it: builds it with cargo-deb, runs lintian,
# checks the hand-written man page against `labbeam --help`, judges the systemd unit
# (`systemd-analyze verify` and `security`, exposure at most 2.0), then installs it with
# dpkg into a throwaway Debian bookworm root (debootstrap, cached under
# /var/cache/labbeam-tests), never into this machine's own system.
#
# systemd is not PID 1 here, so the installed binary is started the way labbeam.service
# would start it, read off the installed unit: its user, capabilities, limits, umask,
# working directory, clean environment and ExecStart, with the state directory made as
# StateDirectory= makes it and the file system as its sandbox shows it (read-only but the
# state directory, private /tmp, no /home, restricted /proc). It runs in a private network
# namespace, so the packaged 0.0.0.0:443 is used as is, and under strace, so the system
# calls, memory mappings and socket families it uses are checked against the unit's
# SystemCallFilter=, MemoryDenyWriteExecute= and RestrictAddressFamilies=.
#
# Then: log in over HTTPS with the first admin password it printed, change it, stop it
# with SIGTERM (exit 0), upgrade to the package with a bumped version, check that data,
# certificate, password and a local config edit survived, remove, purge.
#
# Installs what it needs when missing (apt: lintian, debootstrap, systemd, iproute2,
# util-linux, strace, python3, curl, openssl, dpkg-dev; cargo: cargo-deb 3). Runs as root
# (chroot, namespaces). LABBEAM_SKIP_DEB=1 skips it for quick local runs; CI (CI=true)
# always runs it. Ends with the line `N passed, N failed`.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

if [ -n "${LABBEAM_SKIP_DEB:-}" ]; then
  if [ -n "${CI:-}" ]; then
    echo "deb: LABBEAM_SKIP_DEB is ignored in CI"
  else
    echo "deb: skipped (LABBEAM_SKIP_DEB is set)"
    exit 0
  fi
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deb: must run as root (it builds a chroot and network namespaces)" >&2
  exit 1
fi

SUITE=bookworm
MIRROR=${LABBEAM_DEB_MIRROR:-http://deb.debian.org/debian}
# systemd: the unit is verified against the root's own systemd, and enabled there by dpkg.
ROOT_PACKAGES=adduser,systemd
CACHE=/var/cache/labbeam-tests
MAX_EXPOSURE=2.0
HOST_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

passed=0
failed=0
pass() { passed=$((passed + 1)); printf '  ok    %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf '  FAIL  %s\n' "$1"; }
# check NAME COMMAND...: one check, passed when COMMAND succeeds.
check() {
  local name=$1
  shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}
step() { printf '\n--> %s\n' "$*"; }
# logged FILE CMD...: runs CMD with its output kept in FILE and shown indented.
logged() {
  local out=$1 status=0
  shift
  "$@" >"$out" 2>&1 || status=$?
  sed 's/^/  | /' "$out"
  return $status
}
finish() {
  echo
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
# A step without which nothing after it can be checked.
fatal() {
  fail "$1"
  finish || true
  exit 1
}

WORK=$(mktemp -d /tmp/labbeam-deb.XXXXXX)
ROOT=$WORK/root
NETNS=labbeam-deb-$$
SERVER_PID=
LABBEAM_PID=

cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$LABBEAM_PID" "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  ip netns del "$NETNS" 2>/dev/null || true
  # Mounts are only ever made inside private mount namespaces (see in_root), so nothing
  # of the host can be reached through $ROOT; check anyway before deleting it.
  if grep -qE " ${ROOT}[/ ]" /proc/self/mounts; then
    echo "deb: something is still mounted under $ROOT; leaving $WORK in place" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# --- tools -------------------------------------------------------------------------

step "tools"
missing=()
for pair in lintian:lintian debootstrap:debootstrap systemd-analyze:systemd ip:iproute2 \
  setpriv:util-linux unshare:util-linux strace:strace python3:python3 curl:curl openssl:openssl dpkg-shlibdeps:dpkg-dev; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! cargo deb --version 2>/dev/null | grep -q ' 3\.'; then
  echo "installing cargo-deb 3"
  cargo install cargo-deb --locked --version '^3.8' --quiet
fi
cargo deb --version

# --- build -------------------------------------------------------------------------

step "build the package"
start_time=$SECONDS
mkdir -p "$WORK/v1" "$WORK/v2"
cargo deb -p labbeam --locked --output "$WORK/v1/" || fatal "cargo deb builds the package"
DEB=$(ls "$WORK"/v1/labbeam_*.deb)
VERSION=$(dpkg-deb -f "$DEB" Version)
pass "cargo deb builds $(basename "$DEB") ($(du -k "$DEB" | cut -f1) KiB, built in $((SECONDS - start_time)) s)"
# The upgrade: the same build, packaged again with the Debian revision bumped.
cargo deb -p labbeam --locked --no-build --deb-revision "$(( ${VERSION##*-} + 1 ))" --output "$WORK/v2/" \
  || fatal "cargo deb packages the upgrade"
DEB2=$(ls "$WORK"/v2/labbeam_*.deb)
VERSION2=$(dpkg-deb -f "$DEB2" Version)
check "upgrade package has a higher version ($VERSION -> $VERSION2)" dpkg --compare-versions "$VERSION2" gt "$VERSION"
dpkg-deb -x "$DEB" "$WORK/extracted"
BIN=$WORK/extracted/usr/bin/labbeam

step "package contents"
dpkg-deb -I "$DEB" | sed -n '/Package:/,$p'
dpkg-deb -c "$DEB" | awk '{print $1, $2, $6}'
contents=$(dpkg-deb -c "$DEB" | awk '{print $6}')
for path in ./usr/bin/labbeam ./usr/lib/systemd/system/labbeam.service ./etc/labbeam/labbeam.toml \
  ./usr/share/man/man1/labbeam.1.gz ./usr/share/doc/labbeam/changelog.Debian.gz ./usr/share/doc/labbeam/copyright; do
  check "package ships $path" grep -qx "$path" <<<"$contents"
done
check "/etc/labbeam/labbeam.toml is a conffile" \
  sh -c "dpkg-deb --ctrl-tarfile '$DEB' | tar -xOf - ./conffiles | grep -qx /etc/labbeam/labbeam.toml"

step "lintian"
lintian_out=$WORK/lintian.txt
if lintian --fail-on error,warning --display-info "$DEB" >"$lintian_out" 2>&1; then lintian_ok=true; else lintian_ok=false; fi
sed 's/^/  | /' "$lintian_out"
check "lintian: no errors or warnings (overrides: packaging/lintian-overrides)" $lintian_ok

step "man page"
man_text=$(MANWIDTH=200 man --warnings -l "$REPO/packaging/labbeam.1" 2>"$WORK/man-warnings.txt")
check "man page renders without groff warnings" test ! -s "$WORK/man-warnings.txt"
cat "$WORK/man-warnings.txt"
# The man page is written by hand: every subcommand and flag the binary knows must be in it.
# Walks `--help` through every subcommand: each command path ("user add") and each flag
# must appear in the rendered page.
man_flat=$(tr -s ' \n' '  ' <<<"$man_text")
undocumented=()
document_check() {
  local help sub flag
  help=$("$BIN" "$@" --help)
  [ $# -eq 0 ] || grep -qF -- "labbeam $*" <<<"$man_flat" || undocumented+=("'labbeam $*'")
  for flag in $(grep -oE -- '--[a-z][a-z-]*' <<<"$help" | sort -u); do
    [ "$flag" = --help ] || grep -qF -- "$flag" <<<"$man_flat" || undocumented+=("$* $flag")
  done
  for sub in $(sed -n '/^Commands:/,/^$/p' <<<"$help" | awk 'NR > 1 && NF { print $1 }'); do
    [ "$sub" = help ] || document_check "$@" "$sub"
  done
}
document_check
check "man page documents every subcommand and flag of --help${undocumented[*]:+ (missing: ${undocumented[*]})}" \
  test ${#undocumented[@]} -eq 0

# --- the unit ----------------------------------------------------------------------

step "systemd unit"
UNIT=$REPO/systemd/labbeam.service
if systemd-analyze security --offline=true --threshold="$(awk "BEGIN{print $MAX_EXPOSURE*10}")" "$UNIT" >"$WORK/security.txt" 2>&1
then security_ok=true; else security_ok=false; fi
grep -E '^✗|Overall' "$WORK/security.txt" | sed 's/^/  | /'
exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$WORK/security.txt")
check "systemd-analyze security: exposure ${exposure:-?} <= $MAX_EXPOSURE" \
  sh -c "$security_ok && [ -n '$exposure' ] && awk 'BEGIN{exit !($exposure <= $MAX_EXPOSURE)}'"

# --- the throwaway root ------------------------------------------------------------

step "throwaway Debian $SUITE root"
key=$(printf '%s %s %s' "$SUITE" "$ROOT_PACKAGES" "$(dpkg --print-architecture)" | sha256sum | cut -c1-12)
tarball=$CACHE/$SUITE-minbase-$key.tar
mkdir -p "$ROOT" "$CACHE"
if [ ! -s "$tarball" ]; then
  start_time=$SECONDS
  debootstrap --variant=minbase --include="$ROOT_PACKAGES" "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log"; fatal "debootstrap $SUITE"; }
  rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*
  tar -C "$ROOT" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  echo "  debootstrap took $((SECONDS - start_time)) s; cached as $tarball"
else
  tar -C "$ROOT" -xf "$tarball"
  echo "  unpacked $tarball"
fi
cp "$DEB" "$ROOT/tmp/labbeam-v1.deb"
cp "$DEB2" "$ROOT/tmp/labbeam-v2.deb"

# in_root CMD...: runs CMD chrooted into $ROOT with /proc mounted in a private mount
# namespace (the mount disappears with the process) and a minimal environment. Every
# layer execs the next, so a background in_root's PID is that of CMD itself.
IN_ROOT=(unshare --mount --propagation private -- sh -c 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"'
  "$ROOT" env -i PATH="$HOST_PATH" LANG=C.UTF-8)
in_root() { "${IN_ROOT[@]}" "$@"; }

step "install (dpkg -i)"
if in_root dpkg -i /tmp/labbeam-v1.deb >"$WORK/install.txt" 2>&1; then install_ok=true; else install_ok=false; fi
sed 's/^/  | /' "$WORK/install.txt"
$install_ok || fatal "dpkg -i installs the package"
pass "dpkg -i installs the package"
check "installed version is $VERSION" \
  test "$(chroot "$ROOT" dpkg-query -W -f='${Status} ${Version}' labbeam)" = "install ok installed $VERSION"
check "install message says where the first admin password is" grep -q "journalctl -u labbeam" "$WORK/install.txt"
check "install message says how to open the portal" grep -q "https://" "$WORK/install.txt"
check "system user labbeam exists, with no login shell" \
  sh -c "chroot '$ROOT' getent passwd labbeam | grep -Eq '^labbeam:x:[0-9]{1,3}:[0-9]+:.*:/usr/sbin/nologin$'"
WANTS=$ROOT/etc/systemd/system/multi-user.target.wants/labbeam.service
check "labbeam.service is enabled (multi-user.target wants it)" test -L "$WANTS"

# The unit as installed is what the rest follows.
INSTALLED_UNIT=$ROOT/usr/lib/systemd/system/labbeam.service
unit_value() { sed -n "s/^$1=//p" "$INSTALLED_UNIT" | tail -n 1; }
SVC_USER=$(unit_value User)
SVC_GROUP=$(unit_value Group)
SVC_EXEC=$(unit_value ExecStart)
SVC_DIR=$(unit_value WorkingDirectory)
SVC_UMASK=$(unit_value UMask)
SVC_STATE=/var/lib/$(unit_value StateDirectory)
SVC_STATE_MODE=$(unit_value StateDirectoryMode)
SVC_CAPS=$(unit_value AmbientCapabilities | tr '[:upper:]' '[:lower:]' | sed 's/cap_//g; s/ \+/,+/g; s/^/+/')
SVC_NOFILE=$(unit_value LimitNOFILE)
proc_options=(defaults)
case "$(unit_value ProtectProc)" in noaccess | invisible | ptraceable) proc_options+=("hidepid=$(unit_value ProtectProc)") ;; esac
[ "$(unit_value ProcSubset)" != pid ] || proc_options+=(subset=pid)
SVC_PROC_OPTIONS=$(IFS=,; echo "${proc_options[*]}")
# Raising the hard limit needs CAP_SYS_RESOURCE, which some sandboxes (this test's CI
# among them) withhold even from root: then the test runs at the highest limit it can set.
hard_nofile=$(ulimit -Hn)
if [ "$hard_nofile" != unlimited ] && [ "$hard_nofile" -lt "$SVC_NOFILE" ]; then
  echo "  note: LimitNOFILE=$SVC_NOFILE lowered to this machine's hard limit $hard_nofile"
  SVC_NOFILE=$hard_nofile
fi
check "installed unit is systemd/labbeam.service" cmp -s "$INSTALLED_UNIT" "$UNIT"
verify_out=$(systemd-analyze verify --man=no --root="$ROOT" labbeam.service 2>&1) && verify_ok=true || verify_ok=false
[ -z "$verify_out" ] || sed 's/^/  | /' <<<"$verify_out"
check "systemd-analyze verify: the installed unit has no errors or warnings" \
  sh -c "$verify_ok && [ -z '$(tr -d "'" <<<"$verify_out")' ]"
CONFIG=$(sed -n 's/.*--config \([^ ]*\).*/\1/p' <<<"$SVC_EXEC")
check "the unit runs '$SVC_EXEC' as $SVC_USER:$SVC_GROUP" \
  test "$SVC_EXEC" = "/usr/bin/labbeam serve --config /etc/labbeam/labbeam.toml" -a "$SVC_USER" = labbeam

# AS_SERVICE CMD...: runs CMD in the root as labbeam.service runs its ExecStart. The
# file system as the unit's sandbox shows it: all read-only (ProtectSystem=strict) but the
# state directory, an empty private /tmp (PrivateTmp=), empty /home and /root
# (ProtectHome=), /proc mounted with the unit's ProtectProc= and ProcSubset= (hidepid=,
# subset=). Then its LimitNOFILE, user and group, only its
# ambient capabilities (also the bounding set), no new privileges, its umask and working
# directory, and a clean environment.
AS_SERVICE=(unshare --mount --propagation private -- sh -c '
    root=$0 state=$1 proc_options=$2
    shift 2
    mount --bind "$root" "$root" && mount -o remount,bind,ro "$root" &&
    mount --bind "$root$state" "$root$state" && mount -o remount,bind,rw "$root$state" &&
    mount -t tmpfs -o mode=1777 tmpfs "$root/tmp" &&
    mount -t tmpfs -o ro,mode=755 tmpfs "$root/home" && mount -t tmpfs -o ro,mode=700 tmpfs "$root/root" &&
    mount -t proc -o "$proc_options" proc "$root/proc" &&
    exec chroot "$root" "$@"' "$ROOT" "$SVC_STATE" "$SVC_PROC_OPTIONS" env -i PATH="$HOST_PATH" LANG=C.UTF-8
  prlimit --nofile="$SVC_NOFILE:$SVC_NOFILE"
  setpriv --reuid="$SVC_USER" --regid="$SVC_GROUP" --init-groups --no-new-privs
  --inh-caps="-all,$SVC_CAPS" --ambient-caps="$SVC_CAPS" --bounding-set="-all,$SVC_CAPS"
  /bin/sh -c 'umask "$0" && cd "$1" && shift && exec "$@"' "$SVC_UMASK" "${SVC_DIR:-/}"
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin HOME="$SVC_STATE" USER="$SVC_USER"
  LOGNAME="$SVC_USER" SHELL=/usr/sbin/nologin)
# AS_USER CMD...: the service's user and group, without the capability.
AS_USER=("${IN_ROOT[@]}" setpriv --reuid="$SVC_USER" --regid="$SVC_GROUP" --init-groups --no-new-privs)

step "packaged configuration"
# Before the first start doctor reports no admin yet: only the configuration line counts.
doctor_out=$("${AS_SERVICE[@]}" /usr/bin/labbeam doctor --config "$CONFIG" 2>&1 || true)
sed 's/^/  | /' <<<"$doctor_out"
check "labbeam doctor accepts the packaged $CONFIG" grep -q '^ok *config *configuration is valid' <<<"$doctor_out"
for key in 'data_dir = "/var/lib/labbeam"' 'http_listen = "0.0.0.0:443"' 'turn_listen = "0.0.0.0:3478"'; do
  check "packaged config sets $key" grep -qx "$key" "$ROOT$CONFIG"
done
# Every commented-out example must be a real key with a valid value. (Its own data dir:
# doctor creates the one it checks.)
# Commented-out tables too (`#[auth.ldap]`, `#[[auth.role_map]]`: tables left unset).
sed -e 's/^#\([a-z_]* = \)/\1/' -e 's/^#\(\[.*\]\)$/\1/' "$ROOT$CONFIG" >"$ROOT/tmp/all-keys.toml"
chmod 644 "$ROOT/tmp/all-keys.toml"
doctor_out=$("${AS_USER[@]}" /usr/bin/labbeam doctor --config /tmp/all-keys.toml --data-dir /tmp/all-keys-data 2>&1 || true)
head -n 1 <<<"$doctor_out" | sed 's/^/  | /'
check "every commented-out key of the packaged config loads when uncommented" \
  grep -q '^ok *config *configuration is valid' <<<"$doctor_out"

# --- first start -------------------------------------------------------------------

ip netns add "$NETNS"
ip -n "$NETNS" link set lo up

# start_server LOG [TRACE]: starts the installed binary as the unit does, in the test
# network namespace, after creating the state directory as StateDirectory= does. With
# TRACE, under `strace -f` writing to that file (see check_sandbox).
start_server() {
  if [ ! -d "$ROOT$SVC_STATE" ]; then
    install -d -m "$SVC_STATE_MODE" -o "$(chroot "$ROOT" id -u "$SVC_USER")" \
      -g "$(chroot "$ROOT" id -g "$SVC_USER")" "$ROOT$SVC_STATE"
  fi
  local tracer=()
  [ -n "${2:-}" ] && tracer=(strace -f -qq -s 64 -o "$2" --)
  # shellcheck disable=SC2086 # ExecStart is split into words as systemd does (it has no quotes)
  "${tracer[@]}" ip netns exec "$NETNS" "${AS_SERVICE[@]}" $SVC_EXEC >"$1" 2>&1 &
  SERVER_PID=$!
  LABBEAM_PID=$SERVER_PID
  local waited=0
  until grep -qs "is running" "$1"; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null || [ $waited -ge 300 ]; then
      sed 's/^/  | /' "$1"
      return 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  # Every wrapper execs the next, so under strace labbeam is strace's only child.
  [ -n "${2:-}" ] && LABBEAM_PID=$(ps -o pid= --ppid "$SERVER_PID" | tr -d ' ')
  sed 's/^/  | /' "$1"
  case "$(readlink "/proc/$LABBEAM_PID/exe")" in
    */usr/bin/labbeam) ;;
    *) echo "  process $LABBEAM_PID is not labbeam" && return 1 ;;
  esac
}

# stop_server: SIGTERM, as `systemctl stop` sends; true when labbeam exits 0 within 15 s.
stop_server() {
  kill -TERM "$LABBEAM_PID"
  local waited=0
  while kill -0 "$SERVER_PID" 2>/dev/null && [ $waited -lt 150 ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  local status=0
  wait "$SERVER_PID" || status=$?
  SERVER_PID=
  [ "$status" -eq 0 ]
}

# check_sandbox TRACE: what systemd would enforce but this test cannot (systemd is not
# PID 1 here): every system call labbeam made (main thread and all its threads, from its
# execve on) is allowed by the unit's SystemCallFilter= lines, no memory was mapped
# writable and executable (MemoryDenyWriteExecute=), and every socket has a family that
# RestrictAddressFamilies= allows. Prints what it found; fails on any violation.
check_sandbox() {
  python3 - "$1" "$INSTALLED_UNIT" <<'PY'
import re, subprocess, sys

trace, unit = sys.argv[1], sys.argv[2]
settings = {}
for line in open(unit):
    key, sep, value = line.strip().partition("=")
    if sep and not key.startswith("#"):
        settings.setdefault(key, []).append(value)

groups, current = {}, None
listing = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True).stdout
for line in listing.splitlines():
    if line.startswith("@"):
        current = groups.setdefault(line.strip(), set())
    elif current is not None and line.startswith("    ") and not line.strip().startswith("#"):
        current.add(line.strip())

def expand(names, seen=()):
    out = set()
    for name in names:
        if not name.startswith("@"):
            out.add(name)
        elif name not in seen:
            out |= expand(groups.get(name, ()), seen + (name,))
    return out

allowed = None
for value in settings.get("SystemCallFilter", []):
    names = expand(value.lstrip("~").split())
    if value.startswith("~"):
        allowed = (allowed if allowed is not None else set()) - names
    else:
        allowed = (allowed or set()) | names
families = set(" ".join(settings.get("RestrictAddressFamilies", [])).split())

call = re.compile(r"^(\d+) +(?:<\.\.\. (\w+) resumed>|(\w+)\()")
result = re.compile(r"= (-?\d+)")
lines = [(m, line) for line in open(trace) if (m := call.match(line))]
# The wrappers exec each other in one process: labbeam starts at the execve of its path.
# Its threads are the processes its clone calls return (a thread's first calls can be
# logged before that return, hence two passes).
start = next((i for i, (m, line) in enumerate(lines)
              if (m.group(3) == "execve" and 'execve("/usr/bin/labbeam",' in line
                  and line.rstrip().endswith("= 0"))), None)
started = start is not None
threads, used, problems = set(), set(), []
if started:
    threads = {int(lines[start][0].group(1))}
    grew = True
    while grew:
        grew = False
        for m, line in lines[start:]:
            name = m.group(2) or m.group(3)
            ret = result.search(line)
            if int(m.group(1)) in threads and name in ("clone", "clone3", "fork", "vfork") and ret:
                child = int(ret.group(1))
                if child > 0 and child not in threads:
                    threads.add(child)
                    grew = True
    for m, line in lines[start + 1:]:
        if int(m.group(1)) not in threads:
            continue
        name = m.group(2) or m.group(3)
        used.add(name)
        if name in ("mmap", "mprotect", "pkey_mprotect") and "PROT_WRITE" in line and "PROT_EXEC" in line:
            problems.append("writable and executable memory: " + line.strip())
        if name in ("socket", "socketpair"):
            family = re.search(r"\((AF_\w+|\d+)", line)
            if family and family.group(1) not in families:
                problems.append("socket family not allowed by RestrictAddressFamilies=: " + line.strip())

if not started:
    problems.append("no execve of /usr/bin/labbeam in the trace")
if allowed is not None:
    blocked = sorted(used - allowed)
    if blocked:
        problems.append("system calls SystemCallFilter= would refuse: " + ", ".join(blocked))
print(f"  | labbeam made {len(used)} distinct system calls in {len(threads)} threads: {' '.join(sorted(used))}")
for p in problems:
    print("  | " + p)
sys.exit(1 if problems else 0)
PY
}

HTTPS_PORT=$(sed -n 's/^http_listen = ".*:\([0-9]*\)"/\1/p' "$ROOT$CONFIG")
# api METHOD PATH BODY [TOKEN]: HTTPS to the packaged port inside the namespace, trusting
# only the certificate the server generated. Prints the HTTP status; the body goes to
# $WORK/body.json.
api() {
  local auth=()
  [ -n "${4:-}" ] && auth=(-H "Authorization: Bearer $4")
  ip netns exec "$NETNS" curl -sS --max-time 20 --cacert "$ROOT$SVC_STATE/tls/cert.pem" -X "$1" \
    -H 'Content-Type: application/json' "${auth[@]}" --data "$3" -o "$WORK/body.json" -w '%{http_code}' \
    "https://localhost:$HTTPS_PORT$2" || true
}
# page PATH [TOKEN]: GET over HTTPS like api; prints the HTTP status.
page() {
  local auth=()
  [ -n "${2:-}" ] && auth=(-H "Authorization: Bearer $2")
  ip netns exec "$NETNS" curl -sS --max-time 20 --cacert "$ROOT$SVC_STATE/tls/cert.pem" "${auth[@]}" \
    -o "$WORK/body.html" -w '%{http_code}' "https://localhost:$HTTPS_PORT$1" || true
}
cert_fingerprint() {
  openssl x509 -in "$ROOT$SVC_STATE/tls/cert.pem" -noout -fingerprint -sha256 | sed 's/.*=//'
}
SVC_UID=$(chroot "$ROOT" id -u "$SVC_USER")
stat_of() { stat -c '%u %a' "$ROOT$1"; }

step "first start, as labbeam.service starts it"
check "port $HTTPS_PORT is free in the test network namespace before the start" \
  sh -c "! ip netns exec $NETNS curl -sk --max-time 2 https://localhost:$HTTPS_PORT/ >/dev/null 2>&1"
start_server "$WORK/serve1.txt" "$WORK/trace1.txt" || fatal "labbeam serve starts with the packaged config as $SVC_USER on port $HTTPS_PORT"
pass "labbeam serve starts with the packaged config as $SVC_USER on port $HTTPS_PORT"
admin_password=$(sed -n 's/^ *password: *//p' "$WORK/serve1.txt" | head -n 1)
check "first start prints a one-time admin password" test -n "$admin_password"
printed_fingerprint=$(sed -n 's/^ *SHA-256: *//p' "$WORK/serve1.txt")
fingerprint1=$(cert_fingerprint)
check "printed SHA-256 is the certificate's ($fingerprint1)" test "$printed_fingerprint" = "$fingerprint1"
cert_names=$(openssl x509 -in "$ROOT$SVC_STATE/tls/cert.pem" -noout -ext subjectAltName | tail -n +2 |
  sed 's/DNS://g; s/IP Address://g; s/^ *//')
echo "  note: the certificate names $cert_names"
# With no public_host, the generated certificate names localhost and this machine.
host_name=$(uname -n)
if grep -Eqi '^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$' <<<"$host_name"; then
  check "the generated certificate names this machine ($host_name)" grep -qix -- "$host_name" <<<"${cert_names//, /$'\n'}"
fi

status=$(api POST /api/auth/login "{\"username\":\"admin\",\"password\":\"$admin_password\"}")
check "POST /api/auth/login with the printed password -> 200 (got $status)" test "$status" = 200
token=$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' "$WORK/body.json")
new_password="lab server $(head -c 9 /dev/urandom | base64 | tr '+/' '-_')"
status=$(api POST /api/me/password \
  "{\"current_password\":\"$admin_password\",\"new_password\":\"$new_password\"}" "$token")
check "POST /api/me/password: admin replaces the one-time password -> 200 (got $status)" test "$status" = 200
# A little of every part, so the system call check below sees them work in the sandbox.
for request in "/ 200" "/admin/login 200" "/admin 200 $token" "/api/transfers 200 $token" \
  "/socket.io/?EIO=4&transport=polling 200"; do
  read -r path want bearer <<<"$request"
  status=$(page "$path" "${bearer:-}")
  check "GET $path${bearer:+ (signed in)} -> $want (got $status)" test "$status" = "$want"
done

check "$SVC_STATE is $SVC_USER's, mode 700" test "$(stat_of "$SVC_STATE")" = "$SVC_UID 700"
for f in labbeam.db jwt.key tls/key.pem; do
  check "$SVC_STATE/$f is $SVC_USER's and private (mode 600)" test "$(stat_of "$SVC_STATE/$f")" = "$SVC_UID 600"
done
check "SIGTERM stops labbeam with exit status 0" stop_server
check "first start, login and stop stay inside the unit's system call filter, W^X and address families" \
  check_sandbox "$WORK/trace1.txt"

doctor_out=$("${AS_SERVICE[@]}" /usr/bin/labbeam doctor --config "$CONFIG" 2>&1) && doctor_ok=true || doctor_ok=false
sed 's/^/  | /' <<<"$doctor_out"
check "labbeam doctor, run as the service, passes every check after the first start" $doctor_ok


# A local change to the conffile, which the upgrade must keep.
sed -i 's/^#session_ttl_secs = .*/session_ttl_secs = 3600/' "$ROOT$CONFIG"
check "local edit made to $CONFIG" grep -qx 'session_ttl_secs = 3600' "$ROOT$CONFIG"

# --- upgrade -----------------------------------------------------------------------

step "upgrade to $VERSION2 (dpkg -i)"
if in_root dpkg -i /tmp/labbeam-v2.deb >"$WORK/upgrade.txt" 2>&1; then upgrade_ok=true; else upgrade_ok=false; fi
sed 's/^/  | /' "$WORK/upgrade.txt"
check "dpkg -i upgrades the package" $upgrade_ok
check "installed version is $VERSION2" \
  test "$(chroot "$ROOT" dpkg-query -W -f='${Status} ${Version}' labbeam)" = "install ok installed $VERSION2"
check "upgrade keeps the local edit of $CONFIG" grep -qx 'session_ttl_secs = 3600' "$ROOT$CONFIG"
check "upgrade does not print the first-install message again" sh -c "! grep -q 'First admin' '$WORK/upgrade.txt'"

start_server "$WORK/serve2.txt" || fatal "labbeam serve starts after the upgrade"
pass "labbeam serve starts after the upgrade"
check "no new admin password after the upgrade" sh -c "! grep -q 'password:' '$WORK/serve2.txt'"
check "same certificate after the upgrade (SHA-256 $fingerprint1)" test "$(cert_fingerprint)" = "$fingerprint1"
status=$(api POST /api/auth/login "{\"username\":\"admin\",\"password\":\"$new_password\"}")
check "admin logs in with the changed password after the upgrade -> 200 (got $status)" test "$status" = 200
status=$(api POST /api/auth/login "{\"username\":\"admin\",\"password\":\"$admin_password\"}")
check "the one-time password no longer works -> 401 (got $status)" test "$status" = 401
check "SIGTERM stops labbeam with exit status 0 after the upgrade" stop_server

# --- remove and purge --------------------------------------------------------------

step "remove (dpkg --remove), then purge (dpkg --purge)"
check "dpkg --remove succeeds" logged "$WORK/remove.txt" in_root dpkg --remove labbeam
check "remove keeps $SVC_STATE" test -f "$ROOT$SVC_STATE/labbeam.db"
check "remove keeps $CONFIG" test -f "$ROOT$CONFIG"
check "remove deletes /usr/bin/labbeam" test ! -e "$ROOT/usr/bin/labbeam"
check "dpkg --purge succeeds" logged "$WORK/purge.txt" in_root dpkg --purge labbeam
check "purge deletes $SVC_STATE" test ! -e "$ROOT$SVC_STATE"
check "purge deletes $CONFIG" test ! -e "$ROOT$CONFIG"
check "purge removes the enablement symlink" test ! -L "$WANTS"

finish
