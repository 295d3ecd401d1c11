#!/bin/busybox sh
# /init of the guests' initramfs (built by `cargo xtask`, see docs/configs.md).
#
# The kernel command line names the domain and what to do once init is
# reached:  oxen.name=NAME  oxen.action=poweroff|reboot|shell  (default
# poweroff). The "oxen-init:" lines are what configs/*.expect look for.

/bin/busybox mkdir -p /bin /proc /sys /dev /tmp
/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

name=unnamed
action=poweroff
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        oxen.name=*) name="${arg#oxen.name=}" ;;
        oxen.action=*) action="${arg#oxen.action=}" ;;
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
