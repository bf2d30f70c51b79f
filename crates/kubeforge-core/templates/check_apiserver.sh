#!/bin/sh
# Managed by kubeforge. keepalived's health check: succeeds only when HAProxy on this node
# reaches a kube-apiserver whose /healthz answers 200 (401 or 403 must not count as healthy).
code=$(curl -sk --max-time 2 -o /dev/null -w '%{http_code}' https://127.0.0.1:{{ endpoint_port }}/healthz)
[ "$code" = 200 ]
