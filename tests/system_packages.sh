#!/usr/bin/env bash
# Install the Debian packages the test suite needs, when they are missing:
#
#   chromium, chromium-driver   the report test opens the HTML report in headless Chromium
#   slurmctld, slurmd,          the end-to-end tests build the tiny workflow through a real
#   slurm-client, munge         one-node Slurm (tests/slurm/local_cluster.sh)
#
#   tests/system_packages.sh              every package above
#   tests/system_packages.sh PACKAGE...   only these (tests/slurm/local_cluster.sh asks for Slurm's)
#
# A package counts as present when the program it provides is found (so a Chromium installed
# some other way is used as it is). Missing ones are installed with apt-get: as root, or
# through sudo. Where that is impossible the script stops with the apt-get command to run.
# Daemons are never started by the installation (a temporary policy-rc.d forbids it where
# the machine has none): the tests start their own and stop them.
set -euo pipefail

PROG=system_packages
msg() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { msg "error: $*"; exit 1; }

# package -> a program it provides (looked up on PATH and in the sbin folders)
declare -A PROVIDES=(
    [chromium]=chromium
    [chromium-driver]=chromedriver
    [slurmctld]=slurmctld
    [slurmd]=slurmd
    [slurm-client]=sbatch
    [munge]=munged
)
ALL=(chromium chromium-driver slurmctld slurmd slurm-client munge)

if (($#)); then
    wanted=("$@")
else
    wanted=("${ALL[@]}")
fi

missing_packages() {
    local p out=()
    for p in "${wanted[@]}"; do
        [[ -n "${PROVIDES[$p]-}" ]] || die "unknown package '$p' (known: ${ALL[*]})"
        if ! PATH="$PATH:/usr/sbin:/sbin" command -v "${PROVIDES[$p]}" >/dev/null 2>&1; then
            out+=("$p")
        fi
    done
    printf '%s\n' "${out[@]-}" | sed '/^$/d' | tr '\n' ' ' | sed 's/ $//'
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        return 127
    fi
}

missing=$(missing_packages)
[[ -z "$missing" ]] && exit 0
msg "installing missing Debian packages: $missing"
command -v apt-get >/dev/null 2>&1 \
    || die "cannot install $missing: apt-get not found; install them by other means (Debian/Ubuntu: apt-get install $missing) and run again"
if [[ $(id -u) -ne 0 ]] && ! command -v sudo >/dev/null 2>&1; then
    die "cannot install $missing: not root and no sudo; as root run: apt-get install $missing"
fi

# The packages' maintainer scripts would start the system's own munged/slurmd through
# invoke-rc.d where there is no init system to say no; a temporary policy-rc.d (only
# when the machine has none) forbids that.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]] && as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"; then
    # shellcheck disable=SC2064
    trap "as_root rm -f $policy" EXIT
fi
rc=0
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || rc=$?
# Chromium with its recommended packages (fonts among them), the daemons without theirs
# (slurmd would pull in a mail server and more).
browser=() daemons=()
for p in $missing; do
    case $p in
        chromium*) browser+=("$p") ;;
        *) daemons+=("$p") ;;
    esac
done
if ((rc == 0 && ${#browser[@]})); then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${browser[@]}" >&2 || rc=$?
fi
if ((rc == 0 && ${#daemons[@]})); then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${daemons[@]}" >&2 || rc=$?
fi
((rc == 0)) || die "cannot install $missing (apt-get failed, exit $rc); install them by hand: apt-get install $missing"
still=$(missing_packages)
[[ -z "$still" ]] || die "packages still missing after apt-get install: $still"
msg "installed: $missing"
