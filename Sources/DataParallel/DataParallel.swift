import MPIShim
public func mpiWorldHandle() -> MPI_Comm { shim_comm_world() }
