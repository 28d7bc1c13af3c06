package node

// kafkaManifest is Kafka as a user would run it in the cluster: kfake (hack/node/kafka) in a
// Deployment behind a Service, advertising the Service's DNS name, with SCRAM users for the
// driver and for the pipelines (two, so that a Secret rotation can switch between them).
const kafkaManifest = `apiVersion: v1
kind: Namespace
metadata: {name: kafka}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: kafka, namespace: kafka}
spec:
  replicas: 1
  selector: {matchLabels: {app: kafka}}
  template:
    metadata: {labels: {app: kafka}}
    spec:
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: kafka
          image: kpipe.local/kafka:dev
          imagePullPolicy: Never
          args: [-advertise=kafka.kafka.svc.cluster.local, -port=9092, -partitions=4,
                 "-topics=orders,orders-out,payments,payments-out,rollme,rollme-out,charted,charted-out",
                 "-scram-users=driver:driver-secret,pipeline:pipeline-1,pipeline2:pipeline-2"]
          ports: [{name: kafka, containerPort: 9092}]
          readinessProbe:
            tcpSocket: {port: kafka}
            periodSeconds: 1
          resources: {requests: {cpu: 100m, memory: 64Mi}}
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {name: kafka, namespace: kafka}
spec:
  selector: {app: kafka}
  ports: [{name: kafka, port: 9092, targetPort: kafka}]
`

// appNamespaceManifest is where the pipelines run: Pod Security "restricted" enforced, and the
// Secret with the pipelines' Kafka user.
const appNamespaceManifest = `apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/enforce-version: latest
---
apiVersion: v1
kind: Secret
metadata: {name: kafka-user, namespace: shop}
stringData: {username: pipeline, password: pipeline-1}
`
