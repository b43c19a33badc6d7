#!/usr/bin/env bash
# Several "hosts" on one machine (root only): network namespaces NAME-1..NAME-N, each with its
# own address 10.231.0.i on a bridge in namespace NAME-hub and its own hostname, so that Open MPI
# launches across them over TCP as across nodes (ssh replaced by `ip netns exec`).
#
#   scripts/fake-hosts.sh up NAME N [SLOTS]   make them; writes /tmp/NAME/hostfile (N hosts x SLOTS)
#   scripts/fake-hosts.sh mpirun NAME ARGS... run `mpirun --hostfile /tmp/NAME/hostfile ARGS...`
#                                             from host 1, with TCP between hosts
#   scripts/fake-hosts.sh down NAME           kill what runs inside and remove them (always safe)
#
# Only namespaces, links and addresses that this script makes are touched; `down` removes all of
# them even after a failed `up`. Used by Tests/HiddenMPITests/MultiHostTests.swift.
set -euo pipefail
cmd=${1:?usage: fake-hosts.sh up|mpirun|down NAME ...}
name=${2:?a name for the group of hosts}
dir=/tmp/$name
subnet=10.231.0

down() {
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$name-(hub|[0-9]+)$" || true); do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$dir"
}

case $cmd in
up)
    n=${3:?how many hosts}
    slots=${4:-1}
    if [ "$(id -u)" -ne 0 ]; then echo "fake-hosts.sh: network namespaces need root" >&2; exit 77; fi
    down
    mkdir -p "$dir"
    trap 'echo "fake-hosts.sh: setting up failed; removing what was made" >&2; down' ERR
    ip netns add "$name-hub"
    ip -n "$name-hub" link add br0 type bridge
    ip -n "$name-hub" link set br0 up
    : >"$dir/hostfile"
    for i in $(seq 1 "$n"); do
        ns=$name-$i
        ip netns add "$ns"
        # A veth pair made inside the hub; one end moves into the host.
        ip -n "$name-hub" link add "h$i" type veth peer name eth0 netns "$ns"
        ip -n "$name-hub" link set "h$i" master br0
        ip -n "$name-hub" link set "h$i" up
        ip -n "$ns" addr add "$subnet.$i/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
        echo "$subnet.$i slots=$slots" >>"$dir/hostfile"
    done
    # Open MPI's "ssh": run the command in the host's namespace under the host's own hostname
    # (session directories and shared-memory files are named after it).
    cat >"$dir/agent" <<AGENT
#!/bin/sh
# Called by mpirun as: agent [options] HOST COMMAND...
while [ \$# -gt 0 ]; do case \$1 in -*) shift;; *) break;; esac; done
host=\$1; shift
i=\${host##*.}
exec ip netns exec "$name-\$i" unshare --uts sh -c "hostname $name-\$i && \$*"
AGENT
    chmod +x "$dir/agent"
    trap - ERR
    # The hub must answer: every host reaches the last one (where ping is installed).
    command -v ping >/dev/null && for i in $(seq 1 "$n"); do
        ip netns exec "$name-$i" ping -c 1 -W 2 "$subnet.$n" >/dev/null 2>&1 || {
            echo "fake-hosts.sh: host $i cannot reach $subnet.$n" >&2; down; exit 1; }
    done
    echo "$dir/hostfile"
    ;;
mpirun)
    shift 2
    [ -f "$dir/hostfile" ] || { echo "fake-hosts.sh: no hosts named $name (run up first)" >&2; exit 1; }
    export OMPI_MCA_plm_rsh_agent="$dir/agent"
    export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader,tcp
    export OMPI_MCA_btl_tcp_if_include=$subnet.0/24 OMPI_MCA_oob_tcp_if_include=$subnet.0/24
    exec ip netns exec "$name-1" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$name-1" \
        mpirun --hostfile "$dir/hostfile" --bind-to none "$@"
    ;;
down)
    down
    ;;
*)
    echo "fake-hosts.sh: unknown command $cmd (up, mpirun, down)" >&2; exit 2
    ;;
esac
