#!/bin/busybox sh
# /init of the guests' initramfs (built by `cargo xtask`, see docs/configs.md).
#
# The kernel command line names the domain and what to do once init is
# reached:  oxen.name=NAME  oxen.action=poweroff|reboot|shell  (default
# poweroff). The "oxen-init:" lines are what configs/*.expect look for.
#
# Xenstore tests, through /bin/xs (tests/guests/xs), before the action:
#   oxen.test=xenstore        wait for Linux's xenbus, then read name and
#                             domid, write and read back data/oxen-test,
#                             list the domain's home
#   oxen.rendezvous=listen    with oxen.peer=ID: create data/rendezvous,
#                             let domain ID write it, watch it until that
#                             domain writes it
#   oxen.rendezvous=signal    with oxen.peer=ID: wait until domain ID's
#                             data/rendezvous reads "ready", write to it
#
# A PV network link (docs/pv-devices.md), after the xenstore tests:
#   oxen.pvnet=front|back     load xen-netfront (eth0) or xen-netback
#                             (vif<frontid>.<index>, configured whenever
#                             netback creates it: the backend's own job)
#   oxen.ip=A.B.C.D/N         this end's address
#   oxen.pvpeer=A.B.C.D       the other end: ping it 100 times
#   oxen.bulk=MIB             back: serve MIB MiB of fixed data over HTTP
#                             (busybox httpd, port 8000); front: fetch it
#                             with wget; both print its md5sum

/bin/busybox mkdir -p /bin /proc /sys /dev /tmp
/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

name=unnamed
action=poweroff
oxen_test=
rendezvous=
peer=
pvnet=
ip=
pvpeer=
bulk=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        oxen.name=*) name="${arg#oxen.name=}" ;;
        oxen.action=*) action="${arg#oxen.action=}" ;;
        oxen.test=*) oxen_test="${arg#oxen.test=}" ;;
        oxen.rendezvous=*) rendezvous="${arg#oxen.rendezvous=}" ;;
        oxen.peer=*) peer="${arg#oxen.peer=}" ;;
        oxen.pvnet=*) pvnet="${arg#oxen.pvnet=}" ;;
        oxen.ip=*) ip="${arg#oxen.ip=}" ;;
        oxen.pvpeer=*) pvpeer="${arg#oxen.pvpeer=}" ;;
        oxen.bulk=*) bulk="${arg#oxen.bulk=}" ;;
    esac
done

echo "oxen-init: $name reached init"
echo "oxen-init: $name has $(nproc) CPUs, Linux $(uname -r)"
if [ -d /sys/hypervisor ] && [ -r /sys/hypervisor/type ]; then
    echo "oxen-init: $name hypervisor $(cat /sys/hypervisor/type)"
fi

# What the kernel runs for an orderly poweroff or reboot (a xenstore
# control/shutdown request, as `xl shutdown` sends): this init is no
# process supervisor, so they sync and stop at once. Without them the
# kernel's request fails silently.
mkdir -p /sbin
for what in poweroff reboot; do
    rm -f /sbin/$what
    printf '#!/bin/busybox sh\necho "oxen-init: %s: orderly %s" > /dev/console\nsync\nexec /bin/busybox %s -f\n' \
        "$name" "$what" "$what" > /sbin/$what
    chmod 755 /sbin/$what
done

say() {
    echo "oxen-init: $name $*"
}

# Polls (every 0.2 s) until the command "$2..." succeeds, at most $1
# seconds; fails after that.
poll() {
    limit=$(($1 * 5))
    shift
    tries=0
    until "$@"; do
        tries=$((tries + 1))
        [ "$tries" -ge "$limit" ] && return 1
        sleep 0.2
    done
}

# Linux has connected to xenstore once its "xenbus" interrupt exists (not
# "xenstore_late_init", the one it waits on before that). Using
# /dev/xen/xenbus earlier could wake Linux's probe before the ring is there.
xenbus_up() {
    grep -qw xenbus /proc/interrupts
}

