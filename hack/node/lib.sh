# Functions of hack/node/cluster.sh (sourced; see there for the variables it sets).
# shellcheck shell=bash

pids=$dir/pids
logs=$dir/logs
pki=$dir/pki

# --- processes -------------------------------------------------------------------------------

# start NAME CMD...: runs CMD in its own session with its output in logs/NAME.log and its PID in
# pids/NAME.pid.
start() {
  local name=$1
  shift
  setsid "$@" >"$logs/$name.log" 2>&1 </dev/null &
  echo $! >"$pids/$name.pid"
}

# ours PID EXE: the process PID is alive and runs EXE (so a recycled PID is never signalled).
ours() {
  [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}

# stop NAME [GRACE]: SIGTERM to the PID in pids/NAME.pid, SIGKILL after GRACE seconds.
stop() {
  local f=$pids/$1.pid pid exe i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  exe=$(cat "$pids/$1.exe" 2>/dev/null || echo "$1")
  if ours "$pid" "$exe"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < ${2:-10} * 10; i++)); do ours "$pid" "$exe" || break; sleep 0.1; done
    if ours "$pid" "$exe"; then
      say "$1 (pid $pid) ignored SIGTERM; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "$f" "$pids/$1.exe"
}

# run NAME BIN ARGS...: start, remembering the binary so stop can check the PID.
run() {
  local name=$1
  echo "$2" >"$pids/$name.exe"
  start "$@"
}

