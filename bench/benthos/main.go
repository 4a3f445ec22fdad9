// Benthos v4.27.0 with only the components bench/ingress.py's peer run uses (http_server
// input, kafka_franz output, bloblang, prometheus metrics): `components/all` pulls in
// modules this machine cannot resolve. Built by bench/_benthos.py into
// ~/.cache/wecom-stream/tools/benthos-v4.27.0/benthos.
package main

import (
	"context"

	_ "github.com/benthosdev/benthos/v4/public/components/io"
	_ "github.com/benthosdev/benthos/v4/public/components/kafka"
	_ "github.com/benthosdev/benthos/v4/public/components/prometheus"
	_ "github.com/benthosdev/benthos/v4/public/components/pure"
	"github.com/benthosdev/benthos/v4/public/service"
)

func main() {
	service.RunCLI(context.Background())
}
