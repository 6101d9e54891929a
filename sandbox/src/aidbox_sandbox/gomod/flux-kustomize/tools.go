//go:build tools

// Package tools pins Flux's kustomize-controller this module builds.
package tools

import (
	_ "github.com/fluxcd/kustomize-controller"
)
