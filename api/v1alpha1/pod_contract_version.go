package v1alpha1

// PodContractVersion is the version of the pod contract this kpipe implements: the
// environment, mounts and spec fields a pipeline pod is given and what it must do with them.
// A runtime built from this module honours every contract up to this one; the operator renders
// the version a pipeline's pods must honour into KPIPE_POD_CONTRACT (see RequiredContract in
// controllers/render, the table of fields that raise it).
//
// Version 1 is the first: the spec is decoded leniently (DecodeSpec), unknown fields are
// reported, and KPIPE_POD_CONTRACT is checked. Runtimes built before it decode the spec
// strictly and do not read KPIPE_POD_CONTRACT; they stop at the first field they do not know.
//
// Raise it only together with a row of that table: a new field that a runtime can safely
// ignore (a tuning knob, an optional report) needs no new version, since DecodeSpec reports
// and skips what it does not know.
const PodContractVersion = 1
