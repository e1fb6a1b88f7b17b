// The counter-based RNG lives in its own small module so that Tensor (dropout, init) and Sampling (batches) share
// one implementation without Sampling depending on Tensor.
@_exported import CounterRandom
