//go:build tools

// Package tools pins Flux's source-controller this module builds.
package tools

import (
	_ "github.com/fluxcd/source-controller"
)
