// Package chart checks that the Helm chart (charts/kpipe) carries the generated CRD and RBAC
// of config/ unchanged. The node suite (test/node) lints it, renders it and installs it.
package chart

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// copies are the chart's files that `make chart` copies from config/.
var copies = map[string]string{
	"config/crd/bases/kpipe.io_kafkapipelines.yaml": "charts/kpipe/crds/kpipe.io_kafkapipelines.yaml",
	"config/rbac/role.yaml":                         "charts/kpipe/files/role.yaml",
	"config/rbac/kafkapipeline_editor_role.yaml":    "charts/kpipe/files/kafkapipeline_editor_role.yaml",
	"config/rbac/kafkapipeline_viewer_role.yaml":    "charts/kpipe/files/kafkapipeline_viewer_role.yaml",
}

func TestChartCopiesAreCurrent(t *testing.T) {
	for src, dst := range copies {
		want, err := os.ReadFile(filepath.Join("..", "..", src))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("..", "..", dst))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s: run `make chart` and commit the result", dst, src)
		}
	}
}
