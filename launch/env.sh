# Sourced by the launchers: environment every Episodic process should start with.
command -v swift >/dev/null 2>&1 || export PATH=/opt/swift/usr/bin:$PATH
# Open MPI refuses to run as root without these; CI and the demo run as root.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# OpenBLAS 0.3.21 picks its generic kernel on CPUs it does not know (~5× slower sgemm). The kernel is chosen when the
# library loads, so OPENBLAS_CORETYPE must be in the environment before a process starts. episodic_blas_env BIN asks
# the built binary what the library chose; only when that is a generic kernel on a CPU with AVX2/AVX-512, and only
# when the user has not set OPENBLAS_CORETYPE, it exports the matching kernel name.
episodic_blas_env() {
  local bin="$1" s
  [ -n "${OPENBLAS_CORETYPE+x}" ] && return 0
  [ -x "$bin" ] || return 0
  s="$("$bin" blas --suggest-coretype 2>/dev/null || true)"
  if [ -n "$s" ]; then
    export OPENBLAS_CORETYPE="$s"
    echo "launch: OpenBLAS chose a generic kernel on this CPU; using OPENBLAS_CORETYPE=$s" >&2
  fi
}
