package v1alpha1

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

var (
	serverRE = regexp.MustCompile(`^(\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?):[0-9]{1,5}$`)
	secretRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

func (k *KafkaConnection) validate(p *field.Path) field.ErrorList {
	errs := validateServers(p.Child("bootstrapServers"), k.BootstrapServers)
	if k.Version != "" && !slices.Contains(KafkaVersions, k.Version) {
		errs = append(errs, field.NotSupported(p.Child("version"), k.Version, KafkaVersions))
	}
	switch k.IsolationLevel {
	case ReadUncommitted, ReadCommitted:
	default:
		errs = append(errs, field.NotSupported(p.Child("isolationLevel"), k.IsolationLevel,
			[]string{string(ReadUncommitted), string(ReadCommitted)}))
	}
	if k.RebalanceStrategy != "" && !slices.Contains(RebalanceStrategies, string(k.RebalanceStrategy)) {
		errs = append(errs, field.NotSupported(p.Child("rebalanceStrategy"), k.RebalanceStrategy, RebalanceStrategies))
	}
	if k.TLS != nil && k.TLS.SecretRef != nil {
		errs = append(errs, validateSecretRef(p.Child("tls", "secretRef", "name"), k.TLS.SecretRef.Name)...)
	}
	if k.SASL != nil {
		mp := p.Child("sasl", "mechanism")
		switch k.SASL.Mechanism {
		case SASLPlain, SASLSCRAMSHA256, SASLSCRAMSHA512:
		default:
			errs = append(errs, field.NotSupported(mp, k.SASL.Mechanism,
				[]string{string(SASLPlain), string(SASLSCRAMSHA256), string(SASLSCRAMSHA512)}))
		}
		if k.SASL.Mechanism == SASLPlain && k.TLS == nil {
			errs = append(errs, field.Invalid(mp, k.SASL.Mechanism, "SASL PLAIN sends the password in clear text: it needs kafka.tls"))
		}
		errs = append(errs, validateSecretRef(p.Child("sasl", "secretRef", "name"), k.SASL.SecretRef.Name)...)
	}
	return errs
}

func validateServers(p *field.Path, servers []string) field.ErrorList {
	var errs field.ErrorList
	switch {
	case len(servers) == 0:
		errs = append(errs, field.Required(p, "at least one host:port is required"))
	case len(servers) > 32:
		errs = append(errs, field.TooMany(p, len(servers), 32))
	}
	seen := map[string]bool{}
	for i, s := range servers {
		switch {
		case len(s) > 261:
			errs = append(errs, field.TooLong(p.Index(i), "", 261))
		case !serverRE.MatchString(s):
			errs = append(errs, field.Invalid(p.Index(i), s, "must be host:port"))
		default:
			if port, _ := strconv.Atoi(s[strings.LastIndex(s, ":")+1:]); port < 1 || port > 65535 {
				errs = append(errs, field.Invalid(p.Index(i), s, "the port must be from 1 to 65535"))
			}
		}
		if seen[s] {
			errs = append(errs, field.Duplicate(p.Index(i), s))
		}
		seen[s] = true
	}
	return errs
}

func validateSecretRef(p *field.Path, name string) field.ErrorList {
	if name == "" || len(name) > 253 || !secretRE.MatchString(name) {
		return field.ErrorList{field.Invalid(p, name, "must be the name of a Secret in the pipeline's namespace")}
	}
	return nil
}
