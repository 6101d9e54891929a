module github.com/aidbox-operator/tools/argocd-health

go 1.26.0

// The versions Argo CD v3.5.1's go.mod pins.
require (
	github.com/yuin/gopher-lua v1.1.2
	layeh.com/gopher-json v0.0.0-20190114024228-97fed8db8427
)