# wait_for WHAT SECONDS CMD...: polls CMD every half second; on timeout, says what it waited
# for and shows the tail of every log.
wait_for() {
  local what=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 2; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  say "timed out after ${secs}s waiting for $what; the last lines of each log:"
  for f in "$logs"/*.log; do echo "== $f" >&2; tail -n 15 "$f" >&2; done
  return 1
}

# --- prerequisites ---------------------------------------------------------------------------

preflight() {
  [ "$(uname -s)" = Linux ] || die "a real node needs Linux"
  [ "$(id -u)" = 0 ] || die "a real node needs root (containers, mounts, iptables)"
  if [ -d "$pids" ] && [ -n "$(ls -A "$pids" 2>/dev/null)" ]; then
    die "a cluster is already running from $dir: run '$0 down' first"
  fi
  local p
  for p in 2379 2380 6443 10248 10249 10250 10256 10257 10259; do
    if ss -Htln "sport = :$p" | grep -q .; then die "port $p is taken: another cluster (or etcd) is running"; fi
  done
}

packages() {
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v conntrack >/dev/null || missing+=(conntrack)
  command -v openssl >/dev/null || missing+=(openssl)
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]} with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >"$logs/apt.log" 2>&1 ||
    { apt-get update >>"$logs/apt.log" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >>"$logs/apt.log" 2>&1; } ||
    die "apt-get install ${missing[*]} failed; see $logs/apt.log"
}

# sysctls sets what the node needs, saving the old values for down.
sysctls() {
  local k
  [ -d /proc/sys/net/bridge ] || modprobe br_netfilter 2>/dev/null || true
  for k in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables; do
    echo "$k=$(sysctl -n "$k")" >>"$dir/sysctl.saved"
    sysctl -qw "$k=1"
  done
}

# --- certificates and kubeconfigs ------------------------------------------------------------

# cert NAME CN [O] [SANS]: an EC key and a certificate signed by the cluster CA.
cert() {
  local subj="/CN=$2${3:+/O=$3}"
  printf '[v3]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n%s' \
    "${4:+subjectAltName=$4}" >"$pki/$1.ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$pki/$1.key" \
    -subj "$subj" -out "$pki/$1.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 7 \
    -extfile "$pki/$1.ext" -extensions v3 -out "$pki/$1.crt" 2>/dev/null
}

kubeconfig() { # NAME: kubeconfigs/NAME for the certificate NAME
  cat >"$dir/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: node, cluster: {server: "https://$ip:6443", certificate-authority: "$pki/ca.crt"}}]
users: [{name: $1, user: {client-certificate: "$pki/$1.crt", client-key: "$pki/$1.key"}}]
contexts: [{name: node, context: {cluster: node, user: $1}}]
current-context: node
EOF
}

certificates() {
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$pki/ca.key" \
    -subj /CN=kpipe-node-ca -days 7 -out "$pki/ca.crt" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  cert apiserver kube-apiserver "" "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$ip,IP:10.96.0.1"
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  cert kubelet "$node" "" "DNS:$node,IP:$ip,IP:127.0.0.1"
  cert admin kubernetes-admin system:masters
  cert kube-controller-manager system:kube-controller-manager
  cert kube-scheduler system:kube-scheduler
  cert kube-proxy system:kube-proxy
  cert node "system:node:$node" system:nodes
  local k
  for k in admin kube-controller-manager kube-scheduler kube-proxy node; do kubeconfig "$k"; done
  cp "$dir/admin.kubeconfig" "$dir/kubeconfig"
}

# --- components ------------------------------------------------------------------------------

control_plane() {
  run etcd "$envtest/etcd" --data-dir "$dir/etcd" --name node \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster node=http://127.0.0.1:2380 --unsafe-no-fsync=true
  run kube-apiserver "$envtest/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
    --bind-address="$ip" --advertise-address="$ip" --secure-port=6443 \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction,OwnerReferencesPermissionEnforcement \
    --client-ca-file="$pki/ca.crt" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$pki/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range="$service_cidr" --allow-privileged=true
  wait_for "kube-apiserver /readyz" 90 k get --raw /readyz
  run kube-controller-manager "$nodebin/kube-controller-manager" --kubeconfig="$dir/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$dir/kube-controller-manager.kubeconfig" --authorization-kubeconfig="$dir/kube-controller-manager.kubeconfig" \
    --use-service-account-credentials=true --controllers='*' --bind-address=127.0.0.1 \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --cluster-cidr="$cluster_cidr" --allocate-node-cidrs=true --node-cidr-mask-size=24 \
    --service-cluster-ip-range="$service_cidr" --leader-elect=false
  run kube-scheduler "$nodebin/kube-scheduler" --kubeconfig="$dir/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$dir/kube-scheduler.kubeconfig" --authorization-kubeconfig="$dir/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false
}

runtime() {
  mkdir -p "$dir/containerd" "$dir/cni"
  cat >"$dir/containerd/config.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni"
EOF
  cat >"$dir/cni/10-kpipe.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "kpipe", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_cidr", "gateway": "10.244.0.1"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$dir/cni/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
  run containerd "$(command -v containerd)" --config "$dir/containerd/config.toml"
  wait_for "containerd" 30 ctr --address "$sock" version
}

import_images() {
  local t
  for t in "$@"; do
    say "importing $(basename "$t")"
    ctr --address "$sock" -n k8s.io images import "$t" >>"$logs/images.log" 2>&1 || die "ctr images import $t failed; see $logs/images.log"
  done
}

kubelet() {
  mkdir -p "$dir/kubelet"
  cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://$sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$pki/kubelet.crt"
tlsPrivateKeyFile: "$pki/kubelet.key"
readOnlyPort: 0
clusterDNS: [$dns_ip]
clusterDomain: cluster.local
podCIDR: $pod_cidr
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageMinimumGCAge: 8760h
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
  run kubelet "$nodebin/kubelet" --config="$dir/kubelet.yaml" --kubeconfig="$dir/node.kubeconfig" \
    --root-dir="$dir/kubelet" --node-ip="$ip" --hostname-override="$node"
  cat >"$dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$dir/kube-proxy.kubeconfig"}
mode: iptables
clusterCIDR: $cluster_cidr
hostnameOverride: $node
conntrack: {maxPerCore: 0}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
EOF
  run kube-proxy "$nodebin/kube-proxy" --config="$dir/kube-proxy.yaml"
}

coredns() {
  sed -e "s|@IMAGE@|$coredns_image|" -e "s|@DNS_IP@|$dns_ip|" "$root/hack/node/coredns.yaml" >"$dir/coredns.yaml"
  k apply -f "$dir/coredns.yaml" >>"$logs/kubectl.log"
}

k() { "$envtest/kubectl" --kubeconfig="$dir/kubeconfig" "$@"; }

node_ready() {
  k get node "$node" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True
}

# --- up, down, status ------------------------------------------------------------------------

up() {
  local t0=$SECONDS
  preflight
  mkdir -p "$dir" "$pids" "$logs" "$pki"
  packages
  envtest=$("$root/hack/envtest-assets.sh")
  nodebin=$("$root/hack/node/assets.sh")
  ip=${KPIPE_NODE_IP:-$(ip -4 -o addr show scope global | awk '{sub(/\/.*/, "", $4); print $4; exit}')}
  [ -n "$ip" ] || die "no global IPv4 address on this machine (set KPIPE_NODE_IP)"
  echo "$ip" >"$dir/node-ip"
  sysctls
  certificates
  say "control plane on https://$ip:6443"
  control_plane
  runtime
  import_images "$root/bin/images/pause.tar" "$root/bin/images/coredns.tar" "$@"
  kubelet
  wait_for "node $node Ready" 90 node_ready
  coredns
  wait_for "CoreDNS available" 90 k -n kube-system wait --for=condition=Available deployment/coredns --timeout=1s
  say "up in $((SECONDS - t0))s; KUBECONFIG=$dir/kubeconfig"
}

