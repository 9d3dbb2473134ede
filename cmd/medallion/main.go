// Command medallion is the Medallion lakehouse engine. See README.md.
package main

import (
	"os"

	"github.com/medallionlake/medallion/cli"
	_ "github.com/medallionlake/medallion/domains/all" // the reference domains
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