# Reads the xenstore key $1; true if it reads $2.
reads() {
    [ "$(xs read "$1" 2>/dev/null)" = "$2" ]
}

# Is process $1 still running?
running() {
    kill -0 "$1" 2>/dev/null
}

not_running() {
    ! running "$1"
}

xenstore_test() {
    domid=$(xs domid) || { say "FAILED: xs domid"; return 1; }
    say "xenstore name=$(xs read name) domid=$domid"
    xs write data/oxen-test "hello-$name" || say "FAILED: xs write data/oxen-test"
    got=$(xs read data/oxen-test)
    if [ "$got" = "hello-$name" ]; then
        say "xenstore write/read ok"
    else
        say "FAILED: data/oxen-test reads \"$got\", expected \"hello-$name\""
    fi
    # One line: the children of the domain's home.
    say "xenstore dir /local/domain/$domid:" $(xs dir "/local/domain/$domid")
}

# The listener creates the node, lets the peer write it, registers its
# watch, and only then writes "ready": the signaller waits for that value,
# so its write always comes while the watch is there. Its watch sees the
# immediate event, its own "ready" and the signaller's write.
rendezvous_listen() {
    node="/local/domain/$domid/data/rendezvous"
    if ! xs write "$node" waiting || ! xs setperms "$node" "n$domid" "b$peer"; then
        say "FAILED: rendezvous: cannot create $node for domain $peer"
        return 1
    fi
    xs watch "$node" 2 >/tmp/rendezvous &
    watcher=$!
    if ! poll 30 test -s /tmp/rendezvous; then
        say "FAILED: rendezvous: no watch event for $node within 30 s"
        kill "$watcher" 2>/dev/null
        return 1
    fi
    xs write "$node" ready || say "FAILED: xs write $node ready"
    say "rendezvous ready"
    if ! poll 120 not_running "$watcher"; then
        say "FAILED: rendezvous: domain $peer did not write $node within 120 s (events: $(cat /tmp/rendezvous))"
        kill "$watcher" 2>/dev/null
        return 1
    fi
    wait "$watcher" || say "FAILED: xs watch $node"
    say "rendezvous fired value=$(xs read "$node")"
}

rendezvous_signal() {
    node="/local/domain/$peer/data/rendezvous"
    if ! poll 120 reads "$node" ready; then
        say "FAILED: rendezvous: $node did not read \"ready\" within 120 s"
        return 1
    fi
    xs write "$node" "from-$name" && say "rendezvous signalled"
}

if [ "$oxen_test" = xenstore ] || [ -n "$rendezvous" ]; then
    if ! poll 30 xenbus_up; then
        say "FAILED: no xenbus interrupt in /proc/interrupts after 30 s"
    else
        say "xenstore connected:" $(grep -w xenbus /proc/interrupts)
        [ "$oxen_test" = xenstore ] && xenstore_test
        [ -z "$domid" ] && domid=$(xs domid)
        case "$rendezvous" in
            "") ;;
            listen) rendezvous_listen ;;
            signal) rendezvous_signal ;;
            *) say "FAILED: unknown oxen.rendezvous=$rendezvous" ;;
        esac
    fi
fi

# Loads a PV driver module of this kernel.
load_module() {
    if insmod "/lib/modules/$(uname -r)/$1.ko"; then
        say "pvnet loaded $1"
    else
        say "FAILED: insmod $1"
        return 1
    fi
}

# The first network interface whose name starts with $1, if any.
iface() {
    for d in /sys/class/net/"$1"*; do
        [ -e "$d" ] && { basename "$d"; return 0; }
    done
    return 1
}

has_iface() {
    iface "$1" >/dev/null
}