# iptables_clean: removes the chains the kubelet, kube-proxy and the CNI plugins left (KUBE-*,
# CNI-*) and the rules that jump to them, in every table, for IPv4 and IPv6.
iptables_clean() {
  local cmd t rule chain
  for cmd in iptables ip6tables; do
    command -v $cmd >/dev/null || continue
    for t in filter nat mangle; do
      { $cmd -t $t -S 2>/dev/null | grep -E -- '^-A .* -j (KUBE|CNI)-' || true; } | sed 's/^-A/-D/' | while read -r rule; do
        eval "$cmd -t $t $rule" 2>/dev/null || true
      done
      for chain in $($cmd -t $t -S 2>/dev/null | awk '/^-N (KUBE|CNI)-/ {print $2}'); do
        $cmd -t $t -F "$chain" 2>/dev/null || true
      done
      for chain in $($cmd -t $t -S 2>/dev/null | awk '/^-N (KUBE|CNI)-/ {print $2}'); do
        $cmd -t $t -X "$chain" 2>/dev/null || true
      done
    done
  done
}

down() {
  local t0=$SECONDS m pid envtest nodebin
  [ "$(id -u)" = 0 ] || die "down needs root"
  [ -d "$dir" ] || { say "nothing to stop ($dir does not exist)"; return 0; }
  mkdir -p "$logs"
  nodebin=$(ls -d "$root"/bin/node/*/ 2>/dev/null | tail -1)
  stop kube-controller-manager
  stop kube-scheduler
  stop kubelet 15
  if [ -S "$sock" ] && [ -x "$nodebin/crictl" ]; then
    # Stopping each pod sandbox through the CRI runs the CNI DEL (iptables, the veth, the IP).
    timeout 90 "$nodebin/crictl" --runtime-endpoint "unix://$sock" --timeout 30s rmp -fa >>"$logs/down.log" 2>&1 || say "crictl rmp failed; see $logs/down.log"
  fi
  stop containerd 15
  # Container shims outlive containerd; they are the processes whose command line names its socket.
  for pid in $(grep -lsF -- "$dir/containerd" /proc/[0-9]*/cmdline | cut -d/ -f3); do
    [ "$pid" != $$ ] && kill -KILL "$pid" 2>/dev/null || true
  done
  # Whatever still runs in the kubelet's cgroups (a container whose sandbox the CRI could not
  # stop) is one of this cluster's; then the cgroups themselves go, leaves first.
  for pid in $(find /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  sleep 0.5
  find /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods -depth -type d -exec rmdir {} \; 2>/dev/null || true
  stop kube-proxy
  [ -x "$nodebin/kube-proxy" ] && "$nodebin/kube-proxy" --cleanup >>"$logs/down.log" 2>&1 || true
  stop kube-apiserver
  stop etcd
  iptables_clean
  ip link del cni0 2>/dev/null || true
  for m in $(ip netns list 2>/dev/null | awk '/^cni-/ {print $1}'); do ip netns del "$m" 2>/dev/null || true; done
  for m in $(awk -v d="$dir" 'index($2, d) == 1 || $2 ~ /^\/run\/netns\/cni-/ {print $2}' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "could not unmount $m"
  done
  if [ -f "$dir/sysctl.saved" ]; then
    while IFS= read -r m; do sysctl -qw "$m" || true; done <"$dir/sysctl.saved"
  fi
  if [ -n "${KPIPE_NODE_KEEP_LOGS:-}" ]; then
    rm -rf "${KPIPE_NODE_KEEP_LOGS:?}" && cp -r "$logs" "$KPIPE_NODE_KEEP_LOGS"
  fi
  rm -rf "$dir"
  say "down in $((SECONDS - t0))s"
}

status() {
  local f
  [ -d "$pids" ] || { say "no cluster ($dir)"; return 1; }
  for f in "$pids"/*.pid; do
    [ -e "$f" ] || continue
    if ours "$(cat "$f")" "$(cat "${f%.pid}.exe")"; then
      echo "$(basename "$f" .pid): running (pid $(cat "$f"))"
    else
      echo "$(basename "$f" .pid): not running"
    fi
  done
}
