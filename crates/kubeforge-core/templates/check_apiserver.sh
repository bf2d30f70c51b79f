#!/bin/sh
# Managed by kubeforge. keepalived's health check: does this node serve the API endpoint, that
# is, does HAProxy accept connections on port {{ endpoint_port }}? Which kube-apiservers answer
# is for HAProxy's own checks to judge: every node sees the same, so it must not move the VIP.
# (While the kube-apiservers come up, as after kubeadm init, a check on them passes on one node
# a moment before another, and the VIP would go back and forth, breaking every connection.)
exec timeout 2 bash -c ': </dev/tcp/127.0.0.1/{{ endpoint_port }}' 2>/dev/null