# Backend: netback creates vif<front>.<index> when a frontend connects,
# and again after the frontend reboots; give it the address each time
# (what a dom0's vif hotplug script and bridge set-up would do).
vif_keeper() {
    while true; do
        for d in /sys/class/net/vif*; do
            [ -e "$d" ] || continue
            v=$(basename "$d")
            if ! ip addr show dev "$v" | grep -q "inet "; then
                ip link set "$v" up && ip addr add "$ip" dev "$v" &&
                    say "pvnet $v up $ip"
            fi
        done
        sleep 0.5
    done
}

pvnet_ping() {
    if ! poll 120 ping -c 1 -W 1 "$pvpeer" >/dev/null; then
        say "FAILED: pvnet: $pvpeer does not answer within 120 s"
        return 1
    fi
    ping -c 100 -A -W 5 "$pvpeer" >/tmp/ping
    say "pvnet ping $pvpeer:" $(grep "packet loss" /tmp/ping)
    # For cargo xtask bench: the mean round trip, in microseconds.
    avg=$(sed -n 's|.*min/avg/max = [0-9.]*/\([0-9.]*\)/.*|\1|p' /tmp/ping)
    [ -n "$avg" ] && echo "BENCH pvnet.ping n=100 ticks=$(awk "BEGIN { printf \"%d\", $avg * 100000 }") hz=1000000"
}

pvnet_front() {
    load_module xen-netfront || return 1
    if ! poll 60 has_iface eth; then
        say "FAILED: pvnet: no eth interface 60 s after loading xen-netfront"
        return 1
    fi
    dev=$(iface eth)
    ip link set "$dev" up && ip addr add "$ip" dev "$dev"
    say "pvnet $dev up $ip mac $(cat /sys/class/net/$dev/address)"
    pvnet_ping || return 1
    if [ -n "$bulk" ]; then
        start=$(cut -d' ' -f1 /proc/uptime)
        if poll 60 wget -q -O /tmp/bulk "http://${pvpeer}:8000/bulk"; then
            end=$(cut -d' ' -f1 /proc/uptime)
            say "pvnet bulk received $(wc -c </tmp/bulk) bytes md5 $(md5sum </tmp/bulk | cut -d' ' -f1)"
            say "pvnet bulk $bulk MiB in $(awk "BEGIN { printf \"%.2f s, %.1f MB/s\", $end - $start, $bulk * 1.048576 / ($end - $start + 0.001) }")"
            echo "BENCH pvnet.bulk n=$bulk ticks=$(awk "BEGIN { printf \"%d\", ($end - $start) * 1000000 }") hz=1000000"
        else
            say "FAILED: pvnet: cannot fetch http://${pvpeer}:8000/bulk"
        fi
        rm -f /tmp/bulk
    fi
}

pvnet_back() {
    load_module xen-netback || return 1
    vif_keeper &
    if [ -n "$bulk" ]; then
        # The data the frontend fetches, on every boot of it.
        mkdir -p /srv
        yes oxen-pv-network-test | head -c $((bulk * 1048576)) >/srv/bulk
        say "pvnet bulk serves $(wc -c </srv/bulk) bytes md5 $(md5sum </srv/bulk | cut -d' ' -f1)"
        httpd -p 8000 -h /srv || say "FAILED: httpd"
    fi
    [ -n "$pvpeer" ] && pvnet_ping
}

case "$pvnet" in
    "") ;;
    front) pvnet_front ;;
    back) pvnet_back ;;
    *) say "FAILED: unknown oxen.pvnet=$pvnet" ;;
esac

case "$action" in
    shell)
        echo "oxen-init: $name starts a shell"
        exec setsid cttyhack sh
        ;;
    reboot)
        echo "oxen-init: $name reboots"
        reboot -f
        ;;
    poweroff)
        echo "oxen-init: $name powers off"
        poweroff -f
        ;;
    *)
        echo "oxen-init: $name: unknown oxen.action=$action, powering off"
        poweroff -f
        ;;
esac
# poweroff/reboot -f do not return; if they fail, keep init alive rather
# than panic the kernel, and say so.
echo "oxen-init: $name: $action failed"
while true; do sleep 3600; done
