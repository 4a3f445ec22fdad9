//go:build tools

// Package tools pins etcd's server command (go.etcd.io/etcd/server/v3 is its main package)
// for ../build.sh.
package tools

import _ "go.etcd.io/etcd/server/v3/etcdmain"
