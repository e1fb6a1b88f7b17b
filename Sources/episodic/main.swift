import Tensor
print("episodic: BLAS core \(blasCoreName())")
