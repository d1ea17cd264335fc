#!/bin/sh
# Installs the real SIP peers the interop tests run against (Debian/Ubuntu, as root):
#   kamailio, kamailio-tls-modules  Kamailio as the SIP core (interop/kamailio/kamailio.cfg)
#   sip-tester                      SIPp (interop/sipp/*.xml)
#   socat                           TLS relay in front of our sip-core for SIPp (no TLS in SIPp)
# The packages' own daemon is not started: a policy-rc.d that exits 101 blocks it for the
# duration of the install (the tests start Kamailio themselves, in the foreground, on
# loopback ports, with a run directory of their own).
set -eu

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: run as root (apt-get install)" >&2
    exit 1
fi

policy=/usr/sbin/policy-rc.d
had_policy=no
if [ -e "$policy" ]; then
    had_policy=yes
    cp -p "$policy" "$policy.interop-saved"
fi
restore() {
    if [ "$had_policy" = yes ]; then
        mv -f "$policy.interop-saved" "$policy"
    else
        rm -f "$policy"
    fi
}
trap restore EXIT
printf '#!/bin/sh\nexit 101\n' > "$policy"
chmod +x "$policy"

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends kamailio kamailio-tls-modules sip-tester socat

# A daemon started anyway (e.g. under systemd) would hold port 5060: stop it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet kamailio 2>/dev/null; then
    systemctl stop kamailio || true
    systemctl disable kamailio || true
fi

kamailio -v | head -n 1
sipp -v 2>&1 | grep -m1 -i 'sipp' || true
echo "setup.sh: done. Check the config: kamailio -c -f interop/kamailio/kamailio.cfg -A 'TLS_CERT=\"c.crt\"' -A 'TLS_KEY=\"k.key\"' -A 'TLS_CA=\"ca.crt\"'"
