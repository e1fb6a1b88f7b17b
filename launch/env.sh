# Sourced by the launchers: environment every Episodic process should start with.
# OpenBLAS 0.3.21 picks its generic kernel on CPUs it does not know; the kernel is chosen when the library
# loads, so OPENBLAS_CORETYPE must be set before the process starts. Only set it when unset (never override a
# user's value), and only pick a kernel the CPU can run.
if [ -z "${OPENBLAS_CORETYPE+x}" ] && [ -r /proc/cpuinfo ]; then
  if grep -q -m1 -w avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -q -m1 -w avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell
  fi
fi
# Open MPI refuses to run as root without these; CI and the demo run as root.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
command -v swift >/dev/null 2>&1 || export PATH=/opt/swift/usr/bin:$PATH
