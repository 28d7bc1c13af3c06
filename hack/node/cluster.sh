#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, without kind or Docker: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, containerd + runc, the kubelet,
# kube-proxy (iptables) and CoreDNS. Linux, as root.
#
#   hack/node/cluster.sh up [IMAGE.tar ...]   start it, import the image tarballs, wait for Ready
#   hack/node/cluster.sh down                 stop every process it started, by PID, and remove
#                                             its mounts, interfaces, iptables chains and files
#   hack/node/cluster.sh status
#
# The binaries come from hack/envtest-assets.sh (etcd, kube-apiserver, kubectl) and
# hack/node/assets.sh (the rest), which build them from the Go module proxy into bin/ once.
# containerd, runc, the CNI plugins, iptables and conntrack are installed with apt-get when
# missing. The images (pause, CoreDNS and whatever the caller passes) are tarballs from
# hack/tools/image; nothing is ever pulled.
#
# State lives in $KPIPE_NODE_DIR (default /tmp/kpipe-node): PID files, certificates, kubeconfigs
# (kubeconfig there is the admin's), logs under logs/. One cluster at a time: the ports are fixed
# (2379-2380, 6443, 10248-10259). See docs/node-e2e.md.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=${KPIPE_NODE_DIR:-/tmp/kpipe-node}
node=${KPIPE_NODE_NAME:-kpipe-node}
pod_cidr=10.244.0.0/24
cluster_cidr=10.244.0.0/16
service_cidr=10.96.0.0/16
dns_ip=10.96.0.10
pause_image=kpipe.local/pause:dev
coredns_image=kpipe.local/coredns:dev
sock=$dir/containerd/containerd.sock

say() { echo "node: $*" >&2; }
die() { say "$*"; exit 1; }

# shellcheck source=hack/node/lib.sh
. "$root/hack/node/lib.sh"

case "${1:-}" in
up) shift; up "$@" ;;
down) down ;;
status) status ;;
*) die "usage: $0 up [IMAGE.tar ...] | down | status" ;;
esac
