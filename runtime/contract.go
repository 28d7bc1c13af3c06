package runtime

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// The pod contract, from the runtime's side: the operator says in KPIPE_POD_CONTRACT which
// contract version the pod must honour (kpipev1.RequiredContract), and this runtime implements
// kpipev1.PodContractVersion. Below the requirement it refuses to start; at or above it, spec
// fields it does not know are reported (a log line at start, kpipe_spec_unknown_fields) and
// ignored, so a custom image built against an older runtime survives an operator upgrade.

// ContractError is a runtime's refusal of a pod whose required contract it does not implement.
type ContractError struct {
	// Required is the version the operator asked for, Implemented the runtime's own.
	Required, Implemented int
}

func (e *ContractError) Error() string {
	return fmt.Sprintf("%sthe operator requires pod contract %d (%s), this runtime implements pod contract %d: "+
		"rebuild the image against a kpipe runtime that implements contract %d or later",
		kpipev1.ContractRefusalPrefix, e.Required, kpipev1.EnvPodContract, e.Implemented, e.Required)
}

// CheckContract refuses a required pod contract version above the one this runtime
// implements, with a *ContractError naming both. Empty means no requirement (a pod rendered by
// an operator older than the contract, or a local run). `kpipe run` checks KPIPE_POD_CONTRACT
// with it before anything else; a custom main that does not use NewCommand should too.
func CheckContract(required string) error {
	required = strings.TrimSpace(required)
	if required == "" {
		return nil
	}
	v, err := strconv.Atoi(required)
	if err != nil || v < 1 {
		return fmt.Errorf("%s%s=%q: want a pod contract version, a positive integer", kpipev1.ContractRefusalPrefix, kpipev1.EnvPodContract, required)
	}
	if v > kpipev1.PodContractVersion {
		return &ContractError{Required: v, Implemented: kpipev1.PodContractVersion}
	}
	return nil
}

// checkContractFromEnv is CheckContract of KPIPE_POD_CONTRACT. A refusal is also written where
// the kubelet keeps a container's termination message, so the operator can show it on the
// pipeline instead of leaving a crash loop to be found in the logs.
func checkContractFromEnv() error {
	err := CheckContract(os.Getenv(kpipev1.EnvPodContract))
	if err != nil {
		writeTerminationMessage(kpipev1.TerminationMessagePath, err.Error())
	}
	return err
}

// writeTerminationMessage writes msg to the termination message file when it exists (in a pod);
// elsewhere it does nothing.
func writeTerminationMessage(path, msg string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return
	}
	_, _ = f.WriteString(msg)
	_ = f.Close()
}

// reportSpecFields logs, once, the spec fields this runtime ignored because it does not know
// them, and exports them and the contract version it implements as metrics.
func (p *Pipeline) reportSpecFields() {
	constLabels := p.metrics.constLabels
	contract := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kpipe_pod_contract_version", Help: "Pod contract version this runtime implements.", ConstLabels: constLabels,
	})
	contract.Set(kpipev1.PodContractVersion)
	unknown := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name:        "kpipe_spec_unknown_fields",
		Help:        "1 for each spec field this runtime does not know and ignores (the spec comes from a newer operator).",
		ConstLabels: constLabels,
	}, []string{"field"})
	for _, f := range p.cfg.UnknownFields {
		unknown.WithLabelValues(f).Set(1)
	}
	p.metrics.registry.MustRegister(contract, unknown)
	if len(p.cfg.UnknownFields) > 0 {
		p.log.Warn("the spec has fields this runtime does not know; they are ignored (the operator is newer than this image)",
			"fields", p.cfg.UnknownFields, "podContract", kpipev1.PodContractVersion)
	}
}
