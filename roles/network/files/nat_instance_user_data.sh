#!/bin/bash
# First boot of a NAT instance (network role, network_egress nat_instance; Amazon Linux 2023, cloud-init runs
# this once per instance): forward IPv4 and masquerade what leaves through the primary interface. Both are
# persistent: the sysctl.d file and the enabled nftables service apply them again at every boot.
set -euo pipefail

cat > /etc/sysctl.d/90-airflow-ecs-nat.conf <<'CONF'
net.ipv4.ip_forward = 1
CONF
sysctl --system > /dev/null

# The primary interface is the one of the default route (ens5 on Nitro instances).
primary=$(ip -4 -o route show default | awk '{print $5; exit}')

# nftables comes from the AL2023 repositories, reached through the Elastic IP, which is associated once the
# instance runs: retry for up to ten minutes.
for _ in $(seq 1 60); do
  if rpm -q nftables > /dev/null 2>&1 || dnf install -y -q nftables; then
    break
  fi
  sleep 10
done

cat > /etc/nftables/airflow-ecs-nat.nft <<CONF
# Written by the NAT instance's user data (airflow-ecs network role).
add table ip airflow_ecs_nat
flush table ip airflow_ecs_nat
table ip airflow_ecs_nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "${primary}" masquerade
  }
}
CONF
grep -qs 'airflow-ecs-nat.nft' /etc/sysconfig/nftables.conf \
  || echo 'include "/etc/nftables/airflow-ecs-nat.nft"' >> /etc/sysconfig/nftables.conf
systemctl enable nftables
systemctl restart nftables
